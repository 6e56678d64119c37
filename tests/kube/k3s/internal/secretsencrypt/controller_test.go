package secretsencrypt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func server(name, annotation string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"node-role.kubernetes.io/control-plane": "true"}}}
	n.Status.NodeInfo.KubeletVersion = "v1.36.4+k3s1"
	if annotation != "" {
		n.Annotations = map[string]string{HashAnnotation: annotation}
	}
	return n
}

// controller with a config on disk whose hash the annotations may use.
func controller(t *testing.T, nodes ...*corev1.Node) (*Controller, string) {
	t.Helper()
	dir := t.TempDir()
	c := &Controller{
		NodeName: "s1", ConfigPath: filepath.Join(dir, "encryption-config.json"),
		StatePath: filepath.Join(dir, "encryption-state.json"), Provider: AESCBC, EncryptSecrets: true,
		Save: func(context.Context) error { return nil },
	}
	if err := EnsureAtStart(c.ConfigPath, c.StatePath, AESCBC); err != nil {
		t.Fatal(err)
	}
	hash, _ := FileHash(c.ConfigPath)
	for _, n := range nodes {
		if v, ok := n.Annotations[HashAnnotation]; ok {
			n.Annotations[HashAnnotation] = strings.ReplaceAll(v, "HASH", hash)
		}
	}
	objs := make([]runtime.Object, 0, len(nodes))
	for _, n := range nodes {
		objs = append(objs, n)
	}
	c.Kube = fake.NewClientset(objs...)
	return c, hash
}

func TestStageRules(t *testing.T) {
	ctx := context.Background()
	str := func(s string) *string { return &s }
	cases := []struct {
		name    string
		nodes   []*corev1.Node
		req     Request
		wantErr string
	}{
		{"rotate needs prepare", []*corev1.Node{server("s1", "start-HASH")},
			Request{Stage: str(StageRotate)}, "incorrect stage: start found on node s1"},
		{"reencrypt needs rotate", []*corev1.Node{server("s1", "prepare-HASH")},
			Request{Stage: str(StageReencryptActive)}, "incorrect stage: prepare found on node s1"},
		{"prepare refused on mismatched hashes", []*corev1.Node{server("s1", "start-HASH"), server("s2", "start-other")},
			Request{Stage: str(StagePrepare)}, "hash does not match between s1 and s2"},
		{"rotate-keys needs matching hashes", []*corev1.Node{server("s1", "start-HASH"), server("s2", "prepare-HASH")},
			Request{Stage: str(StageRotateKeys)}, "hash does not match between s1 and s2"},
		{"a stale local hash", []*corev1.Node{server("s1", "start-0123")},
			Request{Stage: str(StagePrepare)}, "invalid hash: 0123 found on node s1"},
		{"missing annotation", []*corev1.Node{server("s1", "")},
			Request{Stage: str(StagePrepare)}, "missing annotation on node s1"},
		{"unknown stage", []*corev1.Node{server("s1", "start-HASH")},
			Request{Stage: str("bogus")}, "unknown stage bogus requested"},
		{"force skips the stage check", []*corev1.Node{server("s1", "start-HASH")},
			Request{Stage: str(StageRotate), Force: true}, ""},
		{"prepare from start", []*corev1.Node{server("s1", "start-HASH")},
			Request{Stage: str(StagePrepare)}, ""},
		{"prepare from reencrypt_finished", []*corev1.Node{server("s1", "reencrypt_finished-HASH")},
			Request{Stage: str(StagePrepare)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := controller(t, tc.nodes...)
			err := c.Handle(ctx, tc.req)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestPrepareAddsAnInactiveKeyAndRecordsTheStage(t *testing.T) {
	ctx := context.Background()
	c, _ := controller(t, server("s1", "start-HASH"))
	if err := c.Handle(ctx, Request{Stage: ptr(StagePrepare)}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := ReadConfig(c.ConfigPath)
	keys := Providers(cfg)[0].AESCBC.Keys
	if len(keys) != 2 || keys[0].Name != "aescbckey" || !strings.HasPrefix(keys[1].Name, "aescbckey-") {
		t.Fatalf("keys after prepare: %+v", keys)
	}
	hash, _ := FileHash(c.ConfigPath)
	state, _ := os.ReadFile(c.StatePath)
	node, _ := c.Kube.CoreV1().Nodes().Get(ctx, "s1", metav1.GetOptions{})
	if string(state) != "prepare-"+hash || node.Annotations[HashAnnotation] != "prepare-"+hash {
		t.Fatalf("state %q annotation %q", state, node.Annotations[HashAnnotation])
	}
	// rotate makes the new key primary
	if err := c.Handle(ctx, Request{Stage: ptr(StageRotate)}); err != nil {
		t.Fatal(err)
	}
	cfg, _ = ReadConfig(c.ConfigPath)
	if k := Providers(cfg)[0].AESCBC.Keys; k[0].Name == "aescbckey" || k[1].Name != "aescbckey" {
		t.Fatalf("keys after rotate: %+v", k)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Stage != StageRotate || !st.HashMatch || st.Enable == nil || !*st.Enable {
		t.Fatalf("status %+v %v", st, err)
	}
}

func TestEnableOnAClusterWithoutConfigWritesIdentityOnly(t *testing.T) {
	ctx := context.Background()
	c, _ := controller(t, server("s1", ""))
	_ = os.Remove(c.ConfigPath)
	if err := c.Handle(ctx, Request{Enable: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := ReadConfig(c.ConfigPath)
	if p := Providers(cfg); len(p) != 1 || p[0].Identity == nil {
		t.Fatalf("providers %+v", p)
	}
}

func ptr[T any](v T) *T { return &v }
