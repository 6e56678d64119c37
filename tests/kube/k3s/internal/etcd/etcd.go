// Package etcd runs the embedded etcd member of a k3s server (k3s: pkg/etcd/etcd.go,
// pkg/executor/etcd.go) with go.etcd.io/etcd/server/v3/embed, the library k3s embeds.
package etcd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Ports k3s uses (k3s: pkg/etcd/etcd.go; docs: installation/requirements.md).
const (
	ClientPort  = 2379
	PeerPort    = 2380
	MetricsPort = 2381
)

// TLS is the etcd part of server/tls/etcd/ (k3s: pkg/daemons/control/deps/deps.go genETCDCerts).
type TLS struct {
	ServerCA, ServerCert, ServerKey string // server-ca.crt, server-client.crt, server-client.key
	PeerCA, PeerCert, PeerKey       string // peer-ca.crt, peer-server-client.crt, peer-server-client.key
	ClientCert, ClientKey           string // client.crt, client.key (the apiserver's and k3s's client)
}

// Config says how to start this member.
type Config struct {
	Name        string
	DataDir     string // server/db/etcd
	AdvertiseIP string // the node IP
	// LoopbackIP is where k3s listens on 127.0.0.1; the test server may use another 127.0.0.x
	// so that several servers share one machine.
	LoopbackIP string
	// InitialCluster is "name=peerURL,..." and State "new" or "existing"; ignored when the
	// data dir already holds a member.
	InitialCluster  string
	State           string
	ForceNewCluster bool
	TLS             TLS
	ExposeMetrics   bool
}

// IsInitialized reports whether the data dir holds a member: k3s's test is that
// db/etcd/member/wal exists (k3s: pkg/etcd/etcd.go IsInitialized).
func IsInitialized(dataDir string) bool {
	info, err := os.Stat(filepath.Join(dataDir, "member", "wal"))
	return err == nil && info.IsDir()
}

// PeerURL and ClientURL of a node address.
func PeerURL(ip string) string {
	return (&url.URL{Scheme: "https", Host: hostPort(ip, PeerPort)}).String()
}
func ClientURL(ip string) string {
	return (&url.URL{Scheme: "https", Host: hostPort(ip, ClientPort)}).String()
}

func hostPort(ip string, port int) string {
	if len(ip) > 0 && ip[0] != '[' && containsColon(ip) {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

func containsColon(s string) bool {
	for _, c := range s {
		if c == ':' {
			return true
		}
	}
	return false
}

// Member is a running embedded etcd.
type Member struct {
	Etcd *embed.Etcd
}

// Start starts the member and waits until it is ready to serve (or ctx ends). k3s sets
// heartbeat 500 ms and election timeout 5000 ms (k3s: pkg/etcd/etcd.go cluster config).
func Start(ctx context.Context, c Config) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.DataDir
	cfg.TickMs = 500
	cfg.ElectionMs = 5000
	cfg.SnapshotCount = 10000
	cfg.QuotaBackendBytes = 2 * 1024 * 1024 * 1024
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	cfg.LogLevel = "warn"
	cfg.Logger = "zap"
	cfg.ForceNewCluster = c.ForceNewCluster
	cfg.MaxLearners = 1
	mustURLs := func(raw ...string) []url.URL {
		var out []url.URL
		for _, r := range raw {
			u, err := url.Parse(r)
			if err != nil {
				panic(err)
			}
			out = append(out, *u)
		}
		return out
	}
	clientURLs := []string{ClientURL(c.LoopbackIP)}
	if c.AdvertiseIP != c.LoopbackIP {
		clientURLs = append(clientURLs, ClientURL(c.AdvertiseIP))
	}
	cfg.ListenClientUrls = mustURLs(clientURLs...)
	cfg.AdvertiseClientUrls = mustURLs(ClientURL(c.AdvertiseIP))
	cfg.ListenPeerUrls = mustURLs(PeerURL(c.AdvertiseIP))
	cfg.AdvertisePeerUrls = mustURLs(PeerURL(c.AdvertiseIP))
	metrics := []string{"http://" + hostPort(c.LoopbackIP, MetricsPort)}
	if c.ExposeMetrics {
		metrics = append(metrics, "http://"+hostPort(c.AdvertiseIP, MetricsPort))
	}
	cfg.ListenMetricsUrls = mustURLs(metrics...)
	if c.InitialCluster != "" {
		cfg.InitialCluster = c.InitialCluster
	} else {
		cfg.InitialCluster = c.Name + "=" + PeerURL(c.AdvertiseIP)
	}
	if c.State != "" {
		cfg.ClusterState = c.State
	}
	cfg.InitialClusterToken = "etcd-cluster"
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile: c.TLS.ServerCert, KeyFile: c.TLS.ServerKey,
		TrustedCAFile: c.TLS.ServerCA, ClientCertAuth: true,
	}
	cfg.PeerTLSInfo = transport.TLSInfo{
		CertFile: c.TLS.PeerCert, KeyFile: c.TLS.PeerKey,
		TrustedCAFile: c.TLS.PeerCA, ClientCertAuth: true,
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if os.Getenv("K3S_TEST_ETCD_LOG") != "" {
		cfg.ZapLoggerBuilder = nil
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Member{Etcd: e}, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

// Close stops the member.
func (m *Member) Close() { m.Etcd.Close() }

// Client opens a client to the given endpoints with k3s's etcd client certificate.
func Client(t TLS, endpoints ...string) (*clientv3.Client, error) {
	info := transport.TLSInfo{CertFile: t.ClientCert, KeyFile: t.ClientKey, TrustedCAFile: t.ServerCA}
	tlsConfig, err := info.ClientConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsConfig,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

type memberT = etcdserverpb.Member

// ClientTLS is the client-side TLS config of the TLS files.
func ClientTLS(t TLS) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: t.ClientCert, KeyFile: t.ClientKey, TrustedCAFile: t.ServerCA}
	return info.ClientConfig()
}
