//! Hermes tool calls in text, the Qwen convention for models and servers without a tool
//! parser: tool schemas in the system prompt, calls as `<tool_call>` blocks in the assistant
//! turn, results as user turns of `<tool_response>` blocks; and the parser of such text.

use serde_json::{Value, json};

use crate::types::{ChatMessage, Role, ToolCall, ToolSpec};

/// Opening tag of a hermes tool call.
pub const CALL_OPEN: &str = "<tool_call>";
/// Closing tag of a hermes tool call.
pub const CALL_CLOSE: &str = "</tool_call>";
/// Opening tag of a tool result.
pub const RESPONSE_OPEN: &str = "<tool_response>";
/// Closing tag of a tool result.
pub const RESPONSE_CLOSE: &str = "</tool_response>";
/// Opening tag of a reasoning block.
pub const THINK_OPEN: &str = "<think>";
/// Closing tag of a reasoning block.
pub const THINK_CLOSE: &str = "</think>";

/// `{"type": "function", "function": {...}}`, the form of a tool schema every chat format uses.
pub fn tool_json(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
    })
}

/// The system-prompt section that teaches a model without a tool parser the tool format.
pub fn tools_prompt(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "# Tools\n\nYou may call one or more functions to help with the task.\n\n\
         The available functions are described by JSON Schemas inside <tools></tools> tags:\n<tools>\n",
    );
    for tool in tools {
        out.push_str(&tool_json(tool).to_string());
        out.push('\n');
    }
    out.push_str(
        "</tools>\n\nTo call a function, answer with a JSON object holding the function name and \
         its arguments inside <tool_call></tool_call> tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <arguments-json-object>}\n</tool_call>",
    );
    out
}

/// The head the grammar of the embedded teacher and chat templates write before the arguments.
pub fn call_head(name: &str) -> String {
    format!(
        r#"{{"name": {}, "arguments": "#,
        Value::String(name.to_string())
    )
}

/// One `<tool_call>` block, `name` first as chat templates write it. Arguments that are JSON
/// are written as compact JSON, other text as a JSON string; malformed calls are replayed
/// verbatim so the model sees what it actually wrote.
pub fn render_call(call: &ToolCall) -> String {
    let body = if call.is_malformed() {
        call.arguments.clone()
    } else {
        let args = compact_json(&call.arguments)
            .unwrap_or_else(|| Value::String(call.arguments.clone()).to_string());
        format!("{}{args}}}", call_head(&call.name))
    };
    format!("{CALL_OPEN}\n{body}\n{CALL_CLOSE}")
}

/// `text` as compact JSON with its keys in the order they were written (`None` when it is not
/// JSON): only the whitespace between tokens goes, so arguments keep the model's key order
/// rather than the sorted order a round trip through `serde_json::Value` gives.
pub fn compact_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    Some(out)
}

/// An assistant turn as hermes text: `text`, then one block per call. The first block follows
/// a text that ends in a think block after a blank line (as Qwen's template writes it), any
/// other text after a newline.
pub fn assistant_text(mut text: String, calls: &[ToolCall]) -> String {
    for (i, call) in calls.iter().enumerate() {
        if i == 0 && text.ends_with(THINK_CLOSE) {
            text.push_str("\n\n");
        } else if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&render_call(call));
    }
    text
}

/// One turn of a hermes conversation (tool results already folded into user turns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// System, user or assistant.
    pub role: Role,
    /// The turn's text.
    pub content: String,
}

