//! One job's story: the sampled function (or web task), and per attempt rollout 1's timeline,
//! the self-check, the synthetic PR (or visitor request), rollout 2's timeline, P1 beside P2
//! with every changed line marked as the recall counted it, r against the threshold, and the
//! behavioural verdict.

use std::collections::HashMap;
use std::fmt::Write;

use trajforge_agent::Trajectory;
use trajforge_patch::{LineKind, LinePos, Patch};
use trajforge_pipeline::demos::Demo;
use trajforge_store::model::{RolloutStage, Stage, VerifyStage};
use trajforge_teacher::Role;

use crate::html::{esc, num};
use crate::query::{JobStory, JobTrajectory};

/// The story page's body; `threshold` is the run's recall threshold, `demos` the
/// demonstration pool the synthetic PRs imitated (empty when not known).
pub fn body(story: &JobStory, threshold: Option<f64>, demos: &[Demo]) -> String {
    let mut o = String::new();
    let job = &story.job;
    let p = &job.payload;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let _ = write!(o, "<nav class=\"pager\">");
    if let Some(prev) = story.neighbours.0 {
        let _ = write!(o, "<a rel=\"prev\" href=\"/job/{prev}\">← job {prev}</a> ");
    }
    if let Some(next) = story.neighbours.1 {
        let _ = write!(o, "<a rel=\"next\" href=\"/job/{next}\">job {next} →</a>");
    }
    o.push_str("</nav>");
    let _ = write!(
        o,
        "<h1>Job {} <span class=\"muted\">{}</span></h1><dl class=\"facts\"><dt>status</dt><dd id=\"job-status\">{}</dd><dt>result</dt><dd id=\"job-result\">{}</dd>",
        job.id,
        esc(&job.key),
        esc(job.status.as_str()),
        esc(job.result.as_ref().map(|r| r.as_str()).unwrap_or("–"))
    );
    if !s("intent").is_empty() {
        let _ = write!(
            o,
            "<dt>intent</dt><dd>{}</dd><dt>start page</dt><dd>{} <span class=\"muted\">{}</span></dd>",
            esc(s("intent")),
            esc(s("start_title")),
            esc(s("start_url"))
        );
    } else {
        let _ = write!(
            o,
            "<dt>function</dt><dd><code>{}</code> in <code>{}</code></dd>",
            esc(s("name")),
            esc(s("path"))
        );
    }
    o.push_str("</dl>");
    if let Some(code) = p.get("code").and_then(|v| v.as_str()) {
        let _ = write!(
            o,
            "<details class=\"function\"><summary>sampled function</summary><pre>{}</pre></details>",
            esc(code)
        );
    }
    let attempts = story.attempts();
    if attempts.is_empty() {
        o.push_str("<p class=\"muted\">No attempt recorded yet.</p>");
    }
    for a in attempts {
        attempt(&mut o, story, a, threshold, demos);
    }
    o
}

