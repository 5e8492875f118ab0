//! Held-out evaluation of a model on a task file (issue 15, point 3): every task, once per
//! seed, is one job of the run's store. The agent runs `generate`'s rollout harness (same
//! tools, system prompt, rollout-2 prompt around the problem statement, step limit) in a
//! sandboxed workspace of the task's base commit (a one-commit snapshot: no later history),
//! then its patch is scored: line recall against the gold patch always, and for hard tasks
//! whether every FAIL_TO_PASS and PASS_TO_PASS test passes once the test patch is applied
//! over it (test files the agent touched restored first, so editing tests cannot pass).
//!
//! A run is specified ([`EvalRunSpec`]), loaded ([`EvalRun`]), prepared into the same
//! [`PreparedRun`] `generate` drives (store, resume, budgets, progress), and its rows are
//! written beside the store as `results.jsonl` and SWE-bench `predictions.jsonl`
//! ([`write_outputs`]).

mod envs;
mod job;
mod report;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trajforge_agent::LoopConfig;
use trajforge_eval::{JsonlError, Task, TaskResult, read_jsonl};
use trajforge_store::Location;

use crate::envs::check_repository;
use crate::error::RunError;
use crate::prepare::{Budget, Plan, PreparedRun, RunKind, check_settings, open_location};
use crate::prompts::Prompts;
use crate::runner::{Owner, Worker};
use crate::settings::recorded_path;
use crate::settings::{RunSettings, fingerprint};
use crate::status::Pricing;
use crate::teacher::BuiltTeacher;

pub use envs::TaskEnvs;
pub(crate) use job::commit_score;
pub use job::{outcome, restore_script, test_paths_touched};
pub use report::{OutputsWritten, render, results, scored_jobs, summary, write_outputs};

/// The store meta key that marks a run folder as an evaluation's.
pub const KIND_META: &str = "kind";
/// Its value.
pub const KIND_EVAL: &str = "eval";
/// The name of the stage holding a job's score ([`ScoreStage`]).
pub const SCORE_STAGE: &str = "score";
/// The store meta key under which runs of earlier releases named the one folder their rows
/// were written to; read only, to keep those folders the run's.
const OUT_META: &str = "eval_out";

/// The store meta key present once the rows were written to `dir`: processes sharing one
/// evaluation may each write to a folder of their own, and each folder stays the run's.
pub(crate) fn written_meta(dir: &Path) -> String {
    format!("{OUT_META}:{}", recorded_path(dir))
}

/// Why an evaluation could not be prepared or its outputs written.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Preparing or driving the run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The task file cannot be read.
    #[error(transparent)]
    Tasks(JsonlError),
    /// The task file holds no task.
    #[error("{}: no tasks", .0.display())]
    NoTasks(PathBuf),
    /// Two tasks share an id, so their rows could not be told apart.
    #[error("{}: task {id} appears more than once", path.display())]
    DuplicateTask {
        /// The task file.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },
    /// `results.jsonl` or a predictions file could not be written.
    #[error(transparent)]
    Outputs(JsonlError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] trajforge_store::StoreError),
    /// `web eval` was given a task that is not a web task.
    #[error("{}: task {id} is not a web task (draw web tasks with `trajforge web tasks`)", path.display())]
    NotWebTask {
        /// The task file.
        path: PathBuf,
        /// The task.
        id: String,
    },
    /// A web task was drawn from another site than the one given.
    #[error("task {id} was drawn from {task_origin}, but the site folder records {site_origin}")]
    OtherSite {
        /// The task.
        id: String,
        /// Its site's origin.
        task_origin: String,
        /// The given site's origin.
        site_origin: String,
    },
    /// The evaluation folder holds rows or predictions that no evaluation of ours wrote there.
    #[error("{} exists and is not from a trajforge evaluation: it would be overwritten", .0.display())]
    WouldOverwrite(PathBuf),
}

/// Where an evaluation's store lives: `store` (a shared database's run) when given, else
/// the evaluation folder `out`'s own.
pub fn location(out: &Path, store: Option<&Location>) -> Location {
    store
        .cloned()
        .unwrap_or_else(|| Location::Folder(out.to_path_buf()))
}

