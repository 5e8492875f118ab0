//! The application layer: a run's specification ([`CodeRunSpec`], [`WebRunSpec`]) checked,
//! then prepared against its run folder ([`PreparedRun`]: settings check, metadata, jobs,
//! leases of dead processes reclaimed), then driven by the job runner. Every command and
//! benchmark that runs a pipeline goes through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trajforge_agent::LoopConfig;
use trajforge_browser::{
    BrowserPool, CrawlConfig, EnvConfig, LaunchConfig, NetMode, Recorder, Recording,
};
use trajforge_ingest::{Function, ScanOptions};

use crate::decontaminate::{HeldOutPages, TouchedFunctions};
use trajforge_menu::Menu;
use trajforge_sandbox::{Backend, Environment, EnvironmentOptions};
use trajforge_store::{Location, Store};

use crate::code::CodeConfig;
use crate::demos::{self, Demo};
use crate::envs::{BrowserEnvs, SandboxEnvs, check_repository, default_work_dir};
use crate::error::RunError;
use crate::progress::ProgressKind;
use crate::prompts::{Prompts, WebPrompts};
use crate::runner::{Control, Owner, Worker};
use crate::settings::{RunSettings, fingerprint};
use crate::status::{self, Pricing, Status};
use crate::teacher::BuiltTeacher;
use crate::web::{self, StartPage, WebConfig, WebWorker};

/// Budgets and prices of a run.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// Stop scheduling new work after this many tokens.
    pub max_tokens: Option<u64>,
    /// Stop scheduling new work once the cost reaches this many dollars (needs prices).
    pub max_cost: Option<f64>,
    /// Dollars per million prompt tokens.
    pub price_in: Option<f64>,
    /// Dollars per million completion tokens.
    pub price_out: Option<f64>,
    /// Dollars per GPU hour.
    pub gpu_hour_price: Option<f64>,
}

impl Budget {
    /// Refuse a cost budget that no price can measure.
    pub fn check(&self) -> Result<(), RunError> {
        if self.max_cost.is_some() && self.price_in.is_none() && self.price_out.is_none() {
            return Err(RunError::Option(
                "--max-cost needs --price-in and/or --price-out".into(),
            ));
        }
        Ok(())
    }

    /// The prices as the status computes costs with them.
    pub fn pricing(&self) -> Pricing {
        Pricing {
            price_in: self.price_in,
            price_out: self.price_out,
            gpu_hour: self.gpu_hour_price,
        }
    }

    /// The run's stop flag with its budgets, counting what earlier sessions of the run spent;
    /// refused when the budget is already spent.
    pub fn control(&self, store: &Store) -> Result<Arc<Control>, RunError> {
        self.control_with(store, crate::runner::Schedule::default())
    }

    /// [`Budget::control`] with how this process takes its jobs.
    pub fn control_with(
        &self,
        store: &Store,
        schedule: crate::runner::Schedule,
    ) -> Result<Arc<Control>, RunError> {
        let spent = status::status(store, self.pricing())?;
        let price = match (self.price_in, self.price_out) {
            (None, None) => None,
            (a, b) => Some((a.unwrap_or(0.0), b.unwrap_or(0.0))),
        };
        let mut control = Control::with_budgets(self.max_tokens, self.max_cost, price);
        control.schedule = schedule;
        let control = Arc::new(control);
        control.add(trajforge_teacher::Usage {
            prompt_tokens: spent.prompt_tokens,
            completion_tokens: spent.completion_tokens,
        });
        if control.stopped() {
            return Err(RunError::BudgetSpent(control.reason().unwrap_or_default()));
        }
        Ok(control)
    }
}

/// Where a repository's episodes run.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Base commit (any revision).
    pub commit: String,
    /// A set-up command run once with network.
    pub setup: Option<String>,
    /// Wall-time limit of one command.
    pub command_timeout: Duration,
    /// Where snapshots and workspaces live (default: [`default_work_dir`]).
    pub work_dir: Option<PathBuf>,
    /// What commands run in: bubblewrap (default) or a container image.
    pub backend: Backend,
}

