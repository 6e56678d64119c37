package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"opsbook/tests/kube/k3s/internal/deploy"
	"opsbook/tests/kube/k3s/internal/etcd"
	"opsbook/tests/kube/k3s/internal/nodes"
	"opsbook/tests/kube/k3s/internal/secretsencrypt"
	"opsbook/tests/kube/k3s/internal/snapshot"
	sup "opsbook/tests/kube/k3s/internal/supervisor"
	"opsbook/tests/kube/k3s/internal/version"
)

func (s *Server) etcdEndpoint() string { return etcd.ClientURL(s.cfg.LoopbackIP()) }

func (s *Server) snapshotDir() string {
	if s.cfg.EtcdSnapshotDir != "" {
		return s.cfg.EtcdSnapshotDir
	}
	return s.l.Snapshots()
}

func (s *Server) snapshots() *snapshot.Manager {
	return &snapshot.Manager{Dir: s.snapshotDir(), NodeName: s.cfg.NodeName, Client: func() clientv3.Config {
		tlsConfig, _ := etcd.ClientTLS(s.etcdTLS())
		return clientv3.Config{Endpoints: []string{s.etcdEndpoint()}, TLS: tlsConfig, DialTimeout: 10 * time.Second}
	}}
}

// startControllers starts what k3s runs once the API is up: its CRDs, the node, the etcd
// learner manager, secrets encryption, the manifests watcher and scheduled snapshots.
func (s *Server) startControllers(ctx context.Context) error {
	crds, err := deploy.CRDs(!s.cfg.DisableHelmController, !contains(s.cfg.Disables, "traefik"))
	if err != nil {
		return err
	}
	applier, err := deploy.NewApplier(s.restConfig, "k3s")
	if err != nil {
		return err
	}
	if err := applier.Apply(ctx, crds); err != nil {
		return fmt.Errorf("failed to create CRDs: %w", err)
	}
	rbac, err := deploy.Decode([]byte(deploy.KwokRBAC))
	if err != nil {
		return err
	}
	if err := applier.Apply(ctx, rbac); err != nil {
		return err
	}
	if err := s.waitCRDs(ctx, deploy.CRDNames(crds)); err != nil {
		return err
	}
	s.encrypt = &secretsencrypt.Controller{
		Kube: s.kube, NodeName: s.cfg.NodeName, ConfigPath: s.l.EncryptionConfig(), StatePath: s.l.EncryptionState(),
		Provider: s.cfg.EncryptProvider, EncryptSecrets: s.cfg.EncryptSecrets,
		Save:    func(ctx context.Context) error { return s.saveBootstrap(ctx, true) },
		Metrics: s.apiserverMetrics,
	}
	spec := nodes.Spec{Name: s.cfg.NodeName, InternalIP: s.cfg.NodeIP, ExternalIP: s.cfg.NodeExternalIP, Server: true,
		EtcdMember: s.memberName, Version: version.Version, Args: s.cfg.Args, Labels: s.cfg.NodeLabels, Taints: s.cfg.NodeTaints}
	if err := nodes.Register(ctx, s.kube, spec); err != nil {
		return fmt.Errorf("failed to register node: %w", err)
	}
	logrus.Infof("Labels and annotations have been set successfully on node: %s", s.cfg.NodeName)
	if s.cfg.EncryptSecrets {
		if err := s.encrypt.AnnotateFromState(ctx); err != nil {
			return err
		}
	}
	go s.runKwok(ctx)
	go (&etcd.Learners{Client: s.etcdClient, Kube: s.kube, Endpoint: s.etcdEndpoint(), TLS: s.etcdTLS()}).Run(ctx)
	if err := deploy.Stage(s.l.Manifests(), s.cfg.Disables); err != nil {
		return err
	}
	go (&deploy.Watcher{Dir: s.l.Manifests(), Disables: s.cfg.Disables, Applier: applier}).Run(ctx)
	if !s.cfg.EtcdDisableSnapshots {
		if err := s.snapshots().Schedule(ctx, s.cfg.EtcdSnapshotCron, s.cfg.EtcdSnapshotName,
			s.cfg.EtcdSnapshotRetention, s.cfg.EtcdSnapshotCompress); err != nil {
			return fmt.Errorf("invalid etcd-snapshot-schedule-cron: %w", err)
		}
	}
	return nil
}

