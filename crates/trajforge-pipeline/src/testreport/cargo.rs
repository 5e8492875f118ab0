//! `cargo test`: `test module::name ... ok` lines keyed by test binary (`Running ...`
//! headers), doc tests keyed without their line numbers so that a patch moving them does
//! not rename them; `--nocapture` output between a test and its result.

use super::{Outcome, Parser, Pending};

impl Parser {
    pub(super) fn cargo_header(&mut self, t: &str) -> bool {
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

    pub(super) fn cargo_result(s: &str) -> Option<Outcome> {
        match s {
            "ok" => Some(Outcome::Passed),
            "FAILED" => Some(Outcome::Failed),
            "ignored" => Some(Outcome::Skipped),
            _ if s.starts_with("ignored, ") => Some(Outcome::Skipped),
            _ => None,
        }
    }

    pub(super) fn cargo_line(&mut self, t: &str) -> bool {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, changes, parse};

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
    fn cargo_bench_lines_are_not_outcomes() {
        let out = "test bench_parse ... bench:       1,234.50 ns/iter (+/- 10.20)\nok\n";
        assert!(parse(out, Some(0)).tests.is_empty());
    }
}