impl SandboxSpec {
    /// Prepare the repository's environment: the base snapshot at the commit, set up once,
    /// in its own folder under the work folder (shared safely with other runs; see
    /// [`trajforge_repo_env::workdir`]).
    pub fn prepare(&self, repo: &Path) -> Result<Environment, RunError> {
        use trajforge_repo_env::workdir::{self, WorkDirError};
        let work_dir = self.work_dir(repo);
        let mut options = EnvironmentOptions::new(&work_dir);
        options.sandbox.limits.timeout = self.timeout();
        options.sandbox.backend = self.backend.clone();
        let environment = workdir::prepare(
            &work_dir,
            repo,
            &self.commit,
            self.setup.as_deref(),
            &options,
        )
        .map_err(|e| match e {
            WorkDirError::Sandbox(source) => RunError::Sandbox { source, work_dir },
            source => RunError::WorkFolder {
                source: Box::new(source),
                work_dir,
            },
        })?;
        if let Some(out) = environment.setup_output()
            && out.exit_code != Some(0)
        {
            return Err(RunError::SetupFailed {
                exit_code: out.exit_code,
                output: out.output.trim_end().to_string(),
            });
        }
        Ok(environment)
    }

    /// Where snapshots and workspaces of `repo` live: `--work-dir`, else [`default_work_dir`];
    /// a container image's snapshots in a folder of their own (its set-up ran in that image).
    pub fn work_dir(&self, repo: &Path) -> PathBuf {
        let dir = self
            .work_dir
            .clone()
            .unwrap_or_else(|| default_work_dir(repo));
        match &self.backend {
            Backend::Bubblewrap => dir,
            Backend::Container { engine, image } => dir.join(format!(
                "{}-{:016x}",
                engine.program(),
                trajforge_hash::fnv1a64(image.as_bytes())
            )),
        }
    }

    /// A fresh workspace of `environment` as the agent's environment, with this spec's
    /// command timeout; sandbox failures carry the work folder for their hint.
    pub fn workspace(
        &self,
        environment: &Environment,
        repo: &Path,
    ) -> Result<trajforge_repo_env::RepoEnvironment, RunError> {
        SandboxEnvs::workspace(environment, self.timeout()).map_err(|e| match e {
            crate::envs::EnvError::Sandbox(source) => RunError::Sandbox {
                source,
                work_dir: self.work_dir(repo),
            },
            other => RunError::Environment(other),
        })
    }

    /// The command timeout, at least a second.
    pub fn timeout(&self) -> Duration {
        self.command_timeout.max(Duration::from_secs(1))
    }
}

/// Open (or create) the run folder's store.
pub fn open_run(dir: &Path) -> Result<Arc<Store>, RunError> {
    Store::open(dir).map(Arc::new).map_err(RunError::RunFolder)
}

/// Runs `start` on the run folder `out`; when it fails and `out` held no run before, what it
/// created is removed (the store, and the folder if that leaves it empty): a run that
/// failed to start leaves no empty run behind.
fn discard_failed_start<T>(
    out: &Path,
    start: impl FnOnce() -> Result<T, RunError>,
) -> Result<T, RunError> {
    let db = out.join(trajforge_store::DB_FILE);
    let (had_run, had_folder) = (db.exists(), out.exists());
    let result = start();
    if result.is_err() && !had_run {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = db.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        if !had_folder {
            let _ = std::fs::remove_dir(out);
        }
    }
    result
}

/// Open (or create) the run `basics` names: its shared store when given, else its folder's;
/// refused when it holds another kind of run than `generate`'s.
pub fn open_basics(basics: &RunBasics) -> Result<Arc<Store>, RunError> {
    let store = match &basics.store {
        Some(location) => open_location(location)?,
        None => open_run(&basics.out)?,
    };
    RunKind::Generate.check(&store, &basics.out.display().to_string())?;
    Ok(store)
}

/// Open (or create) the run at `location`: a run folder, or a run of a shared database.
pub fn open_location(location: &Location) -> Result<Arc<Store>, RunError> {
    Store::open_at(location)
        .map(Arc::new)
        .map_err(RunError::RunFolder)
}

/// The kinds of run a store holds; a run folder or a run name holds one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `generate` or `web generate`.
    Generate,
    /// `eval` or `web eval`.
    Eval,
    /// `tasks mine`.
    Mine,
    /// A run made by `import` alone.
    Import,
}

impl RunKind {
    /// The kind of run `store` holds; `None` for a new (empty) run.
    pub fn of(store: &Store) -> Result<Option<RunKind>, trajforge_store::StoreError> {
        let kind = store.meta(crate::eval::KIND_META)?;
        Ok(match kind.as_deref() {
            Some(crate::eval::KIND_EVAL) => Some(RunKind::Eval),
            Some("import") => Some(RunKind::Import),
            _ if crate::tasks::is_mining(store) => Some(RunKind::Mine),
            _ if store.meta("settings")?.is_some() => Some(RunKind::Generate),
            _ => None,
        })
    }

