//! Synthetic code runs written through the store's own API (leases, stages, verdicts), for the
//! viewer's benchmark (100,000 trajectories) and tests (a run whose content is hostile).
//! Every job gets rollout 1; two in three pass the self-check and get a synthetic PR, rollout
//! 2 and the verification (with the pipeline's own rule); the others are rejected. Evaluations
//! too ([`build_eval`]): their score rows, as `trajforge eval` stores and writes them.

use std::path::Path;
use std::time::Duration;

use trajforge_agent::env::{EnvOutcome, Observation};
use trajforge_agent::trajectory::{ExitStatus, Step, ToolUse, Trajectory};
use trajforge_store::model::{
    CodeRollout, PrStage, RejectedStage, RolloutStage, SelfcheckAnswer, SelfcheckStage, Stage,
    StageName, VerifyStage,
};
use trajforge_store::{
    ExitLabel, Outcome, RejectReason, Rollout, Store, StoreError, TrajectoryRecord, UsageRecord,
};
use trajforge_teacher::{ChatMessage, TeacherInfo, ToolCall, ToolMode, Usage};

/// What to build.
pub struct Spec<'a> {
    /// Jobs (each gives one or two trajectories).
    pub jobs: usize,
    /// Steps per rollout.
    pub steps: usize,
    /// Steps of rollout 1 of job 0 (a long trajectory to time).
    pub long_steps: usize,
    /// Text put into job `i`'s reasoning, observations, patch lines, PR and bug type.
    pub text: &'a dyn Fn(usize) -> String,
}

/// The bug types drawn, in turn.
const BUGS: [&str; 6] = [
    "off-by-one",
    "wrong-operator",
    "missing-check",
    "swapped-arguments",
    "resource-cleanup",
    "modularity",
];

fn patch(i: usize, variant: usize, text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    format!(
        "diff --git a/pkg/mod{m}.py b/pkg/mod{m}.py\n--- a/pkg/mod{m}.py\n+++ b/pkg/mod{m}.py\n@@ -10,3 +10,3 @@ def f{i}(x):\n     y = x\n-    return y + {i}\n+    return y + {v}\n-    # {line}\n+    # fixed {line}\n",
        m = i % 97,
        v = i + 1 + variant,
    )
}

fn trajectory(i: usize, steps: usize, task: &str, text: &str, patch: &str) -> Trajectory {
    let mut messages = vec![
        ChatMessage::system("You are a careful software engineer."),
        ChatMessage::user(task),
    ];
    let mut out = Vec::with_capacity(steps);
    for s in 0..steps {
        let call = ToolCall::new(
            format!("call_{s}"),
            "bash",
            serde_json::json!({"command": format!("grep -n 'def f{i}' pkg/mod{}.py # step {s}", i % 97)})
                .to_string(),
        );
        let mut assistant = ChatMessage::assistant(
            Some(format!("Looking at f{i}, step {s}.")),
            vec![call.clone()],
        );
        assistant.reasoning = Some(format!(
            "Step {s} of job {i}: the function returns the wrong value. {text}"
        ));
        let observation = format!("10:def f{i}(x):\n11:    y = x\n{text}\n");
        messages.push(assistant.clone());
        messages.push(ChatMessage::tool_result(&call, observation.clone()));
        out.push(Step {
            index: s,
            started_at_ms: 1_700_000_000_000 + (i * 1000 + s) as u64,
            assistant,
            usage: Usage {
                prompt_tokens: 800 + 40 * s as u64,
                completion_tokens: 60,
            },
            model_time: Duration::from_millis(900),
            attempts: 1,
            tools: vec![ToolUse {
                id: call.id.clone(),
                tool: "bash".into(),
                arguments: call.arguments.clone(),
                observation: Observation {
                    text: observation,
                    exit_code: Some(0),
                    error: false,
                    done: false,
                    duration: Duration::from_millis(20),
                },
            }],
            overhead: Duration::from_micros(50),
        });
    }
    let usage = Usage {
        prompt_tokens: out.iter().map(|s| s.usage.prompt_tokens).sum(),
        completion_tokens: out.iter().map(|s| s.usage.completion_tokens).sum(),
    };
    Trajectory {
        version: 1,
        teacher: TeacherInfo {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "synthetic".into(),
            mode: ToolMode::Native,
        },
        task: task.to_string(),
        tools: Vec::new(),
        messages,
        steps: out,
        exit: ExitStatus::Submitted,
        outcome: EnvOutcome {
            patch: Some(patch.to_string()),
            ..EnvOutcome::default()
        },
        usage,
        started_at_ms: 1_700_000_000_000 + i as u64 * 1000,
        duration: Duration::from_secs(steps as u64),
    }
}

fn record(t: &Trajectory, rollout: Rollout, patch: &str) -> TrajectoryRecord {
    TrajectoryRecord {
        rollout,
        exit_status: ExitLabel::Submitted,
        patch: Some(patch.to_string()),
        data: serde_json::to_value(t).unwrap_or_default(),
    }
}

fn usage(t: &Trajectory) -> Option<UsageRecord> {
    Some(UsageRecord {
        prompt_tokens: t.usage.prompt_tokens,
        completion_tokens: t.usage.completion_tokens,
        model_seconds: t.steps.len() as f64 * 0.9,
    })
}

