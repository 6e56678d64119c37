// Package supervisor is the HTTPS listener k3s runs on :6443 in front of the
// kube-apiserver: a few paths of its own (/cacerts, /ping, /v1-k3s/..., /db/...), each
// with the roles it requires, and the in-process kube-apiserver handler for every other
// path (k3s: pkg/cluster/https.go, pkg/server/handlers/router.go, pkg/server/auth/auth.go,
// pkg/etcd/etcd.go handler).
package supervisor

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"opsbook/tests/kube/k3s/internal/passwd"
)

// Identity is an authenticated caller.
type Identity struct {
	User   string
	Groups []string
}

// Authenticator checks basic auth against the passwd file and client certificates against
// the client CA (CN = user, O = groups), as k3s's supervisor authenticator does
// (k3s: pkg/authenticator/authenticator.go FromArgs with --basic-auth-file and --client-ca-file).
type Authenticator struct {
	PasswdPath string
	ClientCA   *x509.CertPool
}

func (a *Authenticator) authenticate(r *http.Request) (*Identity, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		f, err := passwd.Read(a.PasswdPath)
		if err != nil {
			return nil, err
		}
		groups, ok := f.Authenticate(user, pass)
		if !ok {
			return nil, errors.New("invalid basic auth credentials")
		}
		return &Identity{User: user, Groups: groups}, nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && a.ClientCA != nil {
		cert := r.TLS.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: a.ClientCA, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			return &Identity{User: cert.Subject.CommonName, Groups: cert.Subject.Organization}, nil
		}
	}
	return nil, nil
}

// Route says who may call a path.
type Route struct {
	Path    string
	Methods []string // empty: any
	// Roles: at least one group must match; empty means no authentication.
	Roles []string
	// LocalOK: callers from a loopback address need no authentication (k3s /db/info:
	// auth.IsLocalOrHasRole).
	LocalOK bool
	Handler http.HandlerFunc
}

// Router is the supervisor's handler.
type Router struct {
	auth      *Authenticator
	routes    map[string]Route
	apiserver atomic.Pointer[http.Handler]
}

// NewRouter builds a router with k3s's unauthenticated /ping.
func NewRouter(auth *Authenticator) *Router {
	r := &Router{auth: auth, routes: map[string]Route{}}
	r.Handle(Route{Path: "/ping", Handler: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("pong"))
	}})
	return r
}

// Handle adds a route.
func (r *Router) Handle(route Route) { r.routes[route.Path] = route }

// SetAPIServer installs the kube-apiserver handler for all other paths.
func (r *Router) SetAPIServer(h http.Handler) { r.apiserver.Store(&h) }

func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	route, ok := r.routes[req.URL.Path]
	if !ok {
		h := r.apiserver.Load()
		if h == nil {
			SendError(w, req, http.StatusServiceUnavailable, errors.New("apiserver not ready"))
			return
		}
		(*h).ServeHTTP(w, req)
		return
	}
	if len(route.Methods) > 0 && !slices.Contains(route.Methods, req.Method) {
		SendError(w, req, http.StatusMethodNotAllowed, errors.New("method not allowed"))
		return
	}
	if len(route.Roles) > 0 && !(route.LocalOK && isLocal(req)) {
		id, err := r.auth.authenticate(req)
		if err != nil {
			SendError(w, req, http.StatusUnauthorized, errors.New("not authorized"))
			return
		}
		if id == nil || !hasRole(id, route.Roles) {
			SendError(w, req, http.StatusForbidden, errors.New("forbidden"))
			return
		}
	}
	route.Handler(w, req)
}

func hasRole(id *Identity, roles []string) bool {
	for _, g := range id.Groups {
		if slices.Contains(roles, g) {
			return true
		}
	}
	return false
}

func isLocal(req *http.Request) bool {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// status is the metav1.Status body k3s sends with every error (k3s: pkg/util/apierrors.go).
type status struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	Reason     string `json:"reason,omitempty"`
	Code       int    `json:"code"`
}

var reasons = map[int]string{
	400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
	405: "MethodNotAllowed", 500: "InternalError", 503: "ServiceUnavailable",
}

// SendError answers with a Status body and Connection: close, and logs it as k3s does.
func SendError(w http.ResponseWriter, req *http.Request, code int, err error) {
	if code != http.StatusServiceUnavailable {
		logrus.Debugf("Sending %s %d response to %s: %v", req.Proto, code, req.RemoteAddr, err)
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status{Kind: "Status", APIVersion: "v1", Status: "Failure",
		Message: err.Error(), Reason: reasons[code], Code: code})
}

// SendErrorWithID logs "<component> error ID NNNNN: <err>" and sends only
// "<component> error ID NNNNN" (k3s: pkg/util SendErrorWithID).
func SendErrorWithID(w http.ResponseWriter, req *http.Request, component string, code int, err error) {
	n, _ := rand.Int(rand.Reader, big.NewInt(99999))
	id := fmt.Sprintf("%s error ID %05d", component, n.Int64())
	logrus.Errorf("%s: %v", id, err)
	SendError(w, req, code, errors.New(id))
}

// WriteJSON answers 200 with a JSON body.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on addr with the serving certificate, requesting (not requiring) client
// certificates, until ctx ends (k3s: pkg/cluster/https.go, tls.RequestClientCert).
func Serve(ctx context.Context, addr, certFile, keyFile string, handler http.Handler) (net.Listener, <-chan error, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequestClientCert,
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS12,
		},
		ErrorLog: nil,
	}
	done := make(chan error, 1)
	go func() {
		err := srv.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln, done, nil
}

// Host returns the host part of a request's remote address.
func Host(req *http.Request) string {
	host, _, _ := net.SplitHostPort(req.RemoteAddr)
	return strings.Trim(host, "[]")
}
