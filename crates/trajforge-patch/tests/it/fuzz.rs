//! Fuzzing the unified-diff parser with hostile text (`TRAJFORGE_FUZZ_CASES` sets the budget):
//! no input panics; every failure is a `ParseError`, and what parses also renders and scores.

use proptest::prelude::*;
use trajforge_patch::{changed_lines, line_recall, line_recall_str, parse};
use trajforge_testkit::fuzz;

/// Realistic patches the mutations start from.
const SEEDS: &[&str] = &[
    "diff --git a/src/lib.py b/src/lib.py\nindex 4d2994b..07255a4 100644\n--- a/src/lib.py\n+++ b/src/lib.py\n@@ -1,2 +1,3 @@\n def f():\n-    return 1\n+    return 2\n+# done\n",
    "diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..3e75765\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+new\n\\ No newline at end of file\ndiff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n",
    "diff --git \"a/sp ace\\tq.txt\" \"b/sp ace\\tq.txt\"\nsimilarity index 90%\nrename from a\nrename to b\nBinary files a/x.bin and b/x.bin differ\n",
    "--- a.txt\t2024-01-01\n+++ b.txt\t2024-01-02\n@@ -3,4 +3,4 @@ ctx\n a\n-b\r\n+c\n d\n",
];

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hostile_diffs_never_panic(text in fuzz::text_inputs(SEEDS, 2048)) {
        if let Ok(patch) = parse(&text) {
            let _ = changed_lines(&patch);
            let _ = line_recall(&patch, &patch);
            let _ = patch.to_string();
        }
        let _ = line_recall_str(&text, SEEDS[0]);
    }
}
