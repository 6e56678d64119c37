// Package secretsencrypt imitates k3s's secrets encryption: the encryption config file,
// its stages and hash annotation, the supervisor's /v1-k3s/encrypt handlers and the
// `k3s secrets-encrypt` output (k3s: pkg/secretsencrypt/config.go,
// pkg/server/handlers/secrets-encrypt.go, pkg/cli/secretsencrypt/secrets_encrypt.go,
// pkg/daemons/control/deps/deps.go genEncryptionConfigAndState;
// docs: cli/secrets-encrypt.md, security/secrets-encryption.md).
package secretsencrypt

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"opsbook/tests/kube/k3s/internal/pki"
)

// Stages and names (k3s: pkg/secretsencrypt/config.go).
const (
	StageStart             = "start"
	StagePrepare           = "prepare"
	StageRotate            = "rotate"
	StageRotateKeys        = "rotate_keys"
	StageReencryptRequest  = "reencrypt_request"
	StageReencryptActive   = "reencrypt_active"
	StageReencryptFinished = "reencrypt_finished"

	AESCBC    = "aescbc"
	SecretBox = "secretbox"

	HashAnnotation = "k3s.io/encryption-config-hash"
	KeySize        = 32
)

// Key is a named key of one provider type.
type Key struct {
	Type   string // aescbc | secretbox
	Name   string
	Secret string
}

// Keys are the keys found in a config, and whether an identity provider is present.
type Keys struct {
	AESCBC    []apiserverv1.Key
	SecretBox []apiserverv1.Key
	Identity  bool
}

// ReadConfig loads the encryption config file.
func ReadConfig(path string) (*apiserverv1.EncryptionConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := &apiserverv1.EncryptionConfiguration{}
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Providers of the secrets resource.
func Providers(cfg *apiserverv1.EncryptionConfiguration) []apiserverv1.ProviderConfiguration {
	if cfg == nil || len(cfg.Resources) == 0 {
		return nil
	}
	return cfg.Resources[0].Providers
}

// GetKeys collects the keys (k3s: GetEncryptionKeys; at most 3 providers; aesgcm and KMS refused).
func GetKeys(cfg *apiserverv1.EncryptionConfiguration) (Keys, error) {
	var k Keys
	providers := Providers(cfg)
	if len(providers) > 3 {
		return k, fmt.Errorf("more than 3 providers (%d) found in secrets encryption", len(providers))
	}
	for _, p := range providers {
		switch {
		case p.AESCBC != nil:
			k.AESCBC = append(k.AESCBC, p.AESCBC.Keys...)
		case p.Secretbox != nil:
			k.SecretBox = append(k.SecretBox, p.Secretbox.Keys...)
		case p.Identity != nil:
			k.Identity = true
		default:
			return k, errors.New("unsupported encryption keys found")
		}
	}
	return k, nil
}

func config(providers ...apiserverv1.ProviderConfiguration) *apiserverv1.EncryptionConfiguration {
	return &apiserverv1.EncryptionConfiguration{
		TypeMeta: apiTypeMeta(),
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: []string{"secrets"}, Providers: providers,
		}},
	}
}

func providerOf(kind string, keys []apiserverv1.Key) apiserverv1.ProviderConfiguration {
	if kind == SecretBox {
		return apiserverv1.ProviderConfiguration{Secretbox: &apiserverv1.SecretboxConfiguration{Keys: keys}}
	}
	return apiserverv1.ProviderConfiguration{AESCBC: &apiserverv1.AESConfiguration{Keys: keys}}
}

var identity = apiserverv1.ProviderConfiguration{Identity: &apiserverv1.IdentityConfiguration{}}

// Build orders the providers as k3s's WriteEncryptionConfig does: enabled
// [primary, secondary?, identity]; disabled [identity, primary] (the secondary dropped).
func Build(keys Keys, provider string, enable bool) *apiserverv1.EncryptionConfiguration {
	primary, secondary := keys.AESCBC, keys.SecretBox
	other := SecretBox
	if provider == SecretBox {
		primary, secondary = keys.SecretBox, keys.AESCBC
		other = AESCBC
	}
	if !enable {
		return config(identity, providerOf(provider, primary))
	}
	if len(secondary) > 0 {
		return config(providerOf(provider, primary), providerOf(other, secondary), identity)
	}
	return config(providerOf(provider, primary), identity)
}

// IdentityConfig is what `enable` writes on a cluster that never had encryption
// (k3s PR #13370: WriteIdentityConfig).
func IdentityConfig() *apiserverv1.EncryptionConfiguration { return config(identity) }

// Write saves a config as compact JSON, mode 0600, and returns its hash.
func Write(path string, cfg *apiserverv1.EncryptionConfiguration) (string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	if err := pki.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return Hash(data), nil
}

// Hash is the hex sha256 of the config file's bytes (k3s: GenEncryptionConfigHash).
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// FileHash hashes the file at path.
func FileHash(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return Hash(data), nil
}

// NewKey makes a 32-byte key named <type>key-<RFC3339 local time>
// (k3s: AppendNewEncryptionKey).
func NewKey(provider string) apiserverv1.Key {
	return apiserverv1.Key{Name: provider + "key-" + time.Now().Format(time.RFC3339), Secret: randomSecret()}
}

func randomSecret() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// EnsureAtStart is genEncryptionConfigAndState: with the flag on, keep a non-empty
// existing config (writing a missing state file as start-<hash>), else write a new config
// with one key named aescbckey (secretboxkey for secretbox) and state start-<hash>.
func EnsureAtStart(configPath, statePath, provider string) error {
	if info, err := os.Stat(configPath); err == nil && info.Size() > 0 {
		if _, err := os.Stat(statePath); errors.Is(err, os.ErrNotExist) {
			h, err := FileHash(configPath)
			if err != nil {
				return err
			}
			return pki.WriteFile(statePath, []byte(StageStart+"-"+h), 0o600)
		}
		return nil
	}
	key := apiserverv1.Key{Name: provider + "key", Secret: randomSecret()}
	keys := Keys{}
	if provider == SecretBox {
		keys.SecretBox = []apiserverv1.Key{key}
	} else {
		keys.AESCBC = []apiserverv1.Key{key}
	}
	h, err := Write(configPath, Build(keys, provider, true))
	if err != nil {
		return err
	}
	return pki.WriteFile(statePath, []byte(StageStart+"-"+h), 0o600)
}
