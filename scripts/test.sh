#!/usr/bin/env bash
# The project's one test command (also what CI runs via .ci/run):
#   1. system packages (scripts/setup.sh),
#   2. pinned real-world test data (scripts/fetch-test-data.sh),
#   3. the reference Python environment (scripts/python-env.sh, <repo>/.cache/py), the
#      Claude Code CLI (scripts/claude-code.sh, <repo>/.cache/claude-code) and the podman
#      test image built from the host's packages (scripts/podman-test-image.sh),
#   4. cargo test over the whole workspace,
#   5. the build without the embedded llama.cpp teacher (cargo feature `local`; no cmake or
#      clang needed): the CLI compiles, and `--teacher local` says how to get a build with it.
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

bash scripts/setup.sh
# setup.sh may have found cargo in ~/.cargo/bin without it being on PATH.
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
bash scripts/fetch-test-data.sh
bash scripts/install-model.sh # the local teacher tests load the real model
bash scripts/python-env.sh    # reference Python packages (openai client, tokenizers, pyarrow)
bash scripts/claude-code.sh   # the Claude Code CLI, driven through `trajforge serve --tools trained`
bash scripts/podman-test-image.sh >/dev/null # the `--sandbox podman` tests' image (cached)
export TRAJFORGE_PYTHON="${TRAJFORGE_PYTHON_ENV:-$ROOT/.cache/py}/bin/python"

cargo test --workspace --all-targets --locked "$@"

# Alone (not unified with the CLI's default features), the pipeline has no `local` feature.
cargo test -p trajforge-pipeline --lib --locked "$@" teacher::
cargo check -p trajforge --no-default-features --locked
