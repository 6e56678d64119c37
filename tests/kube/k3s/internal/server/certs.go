package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"opsbook/tests/kube/k3s/internal/etcd"
	"opsbook/tests/kube/k3s/internal/pki"
)

// ensureCAs creates the cluster's CAs, service account key and IPsec key: only on the
// first server, the others take them from the bootstrap data
// (k3s: pkg/daemons/control/deps/deps.go genCerts, genServiceAccount, genEncryptedNetworkInfo).
func (s *Server) ensureCAs() error {
	l := s.l
	for _, ca := range []struct{ cert, key, cn string }{
		{l.TLS("server-ca.crt"), l.TLS("server-ca.key"), "k3s-server-ca"},
		{l.TLS("client-ca.crt"), l.TLS("client-ca.key"), "k3s-client-ca"},
		{l.TLS("request-header-ca.crt"), l.TLS("request-header-ca.key"), "k3s-request-header-ca"},
		{l.TLS("etcd", "server-ca.crt"), l.TLS("etcd", "server-ca.key"), "etcd-server-ca"},
		{l.TLS("etcd", "peer-ca.crt"), l.TLS("etcd", "peer-ca.key"), "etcd-peer-ca"},
	} {
		if _, err := pki.EnsureCA(ca.cert, ca.key, ca.cn); err != nil {
			return err
		}
	}
	if err := pki.ServiceAccountKey(l.ServiceKey()); err != nil {
		return err
	}
	if _, err := os.Stat(l.IPSECKey()); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 48)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		return pki.WriteFile(l.IPSECKey(), []byte(hex.EncodeToString(b)+"\n"), 0o600)
	}
	return nil
}

func (s *Server) sans() ([]string, []net.IP) {
	c := s.cfg
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + c.ClusterDomain, "localhost", c.NodeName}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	add := func(v string) {
		if v == "" {
			return
		}
		if ip := net.ParseIP(v); ip != nil {
			for _, have := range ips {
				if have.Equal(ip) {
					return
				}
			}
			ips = append(ips, ip)
			return
		}
		for _, have := range dns {
			if have == v {
				return
			}
		}
		dns = append(dns, v)
	}
	add(c.LoopbackIP())
	add(c.NodeIP)
	add(c.AdvertiseIP)
	add(c.NodeExternalIP)
	add(c.BindAddress)
	if _, svc, err := net.ParseCIDR(c.ServiceIPRange); err == nil {
		first := make(net.IP, len(svc.IP))
		copy(first, svc.IP)
		first[len(first)-1]++
		add(first.String())
	}
	for _, san := range c.TLSSANs {
		add(san)
	}
	return dns, ips
}

