//! Shared helpers: where the site and the browser are, and process checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use trajforge_agent::Observation;
use trajforge_browser::{
    BrowserEnvironment, BrowserPool, EnvConfig, LaunchConfig, NetMode, StaticServer,
};

/// The bidict HTML docs, or None (skip) when not fetched; under CI a missing site fails.
pub fn site_dir() -> Option<PathBuf> {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/test-data")
        });
    let dir = data.join("sites/bidict-doc/usr/share/doc/python-bidict-doc/html");
    let browser = trajforge_browser::browser::default_executable();
    let have_browser = browser.is_absolute() && browser.exists();
    if dir.join("index.html").exists() && have_browser {
        return Some(dir);
    }
    let why = format!(
        "test site {} or browser {} missing: run scripts/setup.sh and scripts/fetch-test-data.sh",
        dir.display(),
        browser.display()
    );
    trajforge_testkit::skip_missing(&why);
    None
}

/// A pool with one browser and the given call timeout.
pub fn pool(call_timeout: Duration) -> BrowserPool {
    BrowserPool::new(
        LaunchConfig {
            call_timeout,
            ..LaunchConfig::default()
        },
        1,
    )
}

/// Processes whose process group is `pgid` (a browser and its helpers).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Wait until no process of group `pgid` is left (zombies aside).
pub async fn assert_group_gone(pgid: u32) {
    for _ in 0..50 {
        if group_members(pgid).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "orphan browser processes left in group {pgid}: {:?}",
        group_members(pgid)
    );
}

/// Refs with `role` and accessible `name` on the current page, in page order.
pub fn refs_of(env: &BrowserEnvironment, role: &str, name: &str) -> Vec<String> {
    let mut refs: Vec<String> = env
        .snapshot()
        .refs
        .iter()
        .filter(|(_, t)| t.role == role && t.name == name)
        .map(|(r, _)| r.clone())
        .collect();
    refs.sort_by_key(|r| r[1..].parse::<u64>().unwrap_or(u64::MAX));
    refs
}

/// The first ref with `role` and `name` on the current page.
pub fn ref_of(env: &BrowserEnvironment, role: &str, name: &str) -> String {
    refs_of(env, role, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {role} {name:?} in\n{}", env.snapshot().text))
}

/// Test shorthands on an episode.
pub trait ActOk {
    /// Performs `action` with `args`, failing the test when the observation is an error.
    async fn act_ok(&mut self, action: &str, args: Value) -> Observation;
    /// Clicks the first element with `role` and `name`, failing the test on an error.
    async fn click_ok(&mut self, role: &str, name: &str) -> Observation;
}

impl ActOk for BrowserEnvironment {
    async fn act_ok(&mut self, action: &str, args: Value) -> Observation {
        let obs = self.act(action, &args).await;
        assert!(!obs.error, "{}", obs.text);
        obs
    }

    async fn click_ok(&mut self, role: &str, name: &str) -> Observation {
        let target = ref_of(self, role, name);
        self.act_ok("click", json!({"ref": target})).await
    }
}

/// A folder holding `files` (name, content): a crafted site for the static server.
pub fn crafted_site(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write");
    }
    dir
}

/// An episode on page `url`, live or replayed as `mode` says.
pub async fn start_env(
    pool: &BrowserPool,
    url: &str,
    mode: NetMode,
    config: EnvConfig,
) -> BrowserEnvironment {
    BrowserEnvironment::start(pool, url, mode, config)
        .await
        .unwrap_or_else(|e| panic!("cannot start on {url}: {e}"))
}

/// An episode on the live page `url`.
pub async fn live_env(pool: &BrowserPool, url: &str, config: EnvConfig) -> BrowserEnvironment {
    start_env(pool, url, NetMode::Live { record: None }, config).await
}

/// A static server over `dir`, a pool with one browser (20 s call timeout), a live episode
/// on `page` of the server, and that page's URL.
pub async fn served_env(
    dir: &Path,
    page: &str,
    config: EnvConfig,
) -> (StaticServer, BrowserPool, BrowserEnvironment, String) {
    let server = StaticServer::start(dir, 0).await.expect("server");
    let pool = pool(Duration::from_secs(20));
    let start = format!("{}{page}", server.url());
    let env = live_env(&pool, &start, config).await;
    (server, pool, env, start)
}

/// Close the episode and the pool, and check that no browser process is left.
pub async fn close_all(mut env: BrowserEnvironment, pool: BrowserPool) {
    let pid = env.browser_pid();
    env.close().await;
    pool.shutdown().await;
    assert_group_gone(pid).await;
}

/// Remove `[ref=eN]` markers (ids differ between browser processes).
pub fn without_refs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" [ref=e") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let end = after.find(']').map_or(after.len(), |j| j + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// One request as a [`LogServer`] saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request body as text.
    pub body: String,
}

/// A loopback HTTP server for tests: fixed pages by path, `POST /echo` answering with the
/// request body, and a log of every request it received (to prove what reached it).
pub struct LogServer {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LogServer {
    /// Serve `pages` (path, content type, body) on a free port of 127.0.0.1.
    pub async fn start(pages: Vec<(&str, &str, String)>) -> LogServer {
        use http_body_util::BodyExt;
        let pages: std::sync::Arc<Vec<(String, String, String)>> = std::sync::Arc::new(
            pages
                .into_iter()
                .map(|(p, t, b)| (p.to_string(), t.to_string(), b))
                .collect(),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let pages = std::sync::Arc::clone(&pages);
                let log = std::sync::Arc::clone(&log);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let pages = std::sync::Arc::clone(&pages);
                            let log = std::sync::Arc::clone(&log);
                            async move {
                                let method = req.method().to_string();
                                let path = req
                                    .uri()
                                    .path_and_query()
                                    .map_or("/".to_string(), |p| p.to_string());
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let body = String::from_utf8_lossy(&body).to_string();
                                log.lock().expect("log").push(Seen {
                                    method: method.clone(),
                                    path: path.clone(),
                                    body: body.clone(),
                                });
                                let (status, ctype, text) = if method == "POST"
                                    && path.starts_with("/echo")
                                {
                                    (
                                        200,
                                        "text/html".to_string(),
                                        format!("<title>Echo</title><p>You sent {body}</p>"),
                                    )
                                } else {
                                    let p = path.split('?').next().unwrap_or("/");
                                    match pages.iter().find(|(pp, _, _)| pp == p) {
                                        Some((_, t, b)) => (200, t.clone(), b.clone()),
                                        None => (404, "text/plain".to_string(), "nope".to_string()),
                                    }
                                };
                                let mut r = hyper::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from(text),
                                ));
                                *r.status_mut() =
                                    hyper::StatusCode::from_u16(status).expect("status");
                                r.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    ctype.parse().expect("content type"),
                                );
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LogServer { addr, seen, task }
    }

    /// The base URL, e.g. `http://127.0.0.1:43123/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
