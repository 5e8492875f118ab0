//! The web pipeline of SPEC.md section 6: tasks from the navigation menu crossed with start
//! pages, rollout 1 from a vague intent, the request a real visitor would have made to reach
//! where rollout 1 ended, rollout 2 from that request alone, and a judge-free agreement score.
//!
//! It shares the code pipeline's job loop, store, budgets and resume rules: every stage is
//! committed before the next starts, and a resumed job replays its committed stages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;
use trajforge_agent::{LoopConfig, Trajectory, run_episode};
use trajforge_menu::TaskEntry;
use trajforge_store::model::{
    AgreementVerify, RejectedStage, RequestStage, RolloutStage, VerifyStage, WebJob, WebRollout,
};
use trajforge_store::{ExitLabel, Outcome, Rollout, Stage, StageName, StoreError};
use trajforge_teacher::{ChatMessage, Usage};

use crate::code::{StageError, exit_label, record_rollout, record_teacher_stage, rollout_stage};
use crate::decontaminate::HeldOutPages;
use crate::envs::WebEnvFactory;
use crate::error::RunError;
use crate::prompts::{WebPrompts, fill};
use crate::runner::{Worker, run_worker};

/// The system prompt of web rollouts.
pub const SYSTEM_PROMPT: &str = "You are a careful assistant using a web browser on behalf of a visitor. \
Each observation shows the current page's URL and title and a snapshot of its accessibility tree, in which \
every interactive element carries a ref such as [ref=e12]. Act with the browser tools, one action at a time, \
thinking briefly before each, and stay on this site. End with `answer`, or with `report_infeasible` when the \
site cannot do what is asked.";

/// A page a task can start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPage {
    /// Its URL.
    pub url: String,
    /// Its title.
    pub title: String,
}

/// Everything that fixes the meaning of a web run's data.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Navigation intents.
    pub tasks: Vec<TaskEntry>,
    /// Stage prompts.
    pub prompts: WebPrompts,
    /// Agent loop settings of both rollouts.
    pub loop_config: LoopConfig,
    /// Minimum agreement for keeping the pair.
    pub threshold: f64,
    /// Keep pairs whose rollouts end on different pages when they reach the threshold
    /// (`--keep-different-final`); off, such a pair is rejected as `different_final`.
    pub keep_different_final: bool,
    /// Held-out tasks (`--exclude-tasks`): a rollout from one's start page to its target
    /// rejects the pair as `held_out`.
    pub held_out: HeldOutPages,
}

/// One worker's view of a web run.
pub type WebWorker = Worker<dyn WebEnvFactory, WebConfig>;

/// How [`plan`] orders each intent's start pages. Part of a run's meaning: a run keeps the
/// order it was created with (stored in its meta under [`TaskDraw::META_KEY`]), so that a
/// resume plans the jobs it already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskDraw {
    /// By the start page's path and query on the site ([`site_path`]): the same seed draws
    /// the same tasks wherever the site is served. Every run created now.
    SitePaths,
    /// By the start page's full URL, port included: runs created by earlier releases (0.1
    /// included), which have no [`TaskDraw::META_KEY`].
    StartUrls,
}

impl TaskDraw {
    /// The run meta key that names the order of a run created with [`TaskDraw::SitePaths`].
    pub const META_KEY: &'static str = "task_draw";
    /// Its value.
    pub const SITE_PATHS: &'static str = "site-paths";

    /// The order of a run whose meta holds `stored` under [`TaskDraw::META_KEY`].
    pub fn from_meta(stored: Option<&str>) -> TaskDraw {
        match stored {
            Some(Self::SITE_PATHS) => TaskDraw::SitePaths,
            _ => TaskDraw::StartUrls,
        }
    }

    fn page_key(self, url: &str) -> String {
        match self {
            TaskDraw::SitePaths => site_path(url),
            TaskDraw::StartUrls => url.to_string(),
        }
    }
}

/// A page's place on its site: the URL's path and query, without scheme, host, port or
/// fragment (`http://127.0.0.1:8000/docs/a.html?x=1#top` gives `/docs/a.html?x=1`).
/// Text that is not an absolute URL is used as it is.
pub fn site_path(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => url.trim().to_string(),
    }
}

