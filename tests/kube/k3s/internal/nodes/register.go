package nodes

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Labels and annotations k3s puts on nodes (k3s: pkg/server/server.go
// setNodeLabelsAndAnnotations, pkg/etcd/metadata_controller.go, pkg/nodeconfig/nodeconfig.go,
// pkg/cloudprovider/instances.go). The `master` role label was dropped in 2025 (k3s #12395).
const (
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
	LabelEtcd         = "node-role.kubernetes.io/etcd"
	AnnEtcdName       = "etcd.k3s.cattle.io/node-name"
	AnnEtcdAddress    = "etcd.k3s.cattle.io/node-address"
	AnnNodeArgs       = "k3s.io/node-args"
	AnnNodeConfigHash = "k3s.io/node-config-hash"
	AnnInternalIP     = "k3s.io/internal-ip"
	AnnExternalIP     = "k3s.io/external-ip"
	AnnHostname       = "k3s.io/hostname"
	// TestServerAnnotation says the node is played by the opsbook test server.
	TestServerAnnotation = "opsbook.test/k3s-test-server"
)

// Spec describes the node to register.
type Spec struct {
	Name       string
	InternalIP string
	ExternalIP string
	Server     bool   // control-plane and etcd roles
	EtcdMember string // the etcd member name (servers)
	Version    string // kubeletVersion, e.g. v1.36.4+k3s1
	Args       []string
	Labels     []string // --node-label key=value
	Taints     []string // --node-taint key=value:Effect
}

// redacted are the args whose values k3s hides in k3s.io/node-args.
var redacted = map[string]bool{"--token": true, "-t": true, "--agent-token": true,
	"--datastore-endpoint": true, "--etcd-s3-access-key": true, "--etcd-s3-secret-key": true}

// NodeArgs renders k3s.io/node-args: the arguments split on `=`, secret values as ********.
func NodeArgs(args []string) string {
	var out []string
	hide := false
	for _, a := range args {
		if hide {
			out = append(out, "********")
			hide = false
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		out = append(out, name)
		switch {
		case redacted[name] && hasValue:
			out = append(out, "********")
		case redacted[name]:
			hide = true
		case hasValue:
			out = append(out, value)
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func configHash(args string) string {
	sum := sha256.Sum256([]byte(args))
	return base32.StdEncoding.EncodeToString(sum[:])
}

func (s Spec) labels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname":           s.Name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"beta.kubernetes.io/os":            "linux",
		"beta.kubernetes.io/arch":          "amd64",
		"node.kubernetes.io/instance-type": "k3s",
		"beta.kubernetes.io/instance-type": "k3s",
	}
	if s.Server {
		l[LabelControlPlane] = "true"
		l[LabelEtcd] = "true"
	}
	for _, kv := range s.Labels {
		k, v, _ := strings.Cut(kv, "=")
		l[k] = v
	}
	return l
}

func (s Spec) annotations() map[string]string {
	args := NodeArgs(s.Args)
	a := map[string]string{
		AnnNodeArgs:                    "" + args,
		AnnNodeConfigHash:              configHash(args),
		AnnInternalIP:                  s.InternalIP,
		AnnHostname:                    s.Name,
		"node.alpha.kubernetes.io/ttl": "0",
		TestServerAnnotation:           "no kubelet; pods are simulated by kwok",
	}
	if s.ExternalIP != "" {
		a[AnnExternalIP] = s.ExternalIP
	}
	if s.Server {
		a[AnnEtcdName] = s.EtcdMember
		a[AnnEtcdAddress] = s.InternalIP
	}
	return a
}

func (s Spec) taints() ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, t := range s.Taints {
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("invalid taint %q: want key=value:Effect", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return out, nil
}

// Register creates or updates the Node and its status (addresses, node info, capacity),
// retrying until the API answers or ctx ends.
func Register(ctx context.Context, kube kubernetes.Interface, s Spec) error {
	taints, err := s.taints()
	if err != nil {
		return err
	}
	return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := register(ctx, kube, s, taints); err != nil {
			return false, nil
		}
		return true, nil
	})
}

func register(ctx context.Context, kube kubernetes.Interface, s Spec, taints []corev1.Taint) error {
	nodes := kube.CoreV1().Nodes()
	node, err := nodes.Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: s.labels(), Annotations: s.annotations()},
			Spec:       corev1.NodeSpec{ProviderID: "k3s://" + s.Name, Taints: taints},
		}
		if node, err = nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else {
		patch := map[string]any{"metadata": map[string]any{"labels": s.labels(), "annotations": s.annotations()}}
		if len(taints) > 0 {
			patch["spec"] = map[string]any{"taints": taints}
		}
		b, _ := json.Marshal(patch)
		if node, err = nodes.Patch(ctx, s.Name, types.StrategicMergePatchType, b, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	addresses := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: s.InternalIP}, {Type: corev1.NodeHostName, Address: s.Name}}
	if s.ExternalIP != "" {
		addresses = append(addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: s.ExternalIP})
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	status := map[string]any{"status": map[string]any{
		"addresses":   addresses,
		"capacity":    capacity,
		"allocatable": capacity,
		"nodeInfo": corev1.NodeSystemInfo{
			KubeletVersion: s.Version, KubeProxyVersion: s.Version,
			ContainerRuntimeVersion: "none://opsbook-k3s-test-server",
			OperatingSystem:         "linux", Architecture: "amd64", OSImage: "opsbook k3s test server",
		},
	}}
	b, _ := json.Marshal(status)
	_, err = nodes.PatchStatus(ctx, node.Name, b)
	return err
}

// WaitPodCIDR waits until the controller-manager gave the node a pod range.
func WaitPodCIDR(ctx context.Context, kube kubernetes.Interface, name string) (string, error) {
	var cidr string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cidr = n.Spec.PodCIDR
		return cidr != "", nil
	})
	return cidr, err
}
