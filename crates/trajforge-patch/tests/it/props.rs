//! Property tests over generated patches: rendering round-trips through the parser, and the
//! recall metric behaves like a multiset intersection.

use proptest::prelude::*;
use trajforge_patch::{
    FilePatch, FileStatus, Hunk, HunkLine, LineKind, Patch, changed_lines, line_matches,
    line_recall, line_recall_reader, line_recall_str, parse,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z(){};= ]{1,10}",
        2 => "[ \t]{0,3}",
        1 => Just("-- x".to_owned()),
        1 => Just("- ".to_owned()),
        1 => Just("++ b/y".to_owned()),
        1 => Just("@@ -1 +1 @@".to_owned()),
        1 => Just("diff --git a/x b/x".to_owned()),
        1 => Just("Foo".to_owned()),
        1 => Just("foo ".to_owned()),
        2 => "\\PC{0,6}",
        1 => Just("cr\r".to_owned()),
        1 => Just("mid\rcr".to_owned()),
    ]
}

fn body_line() -> impl Strategy<Value = HunkLine> {
    (
        prop_oneof![
            Just(LineKind::Context),
            Just(LineKind::Added),
            Just(LineKind::Removed)
        ],
        text(),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(kind, text, no_newline_at_eof)| HunkLine {
            kind,
            text,
            no_newline_at_eof,
            line: 0,
        })
}

fn hunk() -> impl Strategy<Value = Hunk> {
    (
        0usize..2000,
        0usize..2000,
        prop_oneof![Just(String::new()), "[a-z(){} ]{0,10}"],
        prop::collection::vec(body_line(), 1..6),
    )
        .prop_map(|(old_start, new_start, section, lines)| {
            let old_len = lines.iter().filter(|l| l.kind != LineKind::Added).count();
            let new_len = lines.iter().filter(|l| l.kind != LineKind::Removed).count();
            Hunk {
                line: 0,
                old_start,
                old_len,
                new_start,
                new_len,
                section,
                lines,
            }
        })
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => "[a-z]{1,5}(\\.rs)?",
        1 => Just("sp ace".to_owned()),
        1 => Just("caf\u{e9}".to_owned()),
        1 => Just("\u{65e5}\u{672c}".to_owned()),
        1 => Just("q\"uote".to_owned()),
        1 => Just("back\\slash".to_owned()),
        1 => Just("t\tab".to_owned()),
    ];
    prop::collection::vec(segment, 1..4).prop_map(|s| s.join("/"))
}

fn mode() -> impl Strategy<Value = String> {
    prop_oneof![Just("100644".to_owned()), Just("100755".to_owned())]
}

