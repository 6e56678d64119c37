// Package token imitates k3s's join tokens and the token-encrypted bootstrap
// data key (k3s: pkg/clientaccess/token.go, pkg/util/token.go, pkg/cluster/encrypt.go).
package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts a secure token (k3s: pkg/clientaccess/token.go tokenPrefix).
const Prefix = "K10"

// ErrFormat is NormalizeToken's error (k3s: pkg/util/token.go).
var ErrFormat = errors.New("failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>")

// Token is a parsed token: the CA hash and user are empty for the short form.
type Token struct {
	CAHash   string
	Username string
	Password string
}

// Parse reads the secure form K10<hash>::<user>:<password> or the short form <password>
// (k3s: pkg/clientaccess/token.go parseToken).
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, ErrFormat
	}
	if !strings.HasPrefix(s, Prefix) {
		if strings.Contains(s, "::") {
			return Token{}, ErrFormat
		}
		return Token{Password: s}, nil
	}
	hash, creds, ok := strings.Cut(strings.TrimPrefix(s, Prefix), "::")
	if !ok {
		return Token{}, ErrFormat
	}
	user, password, ok := strings.Cut(creds, ":")
	if !ok || user == "" || password == "" {
		return Token{}, ErrFormat
	}
	return Token{CAHash: hash, Username: user, Password: password}, nil
}

// Normalize returns the password part, the only part that keys bootstrap data
// (k3s: pkg/util/token.go NormalizeToken).
func Normalize(s string) (string, error) {
	t, err := Parse(s)
	if err != nil {
		return "", err
	}
	return t.Password, nil
}

// CAHash is the sha256 of the CA certificate file's bytes, hex
// (k3s: pkg/clientaccess/token.go hashCA).
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// Secure formats K10<CA hash>::<user>:<password>, the form k3s writes to server/token.
func Secure(caPEM []byte, user, password string) string {
	return Prefix + CAHash(caPEM) + "::" + user + ":" + password
}

// Random returns a new random password (k3s: pkg/util/token.go Random, 16 bytes hex).
func Random() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// BootstrapKey is the etcd key of the bootstrap data for a password:
// /bootstrap/<first 12 hex of sha256(password)> (k3s: pkg/cluster/storage.go keyHash).
func BootstrapKey(password string) string {
	sum := sha256.Sum256([]byte(password))
	return "/bootstrap/" + hex.EncodeToString(sum[:])[:12]
}

func keyFor(password, salt string) ([]byte, error) {
	return pbkdf2.Key(sha1.New, password, []byte(salt), 4096, 32)
}

// Encrypt seals data with a key derived from the password: "<salt hex>:<base64(nonce+sealed)>"
// (k3s: pkg/cluster/encrypt.go encrypt; PBKDF2-SHA1, 4096 rounds, AES-256-GCM).
func Encrypt(password string, data []byte) ([]byte, error) {
	saltBytes := make([]byte, 8)
	if _, err := rand.Read(saltBytes); err != nil {
		return nil, err
	}
	salt := hex.EncodeToString(saltBytes)
	key, err := keyFor(password, salt)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sealed := gcm.Seal(nonce, nonce, data, nil)
	return []byte(salt + ":" + base64.StdEncoding.EncodeToString(sealed)), nil
}

// Decrypt opens what Encrypt sealed; a wrong password fails authentication.
func Decrypt(password string, value []byte) ([]byte, error) {
	salt, b64, ok := strings.Cut(string(value), ":")
	if !ok {
		return nil, errors.New("invalid bootstrap data: no salt")
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("invalid bootstrap data: %w", err)
	}
	key, err := keyFor(password, salt)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("invalid bootstrap data: too short")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
