//! Integration tests of the local teacher against the real SmolLM2 model
//! (installed by scripts/install-model.sh; CI installs it, so a missing model fails).

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used)]

mod bad_files;
mod openai_py;
mod server;
mod teacher;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use trajforge_local::{LocalOptions, LocalTeacher, default_model_path};
use trajforge_teacher::ToolSpec;

/// The installed default model, or a failure telling how to install it.
pub fn model_path() -> PathBuf {
    let path = default_model_path();
    assert!(
        path.is_file(),
        "model not installed: run scripts/install-model.sh (looked for {})",
        path.display()
    );
    path
}

/// Options for tests: a small context (cheaper KV cache) and short replies.
pub fn test_options() -> LocalOptions {
    LocalOptions {
        n_ctx: Some(2048),
        threads: Some(
            std::env::var("TEST_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(1),
        ),
        max_tokens: 160,
        ..LocalOptions::default()
    }
}

/// One teacher shared by the tests that do not care about the KV cache state.
pub fn shared_teacher() -> Arc<LocalTeacher> {
    static TEACHER: OnceLock<Arc<LocalTeacher>> = OnceLock::new();
    TEACHER
        .get_or_init(|| {
            Arc::new(LocalTeacher::load(&model_path(), test_options()).expect("load model"))
        })
        .clone()
}

/// SWE-agent-like tools with small schemas.
pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a shell command and return its output.".into(),
            parameters: json!({"type": "object",
                "properties": {"command": {"type": "string", "description": "The command."}},
                "required": ["command"]}),
        },
        ToolSpec {
            name: "str_replace_editor".into(),
            description: "View, create or edit files.".into(),
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
                "path": {"type": "string"},
                "file_text": {"type": "string"},
                "old_str": {"type": "string"},
                "new_str": {"type": "string"},
                "insert_line": {"type": "integer"},
                "view_range": {"type": "array", "items": {"type": "integer"}}
            }, "required": ["command", "path"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the work when done.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// Names of [`tools`].
pub fn tool_names() -> Vec<String> {
    tools().into_iter().map(|t| t.name).collect()
}
