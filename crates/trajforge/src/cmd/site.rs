//! `trajforge site crawl` and `trajforge site show`: record a website with a real browser,
//! and summarise the recorded page graph.

use std::path::PathBuf;
use std::time::Duration;

use trajforge_browser::{CrawlConfig, LaunchConfig, Recording, SiteSource, crawl_site};

use crate::error::CliError;

/// Options of `trajforge site`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SiteCommand {
    /// Crawl a site breadth-first (same origin) with headless Chromium, recording every page and response.
    Crawl(CrawlArgs),
    /// Summarise a crawled site: pages, titles, the link graph, dead links.
    Show(ShowArgs),
}

/// Options of `trajforge site crawl`.
#[derive(Debug, clap::Args)]
pub struct CrawlArgs {
    /// Start URL (http or https); only its origin is crawled.
    #[arg(required_unless_present = "dir", conflicts_with = "dir")]
    pub url: Option<String>,
    /// Serve this local folder of HTML on 127.0.0.1 and crawl it instead of a URL.
    #[arg(long, value_name = "FOLDER")]
    pub dir: Option<PathBuf>,
    /// With --dir: the page to start at, relative to the folder.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "index.html",
        requires = "dir"
    )]
    pub start: String,
    /// With --dir: the port to serve on [default: any free port].
    #[arg(long, value_name = "PORT", default_value_t = 0, requires = "dir")]
    pub port: u16,
    /// The site folder to write (pages.jsonl, responses.jsonl, bodies/, site.json).
    #[arg(long, value_name = "SITE_DIR")]
    pub out: PathBuf,
    /// Most pages to record.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_pages: usize,
    /// Stop after this long (seconds, or with a unit: 90s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time_limit: Option<Duration>,
    /// Pages loaded at once (tabs of the one browser).
    #[arg(long, value_name = "N", default_value_t = trajforge_browser::DEFAULT_CONCURRENCY, value_parser = crate::args::at_least_one::<usize>)]
    pub concurrency: usize,
    /// Longest snapshot kept per page, in characters.
    #[arg(long, value_name = "CHARS", default_value_t = 40_000)]
    pub max_snapshot_chars: usize,
    /// The Chromium executable [default: $TRAJFORGE_CHROMIUM, else Debian's chromium].
    #[arg(long, value_name = "PATH")]
    pub browser: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `trajforge site show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A folder written by `trajforge site crawl --out`.
    pub site_dir: PathBuf,
    /// Print the page graph as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parse `90`, `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = super::number_and_unit(text, "a duration; use e.g. 90, 90s or 5m")?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Run `trajforge site`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        SiteCommand::Crawl(a) => run_crawl(a),
        SiteCommand::Show(a) => run_show(a),
    }
}

fn run_crawl(args: CrawlArgs) -> Result<(), CliError> {
    let source = match (&args.dir, &args.url) {
        (Some(dir), _) if !dir.is_dir() => {
            return Err(CliError::input(format!("{}: not a folder", dir.display()))
                .hint("pass the folder that holds the site's HTML files"));
        }
        (Some(dir), _) => SiteSource::Dir {
            dir: dir.clone(),
            start: args.start.clone(),
            port: args.port,
        },
        (None, Some(url)) => SiteSource::Url(url.clone()),
        (None, None) => return Err(CliError::input("give a URL or --dir FOLDER")),
    };
    if args.max_pages == 0 {
        return Err(CliError::input("--max-pages must be at least 1"));
    }
    let mut launch = LaunchConfig::default();
    if let Some(b) = &args.browser {
        launch.executable = b.clone();
    }
    let config = CrawlConfig {
        start_url: String::new(),
        out: args.out.clone(),
        max_pages: args.max_pages,
        time_limit: args.time_limit,
        max_snapshot_chars: args.max_snapshot_chars,
        static_site: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(trajforge_pipeline::RunError::Runtime)?;
    let summary = runtime.block_on(crawl_site(&source, launch, config, args.concurrency))?;
    if args.json {
        crate::error::print_json(&summary.to_json(&args.out))?;
    } else {
        crate::error::print(&summary.render(&args.out))?;
    }
    if summary.pages == 0 {
        let (why, hint) = if summary.timed_out {
            ("the time limit ended it first", "raise --time-limit")
        } else {
            (
                "no page loaded as HTML of the site's origin",
                "check that the start page answers with HTML (the failures are listed above)",
            )
        };
        return Err(CliError::failure(format!("the crawl recorded no pages: {why}")).hint(hint));
    }
    Ok(())
}

fn run_show(args: ShowArgs) -> Result<(), CliError> {
    let rec = Recording::open(&args.site_dir).map_err(|e| {
        CliError::input(e).hint("pass a folder written by `trajforge site crawl --out`")
    })?;
    let report = rec.report();
    if args.json {
        crate::error::print_json(&report)
    } else {
        crate::error::print(&report.render())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
