// Package nodes keeps the Node object of a k3s test server or agent: it registers it
// with k3s's labels and annotations, and plays its kubelet with kwok, upstream's
// Kubernetes-without-kubelet simulator, in this process. There is no kubelet and no
// container runtime: pods bound to the node move through the lifecycle the stages in
// kwok-stages.yaml give them (Running, Ready, Jobs Succeeded; the kwok-fails,
// kwok-never-ready and kwok-crashloop image markers).
package nodes

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/apis/v1alpha1"
	"sigs.k8s.io/kwok/pkg/client/clientset/versioned"
	"sigs.k8s.io/kwok/pkg/kwok/controllers"
	"sigs.k8s.io/kwok/pkg/utils/client"
	"sigs.k8s.io/yaml"

	"k8s.io/client-go/kubernetes"
)

//go:embed kwok-stages.yaml
var stagesYAML []byte

// Stages parses the embedded Stage objects, grouped as kwok's controller wants them.
func Stages() (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	out := map[internalversion.StageResourceRef][]*internalversion.Stage{}
	for _, doc := range bytes.Split(stagesYAML, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var s v1alpha1.Stage
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			return nil, fmt.Errorf("kwok-stages.yaml: %w", err)
		}
		v1alpha1.SetObjectDefaults_Stage(&s)
		in, err := internalversion.ConvertToInternalStage(&s)
		if err != nil {
			return nil, err
		}
		out[in.Spec.ResourceRef] = append(out[in.Spec.ResourceRef], in)
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// LeaseSeconds is the node Lease duration kwok renews (the kubelet's default is 40 s).
const LeaseSeconds = 40

// StartKwok starts kwok's controllers for one node; they run until ctx ends. podCIDR is the node's
// pod range; kwok hands out pod IPs from it.
func StartKwok(ctx context.Context, kubeconfig, nodeName, nodeIP, podCIDR string) error {
	stages, err := Stages()
	if err != nil {
		return err
	}
	cs, err := client.NewClientset("", kubeconfig)
	if err != nil {
		return err
	}
	restConfig, err := cs.ToRESTConfig()
	if err != nil {
		return err
	}
	dynamicClient, err := cs.ToDynamicClient()
	if err != nil {
		return err
	}
	restMapper, err := cs.ToRESTMapper()
	if err != nil {
		return err
	}
	restClient, err := rest.RESTClientFor(restConfig)
	if err != nil {
		return err
	}
	typed, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	kwokTyped, err := versioned.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	// The node Lease holder is the node's name, as the kubelet k3s embeds holds it
	// (kubernetes: pkg/kubelet/kubelet.go, lease.NewController with the node name): a restarted k3s renews
	// its node's Lease at once. kwok's own Identity() adds a fresh UUID per process, which would
	// leave a restarted node unmanaged until the previous process's Lease expired.
	id := nodeName
	f := false
	ctr, err := controllers.NewController(controllers.Config{
		Clock:                           clock.RealClock{},
		DynamicClient:                   dynamicClient,
		RESTClient:                      restClient,
		RESTMapper:                      restMapper,
		ImpersonatingDynamicClient:      cs.ToImpersonatingDynamicClient(),
		ImpersonatingTypedClient:        cs.ToImpersonatingTypedClient(),
		TypedClient:                     typed,
		TypedKwokClient:                 kwokTyped,
		ManageSingleNode:                nodeName,
		CIDR:                            podCIDR,
		NodeIP:                          nodeIP,
		NodeName:                        nodeName,
		PodPlayStageParallelism:         4,
		NodePlayStageParallelism:        4,
		NodeLeaseParallelism:            4,
		NodeLeaseDurationSeconds:        LeaseSeconds,
		PodsOnNodeSyncParallelism:       1,
		EnablePodsOnNodeSyncListPager:   f,
		EnablePodsOnNodeSyncStreamWatch: f,
		LocalStages:                     stages,
		ID:                              id,
	})
	if err != nil {
		return err
	}
	return ctr.Start(ctx)
}
