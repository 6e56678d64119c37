#!/usr/bin/env bash
# Build the test control plane from the Go modules pinned in tests/kube/go.mod
# into <repo>/.cache/kube/bin (override with KUBE_BIN_DIR):
#   kube-apiserver kube-controller-manager kube-scheduler kubectl   k8s.io/kubernetes
#   etcd etcdctl etcdutl                                            go.etcd.io/etcd
#   kwok                                                            sigs.k8s.io/kwok
# kwok's Stage configuration is not built: it is the committed
# tests/kube/kwok-stages.yaml, which opsbook.kube passes to kwok (--config)
# straight from the checkout, so editing it needs no rebuild.
# All binaries are static (CGO_ENABLED=0), so they also run in Debian containers.
#
# Versions live in tests/kube/versions.env; this script fails if go.mod
# disagrees with it. The build is skipped when the stamp file records the same
# inputs (go.mod, go.sum, versions.env, this script, go version) and every
# binary is present. KUBE_BUILD_FORCE=1 rebuilds anyway.
set -euo pipefail

start=$SECONDS
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${KUBE_BIN_DIR:-$root/.cache/kube/bin}
stamp=$out/.build-stamp

die() {
	echo "tests/kube/build.sh: ERROR: $*" >&2
	exit 1
}
log() { echo "tests/kube/build.sh: $*"; }
elapsed() { log "$1 in $((SECONDS - start))s"; }

# binary name in $out -> Go package (must match the tool block of go.mod)
declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	[kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[etcd]=go.etcd.io/etcd/server/v3
	[etcdctl]=go.etcd.io/etcd/etcdctl/v3
	[etcdutl]=go.etcd.io/etcd/etcdutl/v3
	[kwok]=sigs.k8s.io/kwok/cmd/kwok
)
names=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl etcdutl kwok)

# ---- versions.env: KEY=value lines only ------------------------------------
K3S_VERSION= K3S_COMMIT= KUBE_VERSION= ETCD_VERSION= KWOK_VERSION=
while IFS= read -r line || [[ -n $line ]]; do
	[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
	[[ $line =~ ^([A-Z0-9_]+)=([^[:space:]\"\']+)$ ]] || die "versions.env: bad line: $line"
	case ${BASH_REMATCH[1]} in
	K3S_VERSION | K3S_COMMIT | KUBE_VERSION | ETCD_VERSION | KWOK_VERSION)
		printf -v "${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"
		;;
	esac
done <"$here/versions.env"
for v in K3S_VERSION K3S_COMMIT KUBE_VERSION ETCD_VERSION KWOK_VERSION; do
	[[ -n ${!v} ]] || die "versions.env: $v is not set"
done
[[ $K3S_VERSION =~ ^v1\.([0-9]+)\.[0-9]+\+k3s[0-9]+$ ]] || die "K3S_VERSION=$K3S_VERSION is not like v1.36.4+k3s1"
k3s_minor=${BASH_REMATCH[1]}
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
# `go mod edit -json` reads only go.mod: fast and offline.
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
# If the k3s module is ever required (the proxy refuses it today), it must be
# the release commit: pseudo-versions end in the first 12 hex digits.
k3s_req=$(require_of github.com/k3s-io/k3s)
if [[ -n $k3s_req && $k3s_req != *-"${K3S_COMMIT:0:12}" ]]; then
	die "go.mod requires github.com/k3s-io/k3s $k3s_req, not K3S_COMMIT=$K3S_COMMIT ($K3S_VERSION)"
fi
# Every k8s.io staging module must be replaced by the release of KUBE_VERSION.
bad=$(awk -v want="$staging_version" '
	$2 == "=>" && $1 ~ /^k8s\.io\// && $3 == $1 && $4 != want { print $1 " => " $3 " " $4 }
	$1 == "replace" && $2 ~ /^k8s\.io\// && $3 == "=>" && $5 != want { print $2 " => " $4 " " $5 }
' go.mod)
[[ -z $bad ]] || die "go.mod replaces staging modules with a version other than $staging_version:"$'\n'"$bad"
n_replaced=$(grep -cE "^[[:space:]]*k8s\.io/[a-z-]+ => k8s\.io/[a-z-]+ $staging_version\$" go.mod || true)
((n_replaced >= 30)) || die "go.mod replaces only $n_replaced k8s.io staging modules with $staging_version (expected all ~33)"
for name in "${names[@]}"; do
	grep -qE "^[[:space:]]*(tool )?${pkgs[$name]}\$" go.mod || die "go.mod has no tool directive for ${pkgs[$name]}"
done

# ---- up to date? -------------------------------------------------------------
mkdir -p "$out"
exec 9>"$out/.build.lock"
flock 9 # one build at a time (parallel test runs share the cache)

want_stamp=$({
	cat go.mod go.sum versions.env build.sh
	echo "$go_version $(go env GOOS GOARCH)"
} | sha256sum | cut -d' ' -f1)
fresh=1
[[ ${KUBE_BUILD_FORCE:-0} == 1 ]] && fresh=0
[[ -f $stamp && $(<"$stamp") == "$want_stamp" ]] || fresh=0
for name in "${names[@]}"; do [[ -x $out/$name ]] || fresh=0; done
if ((fresh)); then
	elapsed "up to date ($out), nothing built"
	exit 0
fi

# ---- build -------------------------------------------------------------------
# Reproducible version stamp: the release time of the k8s.io/kubernetes module.
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$kube_minor"
	ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done
ldflags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"

tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pkglist=()
for name in "${names[@]}"; do pkglist+=("${pkgs[$name]}"); done
log "building ${names[*]} (k8s $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION) with $go_version"
go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkglist[@]}"
elapsed "compiled"

for name in "${names[@]}"; do
	# go build names each binary after its package path (minus a /vN suffix)
	built=${pkgs[$name]%/v[0-9]*}
	built=${built##*/}
	[[ -x $tmp/$built ]] || die "go build did not produce $built for ${pkgs[$name]}"
	mv -f "$tmp/$built" "$out/$name"
done
# Earlier builds copied kwok's default stages here; the project's file replaced them.
rm -f "$out/kwok-stages.yaml"
echo "$want_stamp" >"$stamp"

"$out/kube-apiserver" --version
"$out/kubectl" version --client
"$out/etcd" --version | sed -n 1p
"$out/kwok" --version 2>/dev/null || "$out/kwok" --help >/dev/null
elapsed "built into $out"
