package secretsencrypt

import (
	"testing"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

func TestStatusTextEnabled(t *testing.T) {
	yes := true
	got := StatusText(State{Stage: "start", ActiveKey: "AES-CBC aescbckey", Enable: &yes, HashMatch: true})
	want := "Encryption Status: Enabled\n" +
		"Current Rotation Stage: start\n" +
		"Server Encryption Hashes: All hashes match\n" +
		"\n" +
		"Active  Key Type  Name\n" +
		"------  --------  ----\n" +
		" *      AES-CBC   aescbckey\n" +
		"\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestStatusTextInactiveAndMismatch(t *testing.T) {
	no := false
	got := StatusText(State{Stage: "prepare", Enable: &no, HashError: "hash does not match between a and b",
		InactiveKeys: []string{"AES-CBC aescbckey"}})
	want := "Encryption Status: Disabled\n" +
		"Current Rotation Stage: prepare\n" +
		"Server Encryption Hashes: hash does not match between a and b\n" +
		"\n" +
		"Active  Key Type  Name\n" +
		"------  --------  ----\n" +
		"        AES-CBC   aescbckey\n" +
		"\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if StatusText(State{}) != "Encryption Status: Disabled, no configuration file found\n" {
		t.Fatal("no-config text")
	}
}

func TestBuildProviderOrder(t *testing.T) {
	k1 := apiserverv1.Key{Name: "aescbckey", Secret: "x"}
	sb := apiserverv1.Key{Name: "secretboxkey", Secret: "y"}
	on := Providers(Build(Keys{AESCBC: []apiserverv1.Key{k1}}, AESCBC, true))
	if len(on) != 2 || on[0].AESCBC == nil || on[1].Identity == nil {
		t.Fatalf("enabled: %+v", on)
	}
	off := Providers(Build(Keys{AESCBC: []apiserverv1.Key{k1}, SecretBox: []apiserverv1.Key{sb}}, AESCBC, false))
	if len(off) != 2 || off[0].Identity == nil || off[1].AESCBC == nil {
		t.Fatalf("disabled drops the secondary: %+v", off)
	}
	mig := Providers(Build(Keys{AESCBC: []apiserverv1.Key{k1}, SecretBox: []apiserverv1.Key{sb}}, SecretBox, true))
	if len(mig) != 3 || mig[0].Secretbox == nil || mig[1].AESCBC == nil || mig[2].Identity == nil {
		t.Fatalf("migration order: %+v", mig)
	}
	if e := enabled(on, false); e == nil || !*e {
		t.Fatal("[aescbc, identity] is enabled")
	}
	if e := enabled(Providers(IdentityConfig()), true); e == nil || *e {
		t.Fatal("identity only with the flag is disabled")
	}
	active, inactive := keyNames(off)
	if active != "" || len(inactive) != 1 || inactive[0] != "AES-CBC aescbckey" {
		t.Fatalf("identity first: %q %q", active, inactive)
	}
}
