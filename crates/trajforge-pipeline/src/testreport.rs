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

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Removes ANSI escape sequences from `s` (CSI, OSC and two-character escapes).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // Operating-system command, ended by BEL or ESC \.
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            Some(c) if (' '..='/').contains(&c) => {
                // nF escape such as ESC ( B: intermediates, then one final byte.
                for c in chars.by_ref() {
                    if !(' '..='/').contains(&c) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// One physical line as a terminal would show it: ANSI removed, CRLF handled, and
/// carriage-return overwrites reduced to the last segment.
fn clean_line(raw: &str) -> String {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let visible = match raw.rfind('\r') {
        Some(i) => &raw[i + 1..],
        None => raw,
    };
    strip_ansi(visible).trim_end().to_string()
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
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

    // ---------------------------------------------------------------- cargo test

    fn cargo_header(&mut self, t: &str) -> bool {
        if let Some(rest) = t.strip_prefix("Running ") {
            let path = match (rest.rfind('('), rest.strip_suffix(')')) {
                (Some(open), Some(inner)) => &inner[open + 1..],
                _ => rest.split_whitespace().last().unwrap_or(rest),
            };
            if !(path.contains("deps/") || path.contains("deps\\")) {
                return false;
            }
            let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
            let file = file.strip_suffix(".exe").unwrap_or(file);
            let name = match file.rsplit_once('-') {
                Some((stem, hash))
                    if !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    stem
                }
                _ => file,
            };
            self.cargo_prefix = Some(name.to_string());
            self.cargo_doc = false;
            self.cargo_doc_seen.clear();
            return true;
        }
        if let Some(krate) = t.strip_prefix("Doc-tests ") {
            self.cargo_prefix = Some(krate.trim().to_string());
            self.cargo_doc = true;
            self.cargo_doc_seen.clear();
            return true;
        }
        false
    }

    fn cargo_result(s: &str) -> Option<Outcome> {
        match s {
            "ok" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed),
            "ignored" => Some(Outcome::Skipped),
            _ if s.starts_with("ignored, ") => Some(Outcome::Skipped),
            _ => None,
        }
    }

    fn cargo_line(&mut self, t: &str) -> bool {
        let Some(rest) = t.strip_prefix("test ") else {
            return false;
        };
        let Some((name, result)) = rest.split_once(" ... ") else {
            return false;
        };
        let name = name.trim();
        if name.is_empty() {
            return false;
        }
        let result = result.trim();
        if result.starts_with("bench:") {
            return true;
        }
        let key = self.cargo_key(name);
        match Self::cargo_result(result) {
            Some(outcome) => {
                self.pending = None;
                self.record("cargo", key, outcome);
            }
            None => self.pending = Some(Pending::Cargo(key)),
        }
        true
    }

    fn cargo_key(&mut self, name: &str) -> String {
        let mut name = name.to_string();
        if self.cargo_doc {
            // "src/lib.rs - parse (line 12)": line numbers move when a patch edits the
            // file above the example, so they are dropped and repeats numbered instead.
            while let Some(start) = name.find(" (line ") {
                let end = name[start..]
                    .find(')')
                    .map_or(name.len(), |e| start + e + 1);
                name.replace_range(start..end, "");
            }
            let seen = self.cargo_doc_seen.entry(name.clone()).or_insert(0);
            *seen += 1;
            if *seen > 1 {
                name = format!("{name} #{seen}");
            }
        }
        match &self.cargo_prefix {
            Some(prefix) => format!("{prefix}::{name}"),
            None => name,
        }
    }

    // ---------------------------------------------------------------- go test

    fn go_line(&mut self, t: &str) -> bool {
        for (tag, outcome) in [
            ("--- PASS: ", Outcome::Passed),
            ("--- FAIL: ", Outcome::Failed),
            ("--- SKIP: ", Outcome::Skipped),
        ] {
            if let Some(rest) = t.strip_prefix(tag)
                && let Some(name) = rest.split_whitespace().next()
            {
                self.pending = None;
                self.go_buffer.push((name.to_string(), outcome));
                return true;
            }
        }
        // Package summary: "ok  \tpkg\t0.01s", "FAIL\tpkg\t0.2s", "FAIL\tpkg [build failed]".
        let mut tokens = t.split_whitespace();
        let (Some(head), Some(pkg), Some(third)) = (tokens.next(), tokens.next(), tokens.next())
        else {
            return false;
        };
        if !matches!(head, "ok" | "FAIL" | "?") || pkg.contains("::") || pkg.starts_with('-') {
            return false;
        }
        let is_duration = third
            .strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok());
        if !(is_duration || third == "(cached)" || third.starts_with('[')) {
            return false;
        }
        self.flush_go(Some(pkg));
        if head == "FAIL" && third.starts_with('[') && t.contains("failed]") {
            // The package did not build or set up: its tests vanished, record why.
            self.record("go", pkg.to_string(), Outcome::Error);
        }
        true
    }

    fn flush_go(&mut self, pkg: Option<&str>) {
        for (name, outcome) in std::mem::take(&mut self.go_buffer) {
            let key = match pkg {
                Some(pkg) => format!("{pkg}.{name}"),
                None => name,
            };
            self.record("go", key, outcome);
        }
    }

    // ---------------------------------------------------------------- unittest

    fn unittest_result(s: &str) -> Option<Outcome> {
        match s {
            "ok" => Some(Outcome::Passed),
            "FAIL" => Some(Outcome::Failed),
            "ERROR" => Some(Outcome::Error),
            "expected failure" => Some(Outcome::Skipped),
            "unexpected success" => Some(Outcome::Passed),
            _ if s == "skipped" || s.starts_with("skipped ") => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// Splits `name (dotted.path)` at the start of `t`; returns the test key and the
    /// text after the closing parenthesis.
    fn unittest_head(t: &str) -> Option<(String, &str)> {
        let (name, rest) = t.split_once(" (")?;
        let mut first = name.chars();
        if !first.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            return None;
        }
        let close = rest.find(')')?;
        let path = &rest[..close];
        if !path.contains('.')
            || path.starts_with('.')
            || path.ends_with('.')
            || !path
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return None;
        }
        let key = if path.rsplit('.').next() == Some(name) {
            path.to_string()
        } else {
            format!("{path}.{name}")
        };
        Some((key, &rest[close + 1..]))
    }

    fn unittest_line(&mut self, t: &str) -> bool {
        // Failure-section headers: "FAIL: test_x (m.C.test_x)", "ERROR: setUpClass (m.C)".
        for (tag, outcome) in [
            ("FAIL: ", Outcome::Failed),
            ("ERROR: ", Outcome::Error),
            ("UNEXPECTED SUCCESS: ", Outcome::Passed),
        ] {
            if let Some(rest) = t.strip_prefix(tag)
                && let Some((key, _)) = Self::unittest_head(rest)
            {
                self.record("unittest", key, outcome);
                return true;
            }
        }
        let Some((key, rest)) = Self::unittest_head(t) else {
            return false;
        };
        if rest.is_empty() {
            // Docstring variant: the description and "... ok" follow on the next line.
            self.pending = Some(Pending::Unittest(key));
            return true;
        }
        if let Some(result) = rest.strip_prefix(" ... ") {
            match Self::unittest_result(result.trim()) {
                Some(outcome) => {
                    self.pending = None;
                    self.record("unittest", key, outcome);
                }
                None => self.pending = Some(Pending::Unittest(key)),
            }
            return true;
        }
        if rest.trim_end().ends_with(" ...") {
            // "test_x (m.C.test_x) ..." with trailing space trimmed away.
            self.pending = Some(Pending::Unittest(key));
            return true;
        }
        // Sub-test line: "test_x (m.C.test_x) (i=2) ... FAIL" marks the parent.
        if let Some((_, result)) = rest.rsplit_once(" ... ")
            && let Some(outcome @ (Outcome::Failed | Outcome::Error)) =
                Self::unittest_result(result.trim())
        {
            self.pending = None;
            self.record("unittest", key, outcome);
            return true;
        }
        false
    }

    // ---------------------------------------------------------------- pytest

    fn pytest_status(word: &str) -> Option<Outcome> {
        match word {
            "PASSED" | "XPASS" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed),
            "ERROR" => Some(Outcome::Error),
            "SKIPPED" | "XFAIL" => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// Length of a pytest node id at the start of `s`: up to the first whitespace
    /// outside parametrisation brackets.
    fn nodeid_len(s: &str) -> usize {
        let mut depth = 0usize;
        for (i, c) in s.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                c if c.is_whitespace() && depth == 0 => return i,
                _ => {}
            }
        }
        s.len()
    }

    fn is_nodeid(s: &str) -> bool {
        match s.split_once("::") {
            Some((file, item)) => {
                !file.is_empty()
                    && file.contains('.')
                    && !file.contains(char::is_whitespace)
                    && !item.is_empty()
            }
            None => false,
        }
    }

    /// Removes leading pytest-xdist / progress tokens such as `[gw3]` and `[ 40%]`.
    fn strip_progress_prefix(mut t: &str) -> &str {
        loop {
            let Some(inner_end) = t.strip_prefix('[').and_then(|r| r.find(']')) else {
                return t;
            };
            let inner = &t[1..=inner_end];
            let progress = inner
                .strip_prefix("gw")
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                || inner
                    .trim()
                    .strip_suffix('%')
                    .is_some_and(|n| n.trim().parse::<u32>().is_ok());
            if !progress {
                return t;
            }
            t = t[inner_end + 2..].trim_start();
        }
    }

    fn pytest_line(&mut self, t: &str) -> bool {
        let stripped = Self::strip_progress_prefix(t);
        // Summary / xdist form: "STATUS nodeid[ - message]".
        if let Some((word, rest)) = stripped.split_once(' ')
            && let Some(outcome) = Self::pytest_status(word)
        {
            let rest = rest.trim_start();
            let len = Self::nodeid_len(rest);
            let id = &rest[..len];
            let collection_error = outcome == Outcome::Error
                && !id.contains("::")
                && (id.ends_with(".py") || id.ends_with('/'));
            if Self::is_nodeid(id) || collection_error {
                self.record("pytest", id.to_string(), outcome);
                return true;
            }
            return false;
        }
        // Verbose form: "nodeid STATUS [ 10%]".
        let len = Self::nodeid_len(t);
        let id = &t[..len];
        if !Self::is_nodeid(id) {
            return false;
        }
        let rest = t[len..].trim_start();
        let word = rest.split_whitespace().next().unwrap_or("");
        match Self::pytest_status(word) {
            Some(outcome) => {
                self.pending = None;
                self.record("pytest", id.to_string(), outcome);
            }
            None => self.pending = Some(Pending::Pytest(id.to_string())),
        }
        true
    }

    // ---------------------------------------------------------------- pending

    fn complete_pending(&mut self, t: &str) -> bool {
        let Some(pending) = &self.pending else {
            return false;
        };
        let resolved = match pending {
            Pending::Unittest(key) => {
                let result = t.rsplit_once(" ... ").map_or(t, |(_, r)| r.trim());
                let result = result.strip_prefix("... ").unwrap_or(result);
                Self::unittest_result(result).map(|o| ("unittest", key.clone(), o))
            }
            Pending::Cargo(key) => Self::cargo_result(t).map(|o| ("cargo", key.clone(), o)),
            Pending::Pytest(key) => {
                let mut words = t.split_whitespace();
                let status = words.next().and_then(Self::pytest_status);
                let tail_ok = words
                    .next()
                    .is_none_or(|w| w.starts_with('[') || w.starts_with('('));
                status
                    .filter(|_| tail_ok)
                    .map(|o| ("pytest", key.clone(), o))
            }
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

    // ---------------------------------------------------------------- TAP

    fn tap_line(&mut self, line: &str) -> bool {
        let indent = indent_of(line);
        let t = line.trim();
        if let Some(name) = t.strip_prefix("# Subtest:") {
            self.tap_stack.retain(|(i, _)| *i < indent);
            self.tap_stack.push((indent, name.trim().to_string()));
            return true;
        }
        let (ok, rest) = if let Some(rest) = t.strip_prefix("not ok ") {
            (false, rest)
        } else if let Some(rest) = t.strip_prefix("ok ") {
            (true, rest)
        } else {
            return false;
        };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        let number = &rest[..digits];
        let rest = &rest[digits..];
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return false;
        }
        let (desc, directive) = split_tap_directive(rest.trim());
        let desc = desc.trim();
        let desc = desc.strip_prefix("- ").unwrap_or(desc).trim();
        let directive = directive.trim().to_ascii_lowercase();
        let outcome = if directive.starts_with("skip") || directive.starts_with("todo") {
            Outcome::Skipped
        } else if ok {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let name = if desc.is_empty() {
            format!("#{number}")
        } else {
            desc.to_string()
        };
        let mut parts: Vec<&str> = self
            .tap_stack
            .iter()
            .filter(|(i, _)| *i < indent)
            .map(|(_, n)| n.as_str())
            .collect();
        parts.push(&name);
        let key = parts.join(" › ");
        self.tap_stack.retain(|(i, _)| *i < indent);
        self.record("tap", key, outcome);
        true
    }

    // ---------------------------------------------------------------- Jest / Vitest

    fn js_line(&mut self, line: &str) -> bool {
        let indent = indent_of(line);
        let t = line.trim();
        if let Some(file) = jest_header(t) {
            self.js_file = Some(file.to_string());
            self.js_block = true;
            self.js_stack.clear();
            return true;
        }
        if let Some(file) = t.strip_prefix("❯ ").and_then(vitest_file) {
            // Vitest marks a file with failures with "❯" instead of a check mark.
            self.js_file = Some(file.to_string());
            self.js_block = true;
            self.js_stack.clear();
            return true;
        }
        let Some((outcome, rest)) = js_mark(t) else {
            if indent == 0 {
                self.js_block = false;
                self.js_stack.clear();
                self.js_file = None;
            }
            return false;
        };
        if let Some(file) = vitest_file(rest) {
            self.js_file = Some(file.to_string());
            self.js_block = true;
            self.js_stack.clear();
            return true;
        }
        let mut name = rest;
        if outcome == Outcome::Skipped {
            for prefix in ["skipped ", "todo "] {
                name = name.strip_prefix(prefix).unwrap_or(name);
            }
            for suffix in [" [skipped]", " # SKIP", " # TODO"] {
                name = name.strip_suffix(suffix).unwrap_or(name);
            }
        }
        let name = strip_duration(name).trim();
        if name.is_empty() {
            return false;
        }
        let mut parts: Vec<&str> = Vec::new();
        if let Some(file) = &self.js_file
            && !name.starts_with(file.as_str())
        {
            parts.push(file);
        }
        parts.extend(
            self.js_stack
                .iter()
                .filter(|(i, _)| *i < indent)
                .map(|(_, n)| n.as_str()),
        );
        parts.push(name);
        let key = parts.join(" › ");
        self.js_stack.retain(|(i, _)| *i < indent);
        self.pending = None;
        self.record("jest", key, outcome);
        true
    }

    fn js_describe(&mut self, line: &str) {
        let indent = indent_of(line);
        if !self.js_block || indent == 0 {
            return;
        }
        let t = line.trim();
        self.js_stack.retain(|(i, _)| *i < indent);
        // Node's spec reporter prefixes suites with "▶".
        let name = t.strip_prefix("▶ ").unwrap_or(t);
        self.js_stack
            .push((indent, strip_duration(name).trim().to_string()));
    }
}

/// Splits a TAP description at its first unescaped `#`.
fn split_tap_directive(s: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '#' if !escaped => return (&s[..i], &s[i + 1..]),
            _ => escaped = false,
        }
    }
    (s, "")
}

