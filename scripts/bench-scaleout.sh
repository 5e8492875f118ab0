#!/usr/bin/env bash
# Scale-out store benchmark (issue 16, "Performance"), all figures from one run:
#   N jobs by 16 worker processes on a throwaway PostgreSQL cluster, each job claimed,
#   committed in two stages and finished under the lease check with an instant teacher,
#   against the same loop in one process on SQLite; duplicates (must be 0); and the time
#   until a job of a worker killed with SIGKILL is claimed again.
#
#   scripts/bench-scaleout.sh [--jobs N] [--workers W] [--lease SECS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
cargo build --release -p trajforge-bench --locked
exec "${CARGO_TARGET_DIR:-target}/release/trajforge-bench" scaleout "$@"
