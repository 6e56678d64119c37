// Package config holds the parsed `k3s server` and `k3s agent` settings and k3s's
// defaults (k3s: pkg/cli/cmds/server.go, pkg/daemons/config/types.go).
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/flags"
)

const (
	DefaultDataDir    = datadir.Default
	DefaultConfigFile = datadir.DefaultConfigFile
	// k3s's defaults (k3s: pkg/cli/server/server.go, pkg/daemons/config).
	DefaultClusterCIDR = "10.42.0.0/16"
	DefaultServiceCIDR = "10.43.0.0/16"
	DefaultClusterDNS  = "10.43.0.10"
)

// FlannelBackends k3s accepts (docs: networking/basic-network-options.md; ipsec and the
// old wireguard backend were removed in 1.27/1.26).
var FlannelBackends = []string{"none", "vxlan", "host-gw", "wireguard-native"}

// Critical are the values every server of a cluster must share, with the flag name k3s
// prints on a mismatch (k3s: pkg/daemons/config/types.go CriticalControlArgs, `cli` tags).
// The test server serves them on /v1-k3s/config and compares them when a server joins.
type Critical struct {
	ClusterDNS            string `json:"ClusterDNS" cli:"cluster-dns"`
	ClusterIPRange        string `json:"ClusterIPRange" cli:"cluster-cidr"`
	ClusterDomain         string `json:"ClusterDomain" cli:"cluster-domain"`
	DisableCCM            bool   `json:"DisableCCM" cli:"disable-cloud-controller"`
	DisableHelmController bool   `json:"DisableHelmController" cli:"disable-helm-controller"`
	DisableNPC            bool   `json:"DisableNPC" cli:"disable-network-policy"`
	DisableServiceLB      bool   `json:"DisableServiceLB" cli:"disable-service-lb"`
	EncryptSecrets        bool   `json:"EncryptSecrets" cli:"secrets-encryption"`
	EncryptProvider       string `json:"EncryptProvider" cli:"secrets-encryption-provider"`
	EmbeddedRegistry      bool   `json:"EmbeddedRegistry" cli:"embedded-registry"`
	FlannelBackend        string `json:"FlannelBackend" cli:"flannel-backend"`
	FlannelIPv6Masq       bool   `json:"FlannelIPv6Masq" cli:"flannel-ipv6-masq"`
	FlannelExternalIP     bool   `json:"FlannelExternalIP" cli:"flannel-external-ip"`
	EgressSelectorMode    string `json:"EgressSelectorMode" cli:"egress-selector-mode"`
	ServiceIPRange        string `json:"ServiceIPRange" cli:"service-cidr"`
	SupervisorMetrics     bool   `json:"SupervisorMetrics" cli:"supervisor-metrics"`
}

// Server is `k3s server` after flags, config file and environment.
type Server struct {
	Args []string // the arguments as parsed (config file ones included)

	DataDir        string
	NodeName       string
	NodeIP         string // first --node-ip, or the address of the default route's interface
	NodeExternalIP string
	BindAddress    string
	AdvertiseIP    string
	HTTPSPort      int
	TLSSANs        []string

	Token, TokenFile, AgentToken, AgentTokenFile string
	ServerURL                                    string
	ClusterInit, ClusterReset                    bool
	ClusterResetRestorePath                      string

	KubeconfigOutput, KubeconfigMode, KubeconfigGroup, KubeconfigName string

	Critical
	ServiceNodePortRange string
	FlannelIface         string
	Disables             []string

	DisableScheduler bool

	EtcdDisableSnapshots   bool
	EtcdSnapshotName       string
	EtcdSnapshotCron       string
	EtcdSnapshotRetention  int
	EtcdSnapshotDir        string
	EtcdSnapshotCompress   bool
	EtcdExposeMetrics      bool
	ExtraAPIArgs           []string
	ExtraControllerArgs    []string
	ExtraSchedulerArgs     []string
	EtcdArgs               []string
	NodeLabels, NodeTaints []string
	ProtectKernelDefaults  bool
	KubeletArgs            []string
	Debug                  bool
	LogFile                string
}

