// Package kubelet holds the one kubelet behaviour the opsbook k3s test server imitates (it
// runs no kubelet; kwok plays the nodes): protect-kernel-defaults.
package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// KernelDefaults are the kernel settings the kubelet wants (kubernetes:
// pkg/kubelet/cm/container_manager_linux.go setupKernelTunables, the values from
// k8s.io/component-helpers/node/util/sysctl), named as under /proc/sys.
var KernelDefaults = map[string]int{
	"vm/overcommit_memory":      1,
	"vm/panic_on_oom":           0,
	"kernel/panic":              10,
	"kernel/panic_on_oops":      1,
	"kernel/keys/root_maxkeys":  1000000,
	"kernel/keys/root_maxbytes": 25000000,
}

// CheckKernelDefaults is the kubelet's check with protect-kernel-defaults: every setting
// that differs is an error ("invalid kernel flag"), where without the flag the kubelet sets
// it itself. k3s passes the flag to its kubelet (k3s: pkg/daemons/agent/agent_linux.go) and
// exits when the kubelet does (k3s: pkg/daemons/executor/embed.go, "kubelet exited"); the
// test server checks at start instead of when its (absent) kubelet would start.
func CheckKernelDefaults(procSys string) error {
	keys := make([]string, 0, len(KernelDefaults))
	for k := range KernelDefaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		want := KernelDefaults[k]
		data, err := os.ReadFile(filepath.Join(procSys, k))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		got, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		if got != want {
			errs = append(errs, fmt.Sprintf("invalid kernel flag: %s, expected value: %d, actual value: %d", k, want, got))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kubelet exited: failed to run Kubelet: [%s]", strings.Join(errs, ", "))
	}
	return nil
}
