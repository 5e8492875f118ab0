#!/usr/bin/env bash
# Abandoned requests benchmark (issue 19): `trajforge serve` on the embedded model; N clients
# (50 by default) send a long request each and disconnect while it waits; the wait of a small
# request sent right after, next to the same request on the idle server, and each server's
# peak memory, for a baseline binary (e.g. the main branch's, built once) and this tree's.
#   scripts/bench-serve.sh [BASELINE_BINARY] [-- extra arguments of `trajforge-bench abandon`]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release --locked -p trajforge -p trajforge-bench
BIN="${CARGO_TARGET_DIR:-target}/release"
ARGS=()
if [[ $# -gt 0 && "$1" != "--" ]]; then
    ARGS+=(--baseline "$1")
    shift
fi
[[ "${1:-}" == "--" ]] && shift
exec "$BIN/trajforge-bench" abandon "${ARGS[@]}" "$@"
