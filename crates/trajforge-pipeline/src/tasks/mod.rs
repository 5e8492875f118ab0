//! Held-out tasks mined from a repository's own history (`trajforge tasks mine`): every
//! first-parent change after a split point is screened ([`history`]: reverts, docs-, tests-,
//! packaging- or generated-only changes and huge ones skipped, each with a counted reason),
//! split into a gold patch and a test patch, given a problem statement ([`statement`]: the
//! teacher's issue or the commit message) and, with a test command, validated in the sandbox
//! ([`validate`]: FAIL_TO_PASS and PASS_TO_PASS from two runs per side). Each change is one
//! job of a durable store, so a killed mining resumes without redoing finished changes; the
//! tasks are written in SWE-bench's instance format ([`trajforge_eval::Task`]).

pub mod history;
pub mod statement;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trajforge_eval::{JsonlError, Limits, Task, TaskKind, write_jsonl};
use trajforge_sandbox::Backend;
use trajforge_store::model::JobStatus;
use trajforge_store::{Job, Location, Outcome, Stage, StageName, Store, StoreError, UsageRecord};
use trajforge_teacher::Teacher;

use crate::envs::check_repository;
use crate::error::RunError;
use crate::prepare::{RunKind, open_location};
use crate::runner::{Control, JobHandler, Owner, STOPPED, run_jobs};
use crate::settings::recorded_path;
use crate::teacher::BuiltTeacher;
use history::{Change, Screening, Start, Window, screen_window};
use statement::{StatementSource, Written};
use validate::{TestSpec, Validation, validate};

