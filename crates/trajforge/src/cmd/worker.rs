//! `trajforge worker`: work on a run held in a shared (PostgreSQL) store, beside any number of
//! other workers on any machines.

use std::path::PathBuf;
use std::time::Duration;

use trajforge_pipeline::prepare;
use trajforge_pipeline::runner::Schedule;
use trajforge_pipeline::worker::WorkerSpec;
use trajforge_sandbox::Backend;

use crate::args::{StoreArgs, TeacherArgs};
use crate::error::CliError;

/// Options of `trajforge worker`.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("teacher", |a| a.required(false)),
    after_help = "The run's settings, menu, demonstrations, prompts, --max-repeats and the teacher's sampling and \
tool-call mode come from the database (a worker's own sampling options are not used). A worker refuses \
to start when its checkout is not at the run's commit, or when it is another trajforge build or teacher model than \
the run's (its data would differ). Commands run where the run's creator chose (`generate --sandbox podman --image \
IMAGE`): the image must be present on the worker's machine under the same name. Each job is claimed under a lease renewed every quarter of --lease; a stage is \
committed only while the lease holds, so a worker that was paused or cut off past its lease commits nothing and \
its job is finished by another. SIGTERM or Ctrl-C: episodes in flight finish or stop at a stage boundary, \
the rest stays queued."
)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A local checkout of the run's repository, at the run's commit.
    #[arg(long)]
    pub repo: PathBuf,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// Jobs in flight at once in this worker.
    #[arg(long, default_value_t = 4, value_name = "K")]
    pub concurrency: usize,
    /// Seconds a claimed job stays this worker's without a heartbeat; a dead worker's jobs
    /// are taken over by others after this long.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub lease: u64,
    /// Claim at most this many jobs, then exit.
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<u64>,
    /// Exit after this many seconds without a job to claim [default: wait while other
    /// workers hold jobs, exit when the run is done].
    #[arg(long, value_name = "SECS")]
    pub idle_exit: Option<u64>,
    /// Where snapshots and workspaces live [default: next to the repository].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// Run `trajforge worker`.
pub fn run(args: Args) -> Result<(), CliError> {
    let location = args.store.required(None)?;
    if !matches!(location, trajforge_store::Location::Postgres { .. }) {
        return Err(CliError::input(
            "a worker joins a run in a shared database: pass --store postgres://... --run NAME",
        ));
    }
    let run = WorkerSpec {
        store: location.clone(),
        repo: args.repo.clone(),
        schedule: Schedule {
            lease: Duration::from_secs(args.lease.max(1)),
            max_jobs: args.max_jobs,
            idle_exit: args.idle_exit.map(Duration::from_secs),
            wait_for_others: true,
        },
        work_dir: args.work_dir.clone(),
    }
    .open()?;
    let mut spec = args.teacher.spec();
    if spec.url.is_empty() {
        spec.url = run.teacher_url()?.unwrap_or_default();
    }
    if spec.model.is_none() {
        spec.model = Some(run.model().to_string());
    }
    // Sampling and tool-call mode decide the data: always the run's.
    if let Some(settings) = run.teacher_settings() {
        spec.sampling = settings.sampling.clone();
        spec.tool_mode = settings.tool_mode;
    }
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = super::teacher(&spec, &runtime, None)?;
    stderr_line!(
        "preparing the repository environment at the run's commit{} ...",
        match run.backend() {
            Backend::Bubblewrap => String::new(),
            Backend::Container { engine, image } =>
                format!(" in {} image {image}", engine.program()),
        }
    );
    let prepared = run.prepare(&teacher)?;
    stderr_line!(
        "worker joined {location}: {} jobs, {} done",
        prepared.jobs,
        prepared.already_done
    );
    super::drive(
        &runtime,
        &prepared,
        args.concurrency,
        &PathBuf::from(location.to_string()),
        "",
    )
}
