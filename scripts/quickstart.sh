#!/usr/bin/env bash
# Quick start: build trajforge and show what it finds in the shipped sample
# repository (examples/sample-repo, the more-itertools library).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/install-model.sh # default local teacher (SmolLM2-135M GGUF)
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

echo "==> building trajforge (release; the first build takes a few minutes)"
cargo build --release --locked -p trajforge

TRAJFORGE="$ROOT/target/release/trajforge"
SAMPLE_SRC="examples/sample-repo"

# The pipeline works on git repositories (every episode starts from a commit): make a
# repository of the shipped sample once, outside this checkout.
SAMPLE="$ROOT/.cache/quickstart/sample-repo"
if [ ! -d "$SAMPLE/.git" ]; then
    rm -rf "$SAMPLE"
    mkdir -p "$SAMPLE"
    cp -R "$SAMPLE_SRC/." "$SAMPLE/"
    git -C "$SAMPLE" init -q
    git -C "$SAMPLE" add -A
    git -C "$SAMPLE" -c user.name=trajforge -c user.email=quickstart@trajforge.invalid commit -qm "more-itertools sample"
fi
RUN_DIR="$ROOT/.cache/quickstart/run"

echo
echo "==> trajforge functions $SAMPLE_SRC --sample 5 --seed 1"
"$TRAJFORGE" functions "$SAMPLE_SRC" --sample 5 --seed 1

echo
echo "==> trajforge generate on the sample with the embedded local teacher (SmolLM2-135M, CPU)"
echo "    (resumable: run this script again to continue; the run folder is $RUN_DIR)"
"$TRAJFORGE" generate --repo "$SAMPLE" --teacher local --out "$RUN_DIR" \
    -n "${QUICKSTART_FUNCTIONS:-2}" --attempts 1 --max-steps "${QUICKSTART_STEPS:-8}" --concurrency 1

echo
echo "==> trajforge status $RUN_DIR"
"$TRAJFORGE" status "$RUN_DIR"

cat <<MSG

What you just saw: trajforge sampled functions of the sample repository (more-itertools,
a real pure-Python library with its tests; see $SAMPLE_SRC/TRAJFORGE-SAMPLE.md), and ran the
whole Soft-Verified Generation pipeline on them: a rollout from a drawn bug type in a sandboxed
workspace, the teacher's self-check, a synthetic issue, a second rollout from that issue alone,
and line-recall verification, all stored in $RUN_DIR.

The embedded teacher is a 135M-parameter model on the CPU: it proves the pipeline runs offline,
but its fixes are rarely real, so expect little or no kept data. Point the same command at a
capable model on any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, a hosted API):

  $TRAJFORGE generate --repo /path/to/your/repo --teacher http://GPU-HOST:8000/v1 \\
      --model YOUR-MODEL --out runs/first -n 200 --concurrency 16

Try next:
  $TRAJFORGE run --repo $SAMPLE --teacher local --task "..."   # one episode, watched live
  $TRAJFORGE --help
  scripts/test.sh                                             # the full test suite
MSG
