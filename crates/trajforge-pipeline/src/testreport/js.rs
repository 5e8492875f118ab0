//! Jest, Vitest and `node --test` spec-reporter lines (`✓ name`, `✕ name`, `○ skipped
//! name`), keyed by test file and enclosing `describe` blocks.

use super::{Outcome, Parser, indent_of, nested_key};

impl Parser {
    pub(super) fn js_line(&mut self, line: &str) -> bool {
        let indent = indent_of(line);
        let t = line.trim();
        // Vitest marks a file with failures with "❯" instead of a check mark.
        if let Some(file) = jest_header(t).or_else(|| t.strip_prefix("❯ ").and_then(vitest_file))
        {
            self.js_enter_file(file);
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
            self.js_enter_file(file);
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
        let file = self
            .js_file
            .as_deref()
            .filter(|file| !name.starts_with(file));
        let key = nested_key(&mut self.js_stack, indent, file, name);
        self.pending = None;
        self.record("jest", key, outcome);
        true
    }

    /// A new test file starts: its tests are keyed by it, its describe lines are tracked.
    fn js_enter_file(&mut self, file: &str) {
        self.js_file = Some(file.to_string());
        self.js_block = true;
        self.js_stack.clear();
    }

    pub(super) fn js_describe(&mut self, line: &str) {
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
    use super::super::tests::assert_tests;
    use super::super::{Outcome::*, parse};
    use super::strip_duration;

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
