#!/usr/bin/env bash
# Local teacher benchmark: prompt and generation tokens/s through raw llama-cpp-2 (the
# baseline), the in-process LocalTeacher and `trajforge serve` over HTTP, in the same run,
# with the overhead of our layers; then a 20-step synthetic episode with and without
# KV-cache prefix reuse. Extra arguments go to `trajforge-bench local` (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-model.sh
cargo build --release --locked -p trajforge -p trajforge-bench
exec "${CARGO_TARGET_DIR:-target}/release/trajforge-bench" local "$@"
