//! The OpenAI chat-completions wire format as serde types: the request (messages, tools,
//! tool choice, sampling, streaming), the response, the streamed chunk, usage and the error
//! body. The teacher client writes requests and reads responses with them; `trajforge serve`
//! reads requests and writes responses and chunks with them. Fields servers fill in
//! differently (content as text or parts, arguments as a string or an object, `null` lists)
//! are read leniently; checking what a request asks for is the server's business. Optional
//! fields are left out when `None` (`skip_serializing_none`) unless marked `serialize_always`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::types::{ChatMessage, Role, ToolCall, ToolSpec};

/// `null` read as the type's default (servers send `"tool_calls": null`).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The body of `POST /chat/completions`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Cap on generated tokens (the older name).
    pub max_tokens: Option<u64>,
    /// Cap on generated tokens (the newer name; wins over `max_tokens`).
    pub max_completion_tokens: Option<u64>,
    /// Sampling seed (some clients send negative ones).
    pub seed: Option<serde_json::Number>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Tools the model may call.
    pub tools: Option<Vec<WireTool>>,
    /// Which calls are allowed.
    pub tool_choice: Option<WireToolChoice>,
    /// Several calls in one reply.
    pub parallel_tool_calls: Option<bool>,
    /// Number of choices.
    pub n: Option<u64>,
    /// Answer as server-sent events.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options` of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_usage: bool,
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(list) => list,
        }
    }
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"`, or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireToolChoice {
    /// One of the mode strings.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Function {
        /// The function.
        function: FunctionName,
    },
}

/// `{"name": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionName {
    /// Function name.
    pub name: String,
}

/// One message on the wire.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Author (`developer` and `function` are read as system and tool); answers of some
    /// servers leave it out.
    pub role: Option<Role>,
    /// Text, text parts or `null`.
    #[serialize_always]
    pub content: Option<Content>,
    /// Reasoning returned apart from the content (vLLM, SGLang, DeepSeek).
    pub reasoning_content: Option<String>,
    /// Reasoning under the name other servers use (Ollama, OpenRouter).
    pub reasoning: Option<String>,
    /// Calls of an assistant message.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<WireToolCall>,
    /// For a tool result: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a tool result: the tool's name.
    pub name: Option<String>,
}

impl WireMessage {
    /// A message of `role` with text content and nothing else.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role: Some(role),
            content: Some(Content::Text(content.into())),
            reasoning_content: None,
            reasoning: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A conversation message as OpenAI's native tool calling sends it: calls on assistant
    /// turns, the call id on results and the tool name on tool results only.
    pub fn native(msg: &ChatMessage) -> Self {
        let tool_calls = if msg.role == Role::Assistant {
            msg.tool_calls.iter().map(WireToolCall::from_call).collect()
        } else {
            Vec::new()
        };
        Self {
            content: msg.content.clone().map(Content::Text),
            tool_calls,
            tool_call_id: msg.tool_call_id.clone(),
            name: msg.name.clone().filter(|_| msg.role == Role::Tool),
            ..Self::text(msg.role, "")
        }
    }
}

/// `content`: a string, a list of parts, or something else a server made up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// `[{"type": "text", "text": ...}, ...]`.
    Parts(Vec<ContentPart>),
    /// Anything else (read as no content).
    Other(Value),
}

impl Content {
    /// The text, with parts joined; parts that are not text are skipped.
    pub fn joined_text(&self) -> Option<String> {
        match self {
            Content::Text(s) => Some(s.clone()),
            Content::Parts(parts) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.text.as_ref().and_then(Value::as_str))
                    .collect(),
            ),
            Content::Other(_) => None,
        }
    }
}

/// One part of a `content` list.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The text of a text part.
    pub text: Option<Value>,
}

/// A tool call on the wire.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireToolCall {
    /// Position of the call, in streamed chunks.
    pub index: Option<usize>,
    /// Call id (some servers leave it out).
    pub id: Option<String>,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The function called.
    pub function: Option<WireFunction>,
}

impl WireToolCall {
    /// The wire form of a call: arguments as the JSON text the model wrote.
    pub fn from_call(call: &ToolCall) -> Self {
        Self {
            index: None,
            id: Some(call.id.clone()),
            kind: Some("function".into()),
            function: Some(WireFunction {
                name: Some(call.name.clone()),
                arguments: Some(Value::String(call.arguments.clone())),
            }),
        }
    }
}

/// The function of a tool call.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireFunction {
    /// Tool name.
    pub name: Option<String>,
    /// A string of JSON (OpenAI) or an object (Ollama).
    pub arguments: Option<Value>,
}

/// A tool offered in a request.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The function.
    pub function: WireFunctionSpec,
}

