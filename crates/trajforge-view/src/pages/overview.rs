//! The run overview: the numbers of `trajforge status` and the plots.

use std::collections::BTreeMap;
use std::fmt::Write;

use trajforge_pipeline::status::Status;

use crate::html::{esc, num, query};
use crate::svg::{self, Bar};

/// The overview's body from the status, the threshold and the jobs' finishing times.
pub fn body(s: &Status, threshold: Option<f64>, finished: &[i64]) -> String {
    let mut o = String::new();
    let web = s.kind == "web";
    let unit = if web { "tasks" } else { "functions" };
    o.push_str("<h1>Run overview</h1><section class=\"cards\">");
    let mut card = |id: &str, label: &str, value: String| {
        let _ = write!(
            o,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" id=\"{}\">{}</div></div>",
            esc(label),
            esc(id),
            esc(&value)
        );
    };
    card("n-functions", unit, s.functions.to_string());
    card("n-done", "done", s.done.to_string());
    card("n-running", "in flight", s.running.to_string());
    card("n-pending", "pending", s.pending.to_string());
    card("n-kept-t2", "kept T2", s.kept_t2.to_string());
    card("n-kept-t1", "kept T1", s.kept_t1.to_string());
    card(
        "n-tokens",
        "tokens",
        (s.prompt_tokens + s.completion_tokens).to_string(),
    );
    card(
        "n-cost",
        "cost",
        s.cost
            .map(|c| format!("${c:.2}"))
            .unwrap_or("unknown".into()),
    );
    card("n-wall", "wall time", format!("{:.0} s", s.wall_seconds));
    if s.tests_recorded > 0 {
        card(
            "n-tests",
            "tests agree",
            format!("{} of {}", s.tests_agree, s.tests_recorded),
        );
    }
    o.push_str("</section>");
    if let Some(e) = &s.eval {
        // An evaluation: its summary as `status` prints it.
        let _ = write!(
            o,
            "<section class=\"eval\"><h2>Evaluation</h2><pre id=\"eval-summary\">{}</pre>\
             <p><a id=\"eval-link\" href=\"/eval\">Result per task and seed</a></p></section>",
            esc(&trajforge_pipeline::eval::render(e))
        );
    }

    o.push_str("<section class=\"tables\">");
    table(&mut o, "results", "Results", &s.results, |k| {
        format!("/list?{}", query(&[("reason", k)]))
    });
    table(&mut o, "rejections", "Rejected", &s.rejections, |k| {
        format!("/list?{}", query(&[("reason", k)]))
    });
    table(&mut o, "exits", "Rollout exits", &s.exits, |k| {
        let (rollout, exit) = k.split_once('/').unwrap_or((k, ""));
        format!("/list?{}", query(&[("rollout", rollout), ("exit", exit)]))
    });
    table(&mut o, "stages", "Stages committed", &s.stages, |_| {
        String::new()
    });
    o.push_str("</section>");

    // The funnel: how many attempts reached each stage, and the pairs kept.
    let stage = |n: &str| s.stages.get(n).copied().unwrap_or(0) as f64;
    let mut funnel = vec![
        bar(unit, s.functions as f64),
        bar("rollout 1", stage("rollout1")),
    ];
    if !web {
        funnel.push(bar("self-check", stage("selfcheck")));
        funnel.push(bar("synthetic PR", stage("pr")));
    } else {
        funnel.push(bar("visitor request", stage("request")));
    }
    funnel.push(bar("rollout 2", stage("rollout2")));
    funnel.push(bar("verified", stage("verify")));
    funnel.push(bar("kept pairs", s.kept_t2 as f64));
    o.push_str("<section class=\"plots\">");
    o.push_str(&svg::hbars("plot-funnel", "Stage funnel", &funnel, &[]));
    o.push_str(&svg::histogram(
        &s.recall_histogram,
        threshold,
        if web { "Agreement" } else { "Line recall" },
    ));
    if web {
        let mut per_intent: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
        for (intent, pages) in &s.coverage {
            let e = per_intent.entry(intent).or_default();
            for c in pages.values() {
                e.0 += c.tried as f64;
                e.1 += c.infeasible as f64;
                e.2 += c.kept as f64;
            }
        }
        let bars: Vec<Bar> = per_intent
            .iter()
            .map(|(k, (t, i, kept))| Bar {
                label: k.to_string(),
                values: vec![*t, *i, *kept],
            })
            .collect();
        o.push_str(&svg::hbars(
            "plot-yield",
            "Yield per intent",
            &bars,
            &["tried", "infeasible", "kept"],
        ));
        coverage(&mut o, s);
    } else {
        let mut entries: Vec<_> = s.yield_by_entry.iter().collect();
        entries.sort_by(|a, b| {
            b.1.kept
                .cmp(&a.1.kept)
                .then(b.1.attempts.cmp(&a.1.attempts))
        });
        let bars: Vec<Bar> = entries
            .iter()
            .take(40)
            .map(|(k, y)| Bar {
                label: k.to_string(),
                values: vec![y.attempts as f64, y.selfcheck_yes as f64, y.kept as f64],
            })
            .collect();
        o.push_str(&svg::hbars(
            "plot-yield",
            "Yield per bug type",
            &bars,
            &["attempts", "self-check yes", "kept"],
        ));
    }
    let kept = (s.kept_t1 + s.kept_t2) as f64;
    let per_kept: Vec<Bar> = s
        .tokens_by_stage
        .iter()
        .map(|(k, v)| bar(k, if kept > 0.0 { *v as f64 / kept } else { 0.0 }))
        .collect();
    let _ = write!(
        o,
        "<p class=\"note\" id=\"per-kept\">Per kept trajectory: {} tokens, cost {}</p>",
        num(s.tokens_per_kept, 0),
        s.cost_per_kept
            .map(|c| format!("${c:.4}"))
            .unwrap_or("unknown".into())
    );
    o.push_str(&svg::hbars(
        "plot-tokens",
        "Tokens per kept trajectory, by stage",
        &per_kept,
        &[],
    ));
    o.push_str(&svg::throughput(finished));
    o.push_str("</section>");
    o
}

