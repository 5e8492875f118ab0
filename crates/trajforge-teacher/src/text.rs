//! Text-level parsing of model output: `<think>` blocks and hermes `<tool_call>` blocks.

use crate::types::ToolCall;

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
/// Opening tag of a hermes tool call.
pub(crate) const CALL_OPEN: &str = "<tool_call>";
/// Closing tag of a hermes tool call.
pub(crate) const CALL_CLOSE: &str = "</tool_call>";

/// Split reasoning out of `content`: `<think>...</think>` blocks, a leading reasoning
/// that ends in `</think>` without an opening tag (chat templates that put `<think>` in
/// the prompt produce this), and an unterminated `<think>` (generation cut off while thinking).
pub(crate) fn split_think(content: &str) -> (Option<String>, String) {
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

/// Extract every `<tool_call>` block from `text`. Returns the text with the blocks removed
/// and the calls; blocks that are not valid calls become calls with `parse_error` set.
/// A block missing its closing tag runs to the next opening tag or the end of the text.
pub(crate) fn parse_hermes_calls(
    text: &str,
    next_id: &mut dyn FnMut() -> String,
) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut kept = String::new();
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
        calls.push(parse_call_block(inner, next_id()));
        rest = next;
    }
    kept.push_str(rest);
    if calls.is_empty() {
        return (text.to_string(), calls);
    }
    (kept.trim().to_string(), calls)
}

/// Parse the JSON inside one `<tool_call>` block.
fn parse_call_block(inner: &str, id: String) -> ToolCall {
    let raw = strip_code_fence(inner.trim());
    let malformed = |name: String, why: String| ToolCall {
        id: id.clone(),
        name,
        arguments: raw.to_string(),
        parse_error: Some(why),
    };
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
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
    // Some models write "parameters" instead of "arguments"; both mean the same here.
    let args = obj.get("arguments").or_else(|| obj.get("parameters"));
    match normalise_arguments(args) {
        Ok(arguments) => ToolCall::new(id, name, arguments),
        Err(why) => malformed(name, why),
    }
}

/// Arguments as JSON object text; a string holding JSON object text is accepted as is.
pub(crate) fn normalise_arguments(args: Option<&serde_json::Value>) -> Result<String, String> {
    match args {
        None | Some(serde_json::Value::Null) => Ok("{}".to_string()),
        Some(v @ serde_json::Value::Object(_)) => Ok(v.to_string()),
        Some(serde_json::Value::String(s)) => {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                return Ok("{}".to_string());
            }
            match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(serde_json::Value::Object(_)) => Ok(s.clone()),
                Ok(_) => Err("tool call arguments must be a JSON object".to_string()),
                Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
            }
        }
        Some(_) => Err("tool call arguments must be a JSON object".to_string()),
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
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("call_{n}")
        }
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
        let (kept, calls) = parse_hermes_calls(text, &mut ids());
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
        let (_, calls) = parse_hermes_calls(text, &mut ids());
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(ToolCall::is_malformed));
        assert!(calls[0].arguments.contains("\"command\": }"));
        assert_eq!(calls[3].name, "bash");
    }

    #[test]
    fn code_fence_inside_block() {
        let text =
            "<tool_call>\n```json\n{\"name\": \"bash\", \"arguments\": {}}\n```\n</tool_call>";
        let (_, calls) = parse_hermes_calls(text, &mut ids());
        assert_eq!(calls[0].name, "bash");
        assert!(!calls[0].is_malformed());
    }
}
