//! Anthropic's Messages API as serde types, and its translation to and from the chat
//! protocol: the request (read leniently: clients such as Claude Code send fields and block
//! types this server does not use), the response, every server-sent event of a streamed
//! answer, the error body and `count_tokens`. [`conversation`] turns a request into chat
//! messages and tools; [`MessageStream`] turns streamed chat-completions chunks into Messages
//! events as they arrive; [`MessageBuilder`] folds events into the whole message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{ChatMessage, Sampling, ToolCall, ToolSpec};
use crate::wire::{
    ChatChunk, ChatRequest, Stop, StreamOptions, WireMessage, WireTool, WireToolChoice,
    null_as_default,
};

/// The body of `POST /v1/messages` (and of `/v1/messages/count_tokens`, without `max_tokens`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// Cap on generated tokens (required by Anthropic; absent in `count_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<InputMessage>,
    /// The system prompt: text or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<MessageContent>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDef>>,
    /// Which calls are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceParam>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Answer as server-sent events.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream: bool,
    /// Extended thinking settings (the model reasons or not; read and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
}

/// Who wrote an input message (`system` is tolerated inside `messages`: Claude Code sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputRole {
    /// The user, or tool results.
    User,
    /// The model.
    Assistant,
    /// More system prompt.
    System,
}

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// Author.
    pub role: InputRole,
    /// Text or blocks.
    pub content: MessageContent,
}

/// `content` (and `system`, and a tool result's content): a string or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The text blocks joined by `sep`; blocks that are not text become a short note.
    pub fn text(&self, sep: &str) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Blocks(blocks) => blocks
                .iter()
                .filter_map(ContentBlock::as_text)
                .collect::<Vec<_>>()
                .join(sep),
        }
    }
}

/// A content block, of a request or a response. Block types this server does not know are
/// read as [`ContentBlock::Unknown`]; fields it does not use (`cache_control`, `citations`)
/// are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image (the models served here read text only).
    Image {
        /// Where the image is.
        #[serde(default)]
        source: Value,
    },
    /// A document (read as a note, like images).
    Document {
        /// Where the document is.
        #[serde(default)]
        source: Value,
    },
    /// A call of a tool by the model.
    ToolUse {
        /// Call id (`toolu_...`).
        id: String,
        /// Tool name.
        name: String,
        /// Arguments object.
        input: Value,
    },
    /// The result of a call, in a user message.
    ToolResult {
        /// The call answered.
        tool_use_id: String,
        /// What the tool returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        /// True when the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// The model's reasoning.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Anthropic's integrity signature (empty here: nothing to sign).
        #[serde(default)]
        signature: String,
    },
    /// Reasoning Anthropic encrypted (carried by clients from earlier turns; not readable).
    RedactedThinking {
        /// Opaque data.
        #[serde(default)]
        data: String,
    },
    /// Any other block type.
    #[serde(other)]
    Unknown,
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }

    /// The text a block contributes to a text-only model: its text, or a note for media.
    fn as_text(&self) -> Option<String> {
        match self {
            ContentBlock::Text { text } => Some(text.clone()),
            ContentBlock::Image { .. } => Some("[image omitted: this model reads text]".into()),
            ContentBlock::Document { .. } => {
                Some("[document omitted: this model reads text]".into())
            }
            _ => None,
        }
    }
}

/// A tool offered in a request. Server tools (`web_search_...`) have a `type` and no schema;
/// a model behind this server cannot run them, so they are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// Tool name.
    pub name: String,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// `custom` or a server tool type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `tool_choice`: `{"type": "auto" | "any" | "tool" | "none", "name"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoiceParam {
    /// The mode.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool, for `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one call per reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its turn.
    EndTurn,
    /// `max_tokens` was reached.
    MaxTokens,
    /// A stop sequence was generated.
    StopSequence,
    /// The model called tools.
    ToolUse,
    /// The server refused (content filter).
    Refusal,
}

impl StopReason {
    /// The stop reason of an OpenAI `finish_reason`; `called` when the reply holds tool calls
    /// (some servers say `stop` then).
    pub fn from_finish(finish: Option<&str>, called: bool) -> Self {
        match finish {
            Some("length") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::Refusal,
            _ if called => StopReason::ToolUse,
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        }
    }
}

