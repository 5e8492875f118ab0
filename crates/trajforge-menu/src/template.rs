//! Prompt templates: `{name}` placeholders, `{{` and `}}` for literal braces.
//!
//! One scanner serves both validation (strict: stray braces are errors) and
//! rendering (lenient: anything not recognised is copied through), so the two
//! can never disagree about what counts as a placeholder. The menu's entries and
//! the pipeline's stage prompts both use it.

/// One piece of a scanned template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Plain text, copied as is.
    Text(&'a str),
    /// An escaped brace (`{{` or `}}`), rendered as the single character.
    Escaped(char),
    /// A `{name}` placeholder; `name` excludes the braces.
    Placeholder(&'a str),
    /// A `{` or `}` that neither escapes nor encloses a name; byte offset.
    Stray(char, usize),
}

/// Splits `template` into pieces, left to right.
pub fn scan(template: &str) -> Vec<Piece<'_>> {
    let bytes = template.as_bytes();
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'{' && b != b'}' {
            i += 1;
            continue;
        }
        if text_start < i {
            pieces.push(Piece::Text(&template[text_start..i]));
        }
        if bytes.get(i + 1) == Some(&b) {
            pieces.push(Piece::Escaped(char::from(b)));
            i += 2;
        } else if b == b'{' {
            let name_len = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            let close = i + 1 + name_len;
            if name_len > 0 && bytes.get(close) == Some(&b'}') {
                pieces.push(Piece::Placeholder(&template[i + 1..close]));
                i = close + 1;
            } else {
                pieces.push(Piece::Stray('{', i));
                i += 1;
            }
        } else {
            pieces.push(Piece::Stray('}', i));
            i += 1;
        }
        text_start = i;
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(&template[text_start..]));
    }
    pieces
}

/// Fills the known placeholders of `template`; unknown ones stay verbatim.
///
/// Single pass over the template: text inserted for one placeholder is never scanned for
/// another (a patch may well contain `{task}`).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    for piece in scan(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Escaped(c) | Piece::Stray(c, _) => out.push(c),
            Piece::Placeholder(name) => match values.iter().find(|(k, _)| *k == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_placeholders_escapes_and_strays() {
        assert_eq!(
            scan("a {x} {{b}} c} {y"),
            vec![
                Piece::Text("a "),
                Piece::Placeholder("x"),
                Piece::Text(" "),
                Piece::Escaped('{'),
                Piece::Text("b"),
                Piece::Escaped('}'),
                Piece::Text(" c"),
                Piece::Stray('}', 13),
                Piece::Text(" "),
                Piece::Stray('{', 15),
                Piece::Text("y"),
            ]
        );
        assert_eq!(
            scan("{ x}"),
            vec![
                Piece::Stray('{', 0),
                Piece::Text(" x"),
                Piece::Stray('}', 3)
            ]
        );
    }

    #[test]
    fn renders_known_and_keeps_unknown() {
        let out = render("{a}-{b}-{{a}}-{é}", &[("a", "1")]);
        assert_eq!(out, "1-{b}-{a}-{é}");
    }
}
