package configfile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func parser(t *testing.T, warnings *[]string) Parser {
	return Parser{
		DefaultConfig: filepath.Join(t.TempDir(), "config.yaml"),
		EnvName:       "K3S_TEST_CONFIG_FILE_UNSET",
		ValidFlags: map[string]map[string]bool{
			"server": {"token": true, "tls-san": true, "cluster-init": true, "node-label": true, "t": true, "disable": true},
		},
		Warn: func(s string) { *warnings = append(*warnings, s) },
	}
}

func TestMergeDropInsAppendAndOrder(t *testing.T) {
	var warnings []string
	p := parser(t, &warnings)
	write(t, p.DefaultConfig, "token: a\ntls-san: [one, two]\ncluster-init: true\ndisable: traefik\n")
	// drop-ins in name order; .yml and upper-case suffixes count; other files do not
	write(t, p.DefaultConfig+".d/20-b.YML", "tls-san+: [three]\ntoken: b\n")
	write(t, p.DefaultConfig+".d/10-a.yaml", "node-label: [x=1]\n")
	write(t, p.DefaultConfig+".d/30-ignored.txt", "token: nope\n")
	got, err := p.Parse([]string{"k3s", "server", "--token", "cli"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"k3s", "server",
		"--token=b", "--tls-san=one", "--tls-san=two", "--tls-san=three", "--cluster-init=true",
		"--disable=traefik", "--node-label=x=1",
		"--token", "cli"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if len(warnings) != 0 {
		t.Fatalf("unexpected warnings %q", warnings)
	}
}

func TestUnknownKeyWarnsAndIsDropped(t *testing.T) {
	var warnings []string
	p := parser(t, &warnings)
	write(t, p.DefaultConfig, "token: a\ntoken-fiel: /x\n")
	got, err := p.Parse([]string{"k3s", "server"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"k3s", "server", "--token=a"}) {
		t.Fatalf("got %q", got)
	}
	if !reflect.DeepEqual(warnings, []string{"Unknown flag --token-fiel found in config.yaml, skipping"}) {
		t.Fatalf("warnings %q", warnings)
	}
}

func TestOtherCommandsAreNotFilteredOrNotRead(t *testing.T) {
	var warnings []string
	p := parser(t, &warnings)
	write(t, p.DefaultConfig, "token: a\nwhatever: 1\n")
	// agent reads the file without filtering (k3s: no ValidFlags entry for agent)
	got, _ := p.Parse([]string{"k3s", "agent"})
	if !reflect.DeepEqual(got, []string{"k3s", "agent", "--token=a", "--whatever=1"}) {
		t.Fatalf("agent: %q", got)
	}
	// secrets-encrypt does not read it
	got, _ = p.Parse([]string{"k3s", "secrets-encrypt", "status"})
	if !reflect.DeepEqual(got, []string{"k3s", "secrets-encrypt", "status"}) {
		t.Fatalf("secrets-encrypt: %q", got)
	}
	// etcd-snapshot inserts after its own subcommand
	got, _ = p.Parse([]string{"k3s", "etcd-snapshot", "save", "--name", "x"})
	if got[2] != "save" || got[3] != "--token=a" {
		t.Fatalf("etcd-snapshot: %q", got)
	}
}

func TestMissingFileLeavesArgsAlone(t *testing.T) {
	var warnings []string
	p := parser(t, &warnings)
	args := []string{"k3s", "server", "--config", "/does/not/exist.yaml"}
	got, err := p.Parse(args)
	if err != nil || !reflect.DeepEqual(got, args) {
		t.Fatalf("got %q %v", got, err)
	}
}

func TestExplicitConfigFlagAndOneLetterKeys(t *testing.T) {
	var warnings []string
	p := parser(t, &warnings)
	other := filepath.Join(t.TempDir(), "other.yaml")
	write(t, other, "t: short\n")
	got, _ := p.Parse([]string{"k3s", "server", "-c", other})
	if !reflect.DeepEqual(got, []string{"k3s", "server", "-t=short", "-c", other}) {
		t.Fatalf("got %q", got)
	}
}
