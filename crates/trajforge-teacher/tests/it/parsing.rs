//! Request shapes and response parsing in both tool modes.

use serde_json::json;
use trajforge_teacher::{ChatMessage, OpenAiTeacher, Role, Teacher, ToolMode};
use trajforge_testkit::{FakeServer, Reply, Script, Step};

use crate::{ask, config, conversation, tools};

#[tokio::test]
async fn native_tool_call_parsed() {
    let server = FakeServer::start(Script::sequence(vec![Step::Reply(
        Reply::new()
            .content("Listing files.")
            .tool_call("bash", json!({"command": "ls -la"})),
    )]))
    .await;
    let mut cfg = config(&server);
    cfg.sampling.top_p = Some(0.95);
    cfg.sampling.seed = Some(42);
    let done = ask(cfg, &tools()).await.expect("completion");

    let calls = &done.message.tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "bash");
    assert_eq!(calls[0].id, "call_1_0");
    assert_eq!(
        calls[0].arguments_json().expect("json"),
        json!({"command": "ls -la"})
    );
    assert!(!calls[0].is_malformed());
    assert_eq!(done.message.role, Role::Assistant);
    assert_eq!(done.message.content.as_deref(), Some("Listing files."));
    assert_eq!(done.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(done.attempts, 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req["model"], "test-model");
    assert_eq!(req["tool_choice"], "auto");
    assert_eq!(req["tools"][0]["type"], "function");
    assert_eq!(req["tools"][0]["function"]["name"], "bash");
    assert_eq!(req["tools"][1]["function"]["name"], "submit");
    assert!((req["temperature"].as_f64().unwrap_or(0.0) - 0.6).abs() < 1e-6);
    assert!((req["top_p"].as_f64().unwrap_or(0.0) - 0.95).abs() < 1e-6);
    assert_eq!(req["seed"], 42);
    assert_eq!(req["messages"][0]["role"], "system");
    assert_eq!(req["messages"][1]["content"], "Fix the bug.");
}

#[tokio::test]
async fn native_round_trip_sends_calls_and_results_back() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::tool_call("bash", json!({"command": "pwd"})),
        Step::text("Done."),
    ]))
    .await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    let mut messages = conversation();
    let first = teacher.complete(&messages, &tools()).await.expect("first");
    let call = first.message.tool_calls[0].clone();
    messages.push(first.message);
    messages.push(ChatMessage::tool_result(&call, "/repo"));
    let second = teacher.complete(&messages, &tools()).await.expect("second");
    assert_eq!(second.message.content.as_deref(), Some("Done."));
    assert!(second.message.tool_calls.is_empty());

    let sent = &server.requests()[1]["messages"];
    assert_eq!(sent[2]["role"], "assistant");
    assert_eq!(sent[2]["tool_calls"][0]["id"], call.id);
    assert_eq!(
        sent[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"command":"pwd"}"#
    );
    assert_eq!(sent[3]["role"], "tool");
    assert_eq!(sent[3]["tool_call_id"], call.id);
    assert_eq!(sent[3]["content"], "/repo");
}

