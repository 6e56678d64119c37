// Package snapshot imitates k3s's etcd snapshots: files <name>-<node>-<unix seconds>
// (.zip when compressed) in server/db/snapshots, on-demand saves through the supervisor's
// POST /db/snapshot, a cron schedule with retention per name prefix, and restore with
// etcdutl (k3s: pkg/etcd/snapshot.go, pkg/etcd/snapshot_handler.go,
// pkg/cli/etcdsnapshot/etcd_snapshot.go; docs: cli/etcd-snapshot.md).
package snapshot

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	clientsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
)

// CompressedExtension of compressed snapshots.
const CompressedExtension = ".zip"

// Request is POST /db/snapshot's body (k3s: pkg/etcd/snapshot_handler.go SnapshotRequest).
type Request struct {
	Operation string   `json:"operation"`
	Name      []string `json:"name,omitempty"`
	Dir       *string  `json:"dir,omitempty"`
	Compress  *bool    `json:"compress,omitempty"`
	Retention *int     `json:"retention,omitempty"`
}

// Result is the answer to save, delete and prune.
type Result struct {
	Created []string `json:"created,omitempty"`
	Deleted []string `json:"deleted,omitempty"`
}

// File is one snapshot on disk, as `ls` shows it.
type File struct {
	Name     string
	Location string
	Size     int64
	Created  time.Time
}

// Manager takes and manages one server's snapshots.
type Manager struct {
	Dir      string
	NodeName string
	Client   func() clientv3.Config // etcd client settings (TLS, local endpoint)
	mu       sync.Mutex
}

// Save takes a snapshot named <name>-<node>-<unix>; with compress, only the .zip is kept.
func (m *Manager) Save(ctx context.Context, dir, name string, compress bool) (string, error) {
	if !m.mu.TryLock() {
		return "", errors.New("snapshot save already in progress")
	}
	defer m.mu.Unlock()
	if dir == "" {
		dir = m.Dir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	file := fmt.Sprintf("%s-%s-%d", name, m.NodeName, time.Now().Round(time.Second).Unix())
	path := filepath.Join(dir, file)
	logrus.Infof("Saving etcd snapshot to %s", path)
	if _, err := clientsnapshot.SaveWithVersion(ctx, zap.NewNop(), m.Client(), path); err != nil {
		return "", err
	}
	if compress {
		logrus.Infof("Compressing etcd snapshot file: %s", file)
		zipped, err := compressFile(path)
		if err != nil {
			return "", err
		}
		logrus.Infof("Compressed snapshot: %s", zipped)
		file += CompressedExtension
	}
	return file, nil
}

func compressFile(path string) (string, error) {
	out := path + CompressedExtension
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: filepath.Base(path), Method: zip.Deflate, Modified: time.Now()})
	if err != nil {
		return "", err
	}
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(w, in); err != nil {
		in.Close()
		return "", err
	}
	in.Close()
	if err := zw.Close(); err != nil {
		return "", err
	}
	return out, os.Remove(path)
}

// Decompress unpacks a .zip snapshot next to it and returns the file's path.
func Decompress(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	if len(zr.File) != 1 {
		return "", fmt.Errorf("%s: expected one file in the archive", path)
	}
	out := strings.TrimSuffix(path, CompressedExtension)
	r, err := zr.File[0].Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	logrus.Infof("Decompressing etcd snapshot file: %s", path)
	_, err = io.Copy(f, r)
	return out, err
}

// List reads the snapshots in dir, oldest first.
func (m *Manager) List(dir string) ([]File, error) {
	if dir == "" {
		dir = m.Dir
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []File
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		abs, _ := filepath.Abs(filepath.Join(dir, e.Name()))
		out = append(out, File{Name: e.Name(), Location: "file://" + abs, Size: info.Size(), Created: created(e.Name(), info.ModTime())})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created.Equal(out[j].Created) {
			return out[i].Name < out[j].Name
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out, nil
}

// created reads the unix time after the last '-', else the mtime (k3s: snapshot retention).
func created(name string, mtime time.Time) time.Time {
	base := strings.TrimSuffix(name, CompressedExtension)
	if i := strings.LastIndex(base, "-"); i >= 0 {
		if ts, err := strconv.ParseInt(base[i+1:], 10, 64); err == nil {
			return time.Unix(ts, 0)
		}
	}
	return mtime
}

// Delete removes the named snapshots; names that are paths are refused.
func (m *Manager) Delete(dir string, names []string) (Result, error) {
	if dir == "" {
		dir = m.Dir
	}
	var res Result
	for _, n := range names {
		if n != filepath.Base(n) || n == "." || n == ".." {
			return res, errors.New("invalid snapshot name: path traversal not allowed")
		}
		err := os.Remove(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			logrus.Infof("Snapshot %s not found locally", n)
			continue
		} else if err != nil {
			return res, err
		}
		logrus.Infof("Snapshot %s deleted locally", n)
		res.Deleted = append(res.Deleted, n)
	}
	return res, nil
}

// Prune keeps the newest `retention` snapshots whose names start with prefix
// (k3s: snapshotRetention; retention < 1 keeps everything).
func (m *Manager) Prune(dir, prefix string, retention int) (Result, error) {
	var res Result
	if retention < 1 {
		return res, nil
	}
	if dir == "" {
		dir = m.Dir
	}
	logrus.Infof("Applying snapshot retention=%d to local snapshots with prefix %s in %s", retention, prefix, dir)
	files, err := m.List(dir)
	if err != nil {
		return res, err
	}
	var mine []File
	for _, f := range files {
		if strings.HasPrefix(f.Name, prefix) {
			mine = append(mine, f)
		}
	}
	// newest first
	sort.Slice(mine, func(i, j int) bool { return mine[i].Created.After(mine[j].Created) })
	for _, f := range mine[min(retention, len(mine)):] {
		logrus.Infof("Removing local snapshot %s", filepath.Join(dir, f.Name))
		if err := os.Remove(filepath.Join(dir, f.Name)); err != nil {
			return res, err
		}
		res.Deleted = append(res.Deleted, f.Name)
	}
	return res, nil
}
