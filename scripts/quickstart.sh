#!/usr/bin/env bash
# Quick start: build trajforge and show what it finds in the shipped sample
# repository (examples/sample-repo, the more-itertools library).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

echo "==> building trajforge (release; the first build takes a few minutes)"
cargo build --release --locked -p trajforge

TRAJFORGE="$ROOT/target/release/trajforge"
SAMPLE="examples/sample-repo"

echo
echo "==> trajforge functions $SAMPLE --sample 10 --seed 1"
"$TRAJFORGE" functions "$SAMPLE" --sample 10 --seed 1

# ---------------------------------------------------------------------------
# GENERATE STEP: once the pipeline's `generate` job exists (later issues), run
# it here on $SAMPLE and explain its output. Nothing is generated yet.
# ---------------------------------------------------------------------------

cat <<MSG

What you just saw: trajforge walked $SAMPLE (more-itertools, a real
pure-Python library vendored with its test suite; see
$SAMPLE/TRAJFORGE-SAMPLE.md), found its functions and methods, skipped test
directories, and drew 10 of them with a fixed seed. These are the starting
points of the pipeline: for each one a teacher model is asked to investigate
and fix a possible bug around that function, and its work is kept as a
trajectory when it passes soft verification.

Try next:
  $TRAJFORGE functions $SAMPLE --sample 10 --seed 2   # a different draw
  $TRAJFORGE functions /path/to/your/repo --sample 20
  $TRAJFORGE --help
  scripts/test.sh                                     # the full test suite
MSG
