package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"opsbook/tests/kube/k3s/internal/bootstrap"
	"opsbook/tests/kube/k3s/internal/passwd"
	"opsbook/tests/kube/k3s/internal/pki"
	"opsbook/tests/kube/k3s/internal/secretsencrypt"
	"opsbook/tests/kube/k3s/internal/snapshot"
	sup "opsbook/tests/kube/k3s/internal/supervisor"
	"opsbook/tests/kube/k3s/internal/token"
)

var (
	serverRole = []string{passwd.ServerGroup}
	// agentRoles may read the node-facing endpoints (k3s: pkg/server/handlers/router.go).
	agentRoles = []string{passwd.AgentGroup, "system:nodes", "system:bootstrappers"}
)

// routes installs the supervisor's own paths (k3s: pkg/server/handlers/router.go,
// pkg/etcd/etcd.go handler, pkg/cluster/bootstrap.go serveBootstrap).
func (s *Server) routes() {
	r := s.router
	r.Handle(sup.Route{Path: "/cacerts", Handler: s.serveFile(s.l.TLS("server-ca.crt"))})
	r.Handle(sup.Route{Path: "/v1-k3s/server-ca.crt", Roles: agentRoles, Handler: s.serveFile(s.l.TLS("server-ca.crt"))})
	r.Handle(sup.Route{Path: "/v1-k3s/client-ca.crt", Roles: agentRoles, Handler: s.serveFile(s.l.TLS("client-ca.crt"))})
	r.Handle(sup.Route{Path: "/v1-k3s/server-bootstrap", Roles: serverRole, Handler: s.serveBootstrap})
	r.Handle(sup.Route{Path: "/v1-k3s/config", Methods: []string{http.MethodGet}, Roles: agentRoles, Handler: s.serveConfig})
	r.Handle(sup.Route{Path: "/v1-k3s/readyz", Methods: []string{http.MethodGet}, Roles: agentRoles, Handler: s.serveReadyz})
	r.Handle(sup.Route{Path: "/v1-k3s/client-kubelet.crt", Roles: agentRoles, Handler: s.serveKubeletCert})
	r.Handle(sup.Route{Path: "/db/info", Methods: []string{http.MethodGet}, Roles: serverRole, LocalOK: true, Handler: s.serveDBInfo})
	r.Handle(sup.Route{Path: "/db/snapshot", Roles: serverRole, Handler: s.serveSnapshot})
	r.Handle(sup.Route{Path: "/v1-k3s/encrypt/status", Roles: serverRole, Handler: s.serveEncryptStatus})
	r.Handle(sup.Route{Path: "/v1-k3s/encrypt/config", Methods: []string{http.MethodPut}, Roles: serverRole, Handler: s.serveEncryptConfig})
	r.Handle(sup.Route{Path: "/v1-k3s/token", Methods: []string{http.MethodPut}, Roles: serverRole, Handler: s.serveToken})
}

