//! Pages rendered from the 0.1 fixture runs: the numbers are the store's, P1/P2 lines carry
//! the recall's marks, search finds text, and the training sample shows its loss mask.

use trajforge_pipeline::status;
use trajforge_store::Store;
use trajforge_view::Viewer;

use crate::fixture_run;

fn get(v: &Viewer, path: &str, query: &str) -> String {
    let r = v.respond("GET", path, query);
    assert_eq!(r.status, 200, "{path}?{query}: {}", r.body);
    r.body
}

/// The fragment of `html` from `start` to the first `end` after it.
fn fragment<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let a = html.find(start).unwrap_or_else(|| panic!("no {start}"));
    let b = html[a..].find(end).expect("end") + a + end.len();
    &html[a..b]
}

fn total(html: &str) -> u64 {
    fragment(html, "<span id=\"list-total\">", "</span>")
        .trim_start_matches("<span id=\"list-total\">")
        .trim_end_matches("</span>")
        .parse()
        .expect("count")
}

#[test]
fn the_overview_and_list_show_the_numbers_of_the_store() {
    let (_tmp, dir) = fixture_run("code");
    let v = Viewer::open(&dir).expect("viewer");
    v.index_all().expect("index");
    let store = Store::open_read_only(&dir).expect("store").expect("run");
    let s = status::status(&store, Default::default()).expect("status");
    let html = get(&v, "/", "");
    for (id, n) in [
        ("n-functions", s.functions),
        ("n-done", s.done),
        ("n-pending", s.pending),
        ("n-kept-t2", s.kept_t2),
        ("n-kept-t1", s.kept_t1),
    ] {
        assert!(html.contains(&format!("id=\"{id}\">{n}<")), "{id} {n}");
    }
    assert!(html.contains("id=\"plot-funnel\"") && html.contains("id=\"plot-recall\""));
    assert!(html.contains("threshold 0.5"));

    let all = store.trajectory_count().expect("count");
    assert_eq!(total(&get(&v, "/list", "")), all);
    assert_eq!(total(&get(&v, "/list", "kept=kept")), s.kept_t1 + s.kept_t2);
    assert_eq!(
        total(&get(&v, "/list", "rollout=t2")),
        s.exits["t2/submitted"]
    );
    // Every rejected attempt of rollout 1 is listed under its reason.
    assert_eq!(
        total(&get(&v, "/list", "reason=selfcheck_no")),
        s.rejections["selfcheck_no"]
    );
    assert_eq!(total(&get(&v, "/list", "rmin=0.4&rmax=0.6")), 1);
    assert_eq!(total(&get(&v, "/list", "entry=modularity")), 2);
    // Sorted by r, highest first: the kept pair's T2 (r = 0.5) leads.
    let sorted = get(&v, "/list", "sort=recall&dir=desc");
    let first = fragment(&sorted, "<tr class=\"row", "</tr>");
    assert!(first.contains("data-id=\"10\""), "{first}");
}

#[test]
fn p1_and_p2_lines_are_marked_as_the_recall_counted_them() {
    let (_tmp, dir) = fixture_run("code");
    let v = Viewer::open(&dir).expect("viewer");
    // Job 3 kept at r = 0.5 (one of its two P1 lines matched); job 2 rejected at r = 0.
    let kept = get(&v, "/job/3", "");
    assert!(kept.contains("id=\"recall-1\">0.500<"), "recall shown");
    let patches = fragment(&kept, "<section class=\"patches\"", "</section>");
    let p1 = fragment(patches, "<pre class=\"diff p1\">", "</pre>");
    assert_eq!(
        p1.matches("ln add matched").count() + p1.matches("ln del matched").count(),
        1
    );
    assert_eq!(p1.matches(" unmatched\"").count(), 1);
    insta::assert_snapshot!("job3_patches", patches);
    let rejected = get(&v, "/job/2", "");
    let patches = fragment(&rejected, "<section class=\"patches\"", "</section>");
    assert_eq!(patches.matches(" matched\"").count(), 0);
    insta::assert_snapshot!("job2_patches", patches);
    // The story: bug prompt, both timelines, self-check, PR, verdict.
    for part in [
        "bug prompt",
        "Rollout 1 (T1)",
        "Rollout 2 (T2)",
        "id=\"selfcheck-1\">yes<",
        "Synthetic PR",
        "<pre class=\"demo\">",
        "id=\"verdict-1\">rejected<",
    ] {
        assert!(rejected.contains(part), "{part}");
    }
    assert_eq!(v.respond("GET", "/job/99", "").status, 404);
}

#[test]
fn search_finds_text_of_trajectories_and_marks_it() {
    let (_tmp, dir) = fixture_run("code");
    let v = Viewer::open(&dir).expect("viewer");
    assert!(v.index_all().expect("index") >= 11);
    let html = get(&v, "/search", "q=multinomial+misbehaves");
    // The synthetic PR of job 2 is rollout 2's task.
    assert!(html.contains("href=\"/job/2#t8\""), "{html}");
    assert!(html.contains("<mark>multinomial</mark>"));
    let none = get(&v, "/search", "q=%22NEAR(+zzzz");
    assert!(
        none.contains("id=\"hit-count\">0<"),
        "FTS syntax is taken literally"
    );
}