    /// Refuse a store that holds a run of another kind than `self` (`run` names it in the
    /// message). `import` may add to a generated run and `generate` to an imported one.
    pub fn check(self, store: &Store, run: &str) -> Result<(), RunError> {
        match RunKind::of(store)? {
            Some(found)
                if found != self
                    && !matches!(
                        (self, found),
                        (RunKind::Generate, RunKind::Import) | (RunKind::Import, RunKind::Generate)
                    ) =>
            {
                Err(RunError::OtherKind {
                    run: run.to_string(),
                    found,
                    wanted: self,
                })
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Generate => "generate",
            RunKind::Eval => "eval",
            RunKind::Mine => "tasks mine",
            RunKind::Import => "import",
        })
    }
}

/// Open the existing run at `location`; an error when there is none.
pub fn open_existing_at(location: &Location) -> Result<Store, RunError> {
    Store::open_existing_at(location)
        .map_err(RunError::OpenRun)?
        .ok_or_else(|| match location {
            Location::Folder(dir) => RunError::NotARunFolder(dir.clone()),
            Location::Postgres { .. } => RunError::NoSuchRun(location.to_string()),
        })
}

/// Open an existing run folder's store; an error when there is none.
pub fn open_existing_run(dir: &Path) -> Result<Store, RunError> {
    Store::open_existing(dir)
        .map_err(RunError::OpenRun)?
        .ok_or_else(|| RunError::NotARunFolder(dir.to_path_buf()))
}

/// The prices a run was started with (none when it stored none).
pub fn stored_pricing(store: &Store) -> Result<Pricing, RunError> {
    Ok(store
        .meta("pricing")?
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or_default())
}

/// The recall threshold a run was started with.
pub fn stored_threshold(store: &Store) -> Option<f64> {
    store
        .meta("settings")
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["threshold"].as_f64())
}

/// Store the settings of a new run, or check them against a resumed run's.
pub fn check_settings(store: &Store, settings: &RunSettings, dir: &Path) -> Result<(), RunError> {
    let requested = serde_json::to_string(settings).unwrap_or_default();
    match store.meta("settings")? {
        None => Ok(store.set_meta("settings", &requested)?),
        Some(text) => {
            let stored: RunSettings =
                serde_json::from_str(&text).map_err(|source| RunError::UnreadableSettings {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            let conflicts = stored.conflicts(settings);
            if conflicts.is_empty() {
                Ok(())
            } else {
                Err(RunError::SettingsConflict {
                    dir: dir.to_path_buf(),
                    conflicts,
                })
            }
        }
    }
}

/// The job of one sampled function: its key (`path:name@line`, stable across releases) and payload.
pub fn function_job(f: &Function) -> (String, Value) {
    (
        format!("{}@{}", f.id(), f.start_line),
        serde_json::to_value(f).unwrap_or_default(),
    )
}

/// What happens while a run is prepared, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub enum PrepareEvent {
    /// The repository's base snapshot is being made (and set up).
    PreparingRepository {
        /// The repository.
        repo: PathBuf,
        /// The base commit as given.
        commit: String,
    },
    /// The site is being crawled into the run folder.
    Crawling {
        /// The start URL.
        url: String,
        /// The page limit.
        max_pages: usize,
    },
    /// The crawl ended.
    Crawled {
        /// Pages recorded.
        pages: usize,
        /// The site folder.
        dir: PathBuf,
    },
}

/// What every run names, code or web: its folder, size, keep threshold, seed, user menu and
/// prompts, step limit and budget.
#[derive(Debug, Clone)]
pub struct RunBasics {
    /// The run folder (with a shared store: where local files of the run go, and its name in
    /// messages).
    pub out: PathBuf,
    /// A shared store holding the run instead of the folder's own (a Postgres run).
    pub store: Option<Location>,
    /// Jobs to run (functions or tasks).
    pub n: usize,
    /// Score needed to keep a pair (line recall, or the web agreement).
    pub threshold: f64,
    /// Seed of the sample and the draws.
    pub seed: u64,
    /// A user menu file.
    pub menu: Option<PathBuf>,
    /// A folder of prompt files.
    pub prompts: Option<PathBuf>,
    /// Model calls per rollout.
    pub max_steps: usize,
    /// Steps in a row with the same calls and results that end a rollout as stuck (0: never).
    pub max_repeats: usize,
    /// Budgets and prices.
    pub budget: Budget,
}

impl RunBasics {
    /// Check the threshold, `n` and the budget; load the menu.
    fn check(&self) -> Result<Menu, RunError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(RunError::Option(format!(
                "--threshold {}: must be between 0 and 1",
                self.threshold
            )));
        }
        self.budget.check()?;
        Ok(match &self.menu {
            Some(p) => Menu::load(p)?,
            None => Menu::builtin(),
        })
    }
}

