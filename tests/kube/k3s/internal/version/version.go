// Package version holds what `k3s --version` prints. The values are stamped at
// link time by tests/kube/build.sh (-X), so one source tree builds the pinned
// release and the older/newer/broken builds the upgrade tests use.
package version

import (
	"fmt"
	"runtime"
	"strings"
)

// Stamped by tests/kube/build.sh with -ldflags "-X ...".
var (
	// Version is the k3s release this build imitates, e.g. v1.36.4+k3s1.
	Version = "v0.0.0+k3s0"
	// GitCommit is the k3s release commit (40 hex); --version prints its first 8.
	GitCommit = "0000000000000000000000000000000000000000"
	// UpstreamKubernetes and UpstreamEtcd are the upstream releases actually built in.
	UpstreamKubernetes = "unknown"
	UpstreamEtcd       = "unknown"
	// FailAtStart, when "true", makes `k3s server` exit at start: the broken build of the
	// upgrade tests.
	FailAtStart = "false"
)

// Marker is printed by --version and logged at start: this binary is not k3s.
const Marker = "opsbook k3s test server: a test double built from upstream Kubernetes and etcd, not k3s"

// Text is the --version output. The first two lines follow k3s's format
// (k3s: pkg/cli/cmds/root.go, "k3s version v1.34.3+k3s1 (48ffa7b6)" then
// "go version go1.24.11"); the third names what this really is.
func Text() string {
	short := GitCommit
	if len(short) > 8 {
		short = short[:8]
	}
	return fmt.Sprintf("k3s version %s (%s)\ngo version %s\n%s (Kubernetes %s, etcd %s)\n",
		Version, short, runtime.Version(), Marker, UpstreamKubernetes, UpstreamEtcd)
}

// Broken reports whether this is the build that fails at start.
func Broken() bool { return strings.EqualFold(FailAtStart, "true") }
