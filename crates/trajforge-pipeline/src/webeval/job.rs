//! One web evaluation job: the model's episode from the task's start page with the visitor's
//! request alone (committed as rollout 2, as in `web generate`), then its score (committed
//! as the `score` stage, the row `eval compare` reads); a resumed job replays what the
//! store holds.

use serde::Deserialize;
use trajforge_eval::{TaskKind, TaskResult, WebIntent, WebTarget};
use trajforge_store::model::{RolloutStage, WebRollout};
use trajforge_store::{ExitLabel, Outcome, Rollout, Stage, StoreError};
use trajforge_teacher::Usage;

use super::WebEvalWorker;
use crate::code::{load_trajectory, record_rollout};
use crate::eval::{EvalJob, ScoreStage, commit_score};
use crate::prompts::fill;
use crate::runner::STOPPED;
use crate::web::{ending, normalize_url, rollout_record, rollout_with, same_answer};

const ATTEMPT: i64 = 1;

/// How one episode fared against its target.
#[derive(Debug, Clone, PartialEq)]
pub struct WebScore {
    /// The episode ended with an answer (not infeasible, not cut off) and met the intent:
    /// on the target page (navigation), or with the target's answer (answer tasks).
    pub success: bool,
    /// It ended on the target page (URLs normalised).
    pub same_page: bool,
    /// Its answer matched the target's (answer tasks).
    pub answer_matches: Option<bool>,
    /// Share of the route's pages it was on (final page included).
    pub route_recall: f64,
}

/// Score an episode's record against its target.
pub fn score(target: &WebTarget, r: &WebRollout) -> WebScore {
    let finished = r.exit == ExitLabel::Submitted && r.infeasible.is_none();
    let target_page = normalize_url(&target.target_url);
    let same_page = r
        .final_url
        .as_deref()
        .is_some_and(|u| normalize_url(u) == target_page);
    let answer_matches =
        (target.intent == WebIntent::Answer).then(|| match (&r.answer, &target.answer) {
            (Some(given), Some(gold)) => same_answer(given, gold),
            _ => false,
        });
    let success = finished
        && match target.intent {
            WebIntent::Navigate => same_page,
            WebIntent::Answer => answer_matches == Some(true),
        };
    let been: std::collections::BTreeSet<String> = r
        .visited
        .iter()
        .chain(r.final_url.iter())
        .map(|u| normalize_url(u))
        .collect();
    let route: std::collections::BTreeSet<String> =
        target.route.iter().map(|u| normalize_url(u)).collect();
    let route_recall = if route.is_empty() {
        f64::from(u8::from(same_page))
    } else {
        route.intersection(&been).count() as f64 / route.len() as f64
    };
    WebScore {
        success,
        same_page,
        answer_matches,
        route_recall,
    }
}

