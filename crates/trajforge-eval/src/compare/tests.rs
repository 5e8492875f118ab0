use proptest::prelude::*;

use super::*;

fn row(id: &str, seed: u32, kind: TaskKind, resolved: bool, recall: f64) -> TaskResult {
    TaskResult {
        instance_id: id.to_string(),
        seed,
        kind,
        model: "m".into(),
        resolved: (kind == TaskKind::Hard).then_some(resolved),
        recall,
        exit_status: "submitted".into(),
        steps: 3,
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_usd: None,
        error: None,
    }
}

/// `tasks` hard tasks of `seeds` seeds each, all resolved (recall 1) or none (recall 0).
fn uniform(tasks: usize, seeds: u32, resolved: bool) -> Vec<TaskResult> {
    (0..tasks)
        .flat_map(|t| {
            (0..seeds).map(move |s| {
                row(
                    &format!("t{t:03}"),
                    s,
                    TaskKind::Hard,
                    resolved,
                    if resolved { 1.0 } else { 0.0 },
                )
            })
        })
        .collect()
}

/// Asserts the verdict's outcome and the start of its text.
#[track_caller]
fn assert_verdict(verdict: &Verdict, outcome: Outcome, text: &str) {
    assert_eq!(verdict.outcome, outcome);
    assert!(verdict.text.starts_with(text), "{}", verdict.text);
}

fn quick() -> CompareOptions {
    CompareOptions {
        resamples: 500,
        ..CompareOptions::default()
    }
}

/// Rows of one run: per (task, seed) a kind, a resolved flag and a recall.
fn run_rows() -> impl Strategy<Value = Vec<TaskResult>> {
    prop::collection::vec(
        (
            prop::bool::ANY,
            prop::collection::vec((prop::bool::ANY, 0.0..=1.0f64), 1..4),
        ),
        1..25,
    )
    .prop_map(|tasks| {
        tasks
            .into_iter()
            .enumerate()
            .flat_map(|(t, (hard, seeds))| {
                let kind = if hard { TaskKind::Hard } else { TaskKind::Soft };
                seeds
                    .into_iter()
                    .enumerate()
                    .map(move |(s, (res, rec))| row(&format!("t{t}"), s as u32, kind, res, rec))
            })
            .collect()
    })
}

