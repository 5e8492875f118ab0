//! Chromium processes and the pool that reuses them across episodes.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cdp::Cdp;
use crate::error::BrowserError;
use crate::lock;

/// Flags that keep Chromium headless and off the network it would otherwise call home to.
pub const QUIET_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions",
    "--metrics-recording-only",
    "--mute-audio",
    "--password-store=basic",
    "--window-size=1280,900",
];

/// How to start a browser.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// The Chromium executable.
    pub executable: PathBuf,
    /// Extra command-line flags.
    pub extra_args: Vec<String>,
    /// Timeout of every DevTools call.
    pub call_timeout: Duration,
}

impl Default for LaunchConfig {
    fn default() -> Self {
        LaunchConfig {
            executable: default_executable(),
            extra_args: Vec::new(),
            call_timeout: Duration::from_secs(20),
        }
    }
}

/// `$TRAJFORGE_CHROMIUM`, else Debian's binary behind the `chromium` wrapper, else `chromium`.
pub fn default_executable() -> PathBuf {
    if let Some(p) = std::env::var_os("TRAJFORGE_CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    for p in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("chromium")
}

/// One Chromium process (and its helpers, all in one process group) with a fresh profile.
pub struct Browser {
    cdp: Cdp,
    child: tokio::process::Child,
    pid: u32,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium and wait until it answers.
    pub async fn launch(config: &LaunchConfig) -> Result<Browser, BrowserError> {
        let launch_err = |source| BrowserError::Launch {
            path: config.executable.clone(),
            source,
        };
        let profile = tempfile::Builder::new()
            .prefix("trajforge-chromium-")
            .tempdir()
            .map_err(launch_err)?;
        let log = std::fs::File::create(profile.path().join("chromium.log")).map_err(launch_err)?;
        // The pipe protocol wants fds 3 (commands in) and 4 (replies out); a shell maps our
        // stdin/stdout there without unsafe pre_exec code, then execs Chromium in place.
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(&config.executable)
            .args(QUIET_FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .args(&config.extra_args)
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(launch_err)?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(pid);
            return Err(launch_err(std::io::Error::other("no pipe to the browser")));
        };
        let cdp = Cdp::start(stdout, stdin, config.call_timeout);
        let browser = Browser {
            cdp,
            child,
            pid,
            _profile: profile,
        };
        let ready = browser
            .cdp
            .call_within(
                None,
                "Browser.getVersion",
                json!({}),
                Duration::from_secs(30),
            )
            .await;
        if let Err(e) = ready {
            let log = std::fs::read_to_string(browser._profile.path().join("chromium.log"))
                .unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(launch_err(std::io::Error::other(format!(
                "{e}; log: {tail}"
            ))));
        }
        Ok(browser)
    }

    /// The DevTools connection.
    pub fn cdp(&self) -> &Cdp {
        &self.cdp
    }

    /// Process id (also the process group id) of the browser.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// False once the browser exited or its pipe closed.
    pub fn is_alive(&mut self) -> bool {
        !self.cdp.is_closed() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Alive and answering within `within`.
    pub async fn healthy(&mut self, within: Duration) -> bool {
        self.is_alive()
            && self
                .cdp
                .call_within(None, "Browser.getVersion", json!({}), within)
                .await
                .is_ok()
    }

    /// Kill the browser and all its helper processes.
    pub async fn kill(&mut self) {
        kill_group(self.pid);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(self.pid);
    }
}

/// SIGKILL a whole process group (the browser runs as its own group leader).
fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

struct PoolInner {
    config: LaunchConfig,
    idle: Mutex<Vec<Browser>>,
    slots: Arc<Semaphore>,
    launched: AtomicUsize,
    replaced: AtomicUsize,
}

/// Up to `size` browsers, reused across episodes.
#[derive(Clone)]
pub struct BrowserPool {
    inner: Arc<PoolInner>,
}

impl BrowserPool {
    /// A pool of at most `size` browsers (launched lazily).
    pub fn new(config: LaunchConfig, size: usize) -> BrowserPool {
        BrowserPool {
            inner: Arc::new(PoolInner {
                config,
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(size.max(1))),
                launched: AtomicUsize::new(0),
                replaced: AtomicUsize::new(0),
            }),
        }
    }

    /// The launch configuration.
    pub fn config(&self) -> &LaunchConfig {
        &self.inner.config
    }

    /// Browsers started so far.
    pub fn launched(&self) -> usize {
        self.inner.launched.load(Ordering::SeqCst)
    }

    /// Browsers found dead or hung and replaced so far.
    pub fn replaced(&self) -> usize {
        self.inner.replaced.load(Ordering::SeqCst)
    }

    /// Borrow a healthy browser, waiting for a free slot; dead idle ones are replaced.
    pub async fn acquire(&self) -> Result<Lease, BrowserError> {
        let permit = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .map_err(|_| BrowserError::Closed)?;
        loop {
            let idle = lock(&self.inner.idle).pop();
            let Some(mut browser) = idle else { break };
            if browser.healthy(Duration::from_secs(3)).await {
                return Ok(Lease {
                    browser: Some(browser),
                    pool: self.clone(),
                    _permit: permit,
                });
            }
            browser.kill().await;
            self.inner.replaced.fetch_add(1, Ordering::SeqCst);
        }
        let browser = self.launch().await?;
        Ok(Lease {
            browser: Some(browser),
            pool: self.clone(),
            _permit: permit,
        })
    }

    async fn launch(&self) -> Result<Browser, BrowserError> {
        let b = Browser::launch(&self.inner.config).await?;
        self.inner.launched.fetch_add(1, Ordering::SeqCst);
        Ok(b)
    }

    /// Kill the idle browsers (leased ones die when their lease drops without a pool).
    pub async fn shutdown(&self) {
        let idle: Vec<Browser> = std::mem::take(&mut *lock(&self.inner.idle));
        for mut b in idle {
            b.kill().await;
        }
    }
}

/// A browser borrowed from the pool; it goes back on drop when still alive.
pub struct Lease {
    browser: Option<Browser>,
    pool: BrowserPool,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// The browser.
    pub fn browser(&mut self) -> &mut Browser {
        // Invariant: `browser` is only None during `drop`.
        self.browser
            .as_mut()
            .expect("a lease holds a browser until dropped")
    }

    /// The DevTools connection of the browser.
    pub fn cdp(&self) -> Option<&Cdp> {
        self.browser.as_ref().map(Browser::cdp)
    }

    /// Kill this (crashed or hung) browser and launch a fresh one in its place.
    pub async fn replace(&mut self) -> Result<(), BrowserError> {
        if let Some(old) = self.browser.as_mut() {
            old.kill().await;
        }
        self.pool.inner.replaced.fetch_add(1, Ordering::SeqCst);
        let fresh = self.pool.launch().await?;
        self.browser = Some(fresh);
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A dead browser is dropped here instead, which kills its process group.
        if let Some(mut b) = self.browser.take()
            && b.is_alive()
        {
            lock(&self.pool.inner.idle).push(b);
        }
    }
}