fn attempt(o: &mut String, story: &JobStory, a: i64, threshold: Option<f64>, demos: &[Demo]) {
    let _ = write!(
        o,
        "<section class=\"attempt\" id=\"a{a}\"><h2>Attempt {a}</h2>"
    );
    let r1 = story.stage(a, |s| match s {
        Stage::Rollout1(r) => Some(r),
        _ => None,
    });
    let r2 = story.stage(a, |s| match s {
        Stage::Rollout2(r) => Some(r),
        _ => None,
    });
    if let Some(r) = r1 {
        if let RolloutStage::Code(c) = r {
            let _ = write!(
                o,
                "<dl class=\"facts\"><dt>bug type</dt><dd class=\"bug\">{}</dd><dt>exit</dt><dd>{}</dd><dt>steps</dt><dd>{}</dd></dl>\
                 <details class=\"prompt\" open><summary>bug prompt (rollout 1's task)</summary><pre>{}</pre></details>",
                esc(c.bug.as_deref().unwrap_or("?")),
                esc(c.exit.as_str()),
                c.steps,
                esc(&c.task)
            );
        } else {
            let _ = write!(
                o,
                "<details class=\"prompt\" open><summary>rollout 1's task</summary><pre>{}</pre></details>",
                esc(task_of(r))
            );
        }
    }
    if let Some(t) = story.trajectory(a, "t1") {
        timeline(o, "Rollout 1 (T1)", t);
    }
    if let Some(c) = story.stage(a, |s| match s {
        Stage::Selfcheck(c) => Some(c),
        _ => None,
    }) {
        let _ = write!(
            o,
            "<p class=\"selfcheck\">Self-check: <b id=\"selfcheck-{a}\">{}</b> after {} call(s)</p>",
            esc(&format!("{:?}", c.answer).to_lowercase()),
            c.tries
        );
    }
    if let Some(pr) = story.stage(a, |s| match s {
        Stage::Pr(p) => Some(p),
        _ => None,
    }) {
        let _ = write!(
            o,
            "<section class=\"pr patches\"><div class=\"side\"><h3>Synthetic PR</h3><pre class=\"prtext\">{}</pre></div>\
             <div class=\"side\"><h3>Demonstration it imitated <span class=\"muted\">{}</span></h3>{}</div></section>",
            esc(&pr.text),
            esc(&pr.demo),
            match demos.iter().find(|d| d.id == pr.demo) {
                Some(d) => format!("<pre class=\"demo\">{}</pre>", esc(&d.text)),
                None =>
                    "<p class=\"muted\">not in the built-in pool (the run was given its own)</p>"
                        .to_string(),
            }
        );
    }
    if let Some(req) = story.stage(a, |s| match s {
        Stage::Request(r) => Some(r),
        _ => None,
    }) {
        let _ = write!(
            o,
            "<section class=\"pr\"><h3>Visitor request{}</h3><pre class=\"prtext\">{}</pre></section>",
            if req.leaks_path {
                " <span class=\"bad\">gives the path away</span>"
            } else {
                ""
            },
            esc(&req.text)
        );
    }
    if let Some(t) = story.trajectory(a, "t2") {
        timeline(o, "Rollout 2 (T2)", t);
    }
    if web(r1).is_some() || web(r2).is_some() {
        web_pair(o, [("T1", web(r1)), ("T2", web(r2))]);
    }
    let verify = story.stage(a, |s| match s {
        Stage::Verify(v) => Some(v),
        _ => None,
    });
    if let Some(v) = verify {
        verdict(o, a, v, threshold);
    }
    let p1 = patch_of(story, a, "t1", r1);
    let p2 = patch_of(story, a, "t2", r2);
    if matches!(
        verify,
        Some(VerifyStage::Recall(_)) | Some(VerifyStage::Unparseable(_))
    ) || (p1.is_some() && p2.is_some())
    {
        patches(o, a, p1.unwrap_or(""), p2.unwrap_or(""));
    } else if let Some(p1) = p1 {
        let _ = write!(o, "<h3>P1</h3><pre class=\"diff\">{}</pre>", esc(p1));
    }
    if let Some(t) = story.stage(a, |s| match s {
        Stage::Tests(t) => Some(t),
        _ => None,
    }) {
        o.push_str("<section class=\"tests\"><h3>Behavioural verdict</h3>");
        match (&t.verdict, &t.error) {
            (Some(v), _) => {
                let _ = write!(
                    o,
                    "<p id=\"tests-{a}\" class=\"{}\">P1 and P2 {} the same tests</p>",
                    if v.agree { "good" } else { "bad" },
                    if v.agree { "change" } else { "do not change" }
                );
                let detail = serde_json::to_string_pretty(&v.detail).unwrap_or_default();
                let _ = write!(
                    o,
                    "<details><summary>detail</summary><pre>{}</pre></details>",
                    esc(&detail)
                );
            }
            (None, Some(e)) => {
                let _ = write!(o, "<p class=\"bad\">no verdict: {}</p>", esc(e));
            }
            _ => {}
        }
        if let Some(c) = &t.exit_codes {
            let code = |c: Option<i32>| c.map(|c| c.to_string()).unwrap_or("–".into());
            let _ = write!(
                o,
                "<p class=\"muted\">exit codes: base {}, with P1 {}, with P2 {}</p>",
                code(c.base),
                code(c.p1),
                code(c.p2)
            );
        }
        o.push_str("</section>");
    }
    if let Some(r) = story.stage(a, |s| match s {
        Stage::Rejected(r) => Some(r),
        _ => None,
    }) {
        let _ = write!(
            o,
            "<p class=\"rejected\">Rejected: <b>{}</b>{}{}</p>",
            esc(r.reason.as_str()),
            r.error
                .as_deref()
                .map(|e| format!(" — {}", esc(e)))
                .unwrap_or_default(),
            r.infeasible
                .as_deref()
                .map(|e| format!(" — infeasible: {}", esc(e)))
                .unwrap_or_default()
        );
    }
    o.push_str("</section>");
}

