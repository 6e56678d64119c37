// Package cli is the k3s test server's command line: `k3s server|agent|kubectl|
// secrets-encrypt|etcd-snapshot|token` with k3s's flags, config file and output
// (k3s: cmd/k3s/main.go, cmd/server/main.go, pkg/cli/*).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"opsbook/tests/kube/k3s/internal/config"
	"opsbook/tests/kube/k3s/internal/configfile"
	"opsbook/tests/kube/k3s/internal/flags"
	"opsbook/tests/kube/k3s/internal/version"
)

const usage = `NAME:
   k3s - opsbook k3s test server (a test double built from upstream Kubernetes and etcd, not k3s)

USAGE:
   k3s [global options] command [command options]

COMMANDS:
   server           Run management server
   agent            Run node agent
   kubectl          Run kubectl
   secrets-encrypt  Control secrets encryption and keys rotation
   etcd-snapshot    Manage etcd snapshots
   token            Manage tokens

GLOBAL OPTIONS:
   --version, -v  print the version
   --help, -h     show help
`

// notifySocket is $NOTIFY_SOCKET as the process started. Main unsets it so that nothing
// embedded (etcd's server notifies systemd when it is ready to serve) sends READY=1 early;
// the server and agent send it themselves (k3s: pkg/cli/server/server.go does the same).
var notifySocket string

// NotifyReady sends READY=1 to systemd, once everything is up.
func NotifyReady() {
	if notifySocket == "" {
		return
	}
	os.Setenv("NOTIFY_SOCKET", notifySocket)
	if _, err := daemon.SdNotify(true, daemon.SdNotifyReady); err != nil {
		logrus.Warnf("Failed to notify systemd: %v", err)
	}
}

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	logrus.SetOutput(os.Stderr)
	notifySocket = os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	prog := filepath.Base(args[0])
	if prog == "kubectl" {
		return Kubectl(args[1:])
	}
	if prog == "crictl" || prog == "ctr" {
		fmt.Fprintf(os.Stderr, "%s: not available in the opsbook k3s test server (there is no container runtime)\n", prog)
		return 1
	}
	parsed, err := parser().Parse(args)
	if err != nil {
		logrus.Fatalf("Error: %v", err)
	}
	if len(parsed) < 2 {
		fmt.Print(usage)
		return 0
	}
	cmd, rest := parsed[1], parsed[2:]
	switch cmd {
	case "--version", "-v", "version":
		fmt.Print(version.Text())
		return 0
	case "--help", "-h", "help":
		fmt.Print(usage)
		return 0
	case "kubectl":
		return Kubectl(rest)
	case "crictl", "ctr":
		fmt.Fprintf(os.Stderr, "%s: not available in the opsbook k3s test server (there is no container runtime)\n", cmd)
		return 1
	}
	run, ok := map[string]func([]string) error{
		"server":          Server,
		"agent":           Agent,
		"secrets-encrypt": SecretsEncrypt,
		"etcd-snapshot":   EtcdSnapshot,
		"token":           Token,
	}[cmd]
	if !ok {
		fmt.Fprintf(os.Stderr, "No help topic for '%s'\n", cmd)
		return 3
	}
	if err := run(rest); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		logrus.Fatalf("Error: %v", err)
	}
	return 0
}

func parser() configfile.Parser {
	return configfile.Parser{
		DefaultConfig: config.DefaultConfigFile,
		EnvName:       "K3S_CONFIG_FILE",
		ValidFlags: map[string]map[string]bool{
			"server":        flags.Names(config.ServerFlags()),
			"etcd-snapshot": flags.Names(config.EtcdSnapshotFlags()),
		},
		Warn: func(msg string) { logrus.Warn(msg) },
	}
}

// setupLogging applies --debug and --log FILE (k3s: pkg/cli/cmds/log.go).
func setupLogging(set *flags.Set) error {
	if set.Bool("debug") {
		logrus.SetLevel(logrus.DebugLevel)
	}
	if f := set.String("log"); f != "" {
		out, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if set.Bool("alsologtostderr") {
			logrus.SetOutput(io.MultiWriter(out, os.Stderr))
		} else {
			logrus.SetOutput(out)
		}
		os.Stderr = out
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func parse(name string, table []flags.Flag, args []string) (*flags.Set, error) {
	set := flags.New(name, table)
	if err := set.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return set, nil
}
