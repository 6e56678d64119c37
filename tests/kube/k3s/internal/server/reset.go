package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	etcdsnapshot "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"opsbook/tests/kube/k3s/internal/bootstrap"
	"opsbook/tests/kube/k3s/internal/etcd"
	"opsbook/tests/kube/k3s/internal/pki"
	"opsbook/tests/kube/k3s/internal/snapshot"
)

// ResetMessage is printed when the reset succeeded; the server then exits 0
// (k3s: pkg/etcd/etcd.go Reset).
const ResetMessage = "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. " +
	"Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"

// reset is `k3s server --cluster-reset [--cluster-reset-restore-path=FILE]`: a one-member
// cluster from this member's data (or from the snapshot), then exit
// (k3s: pkg/cli/server/server.go, pkg/cluster/managed.go start, pkg/etcd/etcd.go Reset).
func (s *Server) reset(ctx context.Context) error {
	if s.cfg.ServerURL != "" {
		return errors.New("cannot perform cluster-reset while server URL is set - remove server from configuration before resetting")
	}
	if err := s.resolveToken(); err != nil {
		return err
	}
	restore := s.cfg.ClusterResetRestorePath
	if restore != "" && s.password == "" {
		return fmt.Errorf("%s does not exist, please pass --token to complete the restoration", s.l.Token())
	}
	if _, err := os.Stat(s.l.ResetFlag()); err == nil && restore == "" {
		return fmt.Errorf("Managed etcd cluster membership was previously reset, please remove the cluster-reset flag and start k3s normally. "+
			"If you need to perform another cluster reset, you must first manually delete the file at %s", s.l.ResetFlag())
	}
	if err := s.loadMemberName(); err != nil {
		return err
	}
	if restore != "" {
		if err := s.restoreSnapshot(restore); err != nil {
			return err
		}
	}
	if err := os.WriteFile(s.l.ResetFlag(), nil, 0o600); err != nil {
		return err
	}
	logrus.Info("Starting etcd for new cluster, cluster-reset=true")
	member, err := etcd.Start(ctx, etcd.Config{Name: s.memberName, DataDir: s.l.EtcdDir(), AdvertiseIP: s.cfg.NodeIP,
		LoopbackIP: s.cfg.LoopbackIP(), TLS: s.etcdTLS(), ForceNewCluster: true})
	if err != nil {
		return err
	}
	defer member.Close()
	client, err := etcd.Client(s.etcdTLS(), etcd.ClientURL(s.cfg.LoopbackIP()))
	if err != nil {
		return err
	}
	defer client.Close()
	s.etcdClient = client
	if s.password != "" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		data, ok, err := bootstrap.Load(cctx, etcdKV{client}, s.password)
		if err != nil {
			return err
		}
		if ok {
			backup := s.l.Server(fmt.Sprintf("tls-%d", time.Now().Unix()))
			logrus.Infof("Cluster reset: backing up certificates directory to %s", backup)
			if err := copyDir(s.l.TLS(), backup); err != nil {
				return err
			}
			if err := bootstrap.Reconcile(s.bootstrapPaths(), data, true, logInfo); err != nil {
				return err
			}
		}
	}
	members, err := client.MemberList(ctx)
	if err != nil {
		return err
	}
	if len(members.Members) != 1 {
		return fmt.Errorf("cluster reset left %d members", len(members.Members))
	}
	logrus.Info(ResetMessage)
	return nil
}

func (s *Server) restoreSnapshot(path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("etcd: snapshot path does not exist: %s", path)
	} else if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("etcd: snapshot path must be a file, not a directory: %s", path)
	}
	if strings.HasSuffix(path, snapshot.CompressedExtension) {
		if path, err = snapshot.Decompress(path); err != nil {
			return err
		}
	}
	old := s.l.DB(fmt.Sprintf("etcd-old-%d", time.Now().Unix()))
	if err := os.Rename(s.l.EtcdDir(), old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	logrus.Infof("Pre-restore etcd database moved to %s", old)
	// k3s gives the member a new name on restore (setName(true)).
	name, err := s.freshMemberName()
	if err != nil {
		return err
	}
	peer := etcd.PeerURL(s.cfg.NodeIP)
	if err := etcdsnapshot.NewV3(zap.NewNop()).Restore(etcdsnapshot.RestoreConfig{
		SnapshotPath: path, Name: name, OutputDataDir: s.l.EtcdDir(),
		PeerURLs: []string{peer}, InitialCluster: name + "=" + peer, InitialClusterToken: "etcd-cluster",
	}); err != nil {
		return fmt.Errorf("etcd: failed to restore snapshot %s: %w", path, err)
	}
	s.memberName = name
	return pki.WriteFile(s.l.EtcdName(), []byte(name), 0o600)
}
