//! The embedded teacher through the real binary: `run --teacher local` on the sample
//! repository with the installed SmolLM2 model, and `serve` answering and stopping on SIGTERM.

use crate::assert_success;
use std::process::Command;

use serde_json::Value;

use crate::run::{sample_git_repo, work_dir};

fn model_installed() -> std::path::PathBuf {
    let path = trajforge_local::default_model_path();
    assert!(
        path.is_file(),
        "model not installed: run scripts/install-model.sh (looked for {})",
        path.display()
    );
    path
}

#[test]
fn run_with_the_local_teacher_completes_a_real_episode() {
    model_installed();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = sample_git_repo(dir.path());
    let work = work_dir(dir.path());
    let traj = dir.path().join("traj.json");
    let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["run", "--repo"])
        .arg(&repo)
        .args([
            "--task",
            "List the files of the repository, then submit.",
            "--teacher",
            "local",
            "--max-steps",
            "3",
            "--max-completion-tokens",
            "96",
            "--quiet",
            "--out",
        ])
        .arg(&traj)
        .arg("--work-dir")
        .arg(&work)
        .output()
        .expect("trajforge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0: submitted; 3: ended without a confirmed submit (the small model often does).
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    let t: Value = serde_json::from_slice(&std::fs::read(&traj).expect("trajectory written"))
        .expect("trajectory JSON");
    let steps = t["steps"].as_array().expect("steps");
    assert!(!steps.is_empty() && steps.len() <= 3, "{t}");
    assert!(
        t["teacher"].to_string().contains("SmolLM2"),
        "{}",
        t["teacher"]
    );
    // Grammar-constrained decoding: every step is a parsed tool call or a final message,
    // and every tool call was executed (it has an observation).
    for step in steps {
        let tools = step["tools"].as_array().expect("tools");
        let content = step["assistant"]["content"].as_str().unwrap_or("");
        assert!(!tools.is_empty() || !content.is_empty(), "{step}");
        for tool in tools {
            assert!(!tool["tool"].as_str().unwrap_or("").is_empty(), "{tool}");
            assert!(tool.get("observation").is_some(), "{tool}");
        }
    }
    assert!(
        t["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "{}",
        t["usage"]
    );
}

/// `GET {base}{path}`, the whole response.
fn get(base: &str, path: &str) -> String {
    crate::http_get(&format!("{base}{path}"))
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    model_installed();
    let served = crate::messages::Served::start(&["--ctx", "1024", "--threads", "1"]);
    let base = format!("{}/v1", served.base);
    assert!(base.starts_with("http://127.0.0.1:"), "{base:?}");
    let models = get(&base, "/models");
    assert!(models.starts_with("HTTP/1.1 200"), "{models}");
    assert!(models.contains("SmolLM2"), "{models}");

    // A tool-calling request from curl, as the README shows it.
    let request = r#"{"model": "any", "max_tokens": 64, "tool_choice": "required",
        "messages": [{"role": "user", "content": "Show the files in the current folder."}],
        "tools": [{"type": "function", "function": {"name": "bash",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                           "required": ["command"]}}}]}"#;
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--max-time",
            "120",
            "-H",
            "Content-Type: application/json",
            "-d",
            request,
        ])
        .arg(format!("{base}/chat/completions"))
        .output()
        .expect("curl runs (scripts/setup.sh installs it)");
    assert_success(&curl);
    let reply: Value = serde_json::from_slice(&curl.stdout).expect("JSON reply");
    let call = &reply["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "bash", "{reply}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("arguments are JSON");
    assert!(args["command"].is_string(), "{args}");
    assert!(
        reply["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{reply}"
    );

    let (status, stderr) = served.stop();
    let status = status.expect("serve stopped on SIGTERM");
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
}
