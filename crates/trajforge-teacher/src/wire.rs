//! The OpenAI chat-completions wire format: request bodies and response parsing.

use serde_json::{Map, Value, json};

use crate::text::{CALL_CLOSE, CALL_OPEN, normalise_arguments, parse_hermes_calls, split_think};
use crate::types::{ChatMessage, Role, Sampling, ToolCall, ToolMode, ToolSpec, Usage};

/// Build the JSON body of a chat-completions request.
pub(crate) fn build_request(
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    sampling: &Sampling,
    mode: ToolMode,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let wire_messages = match mode {
        ToolMode::Native => messages.iter().map(native_message).collect(),
        ToolMode::Hermes => hermes_messages(messages, tools),
    };
    body.insert("messages".into(), Value::Array(wire_messages));
    body.insert("temperature".into(), json!(sampling.temperature));
    if let Some(top_p) = sampling.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(max_tokens) = sampling.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if let Some(seed) = sampling.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !sampling.stop.is_empty() {
        body.insert("stop".into(), json!(sampling.stop));
    }
    if mode == ToolMode::Native && !tools.is_empty() {
        body.insert(
            "tools".into(),
            Value::Array(tools.iter().map(tool_schema).collect()),
        );
        body.insert("tool_choice".into(), json!("auto"));
    }
    body.insert("stream".into(), json!(false));
    Value::Object(body)
}

/// `{"type": "function", "function": {...}}`, the form both modes show the model.
fn tool_schema(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
    })
}

fn native_message(msg: &ChatMessage) -> Value {
    let mut out = Map::new();
    out.insert("role".into(), json!(msg.role.as_str()));
    out.insert("content".into(), json!(msg.content));
    if msg.role == Role::Assistant && !msg.tool_calls.is_empty() {
        let calls: Vec<Value> = msg
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &msg.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    if msg.role == Role::Tool
        && let Some(name) = &msg.name
    {
        out.insert("name".into(), json!(name));
    }
    Value::Object(out)
}

/// The system-prompt section that teaches a model without a tool parser the tool format.
pub(crate) fn hermes_tools_prompt(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "# Tools\n\nYou may call one or more functions to help with the task.\n\n\
         The available functions are described by JSON Schemas inside <tools></tools> tags:\n<tools>\n",
    );
    for tool in tools {
        out.push_str(&tool_schema(tool).to_string());
        out.push('\n');
    }
    out.push_str(
        "</tools>\n\nTo call a function, answer with a JSON object holding the function name and \
         its arguments inside <tool_call></tool_call> tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <arguments-json-object>}\n</tool_call>",
    );
    out
}

/// Render messages for a server without a tool parser: schemas in the system prompt,
/// earlier calls as `<tool_call>` text, tool results as user `<tool_response>` turns.
fn hermes_messages(messages: &[ChatMessage], tools: &[ToolSpec]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    let tools_prompt = (!tools.is_empty()).then(|| hermes_tools_prompt(tools));
    let has_system = messages.first().is_some_and(|m| m.role == Role::System);
    if !has_system && let Some(prompt) = &tools_prompt {
        out.push(json!({"role": "system", "content": prompt}));
    }
    // Consecutive tool results become one user turn, as the Qwen chat template does.
    let mut pending_responses: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut Vec<Value>| {
        if !pending.is_empty() {
            out.push(json!({"role": "user", "content": pending.join("\n")}));
            pending.clear();
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        if msg.role == Role::Tool {
            let content = msg.content.as_deref().unwrap_or("");
            pending_responses.push(format!("<tool_response>\n{content}\n</tool_response>"));
            continue;
        }
        flush(&mut pending_responses, &mut out);
        let content = match msg.role {
            Role::System if i == 0 => {
                let base = msg.content.as_deref().unwrap_or("");
                match &tools_prompt {
                    Some(prompt) if base.is_empty() => prompt.clone(),
                    Some(prompt) => format!("{base}\n\n{prompt}"),
                    None => base.to_string(),
                }
            }
            Role::Assistant => hermes_assistant_text(msg),
            _ => msg.content.clone().unwrap_or_default(),
        };
        out.push(json!({"role": msg.role.as_str(), "content": content}));
    }
    flush(&mut pending_responses, &mut out);
    out
}

fn hermes_assistant_text(msg: &ChatMessage) -> String {
    let mut text = msg.content.clone().unwrap_or_default();
    for call in &msg.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        // Replay malformed calls verbatim so the model sees what it actually wrote.
        let body = if call.is_malformed() {
            call.arguments.clone()
        } else {
            let args: Value = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|_| Value::String(call.arguments.clone()));
            // Written by hand so "name" comes first, as chat templates render it.
            format!(r#"{{"name": {}, "arguments": {}}}"#, json!(call.name), args)
        };
        text.push_str(&format!("{CALL_OPEN}\n{body}\n{CALL_CLOSE}"));
    }
    text
}

