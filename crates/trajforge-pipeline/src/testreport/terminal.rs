//! What a terminal would show of a line of captured output: ANSI escapes removed,
//! CRLF handled, carriage-return overwrites reduced to the last segment.

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
pub(super) fn clean_line(raw: &str) -> String {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let visible = match raw.rfind('\r') {
        Some(i) => &raw[i + 1..],
        None => raw,
    };
    strip_ansi(visible).trim_end().to_string()
}

pub(super) fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, parse};
    use super::strip_ansi;

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
}
