//! One evaluation job: the agent's episode on the task (committed as rollout 2, as the
//! episode from an issue text alone is in `generate`), then its score (committed as the
//! `score` stage); a job resumed after a crash replays what the store holds.

use std::collections::BTreeSet;

use serde::Deserialize;
use trajforge_agent::Trajectory;
use trajforge_eval::{TaskKind, TaskResult};
use trajforge_store::model::{CodeRollout, RolloutStage};
use trajforge_store::{Outcome, Rollout, Stage, StageName, StoreError};

use super::{EvalJob, EvalWorker, SCORE_STAGE, ScoreStage};
use crate::code::{exit_label, load_trajectory, record_rollout, rollout_in};
use crate::envs::{Prep, SandboxEnvs};
use crate::prompts::fill;
use crate::runner::STOPPED;
use crate::testreport;

const ATTEMPT: i64 = 1;

/// Run one job to its outcome (`resolved`, `unresolved`, `recall_only`, `environment_error`).
pub(super) async fn process(
    w: &EvalWorker,
    job: i64,
    payload: &serde_json::Value,
) -> Result<Outcome, StoreError> {
    let Ok(EvalJob { seed, task }) = EvalJob::deserialize(payload) else {
        return Ok(Outcome::from("unreadable_job"));
    };
    let mut rollout = None;
    for s in w.store.stages(job)? {
        match s.stage {
            Stage::Other(name, v) if name == SCORE_STAGE => {
                if let Ok(done) = serde_json::from_value::<ScoreStage>(v) {
                    return Ok(outcome(&done.result));
                }
            }
            Stage::Rollout2(RolloutStage::Code(v)) => rollout = Some(v),
            _ => {}
        }
    }
    let setup = task.setup.as_deref().or(w.config.setup.as_deref());
    let envs = match w.envs.at(&task.base_commit, setup).await {
        Ok(e) => e,
        Err(e) => {
            let row = row(w, &task, seed, "environment_error", None);
            let score = ScoreStage {
                result: TaskResult {
                    resolved: hard_with_tests(w, &task).then_some(false),
                    error: Some(format!("environment at {}: {e}", task.base_commit)),
                    ..row
                },
                failing_tests: Vec::new(),
                model_patch: String::new(),
            };
            return commit_score(w, job, &score);
        }
    };
    let trajectory = match rollout {
        Some(_) => load_trajectory(w, job, ATTEMPT, &Rollout::T2)?,
        None => {
            if w.control.stopped() {
                return Ok(STOPPED);
            }
            let prompt = fill(
                &w.config.prompts.rollout2,
                &[("issue", &task.problem_statement)],
            );
            match rollout_in(w.teacher.as_ref(), &envs, &prompt, &w.config.loop_config).await {
                Ok(t) => {
                    let v = CodeRollout {
                        bug: None,
                        bug_index: None,
                        task: prompt,
                        exit: exit_label(&t.exit),
                        patch: t.outcome.patch.clone(),
                        patch_cut: t.outcome.patch_cut,
                        steps: t.steps.len(),
                    };
                    let stage = Stage::Rollout2(RolloutStage::Code(v));
                    record_rollout(w, job, ATTEMPT, &stage, Rollout::T2, &t)?;
                    Some(t)
                }
                Err(e) => {
                    let score = ScoreStage {
                        result: TaskResult {
                            resolved: hard_with_tests(w, &task).then_some(false),
                            error: Some(e.to_string()),
                            ..row(w, &task, seed, "environment_error", None)
                        },
                        failing_tests: Vec::new(),
                        model_patch: String::new(),
                    };
                    return commit_score(w, job, &score);
                }
            }
        }
    };
    let exit = rollout
        .as_ref()
        .map(|r| r.exit.to_string())
        .or_else(|| trajectory.as_ref().map(|t| exit_label(&t.exit).to_string()))
        .unwrap_or_default();
    let patch = rollout
        .and_then(|r| r.patch)
        .or_else(|| trajectory.as_ref().and_then(|t| t.outcome.patch.clone()))
        .unwrap_or_default();
    let score = score(w, &envs, &task, seed, &exit, trajectory.as_ref(), patch).await;
    commit_score(w, job, &score)
}

