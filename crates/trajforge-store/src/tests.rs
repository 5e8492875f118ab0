//! Tests of the store as a whole.

use std::time::Duration;

use serde_json::json;

use super::*;

/// A stage this version does not know, with its payload as written.
fn other(name: &str, payload: serde_json::Value) -> Stage {
    Stage::Other(StageName::from(name), payload)
}

/// A new store in a fresh folder, holding [`jobs`]`(n)`.
fn store_with_jobs(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.add_jobs(&jobs(n)).expect("add");
    (dir, store)
}

/// The job `owner` claims next for `lease`, failing when there is none.
fn claim(store: &Store, owner: &str, lease: Duration) -> Job {
    store.claim(owner, lease).expect("claim").expect("job")
}

/// Asserts that no job is left for a worker to claim.
fn assert_nothing_to_claim(store: &Store) {
    assert!(
        store
            .claim("w", Duration::from_secs(1))
            .expect("claim")
            .is_none()
    );
}

fn jobs(n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n).map(|i| (format!("f{i}"), json!({"i": i}))).collect()
}

#[test]
fn sessions_span_from_their_start_to_their_last_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert!(store.session_spans().expect("spans").is_empty());
    store.add_jobs(&jobs(1)).expect("add");
    store.begin_session("w1").expect("begin");
    std::thread::sleep(Duration::from_millis(30));
    let job = claim(&store, "w1", Duration::from_secs(60));
    store
        .record_stage("w1", job.id, 1, &other("x", json!({})), None, None)
        .expect("stage");
    std::thread::sleep(Duration::from_millis(30));
    store.finish("w1", job.id, &Outcome::Kept).expect("finish");
    let spans = store.session_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    // The first stage came 30 ms after the start: that time counts too.
    assert!(spans[0].1 - spans[0].0 >= 60, "{spans:?}");
    // A later session that commits nothing spans nothing; reopening keeps the sessions.
    store.begin_session("w2").expect("begin");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let again = store.session_spans().expect("spans");
    assert_eq!(again[0], spans[0]);
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].0, again[1].1);
}

#[test]
fn teacher_server_figures_are_cumulative_per_process_and_summed_per_server() {
    let (_dir, store) = store_with_jobs(0);
    check_teacher_server_figures(&store);
}

/// Figures recorded by two processes read back summed per server (either backend).
pub(crate) fn check_teacher_server_figures(store: &Store) {
    assert!(store.teacher_servers().expect("none yet").is_empty());
    let figures =
        |url: &str, requests: u64, errors: u64, latency: f64| trajforge_chat::ServerStats {
            url: url.into(),
            requests,
            errors,
            latency_seconds: latency,
            max_latency_seconds: latency / 2.0,
            ejections: errors.min(1),
        };
    // Process p1 records twice (the second snapshot replaces the first); p2 once.
    let (a, b) = ("http://a/v1", "http://b/v1");
    store
        .record_teacher_servers("p1", &[figures(b, 1, 0, 1.0), figures(a, 2, 1, 2.0)])
        .expect("record");
    store
        .record_teacher_servers("p1", &[figures(b, 5, 0, 3.0), figures(a, 4, 2, 4.0)])
        .expect("record");
    store
        .record_teacher_servers("p2", &[figures(a, 10, 0, 8.0)])
        .expect("record");
    let all = store.teacher_servers().expect("read");
    assert_eq!(
        all,
        vec![
            figures(b, 5, 0, 3.0),
            // Summed, but the slowest answer is the slowest of either process.
            trajforge_chat::ServerStats {
                ejections: 1,
                max_latency_seconds: 4.0,
                ..figures(a, 14, 2, 12.0)
            }
        ]
    );
}

#[test]
fn jobs_are_added_once_and_claimed_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.add_jobs(&jobs(3)).expect("add"), 3);
    assert_eq!(
        store.add_jobs(&jobs(5)).expect("add"),
        2,
        "existing keys are not added again"
    );
    let a = claim(&store, "w1", Duration::from_secs(60));
    let b = claim(&store, "w2", Duration::from_secs(60));
    assert_eq!((a.id, b.id), (0, 1));
    assert_eq!(a.payload, json!({"i": 0}));
    let counts = store.counts().expect("counts");
    assert_eq!((counts.pending, counts.running, counts.done), (3, 2, 0));
}