/// Token counts of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens written to a cache (none here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Prompt tokens served from the server's prefix cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// A whole answer (also the `message` of `message_start`, with no content yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// Message id (`msg_...`), unique: Claude Code merges turns that share one.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The blocks.
    pub content: Vec<ContentBlock>,
    /// Model name.
    pub model: String,
    /// Why the model stopped (`null` in `message_start`).
    pub stop_reason: Option<StopReason>,
    /// The stop sequence generated, if any.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: MessagesUsage,
}

impl MessagesResponse {
    /// An empty assistant message.
    pub fn empty(id: impl Into<String>, model: impl Into<String>, input_tokens: u64) -> Self {
        Self {
            id: id.into(),
            kind: "message".into(),
            role: "assistant".into(),
            content: Vec::new(),
            model: model.into(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessagesUsage {
                input_tokens,
                // Anthropic reports 1 here; clients only need the field.
                output_tokens: 1,
                ..MessagesUsage::default()
            },
        }
    }
}

/// One server-sent event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message, empty, with the prompt's usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A block opens.
    ContentBlockStart {
        /// Block position.
        index: usize,
        /// The block, empty.
        content_block: ContentBlock,
    },
    /// A block grows.
    ContentBlockDelta {
        /// Block position.
        index: usize,
        /// What it adds.
        delta: BlockDelta,
    },
    /// A block is complete.
    ContentBlockStop {
        /// Block position.
        index: usize,
    },
    /// Stop reason and final usage.
    MessageDelta {
        /// The stop reason.
        delta: MessageDeltaBody,
        /// Token counts.
        usage: MessagesUsage,
    },
    /// The end.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// A failure after the stream started.
    Error {
        /// What went wrong.
        error: ErrorObject,
    },
}

impl StreamEvent {
    /// The SSE `event:` name (the same as `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }

    /// The event as SSE text: `event: NAME\ndata: JSON\n\n`.
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).unwrap_or_default();
        format!("event: {}\ndata: {data}\n\n", self.name())
    }
}

/// What a `content_block_delta` adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Text.
    TextDelta {
        /// More text.
        text: String,
    },
    /// Part of a tool call's input JSON.
    InputJsonDelta {
        /// More JSON text.
        partial_json: String,
    },
    /// Reasoning.
    ThinkingDelta {
        /// More reasoning.
        thinking: String,
    },
    /// A thinking block's signature.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
}

/// `delta` of `message_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why the model stopped.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence generated.
    pub stop_sequence: Option<String>,
}

/// An error: `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorObject,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// `invalid_request_error`, `not_found_error`, `api_error`, `overloaded_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl ErrorObject {
    /// The Anthropic error type of an HTTP status.
    pub fn for_status(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            400 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 | 405 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl ErrorResponse {
    /// The error body for an HTTP status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            kind: "error".into(),
            error: ErrorObject::for_status(status, message),
        }
    }
}

/// The answer of `count_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    /// Tokens of the prompt.
    pub input_tokens: u64,
}

/// Why a request cannot be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// A field has a value that cannot be mapped.
    #[error("{0}")]
    Invalid(String),
}

/// The conversation of a request as chat messages (system prompt first, tool results as tool
/// messages right after the call) and the tools that have a schema.
pub fn conversation(
    req: &MessagesRequest,
) -> Result<(Vec<ChatMessage>, Vec<ToolSpec>), TranslateError> {
    let mut system: Vec<String> = req
        .system
        .iter()
        .map(|s| s.text("\n"))
        .filter(|s| !s.is_empty())
        .collect();
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            InputRole::System => system.push(m.content.text("\n")),
            InputRole::User => user_turn(&m.content, &mut messages),
            InputRole::Assistant => messages.push(
                assistant_turn(&m.content)
                    .map_err(|e| TranslateError::Invalid(format!("messages[{i}]: {e}")))?,
            ),
        }
    }
    if !system.is_empty() {
        messages.insert(0, ChatMessage::system(system.join("\n\n")));
    }
    let tools = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| {
            let schema = t.input_schema.clone()?;
            Some(ToolSpec {
                name: t.name.clone(),
                description: t.description.clone().unwrap_or_default(),
                parameters: schema,
            })
        })
        .collect();
    Ok((messages, tools))
}

