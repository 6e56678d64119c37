package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Interval between scans of the manifests directory (k3s: pkg/deploy/controller.go WatchFiles).
const Interval = 15 * time.Second

// Watcher applies server/manifests/*.yaml|*.yml|*.json (recursive, dotfiles and files
// named by a <name>.skip ignored) when a file's checksum changes, and records each file as
// an Addon kube-system/<base name up to the first dot>. A file removed from disk leaves its
// objects in place, as in k3s; a packaged manifest named in --disable is deleted with them.
type Watcher struct {
	Dir      string
	Disables []string
	Applier  *Applier
	applied  map[string]string // path -> checksum
	mtimes   map[string]time.Time
}

// Run scans until ctx ends; the first scan applies every file.
func (w *Watcher) Run(ctx context.Context) {
	w.applied, w.mtimes = map[string]string{}, map[string]time.Time{}
	w.removeDisabled(ctx)
	for {
		w.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(Interval):
		}
	}
}

func (w *Watcher) files() ([]string, error) {
	skips := map[string]bool{}
	var files []string
	err := filepath.Walk(w.Dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		name := info.Name()
		if info.IsDir() || strings.HasPrefix(name, ".") {
			return nil
		}
		if strings.HasSuffix(name, ".skip") {
			skips[strings.TrimSuffix(name, ".skip")] = true
			return nil
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	var out []string
	for _, f := range files {
		if !skips[filepath.Base(f)] {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out, err
}

func (w *Watcher) scan(ctx context.Context) {
	files, err := w.files()
	if err != nil {
		logrus.Errorf("Failed to process config: %v", err)
		return
	}
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			continue
		}
		if m, ok := w.mtimes[f]; ok && m.Equal(info.ModTime()) {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			logrus.Errorf("Failed to read manifest %s: %v", f, err)
			continue
		}
		sum := sha256.Sum256(data)
		checksum := hex.EncodeToString(sum[:])
		if w.applied[f] == checksum {
			w.mtimes[f] = info.ModTime()
			continue
		}
		if err := w.apply(ctx, f, data, checksum); err != nil {
			logrus.Errorf("Failed to apply manifest at %q: %v", f, err)
			continue
		}
		w.applied[f], w.mtimes[f] = checksum, info.ModTime()
	}
}

// AddonName is the file's base name up to the first dot.
func AddonName(path string) string {
	name, _, _ := strings.Cut(filepath.Base(path), ".")
	return name
}

func (w *Watcher) addon(path, checksum string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k3s.cattle.io/v1", "kind": "Addon",
		"metadata": map[string]any{"name": AddonName(path), "namespace": "kube-system"},
		"spec":     map[string]any{"source": path, "checksum": checksum},
	}}
}

func (w *Watcher) apply(ctx context.Context, path string, data []byte, checksum string) error {
	objs, err := Decode(data)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	logrus.Infof("Applying manifest at %q", path)
	if err := w.Applier.Apply(ctx, objs); err != nil {
		return err
	}
	if err := w.Applier.Apply(ctx, []*unstructured.Unstructured{w.addon(path, checksum)}); err != nil {
		return err
	}
	logrus.Infof("Applied manifest at %q", path)
	return nil
}

// removeDisabled deletes the objects, file and Addon of each disabled manifest.
func (w *Watcher) removeDisabled(ctx context.Context) {
	files, _ := w.files()
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		if !contains(w.Disables, base) {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		logrus.Infof("Deleting manifest at %q", f)
		if objs, err := Decode(data); err == nil {
			objs = append(objs, w.addon(f, ""))
			if err := w.Applier.Delete(ctx, objs); err != nil {
				logrus.Errorf("Failed to delete manifest at %q: %v", f, err)
				continue
			}
		}
		_ = os.Remove(f)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
