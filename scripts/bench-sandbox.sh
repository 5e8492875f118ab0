#!/usr/bin/env bash
# Sandbox hardening benchmark (issue 19, "Performance"): cost per command of the seccomp
# filter, of the reduced /etc and of Landlock, and of the podman container backend, against
# the unhardened bubblewrap sandbox, all settings interleaved in one run (one-shot sandbox,
# session round trips, python and git start-up, the patch). The container column uses the
# locally built test image (scripts/podman-test-image.sh).
#   scripts/bench-sandbox.sh [extra trajforge-bench sandbox options, e.g. --rounds 100]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# bubblewrap and podman (prints "system packages: ok" when nothing is missing).
bash scripts/setup.sh
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in
    /*) ;;
    *) TARGET="$ROOT/$TARGET" ;;
esac
IMAGE="$(bash scripts/podman-test-image.sh)"
cargo build --release --locked -p trajforge-bench
exec "$TARGET/release/trajforge-bench" sandbox --podman-image "$IMAGE" "$@"
