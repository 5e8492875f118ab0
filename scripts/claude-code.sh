#!/usr/bin/env bash
# Installs (idempotently) the Claude Code CLI the end-to-end test of `trajforge serve --tools trained`
# drives: npm package @anthropic-ai/claude-code, pinned, into <repo>/.cache/claude-code (node and npm
# come from apt through scripts/setup.sh). Prints nothing when it is already installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="2.1.328"
DIR="${TRAJFORGE_CLAUDE_CODE_DIR:-$ROOT/.cache/claude-code}"
STAMP="$DIR/.version"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" && -x "$DIR/node_modules/.bin/claude" ]]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || {
    echo "claude-code.sh: npm not found; run scripts/setup.sh first" >&2
    exit 1
}
echo "claude-code.sh: installing @anthropic-ai/claude-code@$VERSION into $DIR" >&2
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$VERSION" >&2
echo "$VERSION" > "$STAMP"
