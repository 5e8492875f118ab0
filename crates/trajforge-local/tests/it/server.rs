//! The OpenAI-compatible server over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trajforge_local::{Backend, LocalTeacher, MessagesOptions, ServeOptions, serve, serve_backend};
use trajforge_teacher::{ChatMessage, OpenAiTeacher, RequestLimiter, Teacher, TeacherConfig};
use trajforge_testkit::{FakeServer, Reply, Script, ServerOptions, Step};

use crate::{model_path, shared_teacher, test_options, tool_names, tools};

/// Start a server on a free port for the duration of the test; returns its base URL.
pub async fn start() -> String {
    start_with(shared_teacher(), ServeOptions::default()).await
}

async fn start_with(teacher: Arc<LocalTeacher>, options: ServeOptions) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, teacher, options, std::future::pending()));
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    // reqwest is built without a crypto provider (no aws-lc); it insists on one even for
    // plain HTTP, so install ring as the teacher client does.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn tools_json() -> Value {
    Value::Array(
        tools()
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect(),
    )
}

fn request(stream: bool) -> Value {
    json!({
        "model": "anything",
        "messages": [
            {"role": "system", "content": "You are a coding agent. Use the tools."},
            {"role": "user", "content": "List the files of the repository."}
        ],
        "tools": tools_json(),
        "tool_choice": "required",
        "max_tokens": 120,
        "seed": 3,
        "stream": stream,
        "stream_options": {"include_usage": true}
    })
}

