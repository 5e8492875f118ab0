//! Several servers behind one client: conversations stay on their server, new ones spread,
//! and a server that keeps failing leaves rotation without failing the requests; streamed
//! completions are routed the same way.

use std::sync::Arc;
use std::time::Duration;

use trajforge_chat::wire::{ChatRequest, WireMessage};
use trajforge_teacher::{ChatMessage, OpenAiTeacher, Role, RouterPolicy, Teacher};
use trajforge_testkit::{FakeServer, Script, Step};

use crate::{config, tools};

fn episode(n: usize) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are a careful engineer."),
        ChatMessage::user(format!("Fix bug number {n}.")),
    ]
}

/// The episode numbers a server saw, in order of arrival.
fn episodes_seen(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r["messages"][1]["content"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn episodes_stay_on_their_server_and_new_ones_spread() {
    let slow = || {
        Script::repeat(
            Step::tool_call("bash", serde_json::json!({"command": "ls"}))
                .after(Duration::from_millis(40)),
        )
    };
    let (a, b) = (
        FakeServer::start(slow()).await,
        FakeServer::start(slow()).await,
    );
    let mut cfg = config(&a);
    cfg.more_servers = vec![b.url()];
    let teacher = Arc::new(OpenAiTeacher::new(cfg).expect("client"));
    // Six episodes of three steps each, concurrently.
    let mut tasks = Vec::new();
    for n in 0..6 {
        let teacher = Arc::clone(&teacher);
        tasks.push(tokio::spawn(async move {
            let mut messages = episode(n);
            for step in 0..3 {
                let c = teacher.complete(&messages, &tools()).await.expect("answer");
                messages.push(c.message.clone());
                for call in &c.message.tool_calls {
                    messages.push(ChatMessage::tool_result(call, format!("output {step}")));
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("episode");
    }
    let (seen_a, seen_b) = (episodes_seen(&a), episodes_seen(&b));
    assert_eq!(seen_a.len() + seen_b.len(), 18);
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "a: {seen_a:?} b: {seen_b:?}"
    );
    for task in &seen_a {
        assert!(!seen_b.contains(task), "{task} went to both servers");
        assert_eq!(seen_a.iter().filter(|t| *t == task).count(), 3);
    }
    let stats = teacher.server_stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].requests as usize, seen_a.len());
    assert_eq!(stats[1].requests as usize, seen_b.len());
    assert!(
        stats
            .iter()
            .all(|s| s.errors == 0 && s.latency_seconds > 0.0),
        "{stats:?}"
    );
    assert_eq!(
        teacher.describe().base_url,
        format!("{},{}", a.url(), b.url())
    );
}

#[tokio::test]
async fn a_failing_server_is_ejected_and_its_episodes_move() {
    let broken = FakeServer::start(Script::repeat(Step::status(503, "overloaded"))).await;
    let good = FakeServer::start(Script::repeat(Step::text("fine"))).await;
    let mut cfg = config(&broken);
    cfg.more_servers = vec![good.url()];
    cfg.max_retries = 4;
    // Long backoffs: a retry that waited for one would fail the timing below.
    cfg.backoff_base = Duration::from_secs(30);
    cfg.backoff_max = Duration::from_secs(30);
    cfg.routing = RouterPolicy {
        eject_after: 1,
        cooldown: Duration::from_secs(3600),
        ..RouterPolicy::default()
    };
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    let started = std::time::Instant::now();
    for n in 0..4 {
        let c = tokio::time::timeout(Duration::from_secs(10), teacher.complete(&episode(n), &[]))
            .await
            .expect("no backoff wait once the server is out")
            .expect("answered by the good server");
        assert_eq!(c.message.content.as_deref(), Some("fine"));
    }
    let stats = teacher.server_stats();
    // The first episode's first attempt ejected the broken server; its retry went to the
    // good one at once (no backoff) and so did every later episode.
    assert_eq!(stats[0].ejections, 1, "{stats:?}");
    assert_eq!((stats[0].requests, stats[0].errors), (1, 1), "{stats:?}");
    assert_eq!((stats[1].requests, stats[1].errors), (4, 0), "{stats:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Episode `n` at step `step` as a streamed request: the task, then `step` earlier turns.
fn streamed_step(n: usize, step: usize) -> ChatRequest {
    let mut messages = vec![
        WireMessage::text(Role::System, "You are a careful engineer."),
        WireMessage::text(Role::User, format!("Fix bug number {n}.")),
    ];
    for i in 0..step {
        messages.push(WireMessage::text(Role::Assistant, format!("step {i}")));
        messages.push(WireMessage::text(Role::User, "go on"));
    }
    ChatRequest {
        messages,
        ..ChatRequest::default()
    }
}

/// Read a stream to its end; the text it carried.
async fn drain(mut stream: trajforge_teacher::ChunkStream<'_>) -> String {
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        for choice in chunk.expect("chunk").choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
    }
    text
}

#[tokio::test]
async fn streams_are_routed_like_completions() {
    let (a, b) = (
        FakeServer::start(Script::repeat(Step::text("fine"))).await,
        FakeServer::start(Script::repeat(Step::text("fine"))).await,
    );
    let mut cfg = config(&a);
    cfg.more_servers = vec![b.url()];
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    for step in 0..3 {
        // Both episodes' streams are open at once: the second goes to the server with
        // fewer in flight, and each later step stays where its episode started.
        let first = teacher
            .stream_chat(&streamed_step(0, step))
            .await
            .expect("stream");
        let second = teacher
            .stream_chat(&streamed_step(1, step))
            .await
            .expect("stream");
        assert_eq!(drain(first).await, "fine");
        assert_eq!(drain(second).await, "fine");
    }
    let (seen_a, seen_b) = (episodes_seen(&a), episodes_seen(&b));
    assert_eq!(seen_a, vec!["Fix bug number 0."; 3], "b saw {seen_b:?}");
    assert_eq!(seen_b, vec!["Fix bug number 1."; 3], "a saw {seen_a:?}");
    let stats = teacher.server_stats();
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.requests, s.errors))
            .collect::<Vec<_>>(),
        vec![(3, 0), (3, 0)],
        "{stats:?}"
    );
    assert!(stats.iter().all(|s| s.latency_seconds > 0.0), "{stats:?}");
}

#[tokio::test]
async fn a_failing_server_is_ejected_for_streams_too() {
    let broken = FakeServer::start(Script::repeat(Step::status(503, "overloaded"))).await;
    let good = FakeServer::start(Script::repeat(Step::text("fine"))).await;
    let mut cfg = config(&broken);
    cfg.more_servers = vec![good.url()];
    cfg.routing = RouterPolicy {
        eject_after: 1,
        cooldown: Duration::from_secs(3600),
        ..RouterPolicy::default()
    };
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    for n in 0..3 {
        let stream = teacher
            .stream_chat(&streamed_step(n, 0))
            .await
            .expect("the good server streams");
        assert_eq!(drain(stream).await, "fine");
    }
    let stats = teacher.server_stats();
    // The first stream's attempt ejected the broken server and moved to the good one at
    // once; every later stream went straight there.
    assert_eq!(stats[0].ejections, 1, "{stats:?}");
    assert_eq!((stats[0].requests, stats[0].errors), (1, 1), "{stats:?}");
    assert_eq!((stats[1].requests, stats[1].errors), (3, 0), "{stats:?}");
    assert_eq!(broken.requests().len(), 1);
}
