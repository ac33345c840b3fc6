#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, integration and end-to-end
# tests, then the API suite again against the embedded store and against etcd. The tests
# drive the real kubectl and start real etcd servers; scripts/deps.sh installs them (and
# protoc, for the build) from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The API suite (memory above) against the other stores.
for store in redb etcd; do
    echo "== API suite against $store" >&2
    FLOTILLA_TEST_STORE=$store cargo test -p flotilla-apiserver --test api 2>&1 | tee -a "$log"
    s=${PIPESTATUS[0]}
    [ "$s" = 0 ] || status=$s
done
set -e
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
