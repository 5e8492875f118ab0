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

/// Make a trajectory ready for training formats: every tool result names its tool (taken from
/// the call it answers, by id or else by position), and with `merge_users` consecutive user
/// turns (a demonstration turn followed by the task) become one, for chat templates that demand
/// alternating roles.
pub fn prepare(t: &mut Trajectory, merge_users: bool) {
    t.name_tool_results();
    if merge_users {
        let mut merged: Vec<ChatMessage> = Vec::with_capacity(t.messages.len());
        for m in t.messages.drain(..) {
            match merged.last_mut() {
                Some(last) if last.role == Role::User && m.role == Role::User => {
                    let text = [last.content.as_deref(), m.content.as_deref()]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n\n");
                    last.content = Some(text);
                }
                _ => merged.push(m),
            }
        }
        t.messages = merged;
    }
}

/// A ShareGPT row's parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareGpt {
    /// The system prompt.
    pub system: String,
    /// `{from, value}` turns, alternating and ending on a model turn.
    pub conversations: Vec<Value>,
    /// The tool schemas as JSON text (LLaMA-Factory parses the column itself).
    pub tools: String,
    /// Turns after the last model turn that were left out (observations, user text).
    pub dropped: usize,
}

/// One call as LLaMA-Factory's function formatter reads it: `{"name": ..., "arguments": ...}`,
/// the arguments as the model wrote them (key order kept).
fn call_json(c: &trajforge_teacher::ToolCall) -> String {
    let args = hermes::compact_json(&c.arguments)
        .unwrap_or_else(|| Value::String(c.arguments.clone()).to_string());
    format!("{}{args}}}", hermes::call_head(&c.name))
}

/// ShareGPT (LLaMA-Factory). Turns alternate human/observation and gpt/function_call;
/// neighbours on the same side are merged, as LLaMA-Factory rejects two in a row, and turns
/// after the last model turn are dropped (LLaMA-Factory drops a row with an odd number of
/// turns). A call turn's reasoning (and any visible text) goes in its `<think>` block, which
/// LLaMA-Factory's function formatter keeps as the thought.
pub fn sharegpt(t: &Trajectory, keep: usize) -> ShareGpt {
    let msgs = &t.messages[..keep.min(t.messages.len())];
    let mut system = String::new();
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    let model_side = |f: &str| matches!(f, "gpt" | "function_call");
    let push =
        |from: &'static str, value: String, turns: &mut Vec<(&'static str, String)>| match turns
            .last_mut()
        {
            Some((last, text)) if model_side(last) == model_side(from) => {
                text.push_str("\n\n");
                text.push_str(&value);
            }
            _ => turns.push((from, value)),
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
                let calls: Vec<String> = m.tool_calls.iter().map(call_json).collect();
                let calls = if calls.len() == 1 {
                    calls.concat()
                } else {
                    format!("[{}]", calls.join(", "))
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
    let mut dropped = 0;
    while turns.last().is_some_and(|(from, _)| !model_side(from)) {
        turns.pop();
        dropped += 1;
    }
    let conversations = turns
        .into_iter()
        .map(|(from, value)| json!({"from": from, "value": value}))
        .collect();
    ShareGpt {
        system,
        conversations,
        tools: Value::Array(tools_json(t)).to_string(),
        dropped,
    }
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

    fn trajectory(messages: Vec<ChatMessage>) -> Trajectory {
        let teacher = trajforge_teacher::TeacherInfo {
            base_url: String::new(),
            model: "m".into(),
            mode: trajforge_teacher::ToolMode::Native,
        };
        Trajectory::conversation(teacher, "task", Vec::new(), messages, None)
    }

    #[test]
    fn sharegpt_alternates_and_ends_on_a_model_turn() {
        let call = trajforge_teacher::ToolCall::new(
            "c1",
            "edit",
            r#"{"path": "a.py", "command": "view"}"#,
        );
        let mut t = trajectory(vec![
            ChatMessage::system("sys"),
            ChatMessage::user("demo"),
            ChatMessage::user("task"),
            ChatMessage::assistant(None, vec![call.clone()]),
            ChatMessage::tool_result(&call, "a.py: 3 lines"),
        ]);
        t.messages[4].name = None;
        prepare(&mut t, true);
        assert_eq!(t.messages.len(), 4);
        assert_eq!(t.messages[1].content.as_deref(), Some("demo\n\ntask"));
        assert_eq!(t.messages[3].name.as_deref(), Some("edit"));
        let row = sharegpt(&t, usize::MAX);
        assert_eq!(row.dropped, 1);
        let froms: Vec<&str> = row
            .conversations
            .iter()
            .map(|c| c["from"].as_str().unwrap())
            .collect();
        assert_eq!(froms, ["human", "function_call"]);
        assert_eq!(
            row.conversations[1]["value"],
            "<think>\n\n</think>\n\n{\"name\": \"edit\", \"arguments\": {\"path\":\"a.py\",\"command\":\"view\"}}"
        );
    }
}