/// Commit a job's score stage; its outcome.
pub(crate) fn commit_score<F: ?Sized, C>(
    w: &crate::runner::Worker<F, C>,
    job: i64,
    score: &ScoreStage,
) -> Result<Outcome, StoreError> {
    let stage = Stage::Other(
        StageName::from(SCORE_STAGE),
        serde_json::to_value(score).unwrap_or_default(),
    );
    w.store
        .record_stage(&w.owner, job, ATTEMPT, &stage, None, None)?;
    Ok(outcome(&score.result))
}

/// The job's result label.
pub fn outcome(r: &TaskResult) -> Outcome {
    match (r.resolved, r.exit_status.as_str()) {
        (_, "environment_error") => Outcome::from("environment_error"),
        (Some(true), _) => Outcome::from("resolved"),
        (Some(false), _) => Outcome::from("unresolved"),
        (None, _) => Outcome::from("recall_only"),
    }
}

/// The test command a task is scored with, when it is hard and has one.
fn test_cmd<'a>(w: &'a EvalWorker, task: &'a trajforge_eval::Task) -> Option<&'a str> {
    if task.kind() != TaskKind::Hard {
        return None;
    }
    task.test_cmd.as_deref().or(w.config.test_cmd.as_deref())
}

fn hard_with_tests(w: &EvalWorker, task: &trajforge_eval::Task) -> bool {
    test_cmd(w, task).is_some()
}

/// A row with the episode's counts (none when there was no episode) and nothing scored yet.
fn row(
    w: &EvalWorker,
    task: &trajforge_eval::Task,
    seed: u32,
    exit: &str,
    t: Option<&Trajectory>,
) -> TaskResult {
    let usage = t.map(|t| t.usage).unwrap_or_default();
    let cost = w
        .config
        .pricing
        .token_cost(usage.prompt_tokens, usage.completion_tokens);
    TaskResult {
        instance_id: task.instance_id.clone(),
        seed,
        kind: task.kind(),
        model: w.config.model.clone(),
        resolved: None,
        recall: 0.0,
        exit_status: exit.to_string(),
        steps: t.map_or(0, |t| t.steps.len()),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost_usd: cost,
        error: None,
    }
}

async fn score(
    w: &EvalWorker,
    envs: &SandboxEnvs,
    task: &trajforge_eval::Task,
    seed: u32,
    exit: &str,
    t: Option<&Trajectory>,
    patch: String,
) -> ScoreStage {
    let mut result = row(w, task, seed, exit, t);
    result.recall = recall(&task.patch, &patch);
    let mut failing_tests = Vec::new();
    if let Some(cmd) = test_cmd(w, task) {
        match run_tests(envs, task, &patch, cmd).await {
            Ok((output, code)) => {
                let report = testreport::parse(&output, code);
                let passed = |id: &str| report.tests.get(id) == Some(&testreport::Outcome::Passed);
                failing_tests = trajforge_eval::score::failing_tests(task, passed)
                    .into_iter()
                    .map(String::from)
                    .collect();
                result.resolved = Some(failing_tests.is_empty());
            }
            Err(e) => {
                result.resolved = Some(false);
                result.error = Some(e);
            }
        }
    }
    ScoreStage {
        result,
        failing_tests,
        model_patch: patch,
    }
}

/// Line recall of the agent's patch against the gold patch (0 when either has no line).
fn recall(gold: &str, patch: &str) -> f64 {
    if patch.trim().is_empty() {
        return 0.0;
    }
    trajforge_patch::line_recall_str(gold, patch)
        .ok()
        .and_then(|r| r.recall)
        .unwrap_or(0.0)
}

