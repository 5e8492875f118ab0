//! `trajforge web generate`: Soft-Verified Generation on a website (SPEC.md section 6).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trajforge_agent::{BoxFuture, Environment, LoopConfig};
use trajforge_browser::{
    BrowserEnvironment, BrowserPool, CrawlConfig, EnvConfig, LaunchConfig, NetMode, Recording,
};
use trajforge_menu::Menu;
use trajforge_pipeline::prompts::WebPrompts;
use trajforge_pipeline::settings::{RunSettings, fingerprint};
use trajforge_pipeline::status;
use trajforge_pipeline::web::{self, StartPage, WebConfig, WebEnvFactory, WebWorker};
use trajforge_store::Store;

use crate::cmd::generate::{
    BudgetArgs, ProgressKind, check_settings, is_dead_owner, owner_name, progress_loop,
    stop_on_signal,
};
use crate::cmd::run::TeacherArgs;
use crate::error::CliError;

/// Options of `trajforge web`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Generate soft-verified navigation trajectories on a site (resumable).
    Generate(Box<GenerateArgs>),
}

/// Options of `trajforge web generate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Tasks are navigation intents from the menu crossed with start pages of the site. Rollout 1 \
follows the vague intent; the teacher writes the request a visitor would have made to reach where it ended; \
rollout 2 starts from the same page with only that request. The pair is kept when the two rollouts agree \
(same final page, shared pages, same answer) at least --threshold. Every stage is committed to \
RUN_DIR/trajforge.db: run the same command again to resume."
)]
pub struct GenerateArgs {
    /// A site folder written by `trajforge site crawl` (replayed offline), or a URL (crawled into RUN_DIR/site first).
    #[arg(long, value_name = "URL|SITE_DIR")]
    pub site: String,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// The run folder (created; holds the store).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Tasks (intent x start page) to run.
    #[arg(short = 'n', long = "tasks", default_value_t = 10, value_name = "N")]
    pub n: usize,
    /// Start pages, taken from the site's pages in crawl order (nearest the start first).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub start_pages: usize,
    /// Agreement needed to keep a pair (0 to 1).
    #[arg(long, default_value_t = 0.5, value_name = "R")]
    pub threshold: f64,
    /// Seed of the task draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TOML task menu that extends or replaces the built-in navigation intents.
    #[arg(long, value_name = "FILE.toml")]
    pub menu: Option<PathBuf>,
    /// A folder of prompt files overriding the defaults (web_rollout1.txt, web_request_system.txt, web_request.txt, web_rollout2.txt).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Tasks in flight at once (each holds a browser tab).
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub concurrency: usize,
    /// Browser processes in the pool (default: as many as --concurrency).
    #[arg(long, value_name = "N")]
    pub browsers: Option<usize>,
    /// Browse the live site instead of the recording (new responses are recorded).
    #[arg(long)]
    pub live: bool,
    /// Most model calls per rollout.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub max_steps: usize,
    /// Most pages when crawling a URL given to --site.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub max_pages: usize,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

/// Run `trajforge web ...`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Generate(a) => generate(*a),
    }
}

/// Browser environments from the pool, on the run's network mode.
struct BrowserEnvs {
    pool: Arc<BrowserPool>,
    mode: NetMode,
}

impl WebEnvFactory for BrowserEnvs {
    fn open<'a>(
        &'a self,
        start_url: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Environment>, String>> {
        Box::pin(async move {
            BrowserEnvironment::start(
                &self.pool,
                start_url,
                self.mode.clone(),
                EnvConfig::default(),
            )
            .await
            .map(|e| Box::new(e) as Box<dyn Environment>)
            .map_err(|e| e.to_string())
        })
    }
}

