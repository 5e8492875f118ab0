//! Tests of the PostgreSQL backend on a throwaway cluster (trajforge-testkit).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use trajforge_testkit::postgres::cluster;

use super::*;
use crate::model::{ExitLabel, SelfcheckAnswer, SelfcheckStage};

fn open(url: &str, run: &str) -> Store {
    Store::open_at(&Location::parse(url, Some(run)).expect("location")).expect("open")
}

fn jobs(n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n).map(|i| (format!("f{i}"), json!({"i": i}))).collect()
}

fn t1(patch: &str) -> TrajectoryRecord {
    TrajectoryRecord {
        rollout: Rollout::T1,
        exit_status: ExitLabel::Submitted,
        patch: Some(patch.into()),
        data: json!({"steps": []}),
    }
}

fn rollout1() -> Stage {
    let v = json!({"bug": "b", "bug_index": 0, "task": "t", "exit": "submitted", "patch": "p", "steps": 1});
    Stage::from_json(StageName::Rollout1, v).expect("rollout1")
}

#[test]
fn workers_on_separate_connections_claim_every_job_exactly_once() {
    let url = cluster().fresh_database("claims");
    let first = open(&url, "r");
    first.add_jobs(&jobs(40)).expect("add");
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = open(&url, "r");
                let owner = format!("w{w}");
                let mut mine = Vec::new();
                while let Some(job) = store.claim(&owner, Duration::from_secs(60)).expect("claim") {
                    store
                        .finish(&owner, job.id, &Outcome::Kept)
                        .expect("finish");
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (40, 40));
    assert_eq!(first.counts().expect("counts").done, 40);
}

#[test]
fn a_worker_past_its_lease_commits_nothing_and_the_job_is_claimed_again() {
    let url = cluster().fresh_database("lease");
    let store = open(&url, "r");
    store.add_jobs(&jobs(1)).expect("add");
    let job = store
        .claim("slow", Duration::from_millis(200))
        .expect("claim")
        .expect("job");
    std::thread::sleep(Duration::from_millis(350));
    // Expired and not yet taken: still refused, and not renewed either.
    let err = store
        .record_stage("slow", job.id, 1, &rollout1(), Some(&t1("p")), None)
        .expect_err("expired lease");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(
        store.renew("slow", Duration::from_secs(60)).expect("renew"),
        0
    );
    let again = store
        .claim("fast", Duration::from_secs(60))
        .expect("claim")
        .expect("reclaimed");
    assert_eq!(again.id, job.id);
    let err = store
        .finish("slow", job.id, &Outcome::Kept)
        .expect_err("lost lease");
    assert!(
        matches!(&err, StoreError::LeaseLost { holder: Some(h), .. } if h == "fast"),
        "{err}"
    );
    store
        .record_stage("fast", job.id, 1, &rollout1(), Some(&t1("p")), None)
        .expect("holder commits");
    store
        .finish("fast", job.id, &Outcome::Kept)
        .expect("finish");
    assert_eq!(store.trajectory_count().expect("count"), 1);
    assert_eq!(store.stages(job.id).expect("stages").len(), 1);
}

#[test]
fn runs_in_one_database_are_separate() {
    let url = cluster().fresh_database("runs");
    let a = open(&url, "a");
    let b = open(&url, "b");
    a.add_jobs(&jobs(3)).expect("add");
    a.set_meta("settings", "A").expect("meta");
    b.add_jobs(&jobs(5)).expect("add");
    assert_eq!(a.jobs().expect("jobs").len(), 3);
    assert_eq!(b.jobs().expect("jobs").len(), 5);
    assert_eq!(b.meta("settings").expect("meta"), None);
    let missing =
        Store::open_existing_at(&Location::parse(&url, Some("c")).expect("loc")).expect("open");
    assert!(missing.is_none());
    assert!(matches!(
        Location::parse(&url, None),
        Err(StoreError::NoRunName(_))
    ));
    assert!(matches!(
        Location::parse(&url, Some("no spaces")),
        Err(StoreError::RunName(_))
    ));
}