/// Soft-Verified Generation on a repository, as asked for.
#[derive(Debug, Clone)]
pub struct CodeRunSpec {
    /// Folder, size, threshold, seed, menu, prompts, steps, budget.
    pub basics: RunBasics,
    /// The repository (top level of a git repository).
    pub repo: PathBuf,
    /// Attempts per function.
    pub attempts: u32,
    /// A user demonstration file.
    pub demos: Option<PathBuf>,
    /// Test command of the behavioural verdict.
    pub test_cmd: Option<String>,
    /// Sample test files too.
    pub include_tests: bool,
    /// Held-out tasks (JSON Lines) whose gold patches' functions are never sampled.
    pub exclude_tasks: Option<PathBuf>,
    /// The repository's environment.
    pub sandbox: SandboxSpec,
}

/// A code run whose inputs are loaded and checked, before anything is created.
#[derive(Debug)]
pub struct CodeRun {
    spec: CodeRunSpec,
    repo: PathBuf,
    menu: Menu,
    demos: Vec<Demo>,
    prompts: Prompts,
    excluded: Option<TouchedFunctions>,
}

impl CodeRunSpec {
    /// Check the options and load the menu, demonstrations and prompts; nothing is created.
    pub fn load(self) -> Result<CodeRun, RunError> {
        if self.basics.n == 0 {
            return Err(RunError::Option("-n must be at least 1".into()));
        }
        let menu = self.basics.check()?;
        let demos = match &self.demos {
            Some(p) => demos::load(p)?,
            None => demos::default_pool(),
        };
        let prompts = match &self.basics.prompts {
            Some(dir) => Prompts::load(dir)?,
            None => Prompts::default(),
        };
        let repo = check_repository(&self.repo)?;
        let excluded = match &self.exclude_tasks {
            Some(file) => Some(TouchedFunctions::from_tasks_file(&repo, file)?),
            None => None,
        };
        Ok(CodeRun {
            spec: self,
            repo,
            menu,
            demos,
            prompts,
            excluded,
        })
    }
}

impl CodeRun {
    /// The repository's canonical path.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Prepare the run: open the store, make the base snapshot, check the settings, sample
    /// the functions into jobs and reclaim the leases of dead processes.
    pub fn prepare(
        self,
        teacher: &BuiltTeacher,
        on_event: &mut dyn FnMut(PrepareEvent),
    ) -> Result<PreparedRun, RunError> {
        let out = self.spec.basics.out.clone();
        discard_failed_start(&out, move || {
            let store = open_basics(&self.spec.basics)?;
            on_event(PrepareEvent::PreparingRepository {
                repo: self.repo.clone(),
                commit: self.spec.sandbox.commit.clone(),
            });
            let environment = self.spec.sandbox.prepare(&self.repo)?;
            self.prepare_with(store, environment, teacher)
        })
    }

    /// [`CodeRun::prepare`] on a repository environment prepared already (benchmarks share one).
    pub fn prepare_in(
        self,
        environment: Environment,
        teacher: &BuiltTeacher,
    ) -> Result<PreparedRun, RunError> {
        let store = open_basics(&self.spec.basics)?;
        self.prepare_with(store, environment, teacher)
    }