#[test]
fn the_training_sample_marks_the_turns_in_the_loss() {
    let (_tmp, dir) = fixture_run("code");
    let v = Viewer::open(&dir).expect("viewer");
    for format in ["hermes", "openai", "sharegpt"] {
        let html = get(&v, "/sample/10", &format!("format={format}"));
        let trained = html.matches("data-train=\"true\"").count();
        assert!(trained > 0, "{format}");
        assert!(html.matches("data-train=\"false\"").count() > 0, "{format}");
        assert!(
            html.contains(&format!("id=\"n-trained\">{trained}<")),
            "{format}"
        );
    }
    let hermes = get(&v, "/sample/10", "format=hermes");
    insta::assert_snapshot!(
        "sample10_hermes_turn_roles",
        hermes
            .split("<li class=\"turn")
            .skip(1)
            .map(|t| fragment(t, "<div class=\"role\">", "</div>"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_web_run_shows_its_coverage_and_the_pages_each_rollout_visited() {
    let (_tmp, dir) = fixture_run("web");
    let v = Viewer::open(&dir).expect("viewer");
    let html = get(&v, "/", "");
    assert!(html.contains("id=\"coverage\"") && html.contains("Yield per intent"));
    let job = get(&v, "/job/0", "");
    assert!(job.contains("T1: pages visited") && job.contains("T2: pages visited"));
    assert!(job.contains("agreement r ="));
    assert!(job.contains("class=\"final\">http://"));
}

#[test]
fn the_list_follows_a_live_run_as_its_jobs_move_on() {
    use trajforge_store::model::{CodeRollout, RejectedStage, RolloutStage, Stage};
    use trajforge_store::{ExitLabel, Outcome, Rollout, TrajectoryRecord};
    use trajforge_view::synthetic::{self, Spec};

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let text = |i: usize| format!("text {i}");
    synthetic::build(
        &dir,
        &Spec {
            jobs: 3,
            steps: 1,
            long_steps: 1,
            text: &text,
        },
    )
    .expect("run");
    let v = Viewer::open(&dir).expect("viewer");
    v.index_all().expect("index");
    let before = total(&get(&v, "/list", ""));
    // A new job: rollout 1 stored, nothing decided yet.
    let store = Store::open(&dir).expect("store");
    store
        .add_jobs(&[(
            "new".into(),
            serde_json::json!({"name": "late_fn", "path": "x.py"}),
        )])
        .expect("add");
    let job = store
        .claim("w", std::time::Duration::from_secs(60))
        .expect("claim")
        .expect("a job");
    let r1 = Stage::Rollout1(RolloutStage::Code(CodeRollout {
        bug: Some("late-bug".into()),
        bug_index: Some(0),
        task: "t".into(),
        exit: ExitLabel::Submitted,
        patch: None,
        steps: 0,
        patch_cut: None,
    }));
    let record = TrajectoryRecord {
        rollout: Rollout::T1,
        exit_status: ExitLabel::Submitted,
        patch: None,
        data: serde_json::json!({"not": "an episode"}),
    };
    store
        .record_stage("w", job.id, 1, &r1, Some(&record), None)
        .expect("stage");
    v.index_all().expect("index");
    assert_eq!(total(&get(&v, "/list", "")), before + 1);
    assert_eq!(
        total(&get(&v, "/list", "entry=late-bug&reason=selfcheck_no")),
        0
    );
    // Then it is rejected: the row already listed changes.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let rejected = Stage::Rejected(RejectedStage::new(Outcome::SelfcheckNo));
    store
        .record_stage("w", job.id, 1, &rejected, None, None)
        .expect("stage");
    store
        .finish("w", job.id, &Outcome::SelfcheckNo)
        .expect("finish");
    v.index_all().expect("index");
    assert_eq!(
        total(&get(&v, "/list", "entry=late-bug&reason=selfcheck_no")),
        1
    );
    // A trajectory that is not an episode still has a page, showing its JSON.
    let page = get(&v, &format!("/job/{}", job.id), "");
    assert!(page.contains("Not an episode record"));
}

#[test]
fn with_a_tokenizer_the_sample_shows_its_tokens_and_where_max_tokens_cuts_it() {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".cache/test-data"));
    let tokenizer = data.join("tokenizers/qwen3");
    if !tokenizer.exists() {
        let why = "Qwen3 tokenizer missing: run scripts/fetch-test-data.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipping: {why}");
        return;
    }
    let (_tmp, dir) = fixture_run("code");
    let plain = Viewer::open(&dir).expect("viewer");
    let turns = get(&plain, "/sample/10", "format=openai")
        .matches("<li class=\"turn")
        .count();
    // A limit the whole conversation of this sample (about 1,300 tokens) exceeds.
    let cut = Viewer::open(&dir)
        .expect("viewer")
        .with_tokenizer(&tokenizer, Some(900))
        .expect("tokenizer");
    let html = get(&cut, "/sample/10", "format=openai");
    let tokens: usize = fragment(&html, "<b id=\"n-tokens\">", "</b>")
        .trim_start_matches("<b id=\"n-tokens\">")
        .trim_end_matches("</b>")
        .parse()
        .expect("tokens");
    assert!(tokens > 900, "{tokens}");
    assert!(html.contains("id=\"cut\">"), "no cut shown");
    let kept = html.matches("<li class=\"turn").count();
    assert!(kept < turns, "{kept} of {turns} turns");
}
