//! The code pipeline of SPEC.md section 2, one function (job) at a time, many in flight.
//!
//! Every stage's result is committed to the store before the next stage starts; a job
//! resumed after a crash replays its committed stages from the store and redoes only the
//! stage that was cut (an episode cut mid-way restarts from a fresh workspace).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use trajforge_agent::{LoopConfig, Trajectory, run_episode};
use trajforge_menu::Menu;
use trajforge_store::{Job, StoreError, TrajectoryRecord, UsageRecord};
use trajforge_teacher::{ChatMessage, Usage};

use crate::demos::Demo;
use crate::error::RunError;
use crate::prompts::{Prompts, fill};
use crate::runner::{JobHandler, STOPPED, Worker, run_jobs};
use crate::testreport;

/// A deterministic draw in `0..n` from the seed, the job and the purpose.
pub(crate) use trajforge_hash::draw;

/// Stage names as stored.
pub mod stage {
    /// The first rollout.
    pub const ROLLOUT1: &str = "rollout1";
    /// The teacher's self-check of rollout 1.
    pub const SELFCHECK: &str = "selfcheck";
    /// The synthetic pull request text.
    pub const PR: &str = "pr";
    /// The second rollout.
    pub const ROLLOUT2: &str = "rollout2";
    /// Line-recall verification.
    pub const VERIFY: &str = "verify";
    /// The behavioural verdict of the test command.
    pub const TESTS: &str = "tests";
    /// Why an attempt ended without a kept pair.
    pub const REJECTED: &str = "rejected";
}

/// Everything that fixes the meaning of a run's data.
#[derive(Debug, Clone)]
pub struct CodeConfig {
    /// Bug-type menu.
    pub menu: Menu,
    /// Demonstration issues.
    pub demos: Vec<Demo>,
    /// Stage prompts.
    pub prompts: Prompts,
    /// Agent loop settings of both rollouts.
    pub loop_config: LoopConfig,
    /// Minimum line recall for a kept T2.
    pub threshold: f64,
    /// Attempts (bug types drawn) per function.
    pub attempts: u32,
    /// Seed of the draws.
    pub seed: u64,
    /// Test command for the behavioural verdict.
    pub test_cmd: Option<String>,
    /// Tries of an unparseable self-check answer.
    pub selfcheck_tries: u32,
}

/// Run jobs until none is left or the run is stopped, `concurrency` at a time.
pub async fn run(worker: Arc<Worker>, concurrency: usize) -> Result<(), RunError> {
    let w = Arc::clone(&worker);
    let handler: JobHandler = Arc::new(move |job: Job| {
        let w = Arc::clone(&w);
        Box::pin(async move { process(&w, job.id, &job.key, &job.payload).await })
    });
    run_jobs(
        Arc::clone(&worker.store),
        Arc::clone(&worker.control),
        worker.owner.clone(),
        concurrency,
        handler,
    )
    .await
}

pub(crate) fn usage_record(u: Usage, seconds: f64) -> UsageRecord {
    UsageRecord {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        model_seconds: seconds,
    }
}

pub(crate) fn model_seconds(t: &Trajectory) -> f64 {
    t.steps.iter().map(|s| s.model_time.as_secs_f64()).sum()
}

