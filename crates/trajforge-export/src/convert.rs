//! The conversation of a trajectory in each training format. Every assistant turn carries its
//! reasoning in exactly one `<think>` block (empty when the teacher gave none), so students
//! learn to think before acting; SERA found removing it costs most of the gain.

use serde_json::{Value, json};
use trajforge_agent::Trajectory;
use trajforge_chat::hermes::{self, tool_json};
use trajforge_chat::template;
use trajforge_teacher::{ChatMessage, Role};

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

/// The tool schemas of a trajectory.
pub fn tools_json(t: &Trajectory) -> Vec<Value> {
    t.tools.iter().map(tool_json).collect()
}

/// OpenAI chat messages (TRL): `tool_calls` on assistant turns, `role: tool` results.
/// Only the first `keep` messages of the trajectory are used.
pub fn openai_messages(t: &Trajectory, keep: usize) -> Vec<Value> {
    template::openai_messages(&t.messages[..keep.min(t.messages.len())], &think_text)
}

/// Qwen hermes messages (axolotl): tool schemas in the system prompt, calls as `<tool_call>`
/// text, consecutive tool results as one user turn of `<tool_response>` blocks, and a `train`
/// flag true on assistant turns only.
pub fn hermes_messages(t: &Trajectory, keep: usize) -> Vec<Value> {
    let msgs = &t.messages[..keep.min(t.messages.len())];
    hermes::turns(msgs, &t.tools, &think_text)
        .into_iter()
        .map(|turn| {
            json!({"role": turn.role.as_str(), "content": turn.content,
                   "train": turn.role == Role::Assistant})
        })
        .collect()
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
}
