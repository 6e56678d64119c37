// Package server is `k3s server` of the opsbook k3s test server: embedded etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler in one process behind k3s's
// supervisor on :6443, with k3s's data dir, token, bootstrap data, join and restart rules
// (k3s: pkg/cli/server/server.go, pkg/server/server.go, pkg/cluster/*, pkg/daemons/control/*).
//
// It is a test double built from upstream parts, not k3s: there is no containerd,
// kubelet, flannel, CoreDNS, Traefik, ServiceLB, helm-controller or network policy
// controller. Node objects are kept by kwok (see package nodes).
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"opsbook/tests/kube/k3s/internal/config"
	"opsbook/tests/kube/k3s/internal/control"
	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/etcd"
	"opsbook/tests/kube/k3s/internal/kubelet"
	"opsbook/tests/kube/k3s/internal/pki"
	"opsbook/tests/kube/k3s/internal/secretsencrypt"
	"opsbook/tests/kube/k3s/internal/supervisor"
	"opsbook/tests/kube/k3s/internal/version"
)

// Server is one running test server.
type Server struct {
	cfg        *config.Server
	l          datadir.Layout
	password   string // the token's password: keys the bootstrap data
	memberName string
	member     *etcd.Member
	etcdClient *clientv3.Client
	kube       kubernetes.Interface
	restConfig *rest.Config
	router     *supervisor.Router
	encrypt    *secretsencrypt.Controller
	// joining: the etcd member was added as a learner by this start.
	joining bool
	errs    chan error
}

// Run starts the server and blocks until a component fails; when sig ends (SIGTERM, SIGINT)
// it stops etcd cleanly and exits 0. The components run on a context that is never
// cancelled: the controller-manager exits the process with status 1 when its leader
// election is cancelled, which would race the message of a failed start.
func Run(sig context.Context, cfg *config.Server, ready func()) error {
	ctx := context.Background()
	short := version.GitCommit
	if len(short) > 8 {
		short = short[:8]
	}
	logrus.Infof("Starting k3s %s (%s)", version.Version, short)
	logrus.Warn(version.Marker)
	if version.Broken() {
		return errors.New("this build of the opsbook k3s test server is made to fail at start (for upgrade tests)")
	}
	s := &Server{cfg: cfg, l: datadir.Layout{Root: cfg.DataDir}, errs: make(chan error, 8)}
	go func() {
		<-sig.Done()
		logrus.Info("Shutting down k3s")
		s.shutdown()
		os.Exit(0)
	}()
	if err := os.MkdirAll(s.l.Server(), 0o700); err != nil {
		return err
	}
	if cfg.ClusterReset {
		return s.reset(ctx)
	}
	// a server is an agent too: its kubelet's check (a cluster reset starts no kubelet)
	if cfg.ProtectKernelDefaults {
		if err := kubelet.CheckKernelDefaults("/proc/sys"); err != nil {
			return err
		}
	}
	if err := s.resolveToken(); err != nil {
		return err
	}
	if err := s.loadMemberName(); err != nil {
		return err
	}
	switch {
	case etcd.IsInitialized(s.l.EtcdDir()):
		logrus.Info("Managed etcd cluster bootstrap already complete and initialized")
		if err := s.clearResetFlag(); err != nil {
			return err
		}
		if err := s.reconcileRestart(ctx); err != nil {
			return err
		}
	case cfg.ServerURL != "":
		logrus.Info("Managed etcd cluster not yet initialized")
		if err := s.fetchJoinBootstrap(); err != nil {
			return err
		}
	default:
		if !cfg.ClusterInit {
			logrus.Info("opsbook k3s test server: no --cluster-init and no --server; using embedded etcd anyway (k3s would use kine/sqlite)")
		}
		logrus.Info("Managed etcd cluster initializing")
		if err := s.initCluster(); err != nil {
			return err
		}
	}
	if err := s.writeTokenFiles(); err != nil {
		return err
	}
	if cfg.EncryptSecrets {
		if err := secretsencrypt.EnsureAtStart(s.l.EncryptionConfig(), s.l.EncryptionState(), cfg.EncryptProvider); err != nil {
			return err
		}
	}
	if err := s.genServerDeps(); err != nil {
		return err
	}
	if err := s.startSupervisor(ctx); err != nil {
		return err
	}
	if err := s.startEtcd(ctx); err != nil {
		return err
	}
	if err := s.saveBootstrap(ctx, false); err != nil {
		return fmt.Errorf("failed to save bootstrap data: %w", err)
	}
	if err := s.startControlPlane(ctx); err != nil {
		return err
	}
	if err := s.startControllers(ctx); err != nil {
		return err
	}
	if err := s.checkFlannel(); err != nil {
		return err
	}
	logrus.Info("k3s is up and running")
	if ready != nil {
		ready()
	}
	err := <-s.errs
	s.shutdown()
	return err
}

