//! An evaluation's pages in real Chromium: two evaluations stored as `trajforge eval` stores
//! them (score stages, then `results.jsonl` by the pipeline's writer), the second one's model,
//! errors and a task id hostile. The per-task page shows every row with its verdict and links
//! to its job; the comparison page shows what `trajforge_eval::compare_dirs` computes (the
//! numbers of `eval compare`); nothing hostile runs on either.

use std::path::Path;

use trajforge_eval::{CompareOptions, TaskKind, TaskResult, compare_dirs, summarize};
use trajforge_pipeline::eval::ScoreStage;
use trajforge_view::Viewer;
use trajforge_view::synthetic::build_eval;

use crate::chromium;
use crate::safety::{HOSTILE, assert_inert, serve};

/// Task `task`, seed `seed`, of `model`: hard and resolved or not, or soft (scored by recall).
fn row(task: &str, seed: u32, model: &str, resolved: Option<bool>, recall: f64) -> ScoreStage {
    ScoreStage {
        result: TaskResult {
            instance_id: task.to_string(),
            seed,
            kind: if resolved.is_some() {
                TaskKind::Hard
            } else {
                TaskKind::Soft
            },
            model: model.to_string(),
            resolved,
            recall,
            exit_status: "submitted".into(),
            steps: 3 + seed as usize,
            prompt_tokens: 900,
            completion_tokens: 80,
            cost_usd: None,
            error: None,
        },
        failing_tests: if resolved == Some(false) {
            vec!["tests.test_more.SlicedTests.test_odd".into()]
        } else {
            Vec::new()
        },
        model_patch: String::new(),
    }
}