/// Run all stages of one job, resuming from what the store already holds; returns the job's result label.
async fn process(w: &Worker, job: i64, key: &str, payload: &Value) -> Result<String, StoreError> {
    let function = payload["name"].as_str().unwrap_or_default().to_string();
    let path = payload["path"].as_str().unwrap_or_default().to_string();
    let mut done: HashMap<(i64, String), Value> = HashMap::new();
    for s in w.store.stages(job)? {
        done.insert((s.attempt, s.stage), s.payload);
    }
    let cfg = &w.config;
    let mut last_reason = "no_attempt".to_string();
    for attempt in 1..=cfg.attempts.max(1) {
        let a = i64::from(attempt);
        if let Some(r) = done.get(&(a, stage::REJECTED.to_string())) {
            last_reason = r["reason"].as_str().unwrap_or("rejected").to_string();
            continue;
        }
        let bug = &cfg.menu.bugs[draw(cfg.seed, key, attempt, "bug", cfg.menu.bugs.len())];
        let task1 = fill(
            &cfg.prompts.rollout1,
            &[
                ("bug", &bug.render(&function, &path)),
                ("function", &function),
                ("path", &path),
            ],
        );
        let reject = |reason: &str, extra: Value| -> Result<String, StoreError> {
            let mut p = json!({"reason": reason, "bug": bug.id});
            if let (Some(obj), Value::Object(more)) = (p.as_object_mut(), extra) {
                obj.extend(more);
            }
            w.store
                .record_stage(&w.owner, job, a, stage::REJECTED, &p, None, None)?;
            Ok(reason.to_string())
        };

        // Rollout 1.
        let r1 = match done.get(&(a, stage::ROLLOUT1.to_string())) {
            Some(v) => v.clone(),
            None => {
                if w.control.stopped() {
                    return Ok(STOPPED.into());
                }
                let t = match rollout(w, &task1).await {
                    Ok(t) => t,
                    Err(e) => {
                        last_reason = reject("t1_environment_error", json!({"error": e}))?;
                        continue;
                    }
                };
                let v = json!({"bug": bug.id, "bug_index": bug.index, "task": task1,
                               "exit": t.exit.label(), "patch": t.outcome.patch, "steps": t.steps.len()});
                let rec = TrajectoryRecord {
                    rollout: "t1".into(),
                    exit_status: t.exit.label().into(),
                    patch: t.outcome.patch.clone(),
                    data: serde_json::to_value(&t).unwrap_or(Value::Null),
                };
                w.control.add(t.usage);
                w.store.record_stage(
                    &w.owner,
                    job,
                    a,
                    stage::ROLLOUT1,
                    &v,
                    Some(&rec),
                    Some(usage_record(t.usage, model_seconds(&t))),
                )?;
                v
            }
        };
        if r1["exit"] != "submitted" {
            last_reason = reject("t1_not_submitted", json!({"exit": r1["exit"]}))?;
            continue;
        }
        let p1 = r1["patch"].as_str().unwrap_or("").to_string();
        if p1.trim().is_empty() {
            last_reason = reject("p1_empty", json!({}))?;
            continue;
        }
        if !done.contains_key(&(a, stage::SELFCHECK.to_string()))
            && w.store.has_other_t1_patch(job, &p1)?
        {
            last_reason = reject("p1_duplicate", json!({}))?;
            continue;
        }

        // Self-check.
        let sc = match done.get(&(a, stage::SELFCHECK.to_string())) {
            Some(v) => v.clone(),
            None => {
                let traj = load_trajectory(w, job, a, "t1")?;
                let (answer, tries, usage, secs) =
                    match selfcheck(w, &task1, &p1, traj.as_ref()).await {
                        Ok(r) => r,
                        Err(e) => {
                            last_reason = reject("selfcheck_teacher_error", json!({"error": e}))?;
                            continue;
                        }
                    };
                w.control.add(usage);
                let v = json!({"answer": answer, "tries": tries});
                w.store.record_stage(
                    &w.owner,
                    job,
                    a,
                    stage::SELFCHECK,
                    &v,
                    None,
                    Some(usage_record(usage, secs)),
                )?;
                v
            }
        };
        if sc["answer"] != "yes" {
            let reason = if sc["answer"] == "no" {
                "selfcheck_no"
            } else {
                "selfcheck_unparseable"
            };
            last_reason = reject(reason, json!({}))?;
            continue;
        }
        w.store.set_verdict(job, a, "t1", true, None)?;

        // Synthetic PR.
        let pr = match done.get(&(a, stage::PR.to_string())) {
            Some(v) => v.clone(),
            None => {
                let demo = &cfg.demos[draw(cfg.seed, key, attempt, "demo", cfg.demos.len())];
                let (text, usage, secs) = match synthesize_pr(w, demo, &task1, &p1).await {
                    Ok(r) => r,
                    Err(e) => {
                        last_reason = reject("pr_teacher_error", json!({"error": e}))?;
                        continue;
                    }
                };
                w.control.add(usage);
                let v = json!({"demo": demo.id, "text": text});
                w.store.record_stage(
                    &w.owner,
                    job,
                    a,
                    stage::PR,
                    &v,
                    None,
                    Some(usage_record(usage, secs)),
                )?;
                v
            }
        };
        let issue = pr["text"].as_str().unwrap_or("").to_string();

        // Rollout 2.
        let r2 = match done.get(&(a, stage::ROLLOUT2.to_string())) {
            Some(v) => v.clone(),
            None => {
                if w.control.stopped() {
                    return Ok(STOPPED.into());
                }
                let task2 = fill(&cfg.prompts.rollout2, &[("issue", &issue)]);
                let t = match rollout(w, &task2).await {
                    Ok(t) => t,
                    Err(e) => {
                        last_reason = reject("t2_environment_error", json!({"error": e}))?;
                        continue;
                    }
                };
                let v = json!({"task": task2, "exit": t.exit.label(), "patch": t.outcome.patch, "steps": t.steps.len()});
                let rec = TrajectoryRecord {
                    rollout: "t2".into(),
                    exit_status: t.exit.label().into(),
                    patch: t.outcome.patch.clone(),
                    data: serde_json::to_value(&t).unwrap_or(Value::Null),
                };
                w.control.add(t.usage);
                w.store.record_stage(
                    &w.owner,
                    job,
                    a,
                    stage::ROLLOUT2,
                    &v,
                    Some(&rec),
                    Some(usage_record(t.usage, model_seconds(&t))),
                )?;
                v
            }
        };
        let p2 = r2["patch"].as_str().unwrap_or("").to_string();

        // Soft verification.
        let verify = match done.get(&(a, stage::VERIFY.to_string())) {
            Some(v) => v.clone(),
            None => {
                let v = verify(&p1, &p2, r2["exit"] == "submitted", cfg.threshold);
                w.store
                    .record_stage(&w.owner, job, a, stage::VERIFY, &v, None, None)?;
                w.store
                    .set_verdict(job, a, "t2", v["kept"] == true, v["recall"].as_f64())?;
                v
            }
        };

        // Behavioural verdict next to r.
        if let Some(cmd) = &cfg.test_cmd
            && !done.contains_key(&(a, stage::TESTS.to_string()))
            && !p2.trim().is_empty()
        {
            let v = tests_verdict(w, cmd, &p1, &p2).await;
            w.store
                .record_stage(&w.owner, job, a, stage::TESTS, &v, None, None)?;
        }
        return Ok(verify["result"].as_str().unwrap_or("verified").to_string());
    }
    Ok(last_reason)
}

