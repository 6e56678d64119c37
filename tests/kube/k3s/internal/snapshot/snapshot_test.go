package snapshot

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func touch(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPruneKeepsNewestPerPrefix(t *testing.T) {
	dir := t.TempDir()
	m := &Manager{Dir: dir, NodeName: "n1"}
	for _, n := range []string{"etcd-snapshot-n1-100", "etcd-snapshot-n1-300", "etcd-snapshot-n1-200",
		"on-demand-n1-50", "etcd-snapshot-n1-400.zip"} {
		touch(t, dir, n)
	}
	res, err := m.Prune("", "etcd-snapshot", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Deleted, []string{"etcd-snapshot-n1-200", "etcd-snapshot-n1-100"}) {
		t.Fatalf("deleted %q", res.Deleted)
	}
	files, _ := m.List("")
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if !reflect.DeepEqual(names, []string{"on-demand-n1-50", "etcd-snapshot-n1-300", "etcd-snapshot-n1-400.zip"}) {
		t.Fatalf("left %q", names)
	}
}

func TestDeleteRefusesPaths(t *testing.T) {
	m := &Manager{Dir: t.TempDir()}
	if _, err := m.Delete("", []string{"../x"}); err == nil || err.Error() != "invalid snapshot name: path traversal not allowed" {
		t.Fatalf("got %v", err)
	}
	res, err := m.Delete("", []string{"missing"})
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("missing: %v %v", res, err)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s-n-1")
	_ = os.WriteFile(p, []byte("etcd bytes"), 0o600)
	z, err := compressFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("uncompressed file kept")
	}
	out, err := Decompress(z)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "etcd bytes" {
		t.Fatalf("got %q", b)
	}
}
