//! Loading pages and waiting for loads: `goto`, the navigation marks actions settle on,
//! the current location and going back in history.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{NavMark, Tab};
use crate::error::BrowserError;
use crate::lock;

impl Tab {
    fn navigations(&self) -> u64 {
        lock(&self.state.nav).navigations
    }

    /// Navigate to an allowed URL and wait for the load.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        if !self.policy.allows(url) {
            return Err(BrowserError::Navigation {
                url: url.to_string(),
                reason: format!("only {} may be opened", self.policy.origin()),
            });
        }
        let before = self.navigations();
        let r = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(err) = r
            .get("errorText")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(BrowserError::Navigation {
                url: url.to_string(),
                reason: explain_net_error(err),
            });
        }
        if r.get("loaderId").is_some() {
            // A new document is on its way: its load is announced however late, so wait for it.
            self.wait_loaded(before, self.nav_timeout).await;
        }
        Ok(())
    }

    /// After an action: wait up to `grace` for a navigation past mark `before` (a committed
    /// document, or a change of URL within one), and for the page to stop loading.
    pub async fn wait_loaded(&self, before: u64, grace: Duration) {
        let start = Instant::now();
        let deadline = start + self.nav_timeout;
        loop {
            let notified = self.state.changed.notified();
            let (navigated, loading) = {
                let n = lock(&self.state.nav);
                (n.navigations > before, n.loading)
            };
            let now = Instant::now();
            if !loading && (navigated || now >= start + grace) {
                return;
            }
            if now >= deadline {
                return;
            }
            let wait_until = if loading || navigated {
                deadline
            } else {
                (start + grace).min(deadline)
            };
            let _ = tokio::time::timeout(wait_until - now, notified).await;
        }
    }

    /// A mark to pass to [`Tab::settle`] after an action.
    pub fn nav_mark(&self) -> NavMark {
        let n = lock(&self.state.nav);
        NavMark {
            navigations: n.navigations,
            requested: n.requested,
        }
    }

    /// After an action taken at `mark`: wait as [`Tab::wait_loaded`] does, up to `grace`, or
    /// up to `navigation_grace` when the page asked for a navigation meanwhile (a script
    /// setting `location` in a handler, a jump menu's `change`).
    pub async fn settle(&self, mark: NavMark, grace: Duration) {
        // A round trip through the renderer first: what the action made the page ask for has
        // been reported by the time it answers.
        let _ = self
            .call(
                "Runtime.evaluate",
                json!({"expression": "0", "returnByValue": true}),
            )
            .await;
        let asked = lock(&self.state.nav).requested > mark.requested;
        let grace = if asked {
            grace.max(self.navigation_grace)
        } else {
            grace
        };
        self.wait_loaded(mark.navigations, grace).await;
    }

    /// Run `action`, then wait up to `grace` for any navigation it caused.
    pub async fn settle_after<F, T>(&self, grace: Duration, action: F) -> Result<T, BrowserError>
    where
        F: std::future::Future<Output = Result<T, BrowserError>>,
    {
        let mark = self.nav_mark();
        let out = action.await?;
        self.settle(mark, grace).await;
        Ok(out)
    }

    /// Current URL and title (from the navigation history: no page script runs).
    pub async fn location(&self) -> Result<(String, String), BrowserError> {
        let h = self.call("Page.getNavigationHistory", json!({})).await?;
        let i = h.get("currentIndex").and_then(Value::as_u64).unwrap_or(0) as usize;
        let e = h
            .pointer(&format!("/entries/{i}"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok((
            e.get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            e.get("title")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ))
    }

    /// Go one entry back in history; false when there is none.
    pub async fn go_back(&self) -> Result<bool, BrowserError> {
        let h = self.call("Page.getNavigationHistory", json!({})).await?;
        let i = h.get("currentIndex").and_then(Value::as_u64).unwrap_or(0) as usize;
        if i == 0 {
            return Ok(false);
        }
        let Some(entry) = h.pointer(&format!("/entries/{}/id", i - 1)).cloned() else {
            return Ok(false);
        };
        let url = h
            .pointer(&format!("/entries/{}/url", i - 1))
            .and_then(Value::as_str)
            .unwrap_or("");
        if url == "about:blank" {
            return Ok(false);
        }
        let before = self.navigations();
        self.call("Page.navigateToHistoryEntry", json!({"entryId": entry}))
            .await?;
        // The entry becomes current when the navigation commits, which a loaded machine may
        // announce late; only then can a load still running be waited for.
        let deadline = Instant::now() + self.nav_timeout;
        while Instant::now() < deadline {
            let h = self.call("Page.getNavigationHistory", json!({})).await?;
            if h.get("currentIndex").and_then(Value::as_u64) != Some(i as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.wait_loaded(before, Duration::from_millis(30)).await;
        Ok(true)
    }
}

fn explain_net_error(err: &str) -> String {
    if err.contains("BLOCKED_BY_CLIENT") {
        format!("{err}: blocked (another origin, or not in the recording while replaying)")
    } else {
        err.to_string()
    }
}