/// A: resolves tasks 0-5 of 8 hard ones (both seeds); B: tasks 2-7, its hostile model scoring
/// a hostile task id, with a hostile error and failing test. Plus one soft task in each.
fn evaluations(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let hostile_task = format!("evil-{HOSTILE}");
    let rows = |model: &str, solved: std::ops::Range<usize>| {
        let mut rows = Vec::new();
        for t in 0..8 {
            for seed in 0..2 {
                rows.push(row(
                    &format!("task-{t}"),
                    seed,
                    model,
                    Some(solved.contains(&t)),
                    if solved.contains(&t) { 1.0 } else { 0.25 },
                ));
            }
        }
        rows.push(row(&hostile_task, 0, model, None, 0.5));
        rows
    };
    let a = dir.join("eval-a");
    let b = dir.join("eval-b");
    build_eval(&a, &rows("model-a", 0..6)).expect("eval A");
    let mut rows_b = rows(HOSTILE, 2..8);
    let last = rows_b.last_mut().expect("a row");
    last.result.error = Some(HOSTILE.to_string());
    last.failing_tests = vec![HOSTILE.to_string()];
    last.result.recall = 1.0;
    build_eval(&b, &rows_b).expect("eval B");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_shows_each_task_and_its_comparison_as_eval_compare_computes_it() {
    let Some(browser) = chromium::launch().await else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = evaluations(tmp.path());
    let expected = compare_dirs(&a, &b, &CompareOptions::default()).expect("compare");
    let base = serve(Viewer::open(&a).expect("viewer").with_comparison(&b)).await;
    let tab = chromium::tab(&browser, &base).await;
    let text = |selector: &str| {
        format!("(document.querySelector({selector:?}) || {{innerText: 'missing'}}).innerText")
    };
    let count = |selector: &str| format!("document.querySelectorAll({selector:?}).length");

    // The overview links to the per-task page.
    chromium::open(&tab, &base).await;
    assert_inert(&tab, "eval-overview").await;
    assert_eq!(chromium::eval(&tab, &count("#eval-link")).await, 1);

    // Every row of A, its verdict marked, with the totals of its rows.
    chromium::open(&tab, &format!("{base}eval")).await;
    assert_inert(&tab, "eval-results").await;
    chromium::screenshot(&tab, "eval-results").await;
    let rows_a = trajforge_eval::compare::read_results(&a).expect("A's rows");
    let summary = summarize(&rows_a);
    assert_eq!(
        chromium::eval(&tab, &count("#eval-results tbody tr")).await,
        rows_a.len()
    );
    assert_eq!(
        chromium::eval(&tab, &count("#eval-results td.resolved.good")).await,
        rows_a.iter().filter(|r| r.resolved == Some(true)).count()
    );
    assert_eq!(
        chromium::eval(&tab, &count("#eval-results td.resolved.bad")).await,
        rows_a.iter().filter(|r| r.resolved == Some(false)).count()
    );
    assert_eq!(
        chromium::eval(&tab, &text("#eval-rate")).await,
        format!(
            "{:.1}%",
            summary.all.resolved_rate.expect("hard rows") * 100.0
        )
    );
    assert_eq!(
        chromium::eval(&tab, &text("#eval-resolved")).await,
        format!("{} of {}", summary.all.resolved, summary.all.hard_rows)
    );
    // The keyboard picks the first row and opens its job.
    tab.press("j").await.expect("j");
    tab.press("Enter").await.expect("Enter");
    let opened = tab
        .wait_for(
            "location.pathname.startsWith('/job/')",
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("evaluate");
    assert!(opened, "Enter on a row opens its job");

    // The comparison: the numbers `eval compare` computes.
    chromium::open(&tab, &format!("{base}compare")).await;
    let facts = assert_inert(&tab, "eval-compare").await;
    chromium::screenshot(&tab, "eval-compare").await;
    assert_eq!(
        chromium::eval(&tab, &text("#verdict")).await,
        expected.verdict.text
    );
    assert_eq!(
        chromium::eval(&tab, &text("#run-a .rate")).await,
        format!("{:.1}%", expected.a.resolve_rate.expect("hard") * 100.0)
    );
    assert_eq!(
        chromium::eval(&tab, &text("#run-b .recall")).await,
        format!("{:.3}", expected.b.mean_recall)
    );
    let d = expected.resolved.expect("hard pairs");
    assert_eq!(
        chromium::eval(&tab, &text("#diff-resolved")).await,
        format!(
            "{:+.1} points (95% CI {:+.1} to {:+.1})",
            d.estimate * 100.0,
            d.ci_low * 100.0,
            d.ci_high * 100.0
        )
    );
    let m = expected.mcnemar.expect("mcnemar");
    assert_eq!(
        (m.a_only, m.b_only),
        (4, 4),
        "tasks 0-1 and 6-7 flip, both seeds"
    );
    assert_eq!(
        chromium::eval(&tab, &text("#mcnemar")).await,
        format!("A only 4, B only 4, p = {:.4}", m.p_value)
    );
    // Tasks 0, 1, 6 and 7 flipped; the hostile soft task's recall moved by 0.5.
    assert_eq!(expected.changes.len(), 5);
    assert_eq!(
        chromium::eval(&tab, &text("#n-changes")).await,
        expected.changes.len().to_string()
    );
    assert_eq!(
        chromium::eval(&tab, &count("#changes tbody tr")).await,
        expected.changes.len()
    );
    let flips: Vec<String> = expected
        .changes
        .iter()
        .filter(|t| t.kind == TaskKind::Hard)
        .map(|t| format!("{}/2 → {}/2", t.resolved_a, t.resolved_b))
        .collect();
    let shown = chromium::eval(
        &tab,
        "Array.from(document.querySelectorAll('#changes td.flip')).map(td => td.innerText).filter(t => t !== 'soft')",
    )
    .await;
    assert_eq!(shown, serde_json::json!(flips));
    // B's hostile model name and task id are text.
    let page_text = facts["text"].as_str().unwrap_or("");
    assert!(
        page_text.contains("<script>window.__pwned=1"),
        "{page_text}"
    );

    // B's own per-task page shows its hostile error and failing test as text.
    assert!(
        tab.policy().blocked().is_empty(),
        "{:?}",
        tab.policy().blocked()
    );
    tab.close().await;

    // B's own per-task page (a tab allowed its own viewer) shows its hostile error and failing
    // test as text.
    let base_b = serve(Viewer::open(&b).expect("viewer B")).await;
    let tab = chromium::tab(&browser, &base_b).await;
    chromium::open(&tab, &format!("{base_b}eval")).await;
    let facts = assert_inert(&tab, "eval-results-hostile").await;
    let page_text = facts["text"].as_str().unwrap_or("");
    assert!(
        page_text.matches("<script>window.__pwned=1").count() >= 3,
        "task id, error and failing test as text: {page_text}"
    );
    assert!(
        tab.policy().blocked().is_empty(),
        "{:?}",
        tab.policy().blocked()
    );
    tab.close().await;
}

#[test]
fn evaluation_pages_exist_only_where_they_apply_and_a_bad_comparison_says_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, _) = evaluations(tmp.path());
    // Without --compare there is no comparison page.
    let viewer = Viewer::open(&a).expect("viewer");
    assert_eq!(viewer.respond("GET", "/compare", "").status, 404);
    assert_eq!(viewer.respond("GET", "/eval", "").status, 200);
    // A code run has no evaluation page.
    let (_code_tmp, code) = crate::fixture_run("code");
    let viewer = Viewer::open(&code).expect("code viewer");
    assert_eq!(viewer.respond("GET", "/eval", "").status, 404);
    // A comparison with a folder that holds no evaluation says so, escaped.
    let missing = tmp.path().join("<b>no-such-eval</b>");
    let viewer = Viewer::open(&a).expect("viewer").with_comparison(&missing);
    let reply = viewer.respond("GET", "/compare", "");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains("id=\"compare-error\""),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("&lt;b&gt;no-such-eval&lt;/b&gt;"),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains("<b>no-such-eval"), "{}", reply.body);
}