/// Two runs over the same tasks and seeds with independent outcomes.
fn two_runs() -> impl Strategy<Value = (Vec<TaskResult>, Vec<TaskResult>)> {
    run_rows().prop_flat_map(|a| {
        let n = a.len();
        (
            Just(a),
            prop::collection::vec((prop::bool::ANY, 0.0..=1.0f64), n),
        )
            .prop_map(|(a, outcomes)| {
                let b = a
                    .iter()
                    .zip(outcomes)
                    .map(|(r, (res, rec))| row(&r.instance_id, r.seed, r.kind, res, rec))
                    .collect();
                (a, b)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_run_against_itself_shows_no_difference(rows in run_rows()) {
        let c = compare(("a", &rows), ("a", &rows), &quick()).expect("compare");
        prop_assert_eq!(c.recall.estimate, 0.0);
        prop_assert!(c.recall.ci_low <= 0.0 && c.recall.ci_high >= 0.0);
        if let Some(d) = c.resolved {
            prop_assert_eq!(d.estimate, 0.0);
            prop_assert!(d.ci_low <= 0.0 && d.ci_high >= 0.0);
        }
        if let Some(m) = c.mcnemar {
            prop_assert_eq!(m.p_value, 1.0);
        }
        prop_assert_eq!(c.verdict.outcome, Outcome::NoDifference);
        prop_assert!(c.verdict.text.starts_with("no difference the data can show"), "{}", c.verdict.text);
        prop_assert!(c.changes.is_empty());
        prop_assert_eq!(c.a.unpaired + c.b.unpaired, 0);
    }

    #[test]
    fn swapping_a_and_b_negates_the_difference_and_mirrors_the_interval((a, b) in two_runs()) {
        let ab = compare(("a", &a), ("b", &b), &quick()).expect("compare");
        let ba = compare(("b", &b), ("a", &a), &quick()).expect("compare");
        let mirrored = |x: Difference, y: Difference| {
            (x.estimate + y.estimate).abs() < 1e-12
                && x.ci_low == -y.ci_high
                && x.ci_high == -y.ci_low
        };
        prop_assert!(mirrored(ab.recall, ba.recall), "{:?} vs {:?}", ab.recall, ba.recall);
        match (ab.resolved, ba.resolved) {
            (Some(x), Some(y)) => prop_assert!(mirrored(x, y), "{:?} vs {:?}", x, y),
            (None, None) => {}
            other => prop_assert!(false, "one side has a resolve rate: {:?}", other),
        }
        if let (Some(x), Some(y)) = (ab.mcnemar, ba.mcnemar) {
            prop_assert_eq!((x.a_only, x.b_only), (y.b_only, y.a_only));
            prop_assert_eq!(x.p_value, y.p_value);
        }
        let flipped = match ab.verdict.outcome {
            Outcome::Better => Outcome::Worse,
            Outcome::Worse => Outcome::Better,
            Outcome::NoDifference => Outcome::NoDifference,
        };
        prop_assert_eq!(ba.verdict.outcome, flipped);
    }

    #[test]
    fn the_interval_holds_the_estimate_and_the_same_inputs_give_the_same_report((a, b) in two_runs()) {
        let one = compare(("a", &a), ("b", &b), &quick()).expect("compare");
        let mut shuffled = b.clone();
        shuffled.reverse();
        let two = compare(("a", &a), ("b", &shuffled), &quick()).expect("compare");
        prop_assert_eq!(&one, &two);
        prop_assert!(one.recall.ci_low <= one.recall.ci_high);
        prop_assert!((0.0..=1.0).contains(&one.mcnemar.map_or(1.0, |m| m.p_value)));
    }

    #[test]
    fn all_resolved_against_none_resolved_over_enough_tasks_is_significant(
        tasks in 12usize..80,
        seeds in 1u32..4,
    ) {
        let c = compare(("none", &uniform(tasks, seeds, false)), ("all", &uniform(tasks, seeds, true)), &quick())
            .expect("compare");
        prop_assert_eq!(c.verdict.outcome, Outcome::Better);
        prop_assert!(c.mcnemar.expect("hard").p_value < 0.001);
        prop_assert_eq!(c.changes.len(), tasks);
    }

    #[test]
    fn mcnemar_is_symmetric_and_at_most_one(b in 0usize..400, c in 0usize..400) {
        let p = mcnemar_exact(b, c);
        prop_assert_eq!(p, mcnemar_exact(c, b));
        prop_assert!(p > 0.0 && p <= 1.0, "{}", p);
    }
}

#[test]
fn mcnemar_matches_hand_computed_values() {
    // 2·P(X ≤ min) for X ~ Bin(n, ½), n = b + c, computed by hand from binomial coefficients.
    let cases: [((usize, usize), f64); 7] = [
        ((0, 0), 1.0),
        ((0, 5), 2.0 / 32.0),
        ((1, 9), 2.0 * 11.0 / 1024.0),
        ((3, 7), 2.0 * 176.0 / 1024.0),
        ((2, 2), 1.0),
        ((0, 1), 1.0),
        (
            (4, 16),
            2.0 * (1.0 + 20.0 + 190.0 + 1140.0 + 4845.0) / 1_048_576.0,
        ),
    ];
    for ((b, c), want) in cases {
        let got = mcnemar_exact(b, c);
        assert!(
            (got - want).abs() < 1e-12 * want.max(1e-300),
            "({b}, {c}): {got} vs {want}"
        );
    }
    // Past the range of 2^-n (n > 1074) the log-space sum still answers: the normal
    // approximation gives p ≈ 7.7e-6; Python's exact integer sum 8.457089535503927e-6.
    let far = mcnemar_exact(900, 1100);
    assert!((far - 8.457_089_535_503_927e-6).abs() < 1e-9 * far, "{far}");
    assert_eq!(mcnemar_exact(1000, 1000), 1.0);
}

#[test]
fn all_resolved_against_none_resolved_is_significant_both_ways() {
    let none = uniform(30, 2, false);
    let all = uniform(30, 2, true);
    let c = compare(("none", &none), ("all", &all), &CompareOptions::default()).expect("compare");
    let d = c.resolved.expect("hard rows");
    assert_eq!(d.estimate, 1.0);
    assert!(d.ci_low > 0.0, "{d:?}");
    let m = c.mcnemar.expect("mcnemar");
    assert_eq!((m.a_only, m.b_only), (0, 60));
    assert!(m.p_value < 1e-15, "{}", m.p_value);
    assert_eq!(c.verdict.outcome, Outcome::Better);
    assert_eq!(
        c.verdict.text,
        "B resolves 100.0 points more, 95% CI [100.0, 100.0]: better"
    );
    assert_eq!(c.power, None);
    assert_eq!(c.changes.len(), 30);
    assert_eq!((c.a.resolve_rate, c.b.resolve_rate), (Some(0.0), Some(1.0)));

    let back =
        compare(("all", &all), ("none", &none), &CompareOptions::default()).expect("compare");
    assert_verdict(
        &back.verdict,
        Outcome::Worse,
        "B resolves 100.0 points fewer",
    );
}

#[test]
fn a_small_mixed_difference_is_no_difference_with_a_task_estimate() {
    // 40 hard tasks, 1 seed: A resolves the first 20, B the first 22 (2 discordant pairs).
    let a: Vec<_> = (0..40)
        .map(|t| row(&format!("t{t:02}"), 0, TaskKind::Hard, t < 20, 0.5))
        .collect();
    let b: Vec<_> = (0..40)
        .map(|t| row(&format!("t{t:02}"), 0, TaskKind::Hard, t < 22, 0.5))
        .collect();
    let c = compare(("a", &a), ("b", &b), &CompareOptions::default()).expect("compare");
    let d = c.resolved.expect("hard");
    assert!((d.estimate - 0.05).abs() < 1e-12);
    assert_eq!(c.verdict.outcome, Outcome::NoDifference, "{:?}", c.verdict);
    let p = c.power.expect("power");
    // ψ = 2/40 = 0.05 = δ: n = (1.96·√0.05 + 0.8416·√(0.05 − 0.0025))² / 0.0025
    // = (0.4383 + 0.1834)² / 0.0025 = 154.6 → 155 tasks, 115 more than 40.
    assert_eq!(p.tasks_needed, 155);
    assert_eq!(p.more_tasks(), 115);
    assert!(
        c.verdict
            .text
            .ends_with("about 115 more tasks would be needed to detect 5 points"),
        "{}",
        c.verdict.text
    );
    assert_eq!(c.mcnemar.map(|m| m.p_value), Some(0.5));
}

#[test]
fn pairs_only_shared_rows_and_counts_the_rest() {
    let a = vec![
        row("x", 0, TaskKind::Hard, true, 1.0),
        row("x", 1, TaskKind::Hard, true, 1.0),
        row("y", 0, TaskKind::Soft, false, 0.2),
    ];
    let b = vec![
        row("x", 0, TaskKind::Hard, false, 0.1),
        row("y", 0, TaskKind::Soft, false, 0.9),
        row("z", 0, TaskKind::Soft, false, 0.9),
        row("z", 1, TaskKind::Soft, false, 0.9),
    ];
    let c = compare(("a", &a), ("b", &b), &quick()).expect("compare");
    assert_eq!(
        (c.paired_rows, c.paired_tasks, c.hard_rows, c.hard_tasks),
        (2, 2, 1, 1)
    );
    assert_eq!((c.a.unpaired, c.b.unpaired), (1, 2));
    assert_eq!(c.resolved.map(|d| d.estimate), Some(-1.0));
    assert!((c.recall.estimate - ((0.1 - 1.0) + (0.9 - 0.2)) / 2.0).abs() < 1e-12);
    let ids: Vec<_> = c
        .changes
        .iter()
        .map(|t| (t.instance_id.as_str(), t.kind))
        .collect();
    assert_eq!(ids, [("y", TaskKind::Soft), ("x", TaskKind::Hard)]);
}

#[test]
fn soft_only_runs_are_judged_on_recall() {
    let a: Vec<_> = (0..30)
        .map(|t| row(&format!("s{t}"), 0, TaskKind::Soft, false, 0.2))
        .collect();
    let b: Vec<_> = (0..30)
        .map(|t| {
            row(
                &format!("s{t}"),
                0,
                TaskKind::Soft,
                false,
                0.6 + 0.01 * t as f64,
            )
        })
        .collect();
    let c = compare(("a", &a), ("b", &b), &quick()).expect("compare");
    assert_eq!(c.resolved, None);
    assert_eq!(c.mcnemar, None);
    assert_eq!(c.verdict.metric, Metric::Recall);
    assert_verdict(
        &c.verdict,
        Outcome::Better,
        "B's recall is 54.5 points higher, 95% CI [",
    );
}

#[test]
fn no_shared_row_and_duplicate_rows_are_errors() {
    let a = vec![row("x", 0, TaskKind::Soft, false, 0.2)];
    let b = vec![row("x", 1, TaskKind::Soft, false, 0.2)];
    assert!(matches!(
        compare(("a", &a), ("b", &b), &quick()),
        Err(CompareError::NothingShared {
            a_rows: 1,
            b_rows: 1
        })
    ));
    let twice = vec![a[0].clone(), a[0].clone()];
    match compare(("a", &a), ("twice", &twice), &quick()) {
        Err(CompareError::Duplicate { run, seed: 0, .. }) => assert_eq!(run, "twice"),
        other => panic!("expected a duplicate error, got {other:?}"),
    }
}