/// The jobs of a web run: `n` (intent, start page) pairs, every intent tried once before any
/// is tried twice, each intent's start pages in a seeded order. Deterministic for a seed, and
/// a larger `n` extends a smaller one's list. At most intents x pages jobs. Job keys are
/// `intent@start URL`, as every release wrote them.
pub fn plan(
    tasks: &[TaskEntry],
    pages: &[StartPage],
    n: usize,
    seed: u64,
    order: TaskDraw,
) -> Vec<(String, Value)> {
    if tasks.is_empty() || pages.is_empty() {
        return Vec::new();
    }
    let mut intents: Vec<usize> = (0..tasks.len()).collect();
    intents
        .sort_by_key(|&i| trajforge_hash::draw(seed, &tasks[i].id, 0, "intent-order", usize::MAX));
    let orders: Vec<Vec<usize>> = intents
        .iter()
        .map(|&i| {
            let mut p: Vec<usize> = (0..pages.len()).collect();
            p.sort_by_key(|&j| {
                let key = format!("{}@{}", tasks[i].id, order.page_key(&pages[j].url));
                trajforge_hash::draw(seed, &key, 0, "page", usize::MAX)
            });
            p
        })
        .collect();
    let mut out = Vec::new();
    'rounds: for round in 0..pages.len() {
        for (k, &i) in intents.iter().enumerate() {
            if out.len() >= n {
                break 'rounds;
            }
            let page = &pages[orders[k][round]];
            let task = &tasks[i];
            let job = WebJob {
                intent: task.id.clone(),
                answer: task.answer,
                start_url: page.url.clone(),
                start_title: page.title.clone(),
            };
            out.push((
                format!("{}@{}", task.id, page.url),
                serde_json::to_value(job).unwrap_or(Value::Null),
            ));
        }
    }
    out
}

/// Run web jobs until none is left or the run is stopped, `concurrency` at a time.
pub async fn run(worker: Arc<WebWorker>, concurrency: usize) -> Result<(), RunError> {
    run_worker(worker, concurrency, |w, job| {
        Box::pin(process(w, job.id, &job.payload))
    })
    .await
}

/// What a rollout's stage record keeps of its outcome (its task: the whole task message).
pub(crate) fn rollout_record(t: &Trajectory) -> WebRollout {
    WebRollout {
        task: t.task.clone(),
        exit: exit_label(&t.exit),
        final_url: t.outcome.final_url.clone(),
        title: t.outcome.title.clone(),
        answer: t.outcome.answer.clone(),
        infeasible: t.outcome.infeasible.clone(),
        visited: t.outcome.visited.clone(),
        steps: t.steps.len(),
        error: t.outcome.error.clone(),
    }
}

/// How a rollout's task message ends: with an answer in a few words, or with one sentence
/// saying what the page offers.
pub(crate) fn ending(answer: bool) -> &'static str {
    if answer {
        "When you have found it, call `answer` with the answer, in a few words. If the site cannot do this, \
call `report_infeasible` with the reason."
    } else {
        "When you are on the page that does it, call `answer` with one sentence saying what the page offers. \
If the site cannot do this, call `report_infeasible` with the reason."
    }
}

/// The one attempt of a web job: another attempt at the same (intent, page) is another job.
const ATTEMPT: i64 = 1;

