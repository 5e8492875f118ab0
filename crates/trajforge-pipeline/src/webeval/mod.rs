//! Held-out evaluation on a website (issue 15, point 5).
//!
//! - `web tasks` ([`WebTasksSpec::draw`]): navigation tasks with known answers drawn from a
//!   crawled site's page graph ([`draw`]): a target page reachable from the start page, and
//!   for answer tasks a fact the target states; each phrased by the teacher as a visitor
//!   would ask, with no URL, path or file name ([`phrase`]). The draw is seeded
//!   ([`trajforge_hash::draw`]); the tasks are written in the eval task format
//!   ([`Task`] with a [`WebTarget`]).
//! - `web eval` ([`WebEvalSpec`]): the model under test on those tasks on the replayed site,
//!   once per seed, with the same browser harness and rollout-2 prompt as `web generate`;
//!   success is the final page equal to the target (URLs normalised as the agreement score
//!   does) for navigation tasks, the answer matching for answer tasks. Rows go to the store
//!   and `results.jsonl` as `eval` writes them, so `eval compare` reads both.

pub mod draw;
mod job;
pub mod phrase;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use trajforge_agent::LoopConfig;
use trajforge_browser::{BrowserError, BrowserPool, LaunchConfig, NetMode, Recording};
use trajforge_eval::{JsonlError, Task, TaskKind, WebIntent, WebTarget, write_jsonl};
use trajforge_teacher::{TeacherError, Usage};

use crate::envs::{BrowserEnvs, WebEnvFactory};
use crate::error::RunError;
use crate::eval::{EvalError, check_out_folder, check_seeds_and_budget, read_tasks};
use crate::prepare::{Budget, Driver, PreparedRun};
use crate::prompts::WebPrompts;
use crate::runner::Worker;
use crate::settings::fingerprint;
use crate::status::Pricing;
use crate::teacher::BuiltTeacher;
use crate::web::{SYSTEM_PROMPT, normalize_url, site_path};

pub use job::{WebScore, score};

