//! Workers that join a run held in a shared (PostgreSQL) store from any machine: the run's
//! inputs (menu, demonstrations, prompts, sandbox settings including the container image)
//! live in the store, and a worker refuses to join when it would produce other data than the
//! run's creator (another base commit checked out, another trajforge build).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trajforge_menu::Menu;
use trajforge_sandbox::Backend;
use trajforge_store::{Location, Store};

use crate::demos::Demo;
use crate::envs::check_repository;
use crate::error::RunError;
use crate::prepare::{
    Driver, PreparedRun, RunKind, SandboxSpec, code_config, code_worker, open_existing_at,
    stored_pricing,
};
use crate::prompts::Prompts;
use crate::runner::Schedule;
use crate::settings::RunSettings;
use crate::teacher::{BuiltTeacher, TeacherSettings};

/// What produces a run's data besides its settings: this build of trajforge. Workers of
/// another build are refused, since their episodes could differ.
pub const PRODUCER: &str = concat!("trajforge ", env!("CARGO_PKG_VERSION"));

/// The meta key of [`CodeRunInputs`].
const META_KEY: &str = "code_run";

/// Everything a worker needs to run a code run's jobs, stored by the run's creator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRunInputs {
    /// The build that created the run ([`PRODUCER`]).
    pub producer: String,
    /// The bug-type menu.
    pub menu: Menu,
    /// The demonstration issues.
    pub demos: Vec<Demo>,
    /// The stage prompts.
    pub prompts: Prompts,
    /// The set-up command of the repository's environment.
    pub setup: Option<String>,
    /// Wall-time limit of one command, in milliseconds.
    pub command_timeout_ms: u64,
    /// Same-step repeats that end a rollout as stuck (runs stored before it: the default).
    #[serde(default = "default_max_repeats")]
    pub max_repeats: usize,
    /// The teacher's sampling and tool-call mode (runs stored before it: the worker's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherSettings>,
    /// What commands run in: bubblewrap or a container image (runs stored before it:
    /// bubblewrap, the only backend then). The image holds the toolchain the episodes and
    /// tests see, so it is the run's, never the worker's choice.
    #[serde(default)]
    pub backend: Backend,
}

fn default_max_repeats() -> usize {
    trajforge_agent::DEFAULT_MAX_REPEATS
}

/// Store a code run's inputs when it is created (a resumed run keeps the first ones).
pub(crate) fn store_code_run(
    store: &Store,
    menu: &Menu,
    demos: &[Demo],
    prompts: &Prompts,
    sandbox: &SandboxSpec,
    max_repeats: usize,
    teacher: &TeacherSettings,
) -> Result<(), RunError> {
    if store.meta(META_KEY)?.is_some() {
        return Ok(());
    }
    let inputs = CodeRunInputs {
        producer: PRODUCER.into(),
        menu: menu.clone(),
        demos: demos.to_vec(),
        prompts: prompts.clone(),
        setup: sandbox.setup.clone(),
        command_timeout_ms: sandbox.command_timeout.as_millis() as u64,
        max_repeats,
        teacher: Some(teacher.clone()),
        backend: sandbox.backend.clone(),
    };
    store.set_meta(
        META_KEY,
        &serde_json::to_string(&inputs).unwrap_or_default(),
    )?;
    Ok(())
}

/// How a worker joins a run.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The run.
    pub store: Location,
    /// The local checkout of the run's repository, at the run's commit.
    pub repo: PathBuf,
    /// Lease time, limits and idle exit.
    pub schedule: Schedule,
    /// Where snapshots and workspaces live (default: next to the repository).
    pub work_dir: Option<PathBuf>,
}

/// A run a worker may join, checked: its settings and inputs read, the checkout at its commit,
/// the same build.
pub struct WorkerRun {
    spec: WorkerSpec,
    repo: PathBuf,
    store: Arc<Store>,
    settings: RunSettings,
    inputs: CodeRunInputs,
}

impl WorkerSpec {
    /// Open the run and check that this worker would produce the run's data.
    pub fn open(self) -> Result<WorkerRun, RunError> {
        let store = open_existing_at(&self.store)?;
        let refused = |m: String| RunError::WorkerRefused(format!("{}: {m}", self.store));
        if let Some(kind @ (RunKind::Eval | RunKind::Mine)) = RunKind::of(&store)? {
            return Err(refused(format!(
                "a `{kind}` run; workers serve `generate` runs: run the same `{kind}` command again to continue it"
            )));
        }
        let settings: RunSettings = store
            .meta("settings")?
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| refused("the run has no readable settings".into()))?;
        let inputs: CodeRunInputs = store
            .meta(META_KEY)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| {
                refused(
                    "not a code run created by `generate` with a shared store (no stored inputs)"
                        .into(),
                )
            })?;
        if inputs.producer != PRODUCER {
            return Err(refused(format!(
                "the run was created by {}, this is {PRODUCER}: its episodes could differ; use the same build",
                inputs.producer
            )));
        }
        let repo = check_repository(&self.repo)?;
        let head = git_head(&repo).unwrap_or_default();
        if head != settings.commit {
            return Err(refused(format!(
                "{} is at {}, the run's commit is {}; check out the run's commit first (git checkout {})",
                repo.display(),
                if head.is_empty() { "no commit" } else { &head },
                settings.commit,
                settings.commit
            )));
        }
        Ok(WorkerRun {
            spec: self,
            repo,
            store: Arc::new(store),
            settings,
            inputs,
        })
    }
}

