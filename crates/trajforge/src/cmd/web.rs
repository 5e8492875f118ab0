//! `trajforge web generate`: Soft-Verified Generation on a website (SPEC.md section 6); `web
//! tasks` and `web eval` live in [`web_eval`].

use std::path::PathBuf;

use trajforge_pipeline::prepare::{self, Plan, PrepareEvent, WebRunSpec};

use crate::args::{RunArgs, TeacherArgs};
use crate::cmd::web_eval;
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
    /// Draw held-out navigation tasks with known answers from a crawled site, phrased as a visitor would.
    Tasks(Box<web_eval::TasksArgs>),
    /// Evaluate a model on web tasks on the replayed site: success and route recall per task and seed (resumable).
    Eval(Box<web_eval::EvalArgs>),
}

/// Options of `trajforge web generate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Tasks are navigation intents from the menu crossed with start pages of the site. Rollout 1 \
follows the vague intent; the teacher writes the request a visitor would have made to reach where it ended; \
rollout 2 starts from the same page with only that request. Each rollout's first message shows its start \
page (URL, title, snapshot). The agreement r is the mean of: same final page (0 or 1), the share of the pages \
rollout 1 went through (start page excluded, final page included) that rollout 2 also went through (left out \
when rollout 1 never left the start page), and the same answer (when the intent asks for one). A pair is kept \
when r >= --threshold and both rollouts ended on the same page (--keep-different-final drops that second \
condition); otherwise its result says why (low_agreement, different_final). With --exclude-tasks, a pair \
whose rollout goes from a held-out task's start page to its target page (pages compared by path, whatever \
the port) is rejected as held_out. Tasks are drawn by the start \
pages' paths, so the same --seed draws the same tasks wherever the site is served. Every stage is committed \
to RUN_DIR/trajforge.db: run the same command again to resume."
)]
pub struct GenerateArgs {
    /// A site folder written by `trajforge site crawl` (replayed offline), or a URL (crawled into RUN_DIR/site first).
    #[arg(long, value_name = "URL|SITE_DIR")]
    pub site: String,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Tasks (intent x start page) to run.
    #[arg(short = 'n', long = "tasks", default_value_t = 10, value_name = "N")]
    pub n: usize,
    /// Start pages, taken from the site's pages in crawl order (nearest the start first).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub start_pages: usize,
    /// A folder of prompt files overriding the defaults (web_rollout1.txt, web_request_system.txt, web_request.txt, web_rollout2.txt).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Tasks in flight at once (each holds a browser tab).
    #[arg(long, default_value_t = 2, value_name = "K", value_parser = crate::args::at_least_one::<usize>)]
    pub concurrency: usize,
    /// Browser processes in the pool (default: as many as --concurrency).
    #[arg(long, value_name = "N")]
    pub browsers: Option<usize>,
    /// Browse the live site instead of the recording (new responses are recorded).
    #[arg(long)]
    pub live: bool,
    /// Most model calls per rollout.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = crate::args::at_least_one::<usize>)]
    pub max_steps: usize,
    /// Most pages when crawling a URL given to --site.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub max_pages: usize,
    /// Also keep pairs whose rollouts end on different pages when their agreement reaches --threshold (by default such a pair is rejected as different_final).
    #[arg(long)]
    pub keep_different_final: bool,
    /// Held-out tasks written by `web tasks`: a pair whose rollout goes from one's start page to its target page is rejected as held_out.
    #[arg(long, value_name = "TASKS.jsonl")]
    pub exclude_tasks: Option<PathBuf>,
}

/// Run `trajforge web ...`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Generate(a) => generate(*a),
        Command::Tasks(a) => web_eval::tasks(*a),
        Command::Eval(a) => web_eval::eval(*a),
    }
}

fn generate(args: GenerateArgs) -> Result<(), CliError> {
    let run = WebRunSpec {
        basics: args
            .run
            .basics(args.n, args.prompts.clone(), args.max_steps)?,
        site: args.site.clone(),
        start_pages: args.start_pages,
        browsers: args.browsers.unwrap_or(args.concurrency),
        live: args.live,
        max_pages: args.max_pages,
        keep_different_final: args.keep_different_final,
        exclude_tasks: args.exclude_tasks.clone(),
    }
    .load()?;
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = super::teacher(&args.teacher.spec(), &runtime, None)?;
    let prepared = runtime.block_on(run.prepare(&teacher, &mut |event| match event {
        PrepareEvent::Crawling { url, max_pages } => {
            stderr_line!("crawling {url} (at most {max_pages} pages) ...");
        }
        PrepareEvent::Crawled { pages, dir } => {
            stderr_line!("crawled {pages} pages into {}", dir.display());
        }
        PrepareEvent::PreparingRepository { .. } => {}
    }))?;
    if let Plan::Web {
        intents,
        start_pages,
        asked,
    } = prepared.plan
    {
        stderr_line!(
            "{} tasks ({intents} intents x {start_pages} start pages{}; {} new{}); {} already done",
            prepared.jobs,
            if prepared.jobs < asked {
                format!(", at most {} pairs", intents * start_pages)
            } else {
                String::new()
            },
            prepared.added,
            super::generate::resumed(prepared.reclaimed),
            prepared.already_done
        );
    }
    super::drive(
        &runtime,
        &prepared,
        args.concurrency,
        &args.run.out_name(),
        "No pair of rollouts agreed in this run. With a small teacher this is expected; point the same \
         command at a capable model on an OpenAI-compatible server (--teacher URL --model NAME).",
    )
}