#[test]
fn expired_or_dead_leases_are_reclaimed() {
    let (_dir, store) = store_with_jobs(1);
    let job = claim(&store, "dead", Duration::from_millis(0));
    std::thread::sleep(Duration::from_millis(5));
    // The lease expired: another worker may take it, and the first one can no longer write.
    let again = claim(&store, "alive", Duration::from_secs(60));
    assert_eq!(again.id, job.id);
    let err = store
        .record_stage("dead", job.id, 1, &other("x", json!({})), None, None)
        .expect_err("lease lost");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    // A dead owner's jobs go back to pending at once.
    assert_eq!(store.reclaim(|o| o == "alive").expect("reclaim"), 1);
    assert_eq!(store.counts().expect("counts").pending, 1);
}

#[test]
fn stages_are_idempotent_and_survive_reopening() {
    let (dir, store) = store_with_jobs(1);
    let job = claim(&store, "w", Duration::from_secs(60));
    let t = TrajectoryRecord {
        rollout: Rollout::T1,
        exit_status: ExitLabel::Submitted,
        patch: Some("p".into()),
        data: json!({"steps": 1}),
    };
    let u = UsageRecord {
        prompt_tokens: 10,
        completion_tokens: 2,
        model_seconds: 0.5,
    };
    store
        .record_stage(
            "w",
            job.id,
            1,
            &other("x", json!({"a": 1})),
            Some(&t),
            Some(u),
        )
        .expect("record");
    store
        .record_stage(
            "w",
            job.id,
            1,
            &other("x", json!({"a": 2})),
            Some(&t),
            Some(u),
        )
        .expect("record again");
    store
        .set_verdict("w", job.id, 1, &Rollout::T1, true, None)
        .expect("verdict");
    store.finish("w", job.id, &Outcome::Kept).expect("finish");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let stages = store.all_stages().expect("stages");
    assert_eq!(stages.len(), 1);
    assert_eq!(stages[0].stage, other("x", json!({"a": 2})));
    let trajs = store.trajectories(true).expect("trajectories");
    assert_eq!(trajs.len(), 1);
    assert!(trajs[0].meta.kept);
    let mut streamed = Vec::new();
    store
        .for_each_trajectory(true, |row| {
            streamed.push(row);
            true
        })
        .expect("stream");
    assert_eq!(streamed.len(), 1);
    assert_eq!(streamed[0].data, r#"{"steps":1}"#);
    assert_eq!(streamed[0].job_key.as_deref(), Some("f0"));
    let stages: serde_json::Value =
        serde_json::from_str(streamed[0].stages.as_deref().expect("stages")).expect("json");
    assert_eq!(stages, json!({"x": {"a": 2}}));
    assert_eq!(store.trajectory_count().expect("count"), 1);
    assert_eq!(
        store.usage_by_stage().expect("usage")[0].1.prompt_tokens,
        10,
        "usage is not double counted"
    );
    assert!(store.has_other_t1_patch(99, "p").expect("dup"));
    assert!(!store.has_other_t1_patch(0, "p").expect("dup"));
    assert_eq!(store.jobs().expect("jobs")[0].result, Some(Outcome::Kept));
    assert_nothing_to_claim(&store);
}

#[test]
fn imported_jobs_are_added_once_and_done() {
    let (_dir, store) = store_with_jobs(1);
    let job = |key: &str| ImportedJob {
        key: key.into(),
        also_known_as: None,
        payload: json!({"k": key}),
        result: Outcome::Kept,
        stages: vec![other("import-x", json!({"line": 1}))],
        trajectory: TrajectoryRecord {
            rollout: Rollout::T2,
            exit_status: ExitLabel::Submitted,
            patch: Some("p".into()),
            data: json!({"steps": []}),
        },
        recall: Some(0.5),
        kept: true,
    };
    let c = store
        .import_jobs(&[job("a"), job("b")], &[("kind", "import".into())])
        .expect("import");
    assert_eq!((c.added, c.duplicates), (2, 0));
    let c = store
        .import_jobs(&[job("b"), job("c")], &[])
        .expect("import again");
    assert_eq!((c.added, c.duplicates), (1, 1));
    let all = store.jobs().expect("jobs");
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].key, "c");
    assert_eq!(all[3].status, JobStatus::Done);
    let trajs = store.trajectories(true).expect("trajectories");
    assert_eq!(trajs.len(), 3);
    assert_eq!(trajs[0].meta.recall, Some(0.5));
    assert!(trajs.iter().all(|t| t.meta.kept && t.meta.attempt == 1));
    assert_eq!(store.all_stages().expect("stages").len(), 3);
    assert_eq!(store.meta("kind").expect("meta").as_deref(), Some("import"));
    // Imported jobs are finished: a worker never claims them.
    let claimed = claim(&store, "w", Duration::from_secs(1));
    assert_eq!(claimed.key, "f0");
    assert_nothing_to_claim(&store);
}

