#!/usr/bin/env bash
# Ingestion benchmark: `trajforge functions` against Python's `ast` on Django's sdist
# (about 490k lines of Python), in the same run. Prints files/s, lines/s, functions
# found by each, peak RSS, the speed ratio, and the warm-cache speed-up.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST_DATA="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
export TRAJFORGE_TEST_DATA="$TEST_DATA"
bash scripts/fetch-test-data.sh --bench
cargo build --release --locked -p trajforge -p trajforge-bench
REPO="${1:-$(ls -d "$TEST_DATA"/src/django-* | head -n1)}"
exec target/release/trajforge-bench ingest "$REPO" --runs "${RUNS:-3}"
