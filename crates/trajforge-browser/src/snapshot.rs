//! The compact accessibility snapshot: Playwright-style lines such as
//! `- link "Pricing" [ref=e12]`, iframes merged, hidden and ignored nodes dropped, cut
//! with a visible marker past a size limit.
//!
//! The page is walked by our own script (`snapshot.js`) in an isolated world of the page,
//! which computes roles, accessible names and states and returns only the rendered lines:
//! Chromium's full accessibility tree (`Accessibility.getFullAXTree`) is megabytes of JSON
//! on a large page and took seconds to produce and parse. A ref (`eN`) is an id the script
//! gives an interactive element the first time it sees it and keeps while the element lives.

use std::collections::HashMap;

use serde::Deserialize;

/// The page walker, called with `Runtime.callFunctionOn(base)`; see the file's comments.
pub(crate) const WALKER_JS: &str = include_str!("snapshot.js");

/// What a ref points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTarget {
    /// The element's id in the page's walker state (the number in `eN`).
    pub id: u64,
    /// The frame whose own world holds the element, for frames the page's world cannot
    /// reach (sandboxed); `None` for the page and the frames merged through it.
    pub frame: Option<String>,
    /// Accessibility role.
    pub role: String,
    /// Accessible name.
    pub name: String,
}

/// One snapshot of a page.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Page URL.
    pub url: String,
    /// Page title.
    pub title: String,
    /// The rendered snapshot (possibly cut).
    pub text: String,
    /// Every interactive element of the page by ref (`e123`), shown or cut.
    pub refs: HashMap<String, RefTarget>,
    /// True when the text was cut at the size limit.
    pub cut: bool,
}

/// One line as the walker returns it: `[depth, kind, text]`, kind 0 = element, 1 = text,
/// 2 = the place of a frame to walk separately (text: its token).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawLine(pub usize, pub u8, pub String);

/// What the walker returns.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Walked {
    /// The lines in document order.
    pub lines: Vec<RawLine>,
    /// Interactive elements: `[id, role, name]`.
    pub refs: Vec<(u64, String, String)>,
    /// The next free ref id in the page (the tab never hands out an id twice).
    pub next: u64,
}

impl Walked {
    /// The refs, as found in `frame`.
    pub fn targets(&self, frame: Option<&str>) -> Vec<RefTarget> {
        self.refs
            .iter()
            .map(|(id, role, name)| RefTarget {
                id: *id,
                frame: frame.map(str::to_string),
                role: role.clone(),
                name: name.clone(),
            })
            .collect()
    }
}

/// Put `frame`'s lines where the marker line of frame `token` is, one level under it.
pub(crate) fn splice_frame(lines: &mut Vec<RawLine>, token: &str, frame: Vec<RawLine>) {
    let Some(at) = lines.iter().position(|l| l.1 == 2 && l.2 == token) else {
        return;
    };
    let depth = lines[at].0;
    let shifted = frame
        .into_iter()
        .map(|RawLine(d, k, t)| RawLine(d.saturating_add(depth), k, t));
    lines.splice(at..=at, shifted);
}

/// Assemble a snapshot from the walker's lines and refs, cut past `max_chars`; markers of
/// frames that were not walked are dropped.
pub(crate) fn assemble(
    lines: Vec<RawLine>,
    refs: Vec<RefTarget>,
    max_chars: usize,
    url: String,
    title: String,
) -> Snapshot {
    let lines: Vec<Line> = lines
        .into_iter()
        .filter_map(|RawLine(depth, kind, text)| match kind {
            0 => Some(Line::Node { depth, text }),
            1 => Some(Line::Text { depth, text }),
            _ => None,
        })
        .collect();
    let (text, cut) = join_cut(&lines, max_chars);
    let refs = refs
        .into_iter()
        .map(|t| (format!("e{}", t.id), t))
        .collect();
    Snapshot {
        url,
        title,
        text,
        refs,
        cut,
    }
}

#[derive(Debug, Clone)]
enum Line {
    Node { depth: usize, text: String },
    Text { depth: usize, text: String },
}

fn clean(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > max {
        let mut s: String = one.chars().take(max).collect();
        s.push('…');
        s
    } else {
        one
    }
}

/// Deepest indentation rendered: the depth comes from the page's walker, which a hostile
/// page can feed any number (a huge one would be a huge allocation).
const MAX_DEPTH: usize = 256;