/// Why mining could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum MineError {
    /// Preparing or driving the run failed (repository, store, settings, runtime).
    #[error(transparent)]
    Run(#[from] RunError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// git could not be run.
    #[error("cannot run git: {0}")]
    GitSpawn(#[source] std::io::Error),
    /// git failed.
    #[error("git {args} failed: {stderr}")]
    Git {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// `--after` or `--until` names no commit.
    #[error("{0:?} is not a commit of the repository")]
    UnknownRevision(String),
    /// The output file exists and is not this run's.
    #[error("{}: exists and was not written by this mining run", .0.display())]
    OutputExists(PathBuf),
    /// The teacher statement was asked for without a teacher.
    #[error("problem statements by the teacher need a teacher")]
    NoTeacher,
    /// Writing the tasks failed.
    #[error(transparent)]
    Write(#[from] JsonlError),
}

/// A mining run, as asked for.
#[derive(Debug, Clone)]
pub struct MineSpec {
    /// The repository (top level of a git repository).
    pub repo: PathBuf,
    /// Where the window starts.
    pub start: Start,
    /// Where it ends: a revision, else a date (default HEAD).
    pub until: Option<String>,
    /// The tasks file written at the end.
    pub out: PathBuf,
    /// The run's store: a run folder or a shared database's run (default: a folder beside
    /// `out`, see [`MineSpec::location`]).
    pub store: Option<Location>,
    /// Where statements come from.
    pub statement: StatementSource,
    /// Size limits of a change.
    pub limits: Limits,
    /// Test command whose per-test output decides hard tasks.
    pub test_cmd: Option<String>,
    /// Set-up command run once per base snapshot.
    pub setup: Option<String>,
    /// Wall-time limit of one command (test runs get four times this).
    pub command_timeout: Duration,
    /// Where base snapshots live.
    pub work_dir: Option<PathBuf>,
    /// What the tests run in: bubblewrap or a container image.
    pub backend: Backend,
}

impl MineSpec {
    /// The run's store: `--store`, else the folder `OUT` with its extension replaced by
    /// `.run` (`tasks.jsonl` → `tasks.run`).
    pub fn location(&self) -> Location {
        self.store
            .clone()
            .unwrap_or_else(|| Location::Folder(self.out.with_extension("run")))
    }

    /// Resolve the window and screen it (no store, no tests): what the benchmark times.
    pub fn screen(&self) -> Result<(PathBuf, Window, Screening), MineError> {
        let repo = check_repository(&self.repo).map_err(RunError::from)?;
        let window = Window::resolve(&repo, self.start.clone(), self.until.as_deref())?;
        let screening = screen_window(&repo, &window, self.limits)?;
        Ok((repo, window, screening))
    }

    /// Screen the window, open the store (refusing settings that differ from a resumed
    /// run's and an output file this run did not write), add one job per change and take
    /// back the leases of dead processes.
    pub fn prepare(self, teacher: Option<&BuiltTeacher>) -> Result<MineRun, MineError> {
        if self.statement == StatementSource::Teacher && teacher.is_none() {
            return Err(MineError::NoTeacher);
        }
        let location = self.location();
        let (repo, window, screening) = self.screen()?;
        check_output(&self.out, &location)?;
        let store = open_location(&location)?;
        let dir = PathBuf::from(location.to_string());
        RunKind::Mine.check(&store, &location.to_string())?;
        let settings = MineSettings {
            repo: repo.display().to_string(),
            window,
            statement: self.statement,
            model: teacher
                .filter(|_| self.statement == StatementSource::Teacher)
                .map(|t| t.model.clone()),
            test_cmd: self.test_cmd.clone(),
            setup: self.setup.clone(),
            limits: self.limits,
            sandbox: (self.backend != Backend::Bubblewrap).then(|| self.backend.clone()),
        };
        check_settings(&store, &settings, &dir)?;
        store.set_meta(
            SCREENING_META,
            &serde_json::to_string(&screening_counts(&screening)).unwrap_or_default(),
        )?;
        let jobs: Vec<(String, Value)> = screening
            .tasks
            .iter()
            .map(|c| {
                (
                    c.commit.clone(),
                    serde_json::to_value(c).unwrap_or_default(),
                )
            })
            .collect();
        let added = store.add_jobs(&jobs)?;
        let reclaimed = store.reclaim(Owner::is_dead)?;
        let already_done = store.counts()?.done;
        let name = repo
            .file_name()
            .map_or_else(|| "repo".into(), |n| n.to_string_lossy().into_owned());
        let tests = self.test_cmd.clone().map(|test_cmd| TestSpec {
            repo: repo.clone(),
            setup: self.setup.clone(),
            test_cmd,
            command_timeout: self.command_timeout,
            work_dir: self.work_dir.clone(),
            backend: self.backend.clone(),
        });
        Ok(MineRun {
            ctx: Arc::new(Ctx {
                store,
                teacher: teacher.map(|t| Arc::clone(&t.teacher)),
                statement: self.statement,
                tests,
                repo,
                name,
                setup: self.setup.clone(),
                control: Arc::new(Control::default()),
                owner: Owner::this_process().name().to_string(),
            }),
            location,
            out: self.out,
            commits: screening.commits,
            skipped: screening.skipped,
            jobs: jobs.len(),
            added,
            reclaimed,
            already_done,
        })
    }
}

/// Whether the store is a mining run's (`tasks mine`).
pub fn is_mining(store: &Store) -> bool {
    matches!(store.meta(SETTINGS_META), Ok(Some(_)))
}

/// Meta key of the screening counts.
const SCREENING_META: &str = "mine_screening";
/// Meta key of the settings.
const SETTINGS_META: &str = "mine_settings";
/// Meta keys of the last tasks file written: its path and a hash of its bytes.
const OUT_META: &str = "mine_out";
const OUT_HASH_META: &str = "mine_out_hash";
/// Stage name of a mined change's record.
const TASK_STAGE: &str = "task";

/// What fixes the meaning of a mining run's tasks; a resume must ask for the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MineSettings {
    repo: String,
    window: Window,
    statement: StatementSource,
    model: Option<String>,
    test_cmd: Option<String>,
    setup: Option<String>,
    limits: Limits,
    /// The container the tests ran in; absent for bubblewrap (and in runs stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox: Option<Backend>,
}

/// Store the settings of a new run, or refuse a resume that asks for others.
fn check_settings(store: &Store, settings: &MineSettings, dir: &Path) -> Result<(), MineError> {
    let requested = serde_json::to_value(settings).unwrap_or_default();
    let Some(text) = store.meta(SETTINGS_META)? else {
        store.set_meta(SETTINGS_META, &requested.to_string())?;
        return Ok(());
    };
    let stored: Value =
        serde_json::from_str(&text).map_err(|source| RunError::UnreadableSettings {
            dir: dir.to_path_buf(),
            source,
        })?;
    // Keys of either side: a setting left out when at its default (the sandbox) differs
    // from a stored one too.
    let (none, empty) = (Value::Null, serde_json::Map::new());
    let keys: std::collections::BTreeSet<&String> = [&requested, &stored]
        .into_iter()
        .flat_map(|v| v.as_object().unwrap_or(&empty).keys())
        .collect();
    let conflicts: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let (was, now) = (
                stored.get(k.as_str()).unwrap_or(&none),
                requested.get(k.as_str()).unwrap_or(&none),
            );
            (was != now).then(|| format!("{k}: {was} → {now}"))
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(RunError::SettingsConflict {
            dir: dir.to_path_buf(),
            conflicts,
        }
        .into())
    }
}

/// An existing `out` may only be replaced when this run's store says it wrote exactly it.
fn check_output(out: &Path, location: &Location) -> Result<(), MineError> {
    if !out.exists() {
        return Ok(());
    }
    let refuse = || MineError::OutputExists(out.to_path_buf());
    let store = match Store::open_existing_at(location) {
        Ok(Some(store)) => store,
        Ok(None) => return Err(refuse()),
        // A database that cannot be reached says so rather than claim the file is not ours.
        Err(e @ StoreError::Postgres { .. }) => return Err(RunError::OpenRun(e).into()),
        Err(_) => return Err(refuse()),
    };
    let ours = store
        .meta(OUT_META)?
        .is_some_and(|p| Path::new(&p) == Path::new(&recorded_path(out)))
        && store.meta(OUT_HASH_META)? == Some(file_hash(out));
    if ours { Ok(()) } else { Err(refuse()) }
}

fn file_hash(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap_or_default();
    format!("{:016x}", trajforge_hash::fnv1a64(&bytes))
}

/// The counts of a screening.
pub fn screening_counts(s: &Screening) -> ScreeningCounts {
    ScreeningCounts {
        commits: s.commits,
        tasks: s.tasks.len(),
        skipped: s.skipped.clone(),
    }
}

/// How many first-parent commits screening read, kept and skipped per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreeningCounts {
    /// Commits read.
    pub commits: usize,
    /// Changes that became jobs.
    pub tasks: usize,
    /// Skipped per reason.
    pub skipped: BTreeMap<String, usize>,
}

