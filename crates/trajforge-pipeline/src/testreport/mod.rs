//! Test-runner output parsing for the behavioural verdict (SPEC section 2, item 8).
//!
//! The user's test command runs three times: on the base commit, with P1 applied
//! and with P2 applied. Each run's combined output goes through [`parse`], which
//! recognises, in any mix and after stripping ANSI colour codes:
//!
//! * Python `unittest -v` (`name (module.Class.name) ... ok`, both the pre-3.11 and
//!   the 3.11+ forms, docstring lines where `... ok` lands on the next line, output
//!   printed between the test name and its result, and the `FAIL: name (...)`
//!   headers of the failure section);
//! * pytest `-v` / `-rA` (`path::Class::test PASSED [ 10%]`, `FAILED path::test - msg`,
//!   pytest-xdist's `[gw0] [ 50%] PASSED path::test`);
//! * `go test -v` (`--- PASS: TestX (0.00s)`, subtests `TestX/sub`), keyed by package
//!   when the `ok` / `FAIL` package line follows;
//! * `cargo test` (`test module::name ... ok`), keyed by test binary, doc tests keyed
//!   without their line numbers so that a patch moving them does not rename them;
//! * Jest / Vitest / `node --test` spec-style lines (`✓ name`, `✕ name`, `○ skipped name`),
//!   keyed by file and enclosing `describe` blocks;
//! * TAP (`ok 1 - name`, `not ok 2 - name`, `# SKIP`, `# TODO`, `# Subtest:` nesting).
//!
//! When the same test is reported more than once, the later line wins (pytest prints a
//! test in the progress list and again in the `-rA` summary; a teardown error follows
//! the pass of the call phase).
//!
//! Outcome mapping: expected failures (`XFAIL`, unittest's `expected failure`, TAP
//! `# TODO`) count as [`Outcome::Skipped`], unexpected successes (`XPASS`, unittest's
//! `unexpected success`) as [`Outcome::Passed`], so that an expected failure that
//! starts passing shows up as a change.
//!
//! Layout: this module holds the report types, [`parse`], [`changes`] and [`verdict`],
//! and the line dispatch that offers every line to each format in turn; each format's
//! recogniser is an `impl Parser` block in its own file (`unittest`, `pytest`, `go`,
//! `cargo`, `js` for Jest / Vitest / node spec lines, `tap`), and `terminal` turns raw
//! captured bytes into the lines a terminal would show.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod cargo;
mod go;
mod js;
mod pytest;
mod tap;
mod terminal;
mod unittest;

pub use unittest::FAILED_IMPORT;

use terminal::{clean_line, indent_of};

/// Outcome of one test in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The test ran and passed.
    Passed,
    /// The test ran and an assertion failed.
    Failed,
    /// The test could not run to completion (setup error, crash, collection error).
    Error,
    /// The test was skipped, ignored or is an expected failure.
    Skipped,
}

/// Every test outcome recognised in one run of the test command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// Outcome per test identifier, sorted by identifier.
    pub tests: BTreeMap<String, Outcome>,
    /// Parsers that recognised lines, in order of first recognition, joined by `+`.
    pub format: Option<String>,
    /// Exit code of the test command; `None` when it was killed or timed out.
    pub exit_code: Option<i32>,
}

/// One test whose outcome differs between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Test identifier as produced by [`parse`].
    pub test: String,
    /// Outcome in the first run; `None` when the test did not appear there.
    pub before: Option<Outcome>,
    /// Outcome in the second run; `None` when the test disappeared.
    pub after: Option<Outcome>,
}

/// Behavioural verdict comparing what P1 and P2 do to the repository's tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Tests whose outcome P1 changes relative to the base commit.
    pub p1_changes: Vec<Change>,
    /// Tests whose outcome P2 changes relative to the base commit.
    pub p2_changes: Vec<Change>,
    /// Whether P1 and P2 agree (see [`verdict`] for the exact rule).
    pub agree: bool,
    /// Number of tests recognised in the base run.
    pub base_tests: usize,
    /// Whether the base run's output had any recognisable test lines.
    pub parsed: bool,
}

/// Parses test-runner output (stdout and stderr, in any mix of formats) into a report.
pub fn parse(output: &str, exit_code: Option<i32>) -> TestReport {
    let mut p = Parser::default();
    for raw in output.split('\n') {
        let line = clean_line(raw);
        p.line(&line);
    }
    p.flush_go(None);
    TestReport {
        tests: p.tests,
        format: if p.formats.is_empty() {
            None
        } else {
            Some(p.formats.join("+"))
        },
        exit_code,
    }
}

