//! Argument groups shared by several commands, declared once: the teacher, budgets and
//! prices, and the repository's sandbox. Each maps to its library type.

use std::path::PathBuf;
use std::time::Duration;

use trajforge_pipeline::prepare::{Budget, RunBasics, SandboxSpec};
use trajforge_pipeline::teacher::TeacherSpec;
use trajforge_sandbox::{Backend, Engine};
use trajforge_store::Location;
use trajforge_teacher::{Sampling, ToolMode};

/// How to reach the teacher model; shared by every command that runs one.
#[derive(Debug, clap::Args)]
pub struct TeacherArgs {
    /// Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1), several separated by
    /// commas (servers of the same model: each episode stays on one, new episodes go to the least
    /// busy, a failing server is left out and retried later), or `local[:PATH.gguf]` for the
    /// embedded model running in-process (default: the model scripts/install-model.sh installs).
    // An `Option` only so that `eval compare`, a subcommand of a command that flattens these
    // options, can leave it out; clap still requires it everywhere else.
    #[arg(long, value_name = "URL", required = true)]
    pub teacher: Option<String>,
    /// Model name the server serves (not needed with `--teacher local`).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// How tool calls travel: native `tool_calls`, or Qwen/Hermes `<tool_call>` text for servers without a tool parser.
    #[arg(long, value_enum, default_value_t = Mode::Native)]
    pub tool_mode: Mode,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Most tokens generated per model call (the request's `max_tokens`).
    #[arg(long = "max-completion-tokens", value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Sampling seed sent to the server, for servers that honour it.
    #[arg(long, value_name = "N")]
    pub sampling_seed: Option<u64>,
    /// Teacher requests in flight at most, per server.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_requests: usize,
    /// Timeout of one request to the teacher, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub request_timeout: u64,
    /// Retries of a failed request (429, 5xx, timeouts, dropped connections).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// First wait before a retry, in seconds; it doubles (with jitter) up to 60 s.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub backoff: f64,
}

/// Tool-call transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// OpenAI `tools` / `tool_calls`.
    Native,
    /// `<tool_call>{json}</tool_call>` text.
    Hermes,
}

impl TeacherArgs {
    /// The library's teacher specification.
    pub fn spec(&self) -> TeacherSpec {
        TeacherSpec {
            url: self.teacher.clone().unwrap_or_default(),
            model: self.model.clone(),
            tool_mode: match self.tool_mode {
                Mode::Native => ToolMode::Native,
                Mode::Hermes => ToolMode::Hermes,
            },
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_tokens,
                seed: self.sampling_seed,
                ..Sampling::default()
            },
            max_requests: self.max_requests,
            request_timeout: Duration::from_secs(self.request_timeout),
            retries: self.retries,
            backoff: self.backoff,
        }
    }
}

/// Where a run is stored, shared by every command that reads or writes a run: its folder's
/// own SQLite file (the default), or a PostgreSQL database shared by workers on many machines.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// A PostgreSQL database holding runs, e.g. postgres://USER@HOST/DB (also $TRAJFORGE_STORE),
    /// shared by `trajforge worker` processes on any number of machines [default: the run
    /// folder's own SQLite file].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The run's name in the --store database (several runs share one database).
    #[arg(long = "run", value_name = "NAME")]
    pub run_name: Option<String>,
}

impl StoreArgs {
    /// The run's location: the --store database (or $TRAJFORGE_STORE) with --run, else the
    /// run folder `folder`; None when neither is given.
    pub fn location(
        &self,
        folder: Option<&std::path::Path>,
    ) -> Result<Option<Location>, crate::error::CliError> {
        // $TRAJFORGE_STORE stands for --store only where no run folder is named.
        let store = self.store.clone().or_else(|| {
            folder
                .is_none()
                .then(|| std::env::var("TRAJFORGE_STORE").ok())
                .flatten()
                .filter(|s| !s.is_empty())
        });
        match (store, folder) {
            (Some(url), _) => Ok(Some(Location::parse(&url, self.run_name.as_deref())?)),
            (None, Some(dir)) => {
                if self.run_name.is_some() {
                    return Err(crate::error::CliError::input(
                        "--run names a run in a --store database; a run folder holds one run",
                    ));
                }
                Ok(Some(Location::Folder(dir.to_path_buf())))
            }
            (None, None) => Ok(None),
        }
    }