/// A user message: its tool results as tool messages, then its text (if any) as one message.
fn user_turn(content: &MessageContent, out: &mut Vec<ChatMessage>) {
    let blocks = match content {
        MessageContent::Text(s) => {
            out.push(ChatMessage::user(s.clone()));
            return;
        }
        MessageContent::Blocks(blocks) => blocks,
    };
    let mut text = Vec::new();
    for block in blocks {
        if let ContentBlock::ToolResult {
            tool_use_id,
            content,
            ..
        } = block
        {
            let name = out
                .iter()
                .rev()
                .flat_map(|m| &m.tool_calls)
                .find(|c| &c.id == tool_use_id)
                .map_or_else(String::new, |c| c.name.clone());
            let call = ToolCall::new(tool_use_id.clone(), name, "");
            let result = content.as_ref().map_or_else(String::new, |c| c.text("\n"));
            out.push(ChatMessage::tool_result(&call, result));
        } else if let Some(t) = block.as_text() {
            text.push(t);
        }
    }
    if !text.is_empty() {
        out.push(ChatMessage::user(text.join("\n")));
    }
}

fn assistant_turn(content: &MessageContent) -> Result<ChatMessage, TranslateError> {
    let blocks = match content {
        MessageContent::Text(s) => return Ok(ChatMessage::assistant(Some(s.clone()), Vec::new())),
        MessageContent::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::Thinking { thinking, .. } => reasoning.push_str(thinking),
            ContentBlock::ToolUse { id, name, input } => {
                if !input.is_object() {
                    return Err(TranslateError::Invalid(format!(
                        "tool_use {id}: \"input\" must be an object"
                    )));
                }
                calls.push(ToolCall::new(id.clone(), name.clone(), input.to_string()));
            }
            _ => {}
        }
    }
    let mut msg = ChatMessage::assistant((!text.is_empty()).then_some(text), calls);
    msg.reasoning = (!reasoning.is_empty()).then_some(reasoning);
    Ok(msg)
}

/// The chat-completions request (streamed, with usage) asking `model` for the next turn of
/// `messages` with `tools`, with the request's sampling over `defaults`.
pub fn chat_request(
    req: &MessagesRequest,
    model: &str,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    defaults: &Sampling,
) -> ChatRequest {
    let tool_choice = req
        .tool_choice
        .as_ref()
        .and_then(|c| match c.kind.as_str() {
            "any" => Some(WireToolChoice::Mode("required".into())),
            "none" => Some(WireToolChoice::Mode("none".into())),
            "tool" => c.name.clone().map(|name| WireToolChoice::Function {
                function: crate::wire::FunctionName { name },
            }),
            _ => None,
        });
    let stop = req
        .stop_sequences
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| (!defaults.stop.is_empty()).then(|| defaults.stop.clone()));
    ChatRequest {
        model: model.to_string(),
        messages: messages.iter().map(WireMessage::native).collect(),
        temperature: req.temperature.or(Some(defaults.temperature)),
        top_p: req.top_p.or(defaults.top_p),
        max_tokens: req.max_tokens.or(defaults.max_tokens.map(u64::from)),
        seed: defaults.seed.map(serde_json::Number::from),
        stop: stop.map(Stop::Many),
        tools: (!tools.is_empty()).then(|| tools.iter().map(WireTool::from_spec).collect()),
        tool_choice: tool_choice.filter(|_| !tools.is_empty()),
        parallel_tool_calls: req
            .tool_choice
            .as_ref()
            .and_then(|c| c.disable_parallel_tool_use)
            .map(|d| !d),
        stream: true,
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..ChatRequest::default()
    }
}

/// The block open in a [`MessageStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its OpenAI `index`.
    Tool(usize),
}

/// A tool call of the upstream stream.
#[derive(Debug, Default)]
struct CallState {
    id: Option<String>,
    name: Option<String>,
    /// Arguments received before the name (sent once the block opens).
    pending: String,
    /// The block was opened (and maybe closed already).
    opened: bool,
}

