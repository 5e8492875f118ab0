//! One page in its own browser context, with the network guard, navigation tracking,
//! snapshots and the low-level actions (real mouse and keyboard input).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::cdp::{Cdp, Event};
use crate::error::BrowserError;
use crate::lock;
use crate::net::{NetMode, NetPolicy};
use crate::snapshot::{self, Snapshot};

#[derive(Default)]
struct Nav {
    main_frame: Option<String>,
    loading: bool,
    started: u64,
}

#[derive(Default)]
struct NavState {
    nav: Mutex<Nav>,
    changed: Notify,
}

/// A page in a fresh, isolated browser context.
pub struct Tab {
    cdp: Cdp,
    session: String,
    target: String,
    context: String,
    policy: Arc<NetPolicy>,
    state: Arc<NavState>,
    /// Longest wait for a page load.
    pub nav_timeout: Duration,
}

const BLOCKED: &str = "BlockedByClient";

impl Tab {
    /// Open a blank page under `policy` in a new browser context of the browser behind `cdp`.
    pub async fn open(cdp: &Cdp, policy: Arc<NetPolicy>) -> Result<Tab, BrowserError> {
        let mut ctx_params = json!({"disposeOnDetach": true});
        if matches!(policy.mode(), NetMode::Replay(_)) {
            // Belt and braces: whatever escapes interception meets a dead proxy.
            ctx_params["proxyServer"] = json!("http://127.0.0.1:9");
            ctx_params["proxyBypassList"] = json!("<-loopback>");
        }
        let ctx = cdp
            .call(None, "Target.createBrowserContext", ctx_params)
            .await?;
        let context = str_field(&ctx, "browserContextId", "Target.createBrowserContext")?;
        let _ = cdp
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({"behavior": "deny", "browserContextId": context}),
            )
            .await;
        let t = cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .await?;
        let target = str_field(&t, "targetId", "Target.createTarget")?;
        let a = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?;
        let session = str_field(&a, "sessionId", "Target.attachToTarget")?;
        let events = cdp.subscribe(&session);
        let state = Arc::new(NavState::default());
        tokio::spawn(pump(
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
            nav_timeout: Duration::from_secs(20),
        };
        tab.call("Page.enable", json!({})).await?;
        tab.call(
            "Fetch.enable",
            json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        )
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
        self.cdp.call(Some(&self.session), method, params).await
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

    fn nav_started(&self) -> u64 {
        lock(&self.state.nav).started
    }

    /// Navigate to an allowed URL and wait for the load.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        if !self.policy.allows(url) {
            return Err(BrowserError::Navigation {
                url: url.to_string(),
                reason: format!("only {} may be opened", self.policy.origin()),
            });
        }
        let before = self.nav_started();
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
            self.wait_loaded(before, Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// After an action: wait up to `grace` for a navigation to start, then for it to finish.
    pub async fn wait_loaded(&self, before: u64, grace: Duration) {
        let start = Instant::now();
        let deadline = start + self.nav_timeout;
        loop {
            let notified = self.state.changed.notified();
            let (started, loading) = {
                let n = lock(&self.state.nav);
                (n.started, n.loading)
            };
            let now = Instant::now();
            if !loading && (started > before || now >= start + grace) {
                return;
            }
            if now >= deadline {
                return;
            }
            let wait_until = if loading || started > before {
                deadline
            } else {
                (start + grace).min(deadline)
            };
            let _ = tokio::time::timeout(wait_until - now, notified).await;
        }
    }

    /// Run `action`, then wait for any navigation it caused.
    pub async fn settle_after<F, T>(&self, grace: Duration, action: F) -> Result<T, BrowserError>
    where
        F: std::future::Future<Output = Result<T, BrowserError>>,
    {
        let before = self.nav_started();
        let out = action.await?;
        // A round trip through the renderer first: a navigation the input started has
        // normally been announced by the time it answers, so the grace can stay short.
        let _ = self
            .call(
                "Runtime.evaluate",
                json!({"expression": "0", "returnByValue": true}),
            )
            .await;
        self.wait_loaded(before, grace).await;
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
        let before = self.nav_started();
        self.call("Page.navigateToHistoryEntry", json!({"entryId": entry}))
            .await?;
        self.wait_loaded(before, Duration::from_millis(300)).await;
        Ok(true)
    }

    /// The accessibility snapshot of the page, iframes merged, cut past `max_chars`.
    pub async fn snapshot(&self, max_chars: usize) -> Result<Snapshot, BrowserError> {
        let main = self.call("Accessibility.getFullAXTree", json!({})).await?;
        let main_nodes = main.get("nodes").cloned().unwrap_or(Value::Null);
        let mut frames = Vec::new();
        let tree = self.call("Page.getFrameTree", json!({})).await?;
        let mut stack: Vec<Value> = tree
            .pointer("/frameTree/childFrames")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        while let Some(f) = stack.pop() {
            if let Some(children) = f.get("childFrames").and_then(Value::as_array) {
                stack.extend(children.iter().cloned());
            }
            let Some(id) = f.pointer("/frame/id").and_then(Value::as_str) else {
                continue;
            };
            // Frames of other origins never load (the guard blocks them): skip failures.
            let Ok(owner) = self.call("DOM.getFrameOwner", json!({"frameId": id})).await else {
                continue;
            };
            let Some(backend) = owner.get("backendNodeId").and_then(Value::as_i64) else {
                continue;
            };
            if let Ok(t) = self
                .call("Accessibility.getFullAXTree", json!({"frameId": id}))
                .await
            {
                frames.push((backend, t.get("nodes").cloned().unwrap_or(Value::Null)));
            }
        }
        let (url, title) = self.location().await?;
        Ok(snapshot::build(&main_nodes, &frames, max_chars, url, title))
    }

    /// Links of the page, absolute, in order: anchors without `download`, and the navigational
    /// `<link rel>`s (index, search, next, prev, contents, help) that reach index and search pages.
    pub async fn links(&self) -> Result<Vec<String>, BrowserError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": "JSON.stringify(Array.from(document.querySelectorAll('a[href], area[href], link[href][rel~=index], link[href][rel~=search], link[href][rel~=next], link[href][rel~=prev], link[href][rel~=contents], link[href][rel~=help]')).filter(a => !a.hasAttribute('download')).map(a => a.href))",
                    "returnByValue": true
                }),
            )
            .await?;
        let text = r
            .pointer("/result/value")
            .and_then(Value::as_str)
            .unwrap_or("[]");
        Ok(serde_json::from_str(text).unwrap_or_default())
    }

    /// The document's MIME type.
    pub async fn content_type(&self) -> Result<String, BrowserError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": "document.contentType", "returnByValue": true}),
            )
            .await?;
        Ok(r.pointer("/result/value")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string())
    }

    async fn object_of(&self, backend: i64) -> Result<String, BrowserError> {
        let r = self
            .call("DOM.resolveNode", json!({"backendNodeId": backend}))
            .await?;
        r.pointer("/object/objectId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BrowserError::Protocol {
                method: "DOM.resolveNode".into(),
                message: "no object for node".into(),
            })
    }

    /// Call a function with `this` = the element; returns its JSON result.
    pub async fn call_on(
        &self,
        backend: i64,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, BrowserError> {
        let object = self.object_of(backend).await?;
        let arguments: Vec<Value> = args.into_iter().map(|v| json!({"value": v})).collect();
        let r = self
            .call(
                "Runtime.callFunctionOn",
                json!({
                    "objectId": object,
                    "functionDeclaration": function,
                    "arguments": arguments,
                    "returnByValue": true,
                }),
            )
            .await;
        let _ = self
            .call("Runtime.releaseObject", json!({"objectId": object}))
            .await;
        let r = r?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(BrowserError::Protocol {
                method: "Runtime.callFunctionOn".into(),
                message: ex
                    .pointer("/exception/description")
                    .and_then(Value::as_str)
                    .unwrap_or("exception")
                    .to_string(),
            });
        }
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// A real left click in the middle of the element, after scrolling it into view.
    pub async fn click(&self, backend: i64) -> Result<(), BrowserError> {
        let _ = self
            .call(
                "DOM.scrollIntoViewIfNeeded",
                json!({"backendNodeId": backend}),
            )
            .await;
        // Links that would open a new tab open in this one (new tabs are closed unseen).
        self.call_on(
            backend,
            "function() { const a = this.closest && this.closest('a[target], area[target]'); if (a) a.removeAttribute('target'); }",
            vec![],
        )
        .await?;
        let q = self
            .call("DOM.getContentQuads", json!({"backendNodeId": backend}))
            .await?;
        let quad = q
            .pointer("/quads/0")
            .and_then(Value::as_array)
            .filter(|q| q.len() == 8)
            .ok_or_else(|| BrowserError::Protocol {
                method: "DOM.getContentQuads".into(),
                message: "the element is not visible (it has no box on screen)".into(),
            })?;
        let xs: Vec<f64> = quad.iter().step_by(2).filter_map(Value::as_f64).collect();
        let ys: Vec<f64> = quad
            .iter()
            .skip(1)
            .step_by(2)
            .filter_map(Value::as_f64)
            .collect();
        let x = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let y = ys.iter().sum::<f64>() / ys.len().max(1) as f64;
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseMoved", "x": x, "y": y}),
        )
        .await?;
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mousePressed", "x": x, "y": y, "button": "left", "clickCount": 1}),
        )
        .await?;
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseReleased", "x": x, "y": y, "button": "left", "clickCount": 1}),
        )
        .await?;
        Ok(())
    }

    /// Focus an editable element, select its content and type `text` over it.
    pub async fn fill(&self, backend: i64, text: &str) -> Result<(), BrowserError> {
        let _ = self
            .call(
                "DOM.scrollIntoViewIfNeeded",
                json!({"backendNodeId": backend}),
            )
            .await;
        let ok = self
            .call_on(
                backend,
                "function() { const t = this.tagName; const editable = this.isContentEditable || t === 'TEXTAREA' || (t === 'INPUT' && !['checkbox','radio','submit','button','image','file','reset','hidden'].includes(this.type)); if (!editable || this.disabled || this.readOnly) return false; this.focus(); if (this.select) this.select(); else document.execCommand('selectAll'); return true; }",
                vec![],
            )
            .await?;
        if ok != Value::Bool(true) {
            return Err(BrowserError::Protocol {
                method: "fill".into(),
                message: "the element is not an editable text field".into(),
            });
        }
        if text.is_empty() {
            self.press("Delete").await?;
        } else {
            self.call("Input.insertText", json!({"text": text})).await?;
        }
        Ok(())
    }

    /// Choose an option of a `<select>` by value or visible label.
    pub async fn select_option(&self, backend: i64, value: &str) -> Result<String, BrowserError> {
        let r = self
            .call_on(
                backend,
                "function(v) { if (this.tagName !== 'SELECT') return {error: 'the element is not a <select>'}; const o = Array.from(this.options).find(o => o.value === v || o.label === v || o.text.trim() === v); if (!o) return {error: 'no option with value or label ' + JSON.stringify(v) + '; options: ' + Array.from(this.options).map(o => JSON.stringify(o.label)).join(', ')}; this.value = o.value; this.dispatchEvent(new Event('input', {bubbles: true})); this.dispatchEvent(new Event('change', {bubbles: true})); return {label: o.label}; }",
                vec![json!(value)],
            )
            .await?;
        if let Some(e) = r.get("error").and_then(Value::as_str) {
            return Err(BrowserError::Protocol {
                method: "select_option".into(),
                message: e.to_string(),
            });
        }
        Ok(r.get("label")
            .and_then(Value::as_str)
            .unwrap_or(value)
            .to_string())
    }

    /// Press a key (Enter, Tab, Escape, arrows, ... or one character).
    pub async fn press(&self, key: &str) -> Result<(), BrowserError> {
        let (key, code, vk, text) = key_info(key).ok_or_else(|| BrowserError::Protocol {
            method: "press".into(),
            message: format!(
                "unknown key {key:?}; use one of {} or a single character",
                NAMED_KEYS
                    .iter()
                    .map(|k| k.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let mut down =
            json!({"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk});
        if let Some(t) = &text {
            down["text"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", down).await?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk}),
        )
        .await?;
        Ok(())
    }

    /// Scroll the page by most of a screen; returns (scrollY, viewport height, page height).
    pub async fn scroll(&self, down: bool) -> Result<(i64, i64, i64), BrowserError> {
        let sign = if down { 1 } else { -1 };
        let r = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": format!("window.scrollBy({{top: {sign} * Math.round(innerHeight * 0.8), behavior: 'instant'}}); [Math.round(scrollY), innerHeight, document.documentElement.scrollHeight]"),
                    "returnByValue": true
                }),
            )
            .await?;
        let v = r.pointer("/result/value").cloned().unwrap_or(Value::Null);
        let n = |i: usize| v.get(i).and_then(Value::as_i64).unwrap_or(0);
        Ok((n(0), n(1), n(2)))
    }
}

const NAMED_KEYS: &[(&str, &str, i64, Option<&str>)] = &[
    ("Enter", "Enter", 13, Some("\r")),
    ("Tab", "Tab", 9, None),
    ("Escape", "Escape", 27, None),
    ("Backspace", "Backspace", 8, None),
    ("Delete", "Delete", 46, None),
    ("ArrowUp", "ArrowUp", 38, None),
    ("ArrowDown", "ArrowDown", 40, None),
    ("ArrowLeft", "ArrowLeft", 37, None),
    ("ArrowRight", "ArrowRight", 39, None),
    ("PageUp", "PageUp", 33, None),
    ("PageDown", "PageDown", 34, None),
    ("Home", "Home", 36, None),
    ("End", "End", 35, None),
    ("Space", "Space", 32, Some(" ")),
];

fn key_info(key: &str) -> Option<(String, String, i64, Option<String>)> {
    if let Some(k) = NAMED_KEYS.iter().find(|k| k.0.eq_ignore_ascii_case(key)) {
        let key_name = if k.0 == "Space" { " " } else { k.0 };
        return Some((key_name.into(), k.1.into(), k.2, k.3.map(str::to_string)));
    }
    let mut chars = key.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let vk = if c.is_ascii_alphanumeric() {
        c.to_ascii_uppercase() as i64
    } else {
        0
    };
    let code = if c.is_ascii_alphabetic() {
        format!("Key{}", c.to_ascii_uppercase())
    } else if c.is_ascii_digit() {
        format!("Digit{c}")
    } else {
        String::new()
    };
    Some((c.to_string(), code, vk, Some(c.to_string())))
}

fn explain_net_error(err: &str) -> String {
    if err.contains("BLOCKED_BY_CLIENT") {
        format!("{err}: blocked (another origin, or not in the recording while replaying)")
    } else {
        err.to_string()
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

/// Consume the page's events: navigation state, dialogs, pop-ups, and the network guard.
// Boxed with an explicit `Send` because child sessions (frames, workers) get a pump of their own.
fn pump(
    cdp: Cdp,
    session: String,
    policy: Arc<NetPolicy>,
    state: Arc<NavState>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        while let Some(ev) = events.recv().await {
            match ev.method.as_str() {
                "Fetch.requestPaused" => {
                    let (cdp, session, policy) =
                        (cdp.clone(), session.clone(), Arc::clone(&policy));
                    tokio::spawn(async move {
                        let _ = on_request(&cdp, &session, &policy, &ev.params).await;
                    });
                }
                "Page.frameStartedLoading" | "Page.frameStoppedLoading" => {
                    let frame = ev.params.get("frameId").and_then(Value::as_str);
                    let mut n = lock(&state.nav);
                    if frame.is_some() && frame == n.main_frame.as_deref() {
                        if ev.method == "Page.frameStartedLoading" {
                            n.loading = true;
                            n.started += 1;
                        } else {
                            n.loading = false;
                        }
                        drop(n);
                        state.changed.notify_waiters();
                    }
                }
                "Page.frameNavigated" => {
                    let f = &ev.params["frame"];
                    if f.get("parentId").is_none()
                        && let Some(id) = f.get("id").and_then(Value::as_str)
                    {
                        lock(&state.nav).main_frame = Some(id.to_string());
                    }
                }
                "Page.javascriptDialogOpening" => {
                    // Nobody answers dialogs: dismiss them or the page hangs.
                    let (cdp, session) = (cdp.clone(), session.clone());
                    tokio::spawn(async move {
                        let _ = cdp
                            .call(
                                Some(&session),
                                "Page.handleJavaScriptDialog",
                                json!({"accept": false}),
                            )
                            .await;
                    });
                }
                "Target.attachedToTarget" => {
                    let info = &ev.params["targetInfo"];
                    let kind = info
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let id = info
                        .get("targetId")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let child = ev
                        .params
                        .get("sessionId")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let (cdp, policy, state) =
                        (cdp.clone(), Arc::clone(&policy), Arc::clone(&state));
                    tokio::spawn(async move {
                        if kind == "page" {
                            // A pop-up: closed while still paused, before it loads anything.
                            let _ = cdp
                                .call(None, "Target.closeTarget", json!({"targetId": id}))
                                .await;
                            return;
                        }
                        // An out-of-process frame or a worker: same guard, then let it run.
                        let events = cdp.subscribe(&child);
                        tokio::spawn(pump(cdp.clone(), child.clone(), policy, state, events));
                        let s = Some(child.as_str());
                        let _ = cdp
                        .call(s, "Fetch.enable", json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}))
                        .await;
                        let _ = cdp
                            .call(s, "Runtime.runIfWaitingForDebugger", json!({}))
                            .await;
                    });
                }
                _ => {}
            }
        }
    })
}

async fn on_request(
    cdp: &Cdp,
    session: &str,
    policy: &NetPolicy,
    p: &Value,
) -> Result<(), BrowserError> {
    let id = p.get("requestId").and_then(Value::as_str).unwrap_or("");
    let url = p
        .pointer("/request/url")
        .and_then(Value::as_str)
        .unwrap_or("");
    let method = p
        .pointer("/request/method")
        .and_then(Value::as_str)
        .unwrap_or("GET");
    let s = Some(session);
    let fail = || {
        cdp.call(
            s,
            "Fetch.failRequest",
            json!({"requestId": id, "errorReason": BLOCKED}),
        )
    };
    let at_response =
        p.get("responseStatusCode").is_some() || p.get("responseErrorReason").is_some();
    if !at_response {
        if !policy.allows(url) {
            policy.note_blocked(url);
            fail().await?;
            return Ok(());
        }
        match policy.mode() {
            NetMode::Replay(rec) => {
                let Some(r) = rec.lookup(method, url) else {
                    policy.note_miss(url);
                    fail().await?;
                    return Ok(());
                };
                let body = rec.body(r)?;
                let headers: Vec<Value> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.to_ascii_lowercase().as_str(),
                            "content-encoding"
                                | "content-length"
                                | "transfer-encoding"
                                | "connection"
                                | "keep-alive"
                        )
                    })
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect();
                cdp.call(
                    s,
                    "Fetch.fulfillRequest",
                    json!({
                        "requestId": id,
                        "responseCode": r.status,
                        "responseHeaders": headers,
                        "body": base64::engine::general_purpose::STANDARD.encode(body.as_slice()),
                    }),
                )
                .await?;
            }
            NetMode::Live { record } => {
                cdp.call(
                    s,
                    "Fetch.continueRequest",
                    json!({"requestId": id, "interceptResponse": record.is_some()}),
                )
                .await?;
            }
        }
        return Ok(());
    }
    // Response stage (recording a live site).
    if p.get("responseErrorReason").is_some() {
        cdp.call(s, "Fetch.continueRequest", json!({"requestId": id}))
            .await?;
        return Ok(());
    }
    let status = p
        .get("responseStatusCode")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u16;
    let headers: Vec<(String, String)> = p
        .get("responseHeaders")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["name"].as_str().unwrap_or("").to_string(),
                        h["value"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let attachment = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-disposition")
            && v.to_ascii_lowercase().starts_with("attachment")
    });
    if attachment {
        policy.note_blocked(url);
        fail().await?;
        return Ok(());
    }
    if let NetMode::Live { record: Some(rec) } = policy.mode() {
        let body = if (300..400).contains(&status) || status == 204 {
            None
        } else {
            match cdp
                .call(s, "Fetch.getResponseBody", json!({"requestId": id}))
                .await
            {
                Ok(b) => {
                    let text = b.get("body").and_then(Value::as_str).unwrap_or("");
                    if b.get("base64Encoded").and_then(Value::as_bool) == Some(true) {
                        base64::engine::general_purpose::STANDARD.decode(text).ok()
                    } else {
                        Some(text.as_bytes().to_vec())
                    }
                }
                Err(_) => None,
            }
        };
        let _ = rec.add_response(method, url, status, headers, body.as_deref());
    }
    cdp.call(s, "Fetch.continueRequest", json!({"requestId": id}))
        .await?;
    Ok(())
}
