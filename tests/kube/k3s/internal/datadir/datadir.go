// Package datadir names the files of a k3s data dir (k3s: pkg/daemons/control/deps/deps.go
// CreateRuntimeCertFiles; docs: cli/server.md, cli/etcd-snapshot.md).
package datadir

import "path/filepath"

// Default is k3s's data dir when run as root (k3s: pkg/datadir/datadir.go DefaultDataDir).
const Default = "/var/lib/rancher/k3s"

// GlobalKubeconfig is where a root k3s writes its admin kubeconfig (k3s: pkg/datadir GlobalConfig).
const GlobalKubeconfig = "/etc/rancher/k3s/k3s.yaml"

// DefaultConfigFile is the config file k3s reads (k3s: pkg/configfilearg/defaultparser.go).
const DefaultConfigFile = "/etc/rancher/k3s/config.yaml"

// Layout resolves paths under one data dir.
type Layout struct{ Root string }

func (l Layout) Server(p ...string) string {
	return filepath.Join(append([]string{l.Root, "server"}, p...)...)
}
func (l Layout) TLS(p ...string) string  { return l.Server(append([]string{"tls"}, p...)...) }
func (l Layout) Cred(p ...string) string { return l.Server(append([]string{"cred"}, p...)...) }

func (l Layout) Token() string            { return l.Server("token") }
func (l Layout) NodeToken() string        { return l.Server("node-token") }
func (l Layout) AgentToken() string       { return l.Server("agent-token") }
func (l Layout) Passwd() string           { return l.Cred("passwd") }
func (l Layout) IPSECKey() string         { return l.Cred("ipsec.psk") }
func (l Layout) EncryptionConfig() string { return l.Cred("encryption-config.json") }
func (l Layout) EncryptionState() string  { return l.Cred("encryption-state.json") }
func (l Layout) DB(p ...string) string    { return l.Server(append([]string{"db"}, p...)...) }
func (l Layout) EtcdDir() string          { return l.DB("etcd") }
func (l Layout) EtcdName() string         { return l.DB("etcd", "name") }
func (l Layout) ResetFlag() string        { return l.DB("reset-flag") }
func (l Layout) Snapshots() string        { return l.DB("snapshots") }
func (l Layout) Manifests(p ...string) string {
	return l.Server(append([]string{"manifests"}, p...)...)
}

// CA file pairs shared through the bootstrap data.
func (l Layout) ServerCA() (string, string) { return l.TLS("server-ca.crt"), l.TLS("server-ca.key") }
func (l Layout) ClientCA() (string, string) { return l.TLS("client-ca.crt"), l.TLS("client-ca.key") }
func (l Layout) RequestHeaderCA() (string, string) {
	return l.TLS("request-header-ca.crt"), l.TLS("request-header-ca.key")
}
func (l Layout) EtcdServerCA() (string, string) {
	return l.TLS("etcd", "server-ca.crt"), l.TLS("etcd", "server-ca.key")
}
func (l Layout) EtcdPeerCA() (string, string) {
	return l.TLS("etcd", "peer-ca.crt"), l.TLS("etcd", "peer-ca.key")
}
func (l Layout) ServiceKey() string { return l.TLS("service.key") }

// Agent-side paths (k3s: pkg/agent/config, data-dir/agent/).
func (l Layout) Agent(p ...string) string {
	return filepath.Join(append([]string{l.Root, "agent"}, p...)...)
}
