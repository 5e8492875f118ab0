//! `trajforge site crawl` and `trajforge site show`: record a website with a real browser,
//! and summarise the recorded page graph.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use trajforge_browser::{
    BrowserError, BrowserPool, CrawlConfig, LaunchConfig, Recording, StaticServer, crawl_concurrent,
};

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
    #[arg(long, value_name = "N", default_value_t = trajforge_browser::DEFAULT_CONCURRENCY)]
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
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 90, 90s or 5m"))?;
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

fn browser_error(err: BrowserError) -> CliError {
    match &err {
        BrowserError::Launch { .. } => CliError::failure(err).hint(
            "install Chromium (scripts/setup.sh installs Debian's chromium) or pass --browser / set TRAJFORGE_CHROMIUM",
        ),
        BrowserError::Url { .. } => {
            CliError::input(err).hint("pass an absolute http(s) URL, e.g. http://127.0.0.1:8000/")
        }
        BrowserError::Store { .. } => CliError::input(err),
        _ => CliError::failure(err),
    }
}

fn run_crawl(args: CrawlArgs) -> Result<(), CliError> {
    if let Some(url) = &args.url {
        trajforge_browser::env::check_start_url(url).map_err(browser_error)?;
    }
    if let Some(dir) = &args.dir
        && !dir.is_dir()
    {
        return Err(CliError::input(format!("{}: not a folder", dir.display()))
            .hint("pass the folder that holds the site's HTML files"));
    }
    if args.max_pages == 0 {
        return Err(CliError::input("--max-pages must be at least 1"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let summary = runtime.block_on(async {
        let server = match &args.dir {
            Some(dir) => Some(
                StaticServer::start(dir, args.port)
                    .await
                    .map_err(browser_error)?,
            ),
            None => None,
        };
        let start_url = match (&server, &args.url) {
            (Some(s), _) => format!("{}{}", s.url(), args.start.trim_start_matches('/')),
            (None, Some(u)) => u.clone(),
            (None, None) => return Err(CliError::input("give a URL or --dir FOLDER")),
        };
        let mut launch = LaunchConfig::default();
        if let Some(b) = &args.browser {
            launch.executable = b.clone();
        }
        let pool = BrowserPool::new(launch, 1);
        let config = CrawlConfig {
            start_url,
            out: args.out.clone(),
            max_pages: args.max_pages,
            time_limit: args.time_limit,
            max_snapshot_chars: args.max_snapshot_chars,
            static_site: server.is_some(),
        };
        let result = crawl_concurrent(&pool, &config, args.concurrency).await;
        pool.shutdown().await;
        result.map_err(browser_error)
    })?;
    let rate = summary.pages as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    if args.json {
        let v = serde_json::json!({
            "site_dir": args.out,
            "origin": summary.meta.origin,
            "start_url": summary.meta.start_url,
            "pages": summary.pages,
            "pages_total": summary.meta.pages,
            "responses": summary.meta.responses,
            "blocked_requests": summary.blocked,
            "not_visited": summary.left,
            "failed": summary.failed.iter().map(|(u, e)| serde_json::json!({"url": u, "error": e})).collect::<Vec<_>>(),
            "timed_out": summary.timed_out,
            "seconds": summary.elapsed.as_secs_f64(),
            "pages_per_second": rate,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "crawled {} pages from {} in {:.1} s ({:.1} pages/s)",
            summary.pages,
            summary.meta.start_url,
            summary.elapsed.as_secs_f64(),
            rate
        );
        println!(
            "  responses recorded: {}, requests to other origins blocked: {}",
            summary.meta.responses, summary.blocked
        );
        if summary.left > 0 {
            let why = if summary.timed_out {
                "time limit"
            } else {
                "page limit"
            };
            println!("  not visited ({why}): {} links", summary.left);
        }
        for (url, err) in &summary.failed {
            println!("  failed: {url}: {err}");
        }
        println!("site folder: {}", args.out.display());
    }
    Ok(())
}

fn run_show(args: ShowArgs) -> Result<(), CliError> {
    let rec = Recording::open(&args.site_dir).map_err(|e| {
        CliError::input(e).hint("pass a folder written by `trajforge site crawl --out`")
    })?;
    let meta = rec.meta();
    let pages = rec.pages();
    let known: HashSet<&str> = pages.iter().map(|p| p.url.as_str()).collect();
    let mut incoming: HashMap<&str, usize> = HashMap::new();
    let mut dead: BTreeMap<&str, usize> = BTreeMap::new();
    let mut edges = 0usize;
    for p in pages {
        for l in &p.links {
            if l == &p.url {
                continue;
            }
            edges += 1;
            *incoming.entry(l.as_str()).or_default() += 1;
            if !known.contains(l.as_str()) {
                *dead.entry(l.as_str()).or_default() += 1;
            }
        }
    }
    let short = |u: &str| {
        u.strip_prefix(meta.origin.as_str())
            .unwrap_or(u)
            .to_string()
    };
    if args.json {
        let v = serde_json::json!({
            "origin": meta.origin,
            "start_url": meta.start_url,
            "static_site": meta.static_site,
            "pages": pages.iter().map(|p| serde_json::json!({
                "url": p.url,
                "title": p.title,
                "links_out": p.links.len(),
                "links_in": incoming.get(p.url.as_str()).copied().unwrap_or(0),
                "snapshot_chars": p.snapshot.len(),
            })).collect::<Vec<_>>(),
            "responses": rec.response_count(),
            "edges": edges,
            "unrecorded_links": dead.iter().map(|(u, n)| serde_json::json!({"url": u, "linked_from": n})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("site {} (start {})", meta.origin, short(&meta.start_url));
    println!(
        "{} pages, {} links between them, {} recorded responses{}",
        pages.len(),
        edges,
        rec.response_count(),
        if meta.static_site {
            ", served from a local folder"
        } else {
            ""
        }
    );
    let mut ranked: Vec<&trajforge_browser::PageRecord> = pages.iter().collect();
    ranked.sort_by_key(|p| std::cmp::Reverse(incoming.get(p.url.as_str()).copied().unwrap_or(0)));
    println!("\nmost linked-to pages:");
    for p in ranked.iter().take(10) {
        println!(
            "  {:>4}  {}  {}",
            incoming.get(p.url.as_str()).copied().unwrap_or(0),
            short(&p.url),
            p.title
        );
    }
    let orphans: Vec<&str> = pages
        .iter()
        .filter(|p| p.url != meta.start_url && !incoming.contains_key(p.url.as_str()))
        .map(|p| p.url.as_str())
        .collect();
    if !orphans.is_empty() {
        println!(
            "\npages reached only by redirect or outside links: {}",
            orphans.len()
        );
    }
    if !dead.is_empty() {
        println!("\nlinked but not recorded (not HTML, missing, or past the limits):");
        for (u, n) in &dead {
            println!("  {}  (from {n} pages)", short(u));
        }
    }
    println!("\npages (in crawl order; out/in links):");
    for p in pages {
        println!(
            "  {}  \"{}\"  {}/{}",
            short(&p.url),
            p.title,
            p.links.len(),
            incoming.get(p.url.as_str()).copied().unwrap_or(0)
        );
    }
    Ok(())
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