async fn rollout(w: &Worker, task: &str) -> Result<Trajectory, String> {
    let mut env = w.envs.create().await.map_err(|e| e.to_string())?;
    Ok(run_episode(
        w.teacher.as_ref(),
        env.as_mut(),
        task,
        &w.config.loop_config,
        &mut |_| {},
    )
    .await)
}

fn load_trajectory(
    w: &Worker,
    job: i64,
    attempt: i64,
    rollout: &str,
) -> Result<Option<Trajectory>, StoreError> {
    Ok(w.store
        .trajectory_data(job, attempt, rollout)?
        .and_then(|data| serde_json::from_value(data).ok()))
}

/// The soft-verification record: recall, precision, verdict, kept and the job's result label.
pub fn verify(p1: &str, p2: &str, t2_submitted: bool, threshold: f64) -> Value {
    match trajforge_patch::line_recall_str(p1, p2) {
        Ok(r) => {
            let verdict = r.verdict(threshold);
            let kept = t2_submitted && verdict == trajforge_patch::Verdict::Kept;
            let result = if !t2_submitted {
                "t2_not_submitted"
            } else {
                match verdict {
                    trajforge_patch::Verdict::Kept => "kept",
                    trajforge_patch::Verdict::Rejected => "low_recall",
                    trajforge_patch::Verdict::NotVerified => "p1_no_lines",
                    trajforge_patch::Verdict::Skipped => "p2_empty",
                }
            };
            json!({"recall": r.recall, "precision": r.precision, "matched": r.matched, "total": r.total,
                   "candidate_total": r.candidate_total, "verdict": verdict.as_str(), "kept": kept, "result": result})
        }
        Err(e) => json!({"error": e.to_string(), "kept": false, "result": "patch_unparseable"}),
    }
}