/// What is stored for each mined change: its task (or none when no statement could be
/// written), and how the statement and the tests went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinedRecord {
    /// The task, when there is one.
    pub task: Option<Task>,
    /// The teacher's statement attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<Written>,
    /// The test runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// Shared by the workers of a mining run.
struct Ctx {
    store: Arc<Store>,
    teacher: Option<Arc<dyn Teacher>>,
    statement: StatementSource,
    tests: Option<TestSpec>,
    repo: PathBuf,
    name: String,
    setup: Option<String>,
    control: Arc<Control>,
    owner: String,
}

/// A mining run ready to be driven.
pub struct MineRun {
    ctx: Arc<Ctx>,
    /// The run's store: its folder, or a shared database's run.
    pub location: Location,
    /// The tasks file.
    pub out: PathBuf,
    /// First-parent commits screened.
    pub commits: usize,
    /// Skipped changes per reason.
    pub skipped: BTreeMap<String, usize>,
    /// Changes to mine (jobs).
    pub jobs: usize,
    /// Jobs this session added.
    pub added: usize,
    /// Jobs taken back from dead processes.
    pub reclaimed: usize,
    /// Jobs done before this session.
    pub already_done: u64,
}

/// Where a mining run stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MineProgress {
    /// Changes to mine.
    pub jobs: usize,
    /// Changes done.
    pub done: usize,
    /// Hard tasks so far.
    pub hard: usize,
    /// Soft tasks so far.
    pub soft: usize,
    /// Changes dropped per reason (`statement_leaks`).
    pub dropped: BTreeMap<String, usize>,
}

/// The end of a mining session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MineSummary {
    /// Screening counts.
    pub screening: ScreeningCounts,
    /// Where mining stands.
    pub progress: MineProgress,
    /// Soft tasks per reason their tests could not decide (`no_fail_to_pass`, `no_test_patch`, ...).
    pub soft_reasons: BTreeMap<String, usize>,
    /// Tasks written.
    pub written: usize,
    /// The tasks file.
    pub out: PathBuf,
    /// Why the session stopped early, if it did.
    pub stopped: Option<String>,
}

