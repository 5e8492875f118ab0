//! One page in its own browser context: the [`Tab`] and its life (open, call, close).
//!
//! The rest of what a tab does sits in one file per concept, each an `impl Tab` block or
//! the free functions behind one: `navigation` (loads, waits for them, history), `scripts`
//! (trajforge's isolated world and calls into it), `frames` (the snapshot, iframes and
//! sandboxed out-of-process frames merged into it), `actions` (real mouse and keyboard
//! input), `events` (the event pump: navigation state, dialogs, pop-ups, child sessions)
//! and `interception` (the network guard: allow, block, replay or record each request).

mod actions;
mod events;
mod frames;
mod interception;
mod navigation;
mod scripts;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::cdp::Cdp;
use crate::error::BrowserError;
use crate::lock;
use crate::net::{NetMode, NetPolicy};

#[derive(Default)]
struct Nav {
    main_frame: Option<String>,
    /// The main frame's URL, to tell a history-API navigation from a page re-stating its URL.
    url: String,
    /// Between the main frame's "started loading" and "stopped loading" (also announced for
    /// same-document changes such as `history.replaceState`).
    loading: bool,
    /// Navigations of the main frame so far: documents committed, and same-document changes of
    /// the URL.
    navigations: u64,
    /// Navigations the page asked for (a link, a form, a script setting `location`), counted
    /// as the renderer asks: the browser may announce their start much later.
    requested: u64,
}

/// Where the page's navigations stood before an action; see [`Tab::settle`].
#[derive(Debug, Clone, Copy)]
pub struct NavMark {
    navigations: u64,
    requested: u64,
}

#[derive(Default)]
struct NavState {
    nav: Mutex<Nav>,
    changed: Notify,
    /// Sessions of out-of-process frames (sandboxed ones), by frame id.
    frame_sessions: Mutex<std::collections::HashMap<String, String>>,
}

/// A page in a fresh, isolated browser context.
pub struct Tab {
    cdp: Cdp,
    session: String,
    target: String,
    context: String,
    policy: Arc<NetPolicy>,
    state: Arc<NavState>,
    /// The next ref id no page of this tab has used (ids are never handed out twice).
    next_ref: AtomicU64,
    /// Longest wait for a page load.
    pub nav_timeout: Duration,
    /// How long an action the page answered by asking for a navigation waits for it to start.
    pub navigation_grace: Duration,
}

impl Tab {
    /// Open a blank page under `policy` in a new browser context of the browser behind `cdp`.
    pub async fn open(cdp: &Cdp, policy: Arc<NetPolicy>) -> Result<Tab, BrowserError> {
        let mut ctx_params = json!({"disposeOnDetach": true});
        if matches!(policy.mode(), NetMode::Replay(_)) {
            // Belt and braces: whatever escapes interception meets a dead proxy.
            ctx_params["proxyServer"] = json!("http://127.0.0.1:9");
            ctx_params["proxyBypassList"] = json!("<-loopback>");
        }
        let context = browser_call_for(
            cdp,
            "Target.createBrowserContext",
            ctx_params,
            "browserContextId",
        )
        .await?;
        let _ = cdp
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({"behavior": "deny", "browserContextId": context}),
            )
            .await;
        let target = browser_call_for(
            cdp,
            "Target.createTarget",
            json!({"url": "about:blank", "browserContextId": context}),
            "targetId",
        )
        .await?;
        let session = browser_call_for(
            cdp,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
            "sessionId",
        )
        .await?;
        let events = cdp.subscribe(&session);
        let state = Arc::new(NavState::default());
        tokio::spawn(events::pump(
            cdp.clone(),
            session.clone(),
            Arc::clone(&policy),
            Arc::clone(&state),
            events,
        ));
        let tab = Tab {
            cdp: cdp.clone(),
            session,
            target,
            context,
            policy,
            state,
            next_ref: AtomicU64::new(1),
            nav_timeout: Duration::from_secs(20),
            navigation_grace: Duration::from_secs(3),
        };
        tab.call("Page.enable", json!({})).await?;
        tab.call(
            "Fetch.enable",
            json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        )
        .await?;
        // Service workers would answer the page's requests from behind the guard and make
        // requests of their own: registering one fails (its script request is refused in
        // `on_request`), and the page's requests never go through one all the same. The
        // bypass only takes effect with the Network domain on (no bodies kept).
        tab.call(
            "Network.enable",
            json!({"maxTotalBufferSize": 0, "maxResourceBufferSize": 0}),
        )
        .await?;
        tab.call("Network.setBypassServiceWorker", json!({"bypass": true}))
            .await?;
        // Pop-ups start paused and are closed before they load anything.
        tab.call(
            "Target.setAutoAttach",
            json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
        )
        .await?;
        let tree = tab.call("Page.getFrameTree", json!({})).await?;
        if let Some(id) = tree.pointer("/frameTree/frame/id").and_then(Value::as_str) {
            lock(&tab.state.nav).main_frame = Some(id.to_string());
        }
        Ok(tab)
    }

    /// The network policy.
    pub fn policy(&self) -> &Arc<NetPolicy> {
        &self.policy
    }

    /// Call a command in this page's session.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, BrowserError> {
        // While a navigation swaps the page's renderer (an error page is one), the page
        // refuses commands for a moment; they were not run, so asking again is safe.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self
                .cdp
                .call(Some(&self.session), method, params.clone())
                .await
            {
                Err(BrowserError::Protocol { message, .. })
                    if message.contains("Not attached to an active page")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Close the page and its browser context.
    pub async fn close(self) {
        self.cdp.unsubscribe(&self.session);
        let _ = self
            .cdp
            .call(None, "Target.closeTarget", json!({"targetId": self.target}))
            .await;
        let _ = self
            .cdp
            .call(
                None,
                "Target.disposeBrowserContext",
                json!({"browserContextId": self.context}),
            )
            .await;
    }
}

fn str_field(v: &Value, field: &str, method: &str) -> Result<String, BrowserError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| BrowserError::Protocol {
            method: method.to_string(),
            message: format!("no {field} in the answer"),
        })
}

/// Call a browser-level command and take the string `field` of its answer.
async fn browser_call_for(
    cdp: &Cdp,
    method: &str,
    params: Value,
    field: &str,
) -> Result<String, BrowserError> {
    let answer = cdp.call(None, method, params).await?;
    str_field(&answer, field, method)
}
