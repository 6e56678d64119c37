// Package bootstrap imitates k3s's cluster bootstrap data: the CAs, service account key,
// passwd file and encryption config every server shares, stored in etcd encrypted with
// the token's password and reconciled with the files on disk at each start
// (k3s: pkg/bootstrap/bootstrap.go, pkg/cluster/bootstrap.go, pkg/cluster/storage.go,
// pkg/daemons/config/types.go ControlRuntimeBootstrap).
package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/token"
)

// File is one entry: k3s serialises map[string]File with the Go field names as keys,
// Timestamp as RFC3339Nano (the file's mtime) and Content as base64 (k3s: pkg/bootstrap).
type File struct {
	Timestamp time.Time
	Content   []byte
}

// Data maps ControlRuntimeBootstrap field names to files.
type Data map[string]File

// Paths maps the field names to paths in the data dir. The encryption files are part of it
// only when secrets encryption is configured (flag on, or a config file written by
// `secrets-encrypt enable`), as in k3s where their runtime path is empty otherwise.
func Paths(l datadir.Layout, encryption bool) map[string]string {
	sca, scak := l.ServerCA()
	cca, ccak := l.ClientCA()
	rca, rcak := l.RequestHeaderCA()
	eca, ecak := l.EtcdServerCA()
	pca, pcak := l.EtcdPeerCA()
	p := map[string]string{
		"ETCDServerCA": eca, "ETCDServerCAKey": ecak,
		"ETCDPeerCA": pca, "ETCDPeerCAKey": pcak,
		"ServerCA": sca, "ServerCAKey": scak,
		"ClientCA": cca, "ClientCAKey": ccak,
		"ServiceKey":      l.ServiceKey(),
		"PasswdFile":      l.Passwd(),
		"RequestHeaderCA": rca, "RequestHeaderCAKey": rcak,
		"IPSECKey": l.IPSECKey(),
	}
	if encryption {
		p["EncryptionConfig"] = l.EncryptionConfig()
		p["EncryptionHash"] = l.EncryptionState()
	}
	return p
}

// ReadFromDisk reads every file that exists (k3s: bootstrap.ReadFromDisk skips the rest).
func ReadFromDisk(paths map[string]string) (Data, error) {
	data := Data{}
	for key, path := range paths {
		info, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		data[key] = File{Timestamp: info.ModTime(), Content: content}
	}
	return data, nil
}

// WriteToDisk writes the files (dirs 0700, files 0600) and sets each mtime to the
// datastore timestamp (k3s: bootstrap.WriteToDiskFromStorage).
func WriteToDisk(paths map[string]string, data Data, only map[string]bool) error {
	for key, file := range data {
		path, ok := paths[key]
		if !ok || (only != nil && !only[key]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, file.Content, 0o600); err != nil {
			return err
		}
		if err := os.Chtimes(path, file.Timestamp, file.Timestamp); err != nil {
			return err
		}
	}
	return nil
}

// Marshal and Unmarshal are the wire and storage format.
func Marshal(d Data) ([]byte, error) { return json.Marshal(d) }
func Unmarshal(b []byte) (Data, error) {
	d := Data{}
	return d, json.Unmarshal(b, &d)
}

// systemTimeSkew: a file that differs from the datastore and is at least this much newer
// on disk is "newer than datastore" (k3s: pkg/cluster/bootstrap.go).
const systemTimeSkew = 3 * time.Second

// ErrNewerOnDisk is the fatal reconcile outcome.
type ErrNewerOnDisk struct{ Paths []string }

func (e *ErrNewerOnDisk) Error() string {
	return strings.Join(e.Paths, ", ") + " newer than datastore and could cause a cluster outage. " +
		"Remove the file(s) from disk and restart to be recreated from datastore."
}

