//! The real `openai` Python client against the server. The Python comes from
//! scripts/python-env.sh ($TRAJFORGE_PYTHON, or <repo>/.cache/py). Outside CI a missing
//! environment skips the test with a note; under CI (`CI` set) it fails.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client() {
    let Some(python) = trajforge_testkit::reference_python("openai") else {
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
