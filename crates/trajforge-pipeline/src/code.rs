//! The code pipeline of SPEC.md section 2, one function (job) at a time, many in flight.
//!
//! Every stage's result is committed to the store before the next stage starts; a job
//! resumed after a crash replays its committed stages from the store and redoes only the
//! stage that was cut (an episode cut mid-way restarts from a fresh workspace).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;
use trajforge_agent::{ExitStatus, LoopConfig, Trajectory, run_episode};
use trajforge_menu::{BugEntry, Menu};
use trajforge_store::model::{
    CodeJob, CodeRollout, PrStage, RejectedStage, RolloutStage, SelfcheckAnswer, SelfcheckStage,
    TestExitCodes, TestsStage, VerifyStage,
};
use trajforge_store::{
    ExitLabel, Outcome, Rollout, Stage, StageName, StoreError, TrajectoryRecord, UsageRecord,
};
use trajforge_teacher::{ChatMessage, TeacherError, Usage};

use crate::demos::Demo;
use crate::envs::EnvError;
use crate::error::RunError;
use crate::prompts::{Prompts, fill};
use crate::runner::{Worker, run_worker};
use crate::testreport;

/// A deterministic draw in `0..n` from the seed, the job and the purpose.
pub(crate) use trajforge_hash::draw;

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
    run_worker(worker, concurrency, |w, job| {
        Box::pin(process(w, job.id, &job.key, &job.payload))
    })
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