// FromServerFlags reads a parsed `k3s server` flag set.
func FromServerFlags(set *flags.Set, args []string) (*Server, error) {
	c := &Server{Args: args}
	c.DataDir = set.String("data-dir")
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.NodeName = strings.ToLower(set.String("node-name"))
	if c.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		c.NodeName = strings.ToLower(host)
	}
	if set.Bool("with-node-id") {
		return nil, fmt.Errorf("--with-node-id is not supported by the opsbook k3s test server")
	}
	ips := set.Strings("node-ip", true)
	if len(ips) > 0 {
		c.NodeIP = ips[0]
	} else {
		ip, err := defaultIP()
		if err != nil {
			return nil, err
		}
		c.NodeIP = ip
	}
	if ext := set.Strings("node-external-ip", true); len(ext) > 0 {
		c.NodeExternalIP = ext[0]
	}
	c.BindAddress = set.String("bind-address")
	c.AdvertiseIP = set.String("advertise-address")
	if c.AdvertiseIP == "" {
		c.AdvertiseIP = c.NodeIP
	}
	c.HTTPSPort = set.Int("https-listen-port")
	c.TLSSANs = set.Strings("tls-san", true)

	c.Token, c.TokenFile = set.String("token"), set.String("token-file")
	c.AgentToken, c.AgentTokenFile = set.String("agent-token"), set.String("agent-token-file")
	c.ServerURL = set.String("server")
	c.ClusterInit, c.ClusterReset = set.Bool("cluster-init"), set.Bool("cluster-reset")
	c.ClusterResetRestorePath = set.String("cluster-reset-restore-path")
	c.KubeconfigOutput = set.String("write-kubeconfig")
	c.KubeconfigMode = set.String("write-kubeconfig-mode")
	c.KubeconfigGroup = set.String("write-kubeconfig-group")
	c.KubeconfigName = set.String("write-kubeconfig-name")

	c.ClusterIPRange = first(set.Strings("cluster-cidr", true), DefaultClusterCIDR)
	c.ServiceIPRange = first(set.Strings("service-cidr", true), DefaultServiceCIDR)
	c.ClusterDNS = first(set.Strings("cluster-dns", true), DefaultClusterDNS)
	for _, cidr := range []string{c.ClusterIPRange, c.ServiceIPRange} {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return nil, fmt.Errorf("invalid CIDR %q: %w", cidr, err)
		}
	}
	c.ClusterDomain = set.String("cluster-domain")
	c.ServiceNodePortRange = set.String("service-node-port-range")
	c.FlannelBackend = set.String("flannel-backend")
	if !slices.Contains(FlannelBackends, c.FlannelBackend) {
		// k3s: pkg/agent/flannel/setup.go createFlannelConf rejects other backends.
		return nil, fmt.Errorf("invalid flannel backend: %s", c.FlannelBackend)
	}
	c.FlannelIPv6Masq = set.Bool("flannel-ipv6-masq")
	c.FlannelExternalIP = set.Bool("flannel-external-ip")
	c.FlannelIface = set.String("flannel-iface")
	c.EgressSelectorMode = set.String("egress-selector-mode")
	c.Disables = set.Strings("disable", true)
	c.DisableServiceLB = slices.Contains(c.Disables, "servicelb")
	c.DisableCCM = set.Bool("disable-cloud-controller")
	c.DisableHelmController = set.Bool("disable-helm-controller")
	c.DisableNPC = set.Bool("disable-network-policy")
	c.EmbeddedRegistry = set.Bool("embedded-registry")
	c.SupervisorMetrics = set.Bool("supervisor-metrics")
	c.EncryptSecrets = set.Bool("secrets-encryption")
	c.EncryptProvider = set.String("secrets-encryption-provider")
	if c.EncryptProvider != "aescbc" && c.EncryptProvider != "secretbox" {
		return nil, fmt.Errorf("unsupported secrets-encryption-provider %q (valid values: aescbc, secretbox)", c.EncryptProvider)
	}
	c.DisableScheduler = set.Bool("disable-scheduler")
	for _, unsupported := range []string{"disable-etcd", "disable-apiserver", "disable-controller-manager", "datastore-endpoint"} {
		if set.Changed(unsupported) && (set.String(unsupported) != "" && set.String(unsupported) != "false") {
			return nil, fmt.Errorf("--%s is not supported by the opsbook k3s test server (embedded etcd servers only)", unsupported)
		}
	}

	c.EtcdDisableSnapshots = set.Bool("etcd-disable-snapshots")
	c.EtcdSnapshotName = set.String("etcd-snapshot-name")
	c.EtcdSnapshotCron = set.String("etcd-snapshot-schedule-cron")
	c.EtcdSnapshotRetention = set.Int("etcd-snapshot-retention")
	c.EtcdSnapshotDir = set.String("etcd-snapshot-dir")
	c.EtcdSnapshotCompress = set.Bool("etcd-snapshot-compress")
	c.EtcdExposeMetrics = set.Bool("etcd-expose-metrics")
	c.ExtraAPIArgs = set.Strings("kube-apiserver-arg", false)
	c.ExtraControllerArgs = append(set.Strings("kube-controller-manager-arg", false), set.Strings("kube-controller-arg", false)...)
	c.ExtraSchedulerArgs = set.Strings("kube-scheduler-arg", false)
	c.EtcdArgs = set.Strings("etcd-arg", false)
	c.NodeLabels = set.Strings("node-label", false)
	c.NodeTaints = set.Strings("node-taint", false)
	c.ProtectKernelDefaults = set.Bool("protect-kernel-defaults")
	c.KubeletArgs = set.Strings("kubelet-arg", false)
	c.Debug = set.Bool("debug")
	c.LogFile = set.String("log")
	if c.ClusterResetRestorePath != "" && !c.ClusterReset {
		// k3s: pkg/cli/server/server.go
		return nil, fmt.Errorf("invalid flag use; --cluster-reset required with --cluster-reset-restore-path")
	}
	return c, nil
}

// LoopbackIP is where k3s listens on 127.0.0.1 (etcd client, kube-apiserver :6444, the
// controller-manager and scheduler). The test server uses the node IP instead when that is
// itself a loopback address (127.0.0.x), so that several single-server clusters can share
// one machine; real k3s always uses 127.0.0.1.
func (c *Server) LoopbackIP() string {
	if ip := net.ParseIP(c.NodeIP); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		return c.NodeIP
	}
	return "127.0.0.1"
}

// SupervisorHost is the address the supervisor binds: --bind-address, else every interface
// (k3s: pkg/cluster/https.go). A loopback node IP binds only that address (test server).
func (c *Server) SupervisorHost() string {
	if c.BindAddress != "" {
		return c.BindAddress
	}
	if c.LoopbackIP() != "127.0.0.1" {
		return c.LoopbackIP()
	}
	return ""
}

func first(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// defaultIP is the first global unicast IPv4 address of the host, as k3s's
// utilnet.ChooseHostInterface would pick on a one-interface host.
func defaultIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("unable to find an interface with a global unicast IPv4 address; set --node-ip")
}