fn web(r: Option<&RolloutStage>) -> Option<&trajforge_store::model::WebRollout> {
    match r {
        Some(RolloutStage::Web(w)) => Some(w),
        _ => None,
    }
}

fn task_of(r: &RolloutStage) -> &str {
    match r {
        RolloutStage::Web(w) => &w.task,
        RolloutStage::Code(c) => &c.task,
    }
}

fn patch_of<'a>(
    story: &'a JobStory,
    a: i64,
    rollout: &str,
    stage: Option<&'a RolloutStage>,
) -> Option<&'a str> {
    story
        .trajectory(a, rollout)
        .and_then(|t| t.meta.patch.as_deref())
        .or(match stage {
            Some(RolloutStage::Code(c)) => c.patch.as_deref(),
            _ => None,
        })
}

fn verdict(o: &mut String, a: i64, v: &VerifyStage, threshold: Option<f64>) {
    o.push_str("<section class=\"verify\"><h3>Soft verification</h3>");
    match v {
        VerifyStage::Recall(r) => {
            let _ = write!(
                o,
                "<p><span class=\"{}\" id=\"verdict-{a}\">{}</span>: line recall r = <b id=\"recall-{a}\">{}</b> ({} of {} P1 lines matched; precision {}) against threshold <b>{}</b> → {}</p>",
                if r.kept { "good" } else { "bad" },
                if r.kept { "kept" } else { "rejected" },
                num(r.recall, 3),
                r.matched,
                r.total,
                num(r.precision, 3),
                num(threshold, 2),
                esc(r.result.as_str())
            );
        }
        VerifyStage::Unparseable(u) => {
            let _ = write!(
                o,
                "<p class=\"bad\" id=\"verdict-{a}\">patch unparseable: {}</p>",
                esc(&u.error)
            );
        }
        VerifyStage::Agreement(g) => {
            let _ = write!(
                o,
                "<p><span class=\"{}\" id=\"verdict-{a}\">{}</span>: agreement r = <b id=\"recall-{a}\">{:.3}</b> against threshold <b>{}</b> → {}; same final page: {}; share of T1's pages T2 visited: {} ({} of {}); same answer: {}</p>",
                if g.kept { "good" } else { "bad" },
                if g.kept { "kept" } else { "rejected" },
                g.recall,
                g.threshold,
                esc(g.result.as_str()),
                if g.same_final { "yes" } else { "no" },
                num(g.visited_recall, 2),
                g.shared_pages,
                g.t1_pages,
                match g.same_answer {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "not asked",
                }
            );
        }
    }
    o.push_str("</section>");
}

