#!/usr/bin/env bash
# `store copy` benchmark (issue 16): a synthetic run of N jobs with a K KB trajectory each,
# copied from SQLite to a throwaway PostgreSQL cluster and back, each copy in a child process;
# peak RSS of each copy next to a child holding every row in memory and one only opening.
#
#   scripts/bench-store-copy.sh [--jobs N] [--kb K]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
cargo build --release -p trajforge-bench --locked
exec "${CARGO_TARGET_DIR:-target}/release/trajforge-bench" store-copy "$@"
