//! Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) in front
//! of the embedded model or of an OpenAI-compatible upstream. A request is translated into a
//! streamed chat completion (`trajforge_chat::anthropic`), and the completion's chunks into
//! Messages events as they arrive; a request without `stream` gets the events folded into
//! the whole message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tokio::sync::mpsc;
use trajforge_chat::anthropic::{
    CountTokensResponse, ErrorResponse, MessageBuilder, MessageStream, MessagesRequest,
    MessagesResponse, StreamEvent, chat_request, conversation,
};
use trajforge_chat::wire::ChatChunk;
use trajforge_teacher::{ChatMessage, OpenAiTeacher, Role, ToolSpec};
use trajforge_teacher::{Sampling, TeacherError};

use crate::error::LocalError;
use crate::server::{
    ChunkItem, Failure, Resp, ServerState, json_response, local_chunks, parse_wire, read_body,
    sse_response, unless_gone,
};
use crate::teacher::LocalTeacher;
use crate::trained::{
    Plan, ToolsMode, Trained, Turn, issued_chunks, strip_billing_line, translate_stream,
};

/// Counts the prompt tokens of a conversation for an upstream model (its tokenizer and chat
/// template, as `trajforge export --tokenizer` counts them).
pub trait TokenCounter: Send + Sync {
    /// Tokens of the prompt the upstream renders for `messages` and `tools`.
    fn count(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<u64, CountError>;
}

/// Why a count failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot count tokens: {0}")]
pub struct CountError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where requests go.
pub enum Backend {
    /// The embedded model.
    Local(Arc<LocalTeacher>),
    /// An OpenAI-compatible server, with the tokenizer of its model when known.
    Upstream {
        /// The client (its model name and sampling defaults apply).
        client: Arc<OpenAiTeacher>,
        /// Exact prompt counts; without it `count_tokens` estimates.
        counter: Option<Arc<dyn TokenCounter>>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(t) => f.debug_tuple("Local").field(t).finish(),
            Backend::Upstream { client, counter } => f
                .debug_struct("Upstream")
                .field("client", client)
                .field("counter", &counter.is_some())
                .finish(),
        }
    }
}

impl Backend {
    /// The model name announced by default.
    pub fn model_name(&self) -> String {
        match self {
            Backend::Local(t) => t.model_name().to_string(),
            Backend::Upstream { client, .. } => client.config().model.clone(),
        }
    }

    fn sampling(&self) -> Sampling {
        match self {
            Backend::Local(t) => t.options().sampling.clone(),
            Backend::Upstream { client, .. } => client.config().sampling.clone(),
        }
    }

    /// Prompt tokens of `messages` and `tools`. Without a tokenizer for an upstream this is
    /// an estimate (UTF-8 bytes / 3, above what BPE tokenizers give for code and prose, so a
    /// client compacts early rather than overflowing).
    async fn count(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<u64, Failure> {
        match self {
            Backend::Local(t) => t
                .count_tokens(messages, tools)
                .await
                .map(|n| n as u64)
                .map_err(|e| Failure::of(&e)),
            Backend::Upstream {
                counter: Some(counter),
                ..
            } => counter.count(messages, tools).map_err(|e| Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: e.to_string(),
                code: None,
            }),
            Backend::Upstream { counter: None, .. } => {
                let bytes: usize = messages
                    .iter()
                    .map(|m| {
                        m.content.as_deref().map_or(0, str::len)
                            + m.tool_calls
                                .iter()
                                .map(|c| c.name.len() + c.arguments.len())
                                .sum::<usize>()
                            + 8
                    })
                    .chain(tools.iter().map(|t| {
                        t.name.len() + t.description.len() + t.parameters.to_string().len()
                    }))
                    .sum();
                Ok((bytes as u64).div_ceil(3))
            }
        }
    }
}

/// Settings of the Messages endpoint.
#[derive(Debug, Clone, Default)]
pub struct MessagesOptions {
    /// The tools the model sees: Claude Code's, or the ones it was trained on.
    pub tools: ToolsMode,
    /// Largest `max_tokens` passed on (Claude Code asks for 128,000; servers refuse more than
    /// their context leaves, and the refusal would read as a prompt too long).
    pub max_output_tokens: Option<u64>,
}

/// The endpoint's state shared by requests.
pub(crate) struct MessagesState {
    /// Message ids are this prefix and a counter: unique across restarts too.
    id_base: String,
    next_id: AtomicU64,
    trained: Option<Arc<Trained>>,
    max_output_tokens: Option<u64>,
}