/// Run all stages of one job, resuming from what the store already holds; returns its outcome.
async fn process(w: &WebWorker, job: i64, payload: &Value) -> Result<Outcome, StoreError> {
    let cfg = &w.config;
    let mut done: HashMap<StageName, Stage> = HashMap::new();
    for s in w.store.stages(job)? {
        if s.attempt == ATTEMPT {
            done.insert(s.stage.name(), s.stage);
        }
    }
    if let Some(Stage::Rejected(r)) = done.get(&StageName::Rejected) {
        return Ok(r.reason.clone());
    }
    let WebJob {
        intent: intent_id,
        answer: wants_answer,
        start_url,
        start_title,
    } = WebJob::deserialize(payload).unwrap_or_default();
    let Some(task) = cfg.tasks.iter().find(|t| t.id == intent_id) else {
        let mut r = RejectedStage::new(Outcome::UnknownIntent);
        r.intent = Some(intent_id);
        return reject(w, job, r);
    };
    let end = ending(wants_answer);

    // Rollout 1, from the vague intent.
    let r1 = match done.get(&StageName::Rollout1) {
        Some(Stage::Rollout1(RolloutStage::Web(v))) => v.clone(),
        _ => {
            if w.control.stopped() {
                return Ok(Outcome::Stopped);
            }
            let task1 = fill(
                &cfg.prompts.rollout1,
                &[
                    ("intent", &task.render(&start_url, &start_title)),
                    ("start_url", &start_url),
                    ("start_title", &start_title),
                    ("ending", end),
                ],
            );
            match run_rollout(w, job, Rollout::T1, &start_url, &task1).await? {
                Ok(v) => v,
                Err(rejected) => return Ok(rejected),
            }
        }
    };
    if let Some(reason) = &r1.infeasible {
        let mut r = RejectedStage::new(Outcome::T1Infeasible);
        r.infeasible = Some(reason.clone());
        return reject(w, job, r);
    }
    if r1.exit != ExitLabel::Submitted {
        let mut r = RejectedStage::new(Outcome::T1NotFinished);
        r.exit = Some(r1.exit.clone());
        return reject(w, job, r);
    }
    let Some(final_url) = r1.final_url.clone() else {
        return reject(w, job, RejectedStage::new(Outcome::T1NoFinalPage));
    };
    // Decided before the request is written: a held-out pair costs no more teacher calls.
    if cfg.held_out.holds(&start_url, &final_url) {
        return reject(w, job, RejectedStage::new(Outcome::HeldOut));
    }

    // The visitor's request, written from where rollout 1 ended.
    let req = match done.get(&StageName::Request) {
        Some(Stage::Request(v)) => v.clone(),
        _ => {
            let answer = match &r1.answer {
                Some(a) if wants_answer => format!(" There they found the answer: {a}."),
                _ => String::new(),
            };
            let title = r1.title.as_deref().unwrap_or("(untitled)");
            let prompt = fill(
                &cfg.prompts.request,
                &[
                    ("start_title", &start_title),
                    ("final_title", title),
                    ("final_url", &final_url),
                    ("answer", &answer),
                ],
            );
            let (text, usage, secs) = match write_request(w, &prompt).await {
                Ok(r) => r,
                Err(e) => {
                    return reject(
                        w,
                        job,
                        RejectedStage::new(Outcome::RequestTeacherError).error(e),
                    );
                }
            };
            let v = RequestStage {
                leaks_path: leaks_path(&text, &final_url, &start_url),
                text,
            };
            record_teacher_stage(w, job, ATTEMPT, &Stage::Request(v.clone()), usage, secs)?;
            v
        }
    };
    if req.leaks_path {
        return reject(w, job, RejectedStage::new(Outcome::RequestLeaksPath));
    }

    // Rollout 2, from the request alone.
    let r2 = match done.get(&StageName::Rollout2) {
        Some(Stage::Rollout2(RolloutStage::Web(v))) => v.clone(),
        _ => {
            if w.control.stopped() {
                return Ok(Outcome::Stopped);
            }
            let task2 = fill(
                &cfg.prompts.rollout2,
                &[
                    ("request", &req.text),
                    ("start_url", &start_url),
                    ("start_title", &start_title),
                    ("ending", end),
                ],
            );
            match run_rollout(w, job, Rollout::T2, &start_url, &task2).await? {
                Ok(v) => v,
                Err(rejected) => return Ok(rejected),
            }
        }
    };

    // Rollout 2 may reach a held-out target where rollout 1 did not (kept only with
    // --keep-different-final, but never as a held-out task's pair).
    if r2
        .final_url
        .as_deref()
        .is_some_and(|f| cfg.held_out.holds(&start_url, f))
    {
        return reject(w, job, RejectedStage::new(Outcome::HeldOut));
    }

    // Judge-free verification: do the two rollouts agree?
    let verify = match done.get(&StageName::Verify) {
        Some(Stage::Verify(v)) => v.clone(),
        _ => {
            let rule = KeepRule {
                threshold: cfg.threshold,
                keep_different_final: cfg.keep_different_final,
            };
            let v = VerifyStage::Agreement(verify(&r1, &r2, &start_url, wants_answer, rule));
            w.store.record_stage(
                &w.owner,
                job,
                ATTEMPT,
                &Stage::Verify(v.clone()),
                None,
                None,
            )?;
            v
        }
    };
    // Set on every pass (idempotent): a crash after the verify stage's commit must not leave
    // the pair unmarked on resume. Agreement vouches for both rollouts: no judge exists for either.
    let (kept, r) = (verify.kept(), verify.recall());
    w.store
        .set_verdict(&w.owner, job, ATTEMPT, &Rollout::T1, kept, r)?;
    w.store
        .set_verdict(&w.owner, job, ATTEMPT, &Rollout::T2, kept, r)?;
    Ok(verify.result().clone())
}

/// Run rollout `which` (T1 or T2) from `start_url` and commit its stage; when the browser
/// environment fails, the job is rejected instead and `Err` holds that outcome.
async fn run_rollout(
    w: &WebWorker,
    job: i64,
    which: Rollout,
    start_url: &str,
    task: &str,
) -> Result<Result<WebRollout, Outcome>, StoreError> {
    let (stage_of, env_error) = rollout_stage(&which);
    let t = match rollout(w, start_url, task).await {
        Ok(t) => t,
        Err(e) => return reject(w, job, RejectedStage::new(env_error).error(e)).map(Err),
    };
    let v = rollout_record(&t);
    let stage = stage_of(RolloutStage::Web(v.clone()));
    record_rollout(w, job, ATTEMPT, &stage, which, &t)?;
    Ok(Ok(v))
}

fn reject(w: &WebWorker, job: i64, r: RejectedStage) -> Result<Outcome, StoreError> {
    let reason = r.reason.clone();
    w.store
        .record_stage(&w.owner, job, ATTEMPT, &Stage::Rejected(r), None, None)?;
    Ok(reason)
}

/// One rollout from `start_url`. The task message ends with the start page as the model
/// sees it (URL, title, snapshot), so the first call is not blind; the trajectory's task
/// and first user turn are that whole message.
async fn rollout(w: &WebWorker, start_url: &str, task: &str) -> Result<Trajectory, StageError> {
    rollout_with(w, start_url, task, &w.config.loop_config).await
}

