//! An OpenAI-compatible HTTP server over a [`LocalTeacher`]: `POST /v1/chat/completions`
//! (tools, streaming and not, usage) and `GET /v1/models`. Requests share one model
//! context, so they wait in the teacher's queue; none is rejected for being concurrent.
//! A request whose client disconnects is dropped at once, streamed or not: its generation
//! stops, or never starts if it was still waiting in the queue.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use trajforge_chat::wire::{
    ChatChunk, ChatRequest, ChatResponse, Choice, Content, Delta, ErrorBody, PromptTokensDetails,
    WireMessage, WireTool, WireToolCall, WireToolChoice, WireUsage,
};
use trajforge_teacher::{ChatMessage, Role, Sampling, ToolCall, ToolSpec};

use crate::engine::Event;
use crate::error::LocalError;
use crate::grammar::ToolChoice;
use crate::messages::{Backend, MessagesOptions, MessagesState};
use crate::teacher::{LocalTeacher, Reply};

/// Largest request body `serve` accepts by default (32 MiB); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Bytes of an oversize body read and thrown away so that its client, still sending, gets
/// the 413 rather than a reset connection; past this the connection is dropped instead.
const MAX_DRAIN_BYTES: u64 = 1 << 30;

/// Settings of [`serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Model id announced by `/v1/models` and echoed in responses (default: the teacher's).
    pub model_name: Option<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            model_name: None,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// `next`, unless the receiver of `downstream` goes away first (the client disconnected):
/// then `None`, and the task forwarding to it stops and drops what feeds it, down to the
/// model's job or the upstream request.
pub(crate) async fn unless_gone<T, F: Future>(
    downstream: &mpsc::Sender<T>,
    next: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = downstream.closed() => None,
        out = next => Some(out),
    }
}

/// Resolves when the process receives Ctrl-C (SIGINT), for `serve`'s shutdown argument.
pub async fn wait_for_ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler could be installed: never resolve rather than stop at once.
        std::future::pending::<()>().await;
    }
}

pub(crate) struct ServerState {
    pub(crate) backend: Backend,
    pub(crate) model: String,
    pub(crate) max_body: usize,
    pub(crate) next_id: AtomicU64,
    pub(crate) messages: MessagesState,
}

/// Serve `teacher` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    teacher: Arc<LocalTeacher>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalError> {
    serve_backend(
        listener,
        Backend::Local(teacher),
        options,
        MessagesOptions::default(),
        shutdown,
    )
    .await
}

/// Serve `backend` on `listener` until `shutdown` resolves: OpenAI chat completions (the
/// embedded model only) and Anthropic's Messages API (both backends).
pub async fn serve_backend(
    listener: TcpListener,
    backend: Backend,
    options: ServeOptions,
    messages: MessagesOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalError> {
    let state = Arc::new(ServerState {
        model: options.model_name.unwrap_or_else(|| backend.model_name()),
        backend,
        max_body: options.max_body_bytes,
        next_id: AtomicU64::new(1),
        messages: MessagesState::new(messages),
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and similar: wait a moment instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&state)));
            // Errors here are client disconnects and protocol garbage; nothing to report.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A whole JSON body or a server-sent event stream.
pub(crate) enum ServerBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ServerBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ServerBody::Stream(rx) => rx.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ServerBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServerBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ServerBody::Full(None) => SizeHint::with_exact(0),
            ServerBody::Stream(_) => SizeHint::default(),
        }
    }
}

pub(crate) type Resp = Response<ServerBody>;

pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Resp {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut resp = Response::new(ServerBody::Full(Some(Bytes::from(text))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(status: StatusCode, message: &str, code: Option<&str>) -> Resp {
    let kind = if status.is_server_error() {
        "server_error"
    } else if status == StatusCode::NOT_FOUND {
        "not_found_error"
    } else {
        "invalid_request_error"
    };
    json_response(status, &ErrorBody::new(message, kind, code))
}

/// HTTP status and error code for a failure of the teacher.
pub(crate) fn classify(err: &LocalError) -> (StatusCode, Option<&'static str>) {
    match err {
        LocalError::ContextOverflow { .. } => {
            (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
        }
        LocalError::InvalidRequest(_) | LocalError::Template { .. } => {
            (StatusCode::BAD_REQUEST, None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

async fn handle(req: Request<Incoming>, state: Arc<ServerState>) -> Result<Resp, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/v1/models" | "/models") => json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{
                "id": state.model, "object": "model", "created": 0, "owned_by": "trajforge"
            }]}),
        ),
        (&Method::GET, "/health" | "/v1/health") => {
            json_response(StatusCode::OK, &json!({"status": "ok"}))
        }
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => chat(req, &state).await,
        (&Method::POST, "/v1/messages" | "/messages") => {
            crate::messages::handle(req, &state, false).await
        }
        (&Method::POST, "/v1/messages/count_tokens" | "/messages/count_tokens") => {
            crate::messages::handle(req, &state, true).await
        }
        (_, "/v1/messages" | "/messages" | "/v1/messages/count_tokens") => crate::messages::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {} is not allowed on {path}", req.method()),
        ),
        (_, "/v1/models" | "/models" | "/v1/chat/completions" | "/chat/completions") => {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("method {} is not allowed on {path}", req.method()),
                None,
            )
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "no route {path}; this server offers POST /v1/chat/completions, POST /v1/messages, \
                 POST /v1/messages/count_tokens and GET /v1/models"
            ),
            None,
        ),
    };
    Ok(resp)
}

/// A parsed chat-completions request.
pub(crate) struct ChatRequestIn {
    messages: Vec<ChatMessage>,
    tools: Vec<ToolSpec>,
    tool_choice: ToolChoice,
    sampling: Sampling,
    stream: bool,
    include_usage: bool,
    parallel_tool_calls: bool,
}

/// The request body, at most `max` bytes; the status and message of the failure otherwise.
/// An oversize body is read to its end without being kept (up to [`MAX_DRAIN_BYTES`]), so
/// the client, which is still sending, reads the 413 instead of a reset connection.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    max: usize,
) -> Result<Bytes, (StatusCode, String)> {
    let too_large = |size: String| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {size} bytes is over this server's limit of {max} bytes ({} MiB)",
                max >> 20
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = max as u64;
    if let Some(n) = declared.filter(|&n| n > limit.saturating_add(MAX_DRAIN_BYTES)) {
        return Err(too_large(n.to_string()));
    }
    let mut body = req.into_body();
    let mut kept = Vec::with_capacity(declared.map_or(0, |n| n.min(limit) as usize));
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| (StatusCode::BAD_REQUEST, format!("cannot read body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if !kept.is_empty() {
            kept = Vec::new();
        }
        if seen > limit.saturating_add(MAX_DRAIN_BYTES) {
            return Err(too_large(format!("more than {seen}")));
        }
    }
    if seen > limit {
        return Err(too_large(seen.to_string()));
    }
    Ok(Bytes::from(kept))
}