/// A conversation as hermes turns: the tool schemas appended to the first system message (or
/// in a system message of their own), calls as `<tool_call>` text, consecutive tool results as
/// one user turn of `<tool_response>` blocks (as Qwen's template does). `assistant` gives the
/// text an assistant turn starts with (its content, or a think block and its content).
pub fn turns(
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    assistant: &dyn Fn(&ChatMessage) -> String,
) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(messages.len() + 1);
    let prompt = (!tools.is_empty()).then(|| tools_prompt(tools));
    let has_system = messages.first().is_some_and(|m| m.role == Role::System);
    if !has_system && let Some(prompt) = &prompt {
        out.push(Turn {
            role: Role::System,
            content: prompt.clone(),
        });
    }
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut Vec<Turn>| {
        if !pending.is_empty() {
            out.push(Turn {
                role: Role::User,
                content: pending.join("\n"),
            });
            pending.clear();
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        if msg.role == Role::Tool {
            let content = msg.content.as_deref().unwrap_or("");
            pending.push(format!("{RESPONSE_OPEN}\n{content}\n{RESPONSE_CLOSE}"));
            continue;
        }
        flush(&mut pending, &mut out);
        let content = match msg.role {
            Role::System if i == 0 => {
                let base = msg.content.as_deref().unwrap_or("");
                match &prompt {
                    Some(prompt) if base.is_empty() => prompt.clone(),
                    Some(prompt) => format!("{base}\n\n{prompt}"),
                    None => base.to_string(),
                }
            }
            Role::Assistant => assistant_text(assistant(msg), &msg.tool_calls),
            _ => msg.content.clone().unwrap_or_default(),
        };
        out.push(Turn {
            role: msg.role,
            content,
        });
    }
    flush(&mut pending, &mut out);
    out
}

/// The content of an assistant message, the text hermes turns start with outside exports.
pub fn plain_content(msg: &ChatMessage) -> String {
    msg.content.clone().unwrap_or_default()
}

/// Split reasoning out of `content`: `<think>...</think>` blocks, a leading reasoning
/// that ends in `</think>` without an opening tag (chat templates that put `<think>` in
/// the prompt produce this), and an unterminated `<think>` (generation cut off while thinking).
pub fn split_think(content: &str) -> (Option<String>, String) {
    let mut parts: Vec<&str> = Vec::new();
    let mut visible = String::new();
    let mut rest = content;
    if let Some(close) = rest.find(THINK_CLOSE)
        && !rest[..close].contains(THINK_OPEN)
    {
        parts.push(&rest[..close]);
        rest = &rest[close + THINK_CLOSE.len()..];
    }
    while let Some(open) = rest.find(THINK_OPEN) {
        visible.push_str(&rest[..open]);
        let after = &rest[open + THINK_OPEN.len()..];
        match after.find(THINK_CLOSE) {
            Some(close) => {
                parts.push(&after[..close]);
                rest = &after[close + THINK_CLOSE.len()..];
            }
            None => {
                parts.push(after);
                rest = "";
            }
        }
    }
    visible.push_str(rest);
    let reasoning: Vec<&str> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    let reasoning = (!reasoning.is_empty()).then(|| reasoning.join("\n\n"));
    let visible = if parts.is_empty() {
        content.to_string()
    } else {
        visible.trim().to_string()
    };
    (reasoning, visible)
}

/// Where the parser looks for `<tool_call>` blocks and how it reads them. The two sources of
/// hermes text need different readings, each pinned by tests of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSyntax {
    /// Text of any model behind any server: blocks anywhere in the text (the rest is kept as
    /// content), a block missing its closing tag runs to the next opening tag or the end,
    /// code fences and `"parameters"` are accepted, arguments become compact JSON (keys in the
    /// order written).
    Free,
    /// Output of the embedded teacher under its tool grammar: calls only when the text starts
    /// with a block, one block after the other; arguments are kept byte for byte as written
    /// (so the turn replays as generated), and a block without its closing tag was cut by
    /// `max_tokens`.
    Grammar,
}

