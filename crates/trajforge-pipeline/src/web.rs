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
use trajforge_store::{ExitLabel, Job, Outcome, Rollout, Stage, StageName, StoreError};
use trajforge_teacher::{ChatMessage, Usage};

use crate::code::{StageError, exit_label, record_rollout, usage_record};
use crate::envs::WebEnvFactory;
use crate::error::RunError;
use crate::prompts::{WebPrompts, fill};
use crate::runner::{JobHandler, Worker, run_jobs};

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
}

/// One worker's view of a web run.
pub type WebWorker = Worker<dyn WebEnvFactory, WebConfig>;

/// The jobs of a web run: `n` (intent, start page) pairs, every intent tried once before any
/// is tried twice, each intent's start pages in a seeded order. Deterministic for a seed, and
/// a larger `n` extends a smaller one's list. At most intents x pages jobs.
pub fn plan(tasks: &[TaskEntry], pages: &[StartPage], n: usize, seed: u64) -> Vec<(String, Value)> {
    if tasks.is_empty() || pages.is_empty() {
        return Vec::new();
    }
    let mut intents: Vec<usize> = (0..tasks.len()).collect();
    intents.sort_by_key(|&i| crate::code::draw(seed, &tasks[i].id, 0, "intent-order", usize::MAX));
    let orders: Vec<Vec<usize>> = intents
        .iter()
        .map(|&i| {
            let mut p: Vec<usize> = (0..pages.len()).collect();
            p.sort_by_key(|&j| {
                crate::code::draw(
                    seed,
                    &format!("{}@{}", tasks[i].id, pages[j].url),
                    0,
                    "page",
                    usize::MAX,
                )
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
    let w = Arc::clone(&worker);
    let handler: JobHandler = Arc::new(move |job: Job| {
        let w = Arc::clone(&w);
        Box::pin(async move { process(&w, job.id, &job.payload).await })
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

/// What a rollout's stage record keeps of its outcome.
fn rollout_record(t: &Trajectory, task: &str) -> WebRollout {
    WebRollout {
        task: task.to_string(),
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

fn ending(answer: bool) -> &'static str {
    if answer {
        "When you have found it, call `answer` with the answer, in a few words. If the site cannot do this, \
call `report_infeasible` with the reason."
    } else {
        "When you are on the page that does it, call `answer` with one sentence saying what the page offers. \
If the site cannot do this, call `report_infeasible` with the reason."
    }
}

/// Run all stages of one job, resuming from what the store already holds; returns its outcome.
async fn process(w: &WebWorker, job: i64, payload: &Value) -> Result<Outcome, StoreError> {
    const A: i64 = 1; // one attempt per (intent, page): another attempt is another job
    let cfg = &w.config;
    let mut done: HashMap<StageName, Stage> = HashMap::new();
    for s in w.store.stages(job)? {
        if s.attempt == A {
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
            let t = match rollout(w, &start_url, &task1).await {
                Ok(t) => t,
                Err(e) => {
                    return reject(
                        w,
                        job,
                        RejectedStage::new(Outcome::T1EnvironmentError).error(e),
                    );
                }
            };
            let v = rollout_record(&t, &task1);
            let stage = Stage::Rollout1(RolloutStage::Web(v.clone()));
            record_rollout(w, job, A, &stage, Rollout::T1, &t)?;
            v
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
            w.control.add(usage);
            let v = RequestStage {
                leaks_path: leaks_path(&text, &final_url, &start_url),
                text,
            };
            w.store.record_stage(
                &w.owner,
                job,
                A,
                &Stage::Request(v.clone()),
                None,
                Some(usage_record(usage, secs)),
            )?;
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
            let t = match rollout(w, &start_url, &task2).await {
                Ok(t) => t,
                Err(e) => {
                    return reject(
                        w,
                        job,
                        RejectedStage::new(Outcome::T2EnvironmentError).error(e),
                    );
                }
            };
            let v = rollout_record(&t, &task2);
            let stage = Stage::Rollout2(RolloutStage::Web(v.clone()));
            record_rollout(w, job, A, &stage, Rollout::T2, &t)?;
            v
        }
    };

    // Judge-free verification: do the two rollouts agree?
    let verify = match done.get(&StageName::Verify) {
        Some(Stage::Verify(v)) => v.clone(),
        _ => {
            let v =
                VerifyStage::Agreement(verify(&r1, &r2, &start_url, wants_answer, cfg.threshold));
            w.store
                .record_stage(&w.owner, job, A, &Stage::Verify(v.clone()), None, None)?;
            let (kept, r) = (v.kept(), v.recall());
            // Agreement vouches for both rollouts: no judge exists for either.
            w.store.set_verdict(job, A, &Rollout::T1, kept, r)?;
            w.store.set_verdict(job, A, &Rollout::T2, kept, r)?;
            v
        }
    };
    Ok(verify.result().clone())
}

fn reject(w: &WebWorker, job: i64, r: RejectedStage) -> Result<Outcome, StoreError> {
    let reason = r.reason.clone();
    w.store
        .record_stage(&w.owner, job, 1, &Stage::Rejected(r), None, None)?;
    Ok(reason)
}

async fn rollout(w: &WebWorker, start_url: &str, task: &str) -> Result<Trajectory, StageError> {
    let mut env = w
        .envs
        .open(start_url)
        .await
        .map_err(StageError::Environment)?;
    Ok(run_episode(
        w.teacher.as_ref(),
        env.as_mut(),
        task,
        &w.config.loop_config,
        &mut |_| {},
    )
    .await)
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

/// The verification record of a pair of rollout stage records.
pub fn verify(
    r1: &WebRollout,
    r2: &WebRollout,
    start_url: &str,
    wants_answer: bool,
    threshold: f64,
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
    let kept = finished && agreement.r >= threshold;
    let result = if !finished {
        Outcome::T2NotFinished
    } else if b.infeasible {
        Outcome::T2Infeasible
    } else if kept {
        Outcome::Kept
    } else {
        Outcome::LowAgreement
    };
    AgreementVerify {
        recall: agreement.r,
        same_final: agreement.same_final,
        visited_recall: agreement.visited_recall,
        same_answer: agreement.same_answer,
        t1_pages: agreement.t1_pages,
        shared_pages: agreement.shared_pages,
        threshold,
        kept,
        result,
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
    /// Share of the pages rollout 1 visited (start page excluded) that rollout 2 visited too;
    /// 1 when rollout 1 never left the start page.
    pub visited_recall: f64,
    /// Both gave the same answer, when the task asks for one.
    pub same_answer: Option<bool>,
    /// Pages rollout 1 visited, start page excluded.
    pub t1_pages: usize,
    /// Of those, the ones rollout 2 visited.
    pub shared_pages: usize,
}

/// Agreement of rollout 2 with rollout 1: the mean of "same final page", the recall of
/// rollout 1's pages in rollout 2, and "same answer" when the task asks for one. A rollout 2
/// that reports the task infeasible, when rollout 1 did not, agrees on nothing (r = 0).
pub fn agreement(
    t1: &RolloutView,
    t2: &RolloutView,
    start_url: &str,
    wants_answer: bool,
) -> Agreement {
    let start = normalize_url(start_url);
    let pages = |v: &RolloutView| -> BTreeSet<String> {
        v.visited
            .iter()
            .chain(v.final_url.iter())
            .map(|u| normalize_url(u))
            .filter(|u| *u != start)
            .collect()
    };
    let (p1, p2) = (pages(t1), pages(t2));
    let shared = p1.intersection(&p2).count();
    let visited_recall = if p1.is_empty() {
        1.0
    } else {
        shared as f64 / p1.len() as f64
    };
    let same_final = match (&t1.final_url, &t2.final_url) {
        (Some(a), Some(b)) => normalize_url(a) == normalize_url(b),
        _ => false,
    };
    let same_answer = wants_answer.then(|| match (&t1.answer, &t2.answer) {
        (Some(a), Some(b)) => same_answer(a, b),
        _ => false,
    });
    let mut parts = vec![f64::from(u8::from(same_final)), visited_recall];
    if let Some(s) = same_answer {
        parts.push(f64::from(u8::from(s)));
    }
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
        assert_eq!((a.r, a.same_final, a.visited_recall), (1.0, true, 1.0));
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
        // Answers count when asked for.
        let q1 = view(&[S], S, Some("It costs $29 per month"));
        let q2 = view(&[S], S, Some("$29"));
        let a = agreement(&q1, &q2, S, true);
        assert_eq!((a.r, a.same_answer), (1.0, Some(true)));
        let q3 = view(&[S], S, Some("$49"));
        assert!((agreement(&q1, &q3, S, true).r - 2.0 / 3.0).abs() < 1e-9);
        // Rollout 2 giving up agrees with nothing.
        let mut gave_up = t1.clone();
        gave_up.infeasible = true;
        assert_eq!(agreement(&t1, &gave_up, S, false).r, 0.0);
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

    #[test]
    fn plans_cover_every_intent_before_repeating_and_extend_stably() {
        let menu = trajforge_menu::Menu::builtin();
        let pages: Vec<StartPage> = (0..5)
            .map(|i| StartPage {
                url: format!("http://h/p{i}"),
                title: format!("P{i}"),
            })
            .collect();
        let n_tasks = menu.tasks.len();
        let small = plan(&menu.tasks, &pages, n_tasks, 7);
        let intents: BTreeSet<&str> = small
            .iter()
            .map(|(_, p)| p["intent"].as_str().unwrap())
            .collect();
        assert_eq!(intents.len(), n_tasks);
        let big = plan(&menu.tasks, &pages, n_tasks * 2 + 3, 7);
        assert_eq!(&big[..small.len()], &small[..]);
        let keys: BTreeSet<&String> = big.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), big.len(), "no pair twice");
        assert_eq!(plan(&menu.tasks, &pages, 10_000, 7).len(), n_tasks * 5);
        assert_ne!(
            plan(&menu.tasks, &pages, 8, 1),
            plan(&menu.tasks, &pages, 8, 2)
        );
    }

    proptest! {
        #[test]
        fn agreement_is_a_score(
            a in proptest::collection::vec(0u8..6, 0..6),
            b in proptest::collection::vec(0u8..6, 0..6),
            fa in 0u8..6, fb in 0u8..6, ans in any::<bool>(),
        ) {
            let urls = |v: &[u8]| v.iter().map(|i| format!("http://h/p{i}")).collect::<Vec<_>>();
            let t1 = RolloutView { visited: urls(&a), final_url: Some(format!("http://h/p{fa}")), answer: Some("x y z".into()), infeasible: false };
            let t2 = RolloutView { visited: urls(&b), final_url: Some(format!("http://h/p{fb}")), answer: Some("x y z".into()), infeasible: false };
            let g = agreement(&t1, &t2, "http://h/p0", ans);
            prop_assert!((0.0..=1.0).contains(&g.r));
            prop_assert_eq!(agreement(&t1, &t1, "http://h/p0", ans).r, 1.0);
            prop_assert!(g.shared_pages <= g.t1_pages);
        }

        #[test]
        fn normalising_is_idempotent(path in "[a-z/]{0,12}", q in "[a-z=&]{0,8}", frag in "[a-z]{0,4}") {
            let u = format!("http://Host.example/{path}?{q}#{frag}");
            let once = normalize_url(&u);
            prop_assert_eq!(normalize_url(&once), once);
        }
    }
}
