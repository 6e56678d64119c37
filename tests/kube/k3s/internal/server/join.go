package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"opsbook/tests/kube/k3s/internal/bootstrap"
	"opsbook/tests/kube/k3s/internal/client"
	"opsbook/tests/kube/k3s/internal/config"
	"opsbook/tests/kube/k3s/internal/etcd"
	"opsbook/tests/kube/k3s/internal/token"
)

// ErrCriticalMismatch is k3s's join refusal (k3s: pkg/cluster/bootstrap.go compareConfig).
var ErrCriticalMismatch = errors.New("critical configuration value mismatch between servers")

// fetchJoinBootstrap is what a joining server does before etcd starts: validate the token
// against the cluster CA, compare the critical configuration, download the bootstrap data
// and write its files (k3s: pkg/cluster/bootstrap.go shouldBootstrapLoad, bootstrap,
// compareConfig, httpBootstrap; pkg/clientaccess/token.go ParseAndValidateToken).
func (s *Server) fetchJoinBootstrap() error {
	if s.password == "" {
		return errors.New("token is required to join a cluster")
	}
	c, err := client.New(s.cfg.ServerURL, s.cfg.Token, "server", 15*time.Second)
	if err != nil {
		return fmt.Errorf("failed to check if bootstrap data has been initialized: failed to validate token: %w", err)
	}
	if err := s.compareConfig(c); err != nil {
		return fmt.Errorf("failed to validate server configuration: %w", err)
	}
	body, err := c.Get("/v1-k3s/server-bootstrap")
	if err != nil {
		return fmt.Errorf("failed to get bootstrap data: %w", err)
	}
	data, err := bootstrap.Unmarshal(body)
	if err != nil {
		return err
	}
	if _, ok := data["EncryptionConfig"]; ok && !s.cfg.EncryptSecrets {
		// The cluster has an encryption config; take it so this server can read Secrets.
		return bootstrap.WriteToDisk(bootstrap.Paths(s.l, true), data, nil)
	}
	return bootstrap.Reconcile(s.bootstrapPaths(), data, true, logInfo)
}

// compareConfig GETs /v1-k3s/config as the node user and compares the critical values.
func (s *Server) compareConfig(c *client.Client) error {
	nodeToken := s.cfg.Token
	if s.cfg.AgentToken != "" {
		nodeToken = s.cfg.AgentToken
	}
	pw, err := token.Normalize(nodeToken)
	if err != nil {
		return err
	}
	nc := *c
	nc.Username, nc.Password = "node", pw
	body, err := nc.Get("/v1-k3s/config")
	if err != nil {
		logrus.Warnf("Skipping cluster configuration validation: %v", err)
		return nil
	}
	var remote config.Critical
	if err := json.Unmarshal(body, &remote); err != nil {
		logrus.Warnf("Skipping cluster configuration validation: %v", err)
		return nil
	}
	local := s.cfg.Critical
	if remote.EgressSelectorMode == "" {
		remote.EgressSelectorMode = local.EgressSelectorMode
	}
	mismatch := false
	lv, rv := reflect.ValueOf(local), reflect.ValueOf(remote)
	t := lv.Type()
	for i := 0; i < t.NumField(); i++ {
		if !reflect.DeepEqual(lv.Field(i).Interface(), rv.Field(i).Interface()) {
			logrus.Warnf("critical configuration mismatched: %s", t.Field(i).Tag.Get("cli"))
			mismatch = true
		}
	}
	if mismatch {
		return ErrCriticalMismatch
	}
	return nil
}

type dbMember struct {
	ID         uint64   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

// addLearner adds this server to the cluster as an etcd learner, itself, through the
// existing members' client URLs from /db/info (k3s: pkg/etcd/etcd.go join), and returns
// the initial-cluster string to start etcd with.
func (s *Server) addLearner(ctx context.Context) (string, error) {
	c, err := client.New(s.cfg.ServerURL, s.cfg.Token, "server", 20*time.Second)
	if err != nil {
		return "", err
	}
	peer := etcd.PeerURL(s.cfg.NodeIP)
	for {
		initial, err := s.tryAddLearner(ctx, c, peer)
		if err == nil {
			return initial, nil
		}
		if errors.Is(err, rpctypes.ErrTooManyLearners) || errors.Is(err, rpctypes.ErrUnhealthy) ||
			strings.Contains(err.Error(), "too many learner") || strings.Contains(err.Error(), "unhealthy") {
			logrus.Infof("Waiting for other members to finish joining etcd cluster: %v", err)
		} else if strings.Contains(err.Error(), "member list") {
			logrus.Infof("Waiting to retrieve etcd cluster member list: %v", err)
		} else {
			return "", fmt.Errorf("etcd cluster join failed: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) tryAddLearner(ctx context.Context, c *client.Client, peer string) (string, error) {
	body, err := c.Get("/db/info")
	if err != nil {
		return "", fmt.Errorf("failed to get etcd member list: %w", err)
	}
	var info struct {
		Members []dbMember `json:"members"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("failed to get etcd member list: %w", err)
	}
	var endpoints, cluster []string
	added := false
	for _, m := range info.Members {
		name := m.Name
		if len(m.PeerURLs) == 0 {
			continue
		}
		if m.PeerURLs[0] == peer {
			// An empty name with our peer URL is us, added but not started yet.
			added = true
			name = s.memberName
			if m.Name != "" && m.Name != s.memberName {
				return "", errors.New("duplicate node name found, please use a unique name for this node")
			}
		} else if !m.IsLearner {
			endpoints = append(endpoints, m.ClientURLs...)
		}
		cluster = append(cluster, name+"="+m.PeerURLs[0])
	}
	if !added {
		ec, err := etcd.Client(s.etcdTLS(), endpoints...)
		if err != nil {
			return "", err
		}
		defer ec.Close()
		var existing []string
		for _, m := range info.Members {
			if len(m.PeerURLs) > 0 {
				existing = append(existing, m.Name+"="+m.PeerURLs[0])
			}
		}
		logrus.Infof("Adding member %s=%s to etcd cluster %v", s.memberName, peer, existing)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := ec.MemberAddAsLearner(cctx, []string{peer}); err != nil {
			return "", err
		}
		cluster = append(cluster, s.memberName+"="+peer)
	}
	return strings.Join(cluster, ","), nil
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
