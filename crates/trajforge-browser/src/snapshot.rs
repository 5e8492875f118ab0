//! The compact accessibility snapshot: Playwright-style lines such as
//! `- link "Pricing" [ref=e12]`, where the ref is the element's DOM backend node id
//! (stable while the element lives), iframes merged, ignored and hidden nodes dropped.

use std::collections::HashMap;

use serde_json::Value;

/// What a ref points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTarget {
    /// DOM backend node id.
    pub backend: i64,
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

/// Roles that get a ref: what a user can act on.
const INTERACTIVE: &[&str] = &[
    "link",
    "button",
    "textbox",
    "searchbox",
    "combobox",
    "checkbox",
    "radio",
    "switch",
    "slider",
    "spinbutton",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "tab",
    "option",
    "listbox",
    "treeitem",
    "textField",
    "ComboBox",
    "PopUpButton",
    "ToggleButton",
    "DisclosureTriangle",
];

/// Roles that only group and are skipped unless named or interactive.
const TRANSPARENT: &[&str] = &[
    "generic",
    "none",
    "presentation",
    "LineBreak",
    "Section",
    "Div",
    "Pre",
    "Abbr",
    "Ruby",
    "LabelText",
    "Canvas",
    "Unknown",
    "strong",
    "emphasis",
    "Iframe",
    "IframePresentational",
    "SvgRoot",
    "group",
    "image",
    "img",
    "graphics-symbol",
    "Span",
    "time",
];

#[derive(Debug, Clone)]
enum Line {
    Node { depth: usize, text: String },
    Text { depth: usize, text: String },
}

struct Tree<'a> {
    nodes: HashMap<&'a str, &'a Value>,
    frames: &'a [(i64, Value)],
    refs: HashMap<String, RefTarget>,
}

/// Build the snapshot from `Accessibility.getFullAXTree` nodes of the main frame and of
/// child frames (each with its owner element's backend node id).
pub fn build(
    main: &Value,
    frames: &[(i64, Value)],
    max_chars: usize,
    url: String,
    title: String,
) -> Snapshot {
    let mut tree = Tree {
        nodes: HashMap::new(),
        frames,
        refs: HashMap::new(),
    };
    let mut lines = Vec::new();
    if let Some(root) = index(&mut tree.nodes, main) {
        let root = root.to_string();
        tree.render_children_of(&root, 0, &mut lines);
    }
    let (text, cut) = join_cut(&lines, max_chars);
    Snapshot {
        url,
        title,
        text,
        refs: tree.refs,
        cut,
    }
}

/// Index nodes by id; returns the root's id.
fn index<'a>(map: &mut HashMap<&'a str, &'a Value>, nodes: &'a Value) -> Option<&'a str> {
    let arr = nodes.as_array()?;
    let mut root = None;
    for n in arr {
        if let Some(id) = n.get("nodeId").and_then(Value::as_str) {
            map.insert(id, n);
            if root.is_none() && n.get("parentId").is_none() {
                root = Some(id);
            }
        }
    }
    root.or_else(|| arr.first()?.get("nodeId")?.as_str())
}

fn prop<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .pointer("/value/value")
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

impl<'a> Tree<'a> {
    fn render_children_of(&mut self, id: &str, depth: usize, out: &mut Vec<Line>) {
        let Some(node) = self.nodes.get(id).copied() else {
            return;
        };
        let children: Vec<String> = node
            .get("childIds")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for c in children {
            self.render(&c, depth, out);
        }
        // An iframe's document hangs under its owner element.
        if let Some(backend) = node.get("backendDOMNodeId").and_then(Value::as_i64) {
            let frames = self.frames;
            for (owner, nodes) in frames {
                if *owner == backend {
                    let mut sub = HashMap::new();
                    if let Some(root) = index(&mut sub, nodes) {
                        let root = root.to_string();
                        let saved = std::mem::replace(&mut self.nodes, sub);
                        self.render_children_of(&root, depth, out);
                        self.nodes = saved;
                    }
                }
            }
        }
    }

