package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/token"
)

type memKV map[string][]byte

func (m memKV) Get(_ context.Context, k string) ([]byte, bool, error) {
	v, ok := m[k]
	return v, ok, nil
}
func (m memKV) List(_ context.Context, p string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for k, v := range m {
		if strings.HasPrefix(k, p) {
			out[k] = v
		}
	}
	return out, nil
}
func (m memKV) Put(_ context.Context, k string, v []byte) error { m[k] = v; return nil }
func (m memKV) Create(_ context.Context, k string, v []byte) (bool, error) {
	if _, ok := m[k]; ok {
		return false, nil
	}
	m[k] = v
	return true, nil
}
func (m memKV) Delete(_ context.Context, k string) error { delete(m, k); return nil }

func nolog(string) {}

func TestSaveLoadAndDifferentToken(t *testing.T) {
	ctx := context.Background()
	kv := memKV{}
	data := Data{"ServerCA": {Timestamp: time.Unix(100, 0).UTC(), Content: []byte("ca")}}
	if err := Save(ctx, kv, "pw", data, false, nolog); err != nil {
		t.Fatal(err)
	}
	if _, ok := kv[token.BootstrapKey("pw")]; !ok {
		t.Fatalf("not stored under the password's key: %v", kv)
	}
	got, ok, err := Load(ctx, kv, "pw")
	if err != nil || !ok || string(got["ServerCA"].Content) != "ca" {
		t.Fatalf("load: %v %v %v", got, ok, err)
	}
	if _, _, err := Load(ctx, kv, "other"); !errors.Is(err, ErrDifferentToken) ||
		err.Error() != "bootstrap data already found and encrypted with different token" {
		t.Fatalf("want the different-token error, got %v", err)
	}
	if _, ok, err := Load(ctx, memKV{}, "pw"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
}

func TestRotateMovesTheKey(t *testing.T) {
	ctx := context.Background()
	kv := memKV{}
	data := Data{"PasswdFile": {Content: []byte("x")}}
	_ = Save(ctx, kv, "old", data, false, nolog)
	if err := Rotate(ctx, kv, "old", "new", nolog); err != nil {
		t.Fatal(err)
	}
	if _, ok := kv[token.BootstrapKey("old")]; ok {
		t.Fatal("old key kept")
	}
	got, ok, err := Load(ctx, kv, "new")
	if err != nil || !ok || string(got["PasswdFile"].Content) != "x" {
		t.Fatalf("after rotate: %v %v %v", got, ok, err)
	}
}

func TestReconcileUpdatesOlderAndRefusesNewer(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Root: dir}
	paths := Paths(l, false)
	stored := Data{
		"ServerCA": {Timestamp: time.Now().Add(-time.Hour), Content: []byte("from-datastore")},
		"ClientCA": {Timestamp: time.Now().Add(-time.Hour), Content: []byte("client")},
	}
	// ClientCA missing on disk -> written; ServerCA older and different -> updated.
	sca, _ := l.ServerCA()
	if err := os.MkdirAll(filepath.Dir(sca), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(sca, []byte("old-disk"), 0o600)
	old := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(sca, old, old)
	if err := Reconcile(paths, stored, false, nolog); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(sca); string(b) != "from-datastore" {
		t.Fatalf("server CA not updated: %q", b)
	}
	cca, _ := l.ClientCA()
	if info, err := os.Stat(cca); err != nil || info.ModTime().Unix() != stored["ClientCA"].Timestamp.Unix() {
		t.Fatalf("client CA not written with the datastore's timestamp: %v %v", info, err)
	}
	// A differing file newer on disk stops the start.
	_ = os.WriteFile(sca, []byte("edited"), 0o600)
	err := Reconcile(paths, stored, false, nolog)
	var newer *ErrNewerOnDisk
	if !errors.As(err, &newer) || !strings.HasPrefix(err.Error(), sca+" newer than datastore and could cause a cluster outage.") {
		t.Fatalf("want newer-on-disk, got %v", err)
	}
}