/// [`rollout`] for any worker on browser environments (web runs and web evaluations).
pub(crate) async fn rollout_with<C>(
    w: &Worker<dyn WebEnvFactory, C>,
    start_url: &str,
    task: &str,
    loop_config: &LoopConfig,
) -> Result<Trajectory, StageError> {
    let mut session = w
        .envs
        .open(start_url)
        .await
        .map_err(StageError::Environment)?;
    let message = task_message(task, &session.observation);
    Ok(run_episode(
        w.teacher.as_ref(),
        session.env.as_mut(),
        &message,
        loop_config,
        &mut |_| {},
    )
    .await)
}

/// The task message of a rollout: the stage prompt, a blank line, the start page.
pub fn task_message(prompt: &str, first_observation: &str) -> String {
    format!("{}\n\n{}", prompt.trim_end(), first_observation.trim())
}

async fn write_request(w: &WebWorker, prompt: &str) -> Result<(String, Usage, f64), StageError> {
    let messages = [
        ChatMessage::system(&w.config.prompts.request_system),
        ChatMessage::user(prompt),
    ];
    let started = Instant::now();
    let c = w.teacher.complete(&messages, &[]).await?;
    let text = c
        .message
        .content
        .as_deref()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .trim()
        .to_string();
    if text.is_empty() {
        return Err(StageError::Empty("request"));
    }
    Ok((text, c.usage, started.elapsed().as_secs_f64()))
}

/// True when the request gives away the path: the final page's URL or its path (other than
/// the start page's) appears in it. Such a request would make rollout 2 trivial.
pub fn leaks_path(request: &str, final_url: &str, start_url: &str) -> bool {
    let lower = request.to_lowercase();
    if lower.contains("http://") || lower.contains("https://") {
        return true;
    }
    let path = url::Url::parse(final_url)
        .map(|u| u.path().trim_matches('/').to_lowercase())
        .unwrap_or_default();
    let start = url::Url::parse(start_url)
        .map(|u| u.path().trim_matches('/').to_lowercase())
        .unwrap_or_default();
    // A bare one-word path ("pricing") is fair in a request; a multi-segment one is a path.
    path.contains('/') && path != start && lower.contains(&path)
}

/// What decides whether an agreeing pair is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepRule {
    /// Minimum agreement r.
    pub threshold: f64,
    /// Keep pairs that end on different pages when r reaches the threshold.
    pub keep_different_final: bool,
}

/// The version of the agreement's definition [`agreement`] computes, stored with each
/// verification (records without one were scored before it, and are never rescored).
pub const SCORING: u32 = 2;

/// The verification record of a pair of rollout stage records.
///
/// The pair is kept when rollout 2 answered (not infeasible), r reaches the threshold, and
/// both rollouts ended on the same page (or `keep_different_final` is set). The result names
/// the first reason that fails: `t2_not_finished`, `t2_infeasible`, `low_agreement` (r below
/// the threshold), `different_final` (r reached it, but the final pages differ).
pub fn verify(
    r1: &WebRollout,
    r2: &WebRollout,
    start_url: &str,
    wants_answer: bool,
    rule: KeepRule,
) -> AgreementVerify {
    let view = |r: &WebRollout| RolloutView {
        visited: r.visited.clone(),
        final_url: r.final_url.clone(),
        answer: r.answer.clone(),
        infeasible: r.infeasible.is_some(),
    };
    let (a, b) = (view(r1), view(r2));
    let finished = r2.exit == ExitLabel::Submitted;
    let agreement = agreement(&a, &b, start_url, wants_answer);
    let result = if !finished {
        Outcome::T2NotFinished
    } else if b.infeasible {
        Outcome::T2Infeasible
    } else if agreement.r < rule.threshold {
        Outcome::LowAgreement
    } else if !agreement.same_final && !rule.keep_different_final {
        Outcome::DifferentFinal
    } else {
        Outcome::Kept
    };
    AgreementVerify {
        recall: agreement.r,
        same_final: agreement.same_final,
        visited_recall: agreement.visited_recall,
        same_answer: agreement.same_answer,
        t1_pages: agreement.t1_pages,
        shared_pages: agreement.shared_pages,
        threshold: rule.threshold,
        kept: result == Outcome::Kept,
        result,
        scoring: Some(SCORING),
        keep_different_final: rule.keep_different_final,
    }
}

/// What the agreement score reads of one rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutView {
    /// Pages visited, in order.
    pub visited: Vec<String>,
    /// The final page.
    pub final_url: Option<String>,
    /// The answer given, if any.
    pub answer: Option<String>,
    /// Whether the rollout reported the task infeasible.
    pub infeasible: bool,
}

/// The judge-free agreement of two rollouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// The score in [0, 1]: the mean of the parts that apply.
    pub r: f64,
    /// Both ended on the same page (URLs normalised).
    pub same_final: bool,
    /// Share of rollout 1's route (the pages it was on other than the start page, its final
    /// page included) that rollout 2 was on too; `None` when that route is empty (rollout 1
    /// never left the start page): the part is then left out of r, never counted as 1.
    pub visited_recall: Option<f64>,
    /// Both gave the same answer, when the task asks for one.
    pub same_answer: Option<bool>,
    /// Pages of rollout 1's route.
    pub t1_pages: usize,
    /// Of those, the ones rollout 2 was on.
    pub shared_pages: usize,
}

