//! Anthropic's Messages API of `trajforge serve`, driven by the real `anthropic` Python SDK:
//! in front of the scripted fake OpenAI server (`--upstream`) and of the embedded model.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_testkit::{FakeServer, Reply, Script, Step, run_ok};

/// A running `trajforge serve`, stopped with SIGTERM when dropped.
pub struct Served {
    child: Child,
    /// Base URL without `/v1`, as Anthropic clients take it.
    pub base: String,
}

impl Served {
    /// Start `trajforge serve ARGS --port 0` and wait for its URL.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        if line.is_empty() {
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("serve printed no URL: {err}");
        }
        let base = line.trim().trim_end_matches("/v1").to_string();
        Self { child, base }
    }

    /// Stop with SIGTERM; the exit status (`None` if it did not stop in 20 s) and stderr.
    pub fn stop(mut self) -> (Option<ExitStatus>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match self.child.try_wait().ok().flatten() {
                Some(status) => break Some(status),
                None if Instant::now() > deadline => break None,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut err = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .map(|mut e| e.read_to_string(&mut err));
        (status, err)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference Python with the `anthropic` SDK (fails under CI when missing).
pub fn anthropic_python() -> Option<PathBuf> {
    trajforge_testkit::reference_python("anthropic")
}

/// What every SDK script starts with: the client at `sys.argv[1]` and the `bash` tool.
const PRELUDE: &str = r#"
import json, sys, anthropic
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="dummy", max_retries=0)
tools = [{"name": "bash", "description": "Run a shell command.",
          "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                           "required": ["command"]}}]
"#;

/// Run [`PRELUDE`] and `script` with `args`; its stdout is one JSON document.
fn python(py: &Path, script: &str, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new(py)
            .arg("-c")
            .arg(format!("{PRELUDE}{script}"))
            .args(args),
        "python",
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The SDK calls of the fake-upstream test: a tool call, the tool result sent back in a
/// streamed turn (reasoning, text, another call), a token count, a beta call (`?beta=true`)
/// and a refused request.
const SDK_SCRIPT: &str = r#"
ask = [{"role": "user", "content": "List the files."}]
out = {}
m = c.messages.create(model="claude-x", max_tokens=256, system="You are careful.",
                      tools=tools, messages=ask)
out["create"] = m.model_dump()
call = [b for b in m.content if b.type == "tool_use"][0]
turns = ask + [{"role": "assistant", "content": [b.model_dump() for b in m.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                             "content": "a.py\nb.py"}]}]
events = []
with c.messages.stream(model="claude-x", max_tokens=256, tools=tools, messages=turns,
                       extra_body={"context_management": {"edits": []}}) as s:
    for e in s:
        events.append(e.type + ":" + getattr(getattr(e, "delta", None), "type", ""))
    final = s.get_final_message()
out["events"] = events
out["stream"] = final.model_dump()
out["count"] = c.messages.count_tokens(model="claude-x", messages=turns, tools=tools).input_tokens
out["beta"] = c.beta.messages.create(model="claude-x", max_tokens=64, messages=ask).model_dump()
try:
    c.messages.create(model="claude-x", max_tokens=64, messages=[])
    out["error"] = None
except anthropic.BadRequestError as e:
    out["error"] = {"status": e.status_code, "body": e.body}
try:
    c.messages.create(model="claude-x", max_tokens=64, messages=ask)
    out["upstream_error"] = None
except anthropic.APIStatusError as e:
    out["upstream_error"] = {"status": e.status_code, "body": e.body}
print(json.dumps(out))
"#;

#[test]
fn anthropic_sdk_against_a_fake_upstream_streams_and_calls_tools() {
    let Some(py) = anthropic_python() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = rt.block_on(FakeServer::start(Script::sequence(vec![
        Step::Reply(
            Reply::new()
                .content("Listing.")
                .tool_call("bash", json!({"command": "ls -la"}))
                .usage(40, 9),
        ),
        Step::Reply(
            Reply::new()
                .reasoning("Two files; look at a.py.")
                .content("Now reading a.py.")
                .tool_call("bash", json!({"command": "cat a.py", "note": "é漢"}))
                .usage(70, 20),
        ),
        Step::Reply(Reply::new().content("Done.")),
        Step::status(503, "upstream busy"),
    ])));
    let served = Served::start(&["--upstream", &fake.url(), "--model", "student"]);
    let out = python(&py, SDK_SCRIPT, &[&served.base]);

    let create = &out["create"];
    assert_eq!(create["type"], "message", "{create}");
    assert!(
        create["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_"))
    );
    assert_eq!(create["stop_reason"], "tool_use");
    assert_eq!(create["content"][0]["type"], "text");
    assert_eq!(create["content"][0]["text"], "Listing.");
    assert_eq!(create["content"][1]["name"], "bash");
    assert_eq!(create["content"][1]["input"], json!({"command": "ls -la"}));
    assert_eq!(create["usage"]["input_tokens"], 40);
    assert_eq!(create["usage"]["output_tokens"], 9);

    let stream = &out["stream"];
    assert_ne!(stream["id"], create["id"], "every message id is unique");
    assert_eq!(stream["content"][0]["type"], "thinking");
    assert_eq!(stream["content"][0]["thinking"], "Two files; look at a.py.");
    assert_eq!(stream["content"][1]["text"], "Now reading a.py.");
    assert_eq!(
        stream["content"][2]["input"],
        json!({"command": "cat a.py", "note": "é漢"})
    );
    assert_eq!(stream["stop_reason"], "tool_use");
    assert_eq!(stream["usage"]["output_tokens"], 20);
    let events: Vec<&str> = out["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start:"));
    assert_eq!(events.last(), Some(&"message_stop:"));
    // The fake upstream streams 3-character pieces; they pass through as they come.
    let count = |kind: &str| events.iter().filter(|e| e.ends_with(kind)).count();
    assert!(count(":text_delta") >= 5, "{events:?}");
    assert!(count(":thinking_delta") >= 5, "{events:?}");
    assert!(count(":input_json_delta") >= 5, "{events:?}");
    assert!(events.contains(&"message_delta:"), "{events:?}");

    assert!(out["count"].as_u64().unwrap_or(0) > 10, "{}", out["count"]);
    assert_eq!(out["beta"]["content"][0]["text"], "Done.");
    assert_eq!(out["error"]["status"], 400, "{}", out["error"]);
    assert_eq!(out["error"]["body"]["type"], "error");
    assert_eq!(
        out["error"]["body"]["error"]["type"],
        "invalid_request_error"
    );

    // An upstream failure keeps its status, in Anthropic's error shape.
    let upstream_error = &out["upstream_error"];
    assert_eq!(upstream_error["status"], 503, "{upstream_error}");
    assert_eq!(upstream_error["body"]["error"]["type"], "overloaded_error");
    assert!(
        upstream_error["body"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream busy")),
        "{upstream_error}"
    );

    // What the upstream saw: OpenAI chat completions, streamed, with the tool result mapped.
    let sent = fake.requests();
    assert_eq!(
        sent.len(),
        4,
        "the refused request never reached the upstream"
    );
    assert_eq!(sent[0]["model"], "student");
    assert_eq!(sent[0]["stream"], true);
    assert_eq!(
        sent[0]["messages"][0],
        json!({"role": "system", "content": "You are careful."})
    );
    assert_eq!(sent[0]["tools"][0]["function"]["name"], "bash");
    let second = sent[1]["messages"].as_array().expect("messages");
    assert_eq!(second[1]["tool_calls"][0]["function"]["name"], "bash");
    assert_eq!(second[2]["role"], "tool");
    assert_eq!(second[2]["content"], "a.py\nb.py");
    assert_eq!(second[2]["tool_call_id"], second[1]["tool_calls"][0]["id"]);
    let _ = served.stop();
}

/// The SDK calls of the embedded-model test.
const LOCAL_SCRIPT: &str = r#"
ask = [{"role": "user", "content": "Show the files in the current folder."}]
out = {}
m = c.messages.create(model="x", max_tokens=48, tools=tools, tool_choice={"type": "any"},
                      messages=ask)
out["create"] = m.model_dump()
out["count"] = c.messages.count_tokens(model="x", messages=ask, tools=tools).input_tokens
events = []
with c.messages.stream(model="x", max_tokens=24, messages=[{"role": "user", "content": "Say hello."}]) as s:
    for e in s:
        events.append(e.type)
    out["stream"] = s.get_final_message().model_dump()
out["events"] = events
print(json.dumps(out))
"#;

#[test]
fn anthropic_sdk_against_the_embedded_model_with_exact_counts() {
    let Some(py) = anthropic_python() else {
        return;
    };
    let model = trajforge_local::default_model_path();
    assert!(
        model.is_file(),
        "model not installed: run scripts/install-model.sh"
    );
    let served = Served::start(&["--ctx", "1024", "--threads", "1"]);
    let out = python(&py, LOCAL_SCRIPT, &[&served.base]);
    let _ = served.stop();

    let create = &out["create"];
    let call = create["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("no tool_use: {create}"));
    assert_eq!(call["name"], "bash");
    assert!(call["input"]["command"].is_string(), "{call}");
    assert_eq!(create["stop_reason"], "tool_use");
    // count_tokens is the prompt the model evaluated, token for token.
    let counted = out["count"].as_u64().expect("count");
    assert_eq!(create["usage"]["input_tokens"].as_u64(), Some(counted));

    let stream = &out["stream"];
    assert_eq!(stream["content"][0]["type"], "text", "{stream}");
    assert!(stream["usage"]["output_tokens"].as_u64().unwrap_or(0) > 0);
    let events: Vec<&str> = out["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert!(
        events.iter().filter(|e| **e == "text").count() > 1,
        "{events:?}"
    );

    // The upstream path counts with --tokenizer as exactly: the same GGUF's vocabulary,
    // read by the export's tokenizer, against the fake upstream.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = rt.block_on(FakeServer::start(Script::sequence(Vec::new())));
    let tokenizer = model.to_string_lossy().into_owned();
    let served = Served::start(&[
        "--upstream",
        &fake.url(),
        "--model",
        "student",
        "--tokenizer",
        &tokenizer,
    ]);
    let count = python(
        &py,
        r#"
print(json.dumps(c.messages.count_tokens(model="x", tools=tools,
      messages=[{"role": "user", "content": "Show the files in the current folder."}]).input_tokens))
"#,
        &[&served.base],
    );
    let _ = served.stop();
    assert_eq!(count.as_u64(), Some(counted));
}
