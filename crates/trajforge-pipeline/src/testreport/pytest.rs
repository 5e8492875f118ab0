//! pytest `-v` / `-rA`: `path::Class::test PASSED [ 10%]`, `FAILED path::test - msg`,
//! pytest-xdist's `[gw0] [ 50%] PASSED path::test`, collection errors of whole files, and
//! output printed (`-s`, live logging) before a test's status.

use super::{Outcome, Parser, Pending};

impl Parser {
    fn pytest_status(word: &str) -> Option<Outcome> {
        match word {
            "PASSED" | "XPASS" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed),
            "ERROR" => Some(Outcome::Error),
            "SKIPPED" | "XFAIL" => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// The status of a test whose node id came on an earlier line (`-s`, live logging): a
    /// line holding the status word, at most followed by a progress or reason in brackets.
    pub(super) fn pytest_late_status(t: &str) -> Option<Outcome> {
        let mut words = t.split_whitespace();
        let status = words.next().and_then(Self::pytest_status);
        let tail_ok = words
            .next()
            .is_none_or(|w| w.starts_with('[') || w.starts_with('('));
        status.filter(|_| tail_ok)
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

    pub(super) fn pytest_line(&mut self, t: &str) -> bool {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, parse};

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
}