/// Agreement of rollout 2 with rollout 1 (scoring 2; the README's "Agreement" section has
/// worked examples). r is the mean of the parts that apply:
/// - final page: 1 when both ended on the same page (URLs normalised), else 0;
/// - route recall: the share of rollout 1's route that rollout 2 was on, where a route is
///   the set of pages a rollout was on, start page excluded, final page included; left out
///   when rollout 1's route is empty, so a rollout 1 that never left the start page earns
///   rollout 2 nothing but the final-page part;
/// - answer: 1 when both gave the same answer, when the task asks for one.
///
/// A rollout 2 that reports the task infeasible, when rollout 1 did not, agrees on nothing
/// (r = 0). Whether a pair is kept also requires the same final page: see [`verify`].
pub fn agreement(
    t1: &RolloutView,
    t2: &RolloutView,
    start_url: &str,
    wants_answer: bool,
) -> Agreement {
    let start = normalize_url(start_url);
    let route = |v: &RolloutView| -> BTreeSet<String> {
        v.visited
            .iter()
            .chain(v.final_url.iter())
            .map(|u| normalize_url(u))
            .filter(|u| *u != start)
            .collect()
    };
    let (p1, p2) = (route(t1), route(t2));
    let shared = p1.intersection(&p2).count();
    let visited_recall = (!p1.is_empty()).then(|| shared as f64 / p1.len() as f64);
    let same_final = match (&t1.final_url, &t2.final_url) {
        (Some(a), Some(b)) => normalize_url(a) == normalize_url(b),
        _ => false,
    };
    let same_answer = wants_answer.then(|| match (&t1.answer, &t2.answer) {
        (Some(a), Some(b)) => same_answer(a, b),
        _ => false,
    });
    let parts: Vec<f64> = [Some(f64::from(u8::from(same_final))), visited_recall]
        .into_iter()
        .chain([same_answer.map(|s| f64::from(u8::from(s)))])
        .flatten()
        .collect();
    let r = if t2.infeasible && !t1.infeasible {
        0.0
    } else {
        parts.iter().sum::<f64>() / parts.len() as f64
    };
    Agreement {
        r,
        same_final,
        visited_recall,
        same_answer,
        t1_pages: p1.len(),
        shared_pages: shared,
    }
}

/// A URL as a page identity: no fragment, no tracking parameters, sorted query, lower-case
/// host, default port dropped, `index.html` and a trailing slash dropped from the path.
/// Text that is not an absolute URL is only trimmed.
pub fn normalize_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw.trim()) else {
        return raw.trim().to_string();
    };
    u.set_fragment(None);
    let mut pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("utm_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let mut path = u.path().to_string();
    for index in ["index.html", "index.htm"] {
        if path.ends_with(&format!("/{index}")) {
            path.truncate(path.len() - index.len());
        }
    }
    while path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    u.set_path(&path);
    u.to_string()
}

