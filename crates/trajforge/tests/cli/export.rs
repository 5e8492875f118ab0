//! `trajforge export` on a real run: the real pipeline and sandbox on the shipped sample
//! repository with the scripted SVG teacher, then every format, filter and container.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use trajforge_testkit::code::CodeTeacher;
use trajforge_testkit::{FakeServer, Script, run_ok};

use crate::run::{sample_git_repo, work_dir};
use crate::{jsonl, repo_root, stderr, stdout};

/// Asserts that `text` (the export's `what`) contains every one of `needles`.
#[track_caller]
fn assert_mentions(what: &str, text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{what} lacks {needle}:\n{text}");
    }
}

/// One run shared by every test of this module (generating it takes a while).
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        // Under the target's scratch folder (not a leaked temp dir); earlier runs' folders go first.
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(scratch) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("export-run-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = scratch.join(format!("export-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let repo = sample_git_repo(&dir);
        let work = work_dir(&dir);
        let run = dir.join("run");
        let rt = trajforge_testkit::runtime();
        let teacher = Arc::new(CodeTeacher::new(0));
        let server = rt.block_on(FakeServer::start(Script::handler(move |req| {
            teacher.answer(req)
        })));
        // One function at a time, so the fake server's call ids are the same on every run.
        run_ok(
            crate::taught(&["generate"], &server.url())
                .arg("--repo")
                .arg(&repo)
                .arg("--out")
                .arg(&run)
                .args(["-n", "8", "--seed", "3", "--work-dir"])
                .arg(&work)
                .args(["--backoff", "0.01", "--concurrency", "1"]),
            "generate",
        );
        drop(server);
        drop(rt);
        run
    })
}

/// Export the shared run with `args`.
fn export(args: &[&str]) -> Output {
    export_run(run_dir(), args)
}

/// An export of the shared run that must succeed; `--force` because tests export again into
/// the same file.
fn export_ok(args: &[&str]) -> Value {
    export_run_ok(run_dir(), &[args, &["--force"]].concat())
}

/// Replace values that change between runs (times, ports, temp paths, commit ids).
fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match k.as_str() {
                    "started_at_ms" | "duration" | "model_time" | "overhead" | "created_at"
                    | "model_seconds" => *val = Value::from(0),
                    "base_url" | "repo" | "commit" => *val = Value::from("[scrubbed]"),
                    _ => scrub(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn no_tokens() -> [&'static str; 4] {
    ["--max-tokens", "0", "--max-tool-tokens", "0"]
}

#[test]
fn every_format_matches_its_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["hermes", "openai", "sharegpt", "raw"] {
        let out = dir.path().join(format).join("data.jsonl");
        let mut args = vec!["--format", format, "--out", out.to_str().expect("utf-8")];
        args.extend(no_tokens());
        let summary = export_ok(&args);
        let mut rows = jsonl(&out);
        assert_eq!(summary["written"].as_u64(), Some(rows.len() as u64));
        assert!(!rows.is_empty(), "{format}: nothing exported");
        rows.iter_mut().for_each(scrub);
        insta::assert_json_snapshot!(format!("export_{format}"), rows);
    }
}

#[test]
fn the_defaults_follow_the_run_verdicts_and_write_card_and_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("hermes.jsonl");
    let mut args = vec!["--format", "hermes", "--out", out.to_str().expect("utf-8")];
    args.extend(no_tokens());
    let summary = export_ok(&args);
    let rows = jsonl(&out);
    // The scripted teacher keeps T1 on self-check yes and T2 at r >= 0.5.
    for row in &rows {
        if row["rollout"] == "t2" {
            assert!(row["recall"].as_f64().expect("recall") >= 0.5, "{row}");
        }
        let msgs = row["messages"].as_array().expect("messages");
        for m in msgs {
            assert_eq!(m["train"] == true, m["role"] == "assistant", "{m}");
            if m["role"] == "assistant" {
                assert_eq!(
                    m["content"]
                        .as_str()
                        .expect("text")
                        .matches("<think>")
                        .count(),
                    1
                );
            }
        }
        assert!(
            msgs[0]["content"]
                .as_str()
                .expect("system")
                .contains("<tools>")
        );
        assert!(msgs.iter().any(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("<tool_response>"))
        }));
    }
    let t1 = summary["by_rollout"]["t1"].as_u64().unwrap_or(0);
    let t2 = summary["by_rollout"]["t2"].as_u64().unwrap_or(0);
    assert!(t1 > 0 && t2 > 0, "{summary}");
    let removed: Vec<(String, u64)> =
        serde_json::from_value(summary["removed"].clone()).expect("removed");
    let verdict = removed
        .iter()
        .find(|(n, _)| n == "verdict")
        .map(|(_, n)| *n);
    assert!(
        verdict.is_some_and(|n| n > 0),
        "low-recall T2 and self-check-no T1 are removed: {removed:?}"
    );
    let card = std::fs::read_to_string(dir.path().join("README.md")).expect("card");
    assert_mentions(
        "card",
        &card,
        &[
            "## Provenance",
            "fake-model",
            "## Filters",
            "| verdict |",
            "## Line recall r",
            "submit required",
        ],
    );
    let config = std::fs::read_to_string(dir.path().join("axolotl.yaml")).expect("config");
    assert_mentions(
        "config",
        &config,
        &[
            "base_model: Qwen/Qwen3-32B",
            "num_epochs: 3",
            "learning_rate: 1.0e-5",
            "warmup_steps: 48",
            "adam_beta2: 0.95",
            "weight_decay: 0.01",
            "sequence_len: 32768",
            "message_field_training: train",
            "path: ./hermes.jsonl",
        ],
    );
}