async fn chat(req: Request<Incoming>, state: &ServerState) -> Resp {
    let Backend::Local(teacher) = &state.backend else {
        return error_response(
            StatusCode::NOT_FOUND,
            "this server passes POST /v1/messages on to an upstream; call the upstream for chat completions",
            None,
        );
    };
    let body = match read_body(req, state.max_body).await {
        Ok(body) => body,
        Err((status, message)) => {
            let code = (status == StatusCode::PAYLOAD_TOO_LARGE).then_some("request_too_large");
            return error_response(status, &message, code);
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("request body is not valid JSON: {e}"),
                None,
            );
        }
    };
    let request = match parse_request(&value, &teacher.options().sampling) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e.to_string(), None),
    };
    let id = format!(
        "chatcmpl-{}-{}",
        state.next_id.fetch_add(1, Ordering::Relaxed),
        unix_time()
    );
    if request.stream {
        let include_usage = request.include_usage;
        let mut chunks = match local_chunks(teacher, &request, id, state.model.clone()).await {
            Ok(rx) => rx,
            Err(f) => return error_response(f.status, &f.message, f.code),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            while let Some(next) = unless_gone(&tx, chunks.recv()).await {
                let Some(item) = next else {
                    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                    return;
                };
                let text = match item {
                    // The usage chunk only when the client asked for it.
                    Ok(c) if c.usage.is_some() && !include_usage => continue,
                    Ok(chunk) => serde_json::to_string(&chunk),
                    Err(f) => {
                        let kind = if f.code.is_some() {
                            "invalid_request_error"
                        } else {
                            "server_error"
                        };
                        serde_json::to_string(&ErrorBody::new(f.message, kind, f.code))
                    }
                };
                let event = Bytes::from(format!("data: {}\n\n", text.unwrap_or_default()));
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        return sse_response(rx);
    }
    let sampling = teacher.sampling_params(&request.sampling);
    let mut started = match teacher.start(
        &request.messages,
        &request.tools,
        &request.tool_choice,
        request.parallel_tool_calls,
        sampling,
        false,
    ) {
        Ok(s) => s,
        Err(e) => {
            let (status, code) = classify(&e);
            return error_response(status, &e.to_string(), code);
        }
    };
    let generation = loop {
        match started.events.recv().await {
            Some(Event::Done(result)) => break result,
            Some(Event::Text(_)) => {}
            None => break Err(LocalError::WorkerGone),
        }
    };
    match generation {
        Ok(g) => {
            let reply = teacher.finish(g, started.tools_enabled);
            json_response(StatusCode::OK, &completion_of(&id, &state.model, &reply))
        }
        Err(e) => {
            let (status, code) = classify(&e);
            error_response(status, &e.to_string(), code)
        }
    }
}

/// Why a generation could not start or went wrong: HTTP status, message, OpenAI error code.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) code: Option<&'static str>,
}

impl Failure {
    pub(crate) fn of(err: &LocalError) -> Self {
        let (status, code) = classify(err);
        Self {
            status,
            message: err.to_string(),
            code,
        }
    }
}

/// What a streamed generation sends: chunks, or the error that ended it.
pub(crate) type ChunkItem = Result<ChatChunk, Failure>;

/// Start a streamed generation of `request` on the embedded model and return its chunks as
/// they come (the usage chunk last). Waits for the first event, so an error (context
/// overflow) is returned here with its status instead of inside a 200 stream.
pub(crate) async fn local_chunks(
    teacher: &Arc<LocalTeacher>,
    request: &ChatRequestIn,
    id: String,
    model: String,
) -> Result<mpsc::Receiver<ChunkItem>, Failure> {
    let sampling = teacher.sampling_params(&request.sampling);
    let mut started = teacher
        .start(
            &request.messages,
            &request.tools,
            &request.tool_choice,
            request.parallel_tool_calls,
            sampling,
            true,
        )
        .map_err(|e| Failure::of(&e))?;
    let first = match started.events.recv().await {
        Some(Event::Done(Err(e))) => return Err(Failure::of(&e)),
        Some(event) => event,
        None => return Err(Failure::of(&LocalError::WorkerGone)),
    };
    let (tx, rx) = mpsc::channel::<ChunkItem>(64);
    let pump = StreamPump {
        id,
        model,
        created: unix_time(),
        tools_enabled: started.tools_enabled,
        tx,
    };
    tokio::spawn(pump.run(first, started.events, Arc::clone(teacher)));
    Ok(rx)
}

/// A 200 server-sent event stream of the bytes `rx` yields.
pub(crate) fn sse_response(rx: mpsc::Receiver<Bytes>) -> Resp {
    let mut resp = Response::new(ServerBody::Stream(rx));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Valid calls go to `tool_calls`; when some call is malformed (cut by max_tokens) the raw
/// text goes to `content` so the client sees what the model wrote.
fn split_reply(reply: &Reply) -> (Option<String>, Vec<&ToolCall>) {
    let valid: Vec<&ToolCall> = reply
        .message
        .tool_calls
        .iter()
        .filter(|c| !c.is_malformed())
        .collect();
    let content = if valid.len() == reply.message.tool_calls.len() {
        reply.message.content.clone()
    } else {
        Some(reply.generation.text.clone())
    };
    (content, valid)
}

fn usage_of(reply: &Reply) -> WireUsage {
    let g = &reply.generation;
    WireUsage {
        prompt_tokens: Some(g.prompt_tokens as u64),
        completion_tokens: Some(g.completion_tokens as u64),
        total_tokens: Some((g.prompt_tokens + g.completion_tokens) as u64),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(g.prompt_reused as u64),
        }),
    }
}