async fn post(base: &str, body: &Value) -> (u16, String) {
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_tool_call() {
    let base = start().await;
    let (status, text) = post(&base, &request(false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "chat.completion");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let name = call["function"]["name"].as_str().unwrap().to_string();
    assert!(tool_names().contains(&name), "{name}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());
    assert!(choice["message"]["content"].is_null());
    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 50, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 5, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

/// Parse an SSE body into its JSON events; asserts it ends with `[DONE]`.
fn sse_events(text: &str) -> Vec<Value> {
    let datas: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not SSE data: {e:?}"))
        })
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{text}");
    datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_tool_call() {
    let base = start().await;
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(&resp.text().await.unwrap());
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk")
    );
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let calls: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert!(!calls.is_empty(), "{events:?}");
    let name = calls[0]["function"]["name"].as_str().unwrap().to_string();
    assert!(tool_names().contains(&name));
    let finish: Vec<&Value> = events
        .iter()
        .map(|e| &e["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("tool_calls")]);
    let usage = events.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_text_without_tools() {
    let base = start().await;
    let body = json!({
        "messages": [{"role": "user", "content": "Say hello to the world."}],
        "max_tokens": 24, "stream": true, "seed": 9, "temperature": 0
    });
    let (status, text) = post(&base, &body).await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.trim().is_empty(), "{text}");
    // Without include_usage the last event is the finish chunk.
    let last = events.last().unwrap();
    assert!(["stop", "length"].contains(&last["choices"][0]["finish_reason"].as_str().unwrap()));
    // The streamed text equals the non-streamed one (greedy, so the comparison holds even
    // though the second request reuses the first one's KV cache).
    let mut plain = body.clone();
    plain["stream"] = json!(false);
    let (_, text) = post(&base, &plain).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_errors() {
    let base = start().await;
    let v: Value = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");

    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("JSON"),
        "{e}"
    );

    let (status, text) = post(&base, &json!({"model": "x"})).await;
    assert_eq!(status, 400);
    assert!(text.contains("messages"), "{text}");

    let (status, text) = post(
        &base,
        &json!({"messages": [{"role": "user", "content": "x"}], "tools": tools_json(),
                "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
    )
    .await;
    assert_eq!(status, 400, "{text}");

    let long = "word ".repeat(3000);
    let (status, text) = post(
        &base,
        &json!({"messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["error"]["code"], "context_length_exceeded");

    for (path, status) in [("/v1/nothing", 404), ("/v1/chat/completions", 405)] {
        let resp = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "GET {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_answered() {
    let base = start().await;
    let mut handles = Vec::new();
    for i in 0..6u64 {
        let base = base.clone();
        handles.push(tokio::spawn(async move {
            let body = json!({
                "messages": [{"role": "user", "content": format!("Count to {i}.")}],
                "max_tokens": 12, "seed": i, "stream": i % 2 == 0
            });
            post(&base, &body).await
        }));
    }
    for h in handles {
        let (status, text) = h.await.unwrap();
        assert_eq!(status, 200, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_teacher_client_talks_to_the_server() {
    let base = start().await;
    let mut config = TeacherConfig::new(format!("{base}/v1"), "SmolLM2-135M-Instruct.Q4_1");
    config.api_key = None;
    config.sampling.max_tokens = Some(120);
    config.sampling.seed = Some(5);
    let client = OpenAiTeacher::new(config).unwrap();
    let models = client.models(Duration::from_secs(10)).await.unwrap();
    assert_eq!(models, vec!["SmolLM2-135M-Instruct.Q4_1".to_string()]);
    let messages = [
        ChatMessage::system("You are a coding agent."),
        ChatMessage::user("Show the README."),
    ];
    // tool_choice "auto" (the client's default): either a call or a message comes back.
    let completion = client.complete(&messages, &tools()).await.unwrap();
    let m = &completion.message;
    assert!(!m.tool_calls.is_empty() || m.content.as_deref().is_some_and(|c| !c.is_empty()));
    for call in &m.tool_calls {
        if completion.finish_reason.as_deref() == Some("tool_calls") {
            assert!(tool_names().contains(&call.name), "{call:?}");
        }
    }
    assert!(completion.usage.prompt_tokens > 0);
}

/// Send a whole POST request on a fresh connection and leave the answer unread; dropping
/// the returned socket is a client that gives up.
async fn send_raw(base: &str, path: &str, body: &Value) -> TcpStream {
    let mut socket = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         anthropic-version: 2023-06-01\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    socket
}

/// Wait until `done` holds (the server works on its own tasks; this only orders the test).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("waited 120 s for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_never_run_and_the_next_is_answered() {
    // A teacher of its own: the test reads its queue counters.
    let teacher = Arc::new(LocalTeacher::load(&model_path(), test_options()).unwrap());
    let base = start_with(Arc::clone(&teacher), ServeOptions::default()).await;
    let long = |stream: bool| {
        json!({"messages": [{"role": "user", "content":
            "Write the numbers from 1 to 500, one per line, and nothing else."}],
            "max_tokens": 1800, "temperature": 0, "stream": stream})
    };
    // One long request is generating; six more of every kind wait in the queue behind it.
    let running = send_raw(&base, "/v1/chat/completions", &long(false)).await;
    wait_for("the first generation", || teacher.stats().started == 1).await;
    let messages = json!({"model": "m", "max_tokens": 1800, "messages": [
        {"role": "user", "content": "Write the numbers from 1 to 500."}]});
    let mut streamed_messages = messages.clone();
    streamed_messages["stream"] = json!(true);
    let mut waiting = Vec::new();
    for (path, body) in [
        ("/v1/chat/completions", long(false)),
        ("/v1/chat/completions", long(true)),
        ("/v1/chat/completions", long(false)),
        ("/v1/chat/completions", long(true)),
        ("/v1/messages", messages),
        ("/v1/messages", streamed_messages),
    ] {
        waiting.push(send_raw(&base, path, &body).await);
    }
    wait_for("the queued requests", || teacher.stats().queued == 7).await;
    assert_eq!(teacher.stats().started, 1, "{:?}", teacher.stats());
    // Every client gives up.
    drop(running);
    drop(waiting);
    // A small request sent now is answered, and nothing of the abandoned ones ran first.
    let (status, text) = post(
        &base,
        &json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let stats = teacher.stats();
    assert_eq!(stats.queued, 8, "{stats:?}");
    assert_eq!(
        stats.skipped, 6,
        "queued requests of gone clients ran: {stats:?}"
    );
    assert_eq!(
        stats.cancelled, 1,
        "the running generation went on: {stats:?}"
    );
    assert_eq!(stats.started, 2, "{stats:?}");
    assert_eq!(stats.requests, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_upstream_requests_are_dropped() {
    // The upstream streams its long answer forever (as far as the test goes); "small"
    // requests get a short one.
    let options = ServerOptions {
        stream_interval: Duration::from_millis(20),
        ..ServerOptions::default()
    };
    let fake = FakeServer::start_with(
        Script::handler(|req| {
            let small = req.to_string().contains("small");
            let text = if small {
                "ok".to_string()
            } else {
                "la ".repeat(50_000)
            };
            Step::Reply(Reply::new().content(text))
        }),
        options,
    )
    .await;
    let mut config = TeacherConfig::new(fake.url(), "m");
    config.api_key = None;
    // One upstream request at a time: the others wait for the slot.
    config.limiter = Arc::new(RequestLimiter::new(1));
    let backend = Backend::Upstream {
        client: Arc::new(OpenAiTeacher::new(config).unwrap()),
        counter: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_backend(
        listener,
        backend,
        ServeOptions::default(),
        MessagesOptions::default(),
        std::future::pending(),
    ));
    let body = |stream: bool| {
        json!({"model": "m", "max_tokens": 100, "stream": stream,
               "messages": [{"role": "user", "content": "Talk."}]})
    };
    let running = send_raw(&base, "/v1/messages", &body(false)).await;
    wait_for("the upstream request", || fake.chat_request_count() == 1).await;
    let mut waiting = Vec::new();
    for stream in [true, false, true, false] {
        waiting.push(send_raw(&base, "/v1/messages", &body(stream)).await);
    }
    // The waiting clients go first, and the test waits until the server has closed each
    // connection (it drops the request when it reads the client's EOF): only then is the
    // running request abandoned. Dropping them in the other order raced on a loaded
    // machine, since the freed slot could go to a waiting request the server had not yet
    // seen leave.
    for mut socket in waiting {
        socket.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(60), socket.read_to_end(&mut rest));
        assert!(
            closed.await.is_ok(),
            "the server kept an abandoned request open"
        );
    }
    drop(running);
    // The small request gets the slot only if the abandoned stream was dropped.
    let resp = client()
        .post(format!("{base}/v1/messages"))
        .json(&json!({"model": "m", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "small"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let message: Value = resp.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "ok", "{message}");
    // The waiting requests never reached the upstream.
    assert_eq!(fake.chat_request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413_in_each_protocol() {
    let options = ServeOptions {
        max_body_bytes: 1 << 20,
        ..ServeOptions::default()
    };
    let base = start_with(shared_teacher(), options).await;
    let big = json!({"model": "m", "max_tokens": 4,
        "messages": [{"role": "user", "content": "x".repeat(3 << 20)}]});
    let answer = |path: &'static str| {
        let (base, big) = (base.clone(), big.clone());
        async move {
            let resp = client()
                .post(format!("{base}{path}"))
                .json(&big)
                .send()
                .await
                .expect("an answer, not a dropped connection");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, e) = answer("/v1/chat/completions").await;
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    assert_eq!(e["error"]["code"], "request_too_large", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("1048576 bytes"), "{message}");
    let (status, e) = answer("/v1/messages").await;
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["error"]["type"], "request_too_large", "{e}");
    // The server still answers a request of a fitting size.
    let (status, text) = post(
        &base,
        &json!({"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}
