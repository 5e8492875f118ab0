//! Several servers behind one client: conversations stay on their server, new ones spread,
//! and a server that keeps failing leaves rotation without failing the requests.

use std::sync::Arc;
use std::time::Duration;

use trajforge_teacher::{ChatMessage, OpenAiTeacher, RouterPolicy, Teacher};
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
