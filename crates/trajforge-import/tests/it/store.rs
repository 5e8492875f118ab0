//! Imported records in a run's store: finished jobs, verified against their reference,
//! idempotent, atomic per file, and read back unchanged.

use std::path::PathBuf;
use trajforge_agent::Trajectory;

use trajforge_import::{Format, Layout, Parsed, parse_bytes, read_file, write};
use trajforge_pipeline::status::{Pricing, status};
use trajforge_store::{Outcome, StageName, Store};

use crate::fixture;

/// A new store in a temporary folder, and the SERA fixture's path and records.
fn sera_in_a_new_store() -> (tempfile::TempDir, Store, PathBuf, Parsed) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let file = fixture("sera/sera.jsonl");
    let parsed = read_file(Format::Sera, &file).expect("reads");
    (dir, store, file, parsed)
}

#[test]
fn sera_records_are_verified_like_generated_t2_and_read_back_unchanged() {
    let (_dir, store, file, parsed) = sera_in_a_new_store();
    let counts = write(&store, &file, &parsed, 0.75, &[("kind", "import".into())]).expect("write");
    assert_eq!((counts.added, counts.duplicates), (2, 0));

    let trajs = store.trajectories(true).expect("trajectories");
    assert_eq!(trajs.len(), 2);
    // chunked_even reproduces P1 (r = 1), split_into shares one of two lines (r = 0.5 < 0.75).
    assert_eq!(trajs[0].meta.recall, Some(1.0));
    assert!(trajs[0].meta.kept);
    assert_eq!(trajs[1].meta.recall, Some(0.5));
    assert!(!trajs[1].meta.kept);
    for (t, r) in trajs.iter().zip(&parsed.records) {
        assert_eq!(
            (
                t.meta.rollout.as_str(),
                t.meta.exit_status.as_str(),
                t.meta.attempt
            ),
            ("t2", "submitted", 1)
        );
        assert_eq!(t.meta.patch, r.trajectory.outcome.patch);
        // The library-level round trip: what is read back is what was imported.
        let back: Trajectory = serde_json::from_value(t.data.clone()).expect("a trajectory");
        assert_eq!(back, r.trajectory);
        assert_eq!(t.data["raw"], serde_json::Value::Object(r.raw.clone()));
    }
    let jobs = store.jobs().expect("jobs");
    assert_eq!(jobs[0].payload["name"], "chunked_even");
    assert_eq!(jobs[0].payload["import"]["line"], 1);
    assert_eq!(
        (jobs[0].result.clone(), jobs[1].result.clone()),
        (Some(Outcome::Kept), Some(Outcome::LowRecall))
    );
    let stages: Vec<StageName> = store
        .stages(jobs[1].id)
        .expect("stages")
        .into_iter()
        .map(|s| s.stage.name())
        .collect();
    assert_eq!(stages, [StageName::Import, StageName::Verify]);

    // `status` sees them the way it sees generated pairs.
    let s = status(&store, Pricing::default()).expect("status");
    assert_eq!((s.functions, s.done, s.kept_t2, s.kept_t1), (2, 2, 1, 0));
    assert_eq!(s.recall_exactly_one, 1);
    assert_eq!(s.recall_histogram[5], 1);
    assert_eq!(s.rejections.get("low_recall"), Some(&1));
    assert_eq!(store.meta("kind").expect("meta").as_deref(), Some("import"));
}

#[test]
fn importing_the_same_records_again_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    for (format, name) in [
        (
            Format::MiniSweAgent,
            "mini-swe-agent/chunked_even.traj.json",
        ),
        (Format::SweAgent, "swe-agent/split_into.traj"),
    ] {
        let file = fixture(name);
        let parsed = read_file(format, &file).expect("reads");
        let first = write(&store, &file, &parsed, 0.5, &[]).expect("write");
        let again = write(&store, &file, &parsed, 0.5, &[]).expect("write again");
        assert_eq!((first.added, again.added, again.duplicates), (1, 0, 1));
    }
    let trajs = store.trajectories(false).expect("trajectories");
    assert_eq!(trajs.len(), 2);
    // No reference patch: t1, kept because they were submitted, no recall.
    assert!(
        trajs
            .iter()
            .all(|t| t.meta.rollout == "t1" && t.meta.kept && t.meta.recall.is_none())
    );
    let s = status(&store, Pricing::default()).expect("status");
    assert_eq!((s.kept_t1, s.kept_t2), (2, 0));
    assert_eq!(s.results.get("imported"), Some(&2));
}