    fn prepare_with(
        self,
        store: Arc<Store>,
        environment: Environment,
        teacher: &BuiltTeacher,
    ) -> Result<PreparedRun, RunError> {
        let spec = &self.spec;
        let settings = RunSettings {
            repo: self.repo.display().to_string(),
            commit: environment.commit().to_string(),
            menu: self.menu.fingerprint(),
            demos: demos::fingerprint(&self.demos),
            prompts: fingerprint(&self.prompts),
            threshold: spec.basics.threshold,
            attempts: spec.attempts,
            seed: spec.basics.seed,
            model: teacher.model.clone(),
            test_cmd: spec.test_cmd.clone(),
            max_steps: spec.basics.max_steps,
            include_tests: spec.include_tests,
            keep_different_final: false,
            excluded: self.excluded.as_ref().map(TouchedFunctions::fingerprint),
            sandbox: crate::settings::sandbox_setting(&spec.sandbox.backend),
        };
        check_settings(&store, &settings, &spec.basics.out)?;
        let pricing = spec.basics.budget.pricing();
        store_run_meta(&store, pricing, &teacher.url)?;
        crate::worker::store_code_run(
            &store,
            &self.menu,
            &self.demos,
            &self.prompts,
            &spec.sandbox,
            spec.basics.max_repeats,
            &teacher.settings,
        )?;

        // Sample from the base snapshot: the functions as they are at the base commit.
        let scan_options = ScanOptions {
            include_tests: spec.include_tests,
            ..ScanOptions::default()
        };
        let mut functions =
            trajforge_ingest::scan(environment.base_dir(), &scan_options)?.functions;
        let found = functions.len();
        if let Some(touched) = &self.excluded {
            functions.retain(|f| !touched.contains(f));
        }
        let excluded = found - functions.len();
        if functions.is_empty() {
            return Err(RunError::NoFunctions {
                repo: self.repo.clone(),
                commit: spec.sandbox.commit.clone(),
            });
        }
        let available = functions.len();
        trajforge_ingest::sample(&mut functions, spec.basics.n, spec.basics.seed);
        let jobs: Vec<(String, Value)> = functions.iter().map(function_job).collect();
        let control = spec.basics.budget.control(&store)?;
        let config = code_config(
            self.menu,
            self.demos,
            self.prompts,
            &settings,
            spec.basics.max_repeats,
        );
        let worker = code_worker(&store, config, environment, &spec.sandbox, teacher, control);
        PreparedRun::new(
            store,
            &jobs,
            pricing,
            spec.basics.threshold,
            Plan::Code {
                available,
                excluded,
            },
            Driver::Code(worker),
        )
    }
}

/// The settings of a code run's jobs, from its menu, demonstrations, prompts and settings.
pub(crate) fn code_config(
    menu: Menu,
    demos: Vec<Demo>,
    prompts: Prompts,
    settings: &RunSettings,
    max_repeats: usize,
) -> CodeConfig {
    CodeConfig {
        menu,
        demos,
        prompts,
        loop_config: LoopConfig {
            max_steps: settings.max_steps,
            max_context_tokens: None,
            max_repeats,
            ..LoopConfig::default()
        },
        threshold: settings.threshold,
        attempts: settings.attempts,
        seed: settings.seed,
        test_cmd: settings.test_cmd.clone(),
        selfcheck_tries: 3,
    }
}

/// This process's worker on a code run: episodes in workspaces of `environment`.
pub(crate) fn code_worker(
    store: &Arc<Store>,
    config: CodeConfig,
    environment: Environment,
    sandbox: &SandboxSpec,
    teacher: &BuiltTeacher,
    control: Arc<Control>,
) -> Arc<Worker> {
    let timeout = sandbox.timeout();
    let envs: Arc<dyn crate::envs::EnvFactory> =
        Arc::new(SandboxEnvs::new(environment, timeout, timeout * 4));
    Arc::new(Worker {
        store: Arc::clone(store),
        teacher: Arc::clone(&teacher.teacher),
        envs,
        config: Arc::new(config),
        control,
        owner: Owner::this_process().name().to_string(),
    })
}

/// The meta every run stores for `status` and `export`: prices and the teacher's URL.
pub(crate) fn store_run_meta(
    store: &Store,
    pricing: Pricing,
    teacher_url: &str,
) -> Result<(), RunError> {
    store.set_meta(
        "pricing",
        &serde_json::to_string(&pricing).unwrap_or_default(),
    )?;
    store.set_meta("teacher_url", teacher_url)?;
    Ok(())
}

/// Soft-Verified Generation on a website, as asked for.
#[derive(Debug, Clone)]
pub struct WebRunSpec {
    /// Folder, size, threshold, seed, menu, prompts, steps, budget.
    pub basics: RunBasics,
    /// A site folder written by `site crawl`, or an http(s) URL to crawl first.
    pub site: String,
    /// Start pages, in crawl order.
    pub start_pages: usize,
    /// Browser processes in the pool.
    pub browsers: usize,
    /// Browse the live site instead of the recording.
    pub live: bool,
    /// Most pages when crawling a URL.
    pub max_pages: usize,
    /// Keep pairs whose rollouts end on different pages when they reach the threshold.
    pub keep_different_final: bool,
    /// Held-out web tasks (`web tasks`' file): their start/target pairs are never kept.
    pub exclude_tasks: Option<PathBuf>,
}