/// The commit `repo` has checked out.
fn git_head(repo: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl WorkerRun {
    /// The teacher model the run was made with (a worker's default).
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// The teacher's sampling and tool-call mode the run was created with (a worker uses
    /// them: they decide the data); `None` for runs stored before they were.
    pub fn teacher_settings(&self) -> Option<&TeacherSettings> {
        self.inputs.teacher.as_ref()
    }

    /// What the run's commands run in (the worker's too).
    pub fn backend(&self) -> &Backend {
        &self.inputs.backend
    }

    /// The teacher URL the run was created with.
    pub fn teacher_url(&self) -> Result<Option<String>, RunError> {
        Ok(self.store.meta("teacher_url")?)
    }

    /// Prepare the repository's environment at the run's commit and this worker's job loop.
    /// A teacher serving another model is refused: its episodes would differ.
    pub fn prepare(self, teacher: &BuiltTeacher) -> Result<PreparedRun, RunError> {
        if teacher.model != self.settings.model {
            return Err(RunError::WorkerRefused(format!(
                "{}: the run's teacher model is {}, this worker's is {}",
                self.spec.store, self.settings.model, teacher.model
            )));
        }
        if let Some(stored) = &self.inputs.teacher
            && *stored != teacher.settings
        {
            return Err(RunError::WorkerRefused(format!(
                "{}: the run's teacher sampling and tool-call mode are {stored:?}, this worker's are {:?}",
                self.spec.store, teacher.settings
            )));
        }
        let sandbox = SandboxSpec {
            commit: self.settings.commit.clone(),
            setup: self.inputs.setup.clone(),
            command_timeout: Duration::from_millis(self.inputs.command_timeout_ms),
            work_dir: self.spec.work_dir.clone(),
            backend: self.inputs.backend.clone(),
        };
        let environment = sandbox.prepare(&self.repo)?;
        let pricing = stored_pricing(&self.store)?;
        let mut schedule = self.spec.schedule.clone();
        schedule.wait_for_others = true;
        let budget = crate::prepare::Budget::default();
        let control = budget.control_with(&self.store, schedule)?;
        let config = code_config(
            self.inputs.menu,
            self.inputs.demos,
            self.inputs.prompts,
            &self.settings,
            self.inputs.max_repeats,
        );
        let worker = code_worker(&self.store, config, environment, &sandbox, teacher, control);
        let mut prepared = PreparedRun::new(
            Arc::clone(&self.store),
            &[],
            pricing,
            self.settings.threshold,
            crate::prepare::Plan::Code {
                available: 0,
                excluded: 0,
            },
            Driver::Code(worker),
        )?;
        let counts = self.store.counts()?;
        prepared.jobs = (counts.pending + counts.running + counts.done) as usize;
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CodeRunInputs {
        CodeRunInputs {
            producer: PRODUCER.into(),
            menu: Menu::builtin(),
            demos: Vec::new(),
            prompts: Prompts::default(),
            setup: None,
            command_timeout_ms: 1000,
            max_repeats: 9,
            teacher: Some(TeacherSettings::default()),
            backend: Backend::Container {
                engine: trajforge_sandbox::Engine::Podman,
                image: "img".into(),
            },
        }
    }

    #[test]
    fn a_run_s_max_repeats_and_teacher_settings_are_stored_and_old_runs_load_the_defaults() {
        let stored = serde_json::to_value(inputs()).expect("json");
        let back: CodeRunInputs = serde_json::from_value(stored.clone()).expect("read");
        assert_eq!(back.max_repeats, 9);
        assert_eq!(back.teacher, Some(TeacherSettings::default()));
        assert_eq!(back.backend, inputs().backend);
        // Stored by a build before these were: the default repeats, the worker's own teacher,
        // bubblewrap.
        let mut old = stored;
        let fields = old.as_object_mut().expect("object");
        fields.remove("max_repeats");
        fields.remove("teacher");
        fields.remove("backend");
        let back: CodeRunInputs = serde_json::from_value(old).expect("old run");
        assert_eq!(back.max_repeats, trajforge_agent::DEFAULT_MAX_REPEATS);
        assert_eq!(back.teacher, None);
        assert_eq!(back.backend, Backend::Bubblewrap);
    }
}
