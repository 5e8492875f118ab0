//! An evaluation's pages: its result per task and seed, and its comparison with another
//! evaluation as `trajforge eval compare` computes it (the numbers come from
//! `trajforge_eval::compare`, never recomputed here).

use std::fmt::Write;

use trajforge_eval::compare::{Difference, Outcome};
use trajforge_eval::{Comparison, Summary, TaskKind};
use trajforge_pipeline::eval::ScoreStage;

use crate::html::{esc, num};

/// `resolved` as a word and its class (`–` for a task scored by recall alone).
fn resolved(r: Option<bool>) -> (&'static str, &'static str) {
    match r {
        Some(true) => ("resolved", "good"),
        Some(false) => ("unresolved", "bad"),
        None => ("–", "muted"),
    }
}

/// A fraction as a percentage with one decimal.
fn pct(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn kind(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Hard => "hard",
        TaskKind::Soft => "soft",
        TaskKind::Web => "web",
    }
}

/// The per-task page: the totals as `status` prints them, then one row per task and seed
/// (each linking to its job); `compare` is the other evaluation's folder, when given.
pub fn results_body(
    rows: &[(i64, ScoreStage)],
    summary: &Summary,
    compare: Option<&str>,
) -> String {
    let t = &summary.all;
    let mut o = String::from("<h1>Evaluation results</h1><section class=\"cards\">");
    for (id, label, value) in [
        ("eval-rows", "rows", t.rows.to_string()),
        ("eval-tasks", "tasks", t.tasks.to_string()),
        (
            "eval-resolved",
            "resolved",
            format!("{} of {}", t.resolved, t.hard_rows),
        ),
        ("eval-rate", "resolve rate", pct(t.resolved_rate)),
        ("eval-recall", "mean recall", num(t.mean_recall, 3)),
        ("eval-errors", "scoring errors", t.errors.to_string()),
    ] {
        let _ = write!(
            o,
            "<div class=\"card\"><div class=\"k\">{label}</div><div class=\"v\" id=\"{id}\">{}</div></div>",
            esc(&value)
        );
    }
    o.push_str("</section>");
    if let Some(other) = compare {
        let _ = write!(
            o,
            "<p><a id=\"compare-link\" href=\"/compare\">Compare with {}</a></p>",
            esc(other)
        );
    }
    o.push_str(
        "<table class=\"list\" id=\"eval-results\"><thead><tr><th>task</th><th>seed</th>\
         <th>kind</th><th>model</th><th>resolved</th><th>recall</th><th>exit</th><th>steps</th>\
         <th>tokens</th><th>tests not passing</th><th>error</th></tr></thead><tbody>",
    );
    for (job, s) in rows {
        let r = &s.result;
        let (word, class) = resolved(r.resolved);
        let _ = write!(
            o,
            "<tr class=\"row\" data-id=\"{job}\"><td><a class=\"open\" href=\"/job/{job}\">{}</a></td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"{class} resolved\">{word}</td>\
             <td class=\"recall\">{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.instance_id),
            r.seed,
            kind(r.kind),
            esc(&r.model),
            r.recall,
            esc(&r.exit_status),
            r.steps,
            r.prompt_tokens + r.completion_tokens,
            esc(&s.failing_tests.join(", ")),
            esc(r.error.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</tbody></table>");
    o
}

/// A difference and its interval, in points.
fn points(d: &Difference) -> String {
    format!(
        "{:+.1} points (95% CI {:+.1} to {:+.1})",
        d.estimate * 100.0,
        d.ci_low * 100.0,
        d.ci_high * 100.0
    )
}

/// The comparison page: both runs, B−A with its interval, McNemar, the verdict and the tasks
/// that changed.
pub fn compare_body(c: &Comparison) -> String {
    let mut o = String::from("<h1>Comparison</h1>");
    let _ = write!(
        o,
        "<p class=\"verdict\" id=\"verdict\" data-outcome=\"{}\">{}</p>",
        match c.verdict.outcome {
            Outcome::Better => "better",
            Outcome::Worse => "worse",
            Outcome::NoDifference => "no_difference",
        },
        esc(&c.verdict.text)
    );
    o.push_str(
        "<table class=\"counts\" id=\"runs\"><thead><tr><th></th><th>run</th><th>models</th>\
         <th>rows</th><th>unpaired</th><th>resolve rate</th><th>mean recall</th></tr></thead><tbody>",
    );
    for (side, r) in [("a", &c.a), ("b", &c.b)] {
        let _ = write!(
            o,
            "<tr id=\"run-{side}\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"rate\">{}</td><td class=\"recall\">{:.3}</td></tr>",
            side.to_uppercase(),
            esc(&r.label),
            esc(&r.models.join(", ")),
            r.rows,
            r.unpaired,
            pct(r.resolve_rate),
            r.mean_recall
        );
    }
    o.push_str("</tbody></table>");
    let _ = write!(
        o,
        "<p id=\"paired\">{} paired rows over {} tasks ({} hard rows over {} tasks); {} bootstrap resamples</p><ul class=\"diffs\">",
        c.paired_rows, c.paired_tasks, c.hard_rows, c.hard_tasks, c.resamples
    );
    if let Some(d) = &c.resolved {
        let _ = write!(
            o,
            "<li>B−A resolve rate: <span id=\"diff-resolved\">{}</span></li>",
            points(d)
        );
    }
    let _ = write!(
        o,
        "<li>B−A mean recall: <span id=\"diff-recall\">{}</span></li>",
        points(&c.recall)
    );
    if let Some(m) = &c.mcnemar {
        let _ = write!(
            o,
            "<li>McNemar (exact): <span id=\"mcnemar\">A only {}, B only {}, p = {:.4}</span></li>",
            m.a_only, m.b_only, m.p_value
        );
    }
    if let Some(p) = &c.power {
        let _ = write!(
            o,
            "<li>To detect {:.0} points: <span id=\"power\">{} tasks ({} more)</span></li>",
            p.detect * 100.0,
            p.tasks_needed,
            p.more_tasks()
        );
    }
    o.push_str("</ul>");
    let _ = write!(
        o,
        "<h2>Tasks that changed (<span id=\"n-changes\">{}</span>)</h2>",
        c.changes.len()
    );
    o.push_str(
        "<table class=\"list\" id=\"changes\"><thead><tr><th>task</th><th>kind</th>\
         <th>seeds resolved, A → B</th><th>mean recall, A → B</th></tr></thead><tbody>",
    );
    for t in &c.changes {
        let _ = write!(
            o,
            "<tr class=\"row\" data-id=\"{}\"><td>{}</td><td>{}</td><td class=\"flip\">{}</td>\
             <td>{:.3} → {:.3}</td></tr>",
            esc(&t.instance_id),
            esc(&t.instance_id),
            kind(t.kind),
            esc(&t.seeds_resolved()),
            t.recall_a,
            t.recall_b
        );
    }
    o.push_str("</tbody></table>");
    o
}