fn bar(label: &str, v: f64) -> Bar {
    Bar {
        label: label.to_string(),
        values: vec![v],
    }
}

fn table(
    o: &mut String,
    id: &str,
    title: &str,
    map: &BTreeMap<String, u64>,
    link: impl Fn(&str) -> String,
) {
    if map.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<table class=\"counts\" id=\"{}\"><caption>{}</caption>",
        esc(id),
        esc(title)
    );
    for (k, v) in map {
        let href = link(k);
        if href.is_empty() {
            let _ = write!(o, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
        } else {
            let _ = write!(
                o,
                "<tr><th><a href=\"{}\">{}</a></th><td data-key=\"{}\">{v}</td></tr>",
                esc(&href),
                esc(k),
                esc(k)
            );
        }
    }
    o.push_str("</table>");
}

/// The intent x start-page grid of a web run: tried / kept / infeasible per cell.
fn coverage(o: &mut String, s: &Status) {
    let mut pages: Vec<&String> = s.coverage.values().flat_map(|m| m.keys()).collect();
    pages.sort();
    pages.dedup();
    o.push_str("<figure class=\"plot\" id=\"coverage\"><figcaption>Coverage, intent × start page (tried / kept / infeasible)</figcaption><div class=\"scroll\"><table class=\"grid\"><tr><th></th>");
    for p in &pages {
        let _ = write!(o, "<th class=\"page\">{}</th>", esc(&svg::truncate(p, 40)));
    }
    o.push_str("</tr>");
    for (intent, cells) in &s.coverage {
        let _ = write!(o, "<tr><th>{}</th>", esc(intent));
        for p in &pages {
            match cells.get(*p) {
                Some(c) => {
                    let class = if c.kept > 0 {
                        "kept"
                    } else if c.tried > 0 {
                        "tried"
                    } else {
                        ""
                    };
                    let _ = write!(
                        o,
                        "<td class=\"{class}\">{} / {} / {}</td>",
                        c.tried, c.kept, c.infeasible
                    );
                }
                None => o.push_str("<td></td>"),
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</table></div></figure>");
}