/// Turns streamed chat-completions chunks into Messages events as they arrive: one block per
/// run of text, of reasoning, and per tool call, in the order the upstream sends them.
#[derive(Debug)]
pub struct MessageStream {
    id: String,
    open: Option<Open>,
    blocks: usize,
    calls: BTreeMap<usize, CallState>,
    finish: Option<String>,
    usage: Option<(u64, u64, Option<u64>)>,
}

impl MessageStream {
    /// A stream for the message `message_id` (tool calls without an id get one from it).
    pub fn new(message_id: impl Into<String>) -> Self {
        Self {
            id: message_id.into(),
            open: None,
            blocks: 0,
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
        }
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if self.open.take().is_some() {
            out.push(StreamEvent::ContentBlockStop {
                index: self.blocks - 1,
            });
        }
    }

    fn open(&mut self, kind: Open, block: ContentBlock, out: &mut Vec<StreamEvent>) {
        self.close(out);
        out.push(StreamEvent::ContentBlockStart {
            index: self.blocks,
            content_block: block,
        });
        self.blocks += 1;
        self.open = Some(kind);
    }

    fn delta(&self, delta: BlockDelta, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::ContentBlockDelta {
            index: self.blocks - 1,
            delta,
        });
    }

    /// The events one upstream chunk gives.
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if let Some(u) = &chunk.usage {
            self.usage = Some((
                u.prompt_tokens.unwrap_or(0),
                u.completion_tokens.unwrap_or(0),
                u.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens),
            ));
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let d = &choice.delta;
            for thinking in [&d.reasoning_content, &d.reasoning].into_iter().flatten() {
                if thinking.is_empty() {
                    continue;
                }
                if self.open != Some(Open::Thinking) {
                    let block = ContentBlock::Thinking {
                        thinking: String::new(),
                        signature: String::new(),
                    };
                    self.open(Open::Thinking, block, &mut out);
                }
                let delta = BlockDelta::ThinkingDelta {
                    thinking: thinking.clone(),
                };
                self.delta(delta, &mut out);
            }
            if let Some(text) = d.content.as_ref().filter(|t| !t.is_empty()) {
                if self.open != Some(Open::Text) {
                    self.open(Open::Text, ContentBlock::text(""), &mut out);
                }
                let delta = BlockDelta::TextDelta { text: text.clone() };
                self.delta(delta, &mut out);
            }
            for (position, call) in d.tool_calls.iter().enumerate() {
                self.push_call(call.index.unwrap_or(position), call, &mut out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish = Some(reason.clone());
            }
        }
        out
    }

    fn push_call(
        &mut self,
        index: usize,
        call: &crate::wire::WireToolCall,
        out: &mut Vec<StreamEvent>,
    ) {
        let state = self.calls.entry(index).or_default();
        if state.id.is_none() {
            state.id = call.id.clone().filter(|id| !id.is_empty());
        }
        let function = call.function.as_ref();
        if let Some(name) = function
            .and_then(|f| f.name.as_ref())
            .filter(|n| !n.is_empty())
        {
            state.name.get_or_insert_with(|| name.clone());
        }
        match function.and_then(|f| f.arguments.as_ref()) {
            Some(Value::String(s)) => state.pending.push_str(s),
            Some(Value::Null) | None => {}
            // Ollama sends the arguments as an object, whole.
            Some(other) => state.pending.push_str(&other.to_string()),
        }
        if !state.opened {
            let Some(name) = state.name.clone() else {
                return;
            };
            state.opened = true;
            let id = state
                .id
                .clone()
                .unwrap_or_else(|| format!("toolu_{}_{index}", self.id));
            let block = ContentBlock::ToolUse {
                id,
                name,
                input: Value::Object(serde_json::Map::new()),
            };
            self.open(Open::Tool(index), block, out);
        } else if self.open != Some(Open::Tool(index)) {
            // Messages blocks cannot reopen: a fragment of an earlier call that arrives after
            // another block started is dropped. Servers stream calls one after another (vLLM,
            // SGLang, llama.cpp, OpenAI), so this does not happen with them.
            return;
        }
        let Some(state) = self.calls.get_mut(&index) else {
            return;
        };
        if !state.pending.is_empty() {
            let partial_json = std::mem::take(&mut state.pending);
            self.delta(BlockDelta::InputJsonDelta { partial_json }, out);
        }
    }

    /// The closing events: the open block's stop, `message_delta` (stop reason and usage;
    /// `input_tokens` when the upstream reported none) and `message_stop`.
    pub fn finish(&mut self, input_tokens: u64) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        // A call whose name never came still gets its block, so no argument text is lost.
        let unnamed: Vec<usize> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.opened)
            .map(|(i, _)| *i)
            .collect();
        for index in unnamed {
            if let Some(state) = self.calls.get_mut(&index) {
                state.name.get_or_insert_with(String::new);
            }
            let empty = crate::wire::WireToolCall {
                index: Some(index),
                id: None,
                kind: None,
                function: None,
            };
            self.push_call(index, &empty, &mut out);
        }
        self.close(&mut out);
        let called = !self.calls.is_empty();
        let (input, output, cached) = self.usage.unwrap_or((input_tokens, 0, None));
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(StopReason::from_finish(self.finish.as_deref(), called)),
                stop_sequence: None,
            },
            usage: MessagesUsage {
                input_tokens: if input == 0 { input_tokens } else { input },
                output_tokens: output,
                cache_creation_input_tokens: None,
                cache_read_input_tokens: cached,
            },
        });
        out.push(StreamEvent::MessageStop);
        out
    }
}