const JS_EXTENSIONS: [&str; 8] = [".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts"];

/// `PASS src/a.test.ts (1.2 s)` -> `src/a.test.ts`.
fn jest_header(t: &str) -> Option<&str> {
    let rest = t
        .strip_prefix("PASS ")
        .or_else(|| t.strip_prefix("FAIL "))?;
    let file = rest.split_whitespace().next()?;
    JS_EXTENSIONS
        .iter()
        .any(|e| file.ends_with(e))
        .then_some(file)
}

/// Vitest's file line after the mark: `src/a.test.ts (3 tests | 1 failed) 5ms`.
fn vitest_file(rest: &str) -> Option<&str> {
    let (file, tail) = rest.split_once(" (")?;
    let digits = tail.chars().take_while(char::is_ascii_digit).count();
    (digits > 0
        && tail[digits..].starts_with(" test")
        && JS_EXTENSIONS.iter().any(|e| file.ends_with(e)))
    .then_some(file)
}

/// Recognises a spec-reporter mark at the start of `t`.
fn js_mark(t: &str) -> Option<(Outcome, &str)> {
    let mut chars = t.chars();
    let mark = chars.next()?;
    let outcome = match mark {
        '✓' | '✔' | '√' => Outcome::Passed,
        '✕' | '✖' | '×' | '✗' | '✘' => Outcome::Failed,
        '○' | '↓' | '✎' | '﹣' => Outcome::Skipped,
        _ => return None,
    };
    let rest = chars.as_str();
    rest.starts_with(' ').then(|| (outcome, rest.trim_start()))
}

