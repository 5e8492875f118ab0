//! Git's C-style path quoting (`"a/sp ace\303\251"`).

/// Reads a quoted name at the start of `s` (which must begin with `"`).
///
/// Returns the decoded name and the text after the closing quote, or `None` when the quote is
/// never closed or an escape is unknown. Octal escapes are raw bytes, so the name is decoded
/// as UTF-8 only at the end; invalid UTF-8 is replaced rather than rejected because a path
/// is only used as a label here.
pub(crate) fn unquote(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let name = String::from_utf8_lossy(&out).into_owned();
                return Some((name, &body[i + 1..]));
            }
            b'\\' => {
                let esc = *bytes.get(i + 1)?;
                i += 2;
                let byte = match esc {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 0x0b,
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'0'..=b'3' => {
                        let d1 = octal_digit(*bytes.get(i)?)?;
                        let d2 = octal_digit(*bytes.get(i + 1)?)?;
                        i += 2;
                        ((esc - b'0') << 6) | (d1 << 3) | d2
                    }
                    _ => return None,
                };
                out.push(byte);
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

fn octal_digit(b: u8) -> Option<u8> {
    matches!(b, b'0'..=b'7').then(|| b - b'0')
}

/// Whether git would quote this name (with the default `core.quotePath=true`).
fn needs_quoting(name: &str) -> bool {
    name.bytes()
        .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
}

/// Renders a name the way git prints it: bare when possible, otherwise C-quoted.
pub(crate) fn quote(name: &str) -> String {
    if !needs_quoting(name) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for b in name.bytes() {
        match b {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if !(0x20..0x7f).contains(&b) => out.push_str(&format!("\\{b:03o}")),
            b => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_git_escapes() {
        let (name, rest) = unquote(r#""a/sp ace\303\251\t\"q\\" tail"#).expect("valid quote");
        assert_eq!(name, "a/sp ace\u{e9}\t\"q\\");
        assert_eq!(rest, " tail");
    }

    #[test]
    fn rejects_unterminated_and_unknown_escapes() {
        assert_eq!(unquote(r#""abc"#), None);
        assert_eq!(unquote(r#""a\qb""#), None);
        assert_eq!(unquote(r#""a\30""#), None);
    }

    #[test]
    fn quote_round_trips() {
        for name in [
            "plain/path.rs",
            "sp ace",
            "caf\u{e9}/\u{65e5}",
            "t\tab\"\\\u{7f}",
        ] {
            let quoted = quote(name);
            let quoted_again = format!("{quoted}!");
            let back = if quoted.starts_with('"') {
                unquote(&quoted_again).map(|(n, rest)| (n, rest.to_owned()))
            } else {
                Some((quoted.clone(), "!".to_owned()))
            };
            assert_eq!(back, Some((name.to_owned(), "!".to_owned())), "{quoted}");
        }
        assert_eq!(quote("sp ace"), "sp ace");
        assert_eq!(quote("\u{e9}"), r#""\303\251""#);
    }
}