/// Tests whose outcome differs between `base` and `patched`, sorted by name; tests that
/// appear or disappear count as changes.
pub fn changes(base: &TestReport, patched: &TestReport) -> Vec<Change> {
    let mut names: Vec<&String> = base.tests.keys().chain(patched.tests.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let before = base.tests.get(name).copied();
            let after = patched.tests.get(name).copied();
            (before != after).then(|| Change {
                test: name.clone(),
                before,
                after,
            })
        })
        .collect()
}

/// Compares the effect of P1 and P2 on the tests of the base run.
///
/// When the base output had recognisable test lines (`parsed`), `agree` is true when P1
/// and P2 change exactly the same tests to exactly the same outcomes (changing nothing
/// at all counts as agreeing). When it had none, per-test comparison is impossible and
/// `agree` falls back to comparing the exit codes of the P1 and P2 runs.
pub fn verdict(base: &TestReport, p1: &TestReport, p2: &TestReport) -> Verdict {
    let p1_changes = changes(base, p1);
    let p2_changes = changes(base, p2);
    let parsed = !base.tests.is_empty();
    let agree = if parsed {
        p1_changes == p2_changes
    } else {
        p1.exit_code == p2.exit_code
    };
    Verdict {
        p1_changes,
        p2_changes,
        agree,
        base_tests: base.tests.len(),
        parsed,
    }
}

/// A test line whose result has not been printed yet.
#[derive(Debug)]
enum Pending {
    /// unittest: a docstring line or printed output comes before `... ok`.
    Unittest(String),
    /// cargo test with `--nocapture`: the test printed before `ok`.
    Cargo(String),
    /// pytest `-s` or live logging: output before `PASSED`.
    Pytest(String),
}

/// The state of one parse: outcomes so far, and what each format remembers between lines.
#[derive(Debug, Default)]
struct Parser {
    tests: BTreeMap<String, Outcome>,
    formats: Vec<&'static str>,
    pending: Option<Pending>,
    /// Go results waiting for their package line.
    go_buffer: Vec<(String, Outcome)>,
    /// Test binary of the current `cargo test` section.
    cargo_prefix: Option<String>,
    /// Whether the current cargo section is a doc-test section.
    cargo_doc: bool,
    /// Occurrences of each doc-test name (without line number) in the current section.
    cargo_doc_seen: BTreeMap<String, usize>,
    /// Current Jest/Vitest test file.
    js_file: Option<String>,
    /// Whether we are inside a Jest/Vitest file block (describe lines are tracked).
    js_block: bool,
    /// Enclosing describe blocks as (indent, name).
    js_stack: Vec<(usize, String)>,
    /// Enclosing TAP subtests as (indent, name).
    tap_stack: Vec<(usize, String)>,
}

impl Parser {
    fn record(&mut self, format: &'static str, name: String, outcome: Outcome) {
        if !self.formats.contains(&format) {
            self.formats.push(format);
        }
        self.tests.insert(name, outcome);
    }

    fn line(&mut self, line: &str) {
        let t = line.trim();
        if t.is_empty() {
            return;
        }
        if self.cargo_header(t)
            || self.go_line(t)
            || self.cargo_line(t)
            || self.unittest_line(t)
            || self.pytest_line(t)
            || self.tap_line(line)
            || self.js_line(line)
            || self.complete_pending(t)
        {
            return;
        }
        self.js_describe(line);
    }

    fn complete_pending(&mut self, t: &str) -> bool {
        let Some(pending) = &self.pending else {
            return false;
        };
        let resolved = match pending {
            Pending::Unittest(key) => {
                Self::unittest_late_result(t).map(|o| ("unittest", key.clone(), o))
            }
            Pending::Cargo(key) => Self::cargo_result(t).map(|o| ("cargo", key.clone(), o)),
            Pending::Pytest(key) => Self::pytest_late_status(t).map(|o| ("pytest", key.clone(), o)),
        };
        match resolved {
            Some((format, key, outcome)) => {
                self.pending = None;
                self.record(format, key, outcome);
                true
            }
            None => false,
        }
    }
}

/// The outcome of the first of `tags` (prefixes that exclude each other) that `t` starts
/// with, and the text after it.
fn strip_tag<'t>(t: &'t str, tags: &[(&str, Outcome)]) -> Option<(Outcome, &'t str)> {
    tags.iter()
        .find_map(|(tag, outcome)| t.strip_prefix(tag).map(|rest| (*outcome, rest)))
}