/// Refuse an evaluation folder that holds `results.jsonl` or `predictions*.jsonl` unless
/// the evaluation's store at `location` wrote them: the folder's own store when it is an
/// evaluation's, another store (a database's run) only when it records writing its rows
/// there. Any other such files are the user's, and writing the rows would replace them.
pub fn check_out_folder(out: &Path, location: &Location) -> Result<(), EvalError> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(()); // no folder yet: nothing to overwrite
    };
    let mut ours: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name == trajforge_eval::RESULTS_FILE
                || (name.starts_with("predictions") && name.ends_with(".jsonl"))
        })
        .collect();
    ours.sort();
    let Some(first) = ours.into_iter().next() else {
        return Ok(());
    };
    let ours = match trajforge_store::Store::open_existing_at(location) {
        Ok(Some(store)) if is_eval(&store) => {
            *location == Location::Folder(out.to_path_buf())
                || store.meta(OUT_META).ok().flatten() == Some(recorded_path(out))
                || store.meta(&written_meta(out)).ok().flatten().is_some()
        }
        // A database that cannot be reached says so rather than claim the files are the user's.
        Err(e @ trajforge_store::StoreError::Postgres { .. }) => {
            return Err(RunError::OpenRun(e).into());
        }
        _ => false,
    };
    if ours {
        Ok(())
    } else {
        Err(EvalError::WouldOverwrite(first))
    }
}

/// An evaluation, as asked for.
#[derive(Debug, Clone)]
pub struct EvalRunSpec {
    /// The evaluation folder (holds the written rows, and the store unless `store` is given).
    pub out: PathBuf,
    /// A shared database's run holding the store instead of the folder.
    pub store: Option<Location>,
    /// The repository the tasks come from (top level of a git repository with their commits).
    pub repo: PathBuf,
    /// The task file (JSON Lines: trajforge's mined tasks or SWE-bench instances).
    pub tasks: PathBuf,
    /// Attempts per task.
    pub seeds: u32,
    /// A folder of prompt files (`rollout2.txt` wraps the problem statement).
    pub prompts: Option<PathBuf>,
    /// Model calls per episode.
    pub max_steps: usize,
    /// Set-up command for tasks that name none.
    pub setup: Option<String>,
    /// Test command for tasks that name none.
    pub test_cmd: Option<String>,
    /// Wall-time limit of one agent command.
    pub command_timeout: Duration,
    /// Where snapshots and workspaces live (default: the repository's work folder).
    pub work_dir: Option<PathBuf>,
    /// What the agent's commands and the tests run in: bubblewrap or a container image.
    pub backend: trajforge_sandbox::Backend,
    /// Budgets and prices.
    pub budget: Budget,
}

/// An evaluation whose inputs are loaded and checked, before anything is created.
#[derive(Debug)]
pub struct EvalRun {
    spec: EvalRunSpec,
    repo: PathBuf,
    tasks: Vec<Task>,
    prompts: Prompts,
}

/// A job's payload: the task itself (so a resumed run needs no task file to score) and the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalJob {
    /// Which repetition.
    pub seed: u32,
    /// The task.
    pub task: Task,
}

/// The score stage of one job: its result row, the tests that did not pass and the patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreStage {
    /// The row written to `results.jsonl`.
    #[serde(flatten)]
    pub result: TaskResult,
    /// FAIL_TO_PASS and PASS_TO_PASS tests that did not pass (hard tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_tests: Vec<String>,
    /// The agent's patch (empty when it made none).
    #[serde(default)]
    pub model_patch: String,
}

/// What every job of an evaluation shares.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Prompts (`rollout2` wraps the problem statement).
    pub prompts: Prompts,
    /// The agent loop's settings.
    pub loop_config: LoopConfig,
    /// Set-up command for tasks that name none.
    pub setup: Option<String>,
    /// Test command for tasks that name none.
    pub test_cmd: Option<String>,
    /// The model evaluated (its name in rows and predictions).
    pub model: String,
    /// Prices for each row's cost.
    pub pricing: Pricing,
}

