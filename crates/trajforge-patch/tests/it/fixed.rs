//! Fixed-text tests: every parse error with its line number, edge cases of the format, and
//! the recall metric on hand-checked examples.

use trajforge_patch::{
    FileStatus, LineKind, Patch, RecallError, Verdict, changed_line_count, changed_lines,
    line_recall, line_recall_str, parse,
};

fn err(text: &str) -> String {
    parse(text).expect_err("must not parse").to_string()
}

fn ok(text: &str) -> Patch {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn texts(patch: &Patch) -> Vec<String> {
    changed_lines(patch).into_iter().map(|l| l.text).collect()
}

const HEAD: &str = "diff --git a/f b/f\n--- a/f\n+++ b/f\n";

#[test]
fn too_few_old_lines() {
    let text = format!("{HEAD}@@ -1,3 +1,3 @@\n a\n-b\n+c\n");
    assert_eq!(
        err(&text),
        "line 4: hunk header says 3 old lines but the hunk has 2"
    );
}

#[test]
fn too_few_lines_before_the_next_hunk() {
    let text = format!("{HEAD}@@ -1,2 +1,2 @@\n-a\n+b\n@@ -5 +5 @@\n-c\n+d\n");
    assert_eq!(
        err(&text),
        "line 4: hunk header says 2 old lines but the hunk has 1"
    );
}

#[test]
fn too_few_lines_before_the_next_file() {
    let text = format!("{HEAD}@@ -1 +1,2 @@\n-a\n+b\n{HEAD}@@ -1 +1 @@\n-c\n+d\n");
    assert_eq!(
        err(&text),
        "line 4: hunk header says 2 new lines but the hunk has 1"
    );
}

#[test]
fn too_many_old_lines() {
    let text = format!("{HEAD}@@ -1 +1 @@\n-a\n-b\n+c\n");
    assert_eq!(
        err(&text),
        "line 4: hunk header says 1 old line but the hunk has 2"
    );
}

#[test]
fn too_many_new_lines_after_the_counts_ran_out() {
    let text = format!("{HEAD}@@ -1 +1,2 @@\n-a\n+b\n+c\n+d\n");
    assert_eq!(
        err(&text),
        "line 4: hunk header says 2 new lines but the hunk has 3"
    );
}

#[test]
fn unknown_first_character() {
    let text = format!("{HEAD}@@ -1,2 +1,2 @@\n a\n*b\n");
    assert_eq!(
        err(&text),
        "line 6: hunk line starts with an unknown character: \"*b\""
    );
}

#[test]
fn hunk_outside_any_file() {
    assert_eq!(
        err("Some commit message\n@@ -1 +1 @@\n-a\n+b\n"),
        "line 2: hunk header outside any file"
    );
}

#[test]
fn malformed_hunk_headers() {
    for (header, line) in [
        ("@@ -1,x +1 @@", 4),
        ("@@ -1 +1", 4),
        ("@@ 1 +1 @@", 4),
        ("@@ -+1 +1 @@", 4),
        ("@@@ -1 -1 +1 @@@", 4),
    ] {
        let text = format!("{HEAD}{header}\n-a\n+b\n");
        assert_eq!(
            err(&text),
            format!("line {line}: malformed hunk header: {header:?}")
        );
    }
}

#[test]
fn garbage_between_files() {
    let text = format!("{HEAD}@@ -1 +1 @@\n-a\n+b\nrandom text\n{HEAD}");
    assert_eq!(
        err(&text),
        "line 7: unexpected line between files: \"random text\""
    );
}

#[test]
fn minus_line_without_plus_line() {
    assert_eq!(
        err("diff --git a/f b/f\n--- a/f\nnope\n"),
        "line 3: expected a \"+++ \" line after the \"--- \" line"
    );
}

#[test]
fn no_newline_marker_first_in_hunk() {
    let text = format!("{HEAD}@@ -1 +1 @@\n\\ No newline at end of file\n-a\n+b\n");
    assert_eq!(
        err(&text),
        "line 5: \"\\ No newline at end of file\" without a line before it"
    );
}

#[test]
fn broken_quoted_names() {
    assert_eq!(
        err("diff --git a/x b/y\nrename from \"x\\q\"\nrename to y\n"),
        "line 2: malformed quoted file name"
    );
    assert_eq!(
        err("diff --git \"a/x b/x\n"),
        "line 1: cannot tell the file names from this \"diff --git\" line"
    );
    assert_eq!(
        err("--- \"a/x\n+++ b/x\n"),
        "line 1: malformed quoted file name after \"--- \""
    );
}

#[test]
fn recall_error_names_the_patch() {
    let good = format!("{HEAD}@@ -1 +1 @@\n-a\n+b\n");
    let bad = format!("{HEAD}@@ -1 +1 @@\n-a\n");
    let p2 = line_recall_str(&good, &bad).expect_err("P2 is bad");
    assert!(matches!(p2, RecallError::P2(ref e) if e.line == 4));
    assert_eq!(
        p2.to_string(),
        "P2 does not parse: line 4: hunk header says 1 new line but the hunk has 0"
    );
    let p1 = line_recall_str(&bad, &good).expect_err("P1 is bad");
    assert!(matches!(p1, RecallError::P1(_)), "{p1}");
}

#[test]
fn empty_and_preamble_only_inputs_are_empty_patches() {
    assert_eq!(ok(""), Patch::default());
    assert_eq!(
        ok("just a commit message\n\n--- not a diff\n"),
        Patch::default()
    );
}

#[test]
fn plain_diff_u_with_timestamps() {
    let text = "\
--- a/src/lib.rs\t2024-01-01 10:00:00.000000000 +0000
+++ b/src/lib.rs\t2024-01-02 10:00:00.000000000 +0000
@@ -1,2 +1,2 @@
 fn main() {
-    old();
+    new();
diff -u old/x.c new/x.c
--- old/x.c
+++ new/x.c
@@ -0,0 +1 @@
+int x;
--- /dev/null
+++ b/added.py
@@ -0,0 +1 @@
+print('hi')
Only in b: extra
Binary files a/img.png and b/img.png differ
";
    let patch = ok(text);
    let summary: Vec<(&str, FileStatus, bool)> = patch
        .files
        .iter()
        .map(|f| (f.path(), f.status, f.binary))
        .collect();
    assert_eq!(
        summary,
        [
            ("src/lib.rs", FileStatus::Modified, false),
            ("new/x.c", FileStatus::Modified, false),
            ("added.py", FileStatus::Added, false),
            ("img.png", FileStatus::Modified, true),
        ]
    );
    assert_eq!(patch.files[1].old_path.as_deref(), Some("old/x.c"));
    let hunk = &patch.files[1].hunks[0];
    assert_eq!(
        (hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len),
        (0, 0, 1, 1)
    );
    assert_eq!(
        texts(&patch),
        ["-    old();", "+    new();", "+int x;", "+print('hi')"]
    );
}

#[test]
fn omitted_lengths_and_section_text() {
    let patch = ok(&format!("{HEAD}@@ -7 +7 @@ fn main() {{\n-a\n+b\n"));
    let hunk = &patch.files[0].hunks[0];
    assert_eq!(
        (hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len),
        (7, 1, 7, 1)
    );
    assert_eq!(hunk.section, "fn main() {");
    assert_eq!(hunk.line, 4);
}

#[test]
fn stripped_empty_context_line() {
    let patch = ok(&format!("{HEAD}@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"));
    let lines = &patch.files[0].hunks[0].lines;
    assert_eq!(lines[1].kind, LineKind::Context);
    assert_eq!(lines[1].text, "");
    assert_eq!(lines.len(), 4);
}

#[test]
fn crlf_patch_and_cr_content() {
    let lf = format!("{HEAD}@@ -1,2 +1,2 @@ sec\n a\n-b\n+B\n");
    let crlf = lf.replace('\n', "\r\n");
    let (a, b) = (ok(&lf), ok(&crlf));
    assert_eq!(texts(&b), ["-b", "+B"]);
    assert_eq!(b.files[0].hunks[0].section, "sec");
    assert_eq!(a, b);
    // Only the CR of the terminator goes: a CR-only difference remains a difference.
    let cr = format!("{HEAD}@@ -1 +1 @@\n-b\r\r\n+b\r\n");
    let patch = ok(&cr);
    assert_eq!(texts(&patch), ["-b\r", "+b"]);
    let other = ok(&format!("{HEAD}@@ -1 +1 @@\n-b\n+b\n"));
    assert_eq!(line_recall(&patch, &other).matched, 1);
}

#[test]
fn format_patch_signature_and_email_headers() {
    let text = "\
From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: Someone <someone@example.invalid>
Subject: [PATCH] fix

Body text.
---
 f | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/f b/f
index 1234567..89abcde 100644
--- a/f
+++ b/f
@@ -1 +1 @@
-a
+b
-- 
2.40.0

";
    let patch = ok(text);
    assert_eq!(patch.files.len(), 1);
    assert_eq!(texts(&patch), ["-a", "+b"]);
}

#[test]
fn quoted_and_spaced_names() {
    let text = "\
diff --git \"a/sp ace\\303\\251\" \"b/sp ace\\303\\251\"
new file mode 100644
--- /dev/null
+++ \"b/sp ace\\303\\251\"
@@ -0,0 +1 @@
+x
diff --git a/with space b/with space
old mode 100644
new mode 100755
diff --git a/old name b/new \"name
similarity index 90%
rename from old name
rename to \"new \\\"name\"
";
    let patch = ok(text);
    let names: Vec<(Option<&str>, Option<&str>, FileStatus)> = patch
        .files
        .iter()
        .map(|f| (f.old_path.as_deref(), f.new_path.as_deref(), f.status))
        .collect();
    assert_eq!(
        names,
        [
            (None, Some("sp ace\u{e9}"), FileStatus::Added),
            (Some("with space"), Some("with space"), FileStatus::Modified),
            (Some("old name"), Some("new \"name"), FileStatus::Renamed),
        ]
    );
    assert_eq!(patch.files[1].new_mode.as_deref(), Some("100755"));
}

#[test]
fn copies_and_empty_new_files() {
    let text = "\
diff --git a/a.txt b/b.txt
similarity index 100%
copy from a.txt
copy to b.txt
diff --git a/empty b/empty
new file mode 100644
index 0000000..e69de29
diff --git a/bye b/bye
deleted file mode 100755
index e69de29..0000000
";
    let patch = ok(text);
    let summary: Vec<(&str, FileStatus)> =
        patch.files.iter().map(|f| (f.path(), f.status)).collect();
    assert_eq!(
        summary,
        [
            ("b.txt", FileStatus::Copied),
            ("empty", FileStatus::Added),
            ("bye", FileStatus::Deleted),
        ]
    );
    assert_eq!(patch.files[0].old_path.as_deref(), Some("a.txt"));
    assert_eq!(patch.files[2].old_mode.as_deref(), Some("100755"));
}

#[test]
fn header_looking_body_lines_count() {
    // remove "-- x" and "@@ y", add "++ z" and "diff w": all body lines by the counts
    let text = format!("{HEAD}@@ -1,3 +1,3 @@\n--- x\n-@@ y\n+++ z\n+diff w\n ctx\n");
    let patch = ok(&text);
    assert_eq!(texts(&patch), ["--- x", "-@@ y", "+++ z", "+diff w"]);
}

#[test]
fn whitespace_only_lines_are_not_changed_lines_but_are_counted() {
    let text = format!("{HEAD}@@ -1,2 +1,3 @@\n-\n-a\n+ \t\n+\n+a \n");
    let patch = ok(&text);
    assert_eq!(texts(&patch), ["-a", "+a "]);
    assert_eq!(changed_line_count(&patch), 5);
}

fn patch_of(lines: &[&str]) -> String {
    let removed = lines.iter().filter(|l| l.starts_with('-')).count();
    let added = lines.len() - removed;
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    format!("{HEAD}@@ -1,{removed} +1,{added} @@\n{body}")
}

#[test]
fn recall_is_a_multiset_match_on_exact_text() {
    let p1 = patch_of(&["-x = 1", "+x = 2", "+x = 2", "+Y"]);
    let p2 = patch_of(&["+x = 2", "+y", "-x = 1 ", "+z"]);
    let r = line_recall_str(&p1, &p2).expect("parse");
    // "+x = 2" once (multiset), "-x = 1" differs by a trailing space, "+Y" by case
    assert_eq!((r.matched, r.total, r.candidate_total), (1, 4, 4));
    assert_eq!(r.recall, Some(0.25));
    assert_eq!(r.precision, Some(0.25));
    assert_eq!(r.verdict(0.25), Verdict::Kept);
    assert_eq!(r.verdict(0.5), Verdict::Rejected);
}

#[test]
fn recall_ignores_file_names_and_attributes_per_file() {
    let p1 = "\
diff --git a/one b/one
--- a/one
+++ b/one
@@ -1 +1 @@
-a
+b
diff --git a/two b/two
--- a/two
+++ b/two
@@ -1 +1 @@
-a
+c
";
    let p2 = "\
--- a/elsewhere
+++ b/elsewhere
@@ -1 +1 @@
-a
+c
";
    let r = line_recall_str(p1, p2).expect("parse");
    assert_eq!((r.matched, r.total), (2, 4));
    // the single "-a" of P2 goes to the first P1 line that wants it
    assert_eq!((r.files["one"].matched, r.files["one"].total), (1, 2));
    assert_eq!((r.files["two"].matched, r.files["two"].total), (1, 2));
    let json = serde_json::to_string(&r).expect("serialize");
    assert_eq!(
        json,
        r#"{"recall":0.5,"matched":2,"total":4,"precision":1.0,"candidate_total":2,"files":{"one":{"matched":1,"total":2},"two":{"matched":1,"total":2}}}"#
    );
}

#[test]
fn verdicts_for_empty_patches() {
    let some = patch_of(&["-a", "+b"]);
    let blank = patch_of(&["+   "]);
    let not_verified = line_recall_str(&blank, &some).expect("parse");
    assert_eq!(not_verified.recall, None);
    assert_eq!(not_verified.verdict(0.0), Verdict::NotVerified);
    let skipped = line_recall_str(&some, "").expect("parse");
    assert_eq!(skipped.recall, Some(0.0));
    assert_eq!(skipped.precision, None);
    assert_eq!(skipped.verdict(0.0), Verdict::Skipped);
    assert_eq!(
        line_recall_str("", "").expect("parse").verdict(1.0),
        Verdict::NotVerified
    );
    let json = serde_json::to_value(&skipped).expect("serialize");
    assert_eq!(json["precision"], serde_json::Value::Null);
    assert_eq!(
        serde_json::to_value(Verdict::NotVerified).expect("ser"),
        "not_verified"
    );
    let full = line_recall_str(&some, &some).expect("parse");
    assert_eq!(full.verdict(1.0), Verdict::Kept);
}

/// A patch adding `lines` lines `{prefix}{i}` to one file, generated as it is read (the test
/// never holds it whole either).
struct Generated {
    header: Vec<u8>,
    next: usize,
    lines: usize,
    prefix: &'static str,
    pending: Vec<u8>,
}

impl Generated {
    fn new(lines: usize, prefix: &'static str) -> Self {
        let header = format!(
            "diff --git a/big b/big\nnew file mode 100644\n--- /dev/null\n+++ b/big\n@@ -0,0 +1,{lines} @@\n"
        );
        Generated {
            header: header.into_bytes(),
            next: 0,
            lines,
            prefix,
            pending: Vec::new(),
        }
    }
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            if !self.header.is_empty() {
                self.pending = std::mem::take(&mut self.header);
            } else if self.next < self.lines {
                self.pending = format!("+{}{}\n", self.prefix, self.next).into_bytes();
                self.next += 1;
            }
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn recall_of_large_streamed_patches() {
    // 300,000 added lines in one hunk; P2 has the same text for even lines only.
    let n = 300_000;
    let p1 = std::io::BufReader::new(Generated::new(n, "line "));
    let mut p2_text = String::from("--- a/x\n+++ b/x\n");
    p2_text.push_str(&format!("@@ -1 +1,{} @@\n-gone\n", n / 2));
    for i in (0..n).step_by(2) {
        p2_text.push_str(&format!("+line {i}\n"));
    }
    let r =
        trajforge_patch::line_recall_reader(p1, p2_text.as_bytes(), u64::MAX).expect("both parse");
    assert_eq!(
        (r.matched, r.total, r.candidate_total),
        (n / 2, n, n / 2 + 1)
    );
    assert_eq!(r.recall, Some(0.5));
    assert_eq!(r.files["big"].total, n);
}

#[test]
fn streamed_recall_reports_a_line_that_is_not_utf8() {
    let good = format!("{HEAD}@@ -1 +1 @@\n-a\n+b\n");
    let bad = [HEAD.as_bytes(), b"@@ -1 +1 @@\n-a\n+\xff\n"].concat();
    let e = trajforge_patch::line_recall_reader(good.as_bytes(), bad.as_slice(), u64::MAX)
        .expect_err("P2 is bad");
    assert_eq!(
        e.to_string(),
        "P2 does not parse: line 6: not UTF-8 (byte 2 of the line)"
    );
}

#[test]
fn a_streamed_patch_over_the_byte_limit_is_refused_and_one_at_it_is_compared() {
    use trajforge_patch::{RecallReadError, line_recall_reader};
    let patch = format!("{HEAD}@@ -1 +1 @@\n-a\n+b\n");
    let at = patch.len() as u64;
    let r = line_recall_reader(patch.as_bytes(), patch.as_bytes(), at).expect("at the limit");
    assert_eq!((r.matched, r.total), (2, 2));
    let over = |e: RecallReadError| match e {
        RecallReadError::TooLarge { which, limit } => (which, limit),
        other => panic!("not refused for its size: {other}"),
    };
    let e = line_recall_reader(patch.as_bytes(), patch.as_bytes(), at - 1).expect_err("over");
    // P2 is read first and P1 not at all once P2 is refused.
    assert_eq!(over(e), ("P2", at - 1));
    let longer = format!("{patch}+c\n");
    let e = line_recall_reader(longer.as_bytes(), patch.as_bytes(), at).expect_err("P1 over");
    assert_eq!(over(e), ("P1", at));
    // An endless line without a newline is cut at the limit, not buffered whole.
    let endless = std::io::BufReader::new(std::io::repeat(b'+'));
    let e = line_recall_reader(patch.as_bytes(), endless, 1 << 16).expect_err("endless");
    assert_eq!(over(e), ("P2", 1 << 16));
}
