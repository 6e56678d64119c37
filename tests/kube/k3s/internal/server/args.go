package server

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"opsbook/tests/kube/k3s/internal/etcd"
)

// mergeArgs renders defaults plus --<component>-arg values as sorted --key=value args:
// `key=value` replaces a default, `key+=value` appends to it with a comma, `key-=value`
// prepends (k3s: pkg/util/args.go GetArgs).
func mergeArgs(defaults map[string]string, extra []string) []string {
	args := map[string]string{}
	for k, v := range defaults {
		args[k] = v
	}
	for _, e := range extra {
		e = strings.TrimPrefix(e, "--")
		k, v, _ := strings.Cut(e, "=")
		switch {
		case strings.HasSuffix(k, "+"):
			k = strings.TrimSuffix(k, "+")
			if old, ok := args[k]; ok && old != "" {
				v = old + "," + v
			}
		case strings.HasSuffix(k, "-"):
			k = strings.TrimSuffix(k, "-")
			if old, ok := args[k]; ok && old != "" {
				v = v + "," + old
			}
		}
		args[k] = v
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("--%s=%s", k, args[k]))
	}
	return out
}

const apiserverPort = 6444

// apiserverArgs follows k3s's kube-apiserver defaults (k3s: pkg/daemons/control/server.go
// apiServer). Not passed: --egress-selector-config-file (there is no agent tunnel here).
func (s *Server) apiserverArgs() []string {
	l, c := s.l, s.cfg
	a := map[string]string{
		"advertise-address":                  c.AdvertiseIP,
		"allow-privileged":                   "true",
		"anonymous-auth":                     "false",
		"api-audiences":                      "https://kubernetes.default.svc." + c.ClusterDomain + ",k3s",
		"authorization-mode":                 "Node,RBAC",
		"bind-address":                       c.LoopbackIP(),
		"cert-dir":                           l.TLS("temporary-certs"),
		"client-ca-file":                     l.TLS("client-ca.crt"),
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "true",
		"etcd-cafile":                        l.TLS("etcd", "server-ca.crt"),
		"etcd-certfile":                      l.TLS("etcd", "client.crt"),
		"etcd-keyfile":                       l.TLS("etcd", "client.key"),
		"etcd-servers":                       etcd.ClientURL(c.LoopbackIP()),
		"kubelet-certificate-authority":      l.TLS("server-ca.crt"),
		"kubelet-client-certificate":         l.TLS("client-kube-apiserver.crt"),
		"kubelet-client-key":                 l.TLS("client-kube-apiserver.key"),
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"profiling":                          "false",
		"proxy-client-cert-file":             l.TLS("client-auth-proxy.crt"),
		"proxy-client-key-file":              l.TLS("client-auth-proxy.key"),
		"requestheader-allowed-names":        "system:auth-proxy",
		"requestheader-client-ca-file":       l.TLS("request-header-ca.crt"),
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"secure-port":                        fmt.Sprint(apiserverPort),
		"service-account-issuer":             "https://kubernetes.default.svc." + c.ClusterDomain,
		"service-account-key-file":           l.ServiceKey(),
		"service-account-signing-key-file":   l.TLS("service.current.key"),
		"service-cluster-ip-range":           c.ServiceIPRange,
		"service-node-port-range":            c.ServiceNodePortRange,
		"storage-backend":                    "etcd3",
		"tls-cert-file":                      l.TLS("serving-kube-apiserver.crt"),
		"tls-private-key-file":               l.TLS("serving-kube-apiserver.key"),
	}
	if s.encryptionConfigured() {
		a["encryption-provider-config"] = l.EncryptionConfig()
		a["encryption-provider-config-automatic-reload"] = "true"
	}
	if ip := net.ParseIP(c.AdvertiseIP); ip != nil && ip.IsLoopback() {
		// The test server on 127.0.0.x: the apiserver refuses loopback addresses in the
		// `kubernetes` Endpoints, so it keeps none (real k3s advertises the node IP).
		a["endpoint-reconciler-type"] = "none"
	}
	return mergeArgs(a, c.ExtraAPIArgs)
}

// controllerManagerArgs follows k3s's (k3s: pkg/daemons/control/server.go controllerManager).
func (s *Server) controllerManagerArgs() []string {
	l, c := s.l, s.cfg
	kc := l.Cred("controller.kubeconfig")
	a := map[string]string{
		"allocate-node-cidrs":       "true",
		"authentication-kubeconfig": kc,
		"authorization-kubeconfig":  kc,
		"kubeconfig":                kc,
		"bind-address":              c.LoopbackIP(),
		"cluster-cidr":              c.ClusterIPRange,
		"cluster-signing-kube-apiserver-client-cert-file": l.TLS("client-ca.crt"),
		"cluster-signing-kube-apiserver-client-key-file":  l.TLS("client-ca.key"),
		"cluster-signing-kubelet-client-cert-file":        l.TLS("client-ca.crt"),
		"cluster-signing-kubelet-client-key-file":         l.TLS("client-ca.key"),
		"cluster-signing-kubelet-serving-cert-file":       l.TLS("server-ca.crt"),
		"cluster-signing-kubelet-serving-key-file":        l.TLS("server-ca.key"),
		"cluster-signing-legacy-unknown-cert-file":        l.TLS("server-ca.crt"),
		"cluster-signing-legacy-unknown-key-file":         l.TLS("server-ca.key"),
		"configure-cloud-routes":                          "false",
		"controllers":                                     "*,tokencleaner,-service,-route,-cloud-node-lifecycle",
		"profiling":                                       "false",
		"root-ca-file":                                    l.TLS("server-ca.crt"),
		"secure-port":                                     "10257",
		"service-account-private-key-file":                l.TLS("service.current.key"),
		"service-cluster-ip-range":                        c.ServiceIPRange,
		"use-service-account-credentials":                 "true",
	}
	return mergeArgs(a, c.ExtraControllerArgs)
}

// schedulerArgs follows k3s's (k3s: pkg/daemons/control/server.go scheduler).
func (s *Server) schedulerArgs() []string {
	kc := s.l.Cred("scheduler.kubeconfig")
	a := map[string]string{
		"authentication-kubeconfig": kc,
		"authorization-kubeconfig":  kc,
		"kubeconfig":                kc,
		"bind-address":              s.cfg.LoopbackIP(),
		"profiling":                 "false",
		"secure-port":               "10259",
	}
	return mergeArgs(a, s.cfg.ExtraSchedulerArgs)
}