/// P1 beside P2, every changed line marked matched or unmatched by the recall's own rule
/// ([`trajforge_patch::line_matches`]); lines the metric ignores (blank) are marked so.
fn patches(o: &mut String, a: i64, p1: &str, p2: &str) {
    let parsed = (trajforge_patch::parse(p1), trajforge_patch::parse(p2));
    let _ = write!(o, "<section class=\"patches\" id=\"patches-{a}\">");
    match parsed {
        (Ok(one), Ok(two)) => {
            let m = trajforge_patch::line_matches(&one, &two);
            let marks1: HashMap<LinePos, bool> = m.reference.into_iter().collect();
            let marks2: HashMap<LinePos, bool> = m.candidate.into_iter().collect();
            o.push_str("<div class=\"side\"><h3>P1 (rollout 1)</h3>");
            diff(o, &one, &marks1, "p1");
            o.push_str("</div><div class=\"side\"><h3>P2 (rollout 2)</h3>");
            diff(o, &two, &marks2, "p2");
            o.push_str("</div>");
        }
        _ => {
            let _ = write!(
                o,
                "<div class=\"side\"><h3>P1</h3><pre class=\"diff\">{}</pre></div><div class=\"side\"><h3>P2</h3><pre class=\"diff\">{}</pre></div>",
                esc(p1),
                esc(p2)
            );
        }
    }
    o.push_str("</section>");
}

fn diff(o: &mut String, patch: &Patch, marks: &HashMap<LinePos, bool>, side: &str) {
    let _ = write!(o, "<pre class=\"diff {side}\">");
    if patch.files.is_empty() {
        o.push_str("<span class=\"muted\">(empty)</span>");
    }
    for (f, file) in patch.files.iter().enumerate() {
        let _ = writeln!(o, "<span class=\"file\">{}</span>", esc(file.path()));
        for (h, hunk) in file.hunks.iter().enumerate() {
            let _ = writeln!(
                o,
                "<span class=\"hunk\">@@ -{},{} +{},{} @@ {}</span>",
                hunk.old_start,
                hunk.old_len,
                hunk.new_start,
                hunk.new_len,
                esc(&hunk.section)
            );
            for (l, line) in hunk.lines.iter().enumerate() {
                let kind = match line.kind {
                    LineKind::Context => "ctx",
                    LineKind::Added => "add",
                    LineKind::Removed => "del",
                };
                let mark = match marks.get(&LinePos {
                    file: f,
                    hunk: h,
                    line: l,
                }) {
                    Some(true) => " matched",
                    Some(false) => " unmatched",
                    None if line.kind != LineKind::Context => " ignored",
                    None => "",
                };
                let _ = writeln!(
                    o,
                    "<span class=\"ln {kind}{mark}\">{}{}</span>",
                    line.kind.sign(),
                    esc(&line.text)
                );
            }
        }
    }
    o.push_str("</pre>");
}

/// The pages each rollout of a web task visited, side by side, with the final pages and answers.
fn web_pair(o: &mut String, sides: [(&str, Option<&trajforge_store::model::WebRollout>); 2]) {
    o.push_str("<section class=\"patches web\">");
    for (name, w) in sides {
        let Some(w) = w else {
            let _ = write!(
                o,
                "<div class=\"side\"><h3>{name}</h3><p class=\"muted\">not run</p></div>"
            );
            continue;
        };
        let _ = write!(
            o,
            "<div class=\"side\"><h3>{name}: pages visited</h3><ol class=\"visited\">"
        );
        for url in &w.visited {
            // Shown as text, never as a link: a page URL from a trajectory is not trusted.
            let _ = write!(o, "<li><code>{}</code></li>", esc(url));
        }
        let _ = write!(
            o,
            "</ol><p>final page: <code class=\"final\">{}</code> {}</p><p>answer: <q class=\"answer\">{}</q></p>{}</div>",
            esc(w.final_url.as_deref().unwrap_or("–")),
            esc(w.title.as_deref().unwrap_or("")),
            esc(w.answer.as_deref().unwrap_or("–")),
            w.infeasible
                .as_deref()
                .map(|i| format!("<p class=\"bad\">infeasible: {}</p>", esc(i)))
                .unwrap_or_default()
        );
    }
    o.push_str("</section>");
}

