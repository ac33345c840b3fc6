#!/usr/bin/env bash
# Installs what building and testing Flotilla needs beyond Rust, from Debian's packages, when
# it is missing: protoc and the well-known .proto files (protobuf-compiler, libprotobuf-dev;
# the etcd client compiles etcd's protobuf definitions at build time, and they import
# google/protobuf/descriptor.proto, which protobuf-compiler alone does not carry); for the
# tests etcd (etcd-server; they start real etcd servers) and the CA certificates Go's module
# downloads check; a C compiler (gcc), which
# the linker and the mimalloc allocator's build need. kubectl is not taken from Debian (its 1.20
# is outside the skew a 1.33 server supports): scripts/k8s.sh builds the pinned release's
# kubectl, which scripts/test.sh uses when the machine has none.
# Usage: scripts/deps.sh build|test
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
if [ "${1:-build}" = test ]; then
    command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
    # scripts/k8s.sh fetches Go modules from the Go module proxy over HTTPS.
    [ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
