#!/usr/bin/env bash
# Messages API benchmark: time to first token and total time of streamed answers through
# `trajforge serve --upstream` (Anthropic's Messages API) against the same scripted upstream
# called directly, in the same run (target: under 10% overhead). Extra arguments go to
# `trajforge-bench messages` (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release --locked -p trajforge -p trajforge-bench
exec "${CARGO_TARGET_DIR:-target}/release/trajforge-bench" messages "$@"