fn generate(args: GenerateArgs) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(CliError::input(format!(
            "--threshold {}: must be between 0 and 1",
            args.threshold
        )));
    }
    if args.n == 0 || args.start_pages == 0 {
        return Err(CliError::input("-n and --start-pages must be at least 1"));
    }
    args.budget.check()?;
    let menu = match &args.menu {
        Some(p) => Menu::load(p)?,
        None => Menu::builtin(),
    };
    if menu.tasks.is_empty() {
        return Err(CliError::input("the menu has no navigation tasks")
            .hint("add [[task]] entries, or drop --menu to use the built-in ones"));
    }
    let prompts = match &args.prompts {
        Some(dir) => WebPrompts::load(dir).map_err(CliError::input)?,
        None => WebPrompts::default(),
    };
    // Bad --site input is reported before the teacher is contacted or RUN_DIR created.
    check_site_arg(&args.site)?;
    let teacher = args.teacher.build(None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(teacher.preflight(&args.teacher.teacher))?;

    let store = Arc::new(
        Store::open(&args.out)
            .map_err(|e| CliError::failure(e).hint("choose another --out folder"))?,
    );
    let pool = Arc::new(BrowserPool::new(
        LaunchConfig::default(),
        args.browsers.unwrap_or(args.concurrency).max(1),
    ));
    let site_dir = runtime.block_on(site_folder(&args, &pool))?;
    let (mode, meta) = trajforge_browser::site_mode(&site_dir, args.live).map_err(|e| {
        CliError::input(e).hint("crawl the site first: trajforge site crawl URL --out SITE_DIR")
    })?;
    let recording = Recording::open(&site_dir).map_err(CliError::input)?;
    let starts: Vec<StartPage> = recording
        .pages()
        .iter()
        .take(args.start_pages)
        .map(|p| StartPage {
            url: p.url.clone(),
            title: p.title.clone(),
        })
        .collect();
    if starts.is_empty() {
        return Err(CliError::input(format!(
            "{}: the site folder has no pages",
            site_dir.display()
        ))
        .hint("crawl it again: trajforge site crawl URL --out SITE_DIR"));
    }

    let settings = RunSettings {
        repo: meta.origin.clone(),
        commit: site_fingerprint(&recording, args.live),
        menu: menu.fingerprint(),
        demos: String::new(),
        prompts: fingerprint(&prompts),
        threshold: args.threshold,
        attempts: 1,
        seed: args.seed,
        model: teacher.model.clone(),
        test_cmd: None,
        max_steps: args.max_steps,
        include_tests: false,
    };
    drop(recording);
    check_settings(&store, &settings, &args.out)?;
    let pricing = args.budget.pricing();
    store
        .set_meta(
            "pricing",
            &serde_json::to_string(&pricing).unwrap_or_default(),
        )
        .map_err(CliError::failure)?;
    store
        .set_meta("teacher_url", &args.teacher.teacher)
        .map_err(CliError::failure)?;
    store
        .set_meta("site", &site_dir.display().to_string())
        .map_err(CliError::failure)?;

    let jobs = web::plan(&menu.tasks, &starts, args.n, args.seed);
    let added = store.add_jobs(&jobs).map_err(CliError::failure)?;
    let reclaimed = store.reclaim(is_dead_owner).map_err(CliError::failure)?;
    let before = store.counts().map_err(CliError::failure)?;
    eprintln!(
        "{} tasks ({} intents x {} start pages{}; {} new{}); {} already done",
        jobs.len(),
        menu.tasks.len(),
        starts.len(),
        if jobs.len() < args.n {
            format!(", at most {} pairs", menu.tasks.len() * starts.len())
        } else {
            String::new()
        },
        added,
        if reclaimed > 0 {
            format!(", {reclaimed} resumed from an interrupted run")
        } else {
            String::new()
        },
        before.done
    );

    let control = args.budget.control(&store)?;
    let mut loop_config = LoopConfig {
        max_steps: args.max_steps,
        ..LoopConfig::default()
    };
    loop_config.system_prompt = web::SYSTEM_PROMPT.into();
    loop_config.max_context_tokens = None;
    let worker: Arc<WebWorker> = Arc::new(WebWorker {
        store: Arc::clone(&store),
        teacher: Arc::clone(&teacher.teacher),
        envs: Arc::new(BrowserEnvs {
            pool: Arc::clone(&pool),
            mode,
        }),
        config: Arc::new(WebConfig {
            tasks: menu.tasks.clone(),
            prompts,
            loop_config,
            threshold: args.threshold,
        }),
        control: Arc::clone(&control),
        owner: owner_name(),
    });

    let started = Instant::now();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signal(Arc::clone(&control)));
        let progress = tokio::spawn(progress_loop(
            Arc::clone(&store),
            pricing,
            jobs.len() as u64,
            started,
            ProgressKind {
                noun: "tasks",
                stages: &["rollout1", "request", "rollout2", "verify"],
            },
        ));
        let r = web::run(Arc::clone(&worker), args.concurrency).await;
        progress.abort();
        pool.shutdown().await;
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
            "No pair of rollouts agreed in this run. With a small teacher this is expected; point the same \
             command at a capable model on an OpenAI-compatible server (--teacher URL --model NAME)."
        );
    }
    eprintln!(
        "run folder: {} (trajforge status {} shows this report again)",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// `--site` must be a folder written by `site crawl` or an http(s) URL.
fn check_site_arg(site: &str) -> Result<(), CliError> {
    let given = Path::new(site);
    if given.is_dir() {
        if !given.join("site.json").is_file() {
            return Err(CliError::input(format!(
                "{}: not a site folder (no site.json)",
                given.display()
            ))
            .hint("crawl the site first: trajforge site crawl URL --out SITE_DIR (or --dir FOLDER for local HTML)"));
        }
        return Ok(());
    }
    if !(site.starts_with("http://") || site.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--site {site}: neither a site folder nor an http(s) URL"
        ))
        .hint("pass a folder written by `trajforge site crawl`, or the site's URL"));
    }
    Ok(())
}

/// The site folder to use: `--site` itself when it is one, else RUN_DIR/site, crawled from
/// the URL on first use (a later resume reuses it).
async fn site_folder(args: &GenerateArgs, pool: &BrowserPool) -> Result<PathBuf, CliError> {
    let given = Path::new(&args.site);
    if given.is_dir() {
        return Ok(given.to_path_buf());
    }
    let dir = args.out.join("site");
    if dir.join("site.json").is_file() {
        return Ok(dir);
    }
    eprintln!(
        "crawling {} (at most {} pages) ...",
        args.site, args.max_pages
    );
    let summary = trajforge_browser::crawl(
        pool,
        &CrawlConfig {
            start_url: args.site.clone(),
            out: dir.clone(),
            max_pages: args.max_pages,
            time_limit: Some(Duration::from_secs(600)),
            max_snapshot_chars: EnvConfig::default().max_snapshot_chars,
            static_site: false,
        },
    )
    .await
    .map_err(|e| {
        CliError::failure(e).hint("check that the site answers, then run the same command again")
    })?;
    eprintln!("crawled {} pages into {}", summary.pages, dir.display());
    Ok(dir)
}

/// What fixes the site's content for the settings check: the recorded pages (and whether
/// episodes browse the live site, whose content may change).
fn site_fingerprint(recording: &Recording, live: bool) -> String {
    let pages: Vec<(&str, &str)> = recording
        .pages()
        .iter()
        .map(|p| (p.url.as_str(), p.title.as_str()))
        .collect();
    format!("{}{}", if live { "live:" } else { "" }, fingerprint(&pages))
}
