//! Breadth-first, same-origin crawl of a site with the real browser, recording every
//! page (URL, title, links, snapshot) and every response needed to replay it.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use std::sync::Mutex;

use crate::browser::{BrowserPool, Lease};
use crate::error::BrowserError;
use crate::lock;
use crate::net::{NetMode, NetPolicy, parse_web_url};
use crate::record::{PageRecord, Recorder, SiteMeta};
use crate::tab::Tab;

/// Limits and output of a crawl.
#[derive(Debug, Clone)]
pub struct CrawlConfig {
    /// Where to start.
    pub start_url: String,
    /// The site folder to write.
    pub out: PathBuf,
    /// Most pages to record.
    pub max_pages: usize,
    /// Stop starting new pages after this long.
    pub time_limit: Option<Duration>,
    /// Longest snapshot kept per page.
    pub max_snapshot_chars: usize,
    /// The site is served by trajforge's static server (which ignores query strings).
    pub static_site: bool,
}

/// Pages [`crawl`] loads at once (tabs of its one browser).
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What a crawl did.
#[derive(Debug, Clone)]
pub struct CrawlSummary {
    /// site.json as written.
    pub meta: SiteMeta,
    /// Pages recorded in this run.
    pub pages: usize,
    /// Links seen but not visited (limits reached).
    pub left: usize,
    /// URLs that failed to load, with the reason.
    pub failed: Vec<(String, String)>,
    /// Requests refused for leaving the origin.
    pub blocked: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// True when the time limit stopped the crawl.
    pub timed_out: bool,
}

/// Normalise a link for the crawl frontier: http(s), same origin, no fragment; skips other
/// schemes (`mailto:`, `javascript:`, `file:` ...) and obvious downloads by extension.
pub fn frontier_url(link: &str, origin: &url::Origin) -> Option<String> {
    let mut u = Url::parse(link).ok()?;
    if !matches!(u.scheme(), "http" | "https") || &u.origin() != origin {
        return None;
    }
    u.set_fragment(None);
    let path = u.path().to_ascii_lowercase();
    const SKIP: &[&str] = &[
        ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".tar", ".whl", ".exe", ".dmg", ".png",
        ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".css", ".js", ".json", ".xml", ".txt",
        ".inv", ".woff", ".woff2", ".ttf", ".mp4", ".mp3", ".epub",
    ];
    if SKIP.iter().any(|s| path.ends_with(s)) {
        return None;
    }
    Some(u.to_string())
}

struct Frontier {
    queue: VecDeque<String>,
    seen: HashSet<String>,
    pages: usize,
    in_flight: usize,
    failed: Vec<(String, String)>,
    timed_out: bool,
    error: Option<BrowserError>,
}

struct Shared {
    frontier: Mutex<Frontier>,
    lease: tokio::sync::Mutex<Lease>,
    policy: Arc<NetPolicy>,
    recorder: Arc<Recorder>,
    origin: url::Origin,
    config: CrawlConfig,
    started: Instant,
}

/// Crawl breadth-first from `config.start_url` into `config.out`, with one browser from
/// `pool` and [`DEFAULT_CONCURRENCY`] tabs loading pages at once.
pub async fn crawl(pool: &BrowserPool, config: &CrawlConfig) -> Result<CrawlSummary, BrowserError> {
    crawl_concurrent(pool, config, DEFAULT_CONCURRENCY).await
}

