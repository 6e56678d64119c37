// Package agent is `k3s agent` of the opsbook k3s test server: it joins a server with the
// token, gets a node client certificate from the supervisor, registers its Node and plays
// its kubelet with kwok (k3s: pkg/agent/run.go, pkg/agent/config/config.go). There is no
// kubelet, containerd, kube-proxy or flannel.
package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"opsbook/tests/kube/k3s/internal/client"
	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/kubelet"
	"opsbook/tests/kube/k3s/internal/nodes"
	"opsbook/tests/kube/k3s/internal/pki"
	"opsbook/tests/kube/k3s/internal/version"
)

// Config is what `k3s agent` needs.
type Config struct {
	ServerURL, Token, DataDir, NodeName, NodeIP string
	Args, Labels, Taints                        []string
	ProtectKernelDefaults                       bool
}

// passwordPath is /etc/rancher/node/password (k3s: pkg/agent/config); the test server keeps
// it under the data dir when that is not the default, so agents on one machine stay apart.
func passwordPath(dataDir string) string {
	if dataDir == datadir.Default {
		return "/etc/rancher/node/password"
	}
	return filepath.Join(dataDir, "etc", "rancher", "node", "password")
}

func nodePassword(path string) (string, error) {
	if data, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(data)) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(b)
	return pw, pki.WriteFile(path, []byte(pw+"\n"), 0o600)
}

// Run joins and keeps the node until ctx ends.
func Run(ctx context.Context, c Config, ready func()) error {
	logrus.Infof("Starting k3s agent %s", version.Version)
	logrus.Warn(version.Marker)
	if version.Broken() {
		return errors.New("this build of the opsbook k3s test server is made to fail at start (for upgrade tests)")
	}
	if c.ProtectKernelDefaults {
		if err := kubelet.CheckKernelDefaults("/proc/sys"); err != nil {
			return err
		}
	}
	if c.ServerURL == "" || c.Token == "" {
		return errors.New("--server and --token are required")
	}
	l := datadir.Layout{Root: c.DataDir}
	pw, err := nodePassword(passwordPath(c.DataDir))
	if err != nil {
		return err
	}
	var sc *client.Client
	for {
		sc, err = client.New(c.ServerURL, c.Token, "node", 10*time.Second)
		if err == nil {
			break
		}
		logrus.Infof("Waiting to retrieve agent configuration; server is not ready: %v", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	bundle, err := getCert(ctx, sc, c.NodeName, pw)
	if err != nil {
		return err
	}
	cert, key := splitPEM(bundle)
	if err := pki.WriteFile(l.Agent("client-kubelet.crt"), cert, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(l.Agent("client-kubelet.key"), key, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(l.Agent("server-ca.crt"), sc.CAPEM, 0o600); err != nil {
		return err
	}
	kc := l.Agent("kubelet.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.ServerURL, CertificateAuthority: l.Agent("server-ca.crt")}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificate: l.Agent("client-kubelet.crt"), ClientKey: l.Agent("client-kubelet.key")}
	cfg.Contexts["Default"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user"}
	cfg.CurrentContext = "Default"
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	spec := nodes.Spec{Name: c.NodeName, InternalIP: c.NodeIP, Version: version.Version, Args: c.Args, Labels: c.Labels, Taints: c.Taints}
	if err := nodes.Register(ctx, kube, spec); err != nil {
		return err
	}
	cidr, err := nodes.WaitPodCIDR(ctx, kube, c.NodeName)
	if err != nil {
		return err
	}
	if err := nodes.StartKwok(ctx, kc, c.NodeName, c.NodeIP, cidr); err != nil {
		return fmt.Errorf("kwok: %w", err)
	}
	logrus.Info("k3s agent is up and running")
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return nil
}

func getCert(ctx context.Context, sc *client.Client, name, pw string) ([]byte, error) {
	for {
		body, err := sc.DoWithHeaders(http.MethodGet, "/v1-k3s/client-kubelet.crt", map[string]string{
			"k3s-Node-Name": name, "k3s-Node-Password": pw,
		})
		if err == nil {
			return body, nil
		}
		logrus.Infof("Waiting to retrieve kubelet client certificate: %v", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

func splitPEM(bundle []byte) (certs, key []byte) {
	rest := bundle
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs, key
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			key = append(key, pem.EncodeToMemory(block)...)
		} else {
			certs = append(certs, pem.EncodeToMemory(block)...)
		}
	}
}