    /// The run's location for a command whose run has a folder of its own by default
    /// (`eval`: EVAL_DIR, `tasks mine`: OUT.run): --store (a run folder, or a database with
    /// --run), else $TRAJFORGE_STORE when --run is given, else `default`.
    pub fn location_or(
        &self,
        default: &std::path::Path,
    ) -> Result<Location, crate::error::CliError> {
        let store = self.store.clone().or_else(|| {
            self.run_name
                .as_ref()
                .and_then(|_| std::env::var("TRAJFORGE_STORE").ok())
                .filter(|s| !s.is_empty())
        });
        let Some(place) = store else {
            if self.run_name.is_some() {
                return Err(crate::error::CliError::input(
                    "--run names a run in a database, and no database is given",
                )
                .hint("add --store postgres://USER@HOST/DB (or set $TRAJFORGE_STORE), or leave --run out to use a run folder"));
            }
            return Ok(Location::Folder(default.to_path_buf()));
        };
        match Location::parse(&place, self.run_name.as_deref())? {
            Location::Folder(_) if self.run_name.is_some() => Err(crate::error::CliError::input(
                "--run names a run in a --store database; a run folder holds one run",
            )
            .hint("give --store a postgres:// URL, or leave --run out")),
            location => Ok(location),
        }
    }

    /// The run's location, which must be given (a folder or --store with --run).
    pub fn required(
        &self,
        folder: Option<&std::path::Path>,
    ) -> Result<Location, crate::error::CliError> {
        self.location(folder)?.ok_or_else(|| {
            crate::error::CliError::input("name the run: its RUN_DIR, or --store URL --run NAME")
        })
    }
}

/// What every run names, shared by `generate` and `web generate`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run folder (created; holds the store, unless --store names a database).
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "store")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Score needed to keep a pair, 0 to 1: T2's line recall against T1 for code (SERA ran
    /// 1.0, 0.5 and 0.0), the two rollouts' agreement for web.
    #[arg(long, default_value_t = 0.5, value_name = "R")]
    pub threshold: f64,
    /// Seed of the sample and of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TOML menu that extends or replaces the built-in one (bug types for code, navigation
    /// intents for web).
    #[arg(long, value_name = "FILE.toml")]
    pub menu: Option<PathBuf>,
    /// End a rollout as `stuck` after this many steps in a row making the same calls with the
    /// same results (0: never).
    #[arg(long, default_value_t = trajforge_agent::DEFAULT_MAX_REPEATS, value_name = "K")]
    pub max_repeats: usize,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

impl RunArgs {
    /// The library's run basics, with the command's own `n`, prompts folder and step limit.
    pub fn basics(
        &self,
        n: usize,
        prompts: Option<PathBuf>,
        max_steps: usize,
    ) -> Result<RunBasics, crate::error::CliError> {
        let store = match self.store.location(self.out.as_deref())? {
            Some(Location::Folder(_)) | None => None,
            shared => shared,
        };
        Ok(RunBasics {
            out: self.out_name(),
            store,
            n,
            threshold: self.threshold,
            seed: self.seed,
            menu: self.menu.clone(),
            prompts,
            max_steps,
            max_repeats: self.max_repeats,
            budget: self.budget.budget(),
        })
    }

    /// The run as named in messages: its folder, else its --store database and name.
    pub fn out_name(&self) -> PathBuf {
        match (&self.out, self.store.location(None)) {
            (Some(dir), _) => dir.clone(),
            (None, Ok(Some(location))) => PathBuf::from(location.to_string()),
            (None, _) => PathBuf::new(),
        }
    }
}