#[test]
fn a_user_who_may_only_read_opens_and_reads_a_current_run_and_cannot_write() {
    let url = cluster().fresh_database("reader");
    let store = open(&url, "r");
    store.add_jobs(&jobs(2)).expect("add");
    store.set_meta("settings", "S").expect("meta");
    drop(store);
    let reader_url = cluster().reader_url(&url, "r");
    let location = Location::parse(&reader_url, Some("r")).expect("location");
    let reader = Store::open_existing_at(&location)
        .expect("a reader opens the run")
        .expect("the run exists");
    assert_eq!(reader.jobs().expect("jobs").len(), 2);
    assert_eq!(reader.meta("settings").expect("meta").as_deref(), Some("S"));
    assert!(matches!(
        reader.add_jobs(&jobs(3)),
        Err(StoreError::Postgres { .. })
    ));
    // A run the reader would have to create or migrate stays out of reach.
    let other = Location::parse(&reader_url, Some("other")).expect("location");
    assert!(Store::open_at(&other).is_err());
    // A newer schema is refused as such, not as a lack of rights.
    cluster().psql(
        &url,
        "UPDATE trajforge_run_r.meta SET value = '99' WHERE key = 'schema_version'",
    );
    let err = Store::open_existing_at(&location).expect_err("newer schema");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn a_store_dropped_in_async_code_closes_its_connection_without_a_panic() {
    let url = cluster().fresh_database("dropped");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let jobs_seen = runtime.block_on(async {
        let store = open(&url, "r");
        store.add_jobs(&jobs(2)).expect("add");
        let n = store.jobs().expect("jobs").len();
        drop(store);
        n
    });
    assert_eq!(jobs_seen, 2);
    assert_eq!(open(&url, "r").jobs().expect("jobs").len(), 2);
}

#[test]
fn the_first_schema_is_migrated_forward_and_a_newer_one_refused() {
    let url = cluster().fresh_database("schema");
    let old = pg::Pg::open(&url, "r", true).expect("open").expect("run");
    // Rewind to the first schema: the later columns and tables gone, the version says 1.
    cluster().psql(
        &url,
        "SET search_path TO trajforge_run_r;
         ALTER TABLE sessions DROP COLUMN heartbeat_at; ALTER TABLE sessions DROP COLUMN jobs_done;
         ALTER TABLE jobs DROP COLUMN done_by; DROP TABLE teacher_servers; DROP INDEX jobs_pending;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';
         INSERT INTO jobs(id, key, payload, updated_at) VALUES (0, 'k', '{}', 0);",
    );
    drop(old);
    let store = open(&url, "r");
    assert_eq!(
        store.meta("schema_version").expect("meta"),
        Some(pg::PG_SCHEMA_VERSION.to_string())
    );
    store.begin_session("w").expect("session");
    let job = store
        .claim("w", Duration::from_secs(60))
        .expect("claim")
        .expect("the old job");
    store.finish("w", job.id, &Outcome::Kept).expect("finish");
    assert_eq!(store.workers().expect("workers").1[0].jobs_done, Some(1));
    let figures = trajforge_chat::ServerStats {
        url: "http://a/v1".into(),
        requests: 1,
        ..Default::default()
    };
    store
        .record_teacher_servers("w", std::slice::from_ref(&figures))
        .expect("figures");
    assert_eq!(store.teacher_servers().expect("figures"), [figures]);
    cluster().psql(
        &url,
        "UPDATE trajforge_run_r.meta SET value = '99' WHERE key = 'schema_version'",
    );
    let err =
        Store::open_at(&Location::parse(&url, Some("r")).expect("loc")).expect_err("newer schema");
    assert!(
        err.to_string().contains(&format!(
            "schema version 99, this trajforge reads version {}",
            pg::PG_SCHEMA_VERSION
        )),
        "{err}"
    );
}

#[test]
fn a_p1_committed_by_an_earlier_job_takes_a_later_duplicate_back_to_its_check() {
    let url = cluster().fresh_database("dups");
    let store = open(&url, "r");
    store.add_jobs(&jobs(2)).expect("add");
    let (early, late) = (0, 1);
    // Job 1 runs first and passes its check: no earlier job has its P1 yet.
    let j = store
        .claim("b", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    assert_eq!(j.id, early);
    let j = store
        .claim("b", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    assert_eq!(j.id, late);
    store
        .record_stage("b", late, 1, &rollout1(), Some(&t1("same")), None)
        .expect("r1");
    assert!(!store.has_other_t1_patch(late, "same").expect("dup"));
    let sc = Stage::Selfcheck(SelfcheckStage {
        answer: SelfcheckAnswer::Yes,
        tries: 1,
    });
    store
        .record_stage("b", late, 1, &sc, None, None)
        .expect("sc");
    // Job 0 commits the same P1: job 1 goes back to its check, its lease revoked.
    store
        .record_stage("b", early, 1, &rollout1(), Some(&t1("same")), None)
        .expect("r1");
    let names: Vec<String> = store
        .stages(late)
        .expect("stages")
        .iter()
        .map(|s| s.stage.name().to_string())
        .collect();
    assert_eq!(names, ["rollout1"]);
    assert!(matches!(
        store.finish("b", late, &Outcome::Kept),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(store.has_other_t1_patch(late, "same").expect("dup"));
    assert!(!store.has_other_t1_patch(early, "same").expect("dup"));
    let again = store
        .claim("c", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    assert_eq!(again.id, late);
}

/// A run folder's store in `dir` with three jobs, one of them finished as kept with a
/// stage, a verified trajectory and its usage.
fn one_finished_job(dir: &std::path::Path) -> Store {
    let sqlite = Store::open(dir).expect("open");
    sqlite.add_jobs(&jobs(3)).expect("add");
    sqlite.set_meta("settings", "{\"seed\":1}").expect("meta");
    sqlite.begin_session("w").expect("session");
    let job = sqlite
        .claim("w", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    sqlite
        .record_stage(
            "w",
            job.id,
            1,
            &rollout1(),
            Some(&t1("p")),
            Some(UsageRecord {
                prompt_tokens: 3,
                completion_tokens: 4,
                model_seconds: 0.5,
            }),
        )
        .expect("stage");
    sqlite
        .set_verdict("w", job.id, 1, &Rollout::T1, true, Some(0.75))
        .expect("verdict");
    sqlite.finish("w", job.id, &Outcome::Kept).expect("finish");
    // Two servers, recorded in the order b then a (the order `status` lists them in).
    let figures = |url: &str, requests: u64| trajforge_chat::ServerStats {
        url: url.into(),
        requests,
        errors: 1,
        latency_seconds: 1.5,
        max_latency_seconds: 0.75,
        ejections: 1,
    };
    sqlite
        .record_teacher_servers("w", &[figures("http://b/v1", 5), figures("http://a/v1", 2)])
        .expect("servers");
    sqlite
}

#[test]
fn store_copy_moves_a_run_both_ways_losslessly() {
    let url = cluster().fresh_database("copy");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = one_finished_job(dir.path());
    let pg = open(&url, "copied");
    let counts = sqlite.copy_into(&pg).expect("copy");
    assert_eq!((counts.jobs, counts.stages, counts.trajectories), (3, 1, 1));
    assert_eq!(pg.dump().expect("dump"), sqlite.dump().expect("dump"));
    // A copy never goes into a run that holds something.
    assert!(matches!(
        sqlite.copy_into(&pg),
        Err(StoreError::NotEmpty(_))
    ));
    let back_dir = tempfile::tempdir().expect("tempdir");
    let back = Store::open(back_dir.path()).expect("open");
    pg.copy_into(&back).expect("copy back");
    assert_eq!(back.dump().expect("dump"), sqlite.dump().expect("dump"));
    // The per-server figures came along, in the order they were first recorded.
    let servers = sqlite.teacher_servers().expect("servers");
    assert_eq!(servers.len(), 2);
    assert_eq!(pg.teacher_servers().expect("servers"), servers);
    assert_eq!(back.teacher_servers().expect("servers"), servers);
    let rows = |s: &Store| {
        let mut v = Vec::new();
        s.for_each_trajectory(true, |r| {
            v.push((r.meta, r.data, r.job_key, r.job_payload, r.stages));
            true
        })
        .expect("rows");
        v
    };
    assert_eq!(rows(&pg), rows(&sqlite));
    // New trajectories in the copy continue after the copied ids.
    let next = pg
        .claim("w2", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    pg.begin_session("w2").expect("session");
    pg.record_stage("w2", next.id, 1, &rollout1(), Some(&t1("q")), None)
        .expect("stage");
    assert_eq!(pg.trajectory_count().expect("count"), 2);
}

#[test]
fn a_copy_cut_short_leaves_the_target_empty_and_can_be_run_again() {
    let url = cluster().fresh_database("copy_cut");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open(dir.path()).expect("open");
    // More jobs than one portion: some reach the target before the copy fails.
    sqlite.add_jobs(&jobs(2500)).expect("add");
    sqlite.begin_session("w").expect("session");
    // A row the copy cannot read, in the table read last.
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("raw");
    raw.execute("UPDATE sessions SET started_at = 'not a time'", [])
        .expect("spoil");
    let folder = tempfile::tempdir().expect("tempdir");
    let targets = [open(&url, "cut"), Store::open(folder.path()).expect("open")];
    for target in &targets {
        let empty = target.dump().expect("dump");
        assert!(empty.jobs.is_empty());
        assert!(sqlite.copy_into(target).is_err());
        assert_eq!(target.dump().expect("dump"), empty);
    }
    raw.execute("UPDATE sessions SET started_at = 1", [])
        .expect("mend");
    for target in &targets {
        let counts = sqlite.copy_into(target).expect("copy again");
        assert_eq!(counts.jobs, 2500);
        assert_eq!(target.dump().expect("dump"), sqlite.dump().expect("dump"));
    }
    // And back from Postgres, portion by portion through its cursor.
    let back_dir = tempfile::tempdir().expect("tempdir");
    let back = Store::open(back_dir.path()).expect("open");
    targets[0].copy_into(&back).expect("copy back");
    assert_eq!(back.dump().expect("dump"), sqlite.dump().expect("dump"));
}

#[test]
fn a_stage_committed_twice_keeps_one_row_of_each_and_its_usage_once() {
    let url = cluster().fresh_database("stages");
    let store = open(&url, "r");
    store.add_jobs(&jobs(1)).expect("add");
    store.begin_session("w").expect("session");
    let job = store
        .claim("w", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    let usage = UsageRecord {
        prompt_tokens: 10,
        completion_tokens: 2,
        model_seconds: 0.5,
    };
    for patch in ["first", "second"] {
        store
            .record_stage("w", job.id, 1, &rollout1(), Some(&t1(patch)), Some(usage))
            .expect("record");
    }
    store
        .set_verdict("w", job.id, 1, &Rollout::T1, true, Some(0.75))
        .expect("verdict");
    store.finish("w", job.id, &Outcome::Kept).expect("finish");
    assert_eq!(store.all_stages().expect("stages").len(), 1);
    let trajectories = store.trajectories(true).expect("trajectories");
    assert_eq!(trajectories.len(), 1);
    let meta = &trajectories[0].meta;
    assert_eq!(
        (meta.patch.as_deref(), meta.kept, meta.recall),
        (Some("second"), true, Some(0.75))
    );
    let by_stage = store.usage_by_stage().expect("usage");
    assert_eq!(by_stage.len(), 1);
    assert_eq!(by_stage[0].0, "rollout1");
    let u = &by_stage[0].1;
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.model_seconds),
        (10, 2, 0.5)
    );
    assert_eq!(store.jobs().expect("jobs")[0].result, Some(Outcome::Kept));
    assert_eq!(store.workers().expect("workers").1[0].jobs_done, Some(1));
}

#[test]
fn a_connection_the_server_dropped_is_reopened_and_the_operation_done() {
    let url = cluster().fresh_database("reconnect");
    let store = open(&url, "r");
    store.add_jobs(&jobs(2)).expect("add");
    let job = store
        .claim("w", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    // What a server restart does to every client: its connection is gone.
    let killed = cluster().psql(
        &url,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert_eq!(killed, "1");
    store
        .record_stage("w", job.id, 1, &rollout1(), Some(&t1("p")), None)
        .expect("committed after reconnecting");
    store.finish("w", job.id, &Outcome::Kept).expect("finish");
    assert_eq!(store.counts().expect("counts").done, 1);
}

#[test]
fn teacher_server_figures_are_kept_per_worker_and_summed_per_server() {
    let url = cluster().fresh_database("servers");
    crate::tests::check_teacher_server_figures(&open(&url, "r"));
}

#[test]
fn duplicate_p1s_are_decided_by_sample_order_not_completion_order_on_postgres() {
    let url = cluster().fresh_database("dup_order");
    let runs = std::cell::Cell::new(0);
    crate::tests::check_duplicates_follow_sample_order(|| {
        runs.set(runs.get() + 1);
        open(&url, &format!("r{}", runs.get()))
    });
}

/// What the viewer reads a page at a time is the same from a Postgres copy as from the run
/// folder; the streamed jobs and stages are the ones read at once; the change mark moves
/// with a commit.
#[test]
fn browsing_reads_of_a_postgres_run_equal_those_of_its_folder() {
    let url = cluster().fresh_database("browse");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = one_finished_job(dir.path());
    let pg = open(&url, "browsed");
    sqlite.copy_into(&pg).expect("copy");
    for store in [&sqlite, &pg] {
        let mut streamed = Vec::new();
        store
            .for_each_job(|j| {
                streamed.push(j);
                true
            })
            .expect("jobs");
        assert_eq!(streamed, store.jobs().expect("jobs"));
        let mut stages = Vec::new();
        store
            .for_each_stage(|s| {
                stages.push(s);
                true
            })
            .expect("stages");
        assert_eq!(stages, store.all_stages().expect("stages"));
    }
    let reads = |s: &Store| {
        (
            s.trajectories_after(0, 10).expect("after"),
            s.trajectories_of_jobs(&[0, 1, 2]).expect("of jobs"),
            s.jobs_of(&[2, 0, 7]).expect("jobs of"),
            s.stages_of_jobs(&[0, 1]).expect("stages of"),
            s.jobs_changed_since(0).expect("changed"),
            s.last_trajectory_id().expect("last"),
            [0, 1, 2].map(|id| s.job_neighbours(id).expect("neighbours")),
            s.job(1).expect("job"),
            s.job_trajectories(0).expect("job trajectories"),
            s.trajectory_row(1).expect("row"),
        )
    };
    let read = reads(&pg);
    assert_eq!(read, reads(&sqlite));
    assert_eq!(read.0.len(), 1);
    assert_eq!(read.2.iter().map(|j| j.id).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(
        read.6,
        [(None, Some(1)), (Some(0), Some(2)), (Some(1), None)]
    );
    let before = pg.change_mark().expect("mark");
    assert_eq!(pg.change_mark().expect("mark"), before);
    let job = pg
        .claim("w2", Duration::from_secs(60))
        .expect("claim")
        .expect("job");
    pg.begin_session("w2").expect("session");
    pg.record_stage("w2", job.id, 1, &rollout1(), None, None)
        .expect("stage");
    assert_ne!(pg.change_mark().expect("mark"), before);
}