/// Folds Messages events into the whole message, as a client does.
#[derive(Debug, Default)]
pub struct MessageBuilder {
    message: Option<MessagesResponse>,
    /// Input JSON text of open tool blocks, by block index.
    json: BTreeMap<usize, String>,
}

impl MessageBuilder {
    /// A builder waiting for `message_start`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one event (events before `message_start` are ignored).
    pub fn apply(&mut self, event: &StreamEvent) {
        if let StreamEvent::MessageStart { message } = event {
            self.message = Some(message.clone());
            return;
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        match event {
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                if *index == message.content.len() {
                    message.content.push(content_block.clone());
                }
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let block = message.content.get_mut(*index);
                match (block, delta) {
                    (Some(ContentBlock::Text { text }), BlockDelta::TextDelta { text: more }) => {
                        text.push_str(more);
                    }
                    (
                        Some(ContentBlock::Thinking { thinking, .. }),
                        BlockDelta::ThinkingDelta { thinking: more },
                    ) => thinking.push_str(more),
                    (
                        Some(ContentBlock::Thinking { signature, .. }),
                        BlockDelta::SignatureDelta { signature: more },
                    ) => signature.push_str(more),
                    (
                        Some(ContentBlock::ToolUse { .. }),
                        BlockDelta::InputJsonDelta { partial_json },
                    ) => {
                        self.json.entry(*index).or_default().push_str(partial_json);
                    }
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let (Some(ContentBlock::ToolUse { input, .. }), Some(text)) =
                    (message.content.get_mut(*index), self.json.remove(index))
                    && !text.trim().is_empty()
                {
                    // Arguments that are not JSON are kept as the text the model wrote.
                    *input = serde_json::from_str(&text).unwrap_or(Value::String(text));
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                message.stop_reason = delta.stop_reason;
                message.stop_sequence = delta.stop_sequence.clone();
                message.usage = usage.clone();
            }
            StreamEvent::MessageStop | StreamEvent::Ping | StreamEvent::Error { .. } => {}
            StreamEvent::MessageStart { .. } => {}
        }
    }

    /// The message so far (`None` before `message_start`).
    pub fn message(&self) -> Option<&MessagesResponse> {
        self.message.as_ref()
    }

    /// The message, consumed.
    pub fn into_message(self) -> Option<MessagesResponse> {
        self.message
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::Role;
    use crate::wire::{ChunkChoice, Delta, WireFunction, WireToolCall, WireUsage};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reads_what_claude_code_sends() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0",
                        "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "You are Claude Code."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "fix it",
                    "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "more rules"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read",
                     "input": {"file_path": "/r/a.py"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": "1\tprint()"}]},
                    {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                    {"type": "mystery_block", "x": 1}]}
            ],
            "tools": [{"name": "Read", "description": "read", "input_schema": {"type": "object"}},
                      {"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "adaptive"}, "context_management": {"edits": []},
            "output_config": {"effort": "high"}, "metadata": {"user_id": "u"}
        });
        let req: MessagesRequest = serde_json::from_value(body).unwrap();
        let (messages, tools) = conversation(&req).unwrap();
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
        assert_eq!(
            messages[0].content.as_deref(),
            Some("x-anthropic-billing-header: cc_version=2.0\nYou are Claude Code.\n\nmore rules")
        );
        assert_eq!(messages[2].reasoning.as_deref(), Some("hm"));
        assert_eq!(messages[2].tool_calls[0].name, "Read");
        assert_eq!(
            messages[2].tool_calls[0].arguments,
            r#"{"file_path":"/r/a.py"}"#
        );
        assert_eq!(messages[3].name.as_deref(), Some("Read"));
        assert_eq!(messages[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(messages[3].content.as_deref(), Some("1\tprint()"));
        assert_eq!(tools.len(), 1, "server tools are left out");
        let chat = chat_request(&req, "m", &messages, &tools, &Sampling::default());
        assert!(chat.stream);
        assert_eq!(chat.max_tokens, Some(32000));
        assert_eq!(chat.tools.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn events_serialise_as_anthropic_sends_them() {
        let start = StreamEvent::MessageStart {
            message: MessagesResponse::empty("msg_1", "m", 12),
        };
        let v = serde_json::to_value(&start).unwrap();
        assert_eq!(v["type"], "message_start");
        assert_eq!(v["message"]["usage"]["input_tokens"], 12);
        assert_eq!(v["message"]["stop_reason"], Value::Null);
        assert!(start.to_sse().starts_with("event: message_start\ndata: {"));
        let delta = StreamEvent::ContentBlockDelta {
            index: 1,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{\"a".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"a"}})
        );
        let err = serde_json::to_value(ErrorResponse::new(404, "no")).unwrap();
        assert_eq!(
            err,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "no"}})
        );
    }