#[test]
fn meta_round_trip_and_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.set_meta("k", "v1").expect("set");
    store.set_meta("k", "v2").expect("set");
    assert_eq!(store.meta("k").expect("get").as_deref(), Some("v2"));
    store.set_meta("schema_version", "999").expect("set");
    drop(store);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Version { found: 999, .. })
    ));
}

/// Three jobs, the first two producing the same P1, worked through as the pipeline does
/// (P1 committed, duplicate check, self-check or rejection, finish), the P1s committed in
/// `order`; every job taken back to its check is worked again. The results by job.
pub(crate) fn duplicates_settled_in(store: &Store, order: [i64; 3]) -> Vec<(i64, String)> {
    use crate::model::{RejectedStage, SelfcheckAnswer, SelfcheckStage};
    let lease = Duration::from_secs(60);
    let patch = |job: i64| if job < 2 { "same" } else { "other" };
    let r1 = || {
        let v = json!({"bug": "b", "bug_index": 0, "task": "t", "exit": "submitted", "patch": "p", "steps": 1});
        Stage::from_json(StageName::Rollout1, v).expect("rollout1")
    };
    let t1 = |p: &str| TrajectoryRecord {
        rollout: Rollout::T1,
        exit_status: ExitLabel::Submitted,
        patch: Some(p.into()),
        data: json!({"steps": []}),
    };
    // The check and what follows it, for a job whose P1 is committed; a job taken back
    // meanwhile (its lease revoked) commits nothing more.
    let check = |job: i64| {
        let outcome = if store.has_other_t1_patch(job, patch(job)).expect("check") {
            store.record_stage(
                "w",
                job,
                1,
                &Stage::Rejected(RejectedStage::new(Outcome::P1Duplicate)),
                None,
                None,
            )
        } else {
            let sc = SelfcheckStage {
                answer: SelfcheckAnswer::Yes,
                tries: 1,
            };
            store.record_stage("w", job, 1, &Stage::Selfcheck(sc), None, None)
        };
        let result = if store.has_other_t1_patch(job, patch(job)).expect("check") {
            Outcome::P1Duplicate
        } else {
            Outcome::Kept
        };
        match outcome.and_then(|()| store.finish("w", job, &result)) {
            Ok(()) | Err(StoreError::LeaseLost { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    };
    store.add_jobs(&jobs(3)).expect("add");
    for _ in 0..3 {
        claim(store, "w", lease);
    }
    for job in order {
        store
            .record_stage("w", job, 1, &r1(), Some(&t1(patch(job))), None)
            .expect("p1");
        check(job);
    }
    // Jobs taken back are claimed again and resume at their check (their P1 is kept).
    while let Some(job) = store.claim("w", lease).expect("claim") {
        check(job.id);
    }
    store
        .jobs()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j.id,
                j.result
                    .as_ref()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// What [`duplicates_settled_in`] must give whatever the order: the earlier job of the
/// sample keeps the P1.
pub(crate) fn check_duplicates_follow_sample_order(stores: impl Fn() -> Store) {
    let expected = vec![
        (0, "kept".to_string()),
        (1, "p1_duplicate".to_string()),
        (2, "kept".to_string()),
    ];
    for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]] {
        assert_eq!(
            duplicates_settled_in(&stores(), order),
            expected,
            "order {order:?}"
        );
    }
}

#[test]
fn duplicate_p1s_are_decided_by_sample_order_not_completion_order() {
    let dirs = std::cell::RefCell::new(Vec::new());
    check_duplicates_follow_sample_order(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        dirs.borrow_mut().push(dir);
        store
    });
}

#[test]
fn a_run_from_before_the_sample_order_rule_keeps_judging_against_any_other_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    // As a store written before the rule: no marker.
    store
        .with_connection(|c| c.execute("DELETE FROM meta WHERE key = 'p1_duplicates'", []))
        .expect("unmark");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    // The later job committed first and keeps its P1; the earlier one is the duplicate, and
    // the later job's finished result is never taken back.
    assert_eq!(
        duplicates_settled_in(&store, [1, 0, 2]),
        vec![
            (0, "p1_duplicate".to_string()),
            (1, "kept".to_string()),
            (2, "kept".to_string()),
        ]
    );
}