/// Why a stage could not produce its result (the job is then rejected with the reason).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The environment could not be created.
    #[error(transparent)]
    Environment(#[from] EnvError),
    /// The teacher call failed.
    #[error(transparent)]
    Teacher(#[from] TeacherError),
    /// The teacher answered with no text.
    #[error("the teacher wrote an empty {0}")]
    Empty(&'static str),
}

/// The stored label of an episode's exit status.
pub fn exit_label(exit: &ExitStatus) -> ExitLabel {
    ExitLabel::from(exit.label())
}

/// Commit a stage written by one teacher call with its usage, and count its tokens.
pub(crate) fn record_teacher_stage<F: ?Sized, C>(
    w: &Worker<F, C>,
    job: i64,
    attempt: i64,
    stage: &Stage,
    usage: Usage,
    seconds: f64,
) -> Result<(), StoreError> {
    w.control.add(usage);
    w.store.record_stage(
        &w.owner,
        job,
        attempt,
        stage,
        None,
        Some(usage_record(usage, seconds)),
    )
}

/// What a code rollout's stage record keeps of its episode; `bug` for rollout 1 only.
fn code_rollout(t: &Trajectory, task: String, bug: Option<&BugEntry>) -> CodeRollout {
    CodeRollout {
        bug: bug.map(|b| b.id.clone()),
        bug_index: bug.map(|b| b.index),
        task,
        exit: exit_label(&t.exit),
        patch: t.outcome.patch.clone(),
        patch_cut: t.outcome.patch_cut,
        steps: t.steps.len(),
    }
}

/// Commit a rollout stage with its trajectory and usage, and count its tokens.
pub(crate) fn record_rollout<F: ?Sized, C>(
    w: &Worker<F, C>,
    job: i64,
    attempt: i64,
    stage: &Stage,
    rollout: Rollout,
    t: &Trajectory,
) -> Result<(), StoreError> {
    let rec = TrajectoryRecord {
        rollout,
        exit_status: exit_label(&t.exit),
        patch: t.outcome.patch.clone(),
        data: serde_json::to_value(t).unwrap_or(Value::Null),
    };
    w.control.add(t.usage);
    w.store.record_stage(
        &w.owner,
        job,
        attempt,
        stage,
        Some(&rec),
        Some(usage_record(t.usage, model_seconds(t))),
    )
}

/// Run all stages of one job, resuming from what the store already holds; returns the job's outcome.
async fn process(w: &Worker, job: i64, key: &str, payload: &Value) -> Result<Outcome, StoreError> {
    let CodeJob {
        name: function,
        path,
    } = CodeJob::deserialize(payload).unwrap_or_default();
    let mut done: HashMap<(i64, StageName), Stage> = HashMap::new();
    for s in w.store.stages(job)? {
        done.insert((s.attempt, s.stage.name()), s.stage);
    }
    let cfg = &w.config;
    let mut last_reason = Outcome::NoAttempt;
    for attempt in 1..=cfg.attempts.max(1) {
        let a = i64::from(attempt);
        let get = |name: StageName| done.get(&(a, name));
        if let Some(Stage::Rejected(r)) = get(StageName::Rejected) {
            last_reason = r.reason.clone();
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
        let reject = |mut r: RejectedStage| -> Result<Outcome, StoreError> {
            r.bug = Some(bug.id.clone());
            let reason = r.reason.clone();
            w.store
                .record_stage(&w.owner, job, a, &Stage::Rejected(r), None, None)?;
            Ok(reason)
        };

        // Rollout 1.
        let r1 = match get(StageName::Rollout1) {
            Some(Stage::Rollout1(RolloutStage::Code(v))) => v.clone(),
            _ => {
                if w.control.stopped() {
                    return Ok(Outcome::Stopped);
                }
                let run = run_rollout(w, job, a, Rollout::T1, task1.clone(), Some(bug), &reject);
                match run.await? {
                    Ok(v) => v,
                    Err(reason) => {
                        last_reason = reason;
                        continue;
                    }
                }
            }
        };
        if r1.exit != ExitLabel::Submitted {
            let mut r = RejectedStage::new(Outcome::T1NotSubmitted);
            r.exit = Some(r1.exit.clone());
            last_reason = reject(r)?;
            continue;
        }
        if let Some(size) = r1.patch_cut {
            last_reason = reject(RejectedStage::new(Outcome::P1TooLarge).error(too_large(size)))?;
            continue;
        }
        let p1 = r1.patch.clone().unwrap_or_default();
        if p1.trim().is_empty() {
            last_reason = reject(RejectedStage::new(Outcome::P1Empty))?;
            continue;
        }
        if get(StageName::Selfcheck).is_none() && w.store.has_other_t1_patch(job, &p1)? {
            last_reason = reject(RejectedStage::new(Outcome::P1Duplicate))?;
            continue;
        }

        // Self-check.
        let sc = match get(StageName::Selfcheck) {
            Some(Stage::Selfcheck(v)) => v.clone(),
            _ => {
                let traj = load_trajectory(w, job, a, &Rollout::T1)?;
                let (answer, tries, usage, secs) = match selfcheck(w, &task1, &p1, traj.as_ref())
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        last_reason =
                            reject(RejectedStage::new(Outcome::SelfcheckTeacherError).error(e))?;
                        continue;
                    }
                };
                let v = SelfcheckStage { answer, tries };
                record_teacher_stage(w, job, a, &Stage::Selfcheck(v.clone()), usage, secs)?;
                v
            }
        };
        match sc.answer {
            SelfcheckAnswer::Yes => {}
            SelfcheckAnswer::No => {
                last_reason = reject(RejectedStage::new(Outcome::SelfcheckNo))?;
                continue;
            }
            SelfcheckAnswer::Unparseable => {
                last_reason = reject(RejectedStage::new(Outcome::SelfcheckUnparseable))?;
                continue;
            }
        }
        w.store
            .set_verdict(&w.owner, job, a, &Rollout::T1, true, None)?;

        // Synthetic PR.
        let pr = match get(StageName::Pr) {
            Some(Stage::Pr(v)) => v.clone(),
            _ => {
                let demo = &cfg.demos[draw(cfg.seed, key, attempt, "demo", cfg.demos.len())];
                let (text, usage, secs) = match synthesize_pr(w, demo, &task1, &p1).await {
                    Ok(r) => r,
                    Err(e) => {
                        last_reason = reject(RejectedStage::new(Outcome::PrTeacherError).error(e))?;
                        continue;
                    }
                };
                let v = PrStage {
                    demo: demo.id.clone(),
                    text,
                };
                record_teacher_stage(w, job, a, &Stage::Pr(v.clone()), usage, secs)?;
                v
            }
        };

        // Rollout 2.
        let r2 = match get(StageName::Rollout2) {
            Some(Stage::Rollout2(RolloutStage::Code(v))) => v.clone(),
            _ => {
                if w.control.stopped() {
                    return Ok(Outcome::Stopped);
                }
                let task2 = fill(&cfg.prompts.rollout2, &[("issue", &pr.text)]);
                match run_rollout(w, job, a, Rollout::T2, task2, None, &reject).await? {
                    Ok(v) => v,
                    Err(reason) => {
                        last_reason = reason;
                        continue;
                    }
                }
            }
        };
        if let Some(size) = r2.patch_cut {
            last_reason = reject(RejectedStage::new(Outcome::P2TooLarge).error(too_large(size)))?;
            continue;
        }
        let p2 = r2.patch.clone().unwrap_or_default();

        // Soft verification.
        let verify = match get(StageName::Verify) {
            Some(Stage::Verify(v)) => v.clone(),
            _ => {
                let submitted = r2.exit == ExitLabel::Submitted;
                let v = VerifyStage::of_patches(&p1, &p2, submitted, cfg.threshold);
                w.store
                    .record_stage(&w.owner, job, a, &Stage::Verify(v.clone()), None, None)?;
                v
            }
        };
        // Set on every pass (idempotent): a crash after the verify stage's commit must not
        // leave T2 unmarked on resume.
        w.store.set_verdict(
            &w.owner,
            job,
            a,
            &Rollout::T2,
            verify.kept(),
            verify.recall(),
        )?;

        // Behavioural verdict next to r.
        if let Some(cmd) = &cfg.test_cmd
            && get(StageName::Tests).is_none()
            && !p2.trim().is_empty()
        {
            let v = tests_verdict(w, cmd, &p1, &p2).await;
            w.store
                .record_stage(&w.owner, job, a, &Stage::Tests(v), None, None)?;
        }
        return Ok(verify.result().clone());
    }
    Ok(last_reason)
}

/// Why a patch over the limit was rejected.
fn too_large(size: u64) -> String {
    format!(
        "the patch is {size} bytes, over the limit of {} bytes",
        trajforge_repo_env::repo::MAX_PATCH_BYTES
    )
}

/// The stage that holds rollout `which` (T1 or T2), and the outcome of a job whose
/// environment failed in it: the same for code and web runs.
pub(crate) fn rollout_stage(which: &Rollout) -> (fn(RolloutStage) -> Stage, Outcome) {
    match which {
        Rollout::T1 => (Stage::Rollout1, Outcome::T1EnvironmentError),
        _ => (Stage::Rollout2, Outcome::T2EnvironmentError),
    }
}

/// Run rollout `which` (T1 or T2) of attempt `a` on `task` (rollout 1 names its `bug`) and
/// commit its stage; when the environment fails, the attempt is rejected through `reject`
/// instead and `Err` holds that outcome.
async fn run_rollout(
    w: &Worker,
    job: i64,
    a: i64,
    which: Rollout,
    task: String,
    bug: Option<&BugEntry>,
    reject: &impl Fn(RejectedStage) -> Result<Outcome, StoreError>,
) -> Result<Result<CodeRollout, Outcome>, StoreError> {
    let (stage_of, env_error) = rollout_stage(&which);
    let t = match rollout(w, &task).await {
        Ok(t) => t,
        Err(e) => return reject(RejectedStage::new(env_error).error(e)).map(Err),
    };
    let v = code_rollout(&t, task, bug);
    record_rollout(
        w,
        job,
        a,
        &stage_of(RolloutStage::Code(v.clone())),
        which,
        &t,
    )?;
    Ok(Ok(v))
}

async fn rollout(w: &Worker, task: &str) -> Result<Trajectory, StageError> {
    rollout_in(
        w.teacher.as_ref(),
        w.envs.as_ref(),
        task,
        &w.config.loop_config,
    )
    .await
}

/// One episode of the rollout harness (tools, prompts, limits) on `task` in a fresh
/// environment of `envs`: what `generate`'s rollouts and `eval` run.
pub(crate) async fn rollout_in(
    teacher: &dyn trajforge_teacher::Teacher,
    envs: &dyn crate::envs::EnvFactory,
    task: &str,
    loop_config: &LoopConfig,
) -> Result<Trajectory, StageError> {
    let mut env = envs.create().await.map_err(StageError::Environment)?;
    Ok(run_episode(teacher, env.as_mut(), task, loop_config, &mut |_| {}).await)
}

/// The stored trajectory of a job's rollout, when there is one that reads back.
pub(crate) fn load_trajectory<F: ?Sized, C>(
    w: &Worker<F, C>,
    job: i64,
    attempt: i64,
    rollout: &Rollout,
) -> Result<Option<Trajectory>, StoreError> {
    Ok(w.store
        .trajectory_data(job, attempt, rollout)?
        .and_then(|data| serde_json::from_value(data).ok()))
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
) -> Result<(SelfcheckAnswer, u32, Usage, f64), StageError> {
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
            .await?;
        secs += started.elapsed().as_secs_f64();
        usage.prompt_tokens += c.usage.prompt_tokens;
        usage.completion_tokens += c.usage.completion_tokens;
        match parse_yes_no(c.message.content.as_deref().unwrap_or("")) {
            Some(true) => return Ok((SelfcheckAnswer::Yes, i + 1, usage, secs)),
            Some(false) => return Ok((SelfcheckAnswer::No, i + 1, usage, secs)),
            None => {}
        }
    }
    Ok((SelfcheckAnswer::Unparseable, tries, usage, secs))
}

