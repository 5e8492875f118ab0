//! `go test -v`: `--- PASS: TestX (0.00s)` lines (subtests `TestX/sub`), keyed by
//! package once the `ok` / `FAIL` package line that follows names it.

use super::{Outcome, Parser, strip_tag};

impl Parser {
    pub(super) fn go_line(&mut self, t: &str) -> bool {
        if let Some((outcome, rest)) = strip_tag(
            t,
            &[
                ("--- PASS: ", Outcome::Passed),
                ("--- FAIL: ", Outcome::Failed),
                ("--- SKIP: ", Outcome::Skipped),
            ],
        ) && let Some(name) = rest.split_whitespace().next()
        {
            self.pending = None;
            self.go_buffer.push((name.to_string(), outcome));
            return true;
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

    pub(super) fn flush_go(&mut self, pkg: Option<&str>) {
        for (name, outcome) in std::mem::take(&mut self.go_buffer) {
            let key = match pkg {
                Some(pkg) => format!("{pkg}.{name}"),
                None => name,
            };
            self.record("go", key, outcome);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, parse};

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
}
