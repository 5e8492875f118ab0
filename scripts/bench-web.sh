#!/usr/bin/env bash
# Web benchmark (issue 7): on the real bidict documentation site served on 127.0.0.1, in one
# run: crawl rate (pages/s), accessibility-snapshot time per page against Playwright's
# aria_snapshot() driving the same /usr/bin/chromium, and the latency from an action (click,
# fill) to the next observation, against Playwright's click + aria_snapshot().
# Extra arguments go to `trajforge-bench web` (see --help; --python none skips Playwright).
# Idempotent: chromium via scripts/setup.sh, the site via scripts/fetch-test-data.sh,
# Playwright via scripts/python-env.sh (pinned in scripts/python-requirements.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
bash scripts/fetch-test-data.sh
bash scripts/python-env.sh
cargo build --release --locked -p trajforge-bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in
    /*) ;;
    *) TARGET="$ROOT/$TARGET" ;;
esac
exec "$TARGET/release/trajforge-bench" web "$@"
