#!/usr/bin/env bash
# Installs what building and testing Flotilla needs beyond Rust, from Debian's packages, when
# it is missing: protoc and the well-known .proto files (protobuf-compiler, libprotobuf-dev; the
# etcd client compiles etcd's protobuf definitions at build time, and they import
# google/protobuf/descriptor.proto, which protobuf-compiler alone does not carry), etcd (etcd-server; the tests start real etcd servers) and, for
# the tests, kubectl (kubernetes-client; an older kubectl than current machines ship); a C
# compiler (gcc), which the linker and the mimalloc allocator's build need.
# Usage: scripts/deps.sh build|test
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
if [ "${1:-build}" = test ]; then
    command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
    command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
    # The real Kubernetes control plane the tests start serves TLS with certificates made by
    # openssl (scripts/k8s.sh builds its binaries with Go).
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