/// A successfully parsed chat-completions response.
#[derive(Debug)]
pub(crate) struct ParsedResponse {
    pub message: ChatMessage,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// Parse a 200 response body. `Err` describes why it is not a usable completion.
pub(crate) fn parse_response(
    body: &Value,
    mode: ToolMode,
    next_id: &mut dyn FnMut() -> String,
) -> Result<ParsedResponse, String> {
    let choice = match body.get("choices") {
        Some(Value::Array(choices)) => choices.first().ok_or("response has no choices")?,
        Some(_) => return Err("\"choices\" is not an array".to_string()),
        None => return Err("response has no \"choices\" field".to_string()),
    };
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or("first choice has no message object")?;

    let raw_content = content_text(message.get("content"));
    let server_reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);

    let (think_reasoning, mut content) = match raw_content {
        Some(text) => {
            let (r, c) = split_think(&text);
            (r, Some(c))
        }
        None => (None, None),
    };
    let reasoning = match (server_reasoning, think_reasoning) {
        (Some(a), Some(b)) => Some(format!("{a}\n\n{b}")),
        (a, b) => a.or(b),
    };

    let mut tool_calls = match message.get("tool_calls") {
        Some(Value::Array(calls)) => calls.iter().map(|c| native_call(c, next_id)).collect(),
        _ => Vec::new(),
    };
    // Hermes mode always parses the text; native mode falls back to it when the server
    // has no tool parser configured and passes the model's `<tool_call>` text through.
    let parse_text = mode == ToolMode::Hermes || tool_calls.is_empty();
    if parse_text
        && let Some(text) = &content
        && text.contains(CALL_OPEN)
    {
        let (kept, calls) = parse_hermes_calls(text, next_id);
        tool_calls.extend(calls);
        content = Some(kept);
    }
    let content = content.filter(|c| !c.trim().is_empty());

    let usage = body.get("usage").map_or_else(Usage::default, |u| Usage {
        prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    });
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut message = ChatMessage::assistant(content, tool_calls);
    message.reasoning = reasoning;
    Ok(ParsedResponse {
        message,
        usage,
        finish_reason,
    })
}

/// `content` is usually a string, sometimes an array of `{type: text, text}` parts.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

fn native_call(call: &Value, next_id: &mut dyn FnMut() -> String) -> ToolCall {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(&mut *next_id, str::to_string);
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let raw_args = function.and_then(|f| f.get("arguments"));
    // Ollama sends arguments as an object, OpenAI as a string of JSON.
    let result = normalise_arguments(raw_args);
    let parse_error = if name.is_empty() {
        Some("tool call has no function name".to_string())
    } else {
        result.as_ref().err().cloned()
    };
    let arguments = match (result, raw_args) {
        (Ok(a), _) => a,
        (Err(_), Some(Value::String(s))) => s.clone(),
        (Err(_), Some(v)) => v.to_string(),
        (Err(_), None) => String::new(),
    };
    ToolCall {
        id,
        name,
        arguments,
        parse_error,
    }
}

/// Phrases servers use when the prompt exceeds the context window
/// (vLLM, SGLang, llama.cpp, OpenAI, Anthropic-style proxies).
const OVERFLOW_PHRASES: [&str; 14] = [
    "context length",
    "context_length",
    "maximum context",
    "context size",
    "context window",
    "too many tokens",
    "maximum model length",
    "max_model_len",
    "max model len",
    "prompt is too long",
    "input is too long",
    "exceeds the available context",
    "longer than the model's context",
    "exceed_context_size",
];

