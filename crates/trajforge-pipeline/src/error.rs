//! The error of preparing and driving a run: every way a run can fail, typed, with its source.

use std::path::PathBuf;

use trajforge_browser::BrowserError;
use trajforge_ingest::IngestError;
use trajforge_menu::MenuError;
use trajforge_sandbox::SandboxError;
use trajforge_store::StoreError;

use crate::demos::DemoError;
use crate::envs::RepoError;
use crate::prompts::PromptError;
use crate::teacher::TeacherSetupError;

/// Why a run could not be prepared or driven.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An option is out of range or contradicts another.
    #[error("{0}")]
    Option(String),
    /// The menu file is malformed.
    #[error(transparent)]
    Menu(#[from] MenuError),
    /// The demonstration file is malformed.
    #[error(transparent)]
    Demos(#[from] DemoError),
    /// A prompt file is malformed.
    #[error(transparent)]
    Prompts(#[from] PromptError),
    /// The repository is not usable.
    #[error(transparent)]
    Repository(#[from] RepoError),
    /// The repository could not be read.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The teacher could not be built or reached.
    #[error(transparent)]
    Teacher(#[from] TeacherSetupError),
    /// The sandbox failed while preparing the repository's environment.
    #[error("{source}")]
    Sandbox {
        /// What failed.
        source: SandboxError,
        /// Where snapshots and workspaces live.
        work_dir: PathBuf,
    },
    /// The repository's work folder could not be locked, read or written.
    #[error("{source}")]
    WorkFolder {
        /// What failed.
        source: Box<trajforge_repo_env::workdir::WorkDirError>,
        /// Where snapshots and workspaces live.
        work_dir: PathBuf,
    },
    /// A workspace could not be made (other than by the sandbox itself).
    #[error(transparent)]
    Environment(crate::envs::EnvError),
    /// The set-up command failed.
    #[error("the set-up command failed (exit {exit_code:?}):\n{output}")]
    SetupFailed {
        /// Its exit code.
        exit_code: Option<i32>,
        /// What it printed.
        output: String,
    },
    /// The run folder could not be opened or created.
    #[error(transparent)]
    RunFolder(StoreError),
    /// An existing run folder's store could not be opened.
    #[error(transparent)]
    OpenRun(StoreError),
    /// The shared store holds no run of this name.
    #[error("{0}: no such run")]
    NoSuchRun(String),
    /// The run folder or run name holds another kind of run than the command makes.
    #[error("{run} holds a run of `{found}`; `{wanted}` cannot add to it")]
    OtherKind {
        /// The run as named in messages.
        run: String,
        /// The kind it holds.
        found: crate::prepare::RunKind,
        /// The kind the command makes.
        wanted: crate::prepare::RunKind,
    },
    /// A worker cannot join the run: it would produce other data.
    #[error("{0}")]
    WorkerRefused(String),
    /// The folder holds no run.
    #[error("{0}: not a run folder (no trajforge.db)")]
    NotARunFolder(PathBuf),
    /// The store failed while the run was going.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored settings cannot be read.
    #[error("{dir}: unreadable run settings: {source}")]
    UnreadableSettings {
        /// The run folder.
        dir: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// Resuming would mix data made with other settings.
    #[error("{} holds a run made with other settings, so resuming would mix data of different meaning:\n  {}", dir.display(), conflicts.join("\n  "))]
    SettingsConflict {
        /// The run folder.
        dir: PathBuf,
        /// Each difference as "name: stored → requested".
        conflicts: Vec<String>,
    },
    /// The held-out tasks of `--exclude-tasks` could not be read.
    #[error(transparent)]
    ExcludeTasks(#[from] crate::decontaminate::ExcludeError),
    /// The repository has no function to sample.
    #[error("{}: no functions found at {commit}", repo.display())]
    NoFunctions {
        /// The repository.
        repo: PathBuf,
        /// The base commit as given.
        commit: String,
    },
    /// The menu has no navigation task.
    #[error("the menu has no navigation tasks")]
    NoTasks,
    /// The budget was spent by earlier sessions of the run.
    #[error("the budget is already spent: {0}")]
    BudgetSpent(String),
    /// `--site` names a folder that `site crawl` did not write.
    #[error("{}: not a site folder (no site.json)", .0.display())]
    NotASiteFolder(PathBuf),
    /// `--site` is neither a folder nor an http(s) URL.
    #[error("--site {0}: neither a site folder nor an http(s) URL")]
    NotASite(String),
    /// The site folder cannot be read.
    #[error(transparent)]
    Site(BrowserError),
    /// The site folder has no page.
    #[error("{}: the site folder has no pages", .0.display())]
    NoPages(PathBuf),
    /// Crawling the site failed.
    #[error(transparent)]
    Crawl(BrowserError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A worker task panicked (a bug): the run stopped, and stays resumable.
    #[error("a worker panicked: {message}")]
    WorkerPanicked {
        /// The panic's message.
        message: String,
    },
}