fn completion_of(id: &str, model: &str, reply: &Reply) -> ChatResponse {
    let (content, calls) = split_reply(reply);
    let message = WireMessage {
        content: content.map(Content::Text),
        tool_calls: calls.into_iter().map(WireToolCall::from_call).collect(),
        ..WireMessage::text(Role::Assistant, "")
    };
    ChatResponse {
        id: id.to_string(),
        object: "chat.completion".into(),
        created: unix_time(),
        model: model.to_string(),
        choices: Some(vec![Choice {
            index: 0,
            message: Some(message),
            logprobs: None,
            finish_reason: Some(reply.finish_reason.to_string()),
        }]),
        usage: Some(usage_of(reply)),
    }
}

/// Turns engine events into SSE chunks.
struct StreamPump {
    id: String,
    model: String,
    created: u64,
    tools_enabled: bool,
    tx: mpsc::Sender<ChunkItem>,
}

/// What the streamed text has turned out to be.
#[derive(PartialEq)]
enum Shape {
    /// Tools are offered and nothing visible was generated yet.
    Undecided,
    /// Plain text: stream it as it comes.
    Content,
    /// Tool calls: sent whole at the end, once they are parsed.
    Calls,
}

impl StreamPump {
    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk::single(&self.id, &self.model, self.created, delta, finish)
    }

    /// A chunk adding `text` to the content.
    fn text(&self, text: String) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    /// Send one chunk; false when the client has gone.
    async fn send(&self, chunk: ChatChunk) -> bool {
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    async fn run(
        self,
        first: Event,
        mut events: mpsc::UnboundedReceiver<Event>,
        teacher: Arc<LocalTeacher>,
    ) {
        if !self
            .send(self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ))
            .await
        {
            return;
        }
        let mut shape = if self.tools_enabled {
            Shape::Undecided
        } else {
            Shape::Content
        };
        let mut held = String::new();
        let mut next = Some(first);
        let result = loop {
            let event = match next.take() {
                Some(e) => e,
                // Tool calls are held back until they are whole: watch the client meanwhile,
                // so the model stops when it leaves rather than at the next send.
                None => match unless_gone(&self.tx, events.recv()).await {
                    None => return,
                    Some(Some(e)) => e,
                    Some(None) => break Err(LocalError::WorkerGone),
                },
            };
            match event {
                Event::Text(text) => {
                    if shape == Shape::Undecided {
                        held.push_str(&text);
                        let visible = held.trim_start();
                        if visible.is_empty() {
                            continue;
                        }
                        // The grammar forbids messages starting with '<': this is a call.
                        shape = if visible.starts_with('<') {
                            Shape::Calls
                        } else {
                            Shape::Content
                        };
                        if shape == Shape::Content {
                            let text = std::mem::take(&mut held);
                            if !self.send(self.text(text)).await {
                                return;
                            }
                        }
                    } else if shape == Shape::Content && !self.send(self.text(text)).await {
                        return;
                    }
                }
                Event::Done(result) => break result,
            }
        };
        match result {
            Ok(generation) => {
                let reply = teacher.finish(generation, self.tools_enabled);
                let (content, calls) = split_reply(&reply);
                if shape != Shape::Content
                    && let Some(text) = content.filter(|t| !t.is_empty())
                {
                    // Text that was held back (calls that turned out malformed, or blank
                    // output) is sent now.
                    if !self.send(self.text(text)).await {
                        return;
                    }
                }
                for (index, call) in calls.into_iter().enumerate() {
                    let delta = Delta {
                        tool_calls: vec![WireToolCall {
                            index: Some(index),
                            ..WireToolCall::from_call(call)
                        }],
                        ..Delta::default()
                    };
                    if !self.send(self.chunk(delta, None)).await {
                        return;
                    }
                }
                if !self
                    .send(self.chunk(Delta::default(), Some(reply.finish_reason)))
                    .await
                {
                    return;
                }
                let mut usage = self.chunk(Delta::default(), None);
                usage.choices.clear();
                usage.usage = Some(usage_of(&reply));
                let _ = self.send(usage).await;
            }
            Err(e) => {
                let _ = self.tx.send(Err(Failure::of(&e))).await;
            }
        }
    }
}