/// Run one job to its outcome (`resolved`, `unresolved`, `environment_error`).
pub(super) async fn process(
    w: &WebEvalWorker,
    job: i64,
    payload: &serde_json::Value,
) -> Result<Outcome, StoreError> {
    let Ok(EvalJob { seed, task }) = EvalJob::deserialize(payload) else {
        return Ok(Outcome::from("unreadable_job"));
    };
    let Some(target) = task.web.clone() else {
        return Ok(Outcome::from("not_a_web_task"));
    };
    let mut recorded = None;
    for s in w.store.stages(job)? {
        match s.stage {
            Stage::Other(name, v) if name == crate::eval::SCORE_STAGE => {
                if let Ok(done) = serde_json::from_value::<ScoreStage>(v) {
                    return Ok(crate::eval::outcome(&done.result));
                }
            }
            Stage::Rollout2(RolloutStage::Web(v)) => recorded = Some(v),
            _ => {}
        }
    }
    let row = |exit: &str, usage: Usage, steps: usize| TaskResult {
        instance_id: task.instance_id.clone(),
        seed,
        kind: TaskKind::Web,
        model: w.config.model.clone(),
        resolved: Some(false),
        recall: 0.0,
        exit_status: exit.to_string(),
        steps,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost_usd: w
            .config
            .pricing
            .token_cost(usage.prompt_tokens, usage.completion_tokens),
        error: None,
    };
    let (record, usage) = match recorded {
        Some(v) => {
            let usage = load_trajectory(w, job, ATTEMPT, &Rollout::T2)?
                .map(|t| t.usage)
                .unwrap_or_default();
            (v, usage)
        }
        None => {
            if w.control.stopped() {
                return Ok(STOPPED);
            }
            let wants_answer = target.intent == WebIntent::Answer;
            let prompt = fill(
                &w.config.prompts.rollout2,
                &[
                    ("request", &task.problem_statement),
                    ("start_url", &target.start_url),
                    ("start_title", &target.start_title),
                    ("ending", ending(wants_answer)),
                ],
            );
            match rollout_with(w, &target.start_url, &prompt, &w.config.loop_config).await {
                Ok(t) => {
                    let v = rollout_record(&t);
                    let stage = Stage::Rollout2(RolloutStage::Web(v.clone()));
                    record_rollout(w, job, ATTEMPT, &stage, Rollout::T2, &t)?;
                    (v, t.usage)
                }
                Err(e) => {
                    let score = ScoreStage {
                        result: TaskResult {
                            error: Some(e.to_string()),
                            ..row("environment_error", Usage::default(), 0)
                        },
                        failing_tests: Vec::new(),
                        model_patch: String::new(),
                    };
                    return commit_score(w, job, &score);
                }
            }
        }
    };
    let s = score(&target, &record);
    let score = ScoreStage {
        result: TaskResult {
            resolved: Some(s.success),
            recall: s.route_recall,
            error: record.error.clone(),
            ..row(&record.exit.to_string(), usage, record.steps)
        },
        failing_tests: Vec::new(),
        model_patch: String::new(),
    };
    commit_score(w, job, &score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(intent: WebIntent) -> WebTarget {
        WebTarget {
            origin: "http://h".into(),
            start_url: "http://h/index.html".into(),
            start_title: "Home".into(),
            target_url: "http://h/docs/b.html".into(),
            target_title: "B".into(),
            intent,
            answer: (intent == WebIntent::Answer).then(|| "Python 3.9".into()),
            route: vec!["http://h/docs/".into(), "http://h/docs/b.html".into()],
        }
    }

    fn ended(visited: &[&str], answer: &str) -> WebRollout {
        WebRollout {
            task: "t".into(),
            exit: ExitLabel::Submitted,
            final_url: visited.last().map(|u| (*u).to_string()),
            title: None,
            answer: Some(answer.into()),
            infeasible: None,
            visited: visited.iter().map(|u| (*u).to_string()).collect(),
            steps: visited.len(),
            error: None,
        }
    }

    #[test]
    fn navigation_succeeds_on_the_target_page_after_normalisation() {
        let t = target(WebIntent::Navigate);
        let s = score(
            &t,
            &ended(
                &[
                    "http://h/index.html",
                    "http://h/docs/index.html",
                    "http://h/docs/b.html#x",
                ],
                "B",
            ),
        );
        assert_eq!(
            (s.success, s.same_page, s.answer_matches),
            (true, true, None)
        );
        assert_eq!(s.route_recall, 1.0);
        // Elsewhere: failure, with the part of the route it walked.
        let s = score(
            &t,
            &ended(&["http://h/index.html", "http://h/docs/"], "docs"),
        );
        assert_eq!((s.success, s.route_recall), (false, 0.5));
        // On the page but giving up, or cut off by the step limit: failure.
        let mut gave_up = ended(&["http://h/docs/b.html"], "B");
        gave_up.infeasible = Some("no".into());
        assert!(!score(&t, &gave_up).success);
        let mut cut = ended(&["http://h/docs/b.html"], "B");
        cut.exit = ExitLabel::from("step_limit");
        assert!(!score(&t, &cut).success);
    }

    #[test]
    fn answer_tasks_succeed_on_the_answer_wherever_it_was_found() {
        let t = target(WebIntent::Answer);
        let right = score(&t, &ended(&["http://h/other.html"], "It needs Python 3.9"));
        assert_eq!((right.success, right.answer_matches), (true, Some(true)));
        let wrong = score(&t, &ended(&["http://h/docs/b.html"], "Python 2"));
        assert_eq!(
            (wrong.success, wrong.same_page, wrong.answer_matches),
            (false, true, Some(false))
        );
    }
}