impl MessagesState {
    pub(crate) fn new(options: MessagesOptions) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            id_base: format!("msg_{:012x}{:05x}", nanos, std::process::id() & 0xfffff),
            next_id: AtomicU64::new(1),
            max_output_tokens: options.max_output_tokens,
            trained: match options.tools {
                ToolsMode::Passthrough => None,
                ToolsMode::Trained(tools) => Some(Arc::new(Trained::new(tools))),
            },
        }
    }

    fn message_id(&self) -> String {
        format!(
            "{}{:06x}",
            self.id_base,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// An error in Anthropic's shape.
pub(crate) fn error(status: StatusCode, message: &str) -> Resp {
    json_response(status, &ErrorResponse::new(status.as_u16(), message))
}

fn failure_response(f: &Failure) -> Resp {
    // Claude Code compacts the conversation when a 400 says the prompt is too long.
    let message = if f.code == Some("context_length_exceeded") {
        format!("prompt is too long: {}", f.message)
    } else {
        f.message.clone()
    };
    error(f.status, &message)
}

/// The failure of an upstream call, with the upstream's status where it gave one.
fn upstream_failure(err: &TeacherError) -> Failure {
    let (status, code) = match err {
        TeacherError::ContextOverflow { .. } => {
            (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
        }
        TeacherError::Status { status, .. } => (
            StatusCode::from_u16(*status)
                .ok()
                .filter(|s| !s.is_success())
                .unwrap_or(StatusCode::BAD_GATEWAY),
            None,
        ),
        TeacherError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, None),
        _ => (StatusCode::BAD_GATEWAY, None),
    };
    Failure {
        status,
        message: format!("upstream: {err}"),
        code,
    }
}

/// Answer `POST /v1/messages` (or `count_tokens` when `count_only`).
pub(crate) async fn handle(req: Request<Incoming>, state: &ServerState, count_only: bool) -> Resp {
    let body = match read_body(req, state.max_body).await {
        Ok(body) => body,
        Err((status, message)) => return error(status, &message),
    };
    let request: MessagesRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {e}"),
            );
        }
    };
    if request.messages.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "messages: at least one message is required",
        );
    }
    let (mut messages, mut tools) = match conversation(&request) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(system) = messages.first_mut().filter(|m| m.role == Role::System) {
        system.content = system.content.as_deref().map(strip_billing_line);
    }
    let mut plan = None;
    // Only agent turns offer tools; Claude Code's side requests (titles, command checks) go
    // to the model as they are.
    let agent_turn = request.tools.as_ref().is_some_and(|t| !t.is_empty());
    if let Some(trained) = state.messages.trained.as_ref().filter(|_| agent_turn) {
        match trained.plan(&request) {
            Plan::Ask(m, t, turn) => {
                (messages, tools) = (m, t);
                plan = Some((Arc::clone(trained), turn));
            }
            Plan::Issue(calls) if !count_only => {
                return respond(state, &request, &messages, &tools, Start::Issue(calls)).await;
            }
            Plan::Issue(_) => {}
        }
    }
    let backend = &state.backend;
    if count_only {
        return match backend.count(&messages, &tools).await {
            Ok(input_tokens) => {
                json_response(StatusCode::OK, &CountTokensResponse { input_tokens })
            }
            Err(f) => failure_response(&f),
        };
    }
    let start = match plan {
        Some((trained, turn)) => Start::Trained(trained, turn),
        None => Start::Model,
    };
    respond(state, &request, &messages, &tools, start).await
}

/// Where the answer comes from.
enum Start {
    /// The model's answer, as it is.
    Model,
    /// The model's answer, its calls translated for Claude Code.
    Trained(Arc<Trained>, Turn),
    /// These Claude Code calls, without asking the model.
    Issue(Vec<(String, serde_json::Value)>),
}

