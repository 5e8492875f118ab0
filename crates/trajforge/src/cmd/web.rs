//! `trajforge web generate`: Soft-Verified Generation on a website (SPEC.md section 6).

use std::path::PathBuf;

use trajforge_pipeline::prepare::{self, Plan, PrepareEvent, WebRunSpec};

use crate::args::{RunArgs, TeacherArgs};
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
}

/// Run `trajforge web ...`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Generate(a) => generate(*a),
    }
}

fn generate(args: GenerateArgs) -> Result<(), CliError> {
    let run = WebRunSpec {
        basics: args
            .run
            .basics(args.n, args.prompts.clone(), args.max_steps),
        site: args.site.clone(),
        start_pages: args.start_pages,
        browsers: args.browsers.unwrap_or(args.concurrency),
        live: args.live,
        max_pages: args.max_pages,
    }
    .load()?;
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = super::teacher(&args.teacher.spec(), &runtime, None)?;
    let prepared = runtime.block_on(run.prepare(&teacher, &mut |event| match event {
        PrepareEvent::Crawling { url, max_pages } => {
            eprintln!("crawling {url} (at most {max_pages} pages) ...");
        }
        PrepareEvent::Crawled { pages, dir } => {
            eprintln!("crawled {pages} pages into {}", dir.display());
        }
        PrepareEvent::PreparingRepository { .. } => {}
    }))?;
    if let Plan::Web {
        intents,
        start_pages,
        asked,
    } = prepared.plan
    {
        eprintln!(
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
        &args.run.out,
        "No pair of rollouts agreed in this run. With a small teacher this is expected; point the same \
         command at a capable model on an OpenAI-compatible server (--teacher URL --model NAME).",
    )
}