/// Extract the `<tool_call>` blocks of `text` read as `syntax`. Returns the text left over and
/// the calls; blocks that are not valid calls become calls with `parse_error` set. Without
/// calls the text is returned unchanged; with [`CallSyntax::Grammar`] and calls, the left-over
/// text is empty.
pub fn parse_calls(
    text: &str,
    syntax: CallSyntax,
    next_id: &mut dyn FnMut() -> String,
) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut kept = String::new();
    match syntax {
        CallSyntax::Free => {
            let mut rest = text;
            while let Some(open) = rest.find(CALL_OPEN) {
                kept.push_str(&rest[..open]);
                let after = &rest[open + CALL_OPEN.len()..];
                let (inner, next) = match after.find(CALL_CLOSE) {
                    Some(close) => (&after[..close], &after[close + CALL_CLOSE.len()..]),
                    None => match after.find(CALL_OPEN) {
                        Some(next_open) => (&after[..next_open], &after[next_open..]),
                        None => (after, ""),
                    },
                };
                calls.push(parse_block(inner, true, syntax, next_id()));
                rest = next;
            }
            kept.push_str(rest);
        }
        CallSyntax::Grammar => {
            let mut rest = text.trim_start();
            while let Some(after_open) = rest.trim_start().strip_prefix(CALL_OPEN) {
                let (inner, next, closed) = match after_open.find(CALL_CLOSE) {
                    Some(close) => (
                        &after_open[..close],
                        &after_open[close + CALL_CLOSE.len()..],
                        true,
                    ),
                    None => (after_open, "", false),
                };
                calls.push(parse_block(inner, closed, syntax, next_id()));
                rest = next;
            }
        }
    }
    if calls.is_empty() {
        return (text.to_string(), calls);
    }
    (kept.trim().to_string(), calls)
}

/// Parse the JSON inside one `<tool_call>` block.
fn parse_block(inner: &str, closed: bool, syntax: CallSyntax, id: String) -> ToolCall {
    let raw = match syntax {
        CallSyntax::Free => strip_code_fence(inner.trim()),
        CallSyntax::Grammar => inner.trim(),
    };
    let malformed = |name: String, why: String| ToolCall {
        id: id.clone(),
        name,
        arguments: raw.to_string(),
        parse_error: Some(why),
    };
    let value: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) if !closed => {
            return malformed(
                String::new(),
                format!("the reply reached max_tokens inside the tool call ({e})"),
            );
        }
        Err(e) => return malformed(String::new(), format!("tool call is not valid JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return malformed(String::new(), "tool call must be a JSON object".to_string());
    };
    let name = match obj.get("name").and_then(|n| n.as_str()) {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => {
            return malformed(
                String::new(),
                "tool call has no \"name\" string".to_string(),
            );
        }
    };
    match syntax {
        CallSyntax::Free => {
            // Some models write "parameters" instead of "arguments"; both mean the same here.
            let key = if obj.contains_key("arguments") {
                "arguments"
            } else {
                "parameters"
            };
            match normalise_arguments(obj.get(key)) {
                // An object is kept as written, compacted (a `Value` would sort its keys).
                Ok(arguments) if obj.get(key).is_some_and(Value::is_object) => {
                    let written = serde_json::from_str::<
                        std::collections::HashMap<String, &serde_json::value::RawValue>,
                    >(raw)
                    .ok()
                    .and_then(|m| m.get(key).and_then(|v| compact_json(v.get())));
                    ToolCall::new(id, name, written.unwrap_or(arguments))
                }
                Ok(arguments) => ToolCall::new(id, name, arguments),
                Err(why) => malformed(name, why.to_string()),
            }
        }
        CallSyntax::Grammar => {
            // The grammar fixes the text around the arguments: keep them as written.
            let written = raw
                .strip_prefix(&call_head(&name))
                .and_then(|r| r.strip_suffix('}'))
                .map(str::trim)
                .filter(|r| serde_json::from_str::<Value>(r).is_ok())
                .map(str::to_string);
            let arguments = written
                .unwrap_or_else(|| obj.get("arguments").map_or("{}".into(), Value::to_string));
            ToolCall::new(id, name, arguments)
        }
    }
}

/// Why the arguments of a tool call cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentsError {
    /// The arguments are JSON but not an object.
    #[error("tool call arguments must be a JSON object")]
    NotAnObject,
    /// A string of arguments that is not JSON.
    #[error("tool call arguments are not valid JSON: {0}")]
    NotJson(String),
}

