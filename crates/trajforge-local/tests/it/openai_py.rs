//! The real `openai` Python client against the server. Optional: it runs when a Python with
//! the `openai` package is found ($TRAJFORGE_OPENAI_PYTHON, or <repo>/.cache/openai-venv),
//! and is skipped with a note otherwise.

use std::path::PathBuf;
use std::process::Command;

const SCRIPT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
tools = [{"type": "function", "function": {"name": "bash", "description": "Run a command.",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                         "required": ["command"]}}}]
msgs = [{"role": "user", "content": "List the files."}]
r = client.chat.completions.create(model="m", messages=msgs, tools=tools,
                                   tool_choice="required", max_tokens=80, seed=1)
call = r.choices[0].message.tool_calls[0]
assert call.function.name == "bash", call
json.loads(call.function.arguments)
assert r.usage.prompt_tokens > 0
names = []
for chunk in client.chat.completions.create(model="m", messages=msgs, tools=tools,
                                            tool_choice="required", max_tokens=80, stream=True):
    for c in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        if c.function and c.function.name:
            names.append(c.function.name)
assert names and all(n == "bash" for n in names), names
text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
    model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=10, stream=True) if ch.choices)
assert text, "empty stream"
print("ok", [m.id for m in client.models.list()])
"#;

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRAJFORGE_OPENAI_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/openai-venv/bin/python");
    venv.is_file().then_some(venv)
}

// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client() {
    let Some(python) = python() else {
        eprintln!(
            "skipped: no Python with the openai package (create .cache/openai-venv and pip install openai)"
        );
        return;
    };
    let base = crate::server::start().await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(format!("{base}/v1"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("ok"), "{stdout}");
}
