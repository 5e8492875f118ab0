//! Messages in SWE-agent's history form and in OpenAI form, to trajforge's messages and steps.

use crate::formats::Unrecognised;
use std::time::Duration;

use serde_json::{Map, Value, json};
use trajforge_agent::{Observation, Step, ToolUse};
use trajforge_teacher::{ChatMessage, Role, ToolCall, Usage};

use crate::kind_of;

/// The type of a plain text content part.
const TEXT_PART: &str = "text";

/// Keys of a message that [`message`] maps into a [`ChatMessage`].
const MAPPED: &[&str] = &[
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "tool_call_ids",
    "name",
    "reasoning_content",
];

/// One source message as a chat message, and its fields that have no place there.
pub(crate) fn message(
    index: usize,
    m: &Value,
) -> Result<(ChatMessage, Map<String, Value>), Unrecognised> {
    let at = |what: String| Unrecognised(format!("message {index}: {what}"));
    let Value::Object(obj) = m else {
        return Err(at(format!("expected an object, found {}", kind_of(m))));
    };
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => return Err(at(format!("unknown role {other:?}"))),
        // Responses-API items (mini-swe-agent 2.x `litellm_response`) carry no role.
        None if obj.contains_key("type") || obj.contains_key("output") => {
            return responses_item(obj).map_err(|Unrecognised(what)| at(what));
        }
        None => return Err(at("no `role`".into())),
    };
    let mut extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !MAPPED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A Responses-API input message: `role` with `type: message` and typed content parts.
    if obj.get("type").and_then(Value::as_str) == Some("message") {
        extra.remove("type");
    }
    let content = match obj.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            let mut plain = true;
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some(TEXT_PART), Some(t)) => {
                        texts.push(t);
                        plain &= p.as_object().is_some_and(|o| o.len() == 2);
                    }
                    (Some("input_text" | "output_text"), Some(t)) => {
                        texts.push(t);
                        plain = false;
                    }
                    _ => plain = false,
                }
            }
            // One bare text part is just text; anything else keeps its original form too.
            if !(plain && texts.len() == 1) {
                extra.insert("content".into(), Value::Array(parts.clone()));
            }
            Some(texts.join("\n"))
        }
        Some(other) => {
            return Err(at(format!(
                "`content` is {}, not text or a list of parts",
                kind_of(other)
            )));
        }
    };
    let mut tool_calls = Vec::new();
    match obj.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            let mut canonical = Vec::new();
            for (j, c) in calls.iter().enumerate() {
                let function = c.get("function").unwrap_or(&Value::Null);
                let Some(name) = function.get("name").and_then(Value::as_str) else {
                    return Err(at(format!("tool call {j} has no `function.name`")));
                };
                let arguments = match function.get("arguments") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                canonical.push(json!({"id": id, "type": "function",
                                      "function": {"name": name, "arguments": arguments}}));
                tool_calls.push(ToolCall::new(id, name, arguments));
            }
            if canonical != *calls {
                extra.insert("tool_calls".into(), Value::Array(calls.clone()));
            }
        }
        Some(other) => {
            return Err(at(format!(
                "`tool_calls` is {}, not a list",
                kind_of(other)
            )));
        }
    }
    let mut tool_call_id = obj
        .get("tool_call_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(ids) = obj.get("tool_call_ids") {
        // SWE-agent lists the ids a tool message answers; it answers one call per message.
        let list: Vec<&str> = ids
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if tool_call_id.is_none() {
            tool_call_id = list.first().map(|s| s.to_string());
        }
        if list.len() != 1 || ids.as_array().is_some_and(|a| a.len() != 1) {
            extra.insert("tool_call_ids".into(), ids.clone());
        }
    }
    // An empty name or call id (as OpenAI-messages exports write them) is no name or id.
    let text_field = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut reasoning = text_field("reasoning_content");
    let mut content = content;
    if role == Role::Assistant
        && reasoning.is_none()
        && let Some((thought, rest)) = content.as_deref().and_then(split_think)
    {
        reasoning = thought;
        content = rest;
    }
    let msg = ChatMessage {
        role,
        content,
        reasoning,
        tool_calls,
        tool_call_id: tool_call_id.filter(|s| !s.is_empty()),
        name: text_field("name"),
    };
    Ok((msg, extra))
}