/// The agent's patch, its test files restored, the test patch, then the test command.
async fn run_tests(
    envs: &SandboxEnvs,
    task: &trajforge_eval::Task,
    patch: &str,
    cmd: &str,
) -> Result<(String, Option<i32>), String> {
    let mut steps = Vec::new();
    if !patch.trim().is_empty() {
        let touched = test_paths_touched(patch, &task.test_patch)
            .map_err(|e| format!("the agent's patch cannot be read: {e}"))?;
        steps.push(Prep::Apply(patch.to_string()));
        let workspace = envs.environment().config().workspace_dir.clone();
        if let Some(script) = restore_script(&workspace.display().to_string(), &touched) {
            steps.push(Prep::Run(script));
        }
    }
    if !task.test_patch.trim().is_empty() {
        steps.push(Prep::Apply(task.test_patch.clone()));
    }
    envs.run_after(steps, cmd.to_string())
        .await
        .map_err(|e| e.to_string())
}

/// The files `patch` touches that are test files: those the test patch touches, and any
/// whose name or folder says test.
pub fn test_paths_touched(
    patch: &str,
    test_patch: &str,
) -> Result<Vec<String>, trajforge_patch::ParseError> {
    let of = |text: &str| -> Result<BTreeSet<String>, trajforge_patch::ParseError> {
        if text.trim().is_empty() {
            return Ok(BTreeSet::new());
        }
        Ok(trajforge_patch::parse(text)?
            .files
            .into_iter()
            .flat_map(|f| [f.old_path, f.new_path])
            .flatten()
            .collect())
    };
    let tests = of(test_patch)?;
    Ok(of(patch)?
        .into_iter()
        .filter(|p| tests.contains(p) || trajforge_ingest::is_test_path(p))
        .collect())
}

/// A shell script that puts `paths` back as the base commit has them (removing those it
/// lacks), in the workspace at `workspace`; `None` when there is nothing to restore.
pub fn restore_script(workspace: &str, paths: &[String]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    let quoted: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    Some(format!(
        "cd {} && for p in {}; do if git cat-file -e \"HEAD:$p\" 2>/dev/null; then git checkout -q HEAD -- \"$p\"; else rm -f -- \"$p\"; fi; done",
        quote(workspace),
        quoted.join(" ")
    ))
}

/// `text` as one single-quoted shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\n--- a/tests/test_more.py\n+++ b/tests/test_more.py\n@@ -1 +1,2 @@\n x\n+y\n";

    #[test]
    fn test_files_the_agent_touched_are_found_by_the_test_patch_and_by_name() {
        let agent = "diff --git a/more_itertools/more.py b/more_itertools/more.py\n--- a/more_itertools/more.py\n+++ b/more_itertools/more.py\n@@ -1 +1 @@\n-a\n+b\n\
diff --git a/tests/test_more.py b/tests/test_more.py\n--- a/tests/test_more.py\n+++ b/tests/test_more.py\n@@ -5 +5 @@\n-c\n+d\n\
diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1 @@\n+e\n";
        assert_eq!(
            test_paths_touched(agent, TEST_PATCH).expect("parse"),
            ["tests/test_more.py", "tests/test_new.py"]
        );
        assert!(
            test_paths_touched("diff --git a/src/x.py b/src/x.py\n--- a/src/x.py\n+++ b/src/x.py\n@@ -1 +1 @@\n-a\n+b\n", TEST_PATCH)
                .expect("parse")
                .is_empty()
        );
    }

    #[test]
    fn the_restore_script_quotes_every_path() {
        assert_eq!(restore_script("/workspace", &[]), None);
        let s = restore_script("/workspace", &["tests/it's.py".into()]).expect("script");
        assert!(
            s.starts_with("cd '/workspace' && for p in 'tests/it'\\''s.py'; do"),
            "{s}"
        );
    }

    #[test]
    fn recall_is_zero_without_a_patch() {
        let gold = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n";
        assert_eq!(recall(gold, ""), 0.0);
        assert_eq!(recall(gold, gold), 1.0);
    }
}
