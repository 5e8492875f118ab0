#!/usr/bin/env bash
# The project's one test command (also what CI runs via .ci/run):
#   1. system packages (scripts/setup.sh),
#   2. pinned real-world test data (scripts/fetch-test-data.sh),
#   3. the reference Python environment (scripts/python-env.sh, <repo>/.cache/py), the
#      Claude Code CLI (scripts/claude-code.sh, <repo>/.cache/claude-code) and the podman
#      test image built from the host's packages (scripts/podman-test-image.sh),
#   4. cargo test over the whole workspace,
#   5. the build without the embedded llama.cpp teacher (cargo feature `local`; no cmake or
#      clang needed): the CLI compiles (what `--teacher local` then says is tested in step 4).
# Each step prints how long it took, to standard error.
# Extra arguments are passed to `cargo test`, e.g. scripts/test.sh -- --nocapture
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Make TRAJFORGE_TEST_DATA absolute (relative to the caller's directory).
TEST_DATA="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
case "$TEST_DATA" in
    /*) ;;
    *) TEST_DATA="$PWD/$TEST_DATA" ;;
esac
cd "$ROOT"

export TRAJFORGE_TEST_DATA="$TEST_DATA"
export TRAJFORGE_REPO_ROOT="$ROOT"

# Run a step and say how long it took, whether it passed or failed (CI keeps the output of a
# failed run: the figures show where a slow one spent its time); its exit status is kept.
step() {
    local start=$SECONDS status=0
    "$@" || status=$?
    echo "test.sh: '$*' took $((SECONDS - start)) s" >&2
    return "$status"
}

step bash scripts/setup.sh
# setup.sh may have found cargo in ~/.cargo/bin without it being on PATH.
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
step bash scripts/fetch-test-data.sh
step bash scripts/install-model.sh # the local teacher tests load the real model
step bash scripts/python-env.sh    # reference Python packages (openai client, tokenizers, pyarrow)
step bash scripts/claude-code.sh   # the Claude Code CLI, driven through `trajforge serve --tools trained`
step bash scripts/podman-test-image.sh >/dev/null # the `--sandbox podman` tests' image (cached)
export TRAJFORGE_PYTHON="${TRAJFORGE_PYTHON_ENV:-$ROOT/.cache/py}/bin/python"

step cargo test --workspace --all-targets --locked "$@"

step cargo check -p trajforge --no-default-features --locked
