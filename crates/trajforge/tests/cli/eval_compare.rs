//! `trajforge eval compare` on results files as `trajforge eval` writes them.

use std::path::Path;
use std::process::{Command, Output};

use trajforge_eval::{RESULTS_FILE, TaskKind, TaskResult, write_jsonl};

use crate::{assert_success, stderr, stdout};

fn row(
    id: String,
    seed: u32,
    kind: TaskKind,
    model: &str,
    resolved: bool,
    recall: f64,
) -> TaskResult {
    TaskResult {
        instance_id: id,
        seed,
        kind,
        model: model.into(),
        resolved: (kind == TaskKind::Hard).then_some(resolved),
        recall,
        exit_status: if resolved { "submitted" } else { "step_limit" }.into(),
        steps: 7,
        prompt_tokens: 1200,
        completion_tokens: 300,
        cost_usd: None,
        error: None,
    }
}

/// Writes `rows` as the evaluation folder `dir/name`.
fn eval_dir(dir: &Path, name: &str, rows: &[TaskResult]) {
    let eval = dir.join(name);
    std::fs::create_dir_all(&eval).expect("mkdir");
    write_jsonl(&eval.join(RESULTS_FILE), rows).expect("write results");
}

/// 30 hard tasks x 2 seeds, every one resolved with the gold patch, or none with nothing.
fn uniform(model: &str, resolved: bool) -> Vec<TaskResult> {
    (0..30)
        .flat_map(|t| {
            (0..2).map(move |s| {
                let recall = if resolved { 1.0 } else { 0.0 };
                row(
                    format!("more-itertools-{t:03}"),
                    s,
                    TaskKind::Hard,
                    model,
                    resolved,
                    recall,
                )
            })
        })
        .collect()
}

/// `eval compare` run in `dir` (so the folders print as given).
fn compare(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["eval", "compare"])
        .args(args)
        .current_dir(dir)
        .env("TRAJFORGE_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("trajforge runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).expect("one JSON object")
}

#[test]
fn gold_against_nothing_is_better_and_the_reverse_worse() {
    let dir = tempfile::tempdir().expect("tempdir");
    eval_dir(dir.path(), "nothing", &uniform("submits-nothing", false));
    eval_dir(dir.path(), "gold", &uniform("applies-gold", true));

    let out = compare(dir.path(), &["nothing", "gold"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("verdict: B resolves 100.0 points more, 95% CI [100.0, 100.0]: better\n"),
        "{text}"
    );
    assert!(
        text.contains("0 resolved by A only, 60 by B only"),
        "{text}"
    );

    let out = compare(dir.path(), &["nothing", "gold", "--json"]);
    assert_success(&out);
    let v = json(&out);
    assert_eq!(v["verdict"]["outcome"], "better");
    assert_eq!(v["verdict"]["metric"], "resolved");
    assert_eq!(v["paired_rows"], 60);
    assert_eq!(v["hard_tasks"], 30);
    assert_eq!(v["resolved"]["estimate"], 1.0);
    assert_eq!(v["mcnemar"]["b_only"], 60);
    assert!(v["mcnemar"]["p_value"].as_f64().expect("p") < 1e-15, "{v}");
    assert_eq!(v["a"]["models"][0], "submits-nothing");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(30));
    assert_eq!(
        v["verdict"]["text"].as_str().map(|t| text.contains(t)),
        Some(true),
        "the text and JSON verdicts agree"
    );

    let out = compare(dir.path(), &["gold", "nothing", "--json"]);
    assert_success(&out);
    let v = json(&out);
    assert_eq!(v["verdict"]["outcome"], "worse");
    assert_eq!(v["resolved"]["estimate"], -1.0);
}

#[test]
fn a_run_against_itself_shows_no_difference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mixed: Vec<_> = uniform("m", true)
        .into_iter()
        .take(20)
        .chain(uniform("m", false).into_iter().skip(20))
        .collect();
    eval_dir(dir.path(), "run", &mixed);

    let out = compare(dir.path(), &["run", "run"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains(
            "verdict: no difference the data can show (B−A 0.0 points, 95% CI [0.0, 0.0])"
        ),
        "{text}"
    );
    assert!(text.contains("p = 1.0000"), "{text}");

    let v = json(&compare(dir.path(), &["run", "run", "--json"]));
    assert_eq!(v["verdict"]["outcome"], "no_difference");
    assert_eq!(v["resolved"]["estimate"], 0.0);
    assert_eq!(v["mcnemar"]["p_value"], 1.0);
    assert_eq!(v["changes"], serde_json::json!([]));
}

#[test]
fn text_report_snapshot() {
    // 12 tasks: 10 hard with 2 seeds (A resolves tasks 0-5, B tasks 2-8), 2 soft; A has a
    // seed B lacks.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for t in 0..10u32 {
        for s in 0..2 {
            let id = format!("more-itertools-{t:02}");
            let ra = t < 6;
            let rb = (2..9).contains(&t) && !(t == 8 && s == 1);
            a.push(row(
                id.clone(),
                s,
                TaskKind::Hard,
                "teacher",
                ra,
                if ra { 0.9 } else { 0.3 },
            ));
            b.push(row(
                id,
                s,
                TaskKind::Hard,
                "student",
                rb,
                if rb { 0.8 } else { 0.1 },
            ));
        }
    }
    for t in 0..2u32 {
        let id = format!("soft-{t}");
        a.push(row(id.clone(), 0, TaskKind::Soft, "teacher", false, 0.2));
        b.push(row(
            id,
            0,
            TaskKind::Soft,
            "student",
            false,
            0.6 - 0.3 * f64::from(t),
        ));
    }
    a.push(row(
        "soft-0".into(),
        1,
        TaskKind::Soft,
        "teacher",
        false,
        0.5,
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    eval_dir(dir.path(), "teacher", &a);
    eval_dir(dir.path(), "student", &b);
    let out = compare(dir.path(), &["teacher", "student"]);
    assert_success(&out);
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn missing_folders_files_and_shared_rows_are_input_errors_with_hints() {
    let dir = tempfile::tempdir().expect("tempdir");
    eval_dir(dir.path(), "one", &uniform("m", true)[..2]);
    eval_dir(dir.path(), "other", &uniform("m", true)[2..4]);
    std::fs::create_dir_all(dir.path().join("empty")).expect("mkdir");

    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["one", "nowhere"],
            "error: nowhere: no such evaluation folder",
            "hint: pass two folders written by `trajforge eval --out`",
        ),
        (
            &["empty", "one"],
            "error: empty: no results.jsonl in this folder",
            "hint: pass the folder given to `trajforge eval --out`",
        ),
        (
            &["one", "other"],
            "error: the two evaluations share no (task, seed) row: A has 2 rows, B has 2",
            "hint: compare two evaluations of the same task file and seeds",
        ),
    ];
    for (args, message, hint) in cases {
        let out = compare(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(message) && err.contains(hint),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }

    std::fs::write(
        dir.path().join("empty").join(RESULTS_FILE),
        "{\"instance_id\": 3}\n",
    )
    .expect("write");
    let out = compare(dir.path(), &["empty", "one"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("results.jsonl:1:"),
        "{}",
        stderr(&out)
    );
}