// shutdown stops the etcd member, which hands raft leadership to another member first when
// it leads, so the others need no election; the rest of the process just exits.
func (s *Server) shutdown() {
	if s.member != nil {
		done := make(chan struct{})
		go func() { s.member.Etcd.Server.Stop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
}

// fail reports a component's end to Run.
func (s *Server) fail(component string, err error) {
	if err == nil {
		err = errors.New("stopped")
	}
	select {
	case s.errs <- fmt.Errorf("%s exited: %w", component, err):
	default:
	}
}

func (s *Server) encryptionConfigured() bool {
	if s.cfg.EncryptSecrets {
		return true
	}
	_, err := os.Stat(s.l.EncryptionConfig())
	return err == nil
}

func (s *Server) startEtcd(ctx context.Context) error {
	cfg := etcd.Config{
		Name: s.memberName, DataDir: s.l.EtcdDir(), AdvertiseIP: s.cfg.NodeIP, LoopbackIP: s.cfg.LoopbackIP(),
		TLS: s.etcdTLS(), ExposeMetrics: s.cfg.EtcdExposeMetrics,
	}
	switch {
	case etcd.IsInitialized(s.l.EtcdDir()):
		logrus.Info("Starting etcd for existing cluster member")
	case s.cfg.ServerURL != "":
		initial, err := s.addLearner(ctx)
		if err != nil {
			return err
		}
		cfg.InitialCluster, cfg.State = initial, "existing"
		s.joining = true
		logrus.Infof("Starting etcd to join cluster with members %s", initial)
	default:
		cfg.State = "new"
		logrus.Info("Starting etcd for new cluster, cluster-reset=false")
	}
	member, err := etcd.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("failed to start etcd: %w", err)
	}
	s.member = member
	go func() { s.fail("etcd", <-member.Etcd.Err()) }()
	client, err := etcd.Client(s.etcdTLS(), etcd.ClientURL(s.cfg.LoopbackIP()))
	if err != nil {
		return err
	}
	s.etcdClient = client
	return s.waitEtcdReady(ctx)
}

// waitEtcdReady is k3s's etcd Test loop until this member is a voter present in the member
// list (k3s: pkg/etcd/etcd.go Test; a joiner waits here until promoted). k3s tests every 5 s;
// the test server every second, so that restarts in the tests take less time.
func (s *Server) waitEtcdReady(ctx context.Context) error {
	for {
		err := s.testEtcd(ctx)
		if err == nil {
			logrus.Info("Connection to etcd is ready")
			return nil
		}
		logrus.Infof("Failed to test etcd connection: %v", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.errs:
			return err
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) testEtcd(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := s.etcdClient.Status(cctx, etcd.ClientURL(s.cfg.LoopbackIP()))
	if err != nil {
		return err
	}
	if st.IsLearner {
		return errors.New("this server has not yet been promoted from learner to voting member")
	}
	members, err := s.etcdClient.MemberList(cctx)
	if err != nil {
		return err
	}
	want := etcd.PeerURL(s.cfg.NodeIP)
	for _, m := range members.Members {
		if m.Name == s.memberName {
			return nil
		}
	}
	return fmt.Errorf("this server is a not a member of the etcd cluster. Found %v, expect: %s=%s", members.Members, s.memberName, want)
}

func (s *Server) startSupervisor(ctx context.Context) error {
	ca, err := os.ReadFile(s.l.TLS("client-ca.crt"))
	if err != nil {
		return err
	}
	pool, err := pki.Pool(ca)
	if err != nil {
		return err
	}
	s.router = supervisor.NewRouter(&supervisor.Authenticator{PasswdPath: s.l.Passwd(), ClientCA: pool})
	s.routes()
	addr := net.JoinHostPort(s.cfg.SupervisorHost(), strconv.Itoa(s.cfg.HTTPSPort))
	_, done, err := supervisor.Serve(ctx, addr, s.l.TLS("serving-kube-apiserver.crt"), s.l.TLS("serving-kube-apiserver.key"), s.router)
	if err != nil {
		return err
	}
	go func() {
		if err := <-done; err != nil {
			s.fail("supervisor", err)
		}
	}()
	return nil
}

func (s *Server) startControlPlane(ctx context.Context) error {
	args := s.apiserverArgs()
	logrus.Infof("Running kube-apiserver %v", args)
	api, err := control.StartAPIServer(ctx, args)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	go func() { s.fail("kube-apiserver", <-api.Done) }()
	restConfig, err := clientcmd.BuildConfigFromFlags("", s.l.Cred("supervisor.kubeconfig"))
	if err != nil {
		return err
	}
	restConfig.QPS, restConfig.Burst = 100, 200
	s.restConfig = restConfig
	if s.kube, err = kubernetes.NewForConfig(restConfig); err != nil {
		return err
	}
	if err := s.waitAPIReady(ctx); err != nil {
		return err
	}
	s.router.SetAPIServer(api.Handler)
	logrus.Info("Kube API server is now running")
	logrus.Info("ETCD server is now running")
	cmArgs := s.controllerManagerArgs()
	logrus.Infof("Running kube-controller-manager %v", cmArgs)
	cmDone, err := control.StartControllerManager(ctx, cmArgs)
	if err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	go func() { s.fail("kube-controller-manager", <-cmDone) }()
	if !s.cfg.DisableScheduler {
		schedArgs := s.schedulerArgs()
		logrus.Infof("Running kube-scheduler %v", schedArgs)
		schedDone, err := control.StartScheduler(ctx, schedArgs)
		if err != nil {
			return fmt.Errorf("kube-scheduler: %w", err)
		}
		go func() { s.fail("kube-scheduler", <-schedDone) }()
	}
	return s.writeAdminKubeconfig()
}

func (s *Server) waitAPIReady(ctx context.Context) error {
	rc, err := rest.RESTClientFor(withCodec(s.restConfig))
	if err != nil {
		return err
	}
	for {
		var code int
		res := rc.Get().AbsPath("/readyz").Do(ctx).StatusCode(&code)
		if res.Error() == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.errs:
			return err
		case <-time.After(time.Second):
		}
	}
}

// writeAdminKubeconfig writes /etc/rancher/k3s/k3s.yaml (or --write-kubeconfig), mode 0600
// unless --write-kubeconfig-mode, group from --write-kubeconfig-group.
func (s *Server) writeAdminKubeconfig() error {
	path := s.cfg.KubeconfigOutput
	if path == "" {
		path = datadir.GlobalKubeconfig
	}
	data, err := s.adminKubeconfig()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if s.cfg.KubeconfigMode != "" {
		m, err := strconv.ParseUint(s.cfg.KubeconfigMode, 8, 32)
		if err != nil {
			return fmt.Errorf("invalid write-kubeconfig-mode %q: %w", s.cfg.KubeconfigMode, err)
		}
		mode = os.FileMode(m)
	}
	if err := pki.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if s.cfg.KubeconfigGroup != "" {
		if err := chgrp(path, s.cfg.KubeconfigGroup); err != nil {
			return err
		}
	}
	logrus.Infof("Wrote kubeconfig %s", path)
	return nil
}
