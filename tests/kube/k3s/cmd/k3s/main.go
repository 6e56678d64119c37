// Command k3s is the opsbook k3s test server: a test double of k3s built from upstream
// Kubernetes, etcd and kwok, for opsbook's tests only. It is not k3s. See the README's
// "k3s test server" section.
package main

import (
	"os"

	"opsbook/tests/kube/k3s/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args)) }