impl WireTool {
    /// The wire form of a tool.
    pub fn from_spec(tool: &ToolSpec) -> Self {
        Self {
            kind: Some("function".into()),
            function: WireFunctionSpec {
                name: tool.name.clone(),
                description: Some(tool.description.clone()),
                parameters: Some(tool.parameters.clone()),
            },
        }
    }
}

/// The function of a tool: name, description, JSON Schema of the arguments.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireFunctionSpec {
    /// Tool name.
    pub name: String,
    /// What the tool does.
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Option<Value>,
}

/// A whole (not streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Completion id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time.
    #[serde(default)]
    pub created: u64,
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// The choices (`None` when the server left the field out).
    #[serde(default)]
    pub choices: Option<Vec<Choice>>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

/// One choice of a whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    #[serde(default)]
    pub message: Option<WireMessage>,
    /// Always `null` here.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// `stop`, `tool_calls`, `length`...
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One server-sent event of a streamed answer (read leniently: servers leave fields out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Completion id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix time.
    #[serde(default)]
    pub created: u64,
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// The choice's delta (empty in the usage chunk).
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    /// Token counts, in the last chunk when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

impl ChatChunk {
    /// A chunk of the one choice adding `delta`; `finish` in the choice's last chunk.
    pub fn single(id: &str, model: &str, created: u64, delta: Delta, finish: Option<&str>) -> Self {
        Self {
            id: id.to_string(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.to_string(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish.map(str::to_string),
            }],
            usage: None,
        }
    }
}

/// The delta of one choice in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Always `null` here.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Set in the last chunk of the choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// What a chunk adds to the message.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The role, in the first chunk.
    pub role: Option<Role>,
    /// More text.
    pub content: Option<String>,
    /// More reasoning (vLLM, SGLang, DeepSeek).
    pub reasoning_content: Option<String>,
    /// More reasoning under the name other servers use (Ollama, OpenRouter).
    pub reasoning: Option<String>,
    /// Calls (with their `index`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<WireToolCall>,
}

/// Token counts on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// Their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Prompt tokens served from a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from a cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// An error answer: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object of an error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending parameter.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`).
    #[serde(default)]
    pub code: Option<String>,
}

impl ErrorBody {
    /// An error answer.
    pub fn new(message: impl Into<String>, kind: impl Into<String>, code: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param: None,
                code: code.map(str::to_string),
            },
        }
    }

    /// The human-readable message of an error answer in any of the shapes servers use
    /// (`error.message`, `error` as a string, `message`, `detail`); `None` when there is none.
    pub fn message_in(body: &str) -> Option<String> {
        let parsed: Value = serde_json::from_str(body).ok()?;
        let err = parsed.get("error");
        err.and_then(|e| e.get("message"))
            .or(err)
            .or_else(|| parsed.get("message"))
            .or_else(|| parsed.get("detail"))
            .and_then(|m| m.as_str().map(str::to_string))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_response_fields() {
        let body = json!({"choices": [{"message": {"role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}],
            "tool_calls": null, "reasoning": "r"}}], "usage": null});
        let r: ChatResponse = serde_json::from_value(body).unwrap();
        let choices = r.choices.unwrap();
        let m = choices[0].message.as_ref().unwrap();
        assert_eq!(
            m.content.as_ref().and_then(Content::joined_text).as_deref(),
            Some("ab")
        );
        assert!(m.tool_calls.is_empty());
        assert_eq!(m.reasoning.as_deref(), Some("r"));
        assert!(r.usage.is_none());
    }

    #[test]
    fn request_round_trip_keeps_null_content_and_aliases() {
        let msg = ChatMessage::assistant(None, vec![ToolCall::new("c", "bash", "{}")]);
        let v = serde_json::to_value(WireMessage::native(&msg)).unwrap();
        assert_eq!(v["content"], Value::Null);
        assert_eq!(v["tool_calls"][0]["function"]["arguments"], "{}");
        let m: WireMessage =
            serde_json::from_value(json!({"role": "developer", "content": "x"})).unwrap();
        assert_eq!(m.role, Some(Role::System));
        let r: ChatRequest = serde_json::from_value(json!({"messages": [], "stop": "END",
            "tool_choice": {"type": "function", "function": {"name": "bash"}}, "seed": -3}))
        .unwrap();
        assert_eq!(r.stop.map(Stop::into_vec), Some(vec!["END".to_string()]));
        assert!(matches!(
            r.tool_choice,
            Some(WireToolChoice::Function { .. })
        ));
        assert_eq!(r.seed.and_then(|s| s.as_i64()), Some(-3));
    }

    #[test]
    fn error_messages_in_every_shape() {
        assert_eq!(
            ErrorBody::message_in(r#"{"error":{"message":"bad"}}"#).as_deref(),
            Some("bad")
        );
        assert_eq!(
            ErrorBody::message_in(r#"{"detail":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(ErrorBody::message_in("plain text"), None);
    }
}
