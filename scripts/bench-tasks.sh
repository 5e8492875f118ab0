#!/usr/bin/env bash
# Task-mining benchmark (issue 15) on more-itertools' full history, in one run:
#  1. screening: `trajforge tasks mine --dry-run` over every first-parent commit against the
#     bare `git log --first-parent -p` that feeds it (the floor), median of RUNS runs;
#  2. validation: `tasks mine --test-cmd` (sandbox, two runs per side) on a window of seven
#     commits against the same test command run directly on the host on the same patches
#     (a git worktree per change, test patch then gold patch, twice each): our overhead.
# The bundle: examples/more-itertools.bundle (more-itertools' full history, committed).
# TEST_CMD overrides the validation's test command (default: tests.test_more, ~10 s a run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST_DATA="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
BUNDLE="$ROOT/examples/more-itertools.bundle"
RUNS="${RUNS:-3}"
TEST_CMD="${TEST_CMD:-python3 -m unittest -v tests.test_more}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${TRAJFORGE_BIN:-}" ]; then
    cargo build --release --locked -p trajforge --no-default-features
    TRAJFORGE_BIN="$TARGET/release/trajforge"
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"
git clone -q "$BUNDLE" "$TMP/more-itertools"
REPO="$TMP/more-itertools"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== screening: every first-parent commit of more-itertools ($(git -C "$REPO" rev-list --count HEAD) commits in all)"
ours=(); floor=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    "$TRAJFORGE_BIN" tasks mine --repo "$REPO" --since 1970-01-01 --out "$TMP/dry.jsonl" --dry-run --json > "$TMP/screen.json" 2>/dev/null
    t1=$(now)
    git -C "$REPO" log --first-parent --diff-merges=first-parent -p --binary --no-renames --format='%H %P%n%cI%n%B' > /dev/null
    t2=$(now)
    ours+=("$(echo "$t1 - $t0" | bc -l)"); floor+=("$(echo "$t2 - $t1" | bc -l)")
done
COMMITS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["commits"])' "$TMP/screen.json")
OURS=$(printf '%s\n' "${ours[@]}" | median); FLOOR=$(printf '%s\n' "${floor[@]}" | median)
printf 'trajforge tasks mine --dry-run: %d first-parent commits in %.2f s (%.0f commits/s)\n' "$COMMITS" "$OURS" "$(echo "$COMMITS / $OURS" | bc -l)"
printf 'git log --first-parent -p (baseline, same range): %.2f s (%.0f commits/s); ratio %.2fx\n' "$FLOOR" "$(echo "$COMMITS / $FLOOR" | bc -l)" "$(echo "$OURS / $FLOOR" | bc -l)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("changes to mine:", d["tasks"], "| skipped:", ", ".join(f"{k} {v}" for k,v in sorted(d["skipped"].items())))' "$TMP/screen.json"

echo "== validation: 49c991e..ed86a15 (7 commits), test command: $TEST_CMD"
mkdir -p "$TMP/work" && chmod 755 "$TMP/work"
t0=$(now)
"$TRAJFORGE_BIN" tasks mine --repo "$REPO" --after 49c991e --until ed86a15 --statement commit \
    --test-cmd "$TEST_CMD" --concurrency 1 --work-dir "$TMP/work" --out "$TMP/tasks.jsonl" 2> "$TMP/mine.log"
t1=$(now)
MINE=$(echo "$t1 - $t0" | bc -l)
tail -n 2 "$TMP/mine.log"
# The same four runs per change with a test patch, straight on the host.
RAW=0
python3 - "$TMP/tasks.jsonl" "$TMP/patches" <<'PY'
import json, os, sys
out = sys.argv[2]; os.makedirs(out, exist_ok=True)
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["test_patch"]:
        d = os.path.join(out, t["instance_id"]); os.makedirs(d)
        open(os.path.join(d, "base"), "w").write(t["base_commit"])
        open(os.path.join(d, "test.patch"), "w").write(t["test_patch"])
        open(os.path.join(d, "gold.patch"), "w").write(t["patch"])
PY
for d in "$TMP"/patches/*/; do
    wt="$TMP/wt"
    git -C "$REPO" worktree add -q --detach "$wt" "$(cat "$d/base")"
    git -C "$wt" apply "$d/test.patch"
    for patch in "" "" "$d/gold.patch" ""; do
        [ -n "$patch" ] && git -C "$wt" apply "$patch"
        t0=$(now); (cd "$wt" && bash -c "$TEST_CMD" > /dev/null 2>&1) || true; t1=$(now)
        RAW=$(echo "$RAW + $t1 - $t0" | bc -l)
    done
    git -C "$REPO" worktree remove --force "$wt"
done
N=$(ls "$TMP/patches" | wc -l)
printf 'tasks mine with tests: %.1f s for %d changes with tests (4 runs each) and %d without\n' "$MINE" "$N" "$(($(wc -l < "$TMP/tasks.jsonl") - N))"
printf 'the same %d test runs on the host: %.1f s\n' "$((4 * N))" "$RAW"
printf 'overhead of trajforge against the host runs (sandbox, snapshots, parsing, store): %.1f s = %.1f%% of the wall time\n' \
    "$(echo "$MINE - $RAW" | bc -l)" "$(echo "100 * ($MINE - $RAW) / $MINE" | bc -l)"
# Inside each validation: the four sandboxed test runs against the whole validation
# (snapshot of the base commit, set-up, runs, parsing, clean-up), as recorded in the store.
python3 - "$TMP/tasks.run/trajforge.db" "$MINE" <<'PY'
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT payload FROM stages WHERE stage = 'task'").fetchall()
vs = [json.loads(p)["validation"] for (p,) in rows if json.loads(p).get("validation")]
tests = sum(v["test_seconds"] for v in vs); total = sum(v["total_seconds"] for v in vs)
wall = float(sys.argv[2])
print(f"validations: {len(vs)}; test runs {tests:.1f} s of {total:.1f} s validating "
      f"(our overhead {100 * (total - tests) / total:.1f}%); outside validation {wall - total:.1f} s "
      f"of {wall:.1f} s wall (start-up, screening, statements, store): total overhead "
      f"{100 * (wall - tests) / wall:.1f}% (target < 5%: {'ok' if (wall - tests) / wall < 0.05 else 'MISSED'})")
PY
