package cli

import (
	"os"
	"strings"

	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	"opsbook/tests/kube/k3s/internal/datadir"
)

// Kubectl is `k3s kubectl`: upstream kubectl, defaulting to /etc/rancher/k3s/k3s.yaml when
// neither $KUBECONFIG nor --kubeconfig is given (k3s: pkg/kubectl/main.go).
func Kubectl(args []string) int {
	explicit := os.Getenv("KUBECONFIG") != ""
	for _, a := range args {
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			explicit = true
		}
	}
	if !explicit {
		if _, err := os.Stat(datadir.GlobalKubeconfig); err == nil {
			os.Setenv("KUBECONFIG", datadir.GlobalKubeconfig)
		}
	}
	os.Args = append([]string{"kubectl"}, args...)
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
	return 0
}
