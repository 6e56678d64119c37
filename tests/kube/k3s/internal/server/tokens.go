package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"opsbook/tests/kube/k3s/internal/bootstrap"
	"opsbook/tests/kube/k3s/internal/passwd"
	"opsbook/tests/kube/k3s/internal/pki"
	"opsbook/tests/kube/k3s/internal/token"
)

// resolveToken finds the token: --token, else --token-file, else (a restart) server/token
// (k3s: pkg/cli/server/server.go; docs: cli/token.md). Only its password matters.
func (s *Server) resolveToken() error {
	text := s.cfg.Token
	if text == "" && s.cfg.TokenFile != "" {
		data, err := os.ReadFile(s.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("failed to read token file: %w", err)
		}
		text = strings.TrimSpace(string(data))
	}
	if text == "" {
		if data, err := os.ReadFile(s.l.Token()); err == nil {
			text = strings.TrimSpace(string(data))
		}
	}
	if text == "" {
		return nil
	}
	pw, err := token.Normalize(text)
	if err != nil {
		return err
	}
	s.password = pw
	s.cfg.Token = text
	return nil
}

// loadMemberName reads db/etcd/name or makes <node>-<8 hex> (k3s: pkg/etcd/etcd.go setName).
func (s *Server) loadMemberName() error {
	if data, err := os.ReadFile(s.l.EtcdName()); err == nil && len(strings.TrimSpace(string(data))) > 0 {
		s.memberName = strings.TrimSpace(string(data))
		return nil
	}
	return s.newMemberName()
}

func (s *Server) newMemberName() error {
	name, err := s.freshMemberName()
	if err != nil {
		return err
	}
	s.memberName = name
	return pki.WriteFile(s.l.EtcdName(), []byte(name), 0o600)
}

func (s *Server) freshMemberName() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return s.cfg.NodeName + "-" + hex.EncodeToString(b), nil
}

// initCluster creates what the first server of a cluster creates: the CAs and keys, and
// the passwd file with the token's password (random when no token was given).
func (s *Server) initCluster() error {
	if err := s.ensureCAs(); err != nil {
		return err
	}
	f, err := passwd.Read(s.l.Passwd())
	if err != nil {
		return err
	}
	if s.password == "" {
		s.password = f.Password("server")
	}
	if s.password == "" {
		s.password = token.Random()
	}
	nodePassword := s.password
	if s.cfg.AgentToken != "" {
		if nodePassword, err = token.Normalize(s.cfg.AgentToken); err != nil {
			return err
		}
	}
	f.EnsureUser("server", passwd.ServerGroup, s.password)
	f.EnsureUser("node", passwd.AgentGroup, nodePassword)
	return f.Write(s.l.Passwd())
}

// writeTokenFiles writes server/token K10<CA hash>::server:<password> (0600), node-token
// (a link to it) and agent-token (k3s: pkg/server/server.go printTokens, writeToken).
func (s *Server) writeTokenFiles() error {
	ca, err := os.ReadFile(s.l.TLS("server-ca.crt"))
	if err != nil {
		return err
	}
	f, err := passwd.Read(s.l.Passwd())
	if err != nil {
		return err
	}
	serverPW := f.Password("server")
	if serverPW == "" {
		return errors.New("server/cred/passwd has no server user")
	}
	if s.password == "" {
		s.password = serverPW
	}
	if err := pki.WriteFile(s.l.Token(), []byte(token.Secure(ca, "server", serverPW)+"\n"), 0o600); err != nil {
		return err
	}
	link := func(path string) error {
		if target, err := os.Readlink(path); err == nil && target == "token" {
			return nil
		}
		_ = os.Remove(path)
		return os.Symlink("token", path)
	}
	if err := link(s.l.NodeToken()); err != nil {
		return err
	}
	if s.cfg.AgentToken != "" {
		_ = os.Remove(s.l.AgentToken())
		if err := pki.WriteFile(s.l.AgentToken(), []byte(token.Secure(ca, "node", f.Password("node"))+"\n"), 0o600); err != nil {
			return err
		}
	} else if err := link(s.l.AgentToken()); err != nil {
		return err
	}
	logrus.Infof("Server node token is available at %s", s.l.Token())
	logrus.Infof("Agent node token is available at %s", s.l.AgentToken())
	return nil
}

func (s *Server) bootstrapPaths() map[string]string {
	return bootstrap.Paths(s.l, s.encryptionConfigured())
}

// saveBootstrap stores the bootstrap files in etcd under the token's key.
func (s *Server) saveBootstrap(ctx context.Context, override bool) error {
	data, err := bootstrap.ReadFromDisk(s.bootstrapPaths())
	if err != nil {
		return err
	}
	return bootstrap.Save(ctx, etcdKV{s.etcdClient}, s.password, data, override, logInfo)
}

func (s *Server) clearResetFlag() error {
	if _, err := os.Stat(s.l.ResetFlag()); err == nil {
		logrus.Info("Managed etcd cluster membership was reset; starting normally clears the reset flag")
		return os.Remove(s.l.ResetFlag())
	}
	return nil
}

func logInfo(msg string) { logrus.Info(msg) }
func logWarn(msg string) { logrus.Warn(msg) }

func chgrp(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, err := user.LookupGroup(group)
		if err != nil {
			return err
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return err
		}
	}
	return os.Chown(path, -1, gid)
}

// withCodec gives a rest.Config what RESTClientFor needs for raw paths.
func withCodec(c *rest.Config) *rest.Config {
	cp := rest.CopyConfig(c)
	cp.GroupVersion = &schema.GroupVersion{Version: "v1"}
	cp.APIPath = "/api"
	cp.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return cp
}
