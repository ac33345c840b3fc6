#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, integration and end-to-end
# tests, then the API suite again against the embedded store and against etcd. The tests
# drive the real kubectl and start real etcd servers; scripts/deps.sh installs them (and
# protoc, for the build) from Debian's packages when missing. They also start real Kubernetes
# control planes (kube-apiserver, controller manager, scheduler, KWOK), which scripts/k8s.sh
# builds with Go from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
# The real Kubernetes control plane the tests compare with and place onto: built from the Go
# module proxy the first time (several minutes on 2 cores), cached outside the work tree after.
echo "== Kubernetes test binaries (scripts/k8s.sh)" >&2
FLOTILLA_K8S_BIN="$(scripts/k8s.sh)"
export FLOTILLA_K8S_BIN
if ! command -v kubectl >/dev/null 2>&1; then
    echo "no kubectl on PATH: using the one scripts/k8s.sh built" >&2
    export PATH="$FLOTILLA_K8S_BIN:$PATH"
fi

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test" >&2
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# Counts of one log: "N passed, M failed" over its test binaries.
count() {
    local p f
    p=$(grep -Eo '[0-9]+ passed' "$1" | awk '{s+=$1} END {print s+0}')
    f=$(grep -Eo '[0-9]+ failed' "$1" | awk '{s+=$1} END {print s+0}')
    echo "$p passed, $f failed"
}
set +e
# Every test binary runs even when one fails, so a run reports every failure.
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/workspace"
status=${PIPESTATUS[0]}
# The API suite (against the memory store above) against the other stores: the same tests
# again, counted apart so the workspace line counts each test once.
for store in redb etcd; do
    echo "== API suite against $store" >&2
    # --workspace (not -p flotilla-apiserver): the same feature resolution as the run above,
    # so the test binary is reused instead of its dependencies being built again.
    FLOTILLA_TEST_STORE=$store cargo test --workspace --test api 2>&1 | tee "$logs/$store"
    s=${PIPESTATUS[0]}
    [ "$s" = 0 ] || status=$s
done
set -e
echo "tests: $(count "$logs/workspace") (each test once; the API suite against the memory store)"
for store in redb etcd; do
    echo "API suite again against $store: $(count "$logs/$store")"
done
exit "$status"
