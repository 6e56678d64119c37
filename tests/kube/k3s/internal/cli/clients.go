package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"errors"
	"github.com/sirupsen/logrus"
	"sigs.k8s.io/yaml"

	"opsbook/tests/kube/k3s/internal/client"
	"opsbook/tests/kube/k3s/internal/config"
	"opsbook/tests/kube/k3s/internal/datadir"
	"opsbook/tests/kube/k3s/internal/flags"
	"opsbook/tests/kube/k3s/internal/secretsencrypt"
	"opsbook/tests/kube/k3s/internal/snapshot"
)

// serverToken is --token, else <data-dir>/server/token.
func serverToken(tok, dataDir string) (string, error) {
	if tok != "" {
		return tok, nil
	}
	if dataDir == "" {
		dataDir = datadir.Default
	}
	l := datadir.Layout{Root: dataDir}
	data, err := os.ReadFile(l.Token())
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func connect(set *flags.Set, tokenFlag, serverFlag string, timeout time.Duration) (*client.Client, error) {
	tok, err := serverToken(set.String(tokenFlag), set.String("data-dir"))
	if err != nil {
		return nil, err
	}
	return client.New(set.String(serverFlag), tok, "server", timeout)
}

// SecretsEncrypt is `k3s secrets-encrypt <status|enable|disable|prepare|rotate|reencrypt|
// rotate-keys>`; it does not read config.yaml (k3s: pkg/cli/secretsencrypt).
func SecretsEncrypt(args []string) error {
	if len(args) == 0 {
		return errors.New("secrets-encrypt: a subcommand is required (status, enable, disable, prepare, rotate, reencrypt, rotate-keys)")
	}
	sub := args[0]
	set, err := parse("secrets-encrypt "+sub, config.SecretsEncryptFlags(), args[1:])
	if err != nil {
		return err
	}
	timeout := 10 * time.Second
	if sub == "rotate-keys" {
		timeout = 90 * time.Second
	}
	c, err := connect(set, "token", "server", timeout)
	if err != nil {
		return err
	}
	str := func(s string) *string { return &s }
	boolp := func(b bool) *bool { return &b }
	var req secretsencrypt.Request
	var done string
	switch sub {
	case "status":
		body, err := c.Get("/v1-k3s/encrypt/status")
		if err != nil {
			return seeLog(err)
		}
		var st secretsencrypt.State
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		if strings.EqualFold(set.String("output"), "json") {
			fmt.Print(secretsencrypt.StatusJSON(st))
		} else {
			fmt.Print(secretsencrypt.StatusText(st))
		}
		return nil
	case "enable":
		req, done = secretsencrypt.Request{Enable: boolp(true)}, "secrets-encryption enabled"
	case "disable":
		req, done = secretsencrypt.Request{Enable: boolp(false)}, "secrets-encryption disabled"
	case "prepare":
		req, done = secretsencrypt.Request{Stage: str(secretsencrypt.StagePrepare), Force: set.Bool("force")}, "prepare completed successfully"
	case "rotate":
		req, done = secretsencrypt.Request{Stage: str(secretsencrypt.StageRotate), Force: set.Bool("force")}, "rotate completed successfully"
	case "reencrypt":
		req = secretsencrypt.Request{Stage: str(secretsencrypt.StageReencryptActive), Force: set.Bool("force"), Skip: set.Bool("skip")}
		done = "reencryption started"
	case "rotate-keys":
		req, done = secretsencrypt.Request{Stage: str(secretsencrypt.StageRotateKeys)}, "keys rotated, reencryption finished"
	default:
		return fmt.Errorf("secrets-encrypt: unknown subcommand %q", sub)
	}
	if _, err := c.Do(http.MethodPut, "/v1-k3s/encrypt/config", req); err != nil {
		return seeLog(err)
	}
	fmt.Println(done)
	return nil
}

// EtcdSnapshot is `k3s etcd-snapshot <save|delete|ls|list|l|prune>`, calling the running
// server's POST /db/snapshot (k3s: pkg/cli/etcdsnapshot/etcd_snapshot.go).
func EtcdSnapshot(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("etcd-snapshot: a subcommand is required (save, delete, ls, prune)")
	}
	sub := args[0]
	set, err := parse("etcd-snapshot "+sub, config.EtcdSnapshotFlags(), args[1:])
	if err != nil {
		return err
	}
	if err := setupLogging(set); err != nil {
		return err
	}
	c, err := connect(set, "etcd-token", "etcd-server", 2*time.Minute)
	if err != nil {
		return err
	}
	req := snapshot.Request{}
	if set.Changed("dir") {
		d := set.String("dir")
		req.Dir = &d
	}
	if set.Changed("snapshot-compress") {
		b := set.Bool("snapshot-compress")
		req.Compress = &b
	}
	if set.Changed("snapshot-retention") {
		r := set.Int("snapshot-retention")
		req.Retention = &r
	}
	call := func() ([]byte, error) {
		body, err := c.Do(http.MethodPost, "/db/snapshot", req)
		if err != nil {
			return nil, seeLog(err)
		}
		return body, nil
	}
	var res snapshot.Result
	switch sub {
	case "save":
		if len(set.Args()) > 0 {
			return errors.New("this command does not take any arguments")
		}
		zero := 0
		req.Operation, req.Name, req.Retention = "save", []string{set.String("name")}, &zero
		body, err := call()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return err
		}
		for _, n := range res.Created {
			logrus.Infof("Snapshot %s saved.", n)
		}
	case "delete":
		if len(set.Args()) == 0 {
			return errors.New("no snapshots given for removal")
		}
		req.Operation, req.Name = "delete", set.Args()
		body, err := call()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return err
		}
		deleted := map[string]bool{}
		for _, n := range res.Deleted {
			deleted[n] = true
			logrus.Infof("Snapshot %s deleted.", n)
		}
		for _, n := range set.Args() {
			if !deleted[n] {
				logrus.Warnf("Snapshot %s not found.", n)
			}
		}
	case "prune":
		req.Operation, req.Name = "prune", []string{set.String("name")}
		body, err := call()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return err
		}
		for _, n := range res.Deleted {
			logrus.Infof("Snapshot %s deleted.", n)
		}
	case "ls", "list", "l":
		req.Operation = "list"
		body, err := call()
		if err != nil {
			return err
		}
		var files []snapshot.File
		if err := json.Unmarshal(body, &files); err != nil {
			return err
		}
		return printSnapshots(files, firstNonEmpty(set.String("output"), set.String("etcd-list-format")))
	default:
		return fmt.Errorf("etcd-snapshot: unknown subcommand %q", sub)
	}
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func printSnapshots(files []snapshot.File, format string) error {
	sort.SliceStable(files, func(i, j int) bool { return files[i].Created.Before(files[j].Created) })
	switch format {
	case "json", "yaml":
		type item struct {
			SnapshotName string `json:"snapshotName"`
			Location     string `json:"location"`
			Size         int64  `json:"size"`
			CreationTime string `json:"creationTime"`
		}
		var items []item
		for _, f := range files {
			items = append(items, item{f.Name, f.Location, f.Size, f.Created.Format(time.RFC3339)})
		}
		b, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "    ")
		if err != nil {
			return err
		}
		if format == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
		}
		fmt.Println(string(b))
		return nil
	case "", "table":
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', 0)
		fmt.Fprint(w, "Name\tLocation\tSize\tCreated\n")
		for _, f := range files {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", f.Name, f.Location, f.Size, f.Created.Format(time.RFC3339))
		}
		return w.Flush()
	}
	return fmt.Errorf("invalid output format: %s", format)
}

// Token is `k3s token rotate` (k3s: pkg/cli/token/token.go Rotate). Unlike k3s, which reads
// the default data dir's token here, the test server honours --data-dir.
func Token(args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("token: only `k3s token rotate` is supported by the opsbook k3s test server")
	}
	set, err := parse("token rotate", config.TokenFlags(), args[1:])
	if err != nil {
		return err
	}
	fmt.Println("\033[33mWARNING\033[0m: Recommended to keep a record of the old token. If restoring from a snapshot, you must use the token associated with that snapshot.")
	c, err := connect(set, "token", "server", 30*time.Second)
	if err != nil {
		return err
	}
	newToken := set.String("new-token")
	if _, err := c.Do(http.MethodPut, "/v1-k3s/token", map[string]*string{"newToken": &newToken}); err != nil {
		return err
	}
	time.Sleep(time.Second)
	fmt.Println("Token rotated, restart k3s nodes with new token")
	return nil
}

// seeLog wraps a server error as k3s's CLI does ("see server log for details: ...").
func seeLog(err error) error { return fmt.Errorf("see server log for details: %w", err) }