    /// A reply an upstream streams: reasoning, text and calls (name, arguments object).
    #[derive(Debug, Clone)]
    struct Scripted {
        reasoning: String,
        text: String,
        calls: Vec<(String, Value)>,
    }

    fn chunk(delta: Delta, finish: Option<&str>, usage: Option<WireUsage>) -> ChatChunk {
        ChatChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            created: 0,
            model: "m".into(),
            choices: if usage.is_some() {
                Vec::new()
            } else {
                vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs: None,
                    finish_reason: finish.map(str::to_string),
                }]
            },
            usage,
        }
    }

    /// `text` cut at the char positions `cuts` (taken modulo its length).
    fn pieces(text: &str, cuts: &[usize]) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut at: Vec<usize> = cuts
            .iter()
            .map(|c| c % (chars.len() + 1))
            .chain([0, chars.len()])
            .collect();
        at.sort_unstable();
        at.dedup();
        at.windows(2)
            .map(|w| chars[w[0]..w[1]].iter().collect())
            .filter(|s: &String| !s.is_empty())
            .collect()
    }

    fn chunks_of(s: &Scripted, cuts: &[usize]) -> Vec<ChatChunk> {
        // A chunk that only adds to the message (no finish reason, no usage).
        let adding = |delta: Delta| chunk(delta, None, None);
        let mut out = vec![adding(Delta {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            ..Delta::default()
        })];
        for piece in pieces(&s.reasoning, cuts) {
            out.push(adding(Delta {
                reasoning_content: Some(piece),
                ..Delta::default()
            }));
        }
        for piece in pieces(&s.text, cuts) {
            out.push(adding(Delta {
                content: Some(piece),
                ..Delta::default()
            }));
        }
        for (i, (name, args)) in s.calls.iter().enumerate() {
            let args = args.to_string();
            let parts = pieces(&args, cuts);
            for (j, part) in parts.iter().enumerate() {
                let call = WireToolCall {
                    index: Some(i),
                    id: (j == 0).then(|| format!("call_{i}")),
                    kind: (j == 0).then(|| "function".into()),
                    function: Some(WireFunction {
                        name: (j == 0).then(|| name.clone()),
                        arguments: Some(Value::String(part.clone())),
                    }),
                };
                out.push(adding(Delta {
                    tool_calls: vec![call],
                    ..Delta::default()
                }));
            }
        }
        let finish = if s.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        out.push(chunk(Delta::default(), Some(finish), None));
        out.push(chunk(
            Delta::default(),
            None,
            Some(WireUsage {
                prompt_tokens: Some(7),
                completion_tokens: Some(5),
                ..WireUsage::default()
            }),
        ));
        out
    }

    fn translate(chunks: &[ChatChunk]) -> (Vec<StreamEvent>, MessagesResponse) {
        let mut stream = MessageStream::new("msg_t");
        let mut events = vec![StreamEvent::MessageStart {
            message: MessagesResponse::empty("msg_t", "m", 0),
        }];
        for c in chunks {
            events.extend(stream.push(c));
        }
        events.extend(stream.finish(0));
        let mut builder = MessageBuilder::new();
        for e in &events {
            builder.apply(e);
        }
        (events, builder.into_message().unwrap())
    }

    fn scripted() -> impl Strategy<Value = Scripted> {
        let args = prop::collection::btree_map("[a-z_]{1,8}", "[ -~é漢]{0,40}", 0..4)
            .prop_map(|m| json!(m));
        (
            "[ -~é漢\n]{0,60}",
            "[ -~é漢\n]{0,80}",
            prop::collection::vec(("[a-z_]{1,12}", args), 0..3),
        )
            .prop_map(|(reasoning, text, calls)| Scripted {
                reasoning,
                text,
                calls,
            })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_message(
            s in scripted(),
            cuts in prop::collection::vec(0usize..200, 0..12),
        ) {
            let (_, whole) = translate(&chunks_of(&s, &[]));
            let (events, cut) = translate(&chunks_of(&s, &cuts));
            prop_assert_eq!(&cut, &whole);
            // And the whole message is the scripted one.
            let mut expected = Vec::new();
            if !s.reasoning.is_empty() {
                expected.push(ContentBlock::Thinking { thinking: s.reasoning.clone(), signature: String::new() });
            }
            if !s.text.is_empty() {
                expected.push(ContentBlock::text(s.text.clone()));
            }
            for (i, (name, args)) in s.calls.iter().enumerate() {
                expected.push(ContentBlock::ToolUse { id: format!("call_{i}"), name: name.clone(), input: args.clone() });
            }
            prop_assert_eq!(&whole.content, &expected);
            let stop = if s.calls.is_empty() { StopReason::EndTurn } else { StopReason::ToolUse };
            prop_assert_eq!(whole.stop_reason, Some(stop));
            prop_assert_eq!(whole.usage.output_tokens, 5);
            // Every opened block is closed, in order, before the message ends.
            let starts = events.iter().filter(|e| matches!(e, StreamEvent::ContentBlockStart { .. })).count();
            let stops = events.iter().filter(|e| matches!(e, StreamEvent::ContentBlockStop { .. })).count();
            prop_assert_eq!(starts, expected.len());
            prop_assert_eq!(stops, expected.len());
            prop_assert_eq!(events.last(), Some(&StreamEvent::MessageStop));
        }
    }

    #[test]
    fn a_call_without_an_id_or_a_name_at_first_still_gets_a_block() {
        let call = |id: Option<&str>, name: Option<&str>, args: &str| {
            chunk(
                Delta {
                    tool_calls: vec![WireToolCall {
                        index: Some(0),
                        id: id.map(str::to_string),
                        kind: None,
                        function: Some(WireFunction {
                            name: name.map(str::to_string),
                            arguments: Some(Value::String(args.into())),
                        }),
                    }],
                    ..Delta::default()
                },
                None,
                None,
            )
        };
        let (_, message) = translate(&[
            call(None, None, "{\"a\""),
            call(None, Some("bash"), ":1}"),
            chunk(Delta::default(), Some("stop"), None),
        ]);
        assert_eq!(
            message.content,
            vec![ContentBlock::ToolUse {
                id: "toolu_msg_t_0".into(),
                name: "bash".into(),
                input: json!({"a": 1})
            }]
        );
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
    }
}