func (s *Server) runKwok(ctx context.Context) {
	cidr, err := nodes.WaitPodCIDR(ctx, s.kube, s.cfg.NodeName)
	if err != nil {
		return
	}
	if err := nodes.StartKwok(ctx, s.l.Cred("supervisor.kubeconfig"), s.cfg.NodeName, s.cfg.NodeIP, cidr); err != nil {
		s.fail("kwok", err)
	}
}

func (s *Server) waitCRDs(ctx context.Context, names []string) error {
	dyn, err := dynamic.NewForConfig(s.restConfig)
	if err != nil {
		return err
	}
	gvr := apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			u, err := dyn.Resource(gvr).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructuredConditions(u.Object)
			if conds["Established"] != "True" {
				return false, nil
			}
		}
		return true, nil
	})
}

func unstructuredConditions(obj map[string]any) (map[string]string, bool, error) {
	out := map[string]string{}
	status, _ := obj["status"].(map[string]any)
	list, _ := status["conditions"].([]any)
	for _, c := range list {
		m, _ := c.(map[string]any)
		t, _ := m["type"].(string)
		v, _ := m["status"].(string)
		out[t] = v
	}
	return out, len(out) > 0, nil
}

func (s *Server) apiserverMetrics(ctx context.Context) (string, error) {
	rc, err := rest.RESTClientFor(withCodec(s.restConfig))
	if err != nil {
		return "", err
	}
	body, err := rc.Get().AbsPath("/metrics").Do(ctx).Raw()
	return string(body), err
}

// checkFlannel stands in for flannel's start: the wireguard-native backend creates a
// WireGuard link, and without kernel support k3s exits with flannel's error
// (flannel: pkg/backend/wireguard/device.go ensureLink; k3s: pkg/agent/flannel/setup.go
// "flannel exited: ..."). The test server runs no flannel for the other backends.
func (s *Server) checkFlannel() error {
	if s.cfg.FlannelBackend != "wireguard-native" {
		return nil
	}
	link := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "flannel-wg", MTU: 1420}, LinkType: "wireguard"}
	err := netlink.LinkAdd(link)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = errors.New("operation not supported")
		}
		return fmt.Errorf("flannel exited: failed to register flannel network: could not create wireguard interface: %v", err)
	}
	logrus.Info("opsbook k3s test server: created WireGuard link flannel-wg (no flannel runs on it)")
	return nil
}

// serveKubeletCert issues a node client certificate (CN system:node:<name>, O system:nodes)
// to an agent that names itself and sends its node password (k3s:
// pkg/server/handlers/handlers.go ClientKubeletCert with the node password check).
func (s *Server) serveKubeletCert(w http.ResponseWriter, req *http.Request) {
	name, pw := req.Header.Get("k3s-Node-Name"), req.Header.Get("k3s-Node-Password")
	if name == "" {
		sup.SendError(w, req, http.StatusBadRequest, errors.New("node name not set"))
		return
	}
	if pw == "" {
		sup.SendError(w, req, http.StatusBadRequest, errors.New("node password not set"))
		return
	}
	if s.kube == nil {
		sup.SendError(w, req, http.StatusServiceUnavailable, errors.New("runtime core not ready"))
		return
	}
	if err := nodes.CheckPassword(req.Context(), s.kube, name, pw); err != nil {
		sup.SendError(w, req, http.StatusForbidden, err)
		return
	}
	pemData, err := s.issueNodeCert(name)
	if err != nil {
		sup.SendError(w, req, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(pemData)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