/// One worker's view of an evaluation.
pub type EvalWorker = Worker<TaskEnvs, EvalConfig>;

impl EvalRunSpec {
    /// Check the options, read the tasks and load the prompts; nothing is created.
    pub fn load(self) -> Result<EvalRun, EvalError> {
        check_seeds_and_budget(self.seeds, &self.budget)?;
        let tasks = read_tasks(&self.tasks)?;
        check_out_folder(&self.out, &location(&self.out, self.store.as_ref()))?;
        let prompts = match &self.prompts {
            Some(dir) => Prompts::load(dir).map_err(RunError::from)?,
            None => Prompts::default(),
        };
        let repo = check_repository(&self.repo).map_err(RunError::from)?;
        Ok(EvalRun {
            spec: self,
            repo,
            tasks,
            prompts,
        })
    }
}

impl EvalRun {
    /// The tasks read.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Prepare the run: open the store, check the settings, add one job per task and seed
    /// and reclaim the leases of dead processes. Environments are made per base commit as
    /// jobs need them.
    pub fn prepare(self, teacher: &BuiltTeacher) -> Result<PreparedRun, EvalError> {
        let spec = &self.spec;
        let loop_config = loop_config(spec.max_steps, None);
        let opened = EvalOpening {
            location: location(&spec.out, spec.store.as_ref()),
            subject: self.repo.display().to_string(),
            inputs: format!("tasks:{}", fingerprint(&self.tasks)),
            prompts: fingerprint(&(&self.prompts, &loop_config.system_prompt)),
            test_cmd: spec.test_cmd.clone(),
            max_steps: spec.max_steps,
            tasks: &self.tasks,
            seeds: spec.seeds,
            budget: &spec.budget,
            sandbox: crate::settings::sandbox_setting(&spec.backend),
        }
        .open(teacher)?;
        let timeout = spec.command_timeout.max(Duration::from_secs(1));
        let work_dir = spec
            .work_dir
            .clone()
            .unwrap_or_else(|| crate::envs::default_work_dir(&self.repo));
        let envs = Arc::new(TaskEnvs::new(
            &self.repo,
            &work_dir,
            (timeout, timeout * 4),
            spec.backend.clone(),
        ));
        let config = EvalConfig {
            prompts: self.prompts,
            loop_config,
            setup: spec.setup.clone(),
            test_cmd: spec.test_cmd.clone(),
            model: teacher.model.clone(),
            pricing: opened.pricing,
        };
        let worker: Arc<EvalWorker> = opened.worker(teacher, envs, config);
        opened.prepared(crate::prepare::Driver::Eval(worker))
    }
}

/// The agent loop of an evaluation's episodes: `max_steps` calls, no context cut, and
/// `system_prompt` when the harness has its own (web).
pub(crate) fn loop_config(max_steps: usize, system_prompt: Option<&str>) -> LoopConfig {
    let mut config = LoopConfig {
        max_steps,
        max_context_tokens: None,
        ..LoopConfig::default()
    };
    if let Some(prompt) = system_prompt {
        config.system_prompt = prompt.into();
    }
    config
}

/// What opening an evaluation's store takes, shared by code and web evaluations.
pub(crate) struct EvalOpening<'a> {
    /// Where the store lives (the evaluation folder, or a database's run).
    pub location: Location,
    /// What the tasks run on: the repository, or the site's origin.
    pub subject: String,
    /// The identity of the tasks (and of the site, for web tasks).
    pub inputs: String,
    /// The identity of the prompts.
    pub prompts: String,
    /// The test command.
    pub test_cmd: Option<String>,
    /// Model calls per episode.
    pub max_steps: usize,
    /// The tasks.
    pub tasks: &'a [Task],
    /// Attempts per task.
    pub seeds: u32,
    /// Budgets and prices.
    pub budget: &'a Budget,
    /// The container commands run in (`None`: bubblewrap, or no commands).
    pub sandbox: Option<trajforge_sandbox::Backend>,
}