/// A web run whose inputs are loaded and checked, before anything is created.
#[derive(Debug)]
pub struct WebRun {
    spec: WebRunSpec,
    menu: Menu,
    prompts: WebPrompts,
    held_out: Option<HeldOutPages>,
}

impl WebRunSpec {
    /// Check the options and the site argument, and load the menu and prompts; nothing is
    /// created and no teacher is contacted.
    pub fn load(self) -> Result<WebRun, RunError> {
        if self.basics.n == 0 || self.start_pages == 0 {
            return Err(RunError::Option(
                "-n and --start-pages must be at least 1".into(),
            ));
        }
        let menu = self.basics.check()?;
        if menu.tasks.is_empty() {
            return Err(RunError::NoTasks);
        }
        let prompts = match &self.basics.prompts {
            Some(dir) => WebPrompts::load(dir)?,
            None => WebPrompts::default(),
        };
        check_site_arg(&self.site)?;
        let held_out = match &self.exclude_tasks {
            Some(file) => Some(HeldOutPages::from_tasks_file(file)?),
            None => None,
        };
        Ok(WebRun {
            spec: self,
            menu,
            prompts,
            held_out,
        })
    }
}

/// `--site` must be a folder written by `site crawl` or an http(s) URL.
fn check_site_arg(site: &str) -> Result<(), RunError> {
    let given = Path::new(site);
    if given.is_dir() {
        if !given.join("site.json").is_file() {
            return Err(RunError::NotASiteFolder(given.to_path_buf()));
        }
        return Ok(());
    }
    if !(site.starts_with("http://") || site.starts_with("https://")) {
        return Err(RunError::NotASite(site.to_string()));
    }
    Ok(())
}

impl WebRun {
    /// Prepare the run: open the store, crawl the site when given a URL (once), read the
    /// recording, check the settings, plan the tasks and reclaim the leases of dead processes.
    pub async fn prepare(
        self,
        teacher: &BuiltTeacher,
        on_event: &mut (dyn FnMut(PrepareEvent) + Send),
    ) -> Result<PreparedRun, RunError> {
        let spec = &self.spec;
        let store = open_basics(&spec.basics)?;
        let pool = Arc::new(BrowserPool::new(
            LaunchConfig::default(),
            spec.browsers.max(1),
        ));
        let site_dir = site_folder(spec, &pool, on_event).await?;
        // The recording is read once: its pages give the start pages and the fingerprint,
        // and (replayed) it answers the episodes' requests.
        let recording = Recording::open(&site_dir).map_err(RunError::Site)?;
        let meta = recording.meta().clone();
        let starts: Vec<StartPage> = recording
            .pages()
            .iter()
            .take(spec.start_pages)
            .map(|p| StartPage {
                url: p.url.clone(),
                title: p.title.clone(),
            })
            .collect();
        if starts.is_empty() {
            return Err(RunError::NoPages(site_dir));
        }
        let settings = RunSettings {
            repo: meta.origin.clone(),
            commit: site_fingerprint(&recording, spec.live),
            menu: self.menu.fingerprint(),
            demos: String::new(),
            prompts: fingerprint(&self.prompts),
            threshold: spec.basics.threshold,
            attempts: 1,
            seed: spec.basics.seed,
            model: teacher.model.clone(),
            test_cmd: None,
            max_steps: spec.basics.max_steps,
            include_tests: false,
            keep_different_final: spec.keep_different_final,
            excluded: self.held_out.as_ref().map(HeldOutPages::fingerprint),
            sandbox: None,
        };
        let mode = if spec.live {
            drop(recording);
            NetMode::Live {
                record: Some(Arc::new(
                    Recorder::create(&site_dir).map_err(RunError::Site)?,
                )),
            }
        } else {
            NetMode::Replay(Arc::new(recording))
        };
        // A run created now draws its tasks by site path; one created before keeps the order
        // its stored jobs were drawn in.
        let created = store.meta("settings")?.is_none();
        check_settings(&store, &settings, &spec.basics.out)?;
        if created {
            store.set_meta(web::TaskDraw::META_KEY, web::TaskDraw::SITE_PATHS)?;
        }
        let order = web::TaskDraw::from_meta(store.meta(web::TaskDraw::META_KEY)?.as_deref());
        let pricing = spec.basics.budget.pricing();
        store_run_meta(&store, pricing, &teacher.url)?;
        store.set_meta("site", &site_dir.display().to_string())?;

        let jobs = web::plan(
            &self.menu.tasks,
            &starts,
            spec.basics.n,
            spec.basics.seed,
            order,
        );
        let control = spec.basics.budget.control(&store)?;
        let loop_config = LoopConfig {
            max_steps: spec.basics.max_steps,
            system_prompt: web::SYSTEM_PROMPT.into(),
            max_context_tokens: None,
            max_repeats: spec.basics.max_repeats,
            ..LoopConfig::default()
        };
        let intents = self.menu.tasks.len();
        let worker: Arc<WebWorker> = Arc::new(Worker {
            store: Arc::clone(&store),
            teacher: Arc::clone(&teacher.teacher),
            envs: Arc::new(BrowserEnvs::new(Arc::clone(&pool), mode)),
            config: Arc::new(WebConfig {
                tasks: self.menu.tasks,
                prompts: self.prompts,
                loop_config,
                threshold: spec.basics.threshold,
                keep_different_final: spec.keep_different_final,
                held_out: self.held_out.unwrap_or_default(),
            }),
            control,
            owner: Owner::this_process().name().to_string(),
        });
        PreparedRun::new(
            store,
            &jobs,
            pricing,
            spec.basics.threshold,
            Plan::Web {
                intents,
                start_pages: starts.len(),
                asked: spec.basics.n,
            },
            Driver::Web(worker, pool),
        )
    }
}

