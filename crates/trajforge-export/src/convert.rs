//! The conversation of a trajectory in each training format. Every assistant turn carries its
//! reasoning in exactly one `<think>` block (empty when the teacher gave none), so students
//! learn to think before acting; SERA found removing it costs most of the gain.

use serde_json::{Value, json};
use trajforge_agent::Trajectory;
use trajforge_teacher::{ChatMessage, Role, ToolCall, ToolSpec, hermes_tools_prompt};

/// The assistant's reasoning as one `<think>` block followed by its visible text.
pub fn think_text(msg: &ChatMessage) -> String {
    let reasoning = msg.reasoning.as_deref().unwrap_or("").trim();
    let visible = msg.content.as_deref().unwrap_or("").trim();
    // Content that already opens with a think block (a teacher that inlines it) is not wrapped twice.
    if msg.reasoning.is_none() && visible.starts_with("<think>") {
        return visible.to_string();
    }
    let block = if reasoning.is_empty() {
        "<think>\n\n</think>".to_string()
    } else {
        format!("<think>\n{reasoning}\n</think>")
    };
    if visible.is_empty() {
        block
    } else {
        format!("{block}\n\n{visible}")
    }
}

/// One `{"type": "function", "function": {...}}` tool schema.
pub fn tool_json(tool: &ToolSpec) -> Value {
    json!({"type": "function", "function": {
        "name": tool.name, "description": tool.description, "parameters": tool.parameters,
    }})
}

/// The tool schemas of a trajectory.
pub fn tools_json(t: &Trajectory) -> Vec<Value> {
    t.tools.iter().map(tool_json).collect()
}

/// A hermes call block, `name` first as Qwen templates write it; malformed calls stay verbatim.
pub fn hermes_call(call: &ToolCall) -> String {
    let body = if call.is_malformed() {
        call.arguments.clone()
    } else {
        let args = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(v) => v.to_string(),
            Err(_) => Value::String(call.arguments.clone()).to_string(),
        };
        format!(r#"{{"name": {}, "arguments": {args}}}"#, json!(call.name))
    };
    format!("<tool_call>\n{body}\n</tool_call>")
}

/// An assistant turn as hermes text: think block, visible text, then the call blocks.
pub fn hermes_assistant(msg: &ChatMessage) -> String {
    let mut text = think_text(msg);
    let bare = text.ends_with("</think>");
    for (i, call) in msg.tool_calls.iter().enumerate() {
        // As Qwen's template writes it: a blank line after a bare think block, else one newline.
        text.push_str(if i == 0 && bare { "\n\n" } else { "\n" });
        text.push_str(&hermes_call(call));
    }
    text
}

/// OpenAI chat messages (TRL): `tool_calls` on assistant turns, `role: tool` results.
/// Only the first `keep` messages of the trajectory are used.
pub fn openai_messages(t: &Trajectory, keep: usize) -> Vec<Value> {
    t.messages
        .iter()
        .take(keep)
        .map(|m| match m.role {
            Role::Assistant => {
                let mut v = json!({"role": "assistant", "content": think_text(m)});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                }
                v
            }
            Role::Tool => json!({
                "role": "tool",
                "content": m.content.clone().unwrap_or_default(),
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "name": m.name.clone().unwrap_or_default(),
            }),
            role => {
                json!({"role": role.as_str(), "content": m.content.clone().unwrap_or_default()})
            }
        })
        .collect()
}