/// Removes a trailing duration: ` (12 ms)`, ` (0.5ms)`, ` (1.2 s)` or ` 12ms`.
fn strip_duration(name: &str) -> &str {
    fn is_duration(s: &str) -> bool {
        let s = s.trim();
        let unitless = s.strip_suffix("ms").or_else(|| s.strip_suffix('s'));
        unitless.is_some_and(|n| {
            let n = n.trim();
            !n.is_empty() && n.parse::<f64>().is_ok()
        })
    }
    if let Some(inner) = name.strip_suffix(')')
        && let Some(open) = inner.rfind(" (")
        && is_duration(&inner[open + 2..])
    {
        return &name[..open];
    }
    if let Some((head, last)) = name.rsplit_once(' ')
        && last.ends_with("ms")
        && is_duration(last)
    {
        return head;
    }
    name
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use Outcome::*;

    fn get(r: &TestReport, name: &str) -> Option<Outcome> {
        r.tests.get(name).copied()
    }

    fn assert_tests(r: &TestReport, expected: &[(&str, Outcome)]) {
        let want: BTreeMap<String, Outcome> = expected
            .iter()
            .map(|(n, o)| ((*n).to_string(), *o))
            .collect();
        assert_eq!(r.tests, want, "format {:?}", r.format);
    }

    #[test]
    fn unittest_pre_311_and_311_forms_map_to_the_same_key() {
        let old = "test_split (tests.test_words.WordTests) ... ok\n";
        let new = "test_split (tests.test_words.WordTests.test_split) ... ok\n";
        assert_eq!(parse(old, Some(0)).tests, parse(new, Some(0)).tests);
        assert_eq!(
            get(
                &parse(old, Some(0)),
                "tests.test_words.WordTests.test_split"
            ),
            Some(Passed)
        );
    }

    #[test]
    fn unittest_verbose_run_with_docstrings_output_and_failures() {
        let out = "\
test_blank_line (tests.test_ini.ReaderTests.test_blank_line) ... ok
test_comment_only (tests.test_ini.ReaderTests.test_comment_only)
A file holding only comments yields an empty mapping. ... ok
test_duplicate_key (tests.test_ini.ReaderTests.test_duplicate_key) ... FAIL
test_encoding (tests.test_ini.ReaderTests.test_encoding) ... reading fixture latin1.ini
ok
test_huge_file (tests.test_ini.ReaderTests.test_huge_file) ... skipped 'needs TRAJ_SLOW=1'
test_interpolation (tests.test_ini.ReaderTests.test_interpolation) ... ERROR
test_legacy_syntax (tests.test_ini.ReaderTests.test_legacy_syntax) ... expected failure
test_multiline (tests.test_ini.ReaderTests.test_multiline)
Continuation lines are joined
with a single space. ... FAIL

======================================================================
ERROR: test_interpolation (tests.test_ini.ReaderTests.test_interpolation)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/src/inikit/tests/test_ini.py\", line 88, in test_interpolation
    self.assertEqual(read(SRC)['a'], 'x/y')
                     ^^^^^^^^^
  File \"/src/inikit/inikit/reader.py\", line 41, in read
    raise KeyError(name)
KeyError: 'base'

======================================================================
FAIL: test_duplicate_key (tests.test_ini.ReaderTests.test_duplicate_key)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/src/inikit/tests/test_ini.py\", line 52, in test_duplicate_key
    self.assertRaises(DuplicateKey, read, SRC)
AssertionError: DuplicateKey not raised by read

----------------------------------------------------------------------
Ran 8 tests in 0.031s

FAILED (failures=2, errors=1, skipped=1, expected failures=1)
";
        let r = parse(out, Some(1));
        let p = "tests.test_ini.ReaderTests.";
        let names = [
            ("test_blank_line", Passed),
            ("test_comment_only", Passed),
            ("test_duplicate_key", Failed),
            ("test_encoding", Passed),
            ("test_huge_file", Skipped),
            ("test_interpolation", Error),
            ("test_legacy_syntax", Skipped),
            ("test_multiline", Failed),
        ];
        let owned: Vec<(String, Outcome)> =
            names.iter().map(|(n, o)| (format!("{p}{n}"), *o)).collect();
        let expected: Vec<(&str, Outcome)> = owned.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        assert_tests(&r, &expected);
        assert_eq!(r.format.as_deref(), Some("unittest"));
        assert_eq!(r.exit_code, Some(1));
    }

    #[test]
    fn unittest_old_style_docstring_and_subtest_failure() {
        let out = "\
test_roundtrip (test_codec.CodecTests)
Encoding then decoding gives back the input ... ok
test_widths (test_codec.CodecTests) ...
  test_widths (test_codec.CodecTests) (width=0) ... FAIL
test_zero (test_codec.CodecTests) ... ok
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("test_codec.CodecTests.test_roundtrip", Passed),
                ("test_codec.CodecTests.test_widths", Failed),
                ("test_codec.CodecTests.test_zero", Passed),
            ],
        );
    }

    #[test]
    fn unittest_non_verbose_failure_headers_are_recorded() {
        let out = "\
.F.E
======================================================================
ERROR: setUpClass (tests.test_db.PoolTests)
----------------------------------------------------------------------
Traceback (most recent call last):
ConnectionRefusedError: [Errno 111] Connection refused
======================================================================
FAIL: test_limit (tests.test_db.QueryTests.test_limit)
----------------------------------------------------------------------
AssertionError: 10 != 11
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("tests.test_db.PoolTests.setUpClass", Error),
                ("tests.test_db.QueryTests.test_limit", Failed),
            ],
        );
    }

    #[test]
    fn pytest_verbose_with_summary_later_lines_win() {
        let out = "\
============================= test session starts ==============================
platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0 -- /venv/bin/python
cachedir: .pytest_cache
rootdir: /src/tidyjson
configfile: pyproject.toml
collecting ... collected 7 items

tests/test_dump.py::test_indent PASSED                                   [ 14%]
tests/test_dump.py::test_sort_keys[True] PASSED                          [ 28%]
tests/test_dump.py::test_sort_keys[False] FAILED                         [ 42%]
tests/test_dump.py::TestUnicode::test_escape[caf\\xe9 au lait] PASSED    [ 57%]
tests/test_dump.py::TestUnicode::test_surrogates SKIPPED (narrow build)  [ 71%]
tests/test_load.py::test_trailing_comma XFAIL (not supported yet)        [ 85%]
tests/test_load.py::test_bom PASSED                                      [100%]
tests/test_load.py::test_bom ERROR                                       [100%]

==================================== ERRORS ====================================
_________________________ ERROR at teardown of test_bom _________________________

    def fin():
>       os.remove(path)
E       FileNotFoundError: [Errno 2] No such file or directory: '/tmp/bom.json'

tests/conftest.py:19: FileNotFoundError
=================================== FAILURES ===================================
____________________________ test_sort_keys[False] _____________________________

flag = False

    @pytest.mark.parametrize(\"flag\", [True, False])
    def test_sort_keys(flag):
>       assert dump({\"b\": 1, \"a\": 2}, sort_keys=flag) == '{\"b\": 1, \"a\": 2}'
E       AssertionError: assert '{\"a\": 2, \"b\": 1}' == '{\"b\": 1, \"a\": 2}'

tests/test_dump.py:31: AssertionError
----------------------------- Captured stdout call -----------------------------
dumping 2 keys
=========================== short test summary info ============================
PASSED tests/test_dump.py::test_indent
PASSED tests/test_dump.py::test_sort_keys[True]
PASSED tests/test_load.py::test_bom
SKIPPED [1] tests/test_dump.py:40: narrow build
XFAIL tests/test_load.py::test_trailing_comma - not supported yet
ERROR tests/test_load.py::test_bom - FileNotFoundError: [Errno 2] No such file or directory
FAILED tests/test_dump.py::test_sort_keys[False] - AssertionError: assert '{\"a\": 2, \"b\": 1}' == ...
========= 1 failed, 4 passed, 1 skipped, 1 xfailed, 1 error in 0.12s ==========
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("tests/test_dump.py::test_indent", Passed),
                ("tests/test_dump.py::test_sort_keys[True]", Passed),
                ("tests/test_dump.py::test_sort_keys[False]", Failed),
                (
                    "tests/test_dump.py::TestUnicode::test_escape[caf\\xe9 au lait]",
                    Passed,
                ),
                ("tests/test_dump.py::TestUnicode::test_surrogates", Skipped),
                ("tests/test_load.py::test_trailing_comma", Skipped),
                ("tests/test_load.py::test_bom", Error),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("pytest"));
    }

    #[test]
    fn pytest_xdist_collection_error_and_live_output() {
        let out = "\
created: 2/2 workers
2 workers [4 items]

[gw0] [ 25%] PASSED tests/test_api.py::test_get
[gw1] [ 50%] FAILED tests/test_api.py::test_post
[gw0] [ 75%] XPASS tests/test_api.py::test_patch
[gw1] [100%] SKIPPED tests/test_api.py::test_delete
tests/test_live.py::test_stream streaming chunk 1
streaming chunk 2
PASSED
=========================== short test summary info ============================
ERROR tests/test_broken.py - ModuleNotFoundError: No module named 'yaml'
";
        let r = parse(out, Some(2));
        assert_tests(
            &r,
            &[
                ("tests/test_api.py::test_get", Passed),
                ("tests/test_api.py::test_post", Failed),
                ("tests/test_api.py::test_patch", Passed),
                ("tests/test_api.py::test_delete", Skipped),
                ("tests/test_live.py::test_stream", Passed),
                ("tests/test_broken.py", Error),
            ],
        );
    }

    #[test]
    fn go_test_verbose_with_subtests_and_packages() {
        let out = "\
=== RUN   TestParseDuration
=== RUN   TestParseDuration/empty
=== RUN   TestParseDuration/hours
    parse_test.go:41: got 3h0m0s, want 3h0m1s
=== RUN   TestParseDuration/negative
    parse_test.go:12: skipping: negative durations are platform dependent
--- FAIL: TestParseDuration (0.00s)
    --- PASS: TestParseDuration/empty (0.00s)
    --- FAIL: TestParseDuration/hours (0.00s)
    --- SKIP: TestParseDuration/negative (0.00s)
=== RUN   TestFormat
--- PASS: TestFormat (0.01s)
FAIL
FAIL\texample.com/clockwork/parse\t0.014s
=== RUN   TestTicker
--- PASS: TestTicker (0.20s)
PASS
ok  \texample.com/clockwork/tick\t0.213s
?   \texample.com/clockwork/cmd/clock\t[no test files]
FAIL\texample.com/clockwork/zone [build failed]
FAIL
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("example.com/clockwork/parse.TestParseDuration", Failed),
                (
                    "example.com/clockwork/parse.TestParseDuration/empty",
                    Passed,
                ),
                (
                    "example.com/clockwork/parse.TestParseDuration/hours",
                    Failed,
                ),
                (
                    "example.com/clockwork/parse.TestParseDuration/negative",
                    Skipped,
                ),
                ("example.com/clockwork/parse.TestFormat", Passed),
                ("example.com/clockwork/tick.TestTicker", Passed),
                ("example.com/clockwork/zone", Error),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("go"));
    }

    #[test]
    fn go_results_without_package_line_keep_bare_names() {
        let out =
            "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n--- FAIL: TestB (1.50s)\n";
        let r = parse(out, None);
        assert_tests(&r, &[("TestA", Passed), ("TestB", Failed)]);
    }

    #[test]
    fn cargo_test_binaries_doc_tests_and_nocapture() {
        let out = "\
   Compiling ledgerly v0.3.1 (/src/ledgerly)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 2.31s
     Running unittests src/lib.rs (target/debug/deps/ledgerly-9f2c1a7be04d3e55)

running 4 tests
test money::tests::adds_cents ... ok
test money::tests::rounds_half_even ... FAILED
test money::tests::slow_fuzz ... ignored, takes minutes
test parse::tests::reads_header ... reading header of 3 bytes
ok

failures:

---- money::tests::rounds_half_even stdout ----

thread 'money::tests::rounds_half_even' panicked at src/money.rs:88:9:
assertion `left == right` failed
  left: 250
 right: 240
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

failures:
    money::tests::rounds_half_even

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/cli.rs (target/debug/deps/cli-0b1c2d3e4f5a6b7c)

running 1 test
test prints_usage ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s

   Doc-tests ledgerly

running 3 tests
test src/money.rs - money::Money::round (line 40) ... ok
test src/money.rs - money::Money::round (line 52) ... FAILED
test src/lib.rs - (line 3) ... ignored

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.31s
";
        let r = parse(out, Some(101));
        assert_tests(
            &r,
            &[
                ("ledgerly::money::tests::adds_cents", Passed),
                ("ledgerly::money::tests::rounds_half_even", Failed),
                ("ledgerly::money::tests::slow_fuzz", Skipped),
                ("ledgerly::parse::tests::reads_header", Passed),
                ("cli::prints_usage", Passed),
                ("ledgerly::src/money.rs - money::Money::round", Passed),
                ("ledgerly::src/money.rs - money::Money::round #2", Failed),
                ("ledgerly::src/lib.rs -", Skipped),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("cargo"));
    }

    #[test]
    fn doc_tests_keep_their_names_when_a_patch_shifts_lines() {
        let base = "   Doc-tests k\ntest src/lib.rs - f (line 10) ... ok\n";
        let moved = "   Doc-tests k\ntest src/lib.rs - f (line 14) ... ok\n";
        assert!(changes(&parse(base, Some(0)), &parse(moved, Some(0))).is_empty());
    }

    #[test]
    fn jest_verbose_with_describe_blocks_console_and_failures() {
        let out = "\
 PASS  src/slug.test.ts
  slugify
    ✓ lowercases ascii (3 ms)
    ✓ strips accents (1 ms)
    unicode
      ✓ keeps cjk characters
 FAIL  src/range.test.js (5.12 s)
  ● Console

    console.log
      building range 0..0

      at Object.log (src/range.test.js:7:13)

  range
    ✕ handles empty input (4 ms)
    ○ skipped very large bounds
    ✎ todo negative step
  ✓ top level helper works

  ● range › handles empty input

    expect(received).toEqual(expected) // deep equality

    - Expected  - 1
    + Received  + 1

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 1 skipped, 1 todo, 4 passed, 7 total
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("src/slug.test.ts › slugify › lowercases ascii", Passed),
                ("src/slug.test.ts › slugify › strips accents", Passed),
                (
                    "src/slug.test.ts › slugify › unicode › keeps cjk characters",
                    Passed,
                ),
                ("src/range.test.js › range › handles empty input", Failed),
                ("src/range.test.js › range › very large bounds", Skipped),
                ("src/range.test.js › range › negative step", Skipped),
                ("src/range.test.js › top level helper works", Passed),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("jest"));
    }

    #[test]
    fn vitest_verbose_lines() {
        let out = "\
 RUN  v1.6.0 /src/tinyqueue

 ❯ test/queue.test.ts (3 tests | 1 failed) 8ms
   ✓ queue > pushes in order 1ms
   × queue > pops from empty 3ms
     → expected undefined to be null
   ↓ queue > drains concurrently [skipped]

 Test Files  1 failed (1)
      Tests  1 failed | 1 passed | 1 skipped (3)
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("test/queue.test.ts › queue > pushes in order", Passed),
                ("test/queue.test.ts › queue > pops from empty", Failed),
                ("test/queue.test.ts › queue > drains concurrently", Skipped),
            ],
        );
    }

    #[test]
    fn tap_with_directives_and_subtests() {
        let out = "\
TAP version 13
# Subtest: parses numbers
ok 1 - parses numbers
  ---
  duration_ms: 0.41
  ...
# Subtest: tokenizer
    # Subtest: handles empty string
    not ok 1 - handles empty string
      ---
      error: 'Expected values to be strictly equal'
      ...
    # Subtest: handles emoji
    ok 2 - handles emoji # SKIP needs icu
    1..2
not ok 2 - tokenizer
ok 3 # TODO streaming mode
not ok 4 - rejects NaN # todo not decided
ok 5 parses hex
1..5
# tests 5
# pass 2
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("parses numbers", Passed),
                ("tokenizer › handles empty string", Failed),
                ("tokenizer › handles emoji", Skipped),
                ("tokenizer", Failed),
                ("#3", Skipped),
                ("rejects NaN", Skipped),
                ("parses hex", Passed),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("tap"));
    }

    #[test]
    fn ansi_coloured_output_is_stripped() {
        let out = "\
\u{1b}[1mtests/test_x.py::test_a \u{1b}[32mPASSED\u{1b}[0m\u{1b}[32m                  [ 50%]\u{1b}[0m
\u{1b}[1mtests/test_x.py::test_b \u{1b}[31mFAILED\u{1b}[0m\u{1b}[31m                  [100%]\u{1b}[0m
\u{1b}[0m\u{1b}[7m\u{1b}[1m\u{1b}[32m PASS \u{1b}[39m\u{1b}[22m\u{1b}[27m\u{1b}[0m \u{1b}[2msrc/\u{1b}[22m\u{1b}[1ma.test.js\u{1b}[22m
  \u{1b}[32m✓\u{1b}[39m \u{1b}[2mworks (2 ms)\u{1b}[22m
test util::tests::t1 ... \u{1b}[32mok\u{1b}[0m
\u{1b}]8;;https://example.invalid\u{7}link\u{1b}]8;;\u{7}
--- \u{1b}[31mFAIL\u{1b}[0m: TestZ (0.00s)
";
        let r = parse(out, Some(1));
        assert_tests(
            &r,
            &[
                ("tests/test_x.py::test_a", Passed),
                ("tests/test_x.py::test_b", Failed),
                ("src/a.test.js › works", Passed),
                ("util::tests::t1", Passed),
                ("TestZ", Failed),
            ],
        );
        assert_eq!(r.format.as_deref(), Some("pytest+jest+cargo+go"));
    }

    #[test]
    fn strip_ansi_handles_sequences() {
        assert_eq!(strip_ansi("\u{1b}[38;5;196mred\u{1b}[0m"), "red");
        assert_eq!(strip_ansi("a\u{1b}]0;title\u{1b}\\b"), "ab");
        assert_eq!(strip_ansi("x\u{1b}(By"), "xy");
        assert_eq!(strip_ansi("plain ✓"), "plain ✓");
    }

    #[test]
    fn crlf_and_carriage_return_overwrites() {
        let out = "test a::b ... ok\r\nrunning 10%\rrunning 100%\rtest a::c ... FAILED\r\n";
        let r = parse(out, Some(101));
        assert_tests(&r, &[("a::b", Passed), ("a::c", Failed)]);
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
    fn cargo_bench_lines_are_not_outcomes() {
        let out = "test bench_parse ... bench:       1,234.50 ns/iter (+/- 10.20)\nok\n";
        assert!(parse(out, Some(0)).tests.is_empty());
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

    #[test]
    fn strip_duration_variants() {
        assert_eq!(strip_duration("works (2 ms)"), "works");
        assert_eq!(strip_duration("works (0.41ms)"), "works");
        assert_eq!(strip_duration("works (5.1 s)"), "works");
        assert_eq!(strip_duration("works 12ms"), "works");
        assert_eq!(
            strip_duration("handles (nested) input"),
            "handles (nested) input"
        );
        assert_eq!(strip_duration("works"), "works");
    }
}