/// Why `web tasks` could not draw its tasks.
#[derive(Debug, thiserror::Error)]
pub enum WebTasksError {
    /// `--site` is not a folder written by `site crawl`.
    #[error("{}: not a site folder (no site.json); make one with `trajforge site crawl`", .0.display())]
    NotASiteFolder(PathBuf),
    /// The recording cannot be read.
    #[error("reading the site: {0}")]
    Site(#[source] BrowserError),
    /// The output file exists: it is never overwritten.
    #[error("{} exists: it would be overwritten", .0.display())]
    OutputExists(PathBuf),
    /// `-n` is 0.
    #[error("-n must be at least 1")]
    NoneAsked,
    /// No page is reachable from the start page by a recorded link.
    #[error("{}: no page is linked from the start page {start}", dir.display())]
    NoTargets {
        /// The site folder.
        dir: PathBuf,
        /// Its start page.
        start: String,
    },
    /// The teacher failed (after its own retries).
    #[error("the teacher failed: {0}")]
    Teacher(#[source] TeacherError),
    /// Every phrasing was refused: nothing to write.
    #[error("no target could be phrased without giving its address away ({tried} tried)")]
    NothingPhrased {
        /// Targets tried.
        tried: usize,
    },
    /// The task file could not be written.
    #[error(transparent)]
    Write(JsonlError),
}

/// `web tasks`, as asked for.
#[derive(Debug, Clone)]
pub struct WebTasksSpec {
    /// A site folder written by `site crawl`.
    pub site: PathBuf,
    /// The task file to write (never overwritten).
    pub out: PathBuf,
    /// Tasks to draw.
    pub n: usize,
    /// Seed of the draw.
    pub seed: u64,
    /// Phrasings asked at once.
    pub concurrency: usize,
}

/// What `web tasks` did.
#[derive(Debug, Clone, PartialEq)]
pub struct WebTasksReport {
    /// The tasks written, in draw order.
    pub tasks: Vec<Task>,
    /// Pages reachable from the start page (the most tasks the site can give).
    pub candidates: usize,
    /// Targets the teacher was asked to phrase.
    pub tried: usize,
    /// Targets skipped after every phrasing was refused, per last reason.
    pub skipped: BTreeMap<String, usize>,
    /// Phrasings refused and asked again, per reason.
    pub redone: BTreeMap<String, usize>,
    /// Teacher tokens.
    pub usage: Usage,
}

impl WebTasksSpec {
    /// Draw the tasks, have each phrased (in draw order, `concurrency` at a time, a refused
    /// target replaced by the next), and write them to `out`. `on_task` hears each target
    /// accepted or skipped (tasks so far, targets tried).
    pub async fn draw(
        &self,
        teacher: &BuiltTeacher,
        on_task: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<WebTasksReport, WebTasksError> {
        if self.n == 0 {
            return Err(WebTasksError::NoneAsked);
        }
        if self.out.exists() {
            return Err(WebTasksError::OutputExists(self.out.clone()));
        }
        if !self.site.join("site.json").is_file() {
            return Err(WebTasksError::NotASiteFolder(self.site.clone()));
        }
        let recording = Recording::open(&self.site).map_err(WebTasksError::Site)?;
        let meta = recording.meta().clone();
        let pages = recording.pages();
        let no_targets = || WebTasksError::NoTargets {
            dir: self.site.clone(),
            start: meta.start_url.clone(),
        };
        let start = draw::start_page(pages, &meta.start_url).ok_or_else(no_targets)?;
        let candidates = draw::candidates(pages, start, self.seed);
        if candidates.is_empty() {
            return Err(no_targets());
        }
        let mut report = WebTasksReport {
            tasks: Vec::new(),
            candidates: candidates.len(),
            tried: 0,
            skipped: BTreeMap::new(),
            redone: BTreeMap::new(),
            usage: Usage::default(),
        };
        let mut next = candidates.iter();
        while report.tasks.len() < self.n {
            let batch: Vec<&draw::Candidate> = next
                .by_ref()
                .take((self.n - report.tasks.len()).min(self.concurrency.max(1)))
                .collect();
            if batch.is_empty() {
                break;
            }
            let mut running = tokio::task::JoinSet::new();
            for (k, c) in batch.iter().enumerate() {
                let page = phrase::TargetPage {
                    start_url: pages[start].url.clone(),
                    start_title: pages[start].title.clone(),
                    url: pages[c.page].url.clone(),
                    title: pages[c.page].title.clone(),
                    snapshot: pages[c.page].snapshot.clone(),
                    intent: c.intent,
                };
                let teacher = Arc::clone(&teacher.teacher);
                running.spawn(async move { (k, phrase::phrase(teacher, page).await) });
            }
            let mut done: Vec<Option<phrase::Phrased>> = vec![None; batch.len()];
            while let Some(joined) = running.join_next().await {
                let Ok((k, result)) = joined else { continue };
                done[k] = Some(result.map_err(WebTasksError::Teacher)?);
            }
            // In draw order, whatever order the answers came in: the same seed and the same
            // teacher answers give the same file.
            for (c, phrased) in batch.iter().zip(done) {
                report.tried += 1;
                let Some(p) = phrased else { continue };
                report.usage.prompt_tokens += p.usage.prompt_tokens;
                report.usage.completion_tokens += p.usage.completion_tokens;
                let accepted = p.phrasing.is_some();
                for (i, r) in p.refused.iter().enumerate() {
                    let last = i + 1 == p.refused.len();
                    let counts = if last && !accepted {
                        &mut report.skipped
                    } else {
                        &mut report.redone
                    };
                    *counts.entry(r.name().to_string()).or_default() += 1;
                }
                if let Some(phrasing) = p.phrasing {
                    report.tasks.push(web_task(
                        &meta.origin,
                        &pages[start],
                        &pages[c.page],
                        c,
                        phrasing.request,
                        phrasing.answer,
                    ));
                }
                on_task(report.tasks.len(), report.tried);
            }
        }
        if report.tasks.is_empty() {
            return Err(WebTasksError::NothingPhrased {
                tried: report.tried,
            });
        }
        write_jsonl(&self.out, &report.tasks).map_err(WebTasksError::Write)?;
        Ok(report)
    }
}

/// The task of a drawn candidate phrased as `request` (with `answer` for answer tasks); its
/// id names the target's site path and intent, so draws from one site never give two tasks
/// one id.
pub fn web_task(
    origin: &str,
    start: &trajforge_browser::PageRecord,
    target: &trajforge_browser::PageRecord,
    c: &draw::Candidate,
    request: String,
    answer: Option<String>,
) -> Task {
    let key = format!("{}\0{:?}", site_path(&normalize_url(&target.url)), c.intent);
    let id = trajforge_hash::fnv1a64(key.as_bytes()) & 0xffff_ffff;
    let host = url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "site".into());
    Task {
        instance_id: format!("{host}-web-{id:08x}"),
        repo: origin.to_string(),
        base_commit: String::new(),
        patch: String::new(),
        test_patch: String::new(),
        problem_statement: request,
        fail_to_pass: Vec::new(),
        pass_to_pass: Vec::new(),
        created_at: String::new(),
        kind: Some(TaskKind::Web),
        commit: None,
        setup: None,
        test_cmd: None,
        web: Some(WebTarget {
            origin: origin.to_string(),
            start_url: start.url.clone(),
            start_title: start.title.clone(),
            target_url: target.url.clone(),
            target_title: target.title.clone(),
            intent: c.intent,
            answer,
            route: c.route.clone(),
        }),
        extra: serde_json::Map::new(),
    }
}

/// A web evaluation, as asked for.
#[derive(Debug, Clone)]
pub struct WebEvalSpec {
    /// The evaluation folder (the written rows, and the store unless `store` is given).
    pub out: PathBuf,
    /// A shared database's run holding the store instead of the folder.
    pub store: Option<trajforge_store::Location>,
    /// The site folder the tasks were drawn from (replayed offline).
    pub site: PathBuf,
    /// The task file written by `web tasks`.
    pub tasks: PathBuf,
    /// Attempts per task.
    pub seeds: u32,
    /// A folder of prompt files (`web_rollout2.txt` wraps the visitor's request).
    pub prompts: Option<PathBuf>,
    /// Model calls per episode.
    pub max_steps: usize,
    /// Browser processes in the pool.
    pub browsers: usize,
    /// Budgets and prices.
    pub budget: Budget,
}

/// A web evaluation whose inputs are loaded and checked, before anything is created.
pub struct WebEvalRun {
    spec: WebEvalSpec,
    tasks: Vec<Task>,
    prompts: WebPrompts,
    recording: Recording,
}

impl std::fmt::Debug for WebEvalRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebEvalRun")
            .field("spec", &self.spec)
            .field("tasks", &self.tasks.len())
            .field("site", &self.recording.meta().origin)
            .finish_non_exhaustive()
    }
}