    fn render(&mut self, id: &str, depth: usize, out: &mut Vec<Line>) {
        let Some(node) = self.nodes.get(id).copied() else {
            return;
        };
        if prop(node, "hidden") == Some(&Value::Bool(true)) {
            return;
        }
        let role = node
            .pointer("/role/value")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ignored = node
            .get("ignored")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if ignored {
            self.render_children_of(id, depth, out);
            return;
        }
        let name = clean(
            node.pointer("/name/value")
                .and_then(Value::as_str)
                .unwrap_or(""),
            200,
        );
        match role {
            "StaticText" => {
                if !name.is_empty() {
                    push_text(out, depth, &name);
                }
                return;
            }
            "InlineTextBox" | "ListMarker" => return,
            _ => {}
        }
        let backend = node.get("backendDOMNodeId").and_then(Value::as_i64);
        let focusable = prop(node, "focusable") == Some(&Value::Bool(true));
        let interactive = backend.is_some()
            && (INTERACTIVE.contains(&role)
                || (focusable && !matches!(role, "RootWebArea" | "WebArea" | "Iframe")));
        if !interactive
            && (TRANSPARENT.contains(&role) || role == "RootWebArea" || role.is_empty())
            && name.is_empty()
        {
            self.render_children_of(id, depth, out);
            return;
        }
        let mut head = format!("- {role}");
        if !name.is_empty() {
            head.push_str(&format!(" \"{}\"", name.replace('"', "\\\"")));
        }
        if role == "heading"
            && let Some(level) = prop(node, "level").and_then(Value::as_i64)
        {
            head.push_str(&format!(" [level={level}]"));
        }
        for (p, label) in [
            ("checked", "checked"),
            ("selected", "selected"),
            ("expanded", "expanded"),
            ("pressed", "pressed"),
        ] {
            match prop(node, p) {
                Some(Value::Bool(true)) => head.push_str(&format!(" [{label}]")),
                Some(Value::String(s)) if s == "true" => head.push_str(&format!(" [{label}]")),
                Some(Value::String(s)) if s == "mixed" => {
                    head.push_str(&format!(" [{label}=mixed]"))
                }
                _ => {}
            }
        }
        if prop(node, "disabled") == Some(&Value::Bool(true)) {
            head.push_str(" [disabled]");
        }
        if interactive && let Some(b) = backend {
            let r = format!("e{b}");
            head.push_str(&format!(" [ref={r}]"));
            self.refs.insert(
                r,
                RefTarget {
                    backend: b,
                    role: role.to_string(),
                    name: name.clone(),
                },
            );
        }
        let mut kids = Vec::new();
        self.render_children_of(id, depth + 1, &mut kids);
        // Text children that only repeat the name add nothing.
        if !name.is_empty() {
            kids.retain(|l| !matches!(l, Line::Text { depth: d, text } if *d == depth + 1 && name.contains(text.as_str())));
        }
        let value = node
            .pointer("/value/value")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_f64().map(|f| f.to_string()))
            })
            .map(|v| clean(&v, 200))
            .filter(|v| {
                !v.is_empty()
                    && matches!(
                        role,
                        "textbox" | "searchbox" | "combobox" | "spinbutton" | "slider"
                    )
            });
        if let Some(v) = value {
            head.push_str(&format!(": {v}"));
            out.push(Line::Node { depth, text: head });
            out.extend(kids);
            return;
        }
        if let [Line::Text { text, .. }] = kids.as_slice() {
            head.push_str(&format!(": {text}"));
            out.push(Line::Node { depth, text: head });
            return;
        }
        if !kids.is_empty() {
            head.push(':');
        }
        out.push(Line::Node { depth, text: head });
        out.extend(kids);
    }
}

fn push_text(out: &mut Vec<Line>, depth: usize, text: &str) {
    if let Some(Line::Text {
        depth: d,
        text: last,
    }) = out.last_mut()
        && *d == depth
    {
        last.push(' ');
        last.push_str(text);
        return;
    }
    out.push(Line::Text {
        depth,
        text: text.to_string(),
    });
}

fn join_cut(lines: &[Line], max_chars: usize) -> (String, bool) {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rendered = match line {
            Line::Node { depth, text } => format!("{}{}\n", "  ".repeat(*depth), text),
            Line::Text { depth, text } => {
                format!("{}- text: {}\n", "  ".repeat(*depth), clean(text, 400))
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
mod tests {
    use super::*;
    use serde_json::json;

    fn node(
        id: &str,
        parent: Option<&str>,
        role: &str,
        name: &str,
        kids: &[&str],
        backend: i64,
    ) -> Value {
        let mut n = json!({
            "nodeId": id, "ignored": false, "role": {"type": "role", "value": role},
            "name": {"type": "computedString", "value": name}, "childIds": kids, "backendDOMNodeId": backend,
        });
        if let Some(p) = parent {
            n["parentId"] = json!(p);
        }
        n
    }

    #[test]
    fn renders_refs_text_and_drops_ignored() {
        let mut hidden = node("5", Some("2"), "button", "Secret", &[], 50);
        hidden["ignored"] = json!(true);
        let nodes = json!([
            node("1", None, "RootWebArea", "Home", &["2"], 1),
            node("2", Some("1"), "navigation", "Main", &["3", "5"], 2),
            node("3", Some("2"), "link", "Pricing", &["4"], 12),
            node("4", Some("3"), "StaticText", "Pricing", &[], 13),
            hidden,
        ]);
        let s = build(&nodes, &[], 10_000, "u".into(), "t".into());
        assert_eq!(
            s.text,
            "- navigation \"Main\":\n  - link \"Pricing\" [ref=e12]\n"
        );
        assert_eq!(s.refs["e12"].backend, 12);
        assert!(!s.refs.contains_key("e50"));
    }

    #[test]
    fn cuts_with_marker() {
        let kids: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
        let mut arr = vec![node("r", None, "RootWebArea", "", &kid_refs, 1)];
        for (i, k) in kids.iter().enumerate() {
            arr.push(node(
                k,
                Some("r"),
                "button",
                &format!("Button {i}"),
                &[],
                100 + i as i64,
            ));
        }
        let s = build(&Value::Array(arr), &[], 200, String::new(), String::new());
        assert!(s.cut);
        assert!(s.text.len() < 320, "{}", s.text);
        assert!(s.text.contains("[snapshot cut here:"));
        assert_eq!(s.refs.len(), 50, "cut refs stay actionable");
    }

    #[test]
    fn merges_iframe_under_owner() {
        let main = json!([
            node("1", None, "RootWebArea", "", &["2"], 1),
            node("2", Some("1"), "Iframe", "", &[], 7),
        ]);
        let frame = json!([
            node("a", None, "RootWebArea", "Inner", &["b"], 70),
            node("b", Some("a"), "button", "Inside", &[], 71),
        ]);
        let s = build(&main, &[(7, frame)], 10_000, String::new(), String::new());
        assert_eq!(s.text, "- button \"Inside\" [ref=e71]\n");
    }
}
