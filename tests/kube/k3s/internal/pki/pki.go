// Package pki creates the certificate authorities and leaf certificates of a
// k3s server's data dir, as PEM files in k3s's layout (k3s: pkg/daemons/control/deps/deps.go
// genCerts, genClientCerts, genServerCerts, genETCDCerts; names under server/tls/).
//
// The CAs are shared by every server of a cluster through the bootstrap data; each
// server signs its own leaf certificates with them at start.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour // k3s CAs: 10 years
	leafValidity = 365 * 24 * time.Hour      // k3s leaf certificates: 1 year
)

// CA is a loaded certificate authority.
type CA struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertPath string
	KeyPath  string
}

// Usage says what a leaf certificate is for.
type Usage int

const (
	Client Usage = 1 << iota
	Server
)

// Leaf describes a certificate to issue.
type Leaf struct {
	CertPath string
	KeyPath  string
	CN       string
	Orgs     []string
	DNS      []string
	IPs      []net.IP
	Usage    Usage
}

// EnsureCA loads the CA at certPath/keyPath, or creates a self-signed one named cn.
func EnsureCA(certPath, keyPath, cn string) (*CA, error) {
	if exists(certPath) && exists(keyPath) {
		return LoadCA(certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", cn, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return nil, err
	}
	if err := WriteFile(certPath, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, err
	}
	return LoadCA(certPath, keyPath)
}

// LoadCA reads a CA certificate and its key.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cert, err := LoadCert(certPath)
	if err != nil {
		return nil, err
	}
	key, err := LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPath: certPath, KeyPath: keyPath}, nil
}

// Ensure issues the leaf unless a certificate signed by this CA with the same names, usage
// and at least 90 days of validity is already there (k3s regenerates changed leaf certs at start).
func (ca *CA) Ensure(l Leaf) error {
	if cert, err := LoadCert(l.CertPath); err == nil && exists(l.KeyPath) && ca.matches(cert, l) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.CN, Organization: l.Orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		DNSNames:     l.DNS,
		IPAddresses:  l.IPs,
	}
	if l.Usage&Client != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if l.Usage&Server != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return err
	}
	if err := writeKey(l.KeyPath, key); err != nil {
		return err
	}
	// k3s writes leaf certificates followed by the CA (a chain).
	chain := append(pemBlock("CERTIFICATE", der), pemBlock("CERTIFICATE", ca.Cert.Raw)...)
	return WriteFile(l.CertPath, chain, 0o644)
}

func (ca *CA) matches(cert *x509.Certificate, l Leaf) bool {
	if cert.CheckSignatureFrom(ca.Cert) != nil || time.Until(cert.NotAfter) < 90*24*time.Hour {
		return false
	}
	if cert.Subject.CommonName != l.CN || !sameStrings(cert.Subject.Organization, l.Orgs) {
		return false
	}
	if !sameStrings(cert.DNSNames, l.DNS) {
		return false
	}
	var have, want []string
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	for _, ip := range l.IPs {
		want = append(want, ip.String())
	}
	return sameStrings(have, want)
}

// ServiceAccountKey creates the RSA key that signs service account tokens unless it exists
// (k3s: server/tls/service.key).
func ServiceAccountKey(path string) error {
	if exists(path) {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	return WriteFile(path, pemBlock("RSA PRIVATE KEY", der), 0o600)
}

// LoadCert reads the first certificate of a PEM file.
func LoadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// LoadKey reads an EC, PKCS#1 or PKCS#8 private key.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: not a signing key", path)
		}
		return signer, nil
	}
	return nil, fmt.Errorf("%s: unsupported key type %s", path, block.Type)
}

// WriteFile writes atomically (temp file + rename) with the given mode, creating parents.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return WriteFile(path, pemBlock("EC PRIVATE KEY", der), 0o600)
}

func pemBlock(kind string, der []byte) []byte {
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: kind, Bytes: der})
	return buf.Bytes()
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Pool parses PEM certificates into a pool.
func Pool(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, errors.New("no certificates found")
	}
	return pool, nil
}
