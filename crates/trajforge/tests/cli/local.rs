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
            assert!(tool.get("observation").is_some(), "{tool}");
            // The grammar cannot stop the 135M model from repeating a flag until
            // --max-completion-tokens ends the reply mid-call (seen twice under load); such a
            // call must come back to the model as exactly that. Any other call parsed.
            let cut_by_the_limit = tool["observation"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("reached max_tokens inside the tool call"));
            assert!(
                cut_by_the_limit || !tool["tool"].as_str().unwrap_or("").is_empty(),
                "{tool}"
            );
        }
    }
    assert!(
        t["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "{}",
        t["usage"]
    );
}

/// `eval --teacher local`: the embedded model as the model under test, on one soft task of
/// the sample repository (scored by line recall, no test run), through the same harness,
/// store and rows as a served teacher. One step of 32 tokens keeps it to about 36 s of CPU
/// (the debug build's llama.cpp on an 888-token prompt).
#[test]
fn eval_with_the_local_teacher_writes_a_scored_row() {
    model_installed();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = sample_git_repo(dir.path());
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&repo)
        .output()
        .expect("git");
    let base = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let task = serde_json::json!({
        "instance_id": "sample-1", "repo": "sample", "base_commit": base,
        "patch": "diff --git a/TRAJFORGE-SAMPLE.md b/TRAJFORGE-SAMPLE.md\n--- a/TRAJFORGE-SAMPLE.md\n+++ b/TRAJFORGE-SAMPLE.md\n@@ -1 +1 @@\n-# trajforge sample repository\n+# trajforge sample repository, fixed\n",
        "problem_statement": "List the files of the repository, then submit.",
        "kind": "soft",
    });
    let tasks = dir.path().join("tasks.jsonl");
    std::fs::write(&tasks, format!("{task}\n")).expect("tasks");
    let out_dir = dir.path().join("eval");
    let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["eval", "--teacher", "local", "--max-steps", "1"])
        .args(["--max-completion-tokens", "32", "--repo"])
        .arg(&repo)
        .arg("--tasks")
        .arg(&tasks)
        .arg("--out")
        .arg(&out_dir)
        .arg("--work-dir")
        .arg(work_dir(dir.path()))
        .output()
        .expect("trajforge runs");
    assert_success(&out);
    let rows: Vec<trajforge_eval::TaskResult> =
        trajforge_eval::read_jsonl(&out_dir.join("results.jsonl")).expect("results.jsonl");
    let [row] = rows.as_slice() else {
        panic!("one row expected: {rows:?}")
    };
    assert_eq!((row.instance_id.as_str(), row.seed), ("sample-1", 0));
    assert!(row.model.contains("SmolLM2"), "{row:?}");
    assert_eq!(row.resolved, None, "a soft task is scored by recall only");
    assert!((0.0..=1.0).contains(&row.recall), "{row:?}");
    assert_eq!(row.steps, 1, "{row:?}");
    assert!(row.prompt_tokens > 0 && row.error.is_none(), "{row:?}");
    let status = crate::status_json(&out_dir, &[]);
    assert_eq!(status["eval"]["rows"], 1, "{status}");
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