/// Why a request is answered with 400.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The body does not have the shape of a chat-completions request.
    #[error("invalid request body: {0}")]
    Shape(#[source] serde_json::Error),
    /// A field has a value this server does not accept.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::Invalid(message.into())
}

/// Parse an OpenAI chat-completions body.
fn parse_request(body: &Value, defaults: &Sampling) -> Result<ChatRequestIn, RequestError> {
    if !body.is_object() {
        return Err(invalid("request body must be a JSON object"));
    }
    let wire: ChatRequest = serde_json::from_value(body.clone()).map_err(RequestError::Shape)?;
    parse_wire(wire, defaults)
}

/// Check a chat-completions request and resolve its sampling over `defaults`.
pub(crate) fn parse_wire(
    wire: ChatRequest,
    defaults: &Sampling,
) -> Result<ChatRequestIn, RequestError> {
    if wire.messages.is_empty() {
        return Err(invalid("\"messages\" must not be empty"));
    }
    let mut messages = Vec::with_capacity(wire.messages.len());
    for (i, m) in wire.messages.iter().enumerate() {
        let msg =
            parse_message(m, &messages).map_err(|e| invalid(format!("messages[{i}]: {e}")))?;
        messages.push(msg);
    }
    let tools = wire
        .tools
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| parse_tool(t).map_err(|e| invalid(format!("tools[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = match &wire.tool_choice {
        None => ToolChoice::Auto,
        Some(WireToolChoice::Mode(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(invalid(format!("unknown tool_choice {other:?}"))),
        },
        Some(WireToolChoice::Function { function }) => ToolChoice::Function(function.name.clone()),
    };
    if let ToolChoice::Function(name) = &tool_choice
        && !tools.iter().any(|t| &t.name == name)
    {
        return Err(invalid(format!(
            "tool_choice names {name:?}, which is not in \"tools\""
        )));
    }
    if tool_choice == ToolChoice::Required && tools.is_empty() {
        return Err(invalid("tool_choice \"required\" needs \"tools\""));
    }
    if wire.n.is_some_and(|n| n != 1) {
        return Err(invalid("only n = 1 is supported"));
    }

    let mut sampling = defaults.clone();
    if let Some(t) = wire.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid("\"temperature\" must be between 0 and 2"));
        }
        sampling.temperature = t;
    }
    if let Some(p) = wire.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid("\"top_p\" must be in (0, 1]"));
        }
        sampling.top_p = Some(p);
    }
    for (key, value) in [
        ("max_completion_tokens", wire.max_completion_tokens),
        ("max_tokens", wire.max_tokens),
    ] {
        if let Some(n) = value {
            if n < 1 {
                return Err(invalid(format!("\"{key}\" must be a positive integer")));
            }
            sampling.max_tokens = Some(u32::try_from(n).unwrap_or(u32::MAX));
            break;
        }
    }
    if let Some(seed) = &wire.seed {
        let seed = seed
            .as_u64()
            .or_else(|| seed.as_i64().map(|s| s as u64))
            .ok_or_else(|| invalid("\"seed\" must be an integer"))?;
        sampling.seed = Some(seed);
    }
    sampling.stop = match wire.stop {
        None => defaults.stop.clone(),
        Some(stop) => stop.into_vec(),
    };
    Ok(ChatRequestIn {
        // Off unless asked for: unlike OpenAI's default, because a small model asked for
        // parallel calls keeps emitting them until max_tokens cuts the last one.
        parallel_tool_calls: wire.parallel_tool_calls.unwrap_or(false),
        messages,
        tools,
        tool_choice,
        sampling,
        stream: wire.stream,
        include_usage: wire.stream_options.is_some_and(|o| o.include_usage),
    })
}