/// Budgets and prices, shared by `generate` and `web generate`.
#[derive(Debug, clap::Args)]
pub struct BudgetArgs {
    /// Stop scheduling new work after this many tokens.
    #[arg(long = "max-tokens", alias = "max-total-tokens", value_name = "TOKENS")]
    pub max_total_tokens: Option<u64>,
    /// Stop scheduling new work once the cost reaches this many dollars (needs prices).
    #[arg(long, value_name = "DOLLARS")]
    pub max_cost: Option<f64>,
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Prices, shared by `generate`, `web generate` and `status`.
#[derive(Debug, clap::Args)]
pub struct PriceArgs {
    /// Dollars per million prompt tokens.
    #[arg(long, value_name = "DOLLARS")]
    pub price_in: Option<f64>,
    /// Dollars per million completion tokens.
    #[arg(long, value_name = "DOLLARS")]
    pub price_out: Option<f64>,
    /// Dollars per GPU hour (cost from the measured wall time).
    #[arg(long, value_name = "DOLLARS")]
    pub gpu_hour_price: Option<f64>,
}

impl BudgetArgs {
    /// The library's budget.
    pub fn budget(&self) -> Budget {
        Budget {
            max_tokens: self.max_total_tokens,
            max_cost: self.max_cost,
            price_in: self.prices.price_in,
            price_out: self.prices.price_out,
            gpu_hour_price: self.prices.gpu_hour_price,
        }
    }
}

/// Where a repository's episodes run; shared by `run` and `generate`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Base commit (any revision) of the workspaces.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    pub commit: String,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub env: EnvArgs,
}

/// What commands run in; shared by every command that runs a repository's commands
/// (`run`, `generate`, `tasks mine`, `eval`).
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// What episode commands run in: bubblewrap over the host's system (default), or a
    /// container of `--image` started by podman (or docker's CLI).
    #[arg(long, value_enum, default_value_t = SandboxKind::Bwrap)]
    pub sandbox: SandboxKind,
    /// The container image of `--sandbox podman|docker`: present locally (never pulled), with
    /// bash, git and coreutils (and what the repository's tests need).
    #[arg(
        long,
        value_name = "IMAGE",
        required_if_eq_any = [("sandbox", "podman"), ("sandbox", "docker")]
    )]
    pub image: Option<String>,
}

/// The sandbox backends of `--sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxKind {
    /// Rootless bubblewrap (the default).
    Bwrap,
    /// A podman container of `--image`.
    Podman,
    /// A docker container of `--image` (tested through podman-docker's CLI, not a docker engine).
    Docker,
}

impl BackendArgs {
    /// The library's sandbox backend.
    pub fn backend(&self) -> Backend {
        let engine = match self.sandbox {
            SandboxKind::Podman => Engine::Podman,
            SandboxKind::Docker => Engine::Docker,
            SandboxKind::Bwrap => return Backend::Bubblewrap,
        };
        match &self.image {
            Some(image) => Backend::Container {
                engine,
                image: image.clone(),
            },
            // clap requires --image with podman and docker.
            None => Backend::Bubblewrap,
        }
    }
}

impl SandboxArgs {
    /// The library's sandbox specification.
    pub fn spec(&self) -> SandboxSpec {
        SandboxSpec {
            commit: self.commit.clone(),
            setup: self.env.setup.clone(),
            command_timeout: self.env.command_timeout(),
            work_dir: self.env.work_dir.clone(),
            backend: self.backend.backend(),
        }
    }
}

/// A count or limit given as 0, which would silently mean "nothing" or "stop at once".
#[derive(Debug, thiserror::Error)]
#[error("must be at least 1")]
pub struct ZeroRefused;

/// Parses a count or limit that must be at least 1 (`--attempts`, `--concurrency`,
/// `--max-steps`, `--command-timeout`): clap then refuses 0 with exit code 2.
pub fn at_least_one<T>(s: &str) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let value: T = s.trim().parse()?;
    if value == T::from(0u8) {
        return Err(Box::new(ZeroRefused));
    }
    Ok(value)
}

/// How a base commit's environment is made and run, without the commit; shared by `run`,
/// `generate` (with `--commit`), `tasks mine` and `eval` (whose tasks name their commits).
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    /// A set-up command run once per base commit, with network (e.g. `pip install -e .`); for
    /// `eval`, the set-up of tasks that name none.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,
    /// Wall-time limit of one command, in seconds (a test run of `tasks mine` or `eval` gets
    /// four times this).
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = crate::args::at_least_one::<u64>)]
    pub command_timeout: u64,
    /// Where base snapshots and workspaces live [default: $TRAJFORGE_WORK_DIR or /var/tmp/trajforge].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

impl EnvArgs {
    /// The wall-time limit of one command.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout)
    }
}
