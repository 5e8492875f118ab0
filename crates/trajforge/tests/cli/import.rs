//! `trajforge import` on the fixtures of trajforge-import (real SWE-agent and mini-swe-agent files, and
//! SERA / SWE-agent records built after their schemas from episodes run on the sample
//! repository; see crates/trajforge-import/fixtures/README.md), then `export` and back.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use trajforge_store::Store;

use crate::{assert_success, repo_root, stderr, stdout, trajforge, write_file};

fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("crates/trajforge-import/fixtures")
        .join(name)
}

fn sera() -> String {
    fixture("sera/sera.jsonl").display().to_string()
}

fn mini() -> String {
    fixture("mini-swe-agent/chunked_even.traj.json")
        .display()
        .to_string()
}

fn swe() -> String {
    fixture("swe-agent/split_into.traj").display().to_string()
}

fn import(from: &str, files: &[&str], run: &Path, extra: &[&str], cache: &Path) -> Output {
    let run = run.display().to_string();
    let mut args = vec!["import", "--from", from];
    args.extend_from_slice(files);
    args.extend_from_slice(&["--into", &run]);
    args.extend_from_slice(extra);
    trajforge(&args, cache)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn status(run: &Path, cache: &Path) -> Value {
    let out = trajforge(&["status", &run.display().to_string(), "--json"], cache);
    assert_success(&out);
    json_of(&out)
}

#[test]
fn each_format_lands_in_a_new_run_that_status_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let out = import("sera", &[&sera()], &run, &["--json"], tmp.path());
    assert_success(&out);
    let summary = json_of(&out);
    assert_eq!(
        (summary["added"].as_u64(), summary["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(summary["threshold"], 0.5);
    assert!(
        stderr(&out).contains("sera.jsonl: 2 records, 0 skipped; 2 added, 0 already in the run"),
        "{}",
        stderr(&out)
    );
    for (from, file) in [("mini-swe-agent", mini()), ("swe-agent", swe())] {
        let out = import(from, &[&file], &run, &[], tmp.path());
        assert!(out.status.success(), "{from}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("1 records, 0 skipped; 1 added"),
            "{}",
            stderr(&out)
        );
    }
    let s = status(&run, tmp.path());
    // SERA: two T2 verified against their T1 patch (r = 1 and 0.5, threshold 0.5);
    // mini-swe-agent and SWE-agent: T1 without a reference, kept because they submitted.
    assert_eq!(
        (s["functions"].as_u64(), s["done"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(
        (s["kept_t2"].as_u64(), s["kept_t1"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(s["recall_exactly_one"], 1);
    assert_eq!(s["exits"]["t1/submitted"], 2);
    let store = Store::open(&run).expect("store");
    assert_eq!(store.meta("kind").expect("meta").as_deref(), Some("import"));
    assert_eq!(
        store.meta("settings").expect("meta"),
        None,
        "an import run has no generation settings"
    );
    let log: Value =
        serde_json::from_str(&store.meta("imports").expect("meta").expect("log")).expect("json");
    assert_eq!(log.as_array().map(Vec::len), Some(3));
}

#[test]
fn importing_the_same_files_again_duplicates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let first = import("sera", &[&sera()], &run, &[], tmp.path());
    assert_success(&first);
    let again = import("sera", &[&sera()], &run, &["--json"], tmp.path());
    assert_success(&again);
    let summary = json_of(&again);
    assert_eq!(
        (summary["added"].as_u64(), summary["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(status(&run, tmp.path())["functions"], 2);
}

#[test]
fn corrupt_records_are_skipped_with_their_line_and_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(fixture("sera/sera.jsonl")).expect("fixture");
    let lines: Vec<&str> = text.lines().collect();
    let body = [
        lines[0],
        &lines[1][..200],
        r#"{"instance_id": "x", "messages": "not json"}"#,
        "",
        "42",
        lines[1],
    ]
    .join("\n");
    let bad = write_file(tmp.path(), "bad.jsonl", &body);
    let run = tmp.path().join("run");
    let out = import("sera", &[&bad], &run, &["--json"], tmp.path());
    assert_success(&out);
    let err = stderr(&out);
    for said in [
        format!("{bad}:2: skipped: truncated JSON"),
        format!("{bad}:3: skipped: `messages` is not a JSON list"),
        format!("{bad}:5: skipped: expected a JSON object per record, found a number"),
        "bad.jsonl: 2 records, 3 skipped; 2 added, 0 already in the run".to_string(),
    ] {
        assert!(err.contains(&said), "{err}");
    }
    let summary = json_of(&out);
    let skipped: Vec<u64> = summary["files"][0]["skipped"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["line"].as_u64())
        .collect();
    assert_eq!(skipped, [2, 3, 5]);
    assert_eq!(summary["added"], 2);
}

#[test]
fn nothing_valid_exits_1_and_leaves_no_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    // A mini-swe-agent trajectory is not a SERA record.
    let out = import("sera", &[&mini()], &run, &[], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not a SERA record"), "{err}");
    assert!(err.contains("use --from mini-swe-agent"), "{err}");
    assert!(err.contains("error: nothing to import"), "{err}");
    assert!(!run.exists(), "no run folder for nothing");
}

#[test]
fn bad_input_exits_2_before_anything_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let missing = tmp.path().join("missing.jsonl").display().to_string();
    let out = import("sera", &[&sera(), &missing], &run, &[], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing.jsonl: cannot read"),
        "{}",
        stderr(&out)
    );
    assert!(!run.exists(), "the readable file was not imported either");
    let out = import("sweagent", &[&sera()], &run, &[], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("swe-agent"),
        "the valid names are listed: {}",
        stderr(&out)
    );
    let out = import("sera", &[&sera()], &run, &["--threshold", "2"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_generated_run_gains_the_records_and_keeps_its_settings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let settings = trajforge_pipeline::RunSettings {
        repo: "examples/sample-repo".into(),
        commit: "abc123".into(),
        menu: "m".into(),
        demos: "d".into(),
        prompts: "p".into(),
        threshold: 0.75,
        attempts: 3,
        seed: 0,
        model: "glm".into(),
        test_cmd: None,
        max_steps: 115,
        include_tests: false,
        keep_different_final: false,
        excluded: None,
        sandbox: None,
    };
    let stored = serde_json::to_string(&settings).expect("json");
    {
        let store = Store::open(&run).expect("store");
        store.set_meta("settings", &stored).expect("meta");
        store
            .add_jobs(&[(
                "more_itertools/more.py::first@253".into(),
                serde_json::json!({"name": "first"}),
            )])
            .expect("job");
    }
    let out = import("sera", &[&sera()], &run, &["--json"], tmp.path());
    assert_success(&out);
    // The run's own threshold applies: r = 0.5 is below 0.75.
    assert_eq!(json_of(&out)["threshold"], 0.75);
    let s = status(&run, tmp.path());
    assert_eq!(
        (
            s["functions"].as_u64(),
            s["pending"].as_u64(),
            s["kept_t2"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(s["results"]["low_recall"], 1);
    let store = Store::open(&run).expect("store");
    assert_eq!(
        store.meta("settings").expect("meta"),
        Some(stored),
        "settings untouched"
    );
    assert_eq!(
        store.meta("kind").expect("meta"),
        None,
        "still a generated run"
    );
    // The generated job is still the one a resumed `generate` would claim.
    let job = store
        .claim("test", std::time::Duration::from_secs(5))
        .expect("claim")
        .expect("a pending job");
    assert_eq!(job.payload["name"], "first");
}

#[test]
fn import_export_import_keeps_the_conversations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = tmp.path().join("first");
    for (from, file) in [
        ("sera", sera()),
        ("mini-swe-agent", mini()),
        ("swe-agent", swe()),
    ] {
        let out = import(from, &[&file], &first, &[], tmp.path());
        assert!(out.status.success(), "{from}: {}", stderr(&out));
    }
    let data = tmp.path().join("train.jsonl");
    let out = trajforge(
        &[
            "export",
            &first.display().to_string(),
            "--format",
            "openai",
            "--out",
            &data.display().to_string(),
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "export: {}", stderr(&out));
    let rows = std::fs::read_to_string(&data).expect("exported");
    assert_eq!(
        rows.lines().count(),
        4,
        "every imported trajectory is exported"
    );

    let second = tmp.path().join("second");
    let out = import(
        "mini-swe-agent",
        &[&data.display().to_string()],
        &second,
        &["--json"],
        tmp.path(),
    );
    assert!(out.status.success(), "re-import: {}", stderr(&out));
    assert_eq!(json_of(&out)["added"], 4);

    let conversations = |run: &Path| -> Vec<(Value, Value)> {
        let store = Store::open(run).expect("store");
        let mut v: Vec<(Value, Value)> = store
            .trajectories(true)
            .expect("trajectories")
            .into_iter()
            .map(|t| (t.data["messages"].clone(), t.data["tools"].clone()))
            .collect();
        v.sort_by_key(|(m, _)| m.to_string());
        v
    };
    let (a, b) = (conversations(&first), conversations(&second));
    assert_eq!(a.len(), 4);
    for ((ma, ta), (mb, tb)) in a.iter().zip(&b) {
        assert_eq!(ma, mb, "messages survive import, export and import");
        assert_eq!(ta, tb);
    }
}

#[test]
fn the_same_trajectory_in_another_layout_is_not_added_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let pretty = fixture("swe-agent/v1-missing-colon.traj");
    let value: Value =
        serde_json::from_slice(&std::fs::read(&pretty).expect("fixture")).expect("JSON");
    let compact = write_file(tmp.path(), "runs.jsonl", &format!("{value}\n"));
    let first = import(
        "swe-agent",
        &[&pretty.display().to_string()],
        &run,
        &[],
        tmp.path(),
    );
    assert_success(&first);
    let again = import("swe-agent", &[&compact], &run, &["--json"], tmp.path());
    assert_success(&again);
    let summary = json_of(&again);
    assert_eq!(
        (summary["added"].as_u64(), summary["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
}

#[test]
fn a_dataset_row_is_refused_with_its_line_and_the_format_it_looks_like() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let rows = write_file(
        tmp.path(),
        "rows.jsonl",
        "\n{\"instance_id\": \"a__b-1\", \"messages\": \"[]\", \"rollout_patch\": \"\"}\n",
    );
    let out = import("swe-agent", &[&rows], &run, &[], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for (said, why) in [
        (format!("{rows}:2:"), "the file and line are named"),
        ("error: nothing to import".into(), "the error"),
        ("--from sera".into(), "the hint names the format"),
    ] {
        assert!(err.contains(&said), "{why}: {err}");
    }
    assert!(!run.exists(), "no run folder for nothing");
}

#[test]
fn text_action_runs_export_with_their_tool_calls_and_schemas() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let old = fixture("swe-agent/v0.4.0-missing-colon.traj");
    assert_success(&import(
        "swe-agent",
        &[&old.display().to_string()],
        &run,
        &[],
        tmp.path(),
    ));
    let out = tmp.path().join("data").join("train.jsonl");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let export = trajforge(
        &[
            "export",
            &run.display().to_string(),
            "--format",
            "openai",
            "--out",
            &out.display().to_string(),
            "--max-tool-tokens",
            "0",
        ],
        tmp.path(),
    );
    assert_success(&export);
    let row: Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .expect("data")
            .lines()
            .next()
            .expect("a row"),
    )
    .expect("JSON");
    let source: Value =
        serde_json::from_slice(&std::fs::read(&old).expect("fixture")).expect("JSON");
    let calls: Vec<&str> = row["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .filter_map(|c| c["function"]["name"].as_str())
        .collect();
    let actions = source["trajectory"].as_array().expect("steps");
    assert_eq!(calls.len(), actions.len(), "{calls:?}");
    assert_eq!(calls.last(), Some(&"submit"));
    let tools: Vec<&str> = row["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    for c in &calls {
        assert!(tools.contains(c), "{c} has a schema: {tools:?}");
    }
}

#[test]
fn a_huge_file_is_read_record_by_record_with_notes_for_what_is_cut() {
    // A record line over the 64 MiB limit, 1,200 lines that are not records, and 300 records.
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(fixture("sera/sera.jsonl")).expect("fixture");
    let first = text.lines().next().expect("a record");
    let path = tmp.path().join("huge.jsonl");
    let mut body = format!("{{\"messages\": \"{}\"}}\n", "x".repeat(65 << 20));
    body.push_str(&"42\n".repeat(1200));
    for i in 0..300 {
        let mut v: Value = serde_json::from_str(first).expect("json");
        v["copy"] = i.into();
        body.push_str(&format!("{v}\n"));
    }
    std::fs::write(&path, body).expect("write");
    let run = tmp.path().join("run");
    let out = import(
        "sera",
        &[&path.display().to_string()],
        &run,
        &["--json"],
        tmp.path(),
    );
    assert_success(&out);
    let err = stderr(&out);
    let note = format!(
        "huge.jsonl:1: skipped: record of {} bytes is over the 64 MiB limit: not read",
        (65 << 20) + 16
    );
    for said in [
        note.as_str(),
        "huge.jsonl: ... 1181 more skipped (--json lists the first 1000)",
        "huge.jsonl: 300 records, 1201 skipped; 300 added, 0 already in the run",
    ] {
        assert!(err.contains(said), "{said}\n{err}");
    }
    let summary = json_of(&out);
    assert_eq!(summary["skipped"], 1201);
    assert_eq!(summary["files"][0]["skipped_count"], 1201);
    assert_eq!(
        summary["files"][0]["skipped"].as_array().map(Vec::len),
        Some(1000)
    );
    assert_eq!(status(&run, tmp.path())["functions"], 300);
}
