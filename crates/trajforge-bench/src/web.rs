//! `trajforge-bench web`: the browser side of web navigation on a real local site.
//!
//! In one run, on the same pages served by the same static server and the same Chromium
//! binary: crawl rate (pages/s), accessibility-snapshot time per page against Playwright's
//! `aria_snapshot()`, and the latency from an action to the next observation (click on a
//! navigation link, fill a field) against Playwright's click + `aria_snapshot()`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_browser::{
    BrowserEnvironment, BrowserPool, CrawlConfig, EnvConfig, LaunchConfig, NetMode, NetPolicy,
    Recording, StaticServer, Tab, crawl,
};

/// Options of `trajforge-bench web`.
#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// The site folder [default: the bidict docs under $TRAJFORGE_TEST_DATA].
    #[arg(long)]
    site: Option<PathBuf>,
    /// Snapshots per page; the median is kept.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Rounds over the navigation links for the action latency.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Python with Playwright [default: <repo>/.cache/py/bin/python]; "none" skips the baseline.
    #[arg(long)]
    python: Option<String>,
    /// Chromium for Playwright [default: /usr/bin/chromium].
    #[arg(long, default_value = "/usr/bin/chromium")]
    playwright_browser: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Run the benchmark.
pub fn run(args: WebArgs) -> Result<(), String> {
    let site = args.site.clone().unwrap_or_else(|| {
        let data = std::env::var_os("TRAJFORGE_TEST_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".cache/test-data"));
        data.join("sites/bidict-doc/usr/share/doc/python-bidict-doc/html")
    });
    if !site.join("index.html").exists() {
        return Err(format!(
            "{}: no index.html; run scripts/fetch-test-data.sh (or pass --site)",
            site.display()
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(bench(args, site))
}

async fn bench(args: WebArgs, site: PathBuf) -> Result<(), String> {
    let server = StaticServer::start(&site, 0)
        .await
        .map_err(|e| e.to_string())?;
    let start = format!("{}index.html", server.url());
    let pool = BrowserPool::new(LaunchConfig::default(), 1);

    // Browser launch, then the crawl on a warm pool.
    let t = Instant::now();
    drop(pool.acquire().await.map_err(|e| e.to_string())?);
    let launch = t.elapsed();
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let summary = crawl(
        &pool,
        &CrawlConfig {
            start_url: start.clone(),
            out: out.path().to_path_buf(),
            max_pages: 1000,
            time_limit: Some(Duration::from_secs(300)),
            max_snapshot_chars: 1_000_000,
            static_site: true,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let rate = summary.pages as f64 / summary.elapsed.as_secs_f64();
    let rec = Arc::new(Recording::open(out.path()).map_err(|e| e.to_string())?);
    let urls: Vec<String> = rec.pages().iter().map(|p| p.url.clone()).collect();

    // Snapshot time per page (live, same server as Playwright).
    let mut lease = pool.acquire().await.map_err(|e| e.to_string())?;
    let policy = Arc::new(
        NetPolicy::new(&start, NetMode::Live { record: None }).map_err(|e| e.to_string())?,
    );
    let tab = Tab::open(&lease.browser().cdp().clone(), policy)
        .await
        .map_err(|e| e.to_string())?;
    let mut ours_snap = Vec::new();
    let mut ours_chars = 0usize;
    for u in &urls {
        tab.goto(u).await.map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..args.repeats.max(1) {
            let t = Instant::now();
            let s = tab.snapshot(1_000_000).await.map_err(|e| e.to_string())?;
            times.push(ms(t.elapsed()));
            ours_chars = ours_chars.max(s.text.len());
        }
        ours_snap.push(median(times));
    }
    tab.close().await;
    drop(lease);

    // Action latency: click each sidebar link from the start page; fill the search box.
    let mut env = BrowserEnvironment::start(
        &pool,
        &start,
        NetMode::Replay(Arc::clone(&rec)),
        EnvConfig::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    // The sidebar's navigation links present on every page (a real navigation menu).
    let names: Vec<String> = [
        "Introduction",
        "Basic Usage",
        "Other Functionality",
        "Addendum",
        "API",
        "Contributors’ Guide",
        "Code of Conduct",
        "Thanks",
        "Learning from bidict",
    ]
    .iter()
    .filter(|n| {
        env.snapshot()
            .refs
            .values()
            .any(|t| t.role == "link" && t.name == **n)
    })
    .map(|n| n.to_string())
    .collect();
    let mut clicks = Vec::new();
    let mut fills = Vec::new();
    for _ in 0..args.rounds.max(1) {
        for name in &names {
            let _ = env.act("goto", &json!({"url": start})).await;
            let Some(r) = env
                .snapshot()
                .refs
                .iter()
                .filter(|(_, t)| t.role == "link" && &t.name == name)
                .map(|(r, _)| r.clone())
                .min_by_key(|r| r[1..].parse::<u64>().unwrap_or(u64::MAX))
            else {
                continue;
            };
            let obs = env.act("click", &json!({"ref": r})).await;
            if obs.error {
                return Err(format!("click on {name:?} failed: {}", obs.text));
            }
            clicks.push(ms(obs.duration));
            let search = env
                .snapshot()
                .refs
                .iter()
                .find(|(_, t)| t.role == "textbox" && t.name == "Search")
                .map(|(r, _)| r.clone());
            if let Some(s) = search {
                let obs = env.act("fill", &json!({"ref": s, "text": "inverse"})).await;
                if !obs.error {
                    fills.push(ms(obs.duration));
                }
            }
        }
    }
    env.close().await;
    pool.shutdown().await;

    // Playwright on the same pages and links.
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var("TRAJFORGE_PYTHON").ok())
        .unwrap_or_else(|| {
            repo_root()
                .join(".cache/py/bin/python")
                .display()
                .to_string()
        });
    let pw = if python == "none" {
        None
    } else {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let urls_file = dir.path().join("urls.txt");
        let names_file = dir.path().join("names.txt");
        std::fs::write(&urls_file, urls.join("\n")).map_err(|e| e.to_string())?;
        let mut click_names = Vec::new();
        for _ in 0..args.rounds.max(1) {
            click_names.extend(names.iter().cloned());
        }
        std::fs::write(&names_file, click_names.join("\n")).map_err(|e| e.to_string())?;
        let out = Command::new(&python)
            .arg(repo_root().join("scripts/bench_web_playwright.py"))
            .arg(&urls_file)
            .arg(args.repeats.max(1).to_string())
            .arg(&args.playwright_browser)
            .arg(&start)
            .arg(&names_file)
            .output()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Playwright baseline failed (is playwright installed? run scripts/python-env.sh): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Some(serde_json::from_slice::<Value>(&out.stdout).map_err(|e| e.to_string())?)
    };

    println!(
        "web benchmark on {} ({} pages, served on {})",
        site.display(),
        urls.len(),
        server.url()
    );
    println!(
        "  browser launch (fresh profile)        {:>9.0} ms",
        ms(launch)
    );
    println!(
        "  crawl: {} pages in {:.2} s             {:>9.1} pages/s   (target >= 5: {})",
        summary.pages,
        summary.elapsed.as_secs_f64(),
        rate,
        verdict(rate >= 5.0)
    );
    let ours_med = median(ours_snap.clone());
    let ours_total: f64 = ours_snap.iter().sum();
    println!(
        "  snapshot per page, trajforge (median) {:>9.2} ms   total {:.0} ms, largest {} chars",
        ours_med, ours_total, ours_chars
    );
    let click_med = median(clicks.clone());
    let fill_med = median(fills.clone());
    println!(
        "  click -> next observation (median)    {:>9.1} ms   n={} (target <= 250 ms: {})",
        click_med,
        clicks.len(),
        verdict(click_med <= 250.0)
    );
    println!(
        "  fill -> next observation (median)     {:>9.1} ms   n={}",
        fill_med,
        fills.len()
    );
    if let Some(pw) = pw {
        let pw_snap: Vec<f64> = pw["pages"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["snapshot_ms"].as_f64()).collect())
            .unwrap_or_default();
        let pw_clicks: Vec<f64> = pw["clicks_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let pw_med = median(pw_snap.clone());
        let pw_total: f64 = pw_snap.iter().sum();
        let ratio = pw_total / ours_total.max(1e-9);
        println!(
            "  snapshot per page, Playwright aria_snapshot() (median) {:>7.2} ms   total {:.0} ms",
            pw_med, pw_total
        );
        println!(
            "  snapshot ratio Playwright / trajforge (totals) {:>6.2}x (target >= 1: {})",
            ratio,
            verdict(ratio >= 1.0)
        );
        let pw_click = median(pw_clicks.clone());
        println!(
            "  click -> snapshot, Playwright (median) {:>8.1} ms   n={}; ratio {:.2}x",
            pw_click,
            pw_clicks.len(),
            pw_click / click_med.max(1e-9)
        );
        println!(
            "  Playwright launch                     {:>9.0} ms",
            pw["launch_ms"].as_f64().unwrap_or(f64::NAN)
        );
    } else {
        println!("  Playwright baseline skipped (--python none)");
    }
    Ok(())
}