async fn synthesize_pr(
    w: &Worker,
    demo: &Demo,
    task: &str,
    patch: &str,
) -> Result<(String, Usage, f64), StageError> {
    let prompt = fill(
        &w.config.prompts.pr,
        &[("demo", &demo.text), ("task", task), ("patch", patch)],
    );
    let messages = [
        ChatMessage::system(&w.config.prompts.pr_system),
        ChatMessage::user(prompt),
    ];
    let started = Instant::now();
    let c = w.teacher.complete(&messages, &[]).await?;
    let text = clean_issue(c.message.content.as_deref().unwrap_or(""));
    if text.trim().is_empty() {
        return Err(StageError::Empty("issue"));
    }
    Ok((text, c.usage, started.elapsed().as_secs_f64()))
}

/// Remove wrappers models like to add around the issue text.
pub(crate) fn clean_issue(text: &str) -> String {
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

async fn tests_verdict(w: &Worker, cmd: &str, p1: &str, p2: &str) -> TestsStage {
    let failed = |e: String| TestsStage {
        verdict: None,
        exit_codes: None,
        error: Some(e),
    };
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
            Err(e) => return failed(format!("base run: {e}")),
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
            TestsStage {
                // The report's verdict always has `agree`: the conversion cannot fail.
                verdict: serde_json::to_value(&verdict)
                    .and_then(serde_json::from_value)
                    .ok(),
                exit_codes: Some(TestExitCodes {
                    base: base.1,
                    p1: a.1,
                    p2: b.1,
                }),
                error: None,
            }
        }
        (Err(e), _) | (_, Err(e)) => failed(e.to_string()),
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
        let verify = VerifyStage::of_patches;
        let p = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n";
        let q = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+c\n";
        let v = verify(p, p, true, 0.5);
        assert_eq!((v.kept(), v.result()), (true, &Outcome::Kept));
        let v = verify(p, q, true, 0.75);
        assert_eq!(v.recall(), Some(0.5));
        assert_eq!(v.result(), &Outcome::LowRecall);
        let v = verify(p, p, false, 0.5);
        assert_eq!(v.result(), &Outcome::T2NotSubmitted);
        let v = verify(p, "", true, 0.5);
        assert_eq!(v.result(), &Outcome::P2Empty);
    }

    #[test]
    fn issue_wrappers_are_removed() {
        assert_eq!(clean_issue("<issue>\nIt breaks\n</issue>"), "It breaks");
        assert_eq!(clean_issue("  plain  "), "plain");
    }
}