// genServerDeps issues this server's leaf certificates from the CAs and writes the
// component kubeconfigs (k3s: pkg/daemons/control/deps/deps.go genClientCerts,
// genServerCerts, genETCDCerts; cred/*.kubeconfig).
func (s *Server) genServerDeps() error {
	l := s.l
	load := func(cert, key string) (*pki.CA, error) { return pki.LoadCA(cert, key) }
	clientCA, err := load(l.ClientCA())
	if err != nil {
		return err
	}
	serverCA, err := load(l.ServerCA())
	if err != nil {
		return err
	}
	requestCA, err := load(l.RequestHeaderCA())
	if err != nil {
		return err
	}
	etcdCA, err := load(l.EtcdServerCA())
	if err != nil {
		return err
	}
	peerCA, err := load(l.EtcdPeerCA())
	if err != nil {
		return err
	}
	client := func(ca *pki.CA, name, cn string, orgs ...string) error {
		return ca.Ensure(pki.Leaf{CertPath: l.TLS(name + ".crt"), KeyPath: l.TLS(name + ".key"), CN: cn, Orgs: orgs, Usage: pki.Client})
	}
	for _, c := range []struct {
		ca       *pki.CA
		name, cn string
		orgs     []string
	}{
		{clientCA, "client-admin", "system:admin", []string{"system:masters"}},
		{clientCA, "client-supervisor", "system:k3s-supervisor", []string{"system:masters"}},
		{clientCA, "client-controller", "system:kube-controller-manager", nil},
		{clientCA, "client-scheduler", "system:kube-scheduler", nil},
		{clientCA, "client-kube-apiserver", "system:apiserver", []string{"system:masters"}},
		{clientCA, "client-kube-proxy", "system:kube-proxy", nil},
		{clientCA, "client-k3s-controller", "system:k3s-controller", nil},
		{requestCA, "client-auth-proxy", "system:auth-proxy", nil},
	} {
		if err := client(c.ca, c.name, c.cn, c.orgs...); err != nil {
			return err
		}
	}
	dns, ips := s.sans()
	// The supervisor on :6443 serves this certificate too (k3s generates its own
	// dynamiclistener certificate, also signed by the server CA: tls/dynamic-cert.json).
	if err := serverCA.Ensure(pki.Leaf{CertPath: l.TLS("serving-kube-apiserver.crt"), KeyPath: l.TLS("serving-kube-apiserver.key"),
		CN: "kube-apiserver", DNS: dns, IPs: ips, Usage: pki.Server}); err != nil {
		return err
	}
	if err := copyFile(l.ServiceKey(), l.TLS("service.current.key")); err != nil {
		return err
	}
	etcdDNS := []string{"localhost", s.cfg.NodeName}
	etcdIPs := []net.IP{net.ParseIP("127.0.0.1")}
	for _, v := range []string{s.cfg.LoopbackIP(), s.cfg.NodeIP} {
		if ip := net.ParseIP(v); ip != nil && !ip.Equal(etcdIPs[0]) {
			etcdIPs = append(etcdIPs, ip)
		}
	}
	for _, e := range []struct {
		ca       *pki.CA
		name, cn string
		usage    pki.Usage
	}{
		{etcdCA, "client", "etcd-client", pki.Client},
		{etcdCA, "server-client", "etcd-server", pki.Client | pki.Server},
		{peerCA, "peer-server-client", "etcd-peer", pki.Client | pki.Server},
	} {
		leaf := pki.Leaf{CertPath: l.TLS("etcd", e.name+".crt"), KeyPath: l.TLS("etcd", e.name+".key"), CN: e.cn, Usage: e.usage}
		if e.usage&pki.Server != 0 {
			leaf.DNS, leaf.IPs = etcdDNS, etcdIPs
		}
		if err := e.ca.Ensure(leaf); err != nil {
			return err
		}
	}
	for name, cert := range map[string]string{
		"admin": "client-admin", "supervisor": "client-supervisor", "controller": "client-controller",
		"scheduler": "client-scheduler", "api-server": "client-kube-apiserver", "k3s-controller": "client-k3s-controller",
	} {
		if err := s.writeLocalKubeconfig(l.Cred(name+".kubeconfig"), cert); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) etcdTLS() etcd.TLS {
	l := s.l
	return etcd.TLS{
		ServerCA: l.TLS("etcd", "server-ca.crt"), ServerCert: l.TLS("etcd", "server-client.crt"), ServerKey: l.TLS("etcd", "server-client.key"),
		PeerCA: l.TLS("etcd", "peer-ca.crt"), PeerCert: l.TLS("etcd", "peer-server-client.crt"), PeerKey: l.TLS("etcd", "peer-server-client.key"),
		ClientCert: l.TLS("etcd", "client.crt"), ClientKey: l.TLS("etcd", "client.key"),
	}
}

// apiserverURL is the kube-apiserver's own port, where the cred/ kubeconfigs point.
func (s *Server) apiserverURL() string {
	return "https://" + net.JoinHostPort(s.cfg.LoopbackIP(), "6444")
}

// writeLocalKubeconfig writes a cred/ kubeconfig: file paths, cluster `local`, context
// `Default`, user `user`, server https://127.0.0.1:6444 (k3s: pkg/util KubeConfig).
func (s *Server) writeLocalKubeconfig(path, cert string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: s.apiserverURL(), CertificateAuthority: s.l.TLS("server-ca.crt")}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificate: s.l.TLS(cert + ".crt"), ClientKey: s.l.TLS(cert + ".key")}
	cfg.Contexts["Default"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user", Namespace: "default"}
	cfg.CurrentContext = "Default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return pki.WriteFile(path, data, 0o600)
}

// AdminKubeconfig is the content of /etc/rancher/k3s/k3s.yaml: certificates embedded,
// cluster, user and context all named `default` (--write-kubeconfig-name), server
// https://127.0.0.1:6443 (k3s: pkg/server/server.go writeKubeConfig).
func (s *Server) adminKubeconfig() ([]byte, error) {
	read := func(p string) ([]byte, error) { return os.ReadFile(p) }
	ca, err := read(s.l.TLS("server-ca.crt"))
	if err != nil {
		return nil, err
	}
	cert, err := read(s.l.TLS("client-admin.crt"))
	if err != nil {
		return nil, err
	}
	key, err := read(s.l.TLS("client-admin.key"))
	if err != nil {
		return nil, err
	}
	name := s.cfg.KubeconfigName
	host := s.cfg.LoopbackIP()
	if s.cfg.BindAddress != "" && s.cfg.BindAddress != "0.0.0.0" && s.cfg.BindAddress != "::" {
		host = s.cfg.BindAddress
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: "https://" + net.JoinHostPort(host, strconv.Itoa(s.cfg.HTTPSPort)), CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && string(old) == string(data) {
		return nil
	}
	return pki.WriteFile(dst, data, 0o600)
}
