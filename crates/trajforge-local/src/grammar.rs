//! GBNF grammars that make the model's output either hermes tool calls whose arguments
//! follow each tool's JSON Schema, or a plain final message.
//!
//! The schema support is the subset tool definitions use: objects with properties
//! (required ones always written, optional ones in declared order), strings with `enum` or
//! `const`, integers, numbers, booleans, null, arrays with `items`, `anyOf`/`oneOf`, and
//! any JSON value where the schema says nothing more precise.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use trajforge_teacher::ToolSpec;

use trajforge_chat::hermes::{CALL_CLOSE, CALL_OPEN, call_head};

/// Which replies a tool-offering request allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// A tool call or a plain message, the model decides (OpenAI's `auto`).
    Auto,
    /// At least one tool call; what an agent loop needs at every step.
    #[default]
    Required,
    /// A plain message only (no grammar at all).
    None,
    /// Exactly this tool.
    Function(String),
}

/// Longest integer literal the grammar lets the model write (keeps it from looping on digits).
const MAX_DIGITS: usize = 12;

/// `tool_choice` names a function that is not among the tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool_choice names {0:?}, which is not among the tools")]
pub struct UnknownTool(pub String);

/// The grammar for `tools` under `choice`, or `None` when the output is unconstrained.
/// With `parallel` a reply may hold several calls; without, exactly one (small models
/// otherwise keep emitting calls until max_tokens cuts the last one in half).
pub fn tool_grammar(
    tools: &[ToolSpec],
    choice: &ToolChoice,
    parallel: bool,
) -> Result<Option<String>, UnknownTool> {
    let offered: Vec<&ToolSpec> = match choice {
        ToolChoice::None => return Ok(None),
        ToolChoice::Function(name) => {
            let tool = tools
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| UnknownTool(name.clone()))?;
            vec![tool]
        }
        ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
    };
    if offered.is_empty() {
        return Ok(None);
    }
    let mut g = Builder::default();
    let mut alternatives = Vec::new();
    for (i, tool) in offered.iter().enumerate() {
        let args = g.schema(&tool.parameters, &format!("t{i}-args"), true);
        let head = call_head(&tool.name);
        alternatives.push(format!("{} {args} \"}}\"", lit(&head)));
    }
    g.rule("call-body", &alternatives.join(" | "));
    g.rule(
        "call",
        &format!(
            "{} call-body {}",
            lit(&format!("{CALL_OPEN}\n")),
            lit(&format!("\n{CALL_CLOSE}"))
        ),
    );
    let calls = match choice {
        // One call when a specific function is forced, as OpenAI does.
        ToolChoice::Function(_) => "call",
        _ if parallel => "call (\"\\n\" call)*",
        _ => "call",
    };
    match choice {
        ToolChoice::Auto => {
            g.rule("calls", calls);
            // A message may not start with '<' or blank space, so it cannot be a call in
            // disguise and the first character tells the two branches apart.
            g.rule("message", r#"[^<\x00-\x20] [^\x00]*"#);
            g.rule("root", "calls | message");
        }
        _ => g.rule("root", calls),
    }
    Ok(Some(g.finish()))
}

/// GBNF literal for `s`.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Default)]
struct Builder {
    rules: BTreeMap<String, String>,
    /// Shared rules (json value, string...) are emitted once.
    shared_done: bool,
}

impl Builder {
    fn rule(&mut self, name: &str, body: &str) {
        self.rules.insert(name.to_string(), body.to_string());
    }