/// Qwen hermes messages (axolotl): tool schemas in the system prompt, calls as `<tool_call>`
/// text, consecutive tool results as one user turn of `<tool_response>` blocks, and a `train`
/// flag true on assistant turns only.
pub fn hermes_messages(t: &Trajectory, keep: usize) -> Vec<Value> {
    let msgs = &t.messages[..keep.min(t.messages.len())];
    let tools_prompt = (!t.tools.is_empty()).then(|| hermes_tools_prompt(&t.tools));
    let mut out: Vec<Value> = Vec::with_capacity(msgs.len() + 1);
    let has_system = msgs.first().is_some_and(|m| m.role == Role::System);
    if !has_system && let Some(prompt) = &tools_prompt {
        out.push(json!({"role": "system", "content": prompt, "train": false}));
    }
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut Vec<Value>| {
        if !pending.is_empty() {
            out.push(json!({"role": "user", "content": pending.join("\n"), "train": false}));
            pending.clear();
        }
    };
    for (i, m) in msgs.iter().enumerate() {
        if m.role == Role::Tool {
            let content = m.content.as_deref().unwrap_or("");
            pending.push(format!("<tool_response>\n{content}\n</tool_response>"));
            continue;
        }
        flush(&mut pending, &mut out);
        let (content, train) = match m.role {
            Role::System if i == 0 => {
                let base = m.content.as_deref().unwrap_or("");
                let text = match &tools_prompt {
                    Some(p) if base.is_empty() => p.clone(),
                    Some(p) => format!("{base}\n\n{p}"),
                    None => base.to_string(),
                };
                (text, false)
            }
            Role::Assistant => (hermes_assistant(m), true),
            _ => (m.content.clone().unwrap_or_default(), false),
        };
        out.push(json!({"role": m.role.as_str(), "content": content, "train": train}));
    }
    flush(&mut pending, &mut out);
    out
}

/// ShareGPT (LLaMA-Factory): `(system, conversations, tools JSON)`. Turns alternate
/// human/observation and gpt/function_call; neighbours on the same side are merged, as
/// LLaMA-Factory rejects two in a row. A call turn's reasoning (and any visible text) goes
/// in its `<think>` block, which LLaMA-Factory's function formatter keeps as the thought.
pub fn sharegpt(t: &Trajectory, keep: usize) -> (String, Vec<Value>, String) {
    let msgs = &t.messages[..keep.min(t.messages.len())];
    let mut system = String::new();
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    let push = |from: &'static str, value: String, turns: &mut Vec<(&'static str, String)>| {
        let side = |f: &str| matches!(f, "gpt" | "function_call");
        match turns.last_mut() {
            Some((last, text)) if side(last) == side(from) => {
                text.push_str("\n\n");
                text.push_str(&value);
            }
            _ => turns.push((from, value)),
        }
    };
    for (i, m) in msgs.iter().enumerate() {
        match m.role {
            Role::System if i == 0 => system = m.content.clone().unwrap_or_default(),
            Role::System | Role::User => {
                push("human", m.content.clone().unwrap_or_default(), &mut turns)
            }
            Role::Tool => push(
                "observation",
                m.content.clone().unwrap_or_default(),
                &mut turns,
            ),
            Role::Assistant if m.tool_calls.is_empty() => push("gpt", think_text(m), &mut turns),
            Role::Assistant => {
                let reasoning = [m.reasoning.as_deref(), m.content.as_deref()]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let args = serde_json::from_str::<Value>(&c.arguments)
                            .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                        json!({"name": c.name, "arguments": args})
                    })
                    .collect();
                let calls = if calls.len() == 1 {
                    calls[0].to_string()
                } else {
                    Value::Array(calls).to_string()
                };
                let think = if reasoning.is_empty() {
                    "<think>\n\n</think>".to_string()
                } else {
                    format!("<think>\n{reasoning}\n</think>")
                };
                push("function_call", format!("{think}\n\n{calls}"), &mut turns);
            }
        }
    }
    let conversations = turns
        .into_iter()
        .map(|(from, value)| json!({"from": from, "value": value}))
        .collect();
    let tools = Value::Array(tools_json(t)).to_string();
    (system, conversations, tools)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn think_blocks() {
        let mut m = ChatMessage::assistant(Some("ok".into()), vec![]);
        assert_eq!(think_text(&m), "<think>\n\n</think>\n\nok");
        m.reasoning = Some(" look first ".into());
        assert_eq!(think_text(&m), "<think>\nlook first\n</think>\n\nok");
        let inline = ChatMessage::assistant(Some("<think>x</think> y".into()), vec![]);
        assert_eq!(think_text(&inline), "<think>x</think> y");
    }

    #[test]
    fn hermes_call_puts_name_first_and_keeps_malformed_text() {
        let c = ToolCall::new("1", "bash", r#"{"command": "ls"}"#);
        assert_eq!(
            hermes_call(&c),
            "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\":\"ls\"}}\n</tool_call>"
        );
        let mut bad = ToolCall::new("2", "", "{oops");
        bad.parse_error = Some("x".into());
        assert_eq!(hermes_call(&bad), "<tool_call>\n{oops\n</tool_call>");
    }
}