impl EvalOpening<'_> {
    /// Open the store with these settings for `teacher` (see [`open_eval`]).
    pub(crate) fn open(self, teacher: &BuiltTeacher) -> Result<Opened, EvalError> {
        let settings = RunSettings {
            sandbox: self.sandbox,
            ..settings(
                self.subject,
                self.inputs,
                self.prompts,
                &teacher.model,
                self.test_cmd,
                self.max_steps,
            )
        };
        open_eval(
            &self.location,
            &settings,
            self.tasks,
            self.seeds,
            self.budget,
            &teacher.url,
        )
    }
}

/// The settings an evaluation's resume must repeat: what the tasks run on (`repo`), the
/// tasks (`commit`), the prompts, the model, the test command and the step limit.
pub(crate) fn settings(
    repo: String,
    commit: String,
    prompts: String,
    model: &str,
    test_cmd: Option<String>,
    max_steps: usize,
) -> RunSettings {
    RunSettings {
        repo,
        commit,
        menu: String::new(),
        demos: String::new(),
        prompts,
        threshold: 0.0,
        attempts: 1,
        seed: 0,
        model: model.to_string(),
        test_cmd,
        max_steps,
        include_tests: false,
        keep_different_final: false,
        excluded: None,
        sandbox: None,
    }
}

/// An evaluation's store, opened, checked against its settings and marked, with its jobs.
pub(crate) struct Opened {
    /// The store.
    pub store: Arc<trajforge_store::Store>,
    /// Prices for each row's cost.
    pub pricing: crate::status::Pricing,
    /// Stop flag and budgets.
    pub control: Arc<crate::runner::Control>,
    jobs: Vec<(String, Value)>,
    tasks: usize,
    seeds: u32,
}

/// Open the evaluation's store at `location`, refuse another kind of run and settings that
/// differ from a resumed run's, mark it as an evaluation's and list one job per task and seed.
pub(crate) fn open_eval(
    location: &Location,
    settings: &RunSettings,
    tasks: &[Task],
    seeds: u32,
    budget: &Budget,
    teacher_url: &str,
) -> Result<Opened, EvalError> {
    let store = open_location(location)?;
    let name = location.to_string();
    RunKind::Eval.check(&store, &name)?;
    // Marked before the settings are stored: a run with settings and no kind is a generate run's.
    store.set_meta(KIND_META, KIND_EVAL)?;
    check_settings(&store, settings, Path::new(&name))?;
    let pricing = budget.pricing();
    mark_eval(&store, pricing, teacher_url)?;
    // In a database several processes may share the evaluation: each waits for the jobs the
    // others hold (taking over a dead one's when its lease ends), so every process writes
    // every row, not only those done when it ran out of jobs to claim.
    let schedule = crate::runner::Schedule {
        wait_for_others: store.is_shared(),
        ..crate::runner::Schedule::default()
    };
    let control = budget.control_with(&store, schedule)?;
    Ok(Opened {
        store,
        pricing,
        control,
        jobs: jobs(tasks, seeds),
        tasks: tasks.len(),
        seeds,
    })
}

impl Opened {
    /// A worker of this evaluation with `teacher`, `envs` and `config`.
    pub(crate) fn worker<E: ?Sized, C>(
        &self,
        teacher: &BuiltTeacher,
        envs: Arc<E>,
        config: C,
    ) -> Arc<Worker<E, C>> {
        Arc::new(Worker {
            store: Arc::clone(&self.store),
            teacher: Arc::clone(&teacher.teacher),
            envs,
            config: Arc::new(config),
            control: Arc::clone(&self.control),
            owner: Owner::this_process().name().to_string(),
        })
    }

    /// The run, its jobs added and dead leases reclaimed, driven by `driver`.
    pub(crate) fn prepared(self, driver: crate::prepare::Driver) -> Result<PreparedRun, EvalError> {
        Ok(PreparedRun::new(
            self.store,
            &self.jobs,
            self.pricing,
            0.0,
            Plan::Eval {
                tasks: self.tasks,
                seeds: self.seeds,
            },
            driver,
        )?)
    }
}

