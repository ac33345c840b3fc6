#!/usr/bin/env bash
# Builds the real Kubernetes components the tests use as member cluster, as hub and as the
# reference of the differential API suite: kube-apiserver, kube-controller-manager and
# kube-scheduler of one pinned release (from the k8s.io/kubernetes module and its k8s.io/*
# staging modules at the matching versions), and KWOK to simulate nodes and pods on that real
# control plane; also that release's kubectl, for machines that carry none (Debian's is 1.20,
# outside the skew a 1.33 server supports). Everything comes from the Go module proxy; the binaries are cached outside the
# work tree and rebuilt only when the pinned versions change.
#
# Usage: scripts/k8s.sh [bin-dir]   prints the directory holding the binaries
#   FLOTILLA_K8S_CACHE   where builds are cached (default ~/.cache/flotilla/k8s)
#
# The pinned release follows the minor version the hub reports (schema::GIT_VERSION).
set -euo pipefail
K8S_VERSION=v1.33.13
KWOK_VERSION=v0.7.0
cache=${FLOTILLA_K8S_CACHE:-$HOME/.cache/flotilla/k8s}
out=$cache/$K8S_VERSION-kwok-$KWOK_VERSION
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
# Prints the directory and exits when every binary is there.
done_if_built() {
    for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || return 0; done
    echo "$out/bin"
    exit 0
}
done_if_built
command -v go >/dev/null 2>&1 || {
    echo "k8s.sh: the Go toolchain (go) is needed to build the Kubernetes test binaries" >&2
    exit 1
}
mkdir -p "$out/src" "$out/bin"
# One build at a time: tests that find no FLOTILLA_K8S_BIN run this themselves, several at
# once, and two builds sharing the cache moved each other's files away.
exec 9>"$out/.lock"
flock 9
done_if_built
cd "$out/src"
log=$out/build.log
: >"$log"
step() { echo "k8s.sh: $*" >&2; }
export GOFLAGS=-mod=mod CGO_ENABLED=0

# k8s.io/kubernetes replaces its staging modules with paths inside its own tree, which `go
# install pkg@version` refuses; a module of our own requires it and points each staging module
# at its published version (v0.MINOR.PATCH for v1.MINOR.PATCH).
step "resolving k8s.io/kubernetes@$K8S_VERSION"
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging=${K8S_VERSION/v1./v0.}
{
    echo "module flotilla.dev/k8s-test-binaries"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
} >go.mod
cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
step "downloading modules (log: $log)"
go mod tidy >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$out/bin/$b" ] && continue
    step "building $b $K8S_VERSION"
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
        -o "$out/bin/$b.tmp" "k8s.io/kubernetes/cmd/$b" >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
    mv "$out/bin/$b.tmp" "$out/bin/$b"
done
if [ ! -x "$out/bin/kwok" ]; then
step "building kwok $KWOK_VERSION"
GOBIN=$out/bin.tmp go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >>"$log" 2>&1 ||
    { tail -20 "$log" >&2; exit 1; }
mv "$out/bin.tmp/kwok" "$out/bin/kwok"
rmdir "$out/bin.tmp"
fi
echo "$out/bin"