/// A Responses-API item as a chat message: a `response` object (its `output` holds the
/// assistant's text, reasoning and `function_call`s), a `function_call_output` (a tool
/// result), or a lone `function_call`. Fields with no place in the message stay in the extra.
fn responses_item(
    obj: &Map<String, Value>,
) -> Result<(ChatMessage, Map<String, Value>), Unrecognised> {
    let kind = obj.get("type").and_then(Value::as_str);
    let mut extra = obj.clone();
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    };
    match kind {
        Some("function_call_output") => {
            let id = obj
                .get("call_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let content = text(obj.get("output")).unwrap_or_default();
            for k in ["type", "call_id"] {
                extra.remove(k);
            }
            if obj.get("output").is_some_and(Value::is_string) {
                extra.remove("output");
            }
            let mut msg = ChatMessage::user(content);
            msg.role = Role::Tool;
            msg.tool_call_id = (!id.is_empty()).then(|| id.to_string());
            return Ok((msg, extra));
        }
        Some("function_call") => {
            let call = function_call(obj)?;
            for k in ["type", "call_id", "name", "arguments"] {
                extra.remove(k);
            }
            return Ok((ChatMessage::assistant(None, vec![call]), extra));
        }
        _ => {}
    }
    let Some(Value::Array(items)) = obj.get("output") else {
        return Err(Unrecognised(format!(
            "no `role`, and not a Responses-API item (type {})",
            kind.map_or_else(|| "missing".to_string(), |k| format!("{k:?}"))
        )));
    };
    let mut texts = Vec::new();
    let mut reasoning = Vec::new();
    let mut calls = Vec::new();
    let mut plain = true;
    for item in items {
        let keys = item.as_object().map_or(0, Map::len);
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                if let Some(t) = text(item.get("content")) {
                    texts.push(t);
                }
                let parts_plain = item
                    .get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|ps| {
                        ps.iter().all(|p| {
                            p.as_object().is_some_and(|o| o.len() == 2)
                                && p.get("type").and_then(Value::as_str) == Some("output_text")
                        })
                    });
                plain &= parts_plain
                    && keys == 3
                    && item.get("role").and_then(Value::as_str) == Some("assistant");
            }
            Some("reasoning") => {
                let summary = item.get("summary").and_then(Value::as_array);
                if let Some(parts) = summary {
                    reasoning.extend(
                        parts
                            .iter()
                            .filter_map(|p| p.get("text").and_then(Value::as_str))
                            .map(str::to_string),
                    );
                }
                plain = false;
            }
            Some("function_call") => {
                calls.push(function_call(item.as_object().unwrap_or(&Map::new()))?);
                plain &= keys == 4;
            }
            _ => plain = false,
        }
    }
    if plain {
        extra.remove("output");
    }
    let content = (!texts.is_empty()).then(|| texts.join("\n"));
    let mut msg = ChatMessage::assistant(content, calls);
    msg.reasoning = (!reasoning.is_empty()).then(|| reasoning.join("\n"));
    Ok((msg, extra))
}

/// A Responses-API `function_call` item as a tool call.
fn function_call(item: &Map<String, Value>) -> Result<ToolCall, Unrecognised> {
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a `function_call` with no `name`")?;
    let id = item
        .get("call_id")
        .or_else(|| item.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = match item.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "{}".to_string(),
        Some(other) => other.to_string(),
    };
    Ok(ToolCall::new(id, name, arguments))
}

/// Reasoning written inline as a leading `<think>...</think>` block (Qwen-style models, and
/// OpenAI-messages training files) and the visible text after it; an empty part is none.
fn split_think(text: &str) -> Option<(Option<String>, Option<String>)> {
    let body = text.trim_start().strip_prefix("<think>")?;
    let end = body.find("</think>")?;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some((
        some(body[..end].trim()),
        some(body[end + "</think>".len()..].trim_start()),
    ))
}

/// A text action found in an assistant message: the calls it stands for and the message's
/// text without the action (the thought).
pub(crate) struct TextAction {
    pub calls: Vec<crate::actions::Call>,
    pub thought: Option<String>,
}

/// Reads the text action of an assistant message, given the message and its extra fields.
pub(crate) type FindAction = dyn Fn(&ChatMessage, &Map<String, Value>) -> Option<TextAction>;