/// [`crawl`] with `concurrency` tabs (1: strictly breadth-first order).
pub async fn crawl_concurrent(
    pool: &BrowserPool,
    config: &CrawlConfig,
    concurrency: usize,
) -> Result<CrawlSummary, BrowserError> {
    let started = Instant::now();
    let start = parse_web_url(&config.start_url)?;
    let origin = start.origin();
    let recorder = Arc::new(Recorder::create(&config.out)?);
    let policy = Arc::new(NetPolicy::new(
        start.as_str(),
        NetMode::Live {
            record: Some(Arc::clone(&recorder)),
        },
    )?);
    let lease = pool.acquire().await?;
    let first = frontier_url(start.as_str(), &origin).unwrap_or_else(|| start.to_string());
    let shared = Arc::new(Shared {
        frontier: Mutex::new(Frontier {
            queue: VecDeque::from([first.clone()]),
            seen: HashSet::from([first]),
            pages: 0,
            in_flight: 0,
            failed: Vec::new(),
            timed_out: false,
            error: None,
        }),
        lease: tokio::sync::Mutex::new(lease),
        policy: Arc::clone(&policy),
        recorder: Arc::clone(&recorder),
        origin: origin.clone(),
        config: config.clone(),
        started,
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        workers.spawn(worker(Arc::clone(&shared)));
    }
    while workers.join_next().await.is_some() {}
    let mut f = std::mem::replace(
        &mut *lock(&shared.frontier),
        Frontier {
            queue: VecDeque::new(),
            seen: HashSet::new(),
            pages: 0,
            in_flight: 0,
            failed: Vec::new(),
            timed_out: false,
            error: None,
        },
    );
    drop(shared);
    if let Some(e) = f.error.take() {
        return Err(e);
    }
    let blocked = policy.blocked().len();
    let meta = recorder.write_meta(
        &origin.ascii_serialization(),
        start.as_str(),
        config.static_site,
    )?;
    Ok(CrawlSummary {
        meta,
        pages: f.pages,
        left: f.queue.len(),
        failed: f.failed,
        blocked,
        elapsed: started.elapsed(),
        timed_out: f.timed_out,
    })
}

enum Next {
    Visit(String),
    Wait,
    Stop,
}

fn next_url(shared: &Shared) -> Next {
    let mut f = lock(&shared.frontier);
    if f.error.is_some() || f.pages + f.in_flight >= shared.config.max_pages {
        return if f.in_flight == 0 || f.error.is_some() {
            Next::Stop
        } else {
            Next::Wait
        };
    }
    if shared
        .config
        .time_limit
        .is_some_and(|t| shared.started.elapsed() >= t)
    {
        if !f.queue.is_empty() {
            f.timed_out = true;
        }
        return Next::Stop;
    }
    match f.queue.pop_front() {
        Some(u) => {
            f.in_flight += 1;
            Next::Visit(u)
        }
        None if f.in_flight > 0 => Next::Wait,
        None => Next::Stop,
    }
}

/// One tab taking URLs from the shared frontier until it is exhausted or a limit is hit.
async fn worker(shared: Arc<Shared>) {
    let mut tab: Option<(Tab, u32)> = None;
    loop {
        let url = match next_url(&shared) {
            Next::Visit(u) => u,
            Next::Wait => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Next::Stop => break,
        };
        let mut result = Err(BrowserError::Closed);
        let mut out_of_time = false;
        for _attempt in 0..2 {
            if tab.is_none() {
                match open_tab(&shared, None).await {
                    Ok(t) => tab = Some(t),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let Some((t, pid)) = &tab else { break };
            let visiting = visit(t, &url, &shared.origin, shared.config.max_snapshot_chars);
            // The time limit also cuts a page load short: a slow page cannot stretch it.
            result = match shared.config.time_limit {
                Some(limit) => {
                    let left = limit.saturating_sub(shared.started.elapsed());
                    match tokio::time::timeout(left, visiting).await {
                        Ok(r) => r,
                        Err(_) => {
                            out_of_time = true;
                            break;
                        }
                    }
                }
                None => visiting.await,
            };
            match &result {
                Err(e) if e.is_fatal() => {
                    // Crashed or hung browser: the first worker to notice replaces it; every
                    // worker reopens its tab and retries its page once.
                    let dead = *pid;
                    tab = None;
                    if let Err(e) = open_tab(&shared, Some(dead)).await.map(|t| tab = Some(t)) {
                        result = Err(e);
                        break;
                    }
                }
                _ => break,
            }
        }
        let mut f = lock(&shared.frontier);
        f.in_flight -= 1;
        if out_of_time {
            // Not visited: it counts among the links left, and the crawl stops.
            f.queue.push_front(url);
            f.timed_out = true;
            break;
        }
        match result {
            Ok(Some(page)) => {
                // A redirect may land on a page already recorded.
                if page.url != url && !f.seen.insert(page.url.clone()) {
                    continue;
                }
                for l in &page.links {
                    if f.seen.insert(l.clone()) {
                        f.queue.push_back(l.clone());
                    }
                }
                if let Err(e) = shared.recorder.add_page(&page) {
                    f.error = Some(e);
                    break;
                }
                f.pages += 1;
            }
            Ok(None) => {}
            Err(BrowserError::Launch { path, source }) => {
                f.error = Some(BrowserError::Launch { path, source });
                break;
            }
            Err(e) => f.failed.push((url, e.to_string())),
        }
    }
    if let Some((t, _)) = tab {
        t.close().await;
    }
}

/// Open a tab on the crawl's browser; when `dead` names the browser that failed and it is
/// still the current one, replace it first.
async fn open_tab(shared: &Shared, dead: Option<u32>) -> Result<(Tab, u32), BrowserError> {
    let mut lease = shared.lease.lock().await;
    if dead.is_some_and(|d| d == lease.browser().pid()) {
        lease.replace().await?;
    }
    let pid = lease.browser().pid();
    let cdp = lease.browser().cdp().clone();
    drop(lease);
    Ok((Tab::open(&cdp, Arc::clone(&shared.policy)).await?, pid))
}

/// Load one page; None when it is not an HTML document or redirected off the origin.
async fn visit(
    tab: &Tab,
    url: &str,
    origin: &url::Origin,
    max_chars: usize,
) -> Result<Option<PageRecord>, BrowserError> {
    tab.goto(url).await?;
    let (final_url, _) = tab.location().await?;
    let Some(final_norm) = frontier_url(&final_url, origin).or_else(|| {
        Url::parse(&final_url)
            .ok()
            .filter(|u| &u.origin() == origin)
            .map(|mut u| {
                u.set_fragment(None);
                u.to_string()
            })
    }) else {
        return Ok(None);
    };
    let ct = tab.content_type().await?;
    if !ct.contains("html") {
        return Ok(None);
    }
    let snap = tab.snapshot(max_chars).await?;
    let mut links = Vec::new();
    let mut seen = HashSet::new();
    for l in tab.links().await? {
        if let Some(n) = frontier_url(&l, origin)
            && seen.insert(n.clone())
        {
            links.push(n);
        }
    }
    Ok(Some(PageRecord {
        url: final_norm,
        title: snap.title,
        links,
        snapshot: snap.text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_filters() {
        let o = Url::parse("http://127.0.0.1:8000/").map(|u| u.origin());
        let Ok(o) = o else { panic!("url") };
        assert_eq!(
            frontier_url("http://127.0.0.1:8000/a.html#x", &o).as_deref(),
            Some("http://127.0.0.1:8000/a.html")
        );
        assert_eq!(frontier_url("http://127.0.0.1:9000/a.html", &o), None);
        assert_eq!(frontier_url("mailto:x@y.z", &o), None);
        assert_eq!(frontier_url("javascript:void(0)", &o), None);
        assert_eq!(frontier_url("file:///etc/passwd", &o), None);
        assert_eq!(frontier_url("http://127.0.0.1:8000/x.zip", &o), None);
    }
}

/// Where a crawl starts: a URL, or a local folder of HTML served by the built-in static server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteSource {
    /// An http(s) start URL; only its origin is crawled.
    Url(String),
    /// A folder served on 127.0.0.1, crawled from `start` (relative to it).
    Dir {
        /// The folder.
        dir: PathBuf,
        /// The start page, relative to the folder.
        start: String,
        /// The port (0: any free one).
        port: u16,
    },
}

/// Crawl `source` into `config.out` with one browser launched from `launch`, `concurrency`
/// pages at once; `config.start_url` and `config.static_site` are set from the source.
pub async fn crawl_site(
    source: &SiteSource,
    launch: crate::browser::LaunchConfig,
    mut config: CrawlConfig,
    concurrency: usize,
) -> Result<CrawlSummary, BrowserError> {
    let server = match source {
        SiteSource::Dir { dir, port, .. } => {
            Some(crate::serve::StaticServer::start(dir, *port).await?)
        }
        SiteSource::Url(url) => {
            crate::env::check_start_url(url)?;
            None
        }
    };
    config.start_url = match (source, &server) {
        (SiteSource::Dir { start, .. }, Some(s)) => {
            format!("{}{}", s.url(), start.trim_start_matches('/'))
        }
        (SiteSource::Url(url), _) | (SiteSource::Dir { start: url, .. }, None) => url.clone(),
    };
    config.static_site = server.is_some();
    let pool = BrowserPool::new(launch, 1);
    let result = crawl_concurrent(&pool, &config, concurrency).await;
    pool.shutdown().await;
    result
}

impl CrawlSummary {
    /// The summary as `site crawl --json` prints it, for the site folder `out`.
    pub fn to_json(&self, out: &std::path::Path) -> serde_json::Value {
        serde_json::json!({
            "site_dir": out,
            "origin": self.meta.origin,
            "start_url": self.meta.start_url,
            "pages": self.pages,
            "pages_total": self.meta.pages,
            "responses": self.meta.responses,
            "blocked_requests": self.blocked,
            "not_visited": self.left,
            "failed": self.failed.iter().map(|(u, e)| serde_json::json!({"url": u, "error": e})).collect::<Vec<_>>(),
            "timed_out": self.timed_out,
            "seconds": self.elapsed.as_secs_f64(),
            "pages_per_second": self.pages_per_second(),
        })
    }

    /// Pages recorded per second of the crawl.
    pub fn pages_per_second(&self) -> f64 {
        self.pages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary as text, for the site folder `out`.
    pub fn render(&self, out: &std::path::Path) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "crawled {} pages from {} in {:.1} s ({:.1} pages/s)",
            self.pages,
            self.meta.start_url,
            self.elapsed.as_secs_f64(),
            self.pages_per_second()
        );
        let _ = writeln!(
            text,
            "  responses recorded: {}, requests to other origins blocked: {}",
            self.meta.responses, self.blocked
        );
        if self.left > 0 {
            let why = if self.timed_out {
                "time limit"
            } else {
                "page limit"
            };
            let _ = writeln!(text, "  not visited ({why}): {} links", self.left);
        }
        for (url, err) in &self.failed {
            let _ = writeln!(text, "  failed: {url}: {err}");
        }
        let _ = writeln!(text, "site folder: {}", out.display());
        text
    }
}
