// Package passwd reads and writes server/cred/passwd, the CSV file of the supervisor's
// basic-auth users: `password,user,user,group`, users `server` (k3s:server) and
// `node` (k3s:agent) (k3s: pkg/passwd/passwd.go, pkg/daemons/control/deps/deps.go genUsers).
package passwd

import (
	"bytes"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"sort"

	"opsbook/tests/kube/k3s/internal/pki"
)

// Groups of the two users.
const (
	ServerGroup = "k3s:server"
	AgentGroup  = "k3s:agent"
)

type entry struct{ password, group string }

// File is the parsed passwd file.
type File struct{ users map[string]entry }

// Read loads a passwd file; a missing file gives an empty one.
func Read(path string) (*File, error) {
	f := &File{users: map[string]entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	} else if err != nil {
		return nil, err
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		if len(rec) < 2 {
			return nil, fmt.Errorf("password file '%s' must have at least 2 columns (password, name), found %d", path, len(rec))
		}
		group := ""
		if len(rec) > 3 {
			group = rec[3]
		}
		f.users[rec[1]] = entry{password: rec[0], group: group}
	}
	return f, nil
}

// Password of a user ("" when absent).
func (f *File) Password(user string) string { return f.users[user].password }

// EnsureUser sets a user's password and group.
func (f *File) EnsureUser(user, group, password string) { f.users[user] = entry{password, group} }

// Write saves the file with mode 0600.
func (f *File) Write(path string) error {
	names := make([]string, 0, len(f.users))
	for n := range f.users {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, n := range names {
		e := f.users[n]
		if err := w.Write([]string{e.password, n, n, e.group}); err != nil {
			return err
		}
	}
	w.Flush()
	return pki.WriteFile(path, buf.Bytes(), 0o600)
}

// Authenticate checks basic-auth credentials and returns the user's groups.
func (f *File) Authenticate(user, password string) ([]string, bool) {
	e, ok := f.users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(e.password), []byte(password)) != 1 {
		return nil, false
	}
	return []string{e.group}, true
}
