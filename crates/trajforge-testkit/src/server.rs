//! A minimal HTTP/1.1 server on tokio playing a [`Script`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::script::{FakeUsage, Reply, Script, Step};

/// Largest request accepted (prompts of long episodes are big, but not this big).
const MAX_REQUEST_BYTES: usize = 64 << 20;
/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// Server-wide behaviour that applies whatever the script says.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Added before every chat-completions answer (simulates generation time).
    pub latency: Duration,
    /// Requests served at once; requests over the cap wait (simulates a busy server).
    pub max_concurrent: Option<usize>,
    /// Keep every request for [`FakeServer::requests`]; turn off for long benchmarks.
    pub record: bool,
    /// Model name reported when the request names none.
    pub model: String,
    /// Streamed answers (`"stream": true`) send text and arguments in pieces of this many
    /// characters.
    pub stream_piece_chars: usize,
    /// Pause between the events of a streamed answer (simulates generation speed).
    pub stream_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            max_concurrent: None,
            record: true,
            model: "fake-model".to_string(),
            stream_piece_chars: 3,
            stream_interval: Duration::ZERO,
        }
    }
}

impl ServerOptions {
    /// An "instant teacher": fixed latency, a cap on concurrent requests, no recording.
    pub fn instant(latency: Duration, max_concurrent: usize) -> Self {
        Self {
            latency,
            max_concurrent: Some(max_concurrent),
            record: false,
            ..Self::default()
        }
    }
}

/// One HTTP request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Request target, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (a JSON string of the raw text if it was not JSON; null if empty).
    pub body: Value,
}

impl RecordedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Script,
    options: ServerOptions,
    log: Mutex<Vec<RecordedRequest>>,
    cap: Option<Semaphore>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    chat_requests: AtomicUsize,
    connections: AtomicUsize,
    ids: AtomicU64,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking test thread must not hide the requests from the assertions that follow.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts a chat request as in flight until dropped (also when its task is aborted).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A scripted OpenAI-compatible server on 127.0.0.1; shut down when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .field("script", &self.shared.script)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// Start with default options. Panics if no local port can be bound (test support).
    pub async fn start(script: Script) -> Self {
        Self::start_with(script, ServerOptions::default()).await
    }

    /// Start with `options`. Panics if no local port can be bound (test support).
    pub async fn start_with(script: Script, options: ServerOptions) -> Self {
        match Self::try_start(script, options).await {
            Ok(server) => server,
            Err(e) => panic!("trajforge-testkit: cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Start, reporting a bind failure. Must be called inside a tokio runtime.
    pub async fn try_start(script: Script, options: ServerOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script,
            cap: options.max_concurrent.map(|n| Semaphore::new(n.max(1))),
            options,
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            chat_requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            accept_task,
        })
    }

    /// Base URL to give a client, e.g. `http://127.0.0.1:43123/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bodies of every chat-completions request received, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .log()
            .iter()
            .filter(|r| r.path.starts_with("/v1/chat/completions"))
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every request received (any path), with headers.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.log().clone()
    }

    /// Chat-completions requests received (counted even when recording is off).
    pub fn chat_request_count(&self) -> usize {
        self.shared.chat_requests.load(Ordering::SeqCst)
    }

    /// Most chat-completions requests that were open at the same moment.
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (shows whether clients reuse connections).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Steps a sequence script has not used yet (0 for handler scripts).
    pub fn remaining_steps(&self) -> usize {
        self.shared.script.remaining()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

enum Answer {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A 200 event stream; the connection closes after it.
    Stream {
        events: Vec<String>,
        interval: Duration,
    },
    Drop,
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    loop {
        let request = match read_request(&mut stream, &mut buf).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(ReadError::Io) => return,
            Err(ReadError::Reject(status, why)) => {
                let _ = write_response(&mut stream, status, &[], &json_error(why), false).await;
                return;
            }
        };
        let keep_alive = request.keep_alive;
        match answer(request, &shared).await {
            Answer::Respond {
                status,
                headers,
                body,
            } => {
                if write_response(&mut stream, status, &headers, &body, keep_alive)
                    .await
                    .is_err()
                    || !keep_alive
                {
                    return;
                }
            }
            Answer::Stream { events, interval } => {
                let _ = write_stream(&mut stream, &events, interval).await;
                return;
            }
            Answer::Drop => return,
        }
    }
}

async fn write_stream(
    stream: &mut TcpStream,
    events: &[String],
    interval: Duration,
) -> io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    for (i, event) in events.iter().enumerate() {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        stream
            .write_all(format!("data: {event}\n\n").as_bytes())
            .await?;
        stream.flush().await?;
    }
    stream.shutdown().await
}

