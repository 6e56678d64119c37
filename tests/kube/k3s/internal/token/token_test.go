package token

import (
	"strings"
	"testing"
)

func TestParseForms(t *testing.T) {
	secure, err := Parse("K10abc123::server:s3cret")
	if err != nil || secure.CAHash != "abc123" || secure.Username != "server" || secure.Password != "s3cret" {
		t.Fatalf("secure form: %+v %v", secure, err)
	}
	short, err := Parse("s3cret")
	if err != nil || short.Password != "s3cret" || short.CAHash != "" {
		t.Fatalf("short form: %+v %v", short, err)
	}
	for _, bad := range []string{"", "K10abc", "K10abc::server", "K10abc::server:", "a::b:c"} {
		if _, err := Parse(bad); err != ErrFormat {
			t.Errorf("Parse(%q) = %v, want ErrFormat", bad, err)
		}
	}
}

func TestNormalizeKeepsOnlyThePassword(t *testing.T) {
	a, _ := Normalize("K10ffff::server:pw")
	b, _ := Normalize("pw")
	if a != "pw" || b != "pw" {
		t.Fatalf("got %q %q", a, b)
	}
}

func TestSecureFormat(t *testing.T) {
	got := Secure([]byte("PEM"), "server", "pw")
	// sha256("PEM")
	want := "K10" + CAHash([]byte("PEM")) + "::server:pw"
	if got != want || len(CAHash([]byte("PEM"))) != 64 {
		t.Fatalf("got %q", got)
	}
}

func TestBootstrapKey(t *testing.T) {
	key := BootstrapKey("pw")
	// sha256("pw") = 30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4
	if key != "/bootstrap/30c952fab122" {
		t.Fatalf("got %q", key)
	}
}

func TestEncryptRoundTripAndWrongPassword(t *testing.T) {
	sealed, err := Encrypt("pw", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	salt, _, ok := strings.Cut(string(sealed), ":")
	if !ok || len(salt) != 16 {
		t.Fatalf("want <16 hex salt>:<base64>, got %q", sealed)
	}
	plain, err := Decrypt("pw", sealed)
	if err != nil || string(plain) != `{"a":1}` {
		t.Fatalf("round trip: %q %v", plain, err)
	}
	if _, err := Decrypt("other", sealed); err == nil {
		t.Fatal("a wrong password decrypted the data")
	}
}