/// The site folder to use: `--site` itself when it is one, else RUN_DIR/site, crawled from
/// the URL on first use (a later resume reuses it).
async fn site_folder(
    spec: &WebRunSpec,
    pool: &BrowserPool,
    on_event: &mut (dyn FnMut(PrepareEvent) + Send),
) -> Result<PathBuf, RunError> {
    let given = Path::new(&spec.site);
    if given.is_dir() {
        return Ok(given.to_path_buf());
    }
    let dir = spec.basics.out.join("site");
    if dir.join("site.json").is_file() {
        return Ok(dir);
    }
    on_event(PrepareEvent::Crawling {
        url: spec.site.clone(),
        max_pages: spec.max_pages,
    });
    let summary = trajforge_browser::crawl(
        pool,
        &CrawlConfig {
            start_url: spec.site.clone(),
            out: dir.clone(),
            max_pages: spec.max_pages,
            time_limit: Some(Duration::from_secs(600)),
            max_snapshot_chars: EnvConfig::default().max_snapshot_chars,
            static_site: false,
        },
    )
    .await
    .map_err(RunError::Crawl)?;
    on_event(PrepareEvent::Crawled {
        pages: summary.pages,
        dir: dir.clone(),
    });
    Ok(dir)
}

/// What fixes the site's content for the settings check: the recorded pages (and whether
/// episodes browse the live site, whose content may change).
pub(crate) fn site_fingerprint(recording: &Recording, live: bool) -> String {
    let pages: Vec<(&str, &str)> = recording
        .pages()
        .iter()
        .map(|p| (p.url.as_str(), p.title.as_str()))
        .collect();
    format!("{}{}", if live { "live:" } else { "" }, fingerprint(&pages))
}

/// What a prepared run will work through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Sampled functions of a repository.
    Code {
        /// Functions the repository has at the base commit that may be sampled.
        available: usize,
        /// Functions left out because held-out tasks touch them (`--exclude-tasks`).
        excluded: usize,
    },
    /// Navigation tasks on a site.
    Web {
        /// Intents of the menu.
        intents: usize,
        /// Start pages used.
        start_pages: usize,
        /// Tasks asked for (`-n`).
        asked: usize,
    },
    /// Held-out tasks, each attempted once per seed.
    Eval {
        /// Tasks in the task file.
        tasks: usize,
        /// Attempts per task.
        seeds: u32,
    },
}

pub(crate) enum Driver {
    Code(Arc<Worker>),
    Web(Arc<WebWorker>, Arc<BrowserPool>),
    Eval(Arc<crate::eval::EvalWorker>),
    WebEval(Arc<crate::webeval::WebEvalWorker>, Arc<BrowserPool>),
}

/// A run ready to be driven: its store holds the settings and the jobs, and leases of dead
/// processes are back in the queue.
pub struct PreparedRun {
    /// The run's store.
    pub store: Arc<Store>,
    /// Stop flag and budgets (stop it to end the run gracefully).
    pub control: Arc<Control>,
    /// Prices for the status.
    pub pricing: Pricing,
    /// The keep threshold.
    pub threshold: f64,
    /// Jobs in the run (this session's `-n`).
    pub jobs: usize,
    /// Jobs this session added.
    pub added: usize,
    /// Jobs taken back from dead processes.
    pub reclaimed: usize,
    /// Jobs already done before this session.
    pub already_done: u64,
    /// What the jobs are.
    pub plan: Plan,
    driver: Driver,
}