/// Arguments as JSON object text; a string holding JSON object text is accepted as is
/// (OpenAI sends a string of JSON, Ollama an object, hermes text either).
pub fn normalise_arguments(args: Option<&Value>) -> Result<String, ArgumentsError> {
    match args {
        None | Some(Value::Null) => Ok("{}".to_string()),
        Some(v @ Value::Object(_)) => Ok(v.to_string()),
        Some(Value::String(s)) => {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                return Ok("{}".to_string());
            }
            match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Object(_)) => Ok(s.clone()),
                Ok(_) => Err(ArgumentsError::NotAnObject),
                Err(e) => Err(ArgumentsError::NotJson(e.to_string())),
            }
        }
        Some(_) => Err(ArgumentsError::NotAnObject),
    }
}

/// Split the embedded teacher's output into content and tool calls. With tools enabled its
/// grammar makes the output either `<tool_call>` blocks or a message, so only a leading block
/// counts; a block cut short by `max_tokens` becomes a call with `parse_error` set.
pub fn grammar_output(
    text: &str,
    tools_enabled: bool,
    next_id: &mut dyn FnMut() -> String,
) -> (Option<String>, Vec<ToolCall>) {
    if !tools_enabled {
        return (Some(text.to_string()), Vec::new());
    }
    let (kept, calls) = parse_calls(text, CallSyntax::Grammar, next_id);
    if calls.is_empty() {
        (Some(kept), calls)
    } else {
        (None, calls)
    }
}