enum ReadError {
    Io,
    Reject(u16, &'static str),
}

/// Read one request; `Ok(None)` when the client closed the connection between requests.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<Request>, ReadError> {
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ReadError::Reject(431, "request head too large"));
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("").to_string();
    let version = request_line.next().unwrap_or("HTTP/1.1").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Err(ReadError::Reject(
            411,
            "chunked bodies are not supported; send Content-Length",
        ));
    }
    let length = match header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Reject(400, "bad Content-Length"))?,
        None => 0,
    };
    if length > MAX_REQUEST_BYTES {
        return Err(ReadError::Reject(413, "request body too large"));
    }
    let keep_alive = match header("connection") {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version != "HTTP/1.0",
    };
    let total = head_end + 4 + length;
    while buf.len() < total {
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end + 4..total].to_vec();
    buf.drain(..total);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        keep_alive,
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn answer(request: Request, shared: &Shared) -> Answer {
    let body: Value = if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&request.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()))
    };
    let route = request.path.split('?').next().unwrap_or("").to_string();
    let is_chat = request.method == "POST" && route == "/v1/chat/completions";
    if is_chat {
        shared.chat_requests.fetch_add(1, Ordering::SeqCst);
    }
    if shared.options.record {
        shared.log().push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers,
            body: body.clone(),
        });
    }
    match (request.method.as_str(), route.as_str()) {
        ("GET", "/v1/models") => Answer::Respond {
            status: 200,
            headers: Vec::new(),
            body: json!({"object": "list", "data": [
                {"id": shared.options.model, "object": "model", "owned_by": "trajforge-testkit"}
            ]})
            .to_string(),
        },
        _ if is_chat => chat(&body, request.body.len(), shared).await,
        _ => Answer::Respond {
            status: 404,
            headers: Vec::new(),
            body: json_error("no such route"),
        },
    }
}

async fn chat(request: &Value, request_bytes: usize, shared: &Shared) -> Answer {
    let _in_flight = InFlight::enter(shared);
    let _slot = match &shared.cap {
        Some(cap) => cap.acquire().await.ok(),
        None => None,
    };
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }
    let mut step = shared.script.next_step(request);
    while let Step::Delayed(delay, inner) = step {
        tokio::time::sleep(delay).await;
        step = *inner;
    }
    match step {
        Step::Reply(reply) if request["stream"] == true => Answer::Stream {
            events: stream_events(
                &completion_body(&reply, request, request_bytes, shared),
                request["stream_options"]["include_usage"] == true,
                shared.options.stream_piece_chars.max(1),
            ),
            interval: shared.options.stream_interval,
        },
        Step::Reply(reply) => Answer::Respond {
            status: 200,
            headers: Vec::new(),
            body: completion_body(&reply, request, request_bytes, shared).to_string(),
        },
        Step::Http {
            status,
            headers,
            body,
        } => Answer::Respond {
            status,
            headers,
            body,
        },
        Step::DropConnection => Answer::Drop,
        Step::Delayed(..) => Answer::Drop, // unreachable: unwrapped above
    }
}

/// The `data:` payloads of a streamed answer carrying the message of `body`: the role, the
/// reasoning, the text and each call's arguments in pieces of `piece` characters, the finish
/// reason, the usage when asked for, and `[DONE]`.
fn stream_events(body: &Value, include_usage: bool, piece: usize) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": body["id"], "object": "chat.completion.chunk", "created": 0,
               "model": body["model"],
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let pieces = |text: &str| -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(piece).map(|c| c.iter().collect()).collect()
    };
    let message = &body["choices"][0]["message"];
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for (field, value) in [
        ("reasoning_content", &message["reasoning_content"]),
        ("content", &message["content"]),
    ] {
        for p in pieces(value.as_str().unwrap_or("")) {
            events.push(chunk(json!({ field: p }), Value::Null));
        }
    }
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, call) in calls.iter().enumerate() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("");
        let mut parts = pieces(arguments).into_iter();
        let first = parts.next().unwrap_or_default();
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                   "function": {"name": call["function"]["name"], "arguments": first}}]}),
            Value::Null,
        ));
        for p in parts {
            events.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                Value::Null,
            ));
        }
    }
    events.push(chunk(
        json!({}),
        body["choices"][0]["finish_reason"].clone(),
    ));
    if include_usage && !body["usage"].is_null() {
        events.push(
            json!({"id": body["id"], "object": "chat.completion.chunk", "created": 0,
                   "model": body["model"], "choices": [], "usage": body["usage"]})
            .to_string(),
        );
    }
    events.push("[DONE]".to_string());
    events
}

