//! Python `unittest -v`: `name (module.Class.name) ... ok` in the pre-3.11 and 3.11+
//! forms, docstring lines where `... ok` lands on the next line, output printed between
//! the test name and its result, and the `FAIL: name (...)` headers of the failure section.

use super::{Outcome, Parser, Pending, strip_tag};

/// The prefix of the test unittest reports for a module it could not import.
pub const FAILED_IMPORT: &str = "unittest.loader._FailedTest.";

impl Parser {
    pub(super) fn unittest_result(s: &str) -> Option<Outcome> {
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

    /// The result of a test whose line came earlier: the end of a docstring or output line.
    pub(super) fn unittest_late_result(t: &str) -> Option<Outcome> {
        let result = t.rsplit_once(" ... ").map_or(t, |(_, r)| r.trim());
        let result = result.strip_prefix("... ").unwrap_or(result);
        Self::unittest_result(result)
    }

    /// Splits `name (dotted.path)` at the start of `t`; returns the test key and the
    /// text after the closing parenthesis.
    fn unittest_head(t: &str) -> Option<(String, &str)> {
        let (name, rest) = t.split_once(" (")?;
        let close = rest.find(')')?;
        let path = &rest[..close];
        // A module that failed to import: `tests.test_x (unittest.loader._FailedTest.tests.test_x)`,
        // keyed by that path so a reader can tell which module's tests it stands for.
        if path.strip_prefix(FAILED_IMPORT) == Some(name) {
            return Some((path.to_string(), &rest[close + 1..]));
        }
        let mut first = name.chars();
        if !first.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            return None;
        }
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

    pub(super) fn unittest_line(&mut self, t: &str) -> bool {
        // Failure-section headers: "FAIL: test_x (m.C.test_x)", "ERROR: setUpClass (m.C)".
        if let Some((outcome, rest)) = strip_tag(
            t,
            &[
                ("FAIL: ", Outcome::Failed),
                ("ERROR: ", Outcome::Error),
                ("UNEXPECTED SUCCESS: ", Outcome::Passed),
            ],
        ) && let Some((key, _)) = Self::unittest_head(rest)
        {
            self.record("unittest", key, outcome);
            return true;
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{assert_tests, get};
    use super::super::{Outcome, Outcome::*, parse};

    #[test]
    fn a_module_that_fails_to_import_is_an_error_keyed_by_its_failed_test() {
        // Python 3.11's own output for a test module whose import fails.
        let out = "\
tests.test_new (unittest.loader._FailedTest.tests.test_new) ... ERROR
test_f (tests.test_old.U.test_f) ... ok

======================================================================
ERROR: tests.test_new (unittest.loader._FailedTest.tests.test_new)
----------------------------------------------------------------------
ImportError: Failed to import test module: tests.test_new
";
        assert_tests(
            &parse(out, Some(1)),
            &[
                ("tests.test_old.U.test_f", Passed),
                ("unittest.loader._FailedTest.tests.test_new", Error),
            ],
        );
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
}
