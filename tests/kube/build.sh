#!/usr/bin/env bash
# Build the opsbook k3s test server (tests/kube/k3s: a test double of k3s made of
# upstream etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# and kwok, in one static binary) and etcdctl, from the Go modules pinned in
# tests/kube/go.mod, into <repo>/.cache/kube (override with KUBE_BIN_DIR for bin/):
#
#   bin/k3s                        the test server stamped as K3S_VERSION
#   bin/etcdctl                    go.etcd.io/etcd/etcdctl (raw etcd reads in tests)
#   airgap/<version>/k3s           the same binary under each test version, with
#   airgap/<version>/sha256sum-amd64.txt   the release checksum file's format:
#                                  K3S_VERSION, K3S_TEST_OLDER, K3S_TEST_NEWER and
#                                  K3S_TEST_BROKEN (which exits at start)
#
# The Traefik and helm.cattle.io CRDs of ../shared/kube-crds are copied into
# k3s/internal/deploy/crds/ first (the binary embeds them; not committed).
# The k3s release is the role's k3s_version (roles/k3s/defaults/main.yml); the
# other versions live in tests/kube/versions.env; this script fails if go.mod disagrees.
# The build is skipped when the stamp records the same inputs (go.mod, go.sum,
# versions.env, k3s_version, this script, every file under k3s/, the CRDs, the go version)
# and every output is present. KUBE_BUILD_FORCE=1 rebuilds anyway.
set -euo pipefail

start=$SECONDS
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=$root/.cache/kube
out=${KUBE_BIN_DIR:-$cache/bin}
airgap=$cache/airgap
stamp=$out/.build-stamp
crds_src=${OPSBOOK_KUBE_CRDS:-$root/../shared/kube-crds}
crds_dst=$here/k3s/internal/deploy/crds

die() {
	echo "tests/kube/build.sh: ERROR: $*" >&2
	exit 1
}
log() { echo "tests/kube/build.sh: $*"; }
elapsed() { log "$1 in $((SECONDS - start))s"; }