fn completion_body(reply: &Reply, request: &Value, request_bytes: usize, shared: &Shared) -> Value {
    let n = shared.ids.fetch_add(1, Ordering::Relaxed);
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(reply.content));
    if let Some(reasoning) = &reply.reasoning_content {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    let mut generated = reply.content.as_ref().map_or(0, String::len)
        + reply.reasoning_content.as_ref().map_or(0, String::len);
    if !reply.tool_calls.is_empty() {
        let calls: Vec<Value> = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let arguments = call
                    .raw_arguments
                    .clone()
                    .unwrap_or_else(|| call.arguments.to_string());
                generated += call.name.len() + arguments.len();
                json!({
                    "id": format!("call_{n}_{i}"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments},
                })
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = reply.finish_reason.clone().unwrap_or_else(|| {
        if reply.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
        .to_string()
    });
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&shared.options.model);
    let mut body = json!({
        "id": format!("chatcmpl-fake-{n}"),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": Value::Object(message), "finish_reason": finish}],
    });
    let usage = match reply.usage {
        FakeUsage::Estimate => Some((
            (request_bytes / 4).max(1) as u64,
            (generated / 4).max(1) as u64,
        )),
        FakeUsage::Fixed(p, c) => Some((p, c)),
        FakeUsage::Omit => None,
    };
    if let Some((prompt, completion)) = usage {
        body["usage"] = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
    }
    body
}

fn json_error(message: &str) -> String {
    json!({"error": {"message": message}}).to_string()
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Reply;

    /// Send raw bytes and read until the server closes or `responses` answers arrived.
    async fn exchange(server: &FakeServer, raw: &str, responses: usize) -> String {
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(raw.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while String::from_utf8_lossy(&out).matches("HTTP/1.1 ").count() < responses
            || !complete(&String::from_utf8_lossy(&out))
        {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("server answered in time")
                .expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// True when the last response's body has fully arrived.
    fn complete(text: &str) -> bool {
        let Some(start) = text.rfind("HTTP/1.1 ") else {
            return false;
        };
        let last = &text[start..];
        let Some((head, body)) = last.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= length
    }

    fn post(body: &str, extra: &str) -> String {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn models_route_and_unknown_route() {
        let server = FakeServer::start(Script::sequence(vec![])).await;
        let text = exchange(
            &server,
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            1,
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains(r#""id":"fake-model""#), "{text}");
        let text = exchange(
            &server,
            "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n",
            1,
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(server.requests().is_empty());
        assert_eq!(server.recorded().len(), 2);
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let server = FakeServer::start(Script::sequence(vec![
            Step::text("one"),
            Step::status(500, "two"),
        ]))
        .await;
        let raw = format!(
            "{}{}",
            post(r#"{"model":"m","n":1}"#, ""),
            post(r#"{"n":2}"#, "")
        );
        let text = exchange(&server, &raw, 2).await;
        assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
        assert!(text.contains(r#""content":"one""#), "{text}");
        assert!(text.contains(r#""model":"m""#), "{text}");
        assert!(text.contains("HTTP/1.1 500"), "{text}");
        assert_eq!(server.connection_count(), 1);
        let bodies = server.requests();
        assert_eq!(
            bodies,
            vec![
                serde_json::json!({"model":"m","n":1}),
                serde_json::json!({"n":2})
            ]
        );
        // The script is used up: a third request is answered loudly.
        let text = exchange(&server, &post("{}", "Connection: close\r\n"), 1).await;
        assert!(text.contains("script exhausted"), "{text}");
    }

    #[tokio::test]
    async fn handler_answers_from_request_content() {
        let server = FakeServer::start(Script::handler(|req| {
            let who = req["messages"][0]["content"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            Step::Reply(Reply::new().content(format!("hello {who}")).usage(7, 3))
        }))
        .await;
        let text = exchange(
            &server,
            &post(
                r#"{"messages":[{"content":"ada"}]}"#,
                "Connection: close\r\n",
            ),
            1,
        )
        .await;
        assert!(text.contains(r#""content":"hello ada""#), "{text}");
        assert!(text.contains(r#""prompt_tokens":7"#), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }

    #[tokio::test]
    async fn drop_connection_answers_nothing() {
        let server = FakeServer::start(Script::sequence(vec![Step::DropConnection])).await;
        let text = exchange(&server, &post("{}", ""), 1).await;
        assert_eq!(text, "");
        assert_eq!(server.chat_request_count(), 1);
    }

    #[tokio::test]
    async fn instant_mode_caps_concurrency_and_skips_recording() {
        let options = ServerOptions::instant(Duration::from_millis(50), 2);
        let server = FakeServer::start_with(Script::repeat(Step::text("ok")), options).await;
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let addr = server.addr();
            let raw = post("{}", "Connection: close\r\n");
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream.write_all(raw.as_bytes()).await.expect("write");
                let mut out = String::new();
                stream.read_to_string(&mut out).await.expect("read");
                out
            }));
        }
        for task in tasks {
            assert!(task.await.expect("join").starts_with("HTTP/1.1 200"));
        }
        // Four requests, two at a time, 50 ms each: at least two rounds.
        assert!(
            started.elapsed() >= Duration::from_millis(95),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.chat_request_count(), 4);
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn chunked_requests_are_refused() {
        let server = FakeServer::start(Script::sequence(vec![])).await;
        let raw = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        let text = exchange(&server, raw, 1).await;
        assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    }
}