impl MineRun {
    /// The stop flag (stop it to end the session gracefully).
    pub fn control(&self) -> Arc<Control> {
        Arc::clone(&self.ctx.control)
    }

    /// Mine the pending changes, `concurrency` at a time, until none is left or the run stops.
    pub async fn drive(&self, concurrency: usize) -> Result<(), MineError> {
        let ctx = Arc::clone(&self.ctx);
        let handler: JobHandler = Arc::new(move |job| {
            let ctx = Arc::clone(&ctx);
            Box::pin(async move { process(&ctx, job).await })
        });
        run_jobs(
            Arc::clone(&self.ctx.store),
            Arc::clone(&self.ctx.control),
            self.ctx.owner.clone(),
            concurrency,
            handler,
        )
        .await?;
        Ok(())
    }

    /// The run's store (for a progress line).
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.ctx.store)
    }

    /// Write every task mined so far to the tasks file (oldest change first) and sum up.
    pub fn finish(&self) -> Result<MineSummary, MineError> {
        let store = &self.ctx.store;
        let mut tasks: Vec<Task> = Vec::new();
        let mut soft_reasons: BTreeMap<String, usize> = BTreeMap::new();
        for record in records(store)? {
            if let Some(task) = record.task {
                if task.kind() == TaskKind::Soft {
                    *soft_reasons
                        .entry(soft_reason(&record.validation, &task))
                        .or_default() += 1;
                }
                tasks.push(task);
            }
        }
        tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        write_jsonl(&self.out, &tasks)?;
        store.set_meta(OUT_META, &recorded_path(&self.out))?;
        store.set_meta(OUT_HASH_META, &file_hash(&self.out))?;
        let screening = store
            .meta(SCREENING_META)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Ok(MineSummary {
            screening,
            progress: progress_of(store)?,
            soft_reasons,
            written: tasks.len(),
            out: self.out.clone(),
            stopped: self.ctx.control.reason(),
        })
    }
}

/// Why a soft task is soft.
fn soft_reason(validation: &Option<Validation>, task: &Task) -> String {
    match validation {
        None if task.test_cmd.is_none() => "no_test_cmd".into(),
        None => "no_test_patch".into(),
        Some(v) => v
            .soft_reason
            .clone()
            .unwrap_or_else(|| "no_fail_to_pass".into()),
    }
}

/// The stored record of every done change, in job order.
fn records(store: &Store) -> Result<Vec<MinedRecord>, MineError> {
    let mut out = Vec::new();
    for stage in store.all_stages()? {
        if let Some(record) = mined_record(stage.stage) {
            out.push(record);
        }
    }
    Ok(out)
}

/// The mined record a stored stage holds, if it is one.
fn mined_record(stage: Stage) -> Option<MinedRecord> {
    match stage {
        Stage::Other(name, payload) if name == TASK_STAGE => serde_json::from_value(payload).ok(),
        _ => None,
    }
}

/// Where the mining run of `store` stands.
pub fn progress_of(store: &Store) -> Result<MineProgress, MineError> {
    let mut p = MineProgress::default();
    for job in store.jobs()? {
        p.jobs += 1;
        if job.status != JobStatus::Done {
            continue;
        }
        p.done += 1;
        match job.result.as_ref().map(Outcome::as_str) {
            Some("hard") => p.hard += 1,
            Some("soft") => p.soft += 1,
            other => {
                *p.dropped
                    .entry(other.unwrap_or("unknown").to_string())
                    .or_default() += 1
            }
        }
    }
    Ok(p)
}