fn join_cut(lines: &[Line], max_chars: usize) -> (String, bool) {
    let mut out = String::new();
    let indent = |depth: usize| "  ".repeat(depth.min(MAX_DEPTH));
    for (i, line) in lines.iter().enumerate() {
        let rendered = match line {
            Line::Node { depth, text } => format!("{}{}\n", indent(*depth), text),
            Line::Text { depth, text } => {
                format!("{}- text: {}\n", indent(*depth), clean(text, 400))
            }
        };
        if out.len() + rendered.len() > max_chars {
            out.push_str(&format!(
                "[snapshot cut here: {} more lines not shown; act on what is visible, or open a more specific page]\n",
                lines.len() - i
            ));
            return (out, true);
        }
        out.push_str(&rendered);
    }
    (out, false)
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use trajforge_testkit::fuzz;

    use super::*;

    const SEEDS: &[&str] = &[
        r#"{"lines": [[0, 0, "- navigation \"Main\":"], [1, 2, "f1"], [1, 1, "Some   text\nwrapped"], [18446744073709551615, 0, "deep"]], "refs": [[12, "link", "Pricing"]], "next": 13}"#,
        r#"{"lines": [[3, 1, "x"], [0, 7, "?"]], "refs": [], "next": 0}"#,
    ];

    proptest! {
        #![proptest_config(fuzz::config())]

        /// What a page's walker returns (`TRAJFORGE_FUZZ_CASES` sets the budget): hostile
        /// JSON, frames spliced into frames, any depth; never a panic or a huge allocation.
        #[test]
        fn hostile_walker_output_never_panics(bytes in fuzz::inputs(
            SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect(), 512)
        ) {
            if let Ok(walked) = serde_json::from_slice::<Walked>(&bytes) {
                let mut lines = walked.lines.clone();
                for token in walked.lines.iter().filter(|l| l.1 == 2).map(|l| l.2.clone()) {
                    splice_frame(&mut lines, &token, walked.lines.clone());
                }
                let refs = walked.targets(Some("frame"));
                let snap = assemble(lines, refs, 4096, String::new(), String::new());
                prop_assert!(snap.text.len() < 8192);
            }
        }
    }

    #[test]
    fn a_huge_depth_is_capped() {
        let lines = vec![
            RawLine(usize::MAX, 0, "x".into()),
            RawLine(1, 2, "f".into()),
        ];
        let mut spliced = lines.clone();
        splice_frame(&mut spliced, "f", lines);
        let snap = assemble(spliced, Vec::new(), 1 << 20, String::new(), String::new());
        assert!(
            snap.text
                .starts_with(&format!("{}x\n", "  ".repeat(MAX_DEPTH)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(json: &str) -> Walked {
        serde_json::from_str(json).expect("walker output")
    }

    #[test]
    fn renders_lines_and_refs() {
        let w = walked(
            r#"{"lines": [[0, 0, "- navigation \"Main\":"], [1, 0, "- link \"Pricing\" [ref=e12]"],
                [1, 1, "Some   text\nwrapped"]], "refs": [[12, "link", "Pricing"]], "next": 13}"#,
        );
        let refs = w.targets(None);
        let s = assemble(w.lines, refs, 10_000, "u".into(), "t".into());
        assert_eq!(
            s.text,
            "- navigation \"Main\":\n  - link \"Pricing\" [ref=e12]\n  - text: Some text wrapped\n"
        );
        assert_eq!(s.refs["e12"].id, 12);
        assert_eq!(s.refs["e12"].role, "link");
        assert_eq!(s.refs["e12"].frame, None);
        assert!(!s.cut);
        assert_eq!((s.url.as_str(), s.title.as_str()), ("u", "t"));
    }

    #[test]
    fn cuts_with_marker() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("[0, 0, \"- button \\\"Button {i}\\\" [ref=e{}]\"]", 100 + i))
            .collect();
        let refs: Vec<String> = (0..50)
            .map(|i| format!("[{}, \"button\", \"Button {i}\"]", 100 + i))
            .collect();
        let w = walked(&format!(
            r#"{{"lines": [{}], "refs": [{}], "next": 150}}"#,
            lines.join(","),
            refs.join(",")
        ));
        let refs = w.targets(None);
        let s = assemble(w.lines, refs, 200, String::new(), String::new());
        assert!(s.cut);
        assert!(s.text.len() < 320, "{}", s.text);
        assert!(
            s.text.contains("[snapshot cut here: 44 more lines"),
            "{}",
            s.text
        );
        assert_eq!(s.refs.len(), 50, "cut refs stay actionable");
    }

    #[test]
    fn frames_are_spliced_under_their_marker() {
        let mut lines = vec![
            RawLine(0, 0, "- main:".into()),
            RawLine(1, 2, "1".into()),
            RawLine(1, 2, "2".into()),
            RawLine(1, 0, "- button \"After\"".into()),
        ];
        splice_frame(
            &mut lines,
            "1",
            vec![
                RawLine(0, 0, "- button \"Inside\" [ref=e9]".into()),
                RawLine(0, 1, "framed".into()),
            ],
        );
        let s = assemble(lines, Vec::new(), 10_000, String::new(), String::new());
        assert_eq!(
            s.text,
            "- main:\n  - button \"Inside\" [ref=e9]\n  - text: framed\n  - button \"After\"\n"
        );
    }
}