// Reconcile compares the datastore's files with the disk and writes the ones that must be
// updated (k3s: pkg/cluster/bootstrap.go ReconcileBootstrapData). force (cluster reset, or a
// fresh join with empty directories) writes every file.
func Reconcile(paths map[string]string, stored Data, force bool, log func(string)) error {
	update := map[string]bool{}
	var newer []string
	keys := make([]string, 0, len(stored))
	for k := range stored {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		file := stored[key]
		path, ok := paths[key]
		if !ok {
			log(fmt.Sprintf("Unable to lookup path to reconcile %s", key))
			continue
		}
		if force {
			update[key] = true
			continue
		}
		info, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			log(fmt.Sprintf("%s doesn't exist. continuing...", path))
			update[key] = true
			continue
		} else if err != nil {
			return err
		}
		disk, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Equal(disk, file.Content) {
			continue
		}
		if info.ModTime().Unix()-file.Timestamp.Unix() >= int64(systemTimeSkew.Seconds()) {
			newer = append(newer, path)
			continue
		}
		log(fmt.Sprintf("%s will be updated from the datastore.", path))
		update[key] = true
	}
	if len(newer) > 0 {
		sort.Strings(newer)
		return &ErrNewerOnDisk{Paths: newer}
	}
	if len(update) > 0 {
		log("Updating bootstrap data on disk from datastore")
		return WriteToDisk(paths, stored, update)
	}
	return nil
}

// KV is the part of an etcd client the storage functions need.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	List(ctx context.Context, prefix string) (map[string][]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Create(ctx context.Context, key string, value []byte) (bool, error)
	Delete(ctx context.Context, key string) error
}

// ErrDifferentToken is k3s's message when bootstrap keys exist but none is this token's
// (k3s: pkg/cluster/storage.go getBootstrapKeyFromStorage).
var ErrDifferentToken = errors.New("bootstrap data already found and encrypted with different token")

// Load reads and decrypts the bootstrap data for the password. ok is false when the
// datastore holds no bootstrap data at all.
func Load(ctx context.Context, kv KV, password string) (Data, bool, error) {
	all, err := kv.List(ctx, "/bootstrap/")
	if err != nil {
		return nil, false, err
	}
	if len(all) == 0 {
		return nil, false, nil
	}
	sealed, ok := all[token.BootstrapKey(password)]
	if !ok {
		return nil, false, ErrDifferentToken
	}
	plain, err := token.Decrypt(password, sealed)
	if err != nil {
		return nil, false, fmt.Errorf("failed to decrypt bootstrap data: %w", err)
	}
	d, err := Unmarshal(plain)
	return d, true, err
}

// Save encrypts the data and stores it under the password's key; without override an
// existing key is kept (k3s: pkg/cluster/storage.go Save, "Bootstrap key already exists").
func Save(ctx context.Context, kv KV, password string, d Data, override bool, log func(string)) error {
	plain, err := Marshal(d)
	if err != nil {
		return err
	}
	sealed, err := token.Encrypt(password, plain)
	if err != nil {
		return err
	}
	key := token.BootstrapKey(password)
	log("Saving cluster bootstrap data to datastore")
	if override {
		return kv.Put(ctx, key, sealed)
	}
	created, err := kv.Create(ctx, key, sealed)
	if err != nil {
		return err
	}
	if !created {
		log("Bootstrap key already exists")
	}
	return nil
}

// Rotate re-encrypts the bootstrap data under a new password and deletes the old key
// (k3s: pkg/cluster/storage.go RotateBootstrapToken / migrateTokens).
func Rotate(ctx context.Context, kv KV, oldPassword, newPassword string, log func(string)) error {
	oldKey, newKey := token.BootstrapKey(oldPassword), token.BootstrapKey(newPassword)
	if oldKey == newKey {
		return nil
	}
	sealed, ok, err := kv.Get(ctx, oldKey)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("bootstrap key %s not found", oldKey)
	}
	plain, err := token.Decrypt(oldPassword, sealed)
	if err != nil {
		return err
	}
	resealed, err := token.Encrypt(newPassword, plain)
	if err != nil {
		return err
	}
	created, err := kv.Create(ctx, newKey, resealed)
	if err != nil {
		return err
	}
	if !created {
		log("bootstrap key exists")
	} else {
		log("created bootstrap key " + newKey)
	}
	if err := kv.Delete(ctx, oldKey); err != nil {
		log("failed to delete old bootstrap key " + oldKey)
	}
	return nil
}
