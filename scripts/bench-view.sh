#!/usr/bin/env bash
# Viewer benchmark: `trajforge view` on a synthetic run of 100,000 trajectories built by the
# benchmark through the store's API (one of them 115 steps long): overview, list pages,
# full-text search p95, the 115-step trajectory page and the server's peak memory, each next
# to the issue's target, with `trajforge status --json` on the same store as the baseline.
# `--postgres` also copies the run into a throwaway PostgreSQL cluster (`store copy`) and
# measures `trajforge view --store URL --run NAME` the same way.
#   scripts/bench-view.sh [extra trajforge-bench view options, e.g. --trajectories 20000 --postgres]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release --locked -p trajforge -p trajforge-bench
exec "$TARGET/release/trajforge-bench" view "$@"