/// Answer with a message, streamed or whole, from `start`.
async fn respond(
    state: &ServerState,
    request: &MessagesRequest,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    start: Start,
) -> Resp {
    let backend = &state.backend;
    let id = state.messages.message_id();
    let model = if request.model.is_empty() {
        state.model.clone()
    } else {
        request.model.clone()
    };
    let upstream_model = match backend {
        Backend::Local(_) => state.model.clone(),
        Backend::Upstream { client, .. } => client.config().model.clone(),
    };
    let mut chat = chat_request(
        request,
        &upstream_model,
        messages,
        tools,
        &backend.sampling(),
    );
    if let (Some(cap), Some(asked)) = (state.messages.max_output_tokens, chat.max_tokens) {
        chat.max_tokens = Some(asked.min(cap));
    }
    // The prompt's size for message_start (the upstream's own count, when it reports one,
    // goes into message_delta). The embedded model counts in its queue, so before the
    // generation; an upstream is asked first and the prompt counted while it answers.
    let count = async { backend.count(messages, tools).await.unwrap_or(0) };
    let (input_tokens, started) = match (&start, backend) {
        (Start::Issue(_), _) => (count.await, Ok(None)),
        (_, Backend::Local(_)) => {
            let n = count.await;
            (n, start_model(backend, chat, &id).await.map(Some))
        }
        (_, Backend::Upstream { .. }) => {
            let (started, n) = tokio::join!(start_model(backend, chat, &id), count);
            (n, started.map(Some))
        }
    };
    let mut chunks = match (start, started) {
        (_, Err(f)) => return failure_response(&f),
        (Start::Issue(calls), _) => {
            let (tx, rx) = mpsc::channel(4);
            for chunk in issued_chunks(None, &calls) {
                let _ = tx.send(Ok(chunk)).await;
            }
            rx
        }
        (Start::Trained(trained, turn), Ok(Some(rx))) => translate_stream(rx, trained, turn),
        (_, Ok(Some(rx))) => rx,
        (_, Ok(None)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "no answer started"),
    };
    let mut translator = MessageStream::new(id.clone());
    let start_event = StreamEvent::MessageStart {
        message: MessagesResponse::empty(id, model, input_tokens),
    };
    if !request.stream {
        let mut builder = MessageBuilder::new();
        builder.apply(&start_event);
        while let Some(item) = chunks.recv().await {
            match item {
                Ok(chunk) => translator
                    .push(&chunk)
                    .iter()
                    .for_each(|e| builder.apply(e)),
                Err(f) => return failure_response(&f),
            }
        }
        translator
            .finish(input_tokens)
            .iter()
            .for_each(|e| builder.apply(e));
        return match builder.into_message() {
            Some(message) => json_response(StatusCode::OK, &message),
            None => error(StatusCode::INTERNAL_SERVER_ERROR, "no message was built"),
        };
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let send = |events: Vec<StreamEvent>| {
            let tx = tx.clone();
            async move {
                for event in events {
                    if tx.send(Bytes::from(event.to_sse())).await.is_err() {
                        return false;
                    }
                }
                true
            }
        };
        if !send(vec![start_event, StreamEvent::Ping]).await {
            return;
        }
        while let Some(next) = unless_gone(&tx, chunks.recv()).await {
            let Some(item) = next else {
                let _ = send(translator.finish(input_tokens)).await;
                return;
            };
            let events = match item {
                Ok(chunk) => translator.push(&chunk),
                Err(f) => {
                    let error = ErrorResponse::new(f.status.as_u16(), f.message).error;
                    let _ = send(vec![StreamEvent::Error { error }]).await;
                    return;
                }
            };
            if !events.is_empty() && !send(events).await {
                return;
            }
        }
    });
    sse_response(rx)
}

/// Start the streamed completion of `chat` on the backend; its chunks arrive on the receiver.
async fn start_model(
    backend: &Backend,
    chat: trajforge_chat::wire::ChatRequest,
    id: &str,
) -> Result<mpsc::Receiver<ChunkItem>, Failure> {
    match backend {
        Backend::Local(teacher) => {
            let sampling = teacher.options().sampling.clone();
            let request = parse_wire(chat, &sampling).map_err(|e| Failure {
                status: StatusCode::BAD_REQUEST,
                message: e.to_string(),
                code: None,
            })?;
            local_chunks(
                teacher,
                &request,
                id.to_string(),
                teacher.model_name().into(),
            )
            .await
        }
        Backend::Upstream { client, .. } => {
            let client = Arc::clone(client);
            let (first_tx, first_rx) = tokio::sync::oneshot::channel();
            let (tx, rx) = mpsc::channel::<ChunkItem>(64);
            // The upstream request lives as long as its client: a client that leaves while it
            // waits for a slot, for the first byte or between chunks drops it (and so closes
            // the upstream connection, which stops the generation there).
            tokio::spawn(async move {
                let mut stream = match unless_gone(&tx, client.stream_chat(&chat)).await {
                    None => return,
                    Some(Ok(s)) => {
                        let _ = first_tx.send(Ok(()));
                        s
                    }
                    Some(Err(e)) => {
                        let _ = first_tx.send(Err(upstream_failure(&e)));
                        return;
                    }
                };
                while let Some(Some(item)) = unless_gone(&tx, stream.next()).await {
                    let item: Result<ChatChunk, Failure> = item.map_err(|e| upstream_failure(&e));
                    let last = item.is_err();
                    if tx.send(item).await.is_err() || last {
                        return;
                    }
                }
            });
            match first_rx.await {
                Ok(Ok(())) => Ok(rx),
                Ok(Err(f)) => Err(f),
                Err(_) => Err(Failure::of(&LocalError::WorkerGone)),
            }
        }
    }
}
