#!/usr/bin/env bash
# Builds Flotilla and runs a local fleet: a hub at https://127.0.0.1:6443 and three simulated
# member clusters with their agents, all in one process, keeping state in ./.flotilla/fleet.
# Ctrl-C stops it; running it again resumes the same fleet. Extra arguments go to
# `flotilla up` (e.g. --members 10, --heartbeat-period-seconds 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release -p flotilla
exec ./target/release/flotilla up --members 3 --data-dir .flotilla/fleet --bind 127.0.0.1:6443 "$@"