#[test]
fn filters_switch_off_and_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.jsonl");
    let o = out.to_str().expect("utf-8");
    let base = export_ok(&[
        "--format",
        "raw",
        "--out",
        o,
        "--max-tokens",
        "0",
        "--max-tool-tokens",
        "0",
    ]);
    let all = base["written"].as_u64().expect("n");
    // Only T2, at any recall: more T2 than the run kept.
    let t2_any = export_ok(&[
        "--format",
        "raw",
        "--out",
        o,
        "--rollouts",
        "t2",
        "--min-recall",
        "0",
        "--max-tokens",
        "0",
        "--max-tool-tokens",
        "0",
        "--dedup",
        "false",
    ]);
    assert!(jsonl(&out).iter().all(|r| r["rollout"] == "t2"));
    assert!(
        t2_any["written"].as_u64() > base["by_rollout"]["t2"].as_u64(),
        "{t2_any} vs {base}"
    );
    // A mix cap.
    let mixed = export_ok(&[
        "--format",
        "raw",
        "--out",
        o,
        "--mix",
        "t1=1,t2=1",
        "--max-tokens",
        "0",
        "--max-tool-tokens",
        "0",
    ]);
    assert_eq!(mixed["written"].as_u64(), Some(2));
    // Patch-size limit of 0 lines... 1 line: the scripted edits change 2 lines, so everything goes.
    let tiny = export_ok(&[
        "--format",
        "raw",
        "--out",
        o,
        "--max-patch-lines",
        "1",
        "--max-tokens",
        "0",
        "--max-tool-tokens",
        "0",
    ]);
    assert_eq!(tiny["written"].as_u64(), Some(0));
    // Decontamination: the run's repository folder is named "sample".
    let list = dir.path().join("bench-repos.txt");
    std::fs::write(&list, "# benchmark repositories\nsample\n").expect("write");
    let clean = export_ok(&[
        "--format",
        "raw",
        "--out",
        o,
        "--exclude-repos",
        list.to_str().expect("utf-8"),
        "--max-tokens",
        "0",
        "--max-tool-tokens",
        "0",
    ]);
    assert_eq!(clean["written"].as_u64(), Some(0));
    assert!(all > 0);
}

