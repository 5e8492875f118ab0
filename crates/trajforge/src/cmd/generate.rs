//! `trajforge generate`: the main job, Soft-Verified Generation on a repository.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trajforge_agent::LoopConfig;
use trajforge_ingest::{ScanOptions, scan};
use trajforge_menu::Menu;
use trajforge_pipeline::code::{self, CodeConfig, Control, Worker};
use trajforge_pipeline::demos;
use trajforge_pipeline::prompts::Prompts;
use trajforge_pipeline::sandbox::SandboxEnvs;
use trajforge_pipeline::settings::{RunSettings, fingerprint};
use trajforge_pipeline::status::{self, Pricing};
use trajforge_sandbox::{Environment, EnvironmentOptions};
use trajforge_store::Store;

use crate::cmd::run::{TeacherArgs, check_repository, default_work_dir, sandbox_error};
use crate::error::CliError;

/// Options of `trajforge generate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every stage is committed to RUN_DIR/trajforge.db before the next starts: run the same \
command again to resume after a crash, kill or Ctrl-C. Settings that change the data's meaning (commit, menu, \
demonstrations, prompts, threshold, attempts, seed, model, test command) cannot change on resume; \
concurrency and budgets can, and a larger -n adds functions."
)]
pub struct Args {
    /// The repository (top level of a git repository).
    #[arg(long)]
    pub repo: PathBuf,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// The run folder (created; holds the store).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Functions to sample.
    #[arg(
        short = 'n',
        long = "functions",
        default_value_t = 10,
        value_name = "N"
    )]
    pub n: usize,
    /// Line-recall threshold for keeping a T2 trajectory (SERA ran 1.0, 0.5 and 0.0).
    #[arg(long, default_value_t = 0.5, value_name = "R")]
    pub threshold: f64,
    /// Attempts (bug types drawn) per function before giving up.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub attempts: u32,
    /// Seed of the sample and of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TOML bug-type menu that extends or replaces the built-in one.
    #[arg(long, value_name = "FILE.toml")]
    pub menu: Option<PathBuf>,
    /// Your own demonstration issues (JSONL with a "text" field) [default: the built-in pool].
    #[arg(long, value_name = "FILE.jsonl")]
    pub demos: Option<PathBuf>,
    /// A folder of prompt files overriding the defaults (rollout1.txt, selfcheck.txt, pr_system.txt, pr.txt, rollout2.txt).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Functions in flight at once.
    #[arg(long, default_value_t = 4, value_name = "K")]
    pub concurrency: usize,
    /// A set-up command run once in the repository's environment, with network.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,
    /// A test command for the behavioural verdict (run on the base, P1 and P2).
    #[arg(long, value_name = "CMD")]
    pub test_cmd: Option<String>,
    /// Base commit.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    pub commit: String,
    /// Most model calls per rollout.
    #[arg(long, default_value_t = 115, value_name = "N")]
    pub max_steps: usize,
    /// Wall-time limit of one command, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub command_timeout: u64,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Sample test files too.
    #[arg(long)]
    pub include_tests: bool,
    /// Where base snapshots and workspaces live [default: $TRAJFORGE_WORK_DIR or /var/tmp/trajforge].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// Run `trajforge generate`.