/// Text of a `content` field: a string, null, or a list of text parts.
fn content_text(content: Option<&Content>) -> Result<Option<String>, RequestError> {
    match content {
        None | Some(Content::Other(Value::Null)) => Ok(None),
        Some(Content::Text(s)) => Ok(Some(s.clone())),
        Some(Content::Parts(parts)) => {
            let mut out = String::new();
            for part in parts {
                match (part.kind.as_deref(), &part.text) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some(kind), _) if kind != "text" => {
                        return Err(invalid(format!(
                            "content part type {kind:?} is not supported (text only)"
                        )));
                    }
                    _ => return Err(invalid("content parts need \"type\" and \"text\"")),
                }
            }
            Ok(Some(out))
        }
        Some(Content::Other(_)) => Err(invalid(
            "\"content\" must be a string, null or an array of parts",
        )),
    }
}

fn parse_message(m: &WireMessage, earlier: &[ChatMessage]) -> Result<ChatMessage, RequestError> {
    let role = m.role.ok_or_else(|| invalid("missing \"role\""))?;
    let content = content_text(m.content.as_ref())?;
    let mut msg = ChatMessage::assistant(content, Vec::new());
    msg.role = role;
    if role == Role::Assistant {
        for (i, call) in m.tool_calls.iter().enumerate() {
            msg.tool_calls
                .push(parse_call(call).map_err(|e| invalid(format!("tool_calls[{i}]: {e}")))?);
        }
    }
    if role == Role::Tool {
        let id = m.tool_call_id.clone();
        // Clients often omit the tool name on results; recover it from the call it answers.
        let name = m.name.clone().or_else(|| {
            let id = id.as_deref()?;
            earlier
                .iter()
                .flat_map(|m| &m.tool_calls)
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
        });
        msg.tool_call_id = id;
        msg.name = name;
    } else if role != Role::Assistant && msg.content.is_none() {
        return Err(invalid("\"content\" is required for this role"));
    }
    Ok(msg)
}

fn parse_call(call: &WireToolCall) -> Result<ToolCall, RequestError> {
    let function = call
        .function
        .as_ref()
        .ok_or_else(|| invalid("missing \"function\""))?;
    let name = function
        .name
        .as_deref()
        .ok_or_else(|| invalid("missing function.name"))?;
    let arguments = match &function.arguments {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let id = call.id.clone().unwrap_or_default();
    Ok(ToolCall::new(id, name, arguments))
}

fn parse_tool(t: &WireTool) -> Result<ToolSpec, RequestError> {
    if let Some(kind) = t.kind.as_deref()
        && kind != "function"
    {
        return Err(invalid(format!(
            "tool type {kind:?} is not supported (function only)"
        )));
    }
    let function = &t.function;
    if function.name.is_empty() {
        return Err(invalid("missing function.name"));
    }
    let parameters = match &function.parameters {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(invalid("function.parameters must be an object")),
    };
    Ok(ToolSpec {
        name: function.name.clone(),
        description: function.description.clone().unwrap_or_default(),
        parameters,
    })
}

#[cfg(test)]
#[path = "server_fuzz.rs"]
mod fuzz;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_request() {
        let body = json!({
            "model": "x",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a.py"}
            ],
            "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "temperature": 0.2, "max_tokens": 7, "seed": 3,
            "stop": "END", "stream": true, "stream_options": {"include_usage": true}
        });
        let r = parse_request(&body, &Sampling::default()).unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[1].content.as_deref(), Some("hi"));
        assert_eq!(r.messages[3].name.as_deref(), Some("bash"));
        assert_eq!(r.tool_choice, ToolChoice::Required);
        assert_eq!(r.sampling.max_tokens, Some(7));
        assert_eq!(r.sampling.stop, vec!["END".to_string()]);
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn rejects_bad_requests() {
        let bad = [
            json!([]),
            json!({"messages": []}),
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        ];
        for body in bad {
            assert!(
                parse_request(&body, &Sampling::default()).is_err(),
                "{body}"
            );
        }
    }
}
