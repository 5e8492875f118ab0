//! The OpenAI-compatible server over real HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use trajforge_local::{LocalTeacher, ServeOptions, serve};
use trajforge_teacher::{ChatMessage, OpenAiTeacher, Teacher, TeacherConfig};

use crate::{shared_teacher, tool_names, tools};

/// Start a server on a free port for the duration of the test; returns its base URL.
pub async fn start() -> String {
    start_with(shared_teacher()).await
}

async fn start_with(teacher: std::sync::Arc<LocalTeacher>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        teacher,
        ServeOptions::default(),
        std::future::pending(),
    ));
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
