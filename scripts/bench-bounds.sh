#!/usr/bin/env bash
# Bounds benchmark (issue 19): peak memory and time of the same commands run by a baseline
# binary (e.g. the main branch's, built once) and by this tree's, in the same run:
#   - `generate` on one function whose rollouts write a large file and submit it (the patch
#     limit: the baseline carries the whole patch into the self-check and PR prompts);
#   - `functions` on a JavaScript file of 20,000 nested functions;
#   - loading a menu file of 40,000 entries (`trajforge menu --menu`);
#   - `recall` of a FILE_BYTES patch (one new file, one line per 60 bytes) against itself (this
#     tree refuses a patch over the 1 MiB patch limit after reading 1 MiB of it, exit 2), and
#     of a patch just within that limit;
#   - `import` of a SERA JSON Lines file of about FILE_BYTES (distinct copies of the fixture's
#     record; BENCH_IMPORT_BYTES overrides its size).
#   scripts/bench-bounds.sh BASELINE_BINARY [FILE_BYTES]
# FILE_BYTES (default 200 MiB) is what each rollout writes; a smaller size keeps the
# baseline's peak within a shared machine's memory. BENCH_SECTIONS picks sections
# (default "functions menu recall import generate").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE="${1:?usage: scripts/bench-bounds.sh BASELINE_BINARY [FILE_BYTES]}"
SIZE="${2:-$((200 << 20))}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --locked -p trajforge
NEW="$TARGET/debug/trajforge"
PY="$(command -v python3)"
TMP="$(mktemp -d /var/tmp/tf-bench-bounds.XXXXXX)"
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT

# Inputs.
python3 - "$TMP" <<'PY'
import sys
d = sys.argv[1]
n = 20000
with open(f"{d}/nested.js", "w") as f:
    f.write("".join(f"function f{i}() {{\n" for i in range(n)) + "}\n" * n)
with open(f"{d}/menu.toml", "w") as f:
    for i in range(40000):
        f.write(f'[[bug]]\nid = "bug-{i}"\ncategory = "logic"\nprompt = "Bug {i} in {{function}} of {{path}}."\n\n')
PY
mkdir -p "$TMP/nested" && mv "$TMP/nested.js" "$TMP/nested/"
cp -r examples/sample-repo "$TMP/repo"
git -C "$TMP/repo" init -q && git -C "$TMP/repo" add -A
git -C "$TMP/repo" -c user.name=b -c user.email=b@b commit -qm base

# measure LABEL BINARY ARGS...: prints "LABEL  seconds  peak-MB  stdout-bytes  exit code".
measure() {
    local label="$1" bin="$2" code=0
    shift 2
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$bin" "$@" >"$TMP/out" 2>"$TMP/err" || code=$?
    # time's last line holds the figures (a failed command adds a line before them).
    read -r secs kb < <(tail -n 1 "$TMP/time")
    printf '  %-10s %8.1f s  %8d MB peak  %12d bytes out  exit %d\n' "$label" "$secs" $((kb / 1024)) \
        "$(stat -c %s "$TMP/out")" "$code"
}

SECTIONS=" ${BENCH_SECTIONS:-functions menu recall import generate} "
if [[ "$SECTIONS" == *" functions "* ]]; then
    echo "functions on 20,000 nested JavaScript functions"
    measure baseline "$BASE" functions "$TMP/nested" --no-cache
    measure this "$NEW" functions "$TMP/nested" --no-cache
fi
if [[ "$SECTIONS" == *" menu "* ]]; then
    echo "menu of 40,000 entries"
    measure baseline "$BASE" menu --menu "$TMP/menu.toml" --kind bug
    measure this "$NEW" menu --menu "$TMP/menu.toml" --kind bug
fi
if [[ "$SECTIONS" == *" recall "* ]]; then
    # big.diff of FILE_BYTES; limit.diff, the same lines up to the 1 MiB patch limit.
    python3 - "$TMP" "$SIZE" <<'PY'
import sys
d, size = sys.argv[1], int(sys.argv[2])
def write(path, n):
    with open(path, "w") as f:
        f.write(f"diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,{n} @@\n")
        for i in range(n):
            f.write(f"+{i:>12} the same sentence on every line, numbered apart\n")
write(f"{d}/big.diff", size // 60)
write(f"{d}/limit.diff", ((1 << 20) - 200) // 62)
PY
    for patch in big limit; do
        echo "recall of a $(stat -c %s "$TMP/$patch.diff")-byte patch against itself"
        measure baseline "$BASE" recall "$TMP/$patch.diff" "$TMP/$patch.diff" --json
        measure this "$NEW" recall "$TMP/$patch.diff" "$TMP/$patch.diff" --json
    done
    rm -f "$TMP/big.diff" "$TMP/limit.diff"
fi
if [[ "$SECTIONS" == *" import "* ]]; then
    python3 - "$TMP/big.jsonl" "${BENCH_IMPORT_BYTES:-$SIZE}" crates/trajforge-import/fixtures/sera/sera.jsonl <<'PY'
import json, sys
path, size, fixture = sys.argv[1], int(sys.argv[2]), sys.argv[3]
record = json.loads(open(fixture).readline())
written, i = 0, 0
with open(path, "w") as f:
    while written < size:
        record["copy"] = i
        line = json.dumps(record) + "\n"
        f.write(line)
        written += len(line)
        i += 1
PY
    echo "import of a $(stat -c %s "$TMP/big.jsonl")-byte SERA file ($(wc -l <"$TMP/big.jsonl") records)"
    measure baseline "$BASE" import --from sera "$TMP/big.jsonl" --into "$TMP/import-baseline"
    measure this "$NEW" import --from sera "$TMP/big.jsonl" --into "$TMP/import-this"
    rm -rf "$TMP/big.jsonl" "$TMP"/import-*
fi
[[ "$SECTIONS" == *" generate "* ]] || exit 0
echo "generate, one function, rollouts writing $SIZE bytes"
for who in baseline this; do
    bin="$BASE"; [ "$who" = this ] && bin="$NEW"
    port=$((20000 + RANDOM % 20000))
    BENCH_FILE_BYTES="$SIZE" "$PY" scripts/bench_bounds_teacher.py "$port" >"$TMP/teacher-$who" &
    teacher=$!
    sleep 1
    mkdir -p "$TMP/work-$who" && chmod 755 "$TMP/work-$who"
    measure "$who" "$bin" generate --repo "$TMP/repo" --teacher "http://127.0.0.1:$port/v1" \
        --model bench --out "$TMP/run-$who" -n 1 --attempts 1 --work-dir "$TMP/work-$who" --concurrency 1
    kill -TERM "$teacher"; wait "$teacher" || true
    printf '             teacher received %s; store %d bytes\n' "$(cat "$TMP/teacher-$who")" \
        "$(du -cb "$TMP/run-$who"/trajforge.db* 2>/dev/null | tail -1 | cut -f1)"
done
