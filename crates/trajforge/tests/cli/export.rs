//! `trajforge export` on a real run: the real pipeline and sandbox on the shipped sample
//! repository with the scripted SVG teacher, then every format, filter and container.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use trajforge_testkit::code::CodeTeacher;
use trajforge_testkit::{FakeServer, Script};

use crate::run::{sample_git_repo, work_dir};
use crate::{repo_root, stderr, stdout};

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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let teacher = Arc::new(CodeTeacher::new(0));
        let server = rt.block_on(FakeServer::start(Script::handler(move |req| {
            teacher.answer(req)
        })));
        // One function at a time, so the fake server's call ids are the same on every run.
        let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .args(["generate", "--repo"])
            .arg(&repo)
            .args(["--teacher", &server.url(), "--model", "fake-model", "--out"])
            .arg(&run)
            .args(["-n", "8", "--seed", "3", "--work-dir"])
            .arg(&work)
            .args(["--backoff", "0.01", "--concurrency", "1"])
            .env_remove("OPENAI_API_KEY")
            .env_remove("TRAJFORGE_API_KEY")
            .output()
            .expect("generate runs");
        assert!(out.status.success(), "generate: {}", stderr(&out));
        drop(server);
        drop(rt);
        run
    })
}

fn export(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .arg("export")
        .arg(run_dir())
        .args(args)
        .env("TRAJFORGE_MODEL_DIR", "/nonexistent")
        .output()
        .expect("trajforge runs")
}

fn export_ok(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = export(&all);
    assert!(out.status.success(), "export {args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("summary json")
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
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

#[allow(clippy::print_stderr)]
fn qwen3_tokenizer() -> Option<PathBuf> {
    let dir = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/test-data"))
        .join("tokenizers/qwen3");
    if dir.join("tokenizer.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: run scripts/fetch-test-data.sh"
    );
    eprintln!(
        "skipping: no {} (run scripts/fetch-test-data.sh)",
        dir.display()
    );
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
        assert json.loads(r["tools"]) == l["tools"]
        for a, b in zip(r[col], l[col]):
            assert a["role"] == b["role"] and a["content"] == b["content"]
            assert (a["tool_calls"] or []) == b.get("tool_calls", []), (a, b)
    else:
        assert r[col] == l[col], (r[col], l[col])
print(len(rows), typ)
"#;
        let out = Command::new(&py)
            .args(["-c", script])
            .arg(&pq)
            .arg(&js)
            .arg(format)
            .output()
            .expect("python");
        assert!(out.status.success(), "{format}: {}", stderr(&out));
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