/// One file change of a shape git itself produces.
fn file_patch() -> impl Strategy<Value = FilePatch> {
    let status = prop_oneof![
        3 => Just(FileStatus::Modified),
        1 => Just(FileStatus::Added),
        1 => Just(FileStatus::Deleted),
        1 => Just(FileStatus::Renamed),
        1 => Just(FileStatus::Copied),
    ];
    (
        status,
        path(),
        path(),
        prop::option::of((mode(), mode())),
        mode(),
        prop::collection::vec(hunk(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(status, a, b, modes, single, hunks, binary)| {
            let (old_mode, new_mode) = modes.unzip();
            let mut file = FilePatch {
                old_path: Some(a.clone()),
                new_path: Some(a),
                status,
                old_mode,
                new_mode,
                binary: binary && hunks.is_empty(),
                hunks,
            };
            match status {
                FileStatus::Added => {
                    file.old_path = None;
                    (file.old_mode, file.new_mode) = (None, Some(single));
                }
                FileStatus::Deleted => {
                    file.new_path = None;
                    (file.old_mode, file.new_mode) = (Some(single), None);
                }
                FileStatus::Renamed | FileStatus::Copied => file.new_path = Some(b),
                FileStatus::Modified => {}
            }
            file
        })
}

fn patch() -> impl Strategy<Value = Patch> {
    prop::collection::vec(file_patch(), 0..4).prop_map(|files| Patch { files })
}

/// Clears the input line numbers, which a generated patch cannot know in advance.
fn without_line_numbers(mut patch: Patch) -> Patch {
    for hunk in patch.files.iter_mut().flat_map(|f| &mut f.hunks) {
        hunk.line = 0;
        for line in &mut hunk.lines {
            line.line = 0;
        }
    }
    patch
}

/// The same changes with files and the hunks inside each file in another order.
fn reordered(patch: &Patch, rotate: usize) -> Patch {
    let mut files = patch.files.clone();
    for file in &mut files {
        file.hunks.reverse();
        let n = file.hunks.len().max(1);
        file.hunks.rotate_left(rotate % n);
    }
    files.reverse();
    let n = files.len().max(1);
    files.rotate_left(rotate % n);
    Patch { files }
}

/// Straightforward reference: remove each matched P2 line from a list.
fn naive_matched(p1: &Patch, p2: &Patch) -> usize {
    let mut pool: Vec<String> = changed_lines(p2).into_iter().map(|l| l.text).collect();
    let mut matched = 0;
    for line in changed_lines(p1) {
        if let Some(i) = pool.iter().position(|t| *t == line.text) {
            pool.swap_remove(i);
            matched += 1;
        }
    }
    matched
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rendered_patches_parse_back(p in patch()) {
        let text = p.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        // line numbers point at the right input lines
        let lines: Vec<&str> = text
            .split_inclusive('\n')
            .map(|l| l.strip_suffix('\n').map_or(l, |l| l.strip_suffix('\r').unwrap_or(l)))
            .collect();
        for hunk in parsed.files.iter().flat_map(|f| &f.hunks) {
            prop_assert!(lines[hunk.line - 1].starts_with("@@ -"));
            for body in &hunk.lines {
                prop_assert_eq!(lines[body.line - 1], format!("{}{}", body.kind.sign(), body.text));
            }
        }
        prop_assert_eq!(without_line_numbers(parsed), p);
    }

    #[test]
    fn crlf_terminated_patches_parse_the_same(p in patch()) {
        let has_cr = p.files.iter().flat_map(|f| &f.hunks).flat_map(|h| &h.lines)
            .any(|l| l.text.contains('\r'));
        prop_assume!(!has_cr);
        let text = p.to_string().replace('\n', "\r\n");
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(without_line_numbers(parsed), p);
    }

    #[test]
    fn a_patch_fully_recalls_itself(p in patch()) {
        let r = line_recall(&p, &p);
        let total = changed_lines(&p).len();
        prop_assert_eq!(r.total, total);
        prop_assert_eq!(r.matched, total);
        if total > 0 {
            prop_assert_eq!(r.recall, Some(1.0));
            prop_assert_eq!(r.precision, Some(1.0));
        } else {
            prop_assert_eq!(r.recall, None);
        }
    }

    #[test]
    fn recall_of_text_and_of_streams_is_the_recall_of_the_parsed_patches(p1 in patch(), p2 in patch(), cap in 1usize..64) {
        let expected = line_recall(&p1, &p2);
        let (t1, t2) = (p1.to_string(), p2.to_string());
        prop_assert_eq!(line_recall_str(&t1, &t2).map_err(|e| TestCaseError::fail(e.to_string()))?, expected.clone());
        // Small buffers put the reads' boundaries anywhere in a line.
        let read = |t: &str| std::io::BufReader::with_capacity(cap, std::io::Cursor::new(t.as_bytes().to_vec()));
        let streamed = line_recall_reader(read(&t1), read(&t2), u64::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(streamed, expected);
    }

    #[test]
    fn order_of_files_and_hunks_does_not_matter(p1 in patch(), p2 in patch(), k in 0usize..4) {
        let base = line_recall(&p1, &p2);
        let moved = line_recall(&reordered(&p1, k), &reordered(&p2, k + 1));
        prop_assert_eq!(
            (base.recall, base.precision, base.matched, base.total, base.candidate_total),
            (moved.recall, moved.precision, moved.matched, moved.total, moved.candidate_total)
        );
    }

    #[test]
    fn recall_is_a_bounded_multiset_intersection(p1 in patch(), p2 in patch()) {
        let r = line_recall(&p1, &p2);
        prop_assert_eq!(r.matched, naive_matched(&p1, &p2));
        prop_assert!(r.matched <= r.total.min(r.candidate_total));
        for value in [r.recall, r.precision].into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&value));
        }
        prop_assert_eq!(r.files.values().map(|f| f.matched).sum::<usize>(), r.matched);
        prop_assert_eq!(r.files.values().map(|f| f.total).sum::<usize>(), r.total);
    }

    #[test]
    fn line_marks_count_what_the_recall_counts(p1 in patch(), p2 in patch()) {
        let r = line_recall(&p1, &p2);
        let m = line_matches(&p1, &p2);
        prop_assert_eq!(m.reference.len(), r.total);
        prop_assert_eq!(m.candidate.len(), r.candidate_total);
        prop_assert_eq!(m.reference.iter().filter(|(_, hit)| *hit).count(), r.matched);
        prop_assert_eq!(m.candidate.iter().filter(|(_, hit)| *hit).count(), r.matched);
        // Every marked position is a changed line with the text the metric compares.
        let text = |p: &Patch, pos: &trajforge_patch::LinePos| {
            let l = &p.files[pos.file].hunks[pos.hunk].lines[pos.line];
            format!("{}{}", l.kind.sign(), l.text)
        };
        let texts: Vec<String> = m.reference.iter().map(|(pos, _)| text(&p1, pos)).collect();
        let expected: Vec<String> = changed_lines(&p1).into_iter().map(|l| l.text).collect();
        prop_assert_eq!(texts, expected);
    }

    #[test]
    fn changed_lines_are_signed_and_never_blank(p in patch()) {
        for line in changed_lines(&p) {
            prop_assert!(line.text.starts_with(['+', '-']));
            prop_assert!(!line.text[1..].trim().is_empty(), "{:?}", line.text);
        }
    }
}