/// Assistant messages that act in text (a command line or a fenced block, no tool calls) as
/// tool calls: `find` reads the action of message `i`; the user messages right after it
/// (one per call) are the calls' results and become tool messages. The original content and
/// role of every changed message stay in its extra.
pub(crate) fn text_actions(
    messages: &mut [ChatMessage],
    extras: &mut [Map<String, Value>],
    find: &FindAction,
) {
    let mut i = 0;
    while i < messages.len() {
        let m = &messages[i];
        if m.role != Role::Assistant || !m.tool_calls.is_empty() {
            i += 1;
            continue;
        }
        let Some(action) = find(m, &extras[i]) else {
            i += 1;
            continue;
        };
        let calls: Vec<ToolCall> = action
            .calls
            .into_iter()
            .enumerate()
            .map(|(j, (name, args))| ToolCall::new(format!("import-{i}-{j}"), name, args.to_json()))
            .collect();
        if action.thought != messages[i].content {
            let original = messages[i]
                .content
                .clone()
                .map_or(Value::Null, Value::String);
            extras[i].entry("content").or_insert(original);
            messages[i].content = action.thought.filter(|t| !t.is_empty());
        }
        let n = calls.len();
        let mut answered = 0;
        while answered < n
            && let Some(j) = Some(i + 1 + answered).filter(|&j| j < messages.len())
            && messages[j].role == Role::User
            // A demonstration's observations answer only the demonstration's actions.
            && extras[j].get("is_demo") == extras[i].get("is_demo")
        {
            let call = &calls[answered];
            extras[j].insert("role".into(), Value::String("user".into()));
            messages[j].role = Role::Tool;
            messages[j].tool_call_id = Some(call.id.clone());
            messages[j].name = Some(call.name.clone());
            answered += 1;
        }
        messages[i].tool_calls = calls;
        i += 1 + answered;
    }
}

/// What a format knows about each step beyond the messages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StepInfo {
    /// When the model call started, ms since the epoch.
    pub started_at_ms: u64,
    /// Tokens of the call.
    pub usage: Usage,
    /// Time the tool calls took.
    pub tool_time: Duration,
}

/// Steps from the messages: one per assistant message, each with its tool calls and the
/// tool messages that answer them (matched by call id).
pub(crate) fn steps(
    messages: &[ChatMessage],
    extras: &[Map<String, Value>],
    info: &dyn Fn(usize, &Map<String, Value>) -> StepInfo,
    submitted: bool,
) -> Vec<Step> {
    let mut used = vec![false; messages.len()];
    let mut out: Vec<Step> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != Role::Assistant {
            continue;
        }
        let empty = Map::new();
        let si = info(out.len(), extras.get(i).unwrap_or(&empty));
        let mut tools = Vec::new();
        for call in &m.tool_calls {
            let answer = (i + 1..messages.len()).find(|&j| {
                !used[j]
                    && messages[j].role == Role::Tool
                    && messages[j].tool_call_id.as_deref() == Some(call.id.as_str())
            });
            let observation = match answer {
                Some(j) => {
                    used[j] = true;
                    let ex = extras.get(j).unwrap_or(&empty);
                    let text = messages[j].content.clone().unwrap_or_default();
                    Observation {
                        exit_code: exit_code(ex).or_else(|| tagged_exit_code(&text)),
                        text,
                        error: false,
                        done: false,
                        duration: Duration::ZERO,
                    }
                }
                None => Observation::error("(no observation recorded)"),
            };
            tools.push(ToolUse {
                id: call.id.clone(),
                tool: call.name.clone(),
                arguments: call.arguments.clone(),
                observation,
            });
        }
        // Tool time is known per step, not per call: it goes to the first call.
        if let Some(first) = tools.first_mut() {
            first.observation.duration = si.tool_time;
        }
        out.push(Step {
            index: out.len(),
            started_at_ms: si.started_at_ms,
            assistant: m.clone(),
            usage: si.usage,
            model_time: Duration::ZERO,
            attempts: 1,
            tools,
            overhead: Duration::ZERO,
        });
    }
    if submitted && let Some(last) = out.last_mut().and_then(|s| s.tools.last_mut()) {
        last.observation.done = true;
    }
    out
}

/// A command's exit code where the source records one (mini-swe-agent: `extra.returncode`).
fn exit_code(extra: &Map<String, Value>) -> Option<i32> {
    extra
        .get("extra")
        .and_then(|e| e.get("returncode"))
        .or_else(|| extra.get("returncode"))
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok())
}

