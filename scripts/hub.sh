#!/usr/bin/env bash
# Builds Flotilla and runs the hub on its embedded store (redb) at https://127.0.0.1:6443,
# keeping its data in ./.flotilla/hub. Ctrl-C stops it; running it again reuses the data.
# Extra arguments go to `flotilla hub` (e.g. --bind 127.0.0.1:7443, --store memory).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release -p flotilla
exec ./target/release/flotilla hub --data-dir .flotilla/hub --bind 127.0.0.1:6443 "$@"
