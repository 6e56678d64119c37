package secretsencrypt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

// State is GET /v1-k3s/encrypt/status's body (k3s: pkg/server/handlers/secrets-encrypt.go
// EncryptionState; hashmatch is omitempty, so it is absent when false).
type State struct {
	Stage        string   `json:"stage"`
	ActiveKey    string   `json:"activekey"`
	Enable       *bool    `json:"enable,omitempty"`
	HashMatch    bool     `json:"hashmatch,omitempty"`
	HashError    string   `json:"hasherror,omitempty"`
	InactiveKeys []string `json:"inactivekeys,omitempty"`
}

// Request is PUT /v1-k3s/encrypt/config's body (k3s: EncryptionRequest).
type Request struct {
	Stage  *string `json:"stage,omitempty"`
	Enable *bool   `json:"enable,omitempty"`
	Force  bool    `json:"force"`
	Skip   bool    `json:"skip"`
}

func isKeyProvider(p apiserverv1.ProviderConfiguration) bool {
	return p.AESCBC != nil || p.Secretbox != nil
}

// enabled is k3s's reading of the provider order: encryption is on when a key provider is
// first and identity last; off when identity is first (or only, with the flag on), or the
// flag is off.
func enabled(providers []apiserverv1.ProviderConfiguration, flag bool) *bool {
	t, f := true, false
	n := len(providers)
	switch {
	case n > 0 && providers[n-1].Identity != nil && isKeyProvider(providers[0]):
		return &t
	case flag && n == 1 && providers[0].Identity != nil,
		!flag,
		n > 1 && providers[0].Identity != nil && isKeyProvider(providers[1]):
		return &f
	}
	return nil
}

// keyNames returns the active key and the inactive ones as "<type> <name>".
func keyNames(providers []apiserverv1.ProviderConfiguration) (string, []string) {
	active := ""
	var inactive []string
	seenIdentity := false
	for _, p := range providers {
		var kind string
		var keys []apiserverv1.Key
		switch {
		case p.AESCBC != nil:
			kind, keys = "AES-CBC", p.AESCBC.Keys
		case p.Secretbox != nil:
			kind, keys = "XSalsa20-POLY1305", p.Secretbox.Keys
		case p.Identity != nil:
			seenIdentity = true
			continue
		}
		for _, k := range keys {
			name := kind + " " + k.Name
			if active == "" && !seenIdentity {
				active = name
			} else {
				inactive = append(inactive, name)
			}
		}
	}
	return active, inactive
}

// StatusText renders `k3s secrets-encrypt status` (k3s: pkg/cli/secretsencrypt).
func StatusText(s State) string {
	if s.Enable == nil {
		return "Encryption Status: Disabled, no configuration file found\n"
	}
	var out strings.Builder
	if *s.Enable {
		out.WriteString("Encryption Status: Enabled\n")
	} else {
		out.WriteString("Encryption Status: Disabled\n")
	}
	fmt.Fprintf(&out, "Current Rotation Stage: %s\n", s.Stage)
	if s.HashMatch {
		out.WriteString("Server Encryption Hashes: All hashes match\n")
	} else {
		fmt.Fprintf(&out, "Server Encryption Hashes: %s\n", s.HashError)
	}
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprint(w, "\n")
	fmt.Fprint(w, "Active\tKey Type\tName\n")
	fmt.Fprint(w, "------\t--------\t----\n")
	if s.ActiveKey != "" {
		kind, name, _ := strings.Cut(s.ActiveKey, " ")
		fmt.Fprintf(w, " *\t%s\t%s\n", kind, name)
	}
	for _, k := range s.InactiveKeys {
		kind, name, _ := strings.Cut(k, " ")
		fmt.Fprintf(w, "\t%s\t%s\n", kind, name)
	}
	_ = w.Flush()
	// fmt.Println(statusOutput + table): one more newline at the end.
	return out.String() + buf.String() + "\n"
}

// StatusJSON renders `status -o json` (json.MarshalIndent with a tab).
func StatusJSON(s State) string {
	b, _ := json.MarshalIndent(s, "", "\t")
	return string(b) + "\n"
}