#[test]
fn a_file_with_corrupt_lines_imports_the_good_ones_and_names_the_bad() {
    let good = std::fs::read_to_string(fixture("sera/sera.jsonl")).expect("fixture");
    let lines: Vec<&str> = good.lines().collect();
    let text = [
        lines[0],
        &lines[1][..lines[1].len() / 2],
        "",
        r#"{"instance_id": "x", "messages": 5}"#,
        r#"{"instance_id": "y", "messages": "[{\"role\": \"robot\", \"content\": \"hi\"}]"}"#,
        "[1, 2]",
        lines[1],
        lines[0],
    ]
    .join("\n");
    let parsed = parse_bytes(Format::Sera, text.as_bytes(), Layout::Lines);
    let skipped: Vec<(usize, &str)> = parsed
        .skipped
        .iter()
        .map(|s| (s.line, s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(skipped[0].0, 2);
    assert!(skipped[0].1.starts_with("truncated JSON"), "{skipped:?}");
    assert_eq!(
        skipped[1],
        (
            4,
            "`messages` is a number, not a JSON string of the history"
        )
    );
    assert_eq!(skipped[2], (5, "message 0: unknown role \"robot\""));
    assert_eq!(
        skipped[3],
        (6, "expected a JSON object per record, found an array")
    );
    let kept: Vec<usize> = parsed.records.iter().map(|r| r.line).collect();
    assert_eq!(kept, [1, 7, 8]);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let counts = write(
        &store,
        std::path::Path::new("mixed.jsonl"),
        &parsed,
        0.5,
        &[],
    )
    .expect("write");
    // Line 8 repeats line 1: the same record, stored once.
    assert_eq!((counts.added, counts.duplicates), (2, 1));
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let (dir, store, file, parsed) = sera_in_a_new_store();
    // Make the second insert fail inside the transaction: a trigger aborts on the second job.
    let conn = refuse_second_trajectory(dir.path());
    let err =
        write(&store, &file, &parsed, 0.5, &[("kind", "import".into())]).expect_err("aborted");
    assert!(err.to_string().contains("refused"), "{err}");
    drop(conn);
    assert!(
        store.jobs().expect("jobs").is_empty(),
        "no half-written job"
    );
    assert!(store.trajectories(false).expect("trajectories").is_empty());
    assert!(store.all_stages().expect("stages").is_empty());
    assert_eq!(store.meta("kind").expect("meta"), None);
}

/// Install a trigger that refuses a second trajectory row, on a connection of its own.
fn refuse_second_trajectory(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join(trajforge_store::DB_FILE)).expect("open db");
    conn.execute_batch(
        "CREATE TRIGGER refuse_second AFTER INSERT ON trajectories \
         WHEN (SELECT COUNT(*) FROM trajectories) > 1 \
         BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
    )
    .expect("trigger");
    conn
}

#[test]
fn a_large_file_is_written_in_batches_with_the_log_set_last() {
    // 60 distinct SERA records; batches of about 50 KB of source put 4 or 5 in each.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("run")).expect("open");
    let text = std::fs::read_to_string(fixture("sera/sera.jsonl")).expect("fixture");
    let first = text.lines().next().expect("a record");
    let mut body = String::new();
    for i in 0..60 {
        let mut v: serde_json::Value = serde_json::from_str(first).expect("json");
        v["copy"] = i.into();
        body.push_str(&format!("{v}\n"));
    }
    let file = dir.path().join("many.jsonl");
    std::fs::write(&file, body).expect("write");
    let meta = [("kind", "import".to_string())];
    let write = |meta: &[(&str, String)]| {
        let mut writer = trajforge_import::Writer::new(&file, 0.5, 50_000);
        trajforge_import::each_record(Format::Sera, &file, |item| {
            if let trajforge_import::Item::Record(r) = item {
                writer.push(&store, &r).expect("batch");
            }
        })
        .expect("read");
        writer.finish(&store, meta)
    };
    let counts = write(&meta).expect("write");
    assert_eq!((counts.added, counts.duplicates), (60, 0));
    assert_eq!(store.meta("kind").expect("meta").as_deref(), Some("import"));
    assert_eq!(store.trajectories(true).expect("trajectories").len(), 60);
    let again = write(&[]).expect("write again");
    assert_eq!((again.added, again.duplicates), (0, 60));
}