/// A trajectory as a timeline of steps: reasoning (collapsible), text, tool calls with their
/// observations, exit codes, durations and tokens.
pub fn timeline(o: &mut String, title: &str, t: &JobTrajectory) {
    let m = &t.meta;
    let _ = write!(
        o,
        "<section class=\"timeline\" id=\"t{}\"><h3>{} <span class=\"muted\">trajectory {} · {} · {}</span> <a href=\"/sample/{}\">training sample</a></h3>",
        m.id,
        esc(title),
        m.id,
        esc(m.exit_status.as_str()),
        if m.kept { "kept" } else { "not kept" },
        m.id
    );
    match &t.trajectory {
        Some(tr) => steps(o, m.id, tr),
        None => {
            let _ = write!(
                o,
                "<p class=\"muted\">Not an episode record; stored JSON:</p><pre>{}</pre>",
                esc(&t.raw)
            );
        }
    }
    o.push_str("</section>");
}

fn steps(o: &mut String, id: i64, t: &Trajectory) {
    let _ = write!(
        o,
        "<p class=\"muted\">{} steps · {} prompt + {} completion tokens · {:.1} s · teacher {}</p>",
        t.steps.len(),
        t.usage.prompt_tokens,
        t.usage.completion_tokens,
        t.duration.as_secs_f64(),
        esc(&t.teacher.model)
    );
    if let Some(system) = t.messages.iter().find(|m| m.role == Role::System) {
        let _ = write!(
            o,
            "<details class=\"system\"><summary>system prompt</summary><pre>{}</pre></details>",
            esc(system.content.as_deref().unwrap_or(""))
        );
    }
    for s in &t.steps {
        let _ = write!(
            o,
            "<article class=\"step\" id=\"t{id}-s{}\"><header>step {} · model {:.1} s · {} + {} tokens{}</header>",
            s.index,
            s.index + 1,
            s.model_time.as_secs_f64(),
            s.usage.prompt_tokens,
            s.usage.completion_tokens,
            if s.attempts > 1 {
                format!(" · {} requests", s.attempts)
            } else {
                String::new()
            }
        );
        if let Some(r) = s.assistant.reasoning.as_deref().filter(|r| !r.is_empty()) {
            let _ = write!(
                o,
                "<details class=\"reasoning\"><summary>reasoning</summary><pre>{}</pre></details>",
                esc(r)
            );
        }
        if let Some(c) = s.assistant.content.as_deref().filter(|c| !c.is_empty()) {
            let _ = write!(o, "<pre class=\"say\">{}</pre>", esc(c));
        }
        for u in &s.tools {
            let obs = &u.observation;
            let _ = write!(
                o,
                "<div class=\"call\"><div class=\"cmd\"><span class=\"tool\">{}</span><pre>{}</pre></div>\
                 <div class=\"obs{}\"><span class=\"meta\">{}{:.2} s{}</span><pre>{}</pre></div></div>",
                esc(&u.tool),
                esc(&arguments_text(&u.arguments)),
                if obs.error { " error" } else { "" },
                obs.exit_code
                    .map(|c| format!("exit {c} · "))
                    .unwrap_or_default(),
                obs.duration.as_secs_f64(),
                if obs.done { " · ends the episode" } else { "" },
                esc(&obs.text)
            );
        }
        o.push_str("</article>");
    }
    let _ = write!(
        o,
        "<p class=\"exit\">ended: <b>{}</b></p>",
        esc(t.exit.label())
    );
}

/// A tool call's arguments for reading: a lone string argument (a shell command) as is, else
/// the JSON pretty-printed, else the raw text.
fn arguments_text(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(m)) if m.len() == 1 => match m.values().next() {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => serde_json::to_string_pretty(&m).unwrap_or_else(|_| raw.to_string()),
        },
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| raw.to_string()),
        Err(_) => raw.to_string(),
    }
}