/// Mine one change: its statement, its tests, its task, committed as one stage.
async fn process(ctx: &Ctx, job: Job) -> Result<Outcome, StoreError> {
    // Killed after the record was committed but before the job was finished: reuse it.
    for stage in ctx.store.stages(job.id)? {
        if let Some(record) = mined_record(stage.stage) {
            return Ok(outcome(&record));
        }
    }
    let change: Change = serde_json::from_value(job.payload).map_err(|e| StoreError::Corrupt {
        path: ctx.store.path().to_path_buf(),
        message: format!("job {}: {e}", job.id),
    })?;
    let mut usage = None;
    // A merge's own message may say only "Merge branch ...": the merged commits say more.
    let merged = if change.merge {
        history::merged_messages(&ctx.repo, &change).unwrap_or_default()
    } else {
        String::new()
    };
    let message = statement::from_commit(&change.message, change.merge, &merged);
    let (text, written) = match ctx.statement {
        StatementSource::Commit => (Some(message), None),
        StatementSource::Teacher => {
            let Some(teacher) = &ctx.teacher else {
                ctx.control.stop("no teacher for the statements");
                return Ok(STOPPED);
            };
            match statement::write(teacher.as_ref(), &message, &change.gold, &change.test).await {
                Ok(w) => {
                    usage = Some(UsageRecord {
                        prompt_tokens: w.prompt_tokens,
                        completion_tokens: w.completion_tokens,
                        model_seconds: w.seconds,
                    });
                    (w.text.clone(), Some(w))
                }
                Err(e) => {
                    ctx.control.stop(&format!("the teacher failed: {e}"));
                    return Ok(STOPPED);
                }
            }
        }
    };
    if ctx.control.stopped() && text.is_some() && ctx.tests.is_some() {
        // Stopping: leave the tests for the next session rather than start a long run.
        return Ok(STOPPED);
    }
    let validation = match (&ctx.tests, text.is_some() && !change.test.is_empty()) {
        (Some(spec), true) => {
            match validate(spec, &change.parent, &change.gold, &change.test).await {
                Ok(v) => Some(v),
                Err(e) => {
                    ctx.control
                        .stop(&format!("validating {} failed: {e}", short(&change.commit)));
                    return Ok(STOPPED);
                }
            }
        }
        _ => None,
    };
    let task = text.map(|problem_statement| {
        let selection = validation
            .as_ref()
            .map(|v| v.selection.clone())
            .unwrap_or_default();
        let kind = if selection.fail_to_pass.is_empty() {
            TaskKind::Soft
        } else {
            TaskKind::Hard
        };
        Task {
            instance_id: format!("{}-{}", ctx.name, short(&change.commit)),
            repo: ctx.name.clone(),
            base_commit: change.parent.clone(),
            patch: change.gold.clone(),
            test_patch: change.test.clone(),
            problem_statement,
            fail_to_pass: selection.fail_to_pass,
            pass_to_pass: selection.pass_to_pass,
            created_at: change.created_at.clone(),
            kind: Some(kind),
            commit: Some(change.commit.clone()),
            setup: ctx.setup.clone(),
            test_cmd: ctx.tests.as_ref().map(|t| t.test_cmd.clone()),
            web: None,
            extra: serde_json::Map::new(),
        }
    });
    let record = MinedRecord {
        task,
        written,
        validation,
    };
    let payload = serde_json::to_value(&record).map_err(|e| StoreError::Corrupt {
        path: ctx.store.path().to_path_buf(),
        message: format!("job {}: {e}", job.id),
    })?;
    ctx.store.record_stage(
        &ctx.owner,
        job.id,
        0,
        &Stage::Other(StageName::from(TASK_STAGE), payload),
        None,
        usage,
    )?;
    Ok(outcome(&record))
}

/// The job's result label: `hard`, `soft`, or `statement_leaks` when no statement came.
fn outcome(record: &MinedRecord) -> Outcome {
    Outcome::from(match &record.task {
        Some(t) if t.kind() == TaskKind::Hard => "hard",
        Some(_) => "soft",
        None => "statement_leaks",
    })
}

/// The 12-character commit id used in instance ids.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `label n, label n` (or `none`).
pub fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The end-of-session summary in words; `location` is the run's store.
pub fn render(s: &MineSummary, location: &Location) -> String {
    let p = &s.progress;
    let mut out = format!(
        "mined {} of {} changes: {} hard, {} soft (soft because: {}), dropped: {}\n",
        p.done,
        p.jobs,
        p.hard,
        p.soft,
        counts(&s.soft_reasons),
        counts(&p.dropped)
    );
    out.push_str(&format!(
        "wrote {} tasks to {} ({})",
        s.written,
        s.out.display(),
        match location {
            Location::Folder(dir) => format!("run folder {}", dir.display()),
            Location::Postgres { url, run } =>
                format!("run {run} in {}", trajforge_store::redact_url(url)),
        }
    ));
    if let Some(reason) = &s.stopped {
        out.push_str(&format!(
            "\nstopped early: {reason}. Run the same command again to continue."
        ));
    }
    out
}
