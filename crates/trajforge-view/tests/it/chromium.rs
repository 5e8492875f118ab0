//! Real headless Chromium on a running viewer: open a page, read its DOM, press keys, and keep
//! a screenshot of each page.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trajforge_browser::{Browser, LaunchConfig, NetMode, NetPolicy, Tab};

/// Chromium, or None (with a note) when it is missing outside CI.
pub async fn launch() -> Option<Browser> {
    let config = LaunchConfig::default();
    if !config.executable.exists() {
        let why = "chromium missing: run scripts/setup.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipping: {why}");
        return None;
    }
    Some(Browser::launch(&config).await.expect("chromium starts"))
}

/// A tab allowed to load only the viewer at `base`.
pub async fn tab(browser: &Browser, base: &str) -> Tab {
    let policy = NetPolicy::new(base, NetMode::Live { record: None }).expect("policy");
    Tab::open(browser.cdp(), Arc::new(policy))
        .await
        .expect("tab")
}

/// Load `url` and wait until the page's script has run.
pub async fn open(tab: &Tab, url: &str) {
    tab.goto(url).await.expect("page loads");
    let ready = tab
        .wait_for(
            "!!document.body && document.body.getAttribute('data-app') === 'ready'",
            Duration::from_secs(5),
        )
        .await
        .expect("evaluate");
    assert!(ready, "{url}: app.js never ran");
}

/// A JavaScript expression's value in the page.
pub async fn eval(tab: &Tab, expression: &str) -> Value {
    tab.evaluate(expression).await.expect("evaluate")
}

/// Where screenshots go: `$TRAJFORGE_VIEW_SCREENSHOTS`, else `view-screenshots` in the
/// target folder's temporary folder.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("TRAJFORGE_VIEW_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("view-screenshots"))
}

/// Save a screenshot of the page as `name.png`.
pub async fn screenshot(tab: &Tab, name: &str) {
    let png = tab.screenshot_png().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}