/// True when an error body says the prompt does not fit the context window.
pub(crate) fn mentions_context_overflow(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    OVERFLOW_PHRASES.iter().any(|p| lower.contains(p))
}

/// The human-readable message of an error body (`error.message`, `message`, `detail`, or the text).
pub(crate) fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let err = v.get("error");
        err.and_then(|e| e.get("message"))
            .or(err)
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(|m| m.as_str().map(str::to_string))
    });
    crate::error::truncate_body(&from_json.unwrap_or_else(|| body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_ids() -> impl FnMut() -> String {
        || "call_x".to_string()
    }

    #[test]
    fn overflow_phrases_from_known_servers() {
        for body in [
            r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","code":400}"#,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
            r#"{"object":"error","message":"The input (40000 tokens) is longer than the model's context length (32768 tokens).","code":400}"#,
            r#"{"error":{"message":"Requested token count exceeds the model's maximum context length","code":"context_length_exceeded"}}"#,
        ] {
            assert!(mentions_context_overflow(body), "{body}");
        }
        assert!(!mentions_context_overflow(
            r#"{"error":{"message":"invalid value for temperature"}}"#
        ));
    }

    #[test]
    fn error_message_extracted() {
        assert_eq!(error_message(r#"{"error":{"message":"bad"}}"#), "bad");
        assert_eq!(error_message(r#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message("plain text"), "plain text");
    }

    #[test]
    fn native_request_has_tools_and_sampling() {
        let tools = [ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }];
        let sampling = Sampling {
            top_p: Some(0.9),
            seed: Some(7),
            max_tokens: Some(100),
            ..Sampling::default()
        };
        let call = ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let msgs = [
            ChatMessage::system("sys"),
            ChatMessage::user("task"),
            ChatMessage::assistant(None, vec![call.clone()]),
            ChatMessage::tool_result(&call, "out"),
        ];
        let body = build_request("m", &msgs, &tools, &sampling, ToolMode::Native);
        assert_eq!(body["tools"][0]["function"]["name"], "bash");
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["seed"], 7);
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("stop").is_none());
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls"}"#
        );
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["messages"][3]["role"], "tool");
    }

    #[test]
    fn hermes_request_without_system_and_merged_results() {
        let tools = [ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }];
        let a = ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let b = ToolCall::new("c2", "bash", r#"{"command":"pwd"}"#);
        let msgs = [
            ChatMessage::user("task"),
            ChatMessage::assistant(Some("two".into()), vec![a.clone(), b.clone()]),
            ChatMessage::tool_result(&a, "x"),
            ChatMessage::tool_result(&b, "y"),
        ];
        let body = build_request("m", &msgs, &tools, &Sampling::default(), ToolMode::Hermes);
        let m = body["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0]["role"], "system");
        assert!(m[0]["content"].as_str().unwrap_or("").contains("<tools>"));
        assert_eq!(m[3]["role"], "user");
        assert_eq!(
            m[3]["content"],
            "<tool_response>\nx\n</tool_response>\n<tool_response>\ny\n</tool_response>"
        );
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn ollama_object_arguments_and_bad_native_arguments() {
        let body = json!({"choices": [{"message": {"content": "", "tool_calls": [
            {"function": {"name": "bash", "arguments": {"command": "ls"}}},
            {"id": "b", "function": {"name": "bash", "arguments": "{\"command\": "}},
        ]}}]});
        let parsed =
            parse_response(&body, ToolMode::Native, &mut no_ids()).map_err(|e| e.to_string());
        let calls = parsed.map(|p| p.message.tool_calls).unwrap_or_default();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_x");
        assert_eq!(calls[0].arguments, r#"{"command":"ls"}"#);
        assert!(calls[1].is_malformed());
        assert_eq!(calls[1].arguments, "{\"command\": ");
    }

    #[test]
    fn bad_shapes_are_errors() {
        for body in [
            json!({}),
            json!({"choices": []}),
            json!({"choices": [{}]}),
            json!({"choices": 3}),
        ] {
            assert!(
                parse_response(&body, ToolMode::Native, &mut no_ids()).is_err(),
                "{body}"
            );
        }
    }
}