impl PreparedRun {
    pub(crate) fn new(
        store: Arc<Store>,
        jobs: &[(String, Value)],
        pricing: Pricing,
        threshold: f64,
        plan: Plan,
        driver: Driver,
    ) -> Result<PreparedRun, RunError> {
        let added = store.add_jobs(jobs)?;
        let reclaimed = store.reclaim(Owner::is_dead)?;
        let already_done = store.counts()?.done;
        let control = match &driver {
            Driver::Code(w) => Arc::clone(&w.control),
            Driver::Web(w, _) => Arc::clone(&w.control),
            Driver::Eval(w) => Arc::clone(&w.control),
            Driver::WebEval(w, _) => Arc::clone(&w.control),
        };
        Ok(PreparedRun {
            store,
            control,
            pricing,
            threshold,
            jobs: jobs.len(),
            added,
            reclaimed,
            already_done,
            plan,
            driver,
        })
    }

    /// What the progress line shows for this run.
    pub fn progress_kind(&self) -> ProgressKind {
        match self.plan {
            Plan::Code { .. } => ProgressKind::CODE,
            Plan::Web { .. } => ProgressKind::WEB,
            Plan::Eval { .. } => ProgressKind::EVAL,
        }
    }

    /// Run the jobs, `concurrency` at a time, until none is left or the run is stopped.
    pub async fn drive(&self, concurrency: usize) -> Result<(), RunError> {
        match &self.driver {
            Driver::Code(worker) => crate::code::run(Arc::clone(worker), concurrency).await,
            Driver::Web(worker, pool) => {
                let result = web::run(Arc::clone(worker), concurrency).await;
                pool.shutdown().await;
                result
            }
            Driver::Eval(worker) => crate::eval::run(Arc::clone(worker), concurrency).await,
            Driver::WebEval(worker, pool) => {
                let result = crate::webeval::run(Arc::clone(worker), concurrency).await;
                pool.shutdown().await;
                result
            }
        }
    }

    /// Where the run stands now.
    pub fn status(&self) -> Result<Status, RunError> {
        Ok(status::status(&self.store, self.pricing)?)
    }
}

/// An async runtime for a run: sandbox commands run on blocking threads, capped so that many
/// episodes share a few threads.
pub fn runtime(concurrency: usize) -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads((concurrency * 2).clamp(8, 64))
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_holds_one_kind_and_generate_and_import_may_share_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A run folder `name` holding `meta`, and its kind.
        let run = |name: &str, meta: &[(&str, &str)]| {
            let store = Store::open(&dir.path().join(name)).expect("store");
            for (k, v) in meta {
                store.set_meta(k, v).expect("meta");
            }
            (RunKind::of(&store).expect("kind"), store)
        };
        let (new, empty) = run("new", &[]);
        assert_eq!(new, None);
        for kind in [RunKind::Generate, RunKind::Eval, RunKind::Mine] {
            kind.check(&empty, "new").expect("a new run takes any kind");
        }
        let (kind, mining) = run("mine", &[("mine_settings", "{}")]);
        assert_eq!(kind, Some(RunKind::Mine));
        let err = RunKind::Eval.check(&mining, "R").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "R holds a run of `tasks mine`; `eval` cannot add to it"
        );
        assert!(RunKind::Generate.check(&mining, "R").is_err());
        // An evaluation stores settings too: its kind decides.
        let (kind, evaluation) = run("eval", &[("settings", "{}"), ("kind", "eval")]);
        assert_eq!(kind, Some(RunKind::Eval));
        assert!(RunKind::Mine.check(&evaluation, "R").is_err());
        assert!(RunKind::Generate.check(&evaluation, "R").is_err());
        let (kind, imported) = run("import", &[("kind", "import")]);
        assert_eq!(kind, Some(RunKind::Import));
        RunKind::Generate
            .check(&imported, "R")
            .expect("generate adds to an import");
        assert!(RunKind::Eval.check(&imported, "R").is_err());
        let (kind, generated) = run("generate", &[("settings", "{}")]);
        assert_eq!(kind, Some(RunKind::Generate));
        RunKind::Import
            .check(&generated, "R")
            .expect("import adds to a generated run");
        assert!(RunKind::Mine.check(&generated, "R").is_err());
    }
}