/// Build the run in `dir` (a new folder); returns the number of trajectories stored.
pub fn build(dir: &Path, spec: &Spec<'_>) -> Result<u64, StoreError> {
    let store = Store::open(dir)?;
    store.set_meta(
        "settings",
        &serde_json::json!({"repo": "synthetic", "threshold": 0.5, "attempts": 1, "seed": 0, "model": "synthetic"})
            .to_string(),
    )?;
    let owner = "synthetic";
    store.begin_session(owner)?;
    let jobs: Vec<(String, serde_json::Value)> = (0..spec.jobs)
        .map(|i| {
            let text = (spec.text)(i);
            (
                format!("pkg/mod{}.py::f{i}@10", i % 97),
                serde_json::json!({"name": format!("f{i}{}", text.lines().next().unwrap_or("")),
                                   "path": format!("pkg/mod{}.py", i % 97), "line": 10,
                                   "code": format!("def f{i}(x):\n    y = x\n    return y + {i}\n")}),
            )
        })
        .collect();
    store.add_jobs(&jobs)?;
    let lease = Duration::from_secs(600);
    while let Some(job) = store.claim(owner, lease)? {
        let i = job.id as usize;
        let text = (spec.text)(i);
        let bug = format!(
            "{}{}",
            BUGS[i % BUGS.len()],
            if i.is_multiple_of(7) {
                text.lines().next().unwrap_or("")
            } else {
                ""
            }
        );
        let steps = if i == 0 { spec.long_steps } else { spec.steps };
        let task = format!("Introduce a subtle {bug} bug in f{i}. {text}");
        let p1 = patch(i, 0, &text);
        let t1 = trajectory(i, steps, &task, &text, &p1);
        let r1 = Stage::Rollout1(RolloutStage::Code(CodeRollout {
            bug: Some(bug.clone()),
            bug_index: Some(i % BUGS.len()),
            task: task.clone(),
            exit: ExitLabel::Submitted,
            patch: Some(p1.clone()),
            steps,
            patch_cut: None,
        }));
        store.record_stage(
            owner,
            job.id,
            1,
            &r1,
            Some(&record(&t1, Rollout::T1, &p1)),
            usage(&t1),
        )?;
        let yes = i % 3 != 2;
        let answer = if yes {
            SelfcheckAnswer::Yes
        } else {
            SelfcheckAnswer::No
        };
        store.record_stage(
            owner,
            job.id,
            1,
            &Stage::Selfcheck(SelfcheckStage { answer, tries: 1 }),
            None,
            None,
        )?;
        if !yes {
            let mut r = RejectedStage::new(RejectReason::from("selfcheck_no"));
            r.bug = Some(bug);
            store.record_stage(owner, job.id, 1, &Stage::Rejected(r), None, None)?;
            store.finish(owner, job.id, &Outcome::SelfcheckNo)?;
            continue;
        }
        store.set_verdict(owner, job.id, 1, &Rollout::T1, true, None)?;
        let pr = format!("f{i} in pkg/mod{}.py gives wrong sums. {text}", i % 97);
        store.record_stage(
            owner,
            job.id,
            1,
            &Stage::Pr(PrStage {
                demo: format!("demo-{:03}", i % 40),
                text: pr.clone(),
            }),
            None,
            None,
        )?;
        // Every fourth P2 differs from P1 on one change: r = 0.75.
        let p2 = patch(i, usize::from(i.is_multiple_of(4)), &text);
        let t2 = trajectory(i, spec.steps, &pr, &text, &p2);
        let r2 = Stage::Rollout2(RolloutStage::Code(CodeRollout {
            bug: None,
            bug_index: None,
            task: pr,
            exit: ExitLabel::Submitted,
            patch: Some(p2.clone()),
            steps: spec.steps,
            patch_cut: None,
        }));
        store.record_stage(
            owner,
            job.id,
            1,
            &r2,
            Some(&record(&t2, Rollout::T2, &p2)),
            usage(&t2),
        )?;
        let v = VerifyStage::of_patches(&p1, &p2, true, 0.5);
        store.record_stage(owner, job.id, 1, &Stage::Verify(v.clone()), None, None)?;
        store.set_verdict(owner, job.id, 1, &Rollout::T2, v.kept(), v.recall())?;
        store.finish(owner, job.id, v.result())?;
    }
    store.trajectory_count()
}

/// Build an evaluation's folder in `dir` (a new folder) through the store's API, one job per
/// row with its score stage, then write its `results.jsonl` with the pipeline's own writer (as
/// `trajforge eval` leaves a finished evaluation).
pub fn build_eval(
    dir: &Path,
    rows: &[trajforge_pipeline::eval::ScoreStage],
) -> Result<(), trajforge_pipeline::eval::EvalError> {
    use trajforge_pipeline::eval::{KIND_EVAL, KIND_META, SCORE_STAGE};
    let store = Store::open(dir)?;
    store.set_meta(KIND_META, KIND_EVAL)?;
    let owner = "synthetic";
    store.begin_session(owner)?;
    let jobs: Vec<(String, serde_json::Value)> = rows
        .iter()
        .map(|r| {
            let key = format!("{}#{}", r.result.instance_id, r.result.seed);
            (
                key,
                serde_json::json!({"instance_id": r.result.instance_id, "seed": r.result.seed}),
            )
        })
        .collect();
    store.add_jobs(&jobs)?;
    for row in rows {
        let Some(job) = store.claim(owner, Duration::from_secs(600))? else {
            break;
        };
        let stage = Stage::Other(
            StageName::from(SCORE_STAGE),
            serde_json::to_value(row).unwrap_or_default(),
        );
        store.record_stage(owner, job.id, 1, &stage, None, None)?;
        store.finish(
            owner,
            job.id,
            &trajforge_pipeline::eval::outcome(&row.result),
        )?;
    }
    trajforge_pipeline::eval::write_outputs(&store, dir)?;
    Ok(())
}
