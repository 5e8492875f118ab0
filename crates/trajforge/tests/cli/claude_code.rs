//! The real Claude Code CLI (`claude -p`, installed by scripts/claude-code.sh) pointed at
//! `trajforge serve --upstream <scripted model> --tools trained`: the model, which only knows
//! trajforge's trained tools, views a file, edits it and runs a command in a git repository
//! through Claude Code's Read, Edit and Bash.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use trajforge_testkit::{FakeServer, Reply, Script, Step, run_ok, skip_missing};

use crate::messages::Served;

/// The installed CLI; outside CI a missing one skips the test with a note.
fn claude() -> Option<PathBuf> {
    // The binary itself, else the folder scripts/claude-code.sh installed into (the same
    // TRAJFORGE_CLAUDE_CODE_DIR it honours), else its default.
    let path = std::env::var_os("TRAJFORGE_CLAUDE_CODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("TRAJFORGE_CLAUDE_CODE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::repo_root().join(".cache/claude-code"))
                .join("node_modules/.bin/claude")
        });
    if path.exists() {
        return Some(path);
    }
    skip_missing(&format!(
        "Claude Code is not installed at {}: run scripts/claude-code.sh",
        path.display()
    ));
    None
}

/// The scripted model: its next step follows from the tool results it has seen.
fn model(request: &Value) -> Step {
    let offered: Vec<&str> = request["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if !offered.contains(&"str_replace_editor") {
        // Claude Code's side requests (no tools): a short text answer.
        return Step::text("none");
    }
    let results = request["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count());
    let editor = |args: Value| Step::Reply(Reply::new().tool_call("str_replace_editor", args));
    match results {
        0 => editor(json!({"command": "view", "path": "/workspace/calc.py"})),
        1 => editor(
            json!({"command": "str_replace", "path": "/workspace/calc.py",
                           "old_str": "return a - b", "new_str": "return a + b"}),
        ),
        2 => Step::Reply(Reply::new().content("Checking the fix.").tool_call(
            "bash",
            json!({"command": "cd /workspace && python3 -c 'import calc; print(calc.add(2, 3))'"}),
        )),
        _ => Step::Reply(
            Reply::new()
                .content("Fixed add().")
                .tool_call("submit", json!({})),
        ),
    }
}

#[test]
fn claude_code_drives_the_trained_tools_through_serve() {
    let Some(claude) = claude() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("proj");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").expect("write");
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .current_dir(&repo),
            "git",
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "base"]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = rt.block_on(FakeServer::start(Script::handler(model)));
    let served = Served::start(&[
        "--upstream",
        &fake.url(),
        "--model",
        "student",
        "--tools",
        "trained",
    ]);
    let out = Command::new(&claude)
        .args(["-p", "The add function in calc.py is wrong; fix it."])
        .args([
            "--allowedTools",
            "Read",
            "Edit",
            "Bash",
            "--output-format",
            "json",
        ])
        .current_dir(&repo)
        .env("HOME", &home)
        .env("ANTHROPIC_BASE_URL", &served.base)
        .env("ANTHROPIC_API_KEY", "dummy-key")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .output()
        .expect("claude runs");
    let (_, serve_log) = served.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sent = fake.requests();
    assert!(
        out.status.success(),
        "claude failed: {stdout}\n{stderr}\nserve: {serve_log}\nupstream saw {} requests",
        sent.len()
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("calc.py")).expect("read"),
        "def add(a, b):\n    return a + b\n",
        "{stdout}"
    );

    // The model saw its training world: the trained prompt and tools, /workspace paths, and
    // observations in the editor's format, with the command's output.
    let agent: Vec<&Value> = sent
        .iter()
        .filter(|r| r["tools"].as_array().is_some_and(|t| !t.is_empty()))
        .collect();
    let last = agent.last().expect("agent requests");
    let messages = last["messages"].as_array().expect("messages");
    let system = messages[0]["content"].as_str().unwrap_or("");
    assert!(system.contains("/workspace"), "{system}");
    assert!(!system.contains("Claude Code"), "{system}");
    let task = messages[1]["content"].as_str().unwrap_or("");
    assert!(
        task.contains("fix it") && !task.contains("system-reminder"),
        "{task}"
    );
    let tool_texts: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(tool_texts.len(), 3, "{messages:?}");
    assert!(
        tool_texts[0]
            .starts_with("Here is /workspace/calc.py with line numbers:\n     1\tdef add(a, b):"),
        "{}",
        tool_texts[0]
    );
    assert_eq!(
        tool_texts[1],
        "The file /workspace/calc.py has been edited. Here is a snippet of the result:\n     1\tdef add(a, b):\n     2\t    return a + b\nReview the change and make sure it is what you intended."
    );
    assert_eq!(tool_texts[2].trim(), "5");
    let names: Vec<&str> = last["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["bash", "str_replace_editor", "submit"]);
}
