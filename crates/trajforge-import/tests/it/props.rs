//! Parsers never panic on arbitrary or damaged input, and report damage at the right line.

use proptest::prelude::*;
use trajforge_import::{Format, Layout, parse_bytes};

use crate::fixture;

fn format() -> impl Strategy<Value = Format> {
    prop::sample::select(Format::ALL.to_vec())
}

/// Bytes that look a little like JSON Lines: braces, quotes, keys the parsers know, newlines.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "\n",
        " ",
        "null",
        "1",
        "\"messages\"",
        "\"role\"",
        "\"assistant\"",
        "\"tool_calls\"",
        "\"content\"",
        "\"history\"",
        "\"info\"",
        "\"instance_id\"",
        "\"[]\"",
        "\"exit\"",
        "\u{e9}",
        "\\",
    ]);
    prop::collection::vec(
        prop_oneof![
            pieces.prop_map(|s| s.as_bytes().to_vec()),
            any::<u8>().prop_map(|b| vec![b])
        ],
        0..200,
    )
    .prop_map(|v| v.concat())
}

fn non_blank_lines(bytes: &[u8]) -> Vec<usize> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .map(|(i, _)| i + 1)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_lines_are_each_imported_or_reported(f in format(), bytes in jsonish()) {
        let parsed = parse_bytes(f, &bytes, Layout::Lines);
        let mut seen: Vec<usize> = parsed.records.iter().map(|r| r.line)
            .chain(parsed.skipped.iter().map(|s| s.line)).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, non_blank_lines(&bytes));
        prop_assert!(parsed.skipped.iter().all(|s| !s.reason.is_empty()));
    }

    #[test]
    fn arbitrary_documents_never_panic(f in format(), bytes in jsonish()) {
        let parsed = parse_bytes(f, &bytes, Layout::Document);
        prop_assert!(parsed.records.len() + parsed.skipped.len() == 1);
        let lines = bytes.split(|&b| b == b'\n').count();
        prop_assert!(parsed.skipped.iter().all(|s| s.line >= 1 && s.line <= lines));
    }

    #[test]
    fn a_damaged_line_is_reported_at_its_number_and_the_others_are_kept(
        which in 0usize..2,
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>().prop_filter("a newline would make two lines", |b| *b != b'\n'),
        truncate in any::<bool>(),
        blank_lines in 0usize..3,
    ) {
        let text = std::fs::read_to_string(fixture("sera/sera.jsonl")).expect("fixture");
        let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        let at = cut.index(lines[which].len());
        if truncate {
            lines[which].truncate(at);
        } else {
            lines[which][at] = byte;
        }
        let mut all: Vec<Vec<u8>> = vec![Vec::new(); blank_lines];
        all.extend(lines);
        let bytes = all.join(&b'\n');
        let parsed = parse_bytes(Format::Sera, &bytes, Layout::Lines);
        let damaged = blank_lines + which + 1;
        let other = blank_lines + (1 - which) + 1;
        prop_assert!(parsed.records.iter().any(|r| r.line == other), "the intact line is imported");
        prop_assert!(parsed.skipped.iter().all(|s| s.line == damaged), "{:?}", parsed.skipped);
        prop_assert_eq!(parsed.records.len() + parsed.skipped.len(), if bytes_blank(&all[damaged - 1]) { 1 } else { 2 });
    }

    #[test]
    fn a_truncated_document_is_one_skipped_record_within_the_file(
        cut in any::<prop::sample::Index>(),
    ) {
        let text = std::fs::read(fixture("mini-swe-agent/chunked_even.traj.json")).expect("fixture");
        let at = cut.index(text.len() - 2);
        let bytes = &text[..at];
        let parsed = parse_bytes(Format::MiniSweAgent, bytes, Layout::Document);
        prop_assert!(parsed.records.is_empty());
        prop_assert_eq!(parsed.skipped.len(), 1);
        let lines = bytes.split(|&b| b == b'\n').count().max(1);
        prop_assert!(parsed.skipped[0].line >= 1 && parsed.skipped[0].line <= lines,
                     "line {} of {}", parsed.skipped[0].line, lines);
    }
}

fn bytes_blank(line: &[u8]) -> bool {
    line.trim_ascii().is_empty()
}
