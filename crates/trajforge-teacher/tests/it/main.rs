//! Integration tests of the teacher client against the scripted fake server.

mod errors;
mod parsing;
mod retries;
mod servers;
mod streaming;

use std::time::Duration;

use trajforge_teacher::{
    ChatMessage, Completion, OpenAiTeacher, Teacher, TeacherConfig, TeacherError, ToolSpec,
};
use trajforge_testkit::FakeServer;

/// A config with small backoffs so retry tests stay fast, and no key from the environment.
pub fn config(server: &FakeServer) -> TeacherConfig {
    let mut config = TeacherConfig::new(server.url(), "test-model");
    config.api_key = None;
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(200);
    config.request_timeout = Duration::from_secs(5);
    config.max_retries = 3;
    config
}

/// The two tools most tests offer.
pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a shell command".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            }),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the work".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        },
    ]
}

/// A system prompt and a task.
pub fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are a careful engineer."),
        ChatMessage::user("Fix the bug."),
    ]
}

/// One completion of [`conversation`] offering `tools`, from a client built with `cfg`.
pub async fn ask(cfg: TeacherConfig, tools: &[ToolSpec]) -> Result<Completion, TeacherError> {
    let teacher = OpenAiTeacher::new(cfg).expect("client");
    teacher.complete(&conversation(), tools).await
}
