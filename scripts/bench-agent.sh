#!/usr/bin/env bash
# Agent runtime benchmark (issue 3, "Performance"), all figures from one run:
#   1. orchestrator overhead per step against an instant fake teacher,
#   2. 500 concurrent episodes in one process (peak RSS, peak threads, wall time),
#   3. workspace creation on Django's sdist (time, new disk),
#   4. CPU per step of mini-swe-agent 2.4.6 vs `trajforge run` on the same scripted episode.
#
#   scripts/bench-agent.sh                 everything
#   scripts/bench-agent.sh --only mini     one part (overhead, concurrent, workspace, mini)
#
# Extra arguments go to `trajforge-bench agent` (see `trajforge-bench agent --help`).
# Idempotent: mini-swe-agent is installed once into <repo>/.cache/bench-venv, the test data
# is fetched once into $TRAJFORGE_TEST_DATA (default <repo>/.cache/test-data).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TEST_DATA="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
case "$TEST_DATA" in
    /*) ;;
    *) TEST_DATA="$PWD/$TEST_DATA" ;;
esac
cd "$ROOT"
export TRAJFORGE_TEST_DATA="$TEST_DATA"

die() {
    echo "bench-agent.sh: error: $*" >&2
    exit 1
}

# bubblewrap and friends (prints "system packages: ok" when nothing is missing).
bash scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

# Django's sdist, the large repository of part 3.
bash scripts/fetch-test-data.sh --bench

# mini-swe-agent, the reference of part 4, in a venv of its own.
MINI_VERSION=2.4.6
MCP_VERSION=2.3.0
VENV="$ROOT/.cache/bench-venv"
if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('mini-swe-agent') == '$MINI_VERSION' and m.version('mcp') else 1)" 2>/dev/null &&
    [ -x "$VENV/bin/mini" ]; then
    echo "mini-swe-agent==$MINI_VERSION: already installed ($VENV)"
else
    command -v python3 >/dev/null 2>&1 || die "python3 not found; install it (scripts/setup.sh does on Debian)"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" ||
            die "could not create a virtualenv at $VENV with 'python3 -m venv' (Debian: apt-get install python3-venv), then re-run"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "mini-swe-agent==$MINI_VERSION" "mcp==$MCP_VERSION" ||
        die "pip could not install mini-swe-agent==$MINI_VERSION and mcp==$MCP_VERSION from PyPI into $VENV (output above); check that this machine reaches PyPI, then re-run"
    echo "mini-swe-agent==$MINI_VERSION: installed ($VENV)"
fi

cargo build --release --locked -p trajforge -p trajforge-bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in
    /*) ;;
    *) TARGET="$ROOT/$TARGET" ;;
esac
exec "$TARGET/release/trajforge-bench" agent \
    --trajforge "$TARGET/release/trajforge" \
    --mini "$VENV/bin/mini" \
    "$@"