/// T1 as numbered action/observation pairs, for the self-check.
fn render_steps(t: &Trajectory, skip: usize) -> String {
    let mut out = String::new();
    let calls: Vec<_> = t.steps.iter().flat_map(|s| s.tools.iter()).collect();
    for (i, use_) in calls.iter().enumerate().skip(skip) {
        out.push_str(&format!(
            "Action {}: {}({})\nObservation {}: {}\n\n",
            i + 1,
            use_.tool,
            clip(&use_.arguments, 600),
            i + 1,
            clip(&use_.observation.text, 1500)
        ));
    }
    if out.is_empty() {
        out.push_str("(no recorded steps)\n");
    }
    out
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    format!("{}... [clipped]", &text[..cut])
}

/// Parse a yes/no answer: the first word that is "yes" or "no".
pub fn parse_yes_no(text: &str) -> Option<bool> {
    text.split(|c: char| !c.is_alphabetic())
        .map(str::to_lowercase)
        .find_map(|w| match w.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        })
}

/// Ask the teacher whether P1 addresses the task; unparseable answers are retried with the
/// oldest quarter of the steps dropped each time.
async fn selfcheck(
    w: &Worker,
    task: &str,
    patch: &str,
    traj: Option<&Trajectory>,
) -> Result<(&'static str, u32, Usage, f64), String> {
    let mut usage = Usage::default();
    let mut secs = 0.0;
    let total_calls = traj.map_or(0, |t| t.steps.iter().map(|s| s.tools.len()).sum::<usize>());
    let tries = w.config.selfcheck_tries.max(1);
    for i in 0..tries {
        let skip = total_calls * i as usize / 4;
        let steps = traj.map_or_else(
            || "(not available)\n".to_string(),
            |t| render_steps(t, skip),
        );
        let prompt = fill(
            &w.config.prompts.selfcheck,
            &[("task", task), ("steps", &steps), ("patch", patch)],
        );
        let started = Instant::now();
        let c = w
            .teacher
            .complete(&[ChatMessage::user(prompt)], &[])
            .await
            .map_err(|e| e.to_string())?;
        secs += started.elapsed().as_secs_f64();
        usage.prompt_tokens += c.usage.prompt_tokens;
        usage.completion_tokens += c.usage.completion_tokens;
        match parse_yes_no(c.message.content.as_deref().unwrap_or("")) {
            Some(true) => return Ok(("yes", i + 1, usage, secs)),
            Some(false) => return Ok(("no", i + 1, usage, secs)),
            None => {}
        }
    }
    Ok(("unparseable", tries, usage, secs))
}

async fn synthesize_pr(
    w: &Worker,
    demo: &Demo,
    task: &str,
    patch: &str,
) -> Result<(String, Usage, f64), String> {
    let prompt = fill(
        &w.config.prompts.pr,
        &[("demo", &demo.text), ("task", task), ("patch", patch)],
    );
    let messages = [
        ChatMessage::system(&w.config.prompts.pr_system),
        ChatMessage::user(prompt),
    ];
    let started = Instant::now();
    let c = w
        .teacher
        .complete(&messages, &[])
        .await
        .map_err(|e| e.to_string())?;
    let text = clean_issue(c.message.content.as_deref().unwrap_or(""));
    if text.trim().is_empty() {
        return Err("the teacher wrote an empty issue".into());
    }
    Ok((text, c.usage, started.elapsed().as_secs_f64()))
}

