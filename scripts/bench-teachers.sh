#!/usr/bin/env bash
# Several teacher servers (issue 16): the same workload of concurrent multi-step episodes
# against one scripted server (fixed latency, C slots) and against two, in one run. Prints
# the throughput of each, their ratio (target >= 1.8x) and the smallest share of an episode's
# requests on one server (target >= 95%). Needs nothing but cargo.
#   scripts/bench-teachers.sh [extra trajforge-bench teachers options, e.g. --slots 16]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in
    /*) ;;
    *) TARGET="$ROOT/$TARGET" ;;
esac
cargo build --release --locked -p trajforge-bench
exec "$TARGET/release/trajforge-bench" teachers "$@"