func (s *Server) serveFile(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		data, err := os.ReadFile(path)
		if err != nil {
			sup.SendError(w, req, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(data)
	}
}

// serveBootstrap answers with the decrypted bootstrap data for the caller's password, from
// the datastore, else from disk.
func (s *Server) serveBootstrap(w http.ResponseWriter, req *http.Request) {
	_, pw, _ := req.BasicAuth()
	var data bootstrap.Data
	var err error
	if s.etcdClient != nil {
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		var ok bool
		data, ok, err = bootstrap.Load(ctx, etcdKV{s.etcdClient}, pw)
		cancel()
		if err == nil && !ok {
			err = errors.New("no bootstrap data in the datastore")
		}
	} else {
		err = errors.New("etcd not started")
	}
	if err != nil {
		logrus.Infof("Failed to retrieve HTTP bootstrap data from datastore; falling back to disk for %s: %v", req.RemoteAddr, err)
		if data, err = bootstrap.ReadFromDisk(s.bootstrapPaths()); err != nil {
			sup.SendError(w, req, http.StatusInternalServerError, err)
			return
		}
	} else {
		logrus.Infof("Serving HTTP bootstrap from datastore for %s", req.RemoteAddr)
	}
	sup.WriteJSON(w, data)
}

// serveConfig is /v1-k3s/config: the server's critical values (k3s serves its whole
// config.Control struct; the test server only the CriticalControlArgs, as strings).
func (s *Server) serveConfig(w http.ResponseWriter, _ *http.Request) {
	sup.WriteJSON(w, s.cfg.Critical)
}

func (s *Server) serveReadyz(w http.ResponseWriter, req *http.Request) {
	if s.kube == nil {
		sup.SendError(w, req, http.StatusServiceUnavailable, errors.New("runtime core not ready"))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) serveDBInfo(w http.ResponseWriter, req *http.Request) {
	if s.etcdClient == nil {
		sup.SendError(w, req, http.StatusServiceUnavailable, errors.New("etcd not ready"))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	list, err := s.etcdClient.MemberList(ctx)
	if err != nil {
		sup.SendError(w, req, http.StatusInternalServerError, fmt.Errorf("failed to get etcd MemberList: %v", err))
		return
	}
	sup.WriteJSON(w, map[string]any{"members": list.Members})
}

func (s *Server) serveEncryptStatus(w http.ResponseWriter, req *http.Request) {
	if s.encrypt == nil {
		sup.SendError(w, req, http.StatusServiceUnavailable, errors.New("runtime core not ready"))
		return
	}
	st, err := s.encrypt.Status(req.Context())
	if err != nil {
		sup.SendErrorWithID(w, req, "secret-encrypt", http.StatusInternalServerError, err)
		return
	}
	sup.WriteJSON(w, st)
}

func (s *Server) serveEncryptConfig(w http.ResponseWriter, req *http.Request) {
	if s.encrypt == nil {
		sup.SendError(w, req, http.StatusServiceUnavailable, errors.New("runtime core not ready"))
		return
	}
	var body secretsencrypt.Request
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		sup.SendError(w, req, http.StatusBadRequest, err)
		return
	}
	if err := s.encrypt.Handle(req.Context(), body); err != nil {
		sup.SendErrorWithID(w, req, "secret-encrypt", http.StatusBadRequest, err)
		return
	}
	time.Sleep(time.Second)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serveSnapshot(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		sup.SendErrorWithID(w, req, "etcd-snapshot", http.StatusMethodNotAllowed, fmt.Errorf("%s is not supported", req.Method))
		return
	}
	var body snapshot.Request
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		sup.SendError(w, req, http.StatusBadRequest, err)
		return
	}
	res, err := s.snapshotOp(req.Context(), body)
	if err != nil {
		logrus.Errorf("Error in etcd-snapshot handler: %v", err)
		sup.SendErrorWithID(w, req, "etcd-snapshot", http.StatusBadRequest, err)
		return
	}
	sup.WriteJSON(w, res)
}

func (s *Server) snapshotOp(ctx context.Context, r snapshot.Request) (any, error) {
	dir, name := s.snapshotDir(), s.cfg.EtcdSnapshotName
	if r.Dir != nil && *r.Dir != "" {
		dir = *r.Dir
	}
	if len(r.Name) > 0 && r.Operation != "delete" {
		name = r.Name[0]
	}
	compress := s.cfg.EtcdSnapshotCompress
	if r.Compress != nil {
		compress = *r.Compress
	}
	retention := s.cfg.EtcdSnapshotRetention
	if r.Retention != nil {
		retention = *r.Retention
	}
	m := s.snapshots()
	switch r.Operation {
	case "save":
		if st, err := s.etcdClient.Status(ctx, s.etcdEndpoint()); err == nil && st.IsLearner {
			logrus.Info("Unable to take snapshot: not supported for learner")
			return snapshot.Result{}, nil
		}
		created, err := m.Save(ctx, dir, name, compress)
		if err != nil {
			return nil, err
		}
		res := snapshot.Result{Created: []string{created}}
		pruned, err := m.Prune(dir, name, retention)
		res.Deleted = pruned.Deleted
		return res, err
	case "list":
		return m.List(dir)
	case "delete":
		return m.Delete(dir, r.Name)
	case "prune":
		return m.Prune(dir, name, retention)
	}
	return nil, errors.New("invalid snapshot operation")
}

// serveToken is PUT /v1-k3s/token: a new server token; the bootstrap data moves to the
// new token's key (k3s: pkg/server/handlers/token.go tokenRotate).
func (s *Server) serveToken(w http.ResponseWriter, req *http.Request) {
	var body struct {
		NewToken *string `json:"newToken"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body.NewToken == nil {
		sup.SendError(w, req, http.StatusBadRequest, errors.New("invalid token rotate request"))
		return
	}
	if err := s.rotateToken(req.Context(), *body.NewToken); err != nil {
		sup.SendErrorWithID(w, req, "token", http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) rotateToken(ctx context.Context, newToken string) error {
	f, err := passwd.Read(s.l.Passwd())
	if err != nil {
		return err
	}
	old := f.Password("server")
	if old == "" {
		return errors.New("server token not found")
	}
	if newToken == "" {
		newToken = token.Random()
	}
	pw, err := token.Normalize(newToken)
	if err != nil {
		return err
	}
	f.EnsureUser("server", passwd.ServerGroup, pw)
	if f.Password("node") == old && s.cfg.AgentToken == "" {
		f.EnsureUser("node", passwd.AgentGroup, pw)
	}
	if err := f.Write(s.l.Passwd()); err != nil {
		return err
	}
	ca, err := os.ReadFile(s.l.TLS("server-ca.crt"))
	if err != nil {
		return err
	}
	if err := pki.WriteFile(s.l.Token(), []byte(token.Secure(ca, "server", pw)+"\n"), 0o600); err != nil {
		return err
	}
	if err := bootstrap.Rotate(ctx, etcdKV{s.etcdClient}, old, pw, logInfo); err != nil {
		return err
	}
	s.password = pw
	return s.saveBootstrap(ctx, true)
}
