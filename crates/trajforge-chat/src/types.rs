//! Conversation types: messages, tool calls, tool schemas, sampling and usage.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (`developer` on the wire is read as this).
    #[serde(alias = "developer")]
    System,
    /// The task or the user.
    User,
    /// The model itself.
    Assistant,
    /// The result of a tool call (`function`, the older name, is read as this).
    #[serde(alias = "function")]
    Tool,
}

impl Role {
    /// The role name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation, in the form trajectories record it.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Visible text; `None` when an assistant turn only calls tools.
    pub content: Option<String>,
    /// Reasoning the server returned separately (`reasoning_content` or `<think>`).
    pub reasoning: Option<String>,
    /// Tool calls made by an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// For a tool result: the name of the tool that produced it.
    pub name: Option<String>,
}

impl ChatMessage {
    fn bare(role: Role, content: Option<String>) -> Self {
        Self {
            role,
            content,
            reasoning: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::bare(Role::System, Some(content.into()))
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::bare(Role::User, Some(content.into()))
    }

    /// An assistant message with optional text and tool calls.
    pub fn assistant(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::bare(Role::Assistant, content)
        }
    }

    /// The result of the tool call `call` (its id and tool name are copied).
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            ..Self::bare(Role::Tool, Some(content.into()))
        }
    }
}

/// A tool call as the model produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (from the server, or generated for hermes text calls).
    pub id: String,
    /// Tool name; empty when a malformed call did not reveal it.
    pub name: String,
    /// Arguments as the raw JSON text the model produced.
    pub arguments: String,
    /// Why the call could not be understood; the agent loop answers such calls
    /// with an error observation instead of running them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

impl ToolCall {
    /// A well-formed call.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
            parse_error: None,
        }
    }

    /// True when the call could not be parsed and must not be executed.
    pub fn is_malformed(&self) -> bool {
        self.parse_error.is_some()
    }

    /// The arguments parsed as JSON.
    pub fn arguments_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }
}

/// A tool the model may call, described by a JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// What the tool does, shown to the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// Sampling parameters sent with every request.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Sampling temperature (SERA used 0.6).
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Cap on generated tokens per call.
    pub max_tokens: Option<u32>,
    /// Sampling seed, for servers that honour it.
    pub seed: Option<u64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: None,
            max_tokens: None,
            seed: None,
            stop: Vec::new(),
        }
    }
}

/// How tool calls travel between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolMode {
    /// OpenAI `tools` / `tool_calls` fields (the server has a tool parser).
    #[default]
    Native,
    /// Qwen/Hermes text: schemas in the system prompt, `<tool_call>` blocks in the reply.
    Hermes,
}

/// Token counts of one call, as reported by the server (0 when it reports none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// Requests, errors and latency of one teacher server, as a client counts them and a run
/// records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// The server's base URL (without credentials).
    pub url: String,
    /// Attempts sent to it.
    pub requests: u64,
    /// Attempts that failed (any reason).
    pub errors: u64,
    /// Sum of the latencies of answered attempts, in seconds.
    pub latency_seconds: f64,
    /// Slowest answered attempt, in seconds.
    pub max_latency_seconds: f64,
    /// Times it was taken out of rotation.
    pub ejections: u64,
}

impl ServerStats {
    /// Mean latency of answered attempts, in seconds (0 when none).
    pub fn mean_latency_seconds(&self) -> f64 {
        let answered = self.requests.saturating_sub(self.errors);
        if answered == 0 {
            0.0
        } else {
            self.latency_seconds / answered as f64
        }
    }
}