/// The key of a test nested in blocks (TAP subtests, `describe` blocks): `head`, the names
/// of the blocks in `stack` that enclose a line at `indent`, and `name`, joined by ` › `.
/// The blocks at `indent` or deeper are closed by the line and leave the stack.
fn nested_key(
    stack: &mut Vec<(usize, String)>,
    indent: usize,
    head: Option<&str>,
    name: &str,
) -> String {
    let mut parts: Vec<&str> = head.into_iter().collect();
    parts.extend(
        stack
            .iter()
            .filter(|(i, _)| *i < indent)
            .map(|(_, n)| n.as_str()),
    );
    parts.push(name);
    let key = parts.join(" › ");
    stack.retain(|(i, _)| *i < indent);
    key
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use Outcome::*;

    pub(super) fn get(r: &TestReport, name: &str) -> Option<Outcome> {
        r.tests.get(name).copied()
    }

    pub(super) fn assert_tests(r: &TestReport, expected: &[(&str, Outcome)]) {
        let want: BTreeMap<String, Outcome> = expected
            .iter()
            .map(|(n, o)| ((*n).to_string(), *o))
            .collect();
        assert_eq!(r.tests, want, "format {:?}", r.format);
    }

    #[test]
    fn empty_output_parses_to_nothing() {
        let r = parse("", None);
        assert!(r.tests.is_empty());
        assert_eq!(r.format, None);
        assert_eq!(r.exit_code, None);
    }

    #[test]
    fn unknown_format_parses_to_nothing() {
        let out = "\
make: Entering directory '/src/app'
cc -O2 -c main.c -o main.o
./run_checks.sh: 3 checks, all good
std::io::Error something happened
Error: value out of range (config.limit)
ok
PASSED
All done.
";
        let r = parse(out, Some(0));
        assert!(r.tests.is_empty(), "{:?}", r.tests);
        assert_eq!(r.format, None);
    }

    #[test]
    fn same_test_twice_last_line_wins() {
        let out = "test a::flaky ... FAILED\ntest a::flaky ... ok\n";
        assert_tests(&parse(out, Some(0)), &[("a::flaky", Passed)]);
        let out = "test a::flaky ... ok\ntest a::flaky ... FAILED\n";
        assert_tests(&parse(out, Some(101)), &[("a::flaky", Failed)]);
    }

    #[test]
    fn outcome_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Skipped).unwrap(), "\"skipped\"");
        let o: Outcome = serde_json::from_str("\"error\"").unwrap();
        assert_eq!(o, Error);
        let r = parse("test t ... ok\n", Some(0));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"tests":{"t":"passed"},"format":"cargo","exit_code":0}"#
        );
    }

    #[test]
    fn changes_include_appearing_and_disappearing_tests_sorted() {
        let base = parse(
            "test z ... ok\ntest b ... FAILED\ntest gone ... ok\ntest same ... ok\n",
            Some(101),
        );
        let patched = parse(
            "test z ... FAILED\ntest b ... ok\ntest new ... ok\ntest same ... ok\n",
            Some(101),
        );
        let c = changes(&base, &patched);
        assert_eq!(
            c,
            vec![
                Change {
                    test: "b".into(),
                    before: Some(Failed),
                    after: Some(Passed)
                },
                Change {
                    test: "gone".into(),
                    before: Some(Passed),
                    after: None
                },
                Change {
                    test: "new".into(),
                    before: None,
                    after: Some(Passed)
                },
                Change {
                    test: "z".into(),
                    before: Some(Passed),
                    after: Some(Failed)
                },
            ]
        );
    }

    #[test]
    fn verdict_agrees_when_same_tests_change_the_same_way() {
        let base = parse("test a ... FAILED\ntest b ... ok\n", Some(101));
        let p1 = parse("test a ... ok\ntest b ... ok\n", Some(0));
        let p2 = parse("test b ... ok\ntest a ... ok\n", Some(0));
        let v = verdict(&base, &p1, &p2);
        assert!(v.agree);
        assert!(v.parsed);
        assert_eq!(v.base_tests, 2);
        assert_eq!(v.p1_changes.len(), 1);
        assert_eq!(v.p1_changes, v.p2_changes);
    }

    #[test]
    fn verdict_disagrees_on_different_outcome_or_extra_change() {
        let base = parse("test a ... FAILED\ntest b ... ok\n", Some(101));
        let p1 = parse("test a ... ok\ntest b ... ok\n", Some(0));
        let p2_other = parse("test a ... ignored\ntest b ... ok\n", Some(0));
        let p2_extra = parse("test a ... ok\ntest b ... FAILED\n", Some(101));
        assert!(!verdict(&base, &p1, &p2_other).agree);
        assert!(!verdict(&base, &p1, &p2_extra).agree);
    }

    #[test]
    fn verdict_falls_back_to_exit_codes_when_base_unparsed() {
        let base = parse("garbage\n", Some(1));
        let p1 = parse("still garbage\n", Some(0));
        let p2_same = parse("other\n", Some(0));
        let p2_diff = parse("other\n", Some(1));
        let v = verdict(&base, &p1, &p2_same);
        assert!(!v.parsed);
        assert!(v.agree);
        assert_eq!(v.base_tests, 0);
        assert!(!verdict(&base, &p1, &p2_diff).agree);
    }
}