/// What every job of a web evaluation shares.
#[derive(Debug, Clone)]
pub struct WebEvalConfig {
    /// Prompts (`rollout2` wraps the request).
    pub prompts: WebPrompts,
    /// The agent loop's settings.
    pub loop_config: LoopConfig,
    /// The model evaluated.
    pub model: String,
    /// Prices for each row's cost.
    pub pricing: Pricing,
}

/// One worker's view of a web evaluation.
pub type WebEvalWorker = Worker<dyn WebEnvFactory, WebEvalConfig>;

impl WebEvalSpec {
    /// Check the options, read the tasks (each a web task of this site) and the recording,
    /// and load the prompts; nothing is created.
    pub fn load(self) -> Result<WebEvalRun, EvalError> {
        check_seeds_and_budget(self.seeds, &self.budget)?;
        let tasks = read_tasks(&self.tasks)?;
        if let Some(t) = tasks.iter().find(|t| t.web.is_none()) {
            return Err(EvalError::NotWebTask {
                path: self.tasks.clone(),
                id: t.instance_id.clone(),
            });
        }
        check_out_folder(
            &self.out,
            &crate::eval::location(&self.out, self.store.as_ref()),
        )?;
        if !self.site.join("site.json").is_file() {
            return Err(RunError::NotASiteFolder(self.site.clone()).into());
        }
        let recording = Recording::open(&self.site).map_err(RunError::Site)?;
        let origin = recording.meta().origin.clone();
        if let Some(t) = tasks
            .iter()
            .find(|t| t.web.as_ref().is_some_and(|w| w.origin != origin))
        {
            return Err(EvalError::OtherSite {
                id: t.instance_id.clone(),
                task_origin: t.web.as_ref().map(|w| w.origin.clone()).unwrap_or_default(),
                site_origin: origin,
            });
        }
        let prompts = match &self.prompts {
            Some(dir) => WebPrompts::load(dir).map_err(RunError::from)?,
            None => WebPrompts::default(),
        };
        Ok(WebEvalRun {
            spec: self,
            tasks,
            prompts,
            recording,
        })
    }
}