/// The exit code mini-swe-agent writes at the head of an observation
/// (`<returncode>1</returncode>`), for files that record it nowhere else (1.x).
fn tagged_exit_code(text: &str) -> Option<i32> {
    let rest = text.trim_start().strip_prefix("<returncode>")?;
    rest[..rest.find("</returncode>")?].trim().parse().ok()
}

/// Token counts from an OpenAI-style `usage` object.
pub(crate) fn usage_of(v: Option<&Value>) -> Usage {
    let n = |k: &str| {
        v.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    }
}

/// Seconds (a float) as a duration; negative or absurd values give zero.
pub(crate) fn seconds(v: Option<&Value>) -> Duration {
    v.and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// A Unix timestamp in seconds (a float) as milliseconds; anything else gives 0.
pub(crate) fn epoch_ms(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e11)
        .map_or(0, |s| (s * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swe_agent_messages_map_and_keep_their_extras() {
        let m = json!({"role": "assistant", "content": [{"type": "text", "text": "Let me look."}],
                       "thought": "Let me look.", "action": "ls", "agent": "main",
                       "message_type": "action",
                       "tool_calls": [{"id": "c1", "type": "function",
                                       "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]});
        let (msg, extra) = message(3, &m).expect("maps");
        assert_eq!(msg.role, Role::Assistant);
        assert_eq!(msg.content.as_deref(), Some("Let me look."));
        assert_eq!(msg.tool_calls[0].name, "bash");
        assert_eq!(
            extra.keys().collect::<Vec<_>>(),
            vec!["action", "agent", "message_type", "thought"]
        );
        let tool = json!({"role": "tool", "content": "a\nb", "tool_call_ids": ["c1"]});
        let (t, extra) = message(4, &tool).expect("maps");
        assert_eq!(t.tool_call_id.as_deref(), Some("c1"));
        assert!(extra.is_empty());
    }

    #[test]
    fn inline_think_blocks_become_reasoning() {
        let m = json!({"role": "assistant", "content": "<think>\nCheck the loop.\n</think>\n\nLooking."});
        let (msg, _) = message(0, &m).expect("maps");
        assert_eq!(msg.reasoning.as_deref(), Some("Check the loop."));
        assert_eq!(msg.content.as_deref(), Some("Looking."));
        let m = json!({"role": "assistant", "content": "<think>\n\n</think>\n\nDone."});
        let (msg, _) = message(0, &m).expect("maps");
        assert_eq!(
            (msg.reasoning, msg.content.as_deref()),
            (None, Some("Done."))
        );
        let m = json!({"role": "user", "content": "<think>x</think>"});
        let (msg, _) = message(0, &m).expect("maps");
        assert_eq!(
            msg.content.as_deref(),
            Some("<think>x</think>"),
            "only assistant turns"
        );
    }

    #[test]
    fn bad_messages_say_where() {
        let err = message(7, &json!({"role": "robot"}))
            .expect_err("bad role")
            .0;
        assert_eq!(err, "message 7: unknown role \"robot\"");
        let err = message(2, &json!({"role": "user", "content": 3}))
            .expect_err("bad content")
            .0;
        assert!(err.starts_with("message 2: `content` is a number"), "{err}");
        let err = message(
            1,
            &json!({"role": "assistant", "tool_calls": [{"id": "x"}]}),
        )
        .expect_err("no name")
        .0;
        assert!(err.contains("function.name"), "{err}");
    }

    #[test]
    fn steps_pair_calls_with_their_observations() {
        let call = ToolCall::new("c1", "bash", "{}");
        let messages = vec![
            ChatMessage::system("s"),
            ChatMessage::user("u"),
            ChatMessage::assistant(Some("a".into()), vec![call.clone()]),
            ChatMessage::tool_result(&call, "out"),
            ChatMessage::assistant(Some("done".into()), vec![]),
        ];
        let mut extras = vec![Map::new(); 5];
        extras[3].insert("extra".into(), json!({"returncode": 2}));
        let s = steps(&messages, &extras, &|_, _| StepInfo::default(), true);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tools[0].observation.text, "out");
        assert_eq!(s[0].tools[0].observation.exit_code, Some(2));
        assert!(s[1].tools.is_empty());
    }
}