pub fn run(args: Args) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(CliError::input(format!(
            "--threshold {}: must be between 0 and 1",
            args.threshold
        )));
    }
    if args.n == 0 {
        return Err(CliError::input("-n must be at least 1"));
    }
    args.budget.check()?;
    let menu = match &args.menu {
        Some(p) => Menu::load(p)?,
        None => Menu::builtin(),
    };
    let demos = match &args.demos {
        Some(p) => demos::load(p).map_err(|e| {
            CliError::input(e).hint("one JSON object per line with a \"text\" field")
        })?,
        None => demos::default_pool(),
    };
    let prompts = match &args.prompts {
        Some(dir) => Prompts::load(dir).map_err(CliError::input)?,
        None => Prompts::default(),
    };
    let repo = check_repository(&args.repo)?;
    let teacher = args.teacher.build(None)?;

    // Sandbox commands run on blocking threads: cap them so many episodes share a few threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads((args.concurrency * 2).clamp(8, 64))
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(teacher.preflight(&args.teacher.teacher))?;

    let store = Arc::new(
        Store::open(&args.out)
            .map_err(|e| CliError::failure(e).hint("choose another --out folder"))?,
    );
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| default_work_dir(&repo));
    let mut options = EnvironmentOptions::new(&work_dir);
    options.commit = Some(args.commit.clone());
    options.sandbox.limits.timeout = Duration::from_secs(args.command_timeout.max(1));
    eprintln!(
        "preparing the repository environment ({} at {}) ...",
        repo.display(),
        args.commit
    );
    let environment = Environment::prepare(&repo, args.setup.as_deref(), &options)
        .map_err(|e| sandbox_error(e, &work_dir))?;
    if let Some(out) = environment
        .setup_output()
        .filter(|o| o.exit_code != Some(0))
    {
        return Err(CliError::failure(format!(
            "the set-up command failed (exit {:?}):\n{}",
            out.exit_code,
            out.output.trim_end()
        ))
        .hint("fix --setup; it runs once in the base snapshot with network access"));
    }

    let settings = RunSettings {
        repo: repo.display().to_string(),
        commit: environment.commit().to_string(),
        menu: menu.fingerprint(),
        demos: demos::fingerprint(&demos),
        prompts: fingerprint(&prompts),
        threshold: args.threshold,
        attempts: args.attempts,
        seed: args.seed,
        model: teacher.model.clone(),
        test_cmd: args.test_cmd.clone(),
        max_steps: args.max_steps,
        include_tests: args.include_tests,
    };
    check_settings(&store, &settings, &args.out)?;
    let pricing = args.budget.pricing();
    let stored_pricing = serde_json::to_string(&pricing).unwrap_or_default();
    store
        .set_meta("pricing", &stored_pricing)
        .map_err(CliError::failure)?;
    store
        .set_meta("teacher_url", &args.teacher.teacher)
        .map_err(CliError::failure)?;

    // Sample from the base snapshot: the functions as they are at the base commit.
    let scan_options = ScanOptions {
        include_tests: args.include_tests,
        ..ScanOptions::default()
    };
    let mut functions = scan(environment.base_dir(), &scan_options)?.functions;
    if functions.is_empty() {
        return Err(CliError::input(format!("{}: no functions found at {}", repo.display(), args.commit))
            .hint("trajforge reads Python, Rust, JavaScript, TypeScript, Go, Java, C and C++; check `trajforge functions`"));
    }
    let available = functions.len();
    trajforge_ingest::sample(&mut functions, args.n, args.seed);
    let jobs: Vec<(String, serde_json::Value)> = functions
        .iter()
        .map(|f| {
            (
                format!("{}@{}", f.id(), f.start_line),
                serde_json::to_value(f).unwrap_or_default(),
            )
        })
        .collect();
    let added = store.add_jobs(&jobs).map_err(CliError::failure)?;
    let owner = owner_name();
    let reclaimed = store.reclaim(is_dead_owner).map_err(CliError::failure)?;
    let before = store.counts().map_err(CliError::failure)?;
    eprintln!(
        "{} functions sampled of {available} ({} new{}); {} already done",
        jobs.len(),
        added,
        if reclaimed > 0 {
            format!(", {reclaimed} resumed from an interrupted run")
        } else {
            String::new()
        },
        before.done
    );

    let mut loop_config = LoopConfig {
        max_steps: args.max_steps,
        ..LoopConfig::default()
    };
    loop_config.max_context_tokens = None;
    let config = CodeConfig {
        menu,
        demos,
        prompts,
        loop_config,
        threshold: args.threshold,
        attempts: args.attempts,
        seed: args.seed,
        test_cmd: args.test_cmd.clone(),
        selfcheck_tries: 3,
    };
    let control = args.budget.control(&store)?;
    let envs = Arc::new(SandboxEnvs::new(
        environment,
        Duration::from_secs(args.command_timeout.max(1)),
        Duration::from_secs(args.command_timeout.max(1) * 4),
    ));
    let worker: Arc<Worker> = Arc::new(Worker {
        store: Arc::clone(&store),
        teacher: Arc::clone(&teacher.teacher),
        envs,
        config: Arc::new(config),
        control: Arc::clone(&control),
        owner,
    });

    let started = Instant::now();
    let result = runtime.block_on(async {
        let ctrl = Arc::clone(&control);
        tokio::spawn(stop_on_signal(ctrl));
        let progress = tokio::spawn(progress_loop(
            Arc::clone(&store),
            pricing,
            jobs.len() as u64,
            started,
            CODE_PROGRESS,
        ));
        let r = code::run(Arc::clone(&worker), args.concurrency).await;
        progress.abort();
        r
    });
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    result.map_err(|e| {
        CliError::failure(e).hint("the run is resumable: run the same command again")
    })?;

    let report = status::status(&store, pricing).map_err(CliError::failure)?;
    eprintln!("{}", status::render(&report, Some(args.threshold)));
    if let Some(reason) = control.reason() {
        eprintln!("stopped early: {reason}. Run the same command again to continue.");
    }
    if report.kept_t2 == 0 && report.done > 0 {
        eprintln!(
            "No trajectory passed soft verification in this run. With a small teacher this is expected: it \
             rarely produces a fix that a second rollout reproduces. Point the same command at a capable model on \
             an OpenAI-compatible server, e.g. --teacher http://GPU-HOST:8000/v1 --model <served model name>."
        );
    }
    eprintln!(
        "run folder: {} (trajforge status {} shows this report again)",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

pub(crate) fn check_settings(
    store: &Store,
    settings: &RunSettings,
    out: &Path,
) -> Result<(), CliError> {
    let requested = serde_json::to_string(settings).unwrap_or_default();
    match store.meta("settings").map_err(CliError::failure)? {
        None => store
            .set_meta("settings", &requested)
            .map_err(CliError::failure),
        Some(text) => {
            let stored: RunSettings = serde_json::from_str(&text).map_err(|e| {
                CliError::failure(format!("{}: unreadable run settings: {e}", out.display()))
            })?;
            let conflicts = stored.conflicts(settings);
            if conflicts.is_empty() {
                Ok(())
            } else {
                Err(CliError::input(format!(
                    "{} holds a run made with other settings, so resuming would mix data of different meaning:\n  {}",
                    out.display(),
                    conflicts.join("\n  ")
                ))
                .hint("use the run's original settings to resume it, or a new --out folder for a new run"))
            }
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
    /// Refuse a cost budget that no price can measure.
    pub fn check(&self) -> Result<(), CliError> {
        if self.max_cost.is_some() && self.price_in.is_none() && self.price_out.is_none() {
            return Err(CliError::input(
                "--max-cost needs --price-in and/or --price-out",
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
    pub fn control(&self, store: &Store) -> Result<Arc<Control>, CliError> {
        let spent = status::status(store, self.pricing()).map_err(CliError::failure)?;
        let price = match (self.price_in, self.price_out) {
            (None, None) => None,
            (a, b) => Some((a.unwrap_or(0.0), b.unwrap_or(0.0))),
        };
        let control = Arc::new(Control::with_budgets(
            self.max_total_tokens,
            self.max_cost,
            price,
        ));
        control.add(trajforge_teacher::Usage {
            prompt_tokens: spent.prompt_tokens,
            completion_tokens: spent.completion_tokens,
        });
        if control.stopped() {
            return Err(CliError::input(format!(
                "the budget is already spent: {}",
                control.reason().unwrap_or_default()
            ))
            .hint("raise --max-tokens or --max-cost to continue this run"));
        }
        Ok(control)
    }
}

/// Stop scheduling on the first Ctrl-C or SIGTERM (episodes in flight finish); quit at once on
/// the second. Either way the run stays resumable.
pub(crate) async fn stop_on_signal(control: Arc<Control>) {
    let signal = crate::cmd::shutdown_signal().await;
    control.stop(&format!("interrupted ({signal})"));
    eprintln!(
        "\nstopping: episodes in flight finish first; press Ctrl-C again to quit at once (the run stays resumable)"
    );
    crate::cmd::shutdown_signal().await;
    std::process::exit(130);
}

/// `host:pid:start`, so a later process can tell whether a lease holder is still alive.
pub(crate) fn owner_name() -> String {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}:{}:{start}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A lease owner on this machine whose process is gone.
pub(crate) fn is_dead_owner(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    host == hostname()
        && pid != std::process::id().to_string()
        && !Path::new("/proc").join(pid).exists()
}

/// What the progress line counts: the unit of work and the stages shown.
pub(crate) struct ProgressKind {
    /// "functions" or "tasks".
    pub noun: &'static str,
    /// Stage names, in pipeline order.
    pub stages: &'static [&'static str],
}

/// The code pipeline's progress line.
const CODE_PROGRESS: ProgressKind = ProgressKind {
    noun: "functions",
    stages: &["rollout1", "selfcheck", "pr", "rollout2", "verify"],
};

pub(crate) async fn progress_loop(
    store: Arc<Store>,
    pricing: Pricing,
    total: u64,
    started: Instant,
    kind: ProgressKind,
) {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let mut last_print = Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::time::sleep(Duration::from_millis(if tty { 1000 } else { 5000 })).await;
        let Ok(s) = status::status(&store, pricing) else {
            continue;
        };
        let elapsed = started.elapsed().as_secs_f64();
        let eta = if s.done > 0 && s.done < total {
            let per = elapsed / s.done as f64;
            format!(", ETA {}", human_time(per * (total - s.done) as f64))
        } else {
            String::new()
        };
        let stages: Vec<String> = kind
            .stages
            .iter()
            .map(|k| format!("{k} {}", s.stages.get(*k).copied().unwrap_or(0)))
            .collect();
        let cost = s.cost.map(|c| format!(", ${c:.2}")).unwrap_or_default();
        let line = format!(
            "{} {}/{total} done, {} in flight | {} | kept T2 {} T1 {} | rejected {} | {} tokens{cost}{eta}",
            kind.noun,
            s.done,
            s.running,
            stages.join(" "),
            s.kept_t2,
            s.kept_t1,
            s.rejections.values().sum::<u64>(),
            s.prompt_tokens + s.completion_tokens,
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if line != last_line || last_print.elapsed() > Duration::from_secs(60) {
            eprintln!("{line}");
            last_print = Instant::now();
        }
        last_line = line;
    }
}

fn human_time(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0}s")
    } else if secs < 5400.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}
