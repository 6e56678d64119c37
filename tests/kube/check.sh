#!/usr/bin/env bash
# gofmt, go vet and go test for the k3s test server (tests/kube/k3s). Run after
# tests/kube/build.sh, which puts the embedded CRDs in place (`make gocheck`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
export GOTOOLCHAIN=local CGO_ENABLED=0
# the same build flags as build.sh, so vet and test reuse its compiled packages
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath"
unformatted=$(gofmt -l k3s)
if [[ -n $unformatted ]]; then
	echo "tests/kube/check.sh: not gofmt-formatted:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./k3s/...
go test -count=1 ./k3s/...
