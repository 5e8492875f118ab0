//! Retries, backoff, Retry-After, timeouts and the in-flight limiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use trajforge_teacher::{
    Completion, OpenAiTeacher, RequestLimiter, Teacher, TeacherConfig, TeacherError,
};
use trajforge_testkit::{FakeServer, Script, Step};

use crate::{ask, config, conversation};

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::status(500, "engine crashed"),
        Step::status(503, "loading"),
        Step::text("ok"),
    ]))
    .await;
    let events = Arc::new(AtomicU32::new(0));
    let mut cfg = config(&server);
    let seen = Arc::clone(&events);
    cfg.on_retry = Some(Arc::new(move |e| {
        assert!(e.reason.starts_with("HTTP 5"), "{}", e.reason);
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let done = ask(cfg, &[]).await.expect("completion");
    assert_eq!(done.message.content.as_deref(), Some("ok"));
    assert_eq!(done.attempts, 3);
    assert_eq!(server.chat_request_count(), 3);
    assert_eq!(events.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn server_errors_exhaust_retries() {
    let server = FakeServer::start(Script::repeat(Step::status(502, "bad gateway"))).await;
    let mut cfg = config(&server);
    cfg.max_retries = 2;
    let err = ask(cfg, &[]).await.expect_err("must fail");
    assert!(
        matches!(
            err,
            TeacherError::Status {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.chat_request_count(), 3);
    assert!(err.to_string().contains("bad gateway"));
}

/// One completion of [`conversation`] with `cfg`, and how long it took (client set-up
/// excluded).
async fn timed_ask(cfg: TeacherConfig) -> (Result<Completion, TeacherError>, Duration) {
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    let started = Instant::now();
    let result = teacher.complete(&conversation(), &[]).await;
    (result, started.elapsed())
}

/// How long a completion takes when the first answer is a 429 with `retry_after` and the
/// second succeeds, with the client's backoff capped at `backoff_max`.
async fn wait_after_429(retry_after: &str, backoff_max: Duration) -> Duration {
    let server = FakeServer::start(Script::sequence(vec![
        Step::too_many_requests(retry_after),
        Step::text("ok"),
    ]))
    .await;
    let mut cfg = config(&server);
    cfg.backoff_max = backoff_max;
    let (done, elapsed) = timed_ask(cfg).await;
    assert_eq!(done.expect("completion").attempts, 2);
    elapsed
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let elapsed = wait_after_429("1", Duration::from_secs(5)).await;
    // Jittered backoff alone would wait at most 5 ms here.
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_is_capped_by_backoff_max() {
    let elapsed = wait_after_429("Fri, 31 Dec 2100 23:59:59 GMT", Duration::from_millis(300)).await;
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::DropConnection,
        Step::DropConnection.after(Duration::from_millis(20)),
        Step::text("ok"),
    ]))
    .await;
    let done = ask(config(&server), &[]).await.expect("completion");
    assert_eq!(done.attempts, 3);
    assert_eq!(done.message.content.as_deref(), Some("ok"));
}

#[tokio::test]
async fn connection_refused_is_a_typed_error() {
    // Bind and release a port so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut cfg = trajforge_teacher::TeacherConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    cfg.api_key = None;
    cfg.max_retries = 1;
    cfg.backoff_base = Duration::from_millis(1);
    let err = ask(cfg, &[]).await.expect_err("must fail");
    assert!(
        matches!(err, TeacherError::Connection { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeouts_are_retried_then_fail_typed() {
    let slow = Step::text("too late").after(Duration::from_secs(3));
    let server = FakeServer::start(Script::repeat(slow)).await;
    let mut cfg = config(&server);
    cfg.request_timeout = Duration::from_millis(150);
    cfg.max_retries = 2;
    let (err, elapsed) = timed_ask(cfg).await;
    let err = err.expect_err("must time out");
    assert!(
        matches!(err, TeacherError::Timeout { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.attempts(), 3);
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.chat_request_count(), 3);
}

#[tokio::test]
async fn slow_answer_within_timeout_succeeds() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::text("slow").after(Duration::from_millis(200)),
    ]))
    .await;
    let done = ask(config(&server), &[]).await.expect("completion");
    assert_eq!(done.attempts, 1);
    assert!(
        done.latency >= Duration::from_millis(190),
        "{:?}",
        done.latency
    );
}

#[tokio::test]
async fn malformed_bodies_are_retried_a_bounded_number_of_times() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::malformed_json(),
        Step::empty_choices(),
        Step::text("finally"),
    ]))
    .await;
    let done = ask(config(&server), &[]).await.expect("completion");
    assert_eq!(done.attempts, 3);

    let server = FakeServer::start(Script::repeat(Step::empty_choices())).await;
    let mut cfg = config(&server);
    cfg.max_retries = 6;
    cfg.max_malformed_retries = 1;
    let err = ask(cfg, &[]).await.expect_err("must fail");
    assert!(
        matches!(err, TeacherError::Malformed { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no choices"), "{err}");
    assert_eq!(server.chat_request_count(), 2);
}

#[tokio::test]
async fn limiter_caps_requests_in_flight() {
    async fn peak(limit: usize) -> usize {
        let server = FakeServer::start(Script::repeat(
            Step::text("ok").after(Duration::from_millis(100)),
        ))
        .await;
        let mut cfg = config(&server);
        cfg.limiter = Arc::new(RequestLimiter::new(limit));
        let limiter = Arc::clone(&cfg.limiter);
        let teacher: Arc<dyn Teacher> = Arc::new(OpenAiTeacher::new(cfg).expect("client"));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let teacher = Arc::clone(&teacher);
                tokio::spawn(async move {
                    teacher
                        .complete(&conversation(), &[])
                        .await
                        .map(|c| c.attempts)
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("join").expect("completion"), 1);
        }
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(server.chat_request_count(), 6);
        server.max_concurrency()
    }
    assert_eq!(peak(2).await, 2);
    // Control: without a tight limit the same load does overlap more.
    assert!(peak(16).await >= 3);
}