impl WebEvalRun {
    /// The tasks read.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Prepare the run: open the store, check the settings, add one job per task and seed
    /// and reclaim the leases of dead processes. Browsers start as jobs need them.
    pub fn prepare(self, teacher: &BuiltTeacher) -> Result<PreparedRun, EvalError> {
        let spec = &self.spec;
        let loop_config = crate::eval::loop_config(spec.max_steps, Some(SYSTEM_PROMPT));
        let opened = crate::eval::EvalOpening {
            location: crate::eval::location(&spec.out, spec.store.as_ref()),
            subject: self.recording.meta().origin.clone(),
            inputs: format!(
                "tasks:{}@site:{}",
                fingerprint(&self.tasks),
                crate::prepare::site_fingerprint(&self.recording, false)
            ),
            prompts: fingerprint(&(&self.prompts.rollout2, &loop_config.system_prompt)),
            test_cmd: None,
            max_steps: spec.max_steps,
            tasks: &self.tasks,
            seeds: spec.seeds,
            budget: &spec.budget,
            sandbox: None,
        }
        .open(teacher)?;
        opened
            .store
            .set_meta("site", &spec.site.display().to_string())?;
        let pool = Arc::new(BrowserPool::new(
            LaunchConfig::default(),
            spec.browsers.max(1),
        ));
        let mode = NetMode::Replay(Arc::new(self.recording));
        let envs: Arc<dyn WebEnvFactory> = Arc::new(BrowserEnvs::new(Arc::clone(&pool), mode));
        let config = WebEvalConfig {
            prompts: self.prompts,
            loop_config,
            model: teacher.model.clone(),
            pricing: opened.pricing,
        };
        let worker: Arc<WebEvalWorker> = opened.worker(teacher, envs, config);
        opened.prepared(Driver::WebEval(worker, pool))
    }
}

/// Run a web evaluation's jobs, `concurrency` at a time, until none is left or it is stopped.
pub(crate) async fn run(worker: Arc<WebEvalWorker>, concurrency: usize) -> Result<(), RunError> {
    crate::runner::run_worker(worker, concurrency, |w, j| {
        Box::pin(job::process(w, j.id, &j.payload))
    })
    .await
}

/// Whether a task file's tasks ask for answers (for reports): (navigation, answer) counts.
pub fn intents(tasks: &[Task]) -> (usize, usize) {
    let answers = tasks
        .iter()
        .filter(|t| {
            t.web
                .as_ref()
                .is_some_and(|w| w.intent == WebIntent::Answer)
        })
        .count();
    (tasks.len() - answers, answers)
}