/// Answers agree when their normalised words are equal, or the shorter (3+ characters) is a
/// whole-word part of the longer ("$29" vs "It costs $29 per month").
pub fn same_answer(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '$' && c != '%' && c != '.')
            .map(|w| w.trim_matches('.'))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    short.len() >= 3 && format!(" {long} ").contains(&format!(" {short} "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(visited: &[&str], final_url: &str, answer: Option<&str>) -> RolloutView {
        RolloutView {
            visited: visited.iter().map(|s| s.to_string()).collect(),
            final_url: Some(final_url.to_string()),
            answer: answer.map(str::to_string),
            infeasible: false,
        }
    }

    const S: &str = "http://127.0.0.1:8000/";

    fn page(name: &str) -> String {
        format!("http://127.0.0.1:8000/{name}.html")
    }

    /// A rollout that walked from the start page through `pages` and ended on the last one
    /// (on the start page when `pages` is empty).
    fn walk(pages: &[&str]) -> RolloutView {
        let urls: Vec<String> = pages.iter().map(|p| page(p)).collect();
        let mut visited = vec![S.to_string()];
        visited.extend(urls.iter().cloned());
        RolloutView {
            final_url: Some(urls.last().cloned().unwrap_or_else(|| S.to_string())),
            visited,
            answer: None,
            infeasible: false,
        }
    }

    /// The stage record of a finished rollout with this view.
    fn record(v: &RolloutView) -> WebRollout {
        WebRollout {
            task: "t".into(),
            exit: ExitLabel::Submitted,
            final_url: v.final_url.clone(),
            title: None,
            answer: v.answer.clone(),
            infeasible: v.infeasible.then(|| "no".to_string()),
            visited: v.visited.clone(),
            steps: v.visited.len(),
            error: None,
        }
    }

    const HALF: KeepRule = KeepRule {
        threshold: 0.5,
        keep_different_final: false,
    };

    #[test]
    fn urls_normalise_to_page_identities() {
        assert_eq!(
            normalize_url("HTTP://Example.COM:80/docs/index.html#top"),
            "http://example.com/docs"
        );
        assert_eq!(
            normalize_url("http://e.com/a/?b=2&a=1&utm_source=x"),
            "http://e.com/a?a=1&b=2"
        );
        assert_eq!(normalize_url("http://e.com/"), "http://e.com/");
        assert_eq!(normalize_url(" not a url "), "not a url");
    }

    #[test]
    fn agreeing_partly_agreeing_and_disagreeing_rollouts() {
        let t1 = view(
            &[
                S,
                "http://127.0.0.1:8000/a.html",
                "http://127.0.0.1:8000/b.html",
            ],
            "http://127.0.0.1:8000/b.html",
            None,
        );
        // Same path.
        let a = agreement(&t1, &t1.clone(), S, false);
        assert_eq!(
            (a.r, a.same_final, a.visited_recall),
            (1.0, true, Some(1.0))
        );
        // Same final page by another way: recall 1/2 (b only), final same -> 0.75.
        let t2 = view(
            &[
                S,
                "http://127.0.0.1:8000/c.html",
                "http://127.0.0.1:8000/b.html#x",
            ],
            "http://127.0.0.1:8000/b.html#x",
            None,
        );
        let a = agreement(&t1, &t2, S, false);
        assert_eq!((a.r, a.t1_pages, a.shared_pages), (0.75, 2, 1));
        // Elsewhere entirely.
        let t3 = view(
            &[S, "http://127.0.0.1:8000/z.html"],
            "http://127.0.0.1:8000/z.html",
            None,
        );
        assert_eq!(agreement(&t1, &t3, S, false).r, 0.0);
        // Answers count when asked for (both answered on the start page: no route part).
        let q1 = view(&[S], S, Some("It costs $29 per month"));
        let q2 = view(&[S], S, Some("$29"));
        let a = agreement(&q1, &q2, S, true);
        assert_eq!(
            (a.r, a.same_answer, a.visited_recall),
            (1.0, Some(true), None)
        );
        let q3 = view(&[S], S, Some("$49"));
        assert_eq!(agreement(&q1, &q3, S, true).r, 0.5);
        // Rollout 2 giving up agrees with nothing.
        let mut gave_up = t1.clone();
        gave_up.infeasible = true;
        assert_eq!(agreement(&t1, &gave_up, S, false).r, 0.0);
    }

    /// The README's worked examples, one by one, with the verdict at threshold 0.5.
    #[test]
    fn the_readme_examples() {
        let check = |t1: &RolloutView, t2: &RolloutView, answer: bool, r: f64, result: &str| {
            let v = verify(&record(t1), &record(t2), S, answer, HALF);
            assert!((v.recall - r).abs() < 1e-9, "r {} != {r}: {v:?}", v.recall);
            assert_eq!(v.result, result, "{v:?}");
            assert_eq!(v.kept, result == "kept");
            assert_eq!(v.scoring, Some(SCORING));
        };
        // 1. The same way to the same page.
        check(&walk(&["a", "b"]), &walk(&["a", "b"]), false, 1.0, "kept");
        // 2. Rollout 1 took a detour first: route {c, a, b}, rollout 2 was on a and b.
        check(
            &walk(&["c", "a", "b"]),
            &walk(&["a", "b"]),
            false,
            (1.0 + 2.0 / 3.0) / 2.0,
            "kept",
        );
        // 3. Rollout 2 passed through rollout 1's final page and ended elsewhere.
        check(
            &walk(&["a", "b"]),
            &walk(&["a", "b", "d"]),
            false,
            0.5,
            "different_final",
        );
        // 4. Rollout 1 never left the start page; rollout 2 went elsewhere.
        check(&walk(&[]), &walk(&["x"]), false, 0.0, "low_agreement");
        // 5. Both answered on the start page (rollout 2 after a look around).
        check(&walk(&[]), &walk(&[]), false, 1.0, "kept");
        let mut back = walk(&["x"]);
        back.visited.push(S.to_string());
        back.final_url = Some(S.to_string());
        check(&walk(&[]), &back, false, 1.0, "kept");
        // 6. An answer asked for: same page and route, different answers.
        let mut a1 = walk(&["a"]);
        a1.answer = Some("$29 per month".into());
        let mut a2 = walk(&["a"]);
        a2.answer = Some("$49".into());
        check(&a1, &a2, true, 2.0 / 3.0, "kept");
        // 7. Elsewhere with the same answer: r = 1/3 (answer only).
        let mut a3 = walk(&["z"]);
        a3.answer = a1.answer.clone();
        check(&a1, &a3, true, 1.0 / 3.0, "low_agreement");
        // 8. Rollout 2 reported the task infeasible.
        let mut no = walk(&["a"]);
        no.infeasible = true;
        check(&a1, &no, false, 0.0, "t2_infeasible");
    }

    #[test]
    fn different_final_pages_are_kept_only_when_asked() {
        let (t1, t2) = (record(&walk(&["a", "b"])), record(&walk(&["a", "b", "d"])));
        let v = verify(&t1, &t2, S, false, HALF);
        assert_eq!((v.kept, v.result.as_str()), (false, "different_final"));
        let asked = KeepRule {
            keep_different_final: true,
            ..HALF
        };
        let v = verify(&t1, &t2, S, false, asked);
        assert_eq!(
            (v.kept, v.result.as_str(), v.keep_different_final),
            (true, "kept", true)
        );
        // Below the threshold the option changes nothing.
        let far = record(&walk(&["z"]));
        let v = verify(&t1, &far, S, false, asked);
        assert_eq!((v.kept, v.result.as_str()), (false, "low_agreement"));
        // Threshold 0 keeps everything that ended on the same page, and nothing else.
        let zero = KeepRule {
            threshold: 0.0,
            keep_different_final: false,
        };
        assert_eq!(verify(&t1, &far, S, false, zero).result, "different_final");
        let mut gave_up = walk(&["a", "b"]);
        gave_up.infeasible = true;
        let v = verify(&t1, &record(&gave_up), S, false, zero);
        assert_eq!((v.kept, v.result.as_str()), (false, "t2_infeasible"));
    }

    #[test]
    fn requests_that_give_the_path_away() {
        let f = "http://h/docs/api/webhooks.html";
        assert!(leaks_path("Open http://h/docs", f, "http://h/"));
        assert!(leaks_path(
            "go to docs/api/webhooks.html please",
            f,
            "http://h/"
        ));
        assert!(!leaks_path(
            "How do I get notified when an order ships?",
            f,
            "http://h/"
        ));
        assert!(!leaks_path(
            "Show me the pricing",
            "http://h/pricing",
            "http://h/"
        ));
    }

    fn pages_at(origin: &str) -> Vec<StartPage> {
        (0..5)
            .map(|i| StartPage {
                url: format!("{origin}/p{i}.html?v={i}"),
                title: format!("P{i}"),
            })
            .collect()
    }

    /// (intent, site path) of each planned job, in order.
    fn drawn(jobs: &[(String, Value)]) -> Vec<(String, String)> {
        jobs.iter()
            .map(|(_, p)| {
                let j = WebJob::deserialize(p).unwrap();
                (j.intent, site_path(&j.start_url))
            })
            .collect()
    }

    #[test]
    fn plans_cover_every_intent_before_repeating_and_extend_stably() {
        let menu = trajforge_menu::Menu::builtin();
        let pages = pages_at("http://h");
        let n_tasks = menu.tasks.len();
        for order in [TaskDraw::SitePaths, TaskDraw::StartUrls] {
            let small = plan(&menu.tasks, &pages, n_tasks, 7, order);
            let intents: BTreeSet<&str> = small
                .iter()
                .map(|(_, p)| p["intent"].as_str().unwrap())
                .collect();
            assert_eq!(intents.len(), n_tasks);
            let big = plan(&menu.tasks, &pages, n_tasks * 2 + 3, 7, order);
            assert_eq!(&big[..small.len()], &small[..]);
            let keys: BTreeSet<&String> = big.iter().map(|(k, _)| k).collect();
            assert_eq!(keys.len(), big.len(), "no pair twice");
            assert_eq!(
                plan(&menu.tasks, &pages, 10_000, 7, order).len(),
                n_tasks * 5
            );
            assert_ne!(
                plan(&menu.tasks, &pages, 8, 1, order),
                plan(&menu.tasks, &pages, 8, 2, order)
            );
        }
    }

    #[test]
    fn draws_follow_site_paths_not_ports() {
        let menu = trajforge_menu::Menu::builtin();
        let n = menu.tasks.len() * 3;
        // The same plan (size, seed) of the same site served at `origin`.
        let plan_at = |origin: &str, order| plan(&menu.tasks, &pages_at(origin), n, 7, order);
        let a = plan_at("http://127.0.0.1:41000", TaskDraw::SitePaths);
        let b = plan_at("http://localhost:52000", TaskDraw::SitePaths);
        assert_eq!(drawn(&a), drawn(&b));
        // Job keys still name the full start URL, as stored runs have them.
        assert!(a[0].0.ends_with(&format!(
            "@{}",
            WebJob::deserialize(&a[0].1).unwrap().start_url
        )));
        // The order of runs created before it follows the port (kept for their resumes).
        let old_a = plan_at("http://127.0.0.1:41000", TaskDraw::StartUrls);
        let old_b = plan_at("http://127.0.0.1:41001", TaskDraw::StartUrls);
        assert_ne!(drawn(&old_a), drawn(&old_b));
        assert_eq!(site_path("http://h:1/a/b.html?x=1#top"), "/a/b.html?x=1");
        assert_eq!(TaskDraw::from_meta(None), TaskDraw::StartUrls);
        assert_eq!(
            TaskDraw::from_meta(Some(TaskDraw::SITE_PATHS)),
            TaskDraw::SitePaths
        );
    }

    #[test]
    fn the_task_message_ends_with_the_start_page() {
        let m = task_message(
            "Find the pricing.\n",
            "URL: http://h/\nTitle: Home\n\n- link \"Pricing\" [ref=e3]",
        );
        assert_eq!(
            m,
            "Find the pricing.\n\nURL: http://h/\nTitle: Home\n\n- link \"Pricing\" [ref=e3]"
        );
    }

    fn urls(v: &[u8]) -> Vec<String> {
        v.iter().map(|i| format!("http://h/p{i}")).collect()
    }

    fn any_view() -> impl Strategy<Value = RolloutView> {
        (
            proptest::collection::vec(0u8..6, 0..6),
            0u8..6,
            any::<bool>(),
        )
            .prop_map(|(pages, f, yes)| {
                let mut visited = vec!["http://h/p0".to_string()];
                visited.extend(urls(&pages));
                RolloutView {
                    visited,
                    final_url: Some(format!("http://h/p{f}")),
                    answer: Some(if yes { "x y z" } else { "other" }.into()),
                    infeasible: false,
                }
            })
    }

    proptest! {
        #[test]
        fn agreement_is_a_score(t1 in any_view(), t2 in any_view(), ans in any::<bool>()) {
            let g = agreement(&t1, &t2, "http://h/p0", ans);
            prop_assert!((0.0..=1.0).contains(&g.r));
            prop_assert_eq!(agreement(&t1, &t1, "http://h/p0", ans).r, 1.0);
            prop_assert!(g.shared_pages <= g.t1_pages);
            prop_assert_eq!(g.visited_recall.is_none(), g.t1_pages == 0);
        }

        /// Rollouts that end on different pages are never kept, whatever the threshold,
        /// unless the user asks for it; asking keeps exactly those that reach the threshold.
        #[test]
        fn different_final_pages_are_never_kept_by_default(
            t1 in any_view(), t2 in any_view(), ans in any::<bool>(), threshold in 0.0f64..=1.0,
        ) {
            let (r1, r2) = (record(&t1), record(&t2));
            let rule = KeepRule { threshold, keep_different_final: false };
            let v = verify(&r1, &r2, "http://h/p0", ans, rule);
            if !v.same_final {
                prop_assert!(!v.kept);
            }
            prop_assert_eq!(v.kept, v.result == Outcome::Kept);
            let asked = verify(&r1, &r2, "http://h/p0", ans, KeepRule { keep_different_final: true, ..rule });
            prop_assert_eq!(asked.kept, v.recall >= threshold);
        }

        /// A rollout 1 that never left the start page gives a rollout 2 that ended elsewhere
        /// no credit but the answer's.
        #[test]
        fn a_start_page_only_rollout_1_gives_no_free_credit(
            t2 in any_view(), stays in proptest::collection::vec(Just(0u8), 0..3), ans in any::<bool>(),
        ) {
            let mut visited = vec!["http://h/p0".to_string()];
            visited.extend(urls(&stays));
            let t1 = RolloutView { visited, final_url: Some("http://h/p0".into()), answer: Some("x y z".into()), infeasible: false };
            let g = agreement(&t1, &t2, "http://h/p0", ans);
            prop_assert_eq!(g.visited_recall, None);
            if !g.same_final {
                let answer_share = if ans && g.same_answer == Some(true) { 0.5 } else { 0.0 };
                prop_assert_eq!(g.r, answer_share);
            }
        }

        /// Rollout 2 walking rollout 1's whole route and then on to another page is not kept.
        #[test]
        fn passing_through_and_ending_elsewhere_is_not_kept(
            t1 in any_view(), extra in 1u8..6, threshold in 0.0f64..=1.0,
        ) {
            let last = t1.final_url.clone().unwrap();
            let elsewhere = format!("http://h/q{extra}");
            let mut visited = t1.visited.clone();
            visited.push(last);
            visited.push(elsewhere.clone());
            let t2 = RolloutView { visited, final_url: Some(elsewhere), ..t1.clone() };
            let v = verify(&record(&t1), &record(&t2), "http://h/p0", false, KeepRule { threshold, keep_different_final: false });
            prop_assert!(!v.kept);
            prop_assert!(!v.same_final);
        }

        #[test]
        fn normalising_is_idempotent(path in "[a-z/]{0,12}", q in "[a-z=&]{0,8}", frag in "[a-z]{0,4}") {
            let u = format!("http://Host.example/{path}?{q}#{frag}");
            let once = normalize_url(&u);
            prop_assert_eq!(normalize_url(&once), once);
        }

        #[test]
        fn site_paths_ignore_the_origin(path in "[a-z/]{0,12}", port in 1u16.., q in "[a-z=]{0,6}") {
            let a = site_path(&format!("http://127.0.0.1:{port}/{path}?{q}"));
            let b = site_path(&format!("https://example.org/{path}?{q}#x"));
            prop_assert_eq!(a, b);
        }
    }
}
