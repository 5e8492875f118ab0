//! Whether a problem statement gives the fix away: an added line of the gold patch quoted in it.

/// Shortest added line (trimmed, whitespace collapsed) that counts as telling: shorter lines
/// (`return x`, `else:`) turn up in any description of the symptom.
pub const MIN_LEAK_CHARS: usize = 16;

/// The added lines of `patch` (trimmed, inner whitespace collapsed) of at least
/// [`MIN_LEAK_CHARS`] characters that appear in `text`, in patch order, each once.
pub fn leaked_lines(text: &str, patch: &str) -> Vec<String> {
    let haystack = collapse(text);
    let mut leaks: Vec<String> = Vec::new();
    for line in patch.lines() {
        let Some(added) = line.strip_prefix('+') else {
            continue;
        };
        if added.starts_with("++ ") {
            continue;
        }
        let needle = collapse(added);
        if needle.chars().count() >= MIN_LEAK_CHARS
            && needle.chars().any(char::is_alphanumeric)
            && haystack.contains(&needle)
            && !leaks.contains(&needle)
        {
            leaks.push(needle);
        }
    }
    leaks
}

/// Trimmed, with every run of whitespace made one space.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLD: &str = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,4 @@\n def tail(n, it):\n+    if n < 0:\n+        raise ValueError('n must be non-negative')\n     return deque(it, maxlen=n)\n";

    #[test]
    fn a_quoted_added_line_leaks_and_a_symptom_does_not() {
        let symptom =
            "`tail(-1, 'ABC')` returns all items instead of complaining. Expected a ValueError.";
        assert!(leaked_lines(symptom, GOLD).is_empty());
        let fix = "Please add a check:\n\n    raise   ValueError('n must be non-negative')\n";
        assert_eq!(
            leaked_lines(fix, GOLD),
            ["raise ValueError('n must be non-negative')"]
        );
        // `if n < 0:` is too short to tell.
        assert!(leaked_lines("if n < 0: it breaks", GOLD).is_empty());
        // Context and header lines are not the fix.
        assert!(leaked_lines("return deque(it, maxlen=n) and +++ b/m.py", GOLD).is_empty());
    }
}
