#!/usr/bin/env bash
# Export benchmark: `trajforge export` of 10,000 trajectories with exact token counts (Qwen3's
# tokenizer and chat template) and truncation, against the same work in Python with
# `tokenizers` + `jinja2` (scripts/hf_export_reference.py), in the same run. Prints both times,
# the ratio, that every row's token count is identical, and peak memory at N/4 and N.
#   scripts/bench-export.sh [extra trajforge-bench export options, e.g. --trajectories 2000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST_DATA="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
export TRAJFORGE_TEST_DATA="$TEST_DATA"
bash scripts/fetch-test-data.sh >/dev/null
bash scripts/python-env.sh
PY="${TRAJFORGE_PYTHON:-$ROOT/.cache/py/bin/python}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release --locked -p trajforge -p trajforge-bench
exec "$TARGET/release/trajforge-bench" export --tokenizer "$TEST_DATA/tokenizers/qwen3" --python "$PY" "$@"
