//! The OpenAI chat-completions exchange of the client: the request body for each tool mode
//! and the reading of answers, over the wire structs of `trajforge-chat`.

use trajforge_chat::hermes::{self, CALL_OPEN, CallSyntax, normalise_arguments, split_think};
use trajforge_chat::wire::{
    ChatRequest, ChatResponse, Stop, WireMessage, WireTool, WireToolCall, WireToolChoice,
};
use trajforge_chat::{ChatMessage, Sampling, ToolCall, ToolMode, ToolSpec, Usage};

/// The body of a chat-completions request.
pub(crate) fn build_request(
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    sampling: &Sampling,
    mode: ToolMode,
) -> ChatRequest {
    let messages = match mode {
        ToolMode::Native => messages.iter().map(WireMessage::native).collect(),
        // No tool parser on the server: schemas in the system prompt, calls as text.
        ToolMode::Hermes => hermes::turns(messages, tools, &hermes::plain_content)
            .into_iter()
            .map(|t| WireMessage::text(t.role, t.content))
            .collect(),
    };
    let native_tools = mode == ToolMode::Native && !tools.is_empty();
    ChatRequest {
        model: model.to_string(),
        messages,
        temperature: Some(sampling.temperature),
        top_p: sampling.top_p,
        max_tokens: sampling.max_tokens.map(u64::from),
        seed: sampling.seed.map(serde_json::Number::from),
        stop: (!sampling.stop.is_empty()).then(|| Stop::Many(sampling.stop.clone())),
        tools: native_tools.then(|| tools.iter().map(WireTool::from_spec).collect()),
        tool_choice: native_tools.then(|| WireToolChoice::Mode("auto".into())),
        stream: false,
        ..ChatRequest::default()
    }
}

/// A successfully parsed chat-completions response.
#[derive(Debug)]
pub(crate) struct ParsedResponse {
    pub message: ChatMessage,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// Why a 200 answer is not a usable completion.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseError {
    /// The body is not a chat-completions response.
    #[error("not a chat completion: {0}")]
    Shape(#[source] serde_json::Error),
    #[error("response has no \"choices\" field")]
    NoChoicesField,
    #[error("response has no choices")]
    NoChoices,
    #[error("first choice has no message object")]
    NoMessage,
}

/// Parse a 200 response body.
pub(crate) fn parse_response(
    body: &serde_json::Value,
    mode: ToolMode,
    next_id: &mut dyn FnMut() -> String,
) -> Result<ParsedResponse, ResponseError> {
    let response: ChatResponse =
        serde_json::from_value(body.clone()).map_err(ResponseError::Shape)?;
    let mut choices = response.choices.ok_or(ResponseError::NoChoicesField)?;
    if choices.is_empty() {
        return Err(ResponseError::NoChoices);
    }
    let choice = choices.swap_remove(0);
    let message = choice.message.ok_or(ResponseError::NoMessage)?;

    let raw_content = message.content.as_ref().and_then(|c| c.joined_text());
    let server_reasoning = [&message.reasoning_content, &message.reasoning]
        .into_iter()
        .find_map(|r| r.as_deref())
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

    let mut tool_calls: Vec<ToolCall> = message
        .tool_calls
        .iter()
        .map(|c| native_call(c, next_id))
        .collect();
    // Hermes mode always parses the text; native mode falls back to it when the server
    // has no tool parser configured and passes the model's `<tool_call>` text through.
    let parse_text = mode == ToolMode::Hermes || tool_calls.is_empty();
    if parse_text
        && let Some(text) = &content
        && text.contains(CALL_OPEN)
    {
        let (kept, calls) = hermes::parse_calls(text, CallSyntax::Free, next_id);
        tool_calls.extend(calls);
        content = Some(kept);
    }
    let content = content.filter(|c| !c.trim().is_empty());

    let usage = response.usage.map_or_else(Usage::default, |u| Usage {
        prompt_tokens: u.prompt_tokens.unwrap_or(0),
        completion_tokens: u.completion_tokens.unwrap_or(0),
    });
    let mut message = ChatMessage::assistant(content, tool_calls);
    message.reasoning = reasoning;
    Ok(ParsedResponse {
        message,
        usage,
        finish_reason: choice.finish_reason,
    })
}

fn native_call(call: &WireToolCall, next_id: &mut dyn FnMut() -> String) -> ToolCall {
    let id = call
        .id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(&mut *next_id);
    let function = call.function.as_ref();
    let name = function
        .and_then(|f| f.name.as_deref())
        .unwrap_or("")
        .trim()
        .to_string();
    let raw_args = function.and_then(|f| f.arguments.as_ref());
    // Ollama sends arguments as an object, OpenAI as a string of JSON.
    let result = normalise_arguments(raw_args);
    let parse_error = if name.is_empty() {
        Some("tool call has no function name".to_string())
    } else {
        result.as_ref().err().map(ToString::to_string)
    };
    let arguments = match (result, raw_args) {
        (Ok(a), _) => a,
        (Err(_), Some(serde_json::Value::String(s))) => s.clone(),
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
    let from_json = trajforge_chat::wire::ErrorBody::message_in(body);
    crate::error::truncate_body(&from_json.unwrap_or_else(|| body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A bash tool with an open schema.
    fn bash_tool() -> ToolSpec {
        ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            parameters: json!({"type": "object"}),
        }
    }

    fn body(request: ChatRequest) -> Value {
        serde_json::to_value(request).unwrap_or_default()
    }

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
        let tools = [bash_tool()];
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
        let body = body(build_request(
            "m",
            &msgs,
            &tools,
            &sampling,
            ToolMode::Native,
        ));
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
        let tools = [bash_tool()];
        let a = ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let b = ToolCall::new("c2", "bash", r#"{"command":"pwd"}"#);
        let msgs = [
            ChatMessage::user("task"),
            ChatMessage::assistant(Some("two".into()), vec![a.clone(), b.clone()]),
            ChatMessage::tool_result(&a, "x"),
            ChatMessage::tool_result(&b, "y"),
        ];
        let body = body(build_request(
            "m",
            &msgs,
            &tools,
            &Sampling::default(),
            ToolMode::Hermes,
        ));
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