#[tokio::test]
async fn malformed_native_arguments_are_reported_not_fatal() {
    let server = FakeServer::start(Script::sequence(vec![Step::Reply(
        Reply::new()
            .raw_tool_call("bash", r#"{"command": "ls"#)
            .tool_call("submit", json!({})),
    )]))
    .await;
    let done = ask(config(&server), &tools()).await.expect("completion");
    let calls = &done.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert!(calls[0].is_malformed());
    assert_eq!(calls[0].arguments, r#"{"command": "ls"#);
    assert!(!calls[1].is_malformed());
}

#[tokio::test]
async fn hermes_round_trip() {
    let first = Reply::new()
        .content("<think>Look first.</think>I will inspect the repo.")
        .hermes_call("bash", json!({"command": "ls"}))
        .hermes_call("bash", json!({"command": "cat setup.py"}))
        .hermes_raw(r#"{"name": "bash", "arguments": {"command": "oops"#);
    let server = FakeServer::start(Script::sequence(vec![
        Step::Reply(first),
        Step::text("All done."),
    ]))
    .await;
    let mut cfg = config(&server);
    cfg.mode = ToolMode::Hermes;
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    assert_eq!(teacher.describe().mode, ToolMode::Hermes);

    let mut messages = conversation();
    let done = teacher.complete(&messages, &tools()).await.expect("first");
    let calls = done.message.tool_calls.clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0].name, "bash");
    assert_eq!(
        calls[0].arguments_json().expect("json"),
        json!({"command": "ls"})
    );
    assert_eq!(
        calls[1].arguments_json().expect("json"),
        json!({"command": "cat setup.py"})
    );
    assert!(calls[2].is_malformed());
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(
        done.message.content.as_deref(),
        Some("I will inspect the repo.")
    );
    assert_eq!(done.message.reasoning.as_deref(), Some("Look first."));

    // The first request carries the schemas in the system prompt, not in `tools`.
    let req = &server.requests()[0];
    assert!(req.get("tools").is_none());
    assert!(req.get("tool_choice").is_none());
    let system = req["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.starts_with("You are a careful engineer."));
    assert!(system.contains("<tools>"));
    assert!(system.contains(r#""name":"bash""#));
    assert!(system.contains("<tool_call>"));

    messages.push(done.message);
    for (call, output) in calls.iter().zip(["a.py", "setup()", "error: malformed"]) {
        messages.push(ChatMessage::tool_result(call, output));
    }
    let second = teacher.complete(&messages, &tools()).await.expect("second");
    assert_eq!(second.message.content.as_deref(), Some("All done."));

    let sent = server.requests()[1]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        sent.len(),
        4,
        "tool results merge into one user turn: {sent:?}"
    );
    assert_eq!(sent[2]["role"], "assistant");
    let assistant = sent[2]["content"].as_str().unwrap_or_default();
    assert_eq!(assistant.matches("<tool_call>").count(), 3);
    assert!(assistant.contains(r#"{"name": "bash", "arguments": {"command":"ls"}}"#));
    assert!(sent[2].get("tool_calls").is_none());
    assert_eq!(sent[3]["role"], "user");
    let results = sent[3]["content"].as_str().unwrap_or_default();
    assert_eq!(results.matches("<tool_response>").count(), 3);
    assert!(results.contains("<tool_response>\nsetup()\n</tool_response>"));
}

#[tokio::test]
async fn native_mode_falls_back_to_tool_call_text() {
    let server = FakeServer::start(Script::sequence(vec![Step::hermes_call(
        "submit",
        json!({}),
    )]))
    .await;
    let done = ask(config(&server), &tools()).await.expect("completion");
    assert_eq!(done.message.tool_calls.len(), 1);
    assert_eq!(done.message.tool_calls[0].name, "submit");
    assert_eq!(done.message.content, None);
}

#[tokio::test]
async fn reasoning_content_and_think_blocks_kept() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::Reply(
            Reply::new()
                .reasoning("The bug is in parse().")
                .content("Found it."),
        ),
        Step::text("<think>\nMaybe the tests.\n</think>\n\nRunning tests."),
        Step::text("Only the end of thinking</think>Answer."),
    ]))
    .await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    let a = teacher.complete(&conversation(), &[]).await.expect("a");
    assert_eq!(
        a.message.reasoning.as_deref(),
        Some("The bug is in parse().")
    );
    assert_eq!(a.message.content.as_deref(), Some("Found it."));
    let b = teacher.complete(&conversation(), &[]).await.expect("b");
    assert_eq!(b.message.reasoning.as_deref(), Some("Maybe the tests."));
    assert_eq!(b.message.content.as_deref(), Some("Running tests."));
    let c = teacher.complete(&conversation(), &[]).await.expect("c");
    assert_eq!(
        c.message.reasoning.as_deref(),
        Some("Only the end of thinking")
    );
    assert_eq!(c.message.content.as_deref(), Some("Answer."));
    // No tools offered: no tools field either.
    assert!(server.requests()[0].get("tools").is_none());
}

#[tokio::test]
async fn usage_recorded() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::Reply(Reply::new().content("x").usage(1234, 56)),
        Step::Reply(Reply::new().content("y").without_usage()),
    ]))
    .await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    let a = teacher.complete(&conversation(), &[]).await.expect("a");
    assert_eq!(
        (a.usage.prompt_tokens, a.usage.completion_tokens),
        (1234, 56)
    );
    assert!(a.latency > std::time::Duration::ZERO);
    let b = teacher.complete(&conversation(), &[]).await.expect("b");
    assert_eq!((b.usage.prompt_tokens, b.usage.completion_tokens), (0, 0));
}
