//! Errors that are never retried, and the API key staying secret.

use std::time::Duration;

use trajforge_teacher::{ApiKey, OpenAiTeacher, Teacher, TeacherConfig, TeacherError};
use trajforge_testkit::{FakeServer, Script, Step};

use crate::{ask, config, conversation};

#[tokio::test]
async fn context_overflow_is_typed_and_not_retried() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::context_overflow(),
        Step::text("unused"),
    ]))
    .await;
    let err = ask(config(&server), &[]).await.expect_err("must fail");
    assert!(err.is_context_overflow(), "{err:?}");
    assert!(matches!(
        err,
        TeacherError::ContextOverflow { status: 400, .. }
    ));
    assert!(
        err.to_string().contains("maximum context length is 8192"),
        "{err}"
    );
    assert_eq!(server.chat_request_count(), 1);
    assert_eq!(server.remaining_steps(), 1);
}

#[tokio::test]
async fn overflow_wordings_of_other_servers() {
    for body in [
        r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
        r#"{"object":"error","message":"The input (9000 tokens) is longer than the model's context length (8192 tokens).","code":400}"#,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
    ] {
        let step = Step::Http {
            status: 400,
            headers: Vec::new(),
            body: body.to_string(),
        };
        let server = FakeServer::start(Script::sequence(vec![step])).await;
        let err = ask(config(&server), &[]).await.expect_err("must fail");
        assert!(err.is_context_overflow(), "{body}: {err:?}");
    }
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let server = FakeServer::start(Script::sequence(vec![
        Step::status(400, "temperature must be non-negative"),
        Step::text("unused"),
    ]))
    .await;
    let err = ask(config(&server), &[]).await.expect_err("must fail");
    assert!(
        matches!(
            err,
            TeacherError::Status {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_context_overflow());
    assert!(
        err.to_string().contains("temperature must be non-negative"),
        "{err}"
    );
    assert_eq!(server.chat_request_count(), 1);
}

#[tokio::test]
async fn api_key_sent_as_bearer_and_never_shown() {
    const SECRET: &str = "sk-test-5f3a9c0e7d";
    let server = FakeServer::start(Script::sequence(vec![
        Step::text("hello"),
        Step::status(401, &format!("Incorrect API key provided: {SECRET}")),
    ]))
    .await;
    let mut cfg = config(&server);
    cfg.api_key = Some(ApiKey::new(SECRET));
    assert!(!format!("{cfg:?}").contains(SECRET));
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    assert!(!format!("{teacher:?}").contains(SECRET));
    assert!(!format!("{:?}", teacher.describe()).contains(SECRET));

    teacher
        .complete(&conversation(), &[])
        .await
        .expect("completion");
    let recorded = server.recorded();
    assert_eq!(
        recorded[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(!recorded[0].body.to_string().contains(SECRET));

    let err = teacher
        .complete(&conversation(), &[])
        .await
        .expect_err("401");
    assert!(
        matches!(
            err,
            TeacherError::Status {
                status: 401,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(SECRET), "{err}");
    assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    assert!(err.to_string().contains("***"), "{err}");

    let key = ApiKey::new(SECRET);
    assert_eq!(format!("{key:?}"), "ApiKey(***)");
    assert_eq!(format!("{key}"), "ApiKey(***)");
}

#[tokio::test]
async fn no_key_means_no_authorization_header() {
    let server = FakeServer::start(Script::sequence(vec![Step::text("hello")])).await;
    let teacher = OpenAiTeacher::new(config(&server)).expect("client");
    teacher
        .complete(&conversation(), &[])
        .await
        .expect("completion");
    assert_eq!(server.recorded()[0].header("authorization"), None);
}

#[test]
fn bad_configuration_is_rejected() {
    let mut cfg = TeacherConfig::new("not a url", "m");
    cfg.api_key = None;
    assert!(matches!(
        OpenAiTeacher::new(cfg),
        Err(TeacherError::Config(_))
    ));
    let mut cfg = TeacherConfig::new("ftp://example.invalid/v1", "m");
    cfg.api_key = None;
    assert!(matches!(
        OpenAiTeacher::new(cfg),
        Err(TeacherError::Config(_))
    ));
    let mut cfg = TeacherConfig::new("http://127.0.0.1:1/v1", "m");
    cfg.api_key = Some(ApiKey::new("bad\nkey-secret"));
    let err = OpenAiTeacher::new(cfg).expect_err("newline in key");
    assert!(!err.to_string().contains("key-secret"), "{err}");
}

#[test]
fn credentials_in_url_are_hidden_in_errors() {
    let mut cfg = TeacherConfig::new("http://user:hunter2@127.0.0.1:1/v1/", "m");
    cfg.api_key = None;
    cfg.max_retries = 0;
    cfg.request_timeout = Duration::from_secs(2);
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(teacher.complete(&conversation(), &[]))
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(err, TeacherError::Connection { attempts: 1, .. }),
        "{err:?}"
    );
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{teacher:?}"),
        format!("{:?}", teacher.describe()),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    assert_eq!(teacher.describe().base_url, "http://127.0.0.1:1/v1");
}