/// Remove wrappers models like to add around the issue text.
fn clean_issue(text: &str) -> String {
    let mut t = text.trim();
    for tag in ["issue", "example_issue"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        if let (Some(s), Some(e)) = (t.find(&open), t.rfind(&close))
            && s < e
        {
            t = t[s + open.len()..e].trim();
        }
    }
    t.to_string()
}

async fn tests_verdict(w: &Worker, cmd: &str, p1: &str, p2: &str) -> Value {
    // The base run is the same for every job: keep it in the run's metadata.
    let base = match w.store.meta("tests_base") {
        Ok(Some(v)) => serde_json::from_str::<(String, Option<i32>)>(&v).ok(),
        _ => None,
    };
    let base = match base {
        Some(b) => b,
        None => match w.envs.run_tests(None, cmd).await {
            Ok(b) => {
                let _ = w
                    .store
                    .set_meta("tests_base", &serde_json::to_string(&b).unwrap_or_default());
                b
            }
            Err(e) => return json!({"error": format!("base run: {e}")}),
        },
    };
    let one = w.envs.run_tests(Some(p1), cmd).await;
    let two = w.envs.run_tests(Some(p2), cmd).await;
    match (one, two) {
        (Ok(a), Ok(b)) => {
            let base_r = testreport::parse(&base.0, base.1);
            let r1 = testreport::parse(&a.0, a.1);
            let r2 = testreport::parse(&b.0, b.1);
            let verdict = testreport::verdict(&base_r, &r1, &r2);
            json!({"verdict": verdict, "exit_codes": {"base": base.1, "p1": a.1, "p2": b.1}})
        }
        (Err(e), _) | (_, Err(e)) => json!({"error": e.to_string()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_parsing() {
        assert_eq!(parse_yes_no("Yes."), Some(true));
        assert_eq!(parse_yes_no("**No**, it does not"), Some(false));
        assert_eq!(parse_yes_no("I think yes"), Some(true));
        assert_eq!(parse_yes_no("Nope, not at all"), None);
        assert_eq!(parse_yes_no(""), None);
    }

    #[test]
    fn draws_are_deterministic_and_spread() {
        let a: Vec<usize> = (0..200)
            .map(|i| draw(7, &format!("k{i}"), 1, "bug", 51))
            .collect();
        let b: Vec<usize> = (0..200)
            .map(|i| draw(7, &format!("k{i}"), 1, "bug", 51))
            .collect();
        assert_eq!(a, b);
        let mut distinct = a.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 35, "{}", distinct.len());
        assert_ne!(
            draw(7, "k", 1, "bug", 51),
            draw(7, "k", 2, "bug", 51).wrapping_add(0) + 51
        );
        assert!(a.iter().all(|&x| x < 51));
    }

    #[test]
    fn verification_labels() {
        let p = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n";
        let q = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+c\n";
        let v = verify(p, p, true, 0.5);
        assert_eq!(
            (v["kept"].as_bool(), v["result"].as_str()),
            (Some(true), Some("kept"))
        );
        let v = verify(p, q, true, 0.75);
        assert_eq!(v["recall"], 0.5);
        assert_eq!(v["result"], "low_recall");
        let v = verify(p, p, false, 0.5);
        assert_eq!(v["result"], "t2_not_submitted");
        let v = verify(p, "", true, 0.5);
        assert_eq!(v["result"], "p2_empty");
    }

    #[test]
    fn issue_wrappers_are_removed() {
        assert_eq!(clean_issue("<issue>\nIt breaks\n</issue>"), "It breaks");
        assert_eq!(clean_issue("  plain  "), "plain");
    }
}
