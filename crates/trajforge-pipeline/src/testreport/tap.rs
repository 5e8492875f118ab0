//! TAP (`node --test`, `prove`, tape): `ok 1 - name`, `not ok 2 - name`, the `# SKIP`
//! and `# TODO` directives and `# Subtest:` nesting.

use super::{Outcome, Parser, indent_of, nested_key};

impl Parser {
    pub(super) fn tap_line(&mut self, line: &str) -> bool {
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
        let key = nested_key(&mut self.tap_stack, indent, None, &name);
        self.record("tap", key, outcome);
        true
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, parse};

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
}