    fn shared(&mut self) {
        if self.shared_done {
            return;
        }
        self.shared_done = true;
        // At most one space where JSON allows whitespace: the tiny model would otherwise
        // happily spend its whole token budget on blank space.
        self.rule("ws", r#"" "?"#);
        self.rule(
            "string",
            r#""\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"""#,
        );
        self.rule("integer", &format!(r#""-"? [0-9]{{1,{MAX_DIGITS}}}"#));
        self.rule(
            "number",
            &format!(
                r#""-"? [0-9]{{1,{MAX_DIGITS}}} ( "." [0-9]{{1,{MAX_DIGITS}}} )? ( [eE] [-+]? [0-9]{{1,3}} )?"#
            ),
        );
        self.rule("boolean", r#""true" | "false""#);
        self.rule("null", r#""null""#);
        self.rule("value", "object | array | string | number | boolean | null");
        self.rule(
            "object",
            r#""{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}""#,
        );
        self.rule("array", r#""[" ws ( value ( ws "," ws value )* )? ws "]""#);
    }

    /// Emit rules for `schema` and return the rule (or inline expression) matching it.
    fn schema(&mut self, schema: &Value, name: &str, top: bool) -> String {
        self.shared();
        let Some(obj) = schema.as_object() else {
            return "value".into();
        };
        if let Some(c) = obj.get("const") {
            return lit(&c.to_string());
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            let alts: Vec<String> = options.iter().map(|v| lit(&v.to_string())).collect();
            if !alts.is_empty() {
                return format!("( {} )", alts.join(" | "));
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = obj.get(key) {
                let alts: Vec<String> = options
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.schema(s, &format!("{name}-{i}"), false))
                    .collect();
                if !alts.is_empty() {
                    return format!("( {} )", alts.join(" | "));
                }
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if obj.contains_key("properties") => vec!["object"],
            _ => Vec::new(),
        };
        if types.is_empty() {
            // Tool arguments are always an object, even when the schema is vague.
            return if top { "object".into() } else { "value".into() };
        }
        let alts: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                self.typed(
                    obj,
                    ty,
                    &format!(
                        "{name}{}",
                        if i == 0 {
                            String::new()
                        } else {
                            format!("-{i}")
                        }
                    ),
                )
            })
            .collect();
        if alts.len() == 1 {
            alts.into_iter().next().unwrap_or_else(|| "value".into())
        } else {
            format!("( {} )", alts.join(" | "))
        }
    }

    fn typed(&mut self, obj: &serde_json::Map<String, Value>, ty: &str, name: &str) -> String {
        match ty {
            "string" => "string".into(),
            "integer" => "integer".into(),
            "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => match obj.get("items") {
                Some(items) => {
                    let item = self.schema(items, &format!("{name}-item"), false);
                    let body = format!(r#""[" ws ( {item} ( ws "," ws {item} )* )? ws "]""#);
                    self.rule(name, &body);
                    name.to_string()
                }
                None => "array".into(),
            },
            "object" => self.object(obj, name),
            _ => "value".into(),
        }
    }

    fn object(&mut self, obj: &serde_json::Map<String, Value>, name: &str) -> String {
        let Some(Value::Object(props)) = obj.get("properties") else {
            return "object".into();
        };
        if props.is_empty() {
            return "object".into();
        }
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut must = Vec::new();
        let mut may = Vec::new();
        for (i, (key, schema)) in props.iter().enumerate() {
            let value = self.schema(schema, &format!("{name}-p{i}"), false);
            let pair = format!(
                r#"{} ws ":" ws {value}"#,
                lit(&Value::String(key.clone()).to_string())
            );
            if required.contains(&key.as_str()) {
                must.push(pair);
            } else {
                may.push(pair);
            }
        }
        let body = if must.is_empty() {
            // Any of the optional properties, each at most as often as the model repeats it;
            // a fixed order would force an unused first property to be skipped in a way
            // GBNF cannot say without an alternative per starting property.
            let any = format!("{name}-opt");
            self.rule(&any, &may.join(" | "));
            format!(r#""{{" ws ( {any} ( ws "," ws {any} )* )? ws "}}""#)
        } else {
            let mut body = format!(r#""{{" ws {}"#, must.join(r#" ws "," ws "#));
            for pair in &may {
                let _ = write!(body, r#" ( ws "," ws {pair} )?"#);
            }
            body.push_str(r#" ws "}""#);
            body
        };
        self.rule(name, &body);
        name.to_string()
    }

    fn finish(self) -> String {
        let mut out = String::new();
        // root first, for readers of the grammar; llama.cpp does not care about order.
        if let Some(root) = self.rules.get("root") {
            let _ = writeln!(out, "root ::= {root}");
        }
        for (name, body) in &self.rules {
            if name != "root" {
                let _ = writeln!(out, "{name} ::= {body}");
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "bash".into(),
                description: "run".into(),
                parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
            },
            ToolSpec {
                name: "str_replace_editor".into(),
                description: "edit".into(),
                parameters: json!({"type": "object", "properties": {
                    "command": {"type": "string", "enum": ["view", "create"]},
                    "path": {"type": "string"},
                    "view_range": {"type": "array", "items": {"type": "integer"}},
                    "insert_line": {"type": "integer"}
                }, "required": ["command", "path"]}),
            },
            ToolSpec {
                name: "submit".into(),
                description: "done".into(),
                parameters: json!({"type": "object", "properties": {}}),
            },
        ]
    }

    /// The grammar for [`tools`] under `choice`, which must have one.
    fn grammar(choice: &ToolChoice, parallel: bool) -> String {
        tool_grammar(&tools(), choice, parallel)
            .expect("grammar")
            .expect("a grammar for this choice")
    }

    #[test]
    fn required_grammar_mentions_every_tool_and_no_message() {
        let g = grammar(&ToolChoice::Required, false);
        assert!(g.starts_with("root ::= call\n"), "{g}");
        let p = grammar(&ToolChoice::Required, true);
        assert!(p.starts_with("root ::= call (\"\\n\" call)*"), "{p}");
        assert!(
            g.contains(r#""{\"name\": \"str_replace_editor\", \"arguments\": ""#),
            "{g}"
        );
        assert!(g.contains(r#"( "\"view\"" | "\"create\"" )"#), "{g}");
        assert!(!g.contains("message ::="), "{g}");
    }

    #[test]
    fn auto_allows_a_message_and_none_has_no_grammar() {
        let g = grammar(&ToolChoice::Auto, false);
        assert!(g.contains("root ::= calls | message"), "{g}");
        assert_eq!(
            tool_grammar(&tools(), &ToolChoice::None, true).unwrap(),
            None
        );
        assert_eq!(
            tool_grammar(&[], &ToolChoice::Required, true).unwrap(),
            None
        );
    }

    #[test]
    fn forced_function_must_exist() {
        assert!(tool_grammar(&tools(), &ToolChoice::Function("nope".into()), true).is_err());
        let g = grammar(&ToolChoice::Function("bash".into()), true);
        assert!(!g.contains("submit"), "{g}");
    }

    #[test]
    fn literals_escape_quotes_and_newlines() {
        assert_eq!(lit("a\"b\\\n"), r#""a\"b\\\n""#);
    }
}
