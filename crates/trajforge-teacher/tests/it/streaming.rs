//! Streamed completions read chunk by chunk.

use serde_json::json;
use trajforge_chat::wire::{ChatRequest, StreamOptions, WireMessage};
use trajforge_teacher::{OpenAiTeacher, Role, TeacherError};
use trajforge_testkit::{FakeServer, Reply, Script, Step};

use crate::config;

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![WireMessage::text(Role::User, "Fix the bug.")],
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn chunks_arrive_in_pieces_and_add_up() {
    let server = FakeServer::start(Script::sequence(vec![Step::Reply(
        Reply::new()
            .reasoning("Think first.")
            .content("Listing files.")
            .tool_call("bash", json!({"command": "ls -la"}))
            .usage(11, 4),
    )]))
    .await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    let mut stream = teacher.stream_chat(&request()).await.expect("stream");
    let (mut text, mut reasoning, mut args, mut chunks) =
        (String::new(), String::new(), String::new(), 0);
    let mut usage = None;
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        chunks += 1;
        usage = chunk.usage.clone().or(usage);
        for choice in &chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            reasoning.push_str(choice.delta.reasoning_content.as_deref().unwrap_or(""));
            for call in &choice.delta.tool_calls {
                let f = call.function.as_ref().expect("function");
                args.push_str(f.arguments.as_ref().and_then(|a| a.as_str()).unwrap_or(""));
            }
            finish = choice.finish_reason.clone().or(finish);
        }
    }
    assert_eq!(text, "Listing files.");
    assert_eq!(reasoning, "Think first.");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args).unwrap_or_default(),
        json!({"command": "ls -la"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage.and_then(|u| u.prompt_tokens), Some(11));
    assert!(
        chunks > 10,
        "the fake server sends 3-character pieces: {chunks} chunks"
    );
    let sent = &server.requests()[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["model"], "test-model");
}

#[tokio::test]
async fn an_error_status_comes_back_before_any_chunk() {
    let server = FakeServer::start(Script::sequence(vec![Step::status(503, "busy")])).await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    match teacher.stream_chat(&request()).await {
        Err(TeacherError::Status { status, body, .. }) => {
            assert_eq!(status, 503);
            assert!(body.contains("busy"), "{body}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
}
