package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"opsbook/tests/kube/k3s/internal/bootstrap"
	"opsbook/tests/kube/k3s/internal/client"
)

// reconcileRestart brings the bootstrap files on disk in line with the datastore before an
// initialized member starts: from the join URL when one is set, else from a temporary etcd
// started on a copy of the data dir (k3s: pkg/cluster/bootstrap.go Bootstrap,
// reconcileEtcd, ReconcileBootstrapData).
func (s *Server) reconcileRestart(ctx context.Context) error {
	if s.password == "" {
		return errors.New("token is required: no --token and no server/token file")
	}
	if s.cfg.ServerURL != "" {
		err := s.reconcileFromURL()
		if err == nil {
			logrus.Info("Successfully reconciled with remote datastore")
			return nil
		}
		var newer *bootstrap.ErrNewerOnDisk
		if errors.As(err, &newer) {
			return err
		}
		logrus.Warnf("Unable to reconcile with remote datastore: %v", err)
	}
	if err := s.reconcileEtcd(ctx); err != nil {
		var newer *bootstrap.ErrNewerOnDisk
		if errors.As(err, &newer) {
			return err
		}
		return fmt.Errorf("Failed to reconcile with temporary etcd: %w", err)
	}
	return nil
}

func (s *Server) reconcileFromURL() error {
	c, err := client.New(s.cfg.ServerURL, s.cfg.Token, "server", 15*time.Second)
	if err != nil {
		return err
	}
	body, err := c.Get("/v1-k3s/server-bootstrap")
	if err != nil {
		return err
	}
	data, err := bootstrap.Unmarshal(body)
	if err != nil {
		return err
	}
	logrus.Info("Reconciling bootstrap data between datastore and disk")
	return bootstrap.Reconcile(s.bootstrapPaths(), data, false, logWarn)
}

// reconcileEtcd starts etcd on a copy of the data dir as a new one-member cluster on
// loopback ports 2399/2400, reads the bootstrap data and reconciles.
func (s *Server) reconcileEtcd(ctx context.Context) error {
	logrus.Info("Starting temporary etcd to reconcile with datastore")
	tmp := s.l.DB("etcd-tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyDir(s.l.EtcdDir(), tmp); err != nil {
		return err
	}
	lo := s.cfg.LoopbackIP()
	cfg := embed.NewConfig()
	cfg.Name = s.memberName
	cfg.Dir = tmp
	cfg.ForceNewCluster = true
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.MaxSnapFiles, cfg.MaxWalFiles = 0, 0
	mk := func(raw string) []url.URL { u, _ := url.Parse(raw); return []url.URL{*u} }
	cfg.ListenClientUrls = mk("http://" + lo + ":2399")
	cfg.AdvertiseClientUrls = mk("http://" + lo + ":2399")
	cfg.ListenPeerUrls = mk("http://" + lo + ":2400")
	cfg.AdvertisePeerUrls = mk("http://" + lo + ":2400")
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = s.memberName + "=http://" + lo + ":2400"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case <-time.After(60 * time.Second):
		return errors.New("temporary etcd did not become ready")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + lo + ":2399"}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	logrus.Info("etcd temporary data store connection OK")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	data, ok, err := bootstrap.Load(cctx, etcdKV{c}, s.password)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	logrus.Info("Reconciling bootstrap data between datastore and disk")
	return bootstrap.Reconcile(s.bootstrapPaths(), data, false, logWarn)
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
}