/// The jobs of an evaluation: every task once per seed, keyed `<instance_id>#<seed>`.
pub(crate) fn jobs(tasks: &[Task], seeds: u32) -> Vec<(String, Value)> {
    (0..seeds)
        .flat_map(|seed| tasks.iter().map(move |t| (seed, t)))
        .map(|(seed, task)| {
            let job = EvalJob {
                seed,
                task: task.clone(),
            };
            (
                format!("{}#{seed}", task.instance_id),
                serde_json::to_value(&job).unwrap_or_default(),
            )
        })
        .collect()
}

/// The option checks every evaluation makes first: seeds at least 1, a valid budget.
pub(crate) fn check_seeds_and_budget(seeds: u32, budget: &Budget) -> Result<(), EvalError> {
    if seeds == 0 {
        return Err(RunError::Option("--seeds must be at least 1".into()).into());
    }
    Ok(budget.check()?)
}

/// Read a task file: at least one task, each id once.
pub fn read_tasks(path: &Path) -> Result<Vec<Task>, EvalError> {
    let tasks: Vec<Task> = read_jsonl(path).map_err(EvalError::Tasks)?;
    if tasks.is_empty() {
        return Err(EvalError::NoTasks(path.to_path_buf()));
    }
    let mut seen = HashSet::new();
    for t in &tasks {
        if !seen.insert(t.instance_id.as_str()) {
            return Err(EvalError::DuplicateTask {
                path: path.to_path_buf(),
                id: t.instance_id.clone(),
            });
        }
    }
    Ok(tasks)
}

/// Run an evaluation's jobs, `concurrency` at a time, until none is left or it is stopped.
pub(crate) async fn run(worker: Arc<EvalWorker>, concurrency: usize) -> Result<(), RunError> {
    crate::runner::run_worker(worker, concurrency, |w, j| {
        Box::pin(job::process(w, j.id, &j.payload))
    })
    .await
}

/// Store an evaluation's prices and teacher, and mark the folder as an evaluation's.
pub(crate) fn mark_eval(
    store: &trajforge_store::Store,
    pricing: crate::status::Pricing,
    teacher_url: &str,
) -> Result<(), RunError> {
    crate::prepare::store_run_meta(store, pricing, teacher_url)?;
    store.set_meta(KIND_META, KIND_EVAL)?;
    Ok(())
}

/// Whether the run folder's store holds an evaluation.
pub fn is_eval(store: &trajforge_store::Store) -> bool {
    matches!(store.meta(KIND_META), Ok(Some(k)) if k == KIND_EVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_a_folder_are_the_runs_only_when_it_recorded_writing_them_there() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // The run's store lives elsewhere (as a database's run does), the rows in `out`.
        let run = Location::Folder(tmp.path().join("run"));
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).expect("mkdir");
        std::fs::write(out.join(trajforge_eval::RESULTS_FILE), "{}\n").expect("rows");
        let store = trajforge_store::Store::open_at(&run).expect("store");
        store.set_meta(KIND_META, KIND_EVAL).expect("kind");
        assert!(matches!(
            check_out_folder(&out, &run),
            Err(EvalError::WouldOverwrite(_))
        ));
        // As this release records it: every folder written to.
        store
            .set_meta(&written_meta(&tmp.path().join("elsewhere")), "written")
            .expect("meta");
        assert!(check_out_folder(&out, &run).is_err());
        store
            .set_meta(&written_meta(&out), "written")
            .expect("meta");
        check_out_folder(&out, &run).expect("ours");
        // As earlier releases recorded it: the one folder last written to.
        let earlier = Location::Folder(tmp.path().join("earlier"));
        let store = trajforge_store::Store::open_at(&earlier).expect("store");
        store.set_meta(KIND_META, KIND_EVAL).expect("kind");
        store
            .set_meta(OUT_META, &recorded_path(&out))
            .expect("meta");
        check_out_folder(&out, &earlier).expect("ours");
    }
}