#[test]
fn bad_input_is_refused_with_a_hint() {
    let out = export(&["--format", "hermes", "--out", "/tmp/x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(".jsonl or .parquet"),
        "{}",
        stderr(&out)
    );
    let out = export(&[
        "--format",
        "hermes",
        "--out",
        "/tmp/x.jsonl",
        "--mix",
        "t3=1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // No tokenizer anywhere: the token limits say how to proceed.
    let out = export(&["--format", "hermes", "--out", "/tmp/x.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tokenizer"), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["export"])
        .arg(dir.path())
        .args(["--format", "raw", "--out", "/tmp/x.jsonl"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a run folder"));
}

fn qwen3_tokenizer() -> Option<PathBuf> {
    let dir = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/test-data"))
        .join("tokenizers/qwen3");
    if dir.join("tokenizer.json").is_file() {
        return Some(dir);
    }
    trajforge_testkit::skip_missing(&format!(
        "no {}; run scripts/fetch-test-data.sh",
        dir.display()
    ));
    None
}

#[test]
fn parquet_files_load_in_pyarrow_with_nested_messages() {
    let Some(py) = trajforge_testkit::reference_python("pyarrow.parquet") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["hermes", "openai", "sharegpt", "raw"] {
        let pq = dir.path().join(format!("{format}.parquet"));
        let js = dir.path().join(format!("{format}.jsonl"));
        for out in [&pq, &js] {
            let mut args = vec!["--format", format, "--out", out.to_str().expect("utf-8")];
            args.extend(no_tokens());
            export_ok(&args);
        }
        let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
rows = t.to_pylist()
lines = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(lines), (len(rows), len(lines))
col = {"hermes": "messages", "openai": "messages", "sharegpt": "conversations", "raw": "trajectory"}[sys.argv[3]]
typ = str(t.schema.field(col).type)
if sys.argv[3] != "raw":
    assert typ.startswith("list<item: struct<"), typ
for r, l in zip(rows, lines):
    assert r["id"] == l["id"]
    if sys.argv[3] == "raw":
        assert json.loads(r["trajectory"]) == l["trajectory"]
    elif sys.argv[3] == "openai":
        assert str(t.schema.field("tools").type) == "list<item: extension<arrow.json> not null>", t.schema
        assert [json.loads(x) for x in r["tools"]] == l["tools"]
        for a, b in zip(r[col], l[col]):
            assert a["role"] == b["role"] and a["content"] == b["content"]
            assert (a["tool_calls"] or []) == b.get("tool_calls", []), (a, b)
    else:
        assert r[col] == l[col], (r[col], l[col])
print(len(rows), typ)
"#;
        run_ok(
            Command::new(&py)
                .args(["-c", script])
                .arg(&pq)
                .arg(&js)
                .arg(format),
            format,
        );
    }
}

#[test]
fn a_real_tokenizer_counts_truncates_and_orders() {
    let Some(tok) = qwen3_tokenizer() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("t.jsonl");
    let o = out.to_str().expect("utf-8");
    let t = tok.to_str().expect("utf-8");
    let openai = ["--format", "openai", "--out", o, "--tokenizer", t];
    let full = export_ok(&openai);
    let rows = jsonl(&out);
    assert!(
        rows.iter()
            .all(|r| r["truncation_ratio"] == 1.0 && r["tokens"].as_u64().is_some_and(|n| n > 100))
    );
    let tokens: Vec<u64> = rows.iter().filter_map(|r| r["tokens"].as_u64()).collect();
    let max = *tokens.iter().max().expect("rows");
    let min = *tokens.iter().min().expect("rows");
    // A limit between the shortest and the longest: the longer ones are cut, and with
    // --min-ratio 0 every cut one is kept; each cut one ends with an assistant turn.
    let limit = ((min + max) / 2).to_string();
    let cut = export_ok(&[&openai[..], &["--max-tokens", &limit, "--min-ratio", "0"]].concat());
    let rows = jsonl(&out);
    let truncated: Vec<&Value> = rows
        .iter()
        .filter(|r| r["truncation_ratio"].as_f64() < Some(1.0))
        .collect();
    assert!(!truncated.is_empty(), "{cut}");
    for r in &truncated {
        assert!(r["tokens"].as_u64() <= limit.parse().ok());
        let msgs = r["messages"].as_array().expect("messages");
        assert_eq!(msgs.last().expect("last")["role"], "assistant");
    }
    assert_eq!(cut["truncated"].as_u64(), Some(truncated.len() as u64));
    // At the default ratio of 0.88 these short episodes lose too much when cut: all go.
    let strict = export_ok(&[&openai[..], &["--max-tokens", &limit]].concat());
    let removed: Vec<(String, u64)> =
        serde_json::from_value(strict["removed"].clone()).expect("removed");
    let too_long = removed
        .iter()
        .find(|(n, _)| n == "too_long")
        .map_or(0, |(_, c)| *c);
    assert!(too_long >= truncated.len() as u64, "{removed:?}");
    assert_eq!(
        strict["written"].as_u64().unwrap_or(0) + too_long,
        full["written"].as_u64().unwrap_or(0)
    );
}

/// Export `run` with `args` (token limits off unless given) and the summary as JSON.
fn export_run(run: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .arg("export")
        .arg(run)
        .args(args)
        .env("TRAJFORGE_MODEL_DIR", "/nonexistent")
        .output()
        .expect("trajforge runs")
}

fn export_run_ok(run: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = export_run(run, &all);
    assert!(out.status.success(), "export {args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("summary json")
}

/// The trainer libraries' check (scripts/trainer_libraries_check.py) on `args`; its figures.
fn trainer_check(py: &Path, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new(py)
            .arg(repo_root().join("scripts/trainer_libraries_check.py"))
            .args(args),
        &format!("{args:?}"),
    );
    let text = stdout(&out);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("figures")
}

/// Python with the trainer libraries, or a skip (a failure under CI).
fn trainer_python() -> Option<PathBuf> {
    trajforge_testkit::reference_python("datasets, transformers, trl.data_utils, pyarrow")
}

/// Every format, in both containers, loads in `datasets` with its nested columns as written;
/// OpenAI rows render with transformers' and TRL's `apply_chat_template(messages, tools=...)`
/// (Qwen3's template) straight from the Parquet and JSONL files; ShareGPT exports pass
/// LLaMA-Factory's parser, alignment check and function formatter, with no row skipped.
#[test]
fn trainer_libraries_load_every_format() {
    let Some(py) = trainer_python() else { return };
    let Some(qwen3) = qwen3_tokenizer() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["openai", "sharegpt", "hermes", "raw"] {
        let folder = dir.path().join(format);
        let mut written = None;
        for ext in ["jsonl", "parquet"] {
            let out = folder.join(format!("data.{ext}"));
            let mut args = vec!["--format", format, "--out", out.to_str().expect("utf-8")];
            args.extend(no_tokens());
            let summary = export_ok(&args);
            if format == "sharegpt" {
                // Every episode of the scripted run ends on the submit's observation.
                assert_eq!(summary["trailing_dropped"], summary["written"], "{summary}");
            }
            written = summary["written"].as_u64();
        }
        let written = written.expect("written");
        assert!(written > 0, "{format}: nothing exported");
        let folder_s = folder.to_str().expect("utf-8");
        let figures = trainer_check(
            &py,
            &[
                "datasets",
                format,
                &format!("{folder_s}/data.jsonl"),
                &format!("{folder_s}/data.parquet"),
            ],
        );
        assert_eq!(figures["rows"].as_u64(), Some(written), "{format}");
        if format == "openai" {
            for ext in ["jsonl", "parquet"] {
                let f = trainer_check(
                    &py,
                    &[
                        "template",
                        qwen3.to_str().expect("utf-8"),
                        &format!("{folder_s}/data.{ext}"),
                    ],
                );
                assert_eq!(f["rendered"].as_u64(), Some(written), "{ext}: {f}");
            }
        }
        if format == "sharegpt" {
            let f = trainer_check(&py, &["llamafactory", folder_s, "data"]);
            assert_eq!(f["rows"].as_u64(), Some(written), "{f}");
            assert!(f["function_calls"].as_u64() > Some(0), "{f}");
        }
    }
}

/// A run folder holding `n` imported episodes that open with a demonstration user turn before
/// the task (two user turns in a row), call a tool with arguments whose keys are not in
/// alphabetical order, carry tool results without a tool name, and end on an observation.
fn demonstration_run(dir: &Path, n: usize) -> PathBuf {
    use trajforge_agent::Trajectory;
    use trajforge_store::model::{ExitLabel, Outcome, Rollout, TrajectoryRecord};
    use trajforge_store::{ImportedJob, Store};
    use trajforge_teacher::{ChatMessage, TeacherInfo, ToolCall, ToolMode, ToolSpec};

    let run = dir.join("demo-run");
    let store = Store::open(&run).expect("store");
    let tools = vec![
        ToolSpec {
            name: "str_replace_editor".into(),
            description: "View and edit files.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {
                "path": {"type": "string"}, "command": {"type": "string"}}, "required": ["path", "command"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the change.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        },
    ];
    let jobs: Vec<ImportedJob> = (0..n)
        .map(|i| {
            let view = ToolCall::new(
                format!("v{i}"),
                "str_replace_editor",
                format!(r#"{{"path": "/workspace/mod{i}.py", "command": "view"}}"#),
            );
            let submit = ToolCall::new(format!("s{i}"), "submit", "{}");
            let mut messages = vec![
                ChatMessage::system("You fix bugs."),
                ChatMessage::user("Here is a demonstration of a solved issue: ..."),
                ChatMessage::user(format!("Now fix the bug in mod{i}.py.")),
                ChatMessage::assistant(Some("Let me look.".into()), vec![view.clone()]),
                ChatMessage::tool_result(&view, "1 def f():\n2     return 1"),
                ChatMessage::assistant(None, vec![submit.clone()]),
                ChatMessage::tool_result(&submit, "Your change has been submitted."),
            ];
            // As SWE-agent and mini-swe-agent files have them: results without a tool name.
            for m in &mut messages {
                m.name = None;
            }
            let teacher = TeacherInfo {
                base_url: String::new(),
                model: "imported".into(),
                mode: ToolMode::Native,
            };
            let task = format!("Now fix the bug in mod{i}.py.");
            let t = Trajectory::conversation(teacher, task, tools.clone(), messages, None);
            ImportedJob {
                key: format!("demo-{i}"),
                also_known_as: None,
                payload: serde_json::json!({"name": format!("f{i}"), "path": format!("mod{i}.py")}),
                result: Outcome::Kept,
                stages: Vec::new(),
                trajectory: TrajectoryRecord {
                    rollout: Rollout::T1,
                    exit_status: ExitLabel::Submitted,
                    patch: Some(format!(
                        "--- a/mod{i}.py\n+++ b/mod{i}.py\n@@ -1,2 +1,2 @@\n def f():\n-    return 1\n+    return 2\n"
                    )),
                    data: serde_json::to_value(&t).expect("json"),
                },
                recall: None,
                kept: true,
            }
        })
        .collect();
    store.import_jobs(&jobs, &[]).expect("import");
    run
}

/// A student whose chat template demands alternating roles: Qwen3's vocabulary with Gemma 3's
/// chat template (tests/fixtures/chat-templates).
fn gemma_student(qwen3: &Path, dir: &Path) -> PathBuf {
    let student = dir.join("gemma3-student");
    std::fs::create_dir_all(&student).expect("mkdir");
    std::fs::copy(qwen3.join("tokenizer.json"), student.join("tokenizer.json")).expect("copy");
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(qwen3.join("tokenizer_config.json")).expect("config"),
    )
    .expect("json");
    config["chat_template"] = Value::String(
        std::fs::read_to_string(
            repo_root().join("crates/trajforge/tests/fixtures/chat-templates/gemma3.jinja"),
        )
        .expect("template"),
    );
    std::fs::write(
        student.join("tokenizer_config.json"),
        serde_json::to_string(&config).expect("json"),
    )
    .expect("write");
    student
}

/// Demonstration turns: with a student whose template demands alternation (Gemma 3) the two
/// user turns are merged by default and every row renders in transformers; with
/// `--merge-turns off` transformers refuses exactly the rows with two user turns. Tool results
/// get their tool's name, arguments keep the model's key order, and ShareGPT rows drop the
/// trailing observation and pass LLaMA-Factory.
#[test]
fn demonstration_turns_merge_for_templates_that_demand_alternation() {
    let Some(py) = trainer_python() else { return };
    let Some(qwen3) = qwen3_tokenizer() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = demonstration_run(dir.path(), 3);
    let gemma = gemma_student(&qwen3, dir.path());
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();

    let merged = dir.path().join("merged/data.jsonl");
    let summary = export_run_ok(
        &run,
        &[
            "--format",
            "hermes",
            "--out",
            &path(&merged),
            "--tokenizer",
            &path(&gemma),
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
        ],
    );
    assert_eq!(summary["merged_turns"], true, "{summary}");
    assert_eq!(summary["written"].as_u64(), Some(3), "{summary}");
    let f = trainer_check(&py, &["template", &path(&gemma), &path(&merged)]);
    assert_eq!(f["rendered"].as_u64(), Some(3), "{f}");

    let kept = dir.path().join("kept/data.jsonl");
    let summary = export_run_ok(
        &run,
        &[
            "--format",
            "hermes",
            "--out",
            &path(&kept),
            "--merge-turns",
            "off",
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
        ],
    );
    assert!(summary.get("merged_turns").is_none(), "{summary}");
    let f = trainer_check(&py, &["template", &path(&gemma), &path(&kept), "refused"]);
    assert_eq!(f["refused"].as_u64(), Some(3), "{f}");

    // Qwen3 takes two user turns: auto leaves them, and the OpenAI rows render as they are.
    let openai = dir.path().join("openai/data.parquet");
    let summary = export_run_ok(
        &run,
        &[
            "--format",
            "openai",
            "--out",
            &path(&openai),
            "--tokenizer",
            &path(&qwen3),
        ],
    );
    assert!(summary.get("merged_turns").is_none(), "{summary}");
    let f = trainer_check(&py, &["template", &path(&qwen3), &path(&openai)]);
    assert_eq!(f["rendered"].as_u64(), Some(3), "{f}");
    let jsonl = dir.path().join("openai/data.jsonl");
    export_run_ok(
        &run,
        &[
            "--format",
            "openai",
            "--out",
            &path(&jsonl),
            "--tokenizer",
            &path(&qwen3),
        ],
    );
    for row in crate::jsonl(&jsonl) {
        let msgs = row["messages"].as_array().expect("messages");
        let tool_names: Vec<&str> = msgs
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(tool_names, ["str_replace_editor", "submit"], "{row}");
    }

    // Hermes and ShareGPT text keep the arguments' key order (path before command).
    let hermes = std::fs::read_to_string(&merged).expect("hermes");
    assert!(
        hermes.contains(r#"\"arguments\": {\"path\":\"/workspace/mod0.py\",\"command\":\"view\"}"#),
        "{hermes}"
    );
    let sharegpt = dir.path().join("sharegpt/data.jsonl");
    let summary = export_run_ok(
        &run,
        &[
            "--format",
            "sharegpt",
            "--out",
            &path(&sharegpt),
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
        ],
    );
    assert_eq!(summary["trailing_dropped"].as_u64(), Some(3), "{summary}");
    for row in crate::jsonl(&sharegpt) {
        let turns = row["conversations"].as_array().expect("turns");
        assert_eq!(turns.len() % 2, 0, "{row}");
        assert_eq!(turns.last().expect("last")["from"], "function_call");
        assert!(
            turns[1]["value"]
                .as_str()
                .is_some_and(|v| v.contains(r#""arguments": {"path":"/workspace/"#)),
            "{row}"
        );
    }
    let folder = sharegpt.parent().expect("folder");
    let f = trainer_check(&py, &["llamafactory", &path(folder), "data"]);
    assert_eq!(f["rows"].as_u64(), Some(3), "{f}");
}

/// An export into a folder holding the user's README.md, axolotl.yaml or dataset_info.json
/// stops before writing anything (exit code 2, with a hint) and leaves the file byte-identical;
/// its own companion files from an earlier export are replaced.
#[test]
fn an_export_never_replaces_a_file_it_did_not_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("data.jsonl");
    let o = out.to_str().expect("utf-8");
    for (name, text, format) in [
        ("README.md", "# My project\n\nDo not lose me.\n", "raw"),
        ("axolotl.yaml", "base_model: mine\n", "hermes"),
        (
            "dataset_info.json",
            "{\"mine\": {\"file_name\": \"mine.json\"}}\n",
            "sharegpt",
        ),
    ] {
        let user_file = dir.path().join(name);
        std::fs::write(&user_file, text).expect("write");
        let mut args = vec!["--format", format, "--out", o];
        args.extend(no_tokens());
        let run = export(&args);
        assert_eq!(run.status.code(), Some(2), "{name}: {}", stderr(&run));
        let err = stderr(&run);
        assert!(
            err.contains(name) && err.contains("folder of its own"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&user_file).expect("read"), text);
        assert!(!out.exists(), "{name}: the data file was written");
        std::fs::remove_file(&user_file).expect("rm");
    }
    // A card of an earlier version (no mark line) is trajforge's own: replaced.
    std::fs::write(
        dir.path().join("README.md"),
        "---\nconfigs:\n- config_name: default\n  data_files: data.jsonl\ntags:\n- trajforge\n---\n\n# data\n\nAgent trajectories made by trajforge with Soft-Verified Generation\n",
    )
    .expect("write");
    // Its own files are replaced by the next export (`export_ok` passes --force for the data
    // file), and the card says so on its first line.
    let mut args = vec!["--format", "sharegpt", "--out", o];
    args.extend(no_tokens());
    export_ok(&args);
    export_ok(&args);
    let card = std::fs::read_to_string(dir.path().join("README.md")).expect("card");
    assert!(
        card.starts_with("<!-- dataset card written by trajforge export"),
        "{card}"
    );
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("dataset_info.json")).expect("info"),
    )
    .expect("json");
    assert_eq!(info["data"]["written_by"], "trajforge export", "{info}");
    // A folder of its own beside the user's README works, and leaves it alone.
    std::fs::write(dir.path().join("README.md"), "mine\n").expect("write");
    let own = dir.path().join("my-dataset/data.jsonl");
    let mut args = vec!["--format", "raw", "--out", own.to_str().expect("utf-8")];
    args.extend(no_tokens());
    export_ok(&args);
    assert!(dir.path().join("my-dataset/README.md").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("README.md")).expect("read"),
        "mine\n"
    );
}

/// The data file itself is never replaced unless the user passes --force: a file of theirs at
/// --out stays byte for byte, and nothing else is written.
#[test]
fn an_existing_data_file_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("data.jsonl");
    let o = out.to_str().expect("utf-8");
    let mine = "{\"my\": \"own data\"}\n";
    std::fs::write(&out, mine).expect("write");
    let mut args = vec!["--format", "openai", "--out", o];
    args.extend(no_tokens());
    let run = export(&args);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("data.jsonl: exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).expect("read"), mine);
    assert!(!dir.path().join("README.md").exists(), "a card was written");
    export_ok(&args); // with --force
    let written = std::fs::read_to_string(&out).expect("read");
    assert_ne!(written, mine);
    assert!(written.lines().count() > 0 && written.contains("\"messages\""));
}

/// When the filters remove most rows, the summary names the filter, what the rows had against
/// the limit and the option that keeps them.
#[test]
fn filters_that_remove_most_rows_say_why_and_how_to_keep_them() {
    let Some(tok) = qwen3_tokenizer() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("t.jsonl");
    let args = [
        "--format",
        "openai",
        "--out",
        out.to_str().expect("utf-8"),
        "--tokenizer",
        tok.to_str().expect("utf-8"),
        "--max-tool-tokens",
        "5",
    ];
    let text = export(&args);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(text.starts_with("0 of "), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tool_tokens removed"))
        .unwrap_or_else(|| panic!("no note:\n{text}"));
    assert!(
        line.contains("tokens per tool response (limit 5)") && line.contains("--max-tool-tokens"),
        "{line}"
    );
    let summary = export_ok(&args);
    let note = summary["notes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["filter"] == "tool_tokens"))
        .unwrap_or_else(|| panic!("no tool_tokens note: {summary}"));
    let removed: u64 = summary["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .filter(|r| r[0] == "tool_tokens")
        .map(|r| r[1].as_u64().unwrap_or(0))
        .sum();
    assert!(removed > 0, "{summary}");
    assert_eq!(note["removed"].as_u64(), Some(removed), "{summary}");
    assert_eq!(
        note["keep_with"],
        "--max-tool-tokens N above that mean (0: off)"
    );
}

/// A web run's rows carry the site, the intent, the start page and the final page, and its
/// dataset card speaks of the site and its intents, not of a repository or line recall.
#[test]
fn web_exports_carry_the_task_and_a_web_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = crate::fixture_run_copy("web", dir.path());
    for ext in ["jsonl", "parquet"] {
        let out = dir.path().join(format!("out/data.{ext}"));
        let summary = export_run_ok(
            &run,
            &[
                "--format",
                "openai",
                "--out",
                out.to_str().expect("utf-8"),
                "--max-tokens",
                "0",
            ],
        );
        assert!(summary["written"].as_u64() > Some(0), "{summary}");
        assert!(summary["start_pages"].as_u64() > Some(0), "{summary}");
        assert!(
            summary["intents"]
                .as_object()
                .is_some_and(|m| !m.is_empty()),
            "{summary}"
        );
    }
    for row in jsonl(&dir.path().join("out/data.jsonl")) {
        assert!(
            row["site"]
                .as_str()
                .is_some_and(|s| s.starts_with("http://")),
            "{row}"
        );
        assert!(
            row["intent"].as_str().is_some_and(|s| !s.is_empty()),
            "{row}"
        );
        let start = row["start_url"].as_str().expect("start");
        assert!(
            start.starts_with(row["site"].as_str().unwrap_or("-")),
            "{row}"
        );
        assert!(row["final_url"].as_str().is_some(), "{row}");
    }
    if let Some(py) = trajforge_testkit::reference_python("pyarrow.parquet") {
        run_ok(
            Command::new(py)
                .args([
                    "-c",
                    "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); \
                 assert all(r['intent'] and r['start_url'] and r['site'] for r in t.to_pylist()), t.schema",
                ])
                .arg(dir.path().join("out/data.parquet")),
            "pyarrow check",
        );
    }
    let card = std::fs::read_to_string(dir.path().join("out/README.md")).expect("card");
    for needle in [
        "- site: `http://",
        "## Intents",
        "## Agreement r",
        "agreement threshold",
    ] {
        assert!(card.contains(needle), "card lacks {needle}:\n{card}");
    }
    for absent in [
        "repository:",
        "bug-type menu",
        "Line recall",
        "## Menu entries",
    ] {
        assert!(!card.contains(absent), "card has {absent}:\n{card}");
    }
}

#[test]
fn temporaries_of_killed_exports_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("data.jsonl");
    let mut child = Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let stale = dir.path().join(format!(".data.jsonl.tmp-{dead}"));
    let live = dir
        .path()
        .join(format!(".data.jsonl.tmp-{}", std::process::id()));
    let other = dir.path().join(format!(".other.jsonl.tmp-{dead}"));
    for f in [&stale, &live, &other] {
        std::fs::write(f, "half a dataset").expect("write");
    }
    let mut args = vec!["--format", "raw", "--out", out.to_str().expect("utf-8")];
    args.extend(no_tokens());
    let run = export(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.is_file());
    assert!(
        !stale.exists(),
        "a killed export's temporary file is removed"
    );
    assert!(live.exists(), "a running export's temporary file is kept");
    assert!(other.exists(), "another target's file is not touched");
}