/// Models sometimes wrap the JSON in a Markdown code fence inside the tags.
fn strip_code_fence(s: &str) -> &str {
    let Some(body) = s.strip_prefix("```") else {
        return s;
    };
    let body = body.strip_prefix("json").unwrap_or(body);
    body.strip_suffix("```").unwrap_or(body).trim()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calls_keep_the_written_key_order() {
        let call = ToolCall::new(
            "c",
            "edit",
            "{\"path\": \"a b.py\",\n \"command\": \"view\", \"x\": [1, {\"z\": 1, \"a\": \"q\\\" \"}]}",
        );
        assert_eq!(
            render_call(&call),
            "<tool_call>\n{\"name\": \"edit\", \"arguments\": {\"path\":\"a b.py\",\"command\":\"view\",\"x\":[1,{\"z\":1,\"a\":\"q\\\" \"}]}}\n</tool_call>"
        );
        assert_eq!(compact_json("not json"), None);
        let (_, calls) = parse_calls(
            "<tool_call>\n{\"name\": \"edit\", \"arguments\": {\"path\": \"a.py\", \"command\": \"view\"}}\n</tool_call>",
            CallSyntax::Free,
            &mut || "c".to_string(),
        );
        assert_eq!(calls[0].arguments, r#"{"path":"a.py","command":"view"}"#);
    }

    fn ids(prefix: &'static str) -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("{prefix}{n}")
        }
    }

    fn free(text: &str) -> (String, Vec<ToolCall>) {
        parse_calls(text, CallSyntax::Free, &mut ids("call_"))
    }

    #[test]
    fn think_block_moved_to_reasoning() {
        let (r, c) = split_think("<think>\nplan it\n</think>\n\nDone.");
        assert_eq!(r.as_deref(), Some("plan it"));
        assert_eq!(c, "Done.");
    }

    #[test]
    fn orphan_close_and_unterminated_open() {
        let (r, c) = split_think("I think so</think>answer");
        assert_eq!((r.as_deref(), c.as_str()), (Some("I think so"), "answer"));
        let (r, c) = split_think("text <think>still thinking");
        assert_eq!((r.as_deref(), c.as_str()), (Some("still thinking"), "text"));
        let (r, c) = split_think("  plain  ");
        assert_eq!((r, c.as_str()), (None, "  plain  "));
    }

    #[test]
    fn several_calls_whitespace_and_missing_close() {
        let text = "Let me look.\n<tool_call>\n  {\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"}}  \n</tool_call>\n\
                    <tool_call>{\"name\":\"submit\",\"arguments\":\"{}\"}</tool_call>\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"pwd\"}}";
        let (kept, calls) = free(text);
        assert_eq!(kept, "Let me look.");
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].name, "bash");
        assert_eq!(
            calls[0].arguments_json().ok(),
            Some(serde_json::json!({"command": "ls"}))
        );
        assert_eq!(calls[1].name, "submit");
        assert_eq!(calls[1].arguments, "{}");
        assert_eq!(
            calls[2].arguments_json().ok(),
            Some(serde_json::json!({"command": "pwd"}))
        );
        assert!(calls.iter().all(|c| !c.is_malformed()));
        assert_eq!(calls[2].id, "call_3");
    }

    #[test]
    fn malformed_blocks_are_reported() {
        let text = "<tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": }</tool_call>\
                    <tool_call>[1]</tool_call><tool_call>{\"arguments\": {}}</tool_call>\
                    <tool_call>{\"name\": \"bash\", \"arguments\": 3}</tool_call>";
        let (_, calls) = free(text);
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(ToolCall::is_malformed));
        assert!(calls[0].arguments.contains("\"command\": }"));
        assert_eq!(calls[3].name, "bash");
    }

    #[test]
    fn code_fence_inside_block() {
        let text =
            "<tool_call>\n```json\n{\"name\": \"bash\", \"arguments\": {}}\n```\n</tool_call>";
        let (_, calls) = free(text);
        assert_eq!(calls[0].name, "bash");
        assert!(!calls[0].is_malformed());
    }

    #[test]
    fn render_call_puts_name_first_and_keeps_malformed_text() {
        let c = ToolCall::new("1", "bash", r#"{"command": "ls"}"#);
        assert_eq!(
            render_call(&c),
            "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\":\"ls\"}}\n</tool_call>"
        );
        let mut bad = ToolCall::new("2", "", "{oops");
        bad.parse_error = Some("x".into());
        assert_eq!(render_call(&bad), "<tool_call>\n{oops\n</tool_call>");
    }

    #[test]
    fn calls_after_a_think_block_follow_a_blank_line() {
        let c = ToolCall::new("1", "submit", "{}");
        let call = render_call(&c);
        assert_eq!(
            assistant_text("<think>\n\n</think>".into(), std::slice::from_ref(&c)),
            format!("<think>\n\n</think>\n\n{call}")
        );
        assert_eq!(
            assistant_text("Look.".into(), &[c.clone(), c.clone()]),
            format!("Look.\n{call}\n{call}")
        );
        assert_eq!(assistant_text(String::new(), &[c]), call);
    }

    #[test]
    fn parses_calls_and_keeps_raw_arguments() {
        let text = "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"submit\", \"arguments\": {}}\n</tool_call>";
        let (content, calls) = grammar_output(text, true, &mut ids("c"));
        assert_eq!(content, None);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "bash");
        assert_eq!(calls[0].arguments, "{\"command\": \"ls -la\"}");
        assert_eq!(calls[1].id, "c2");
        assert!(!calls[1].is_malformed());
    }

    #[test]
    fn truncated_call_is_malformed_and_messages_stay_text() {
        let (_, calls) = grammar_output(
            "<tool_call>\n{\"name\": \"bash\", \"argu",
            true,
            &mut ids("c"),
        );
        assert!(
            calls[0]
                .parse_error
                .as_deref()
                .unwrap()
                .contains("max_tokens")
        );
        let (content, calls) = grammar_output("Hello <tool_call>", true, &mut ids("c"));
        assert_eq!(content.as_deref(), Some("Hello <tool_call>"));
        assert!(calls.is_empty());
        let (content, _) = grammar_output("<tool_call>", false, &mut ids("c"));
        assert_eq!(content.as_deref(), Some("<tool_call>"));
    }
}
