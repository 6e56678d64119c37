package server

import (
	"os"
	"path/filepath"

	"opsbook/tests/kube/k3s/internal/pki"
)

// issueNodeCert signs a fresh system:node:<name> client certificate with the client CA and
// returns certificate, CA and key as one PEM bundle (the legacy GET form of k3s's
// /v1-k3s/client-kubelet.crt).
func (s *Server) issueNodeCert(name string) ([]byte, error) {
	ca, err := pki.LoadCA(s.l.ClientCA())
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "k3s-node-cert")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	leaf := pki.Leaf{CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key"),
		CN: "system:node:" + name, Orgs: []string{"system:nodes"}, Usage: pki.Client}
	if err := ca.Ensure(leaf); err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(leaf.CertPath)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(leaf.KeyPath)
	if err != nil {
		return nil, err
	}
	return append(cert, key...), nil
}
