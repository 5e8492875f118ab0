//! The one escaping function every page uses for every string it did not write itself, and
//! the page frame (head, navigation) around each page.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` safe to place in HTML text or in a double- or single-quoted attribute value: `&`, `<`,
/// `>`, `"` and `'` become character references. Everything from the store (trajectory
/// content, patches, PR text, labels, URLs of visited pages) goes through here.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A query string from pairs, each key and value percent-encoded (for links the pages build).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Which top-level section a page belongs to (highlighted in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The run overview.
    Overview,
    /// The trajectory list.
    List,
    /// Full-text search.
    Search,
    /// A job's story or a training sample.
    Detail,
}

/// A whole page: the frame around `body`, with the run's name in the title.
pub fn page(run: &str, title: &str, section: Section, body: &str) -> String {
    let mut o = String::with_capacity(body.len() + 1024);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {}</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\">\
         <script src=\"/static/app.js\" defer></script></head><body>\
         <header><span class=\"brand\">trajforge view</span> <span class=\"run\">{}</span><nav>",
        esc(title),
        esc(run),
        esc(run)
    );
    for (s, href, label) in [
        (Section::Overview, "/", "Overview"),
        (Section::List, "/list", "Trajectories"),
        (Section::Search, "/search", "Search"),
    ] {
        let current = if s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(o, "<a href=\"{href}\"{current}>{label}</a>");
    }
    o.push_str(
        "</nav><span class=\"keys\">j/k next/previous · n next step · / search</span></header>\
         <main>",
    );
    o.push_str(body);
    o.push_str("</main></body></html>\n");
    o
}

/// A number with at most `digits` decimals, or `–` for none.
pub fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes_only() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert!(matches!(esc("plain {{ text }}"), Cow::Borrowed(_)));
    }

    #[test]
    fn queries_are_percent_encoded_and_skip_empty_values() {
        assert_eq!(
            query(&[("q", "a&b=c <x>"), ("page", ""), ("sort", "r")]),
            "q=a%26b%3Dc+%3Cx%3E&sort=r"
        );
    }
}