# ---- versions.env: KEY=value lines only ------------------------------------
keys=(K3S_COMMIT K3S_COMMIT_OF KUBE_VERSION ETCD_VERSION KWOK_VERSION K3S_TEST_OLDER K3S_TEST_NEWER K3S_TEST_BROKEN)
for v in "${keys[@]}"; do printf -v "$v" '%s' ""; done
while IFS= read -r line || [[ -n $line ]]; do
	[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
	[[ $line =~ ^([A-Z0-9_]+)=([^[:space:]\"\']+)$ ]] || die "versions.env: bad line: $line"
	for v in "${keys[@]}"; do
		[[ ${BASH_REMATCH[1]} == "$v" ]] && printf -v "$v" '%s' "${BASH_REMATCH[2]}"
	done
done <"$here/versions.env"
for v in "${keys[@]}"; do
	[[ -n ${!v} ]] || die "versions.env: $v is not set"
done
# The one pin of the k3s release: the role's k3s_version.
role_defaults=$root/roles/k3s/defaults/main.yml
K3S_VERSION=$(sed -n 's/^k3s_version: *"\{0,1\}\([^" ]*\)"\{0,1\} *$/\1/p' "$role_defaults")
[[ -n $K3S_VERSION ]] || die "no k3s_version in $role_defaults"
[[ $K3S_COMMIT_OF == "$K3S_VERSION" ]] ||
	die "versions.env: K3S_COMMIT is the commit of $K3S_COMMIT_OF, but the role pins k3s_version $K3S_VERSION: update K3S_COMMIT and K3S_COMMIT_OF"
k3s_re='^v1\.([0-9]+)\.([0-9]+)\+k3s[0-9]+$'
[[ $K3S_VERSION =~ $k3s_re ]] || die "K3S_VERSION=$K3S_VERSION is not like v1.36.4+k3s1"
k3s_minor=${BASH_REMATCH[1]}
for v in K3S_TEST_OLDER K3S_TEST_NEWER K3S_TEST_BROKEN; do
	[[ ${!v} =~ $k3s_re && ${BASH_REMATCH[1]} == "$k3s_minor" ]] ||
		die "$v=${!v} must be a v1.$k3s_minor.Z+k3sN release (same minor as K3S_VERSION)"
done
[[ $K3S_COMMIT =~ ^[0-9a-f]{40}$ ]] || die "K3S_COMMIT=$K3S_COMMIT is not a 40-hex commit"
[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_VERSION=$KUBE_VERSION is not like v1.36.3"
kube_minor=${BASH_REMATCH[1]}
staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
[[ $kube_minor == "$k3s_minor" ]] ||
	die "KUBE_VERSION=$KUBE_VERSION and K3S_VERSION=$K3S_VERSION are different Kubernetes minors: keep them in step"

# ---- toolchain -------------------------------------------------------------
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || die "go not found (need Go >= 1.26)"
export GOTOOLCHAIN=local CGO_ENABLED=0
go_version=$(go env GOVERSION)
[[ $go_version =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 26)) || die "need Go >= 1.26, have $go_version"
cd "$here"

# ---- go.mod must say what versions.env says --------------------------------
modjson=$(go mod edit -json)
require_of() { # module -> required version ("" if not required)
	{ grep -A1 -F "\"Path\": \"$1\"," <<<"$modjson" || true; } |
		sed -n 's/.*"Version": "\(.*\)".*/\1/p' | head -n1
}
expect() { # module version
	local got
	got=$(require_of "$1")
	[[ $got == "$2" ]] || die "go.mod requires $1 ${got:-(nothing)}, but versions.env says $2"
}
expect k8s.io/kubernetes "$KUBE_VERSION"
for m in api/v3 client/v3 client/pkg/v3 pkg/v3 server/v3 etcdctl/v3 etcdutl/v3; do
	expect "go.etcd.io/etcd/$m" "$ETCD_VERSION"
done
expect sigs.k8s.io/kwok "$KWOK_VERSION"
[[ -z $(require_of github.com/k3s-io/k3s) ]] ||
	die "go.mod requires github.com/k3s-io/k3s: the test server must not depend on k3s code"
bad=$(awk -v want="$staging_version" '
	$2 == "=>" && $1 ~ /^k8s\.io\// && $3 == $1 && $4 != want { print $1 " => " $3 " " $4 }
	$1 == "replace" && $2 ~ /^k8s\.io\// && $3 == "=>" && $5 != want { print $2 " => " $4 " " $5 }
' go.mod)
[[ -z $bad ]] || die "go.mod replaces staging modules with a version other than $staging_version:"$'\n'"$bad"
n_replaced=$(grep -cE "^[[:space:]]*k8s\.io/[a-z-]+ => k8s\.io/[a-z-]+ $staging_version\$" go.mod || true)
((n_replaced >= 30)) || die "go.mod replaces only $n_replaced k8s.io staging modules with $staging_version (expected all ~33)"

# ---- the CRDs the binary embeds ----------------------------------------------
compgen -G "$crds_src/*.yaml" >/dev/null ||
	die "no CRD files in $crds_src (../shared/kube-crds; set OPSBOOK_KUBE_CRDS to another directory)"
for f in "$crds_src"/*.yaml; do
	cmp -s "$f" "$crds_dst/$(basename "$f")" || cp -f "$f" "$crds_dst/"
done

# ---- up to date? -------------------------------------------------------------
mkdir -p "$out" "$airgap"
exec 9>"$out/.build.lock"
flock 9 # one build at a time (parallel test runs share the cache)

versions=("$K3S_VERSION" "$K3S_TEST_OLDER" "$K3S_TEST_NEWER" "$K3S_TEST_BROKEN")
want_stamp=$({
	cat go.mod go.sum versions.env build.sh
	echo "$K3S_VERSION"
	find k3s -type f -print0 | sort -z | xargs -0 sha256sum
	echo "$go_version $(go env GOOS GOARCH)"
} | sha256sum | cut -d' ' -f1)
fresh=1
[[ ${KUBE_BUILD_FORCE:-0} == 1 ]] && fresh=0
[[ -f $stamp && $(<"$stamp") == "$want_stamp" ]] || fresh=0
[[ -x $out/k3s && -x $out/etcdctl ]] || fresh=0
for v in "${versions[@]}"; do [[ -x $airgap/$v/k3s && -f $airgap/$v/sha256sum-amd64.txt ]] || fresh=0; done
if ((fresh)); then
	elapsed "up to date ($out), nothing built"
	exit 0
fi

# ---- build -------------------------------------------------------------------
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
pkg=opsbook/tests/kube/k3s/internal/version
ldflags_for() { # version commit broken
	local f="-s -w"
	# k3s stamps its own version into Kubernetes (kubectl version, kubeletVersion).
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		f+=" -X $p.gitVersion=$1 -X $p.gitMajor=1 -X $p.gitMinor=$k3s_minor"
		f+=" -X $p.gitCommit=$2 -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
	done
	f+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
	f+=" -X $pkg.Version=$1 -X $pkg.GitCommit=$2 -X $pkg.FailAtStart=$3"
	f+=" -X $pkg.UpstreamKubernetes=$KUBE_VERSION -X $pkg.UpstreamEtcd=$ETCD_VERSION"
	echo "$f"
}
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building the k3s test server $K3S_VERSION (Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION) and etcdctl with $go_version"
go build -trimpath -ldflags "$(ldflags_for "$K3S_VERSION" "$K3S_COMMIT" false)" -o "$tmp/k3s" ./k3s/cmd/k3s
elapsed "compiled k3s"
go build -trimpath -ldflags "-s -w" -o "$tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
zero=0000000000000000000000000000000000000000
for v in "$K3S_TEST_OLDER" "$K3S_TEST_NEWER" "$K3S_TEST_BROKEN"; do
	broken=false
	[[ $v == "$K3S_TEST_BROKEN" ]] && broken=true
	go build -trimpath -ldflags "$(ldflags_for "$v" "$zero" "$broken")" -o "$tmp/k3s-$v" ./k3s/cmd/k3s
done
elapsed "linked the upgrade-test builds"

install_airgap() { # binary version
	local dir=$airgap/$2
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$1" "$dir/k3s"
	# The release's checksum file format (k3s: install.sh reads the line for `k3s`).
	(cd "$dir" && sha256sum k3s >sha256sum-amd64.txt)
}
install_airgap "$tmp/k3s" "$K3S_VERSION"
for v in "$K3S_TEST_OLDER" "$K3S_TEST_NEWER" "$K3S_TEST_BROKEN"; do install_airgap "$tmp/k3s-$v" "$v"; done
mv -f "$tmp/k3s" "$out/k3s"
mv -f "$tmp/etcdctl" "$out/etcdctl"
# Binaries of the earlier, multi-process test control plane.
rm -f "$out"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,etcd,etcdutl,kwok,kwok-stages.yaml}
echo "$want_stamp" >"$stamp"

"$out/k3s" --version
"$out/etcdctl" version | sed -n 1p
elapsed "built into $cache"
