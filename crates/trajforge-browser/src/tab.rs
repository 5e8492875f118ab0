//! One page in its own browser context, with the network guard, navigation tracking,
//! snapshots and the low-level actions (real mouse and keyboard input).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::cdp::{Cdp, Event};
use crate::error::BrowserError;
use crate::lock;
use crate::net::{NetMode, NetPolicy};
use crate::snapshot::{self, RefTarget, Snapshot};

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

const BLOCKED: &str = "BlockedByClient";

/// The name of trajforge's isolated world in every page (page scripts cannot reach it).
const WORLD: &str = "trajforge";

/// Defines `willNavigate(el, enter)`: whether activating `el` (a click, or Enter) should load a
/// page: a link other than a fragment of this page, a submit button, or Enter in a form field,
/// in the top document (a frame's own navigation is not the page's). Such actions wait for the
/// load to start however late the browser announces it.
const WILL_NAVIGATE_JS: &str = "const willNavigate = (el, enter) => { if (!el || !el.closest) return false; const win = el.ownerDocument.defaultView; if (!win || win !== win.top) return false; const link = el.closest('a[href], area[href]'); if (link) { if (link.hasAttribute('download')) return false; const raw = link.getAttribute('href').trim(); if (/^javascript:/i.test(raw)) return false; let u; try { u = new URL(link.href); } catch (e) { return false; } if (u.protocol !== 'http:' && u.protocol !== 'https:') return false; const here = new URL(el.ownerDocument.location.href); const frag = raw.includes('#'); u.hash = ''; here.hash = ''; return !(frag && u.href === here.href); } const c = el.closest('button, input'); const f = c && c.form; if (!f || c.disabled || (f.getAttribute('method') || '').toLowerCase() === 'dialog') return false; const t = (c.type || '').toLowerCase(); if (c.tagName === 'BUTTON') return t === 'submit'; if (t === 'submit' || t === 'image') return true; return enter && !['checkbox', 'radio', 'button', 'reset', 'file', 'hidden', 'range', 'color'].includes(t); };";

/// Defines `frameOffset(el)`: where the viewport of `el`'s frame starts in the top viewport
/// (input events use the top one), adding each frame element's border and padding, up to
/// the first frame this world cannot look out of.
const FRAME_OFFSET_JS: &str = "const frameOffset = (el) => { let x = 0, y = 0; let win = el.ownerDocument.defaultView; while (win) { let f = null; try { f = win.frameElement; } catch (e) { f = null; } if (!f) break; const fr = f.getBoundingClientRect(); const cs = f.ownerDocument.defaultView.getComputedStyle(f); x += fr.left + f.clientLeft + parseFloat(cs.paddingLeft); y += fr.top + f.clientTop + parseFloat(cs.paddingTop); win = f.ownerDocument.defaultView; } return [x, y]; };";

/// The in-page half of a click, run on the element: drop `target` (links that would open a
/// new tab open in this one; new tabs are closed unseen), centre the element when its middle
/// is off screen or under something else (a sticky header), and arm a guard that keeps the
/// coming press from the page unless it lands on the element.
fn click_prepare_js() -> String {
    format!(
        r#"function(reveal) {{
  reveal();
  const a = this.closest && this.closest('a[target], area[target]');
  if (a) a.removeAttribute('target');
  let r = this.getClientRects()[0];
  if (!r || (r.width === 0 && r.height === 0)) return null;
  const root = this.getRootNode();
  const h = root.elementFromPoint ? root.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) : this;
  if (!h || !(this.contains(h) || h.contains(this))) {{
    this.scrollIntoView({{block: 'center', inline: 'center', behavior: 'instant'}});
    r = this.getClientRects()[0] || r;
  }}
  const S = globalThis.__trajforge;
  if (S.clickGuard) S.clickGuard.off();
  const el = this, win = this.ownerDocument.defaultView, g = {{hit: null, other: ''}};
  const types = ['pointerdown', 'mousedown', 'pointerup', 'mouseup', 'click', 'auxclick', 'dblclick'];
  const on = (e) => {{
    if (!e.isTrusted) return;
    if (g.hit === null) {{
      const path = e.composedPath();
      // A press on one of the element's labels reaches it too (styled check boxes hide the
      // real one under their label).
      g.hit = path.includes(el) || Array.from(el.labels || []).some((l) => path.includes(l));
      const t = e.target;
      if (!g.hit && t && t.tagName) g.other = '<' + t.tagName.toLowerCase() + (t.id ? ' id="' + t.id + '"' : '') + '> "' + (t.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60) + '"';
    }}
    if (!g.hit) {{ e.preventDefault(); e.stopImmediatePropagation(); }}
  }};
  for (const t of types) win.addEventListener(t, on, true);
  S.clickGuard = {{g, off: () => {{ for (const t of types) win.removeEventListener(t, on, true); }}}};
  {FRAME_OFFSET_JS}
  {WILL_NAVIGATE_JS}
  const o = frameOffset(this);
  return [r.left + r.width / 2 + o[0], r.top + r.height / 2 + o[1], willNavigate(this, false)];
}}"#
    )
}

/// Disarm the click guard; `{missed: what}` when the press landed on something else.
const CLICK_VERDICT_JS: &str = "function() { const S = globalThis.__trajforge; const c = S && S.clickGuard; if (!c) return null; c.off(); S.clickGuard = null; return c.g.hit === false ? {missed: c.g.other || 'another element'} : null; }";

/// Wraps an action (a function declaration taking `reveal` and its arguments, with `this` =
/// the element) so that it runs on the element behind a ref of the latest snapshot, or
/// answers `stale`. `reveal()` scrolls the element into view when its centre (where a click
/// lands) is outside the viewport. Composed as text, not evaluated in the page: no `eval`
/// that a page's Content-Security-Policy could forbid.
fn call_on_source(action: &str) -> String {
    format!(
        "function(id, ...args) {{ const S = globalThis.__trajforge; const el = S && S.els.get(id); if (!el || !el.isConnected) return {{stale: true}}; const reveal = () => {{ const r = el.getBoundingClientRect(); const w = el.ownerDocument.defaultView; const x = r.left + r.width / 2, y = r.top + r.height / 2; if (y < 0 || x < 0 || y >= w.innerHeight || x >= w.innerWidth) el.scrollIntoView({{block: 'center', inline: 'center', behavior: 'instant'}}); }}; return {{value: ({action}).apply(el, [reveal, ...args])}}; }}"
    )
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

    fn main_frame(&self) -> Option<String> {
        lock(&self.state.nav).main_frame.clone()
    }

    /// The session that runs `frame`: its own for an out-of-process frame, else the page's.
    fn session_of(&self, frame: Option<&str>) -> String {
        frame
            .and_then(|f| lock(&self.state.frame_sessions).get(f).cloned())
            .unwrap_or_else(|| self.session.clone())
    }

    /// The execution context of trajforge's isolated world in the current document of
    /// `frame` (`None`: the main frame). Chromium keeps one world per frame and name, so
    /// repeated calls reach the same context (and the walker's ref state) until the
    /// document changes.
    async fn world(&self, frame: Option<&str>) -> Result<i64, BrowserError> {
        let frame = match frame {
            Some(f) => f.to_string(),
            None => match self.main_frame() {
                Some(f) => f,
                None => {
                    let tree = self.call("Page.getFrameTree", json!({})).await?;
                    str_field(
                        tree.pointer("/frameTree/frame").unwrap_or(&Value::Null),
                        "id",
                        "Page.getFrameTree",
                    )?
                }
            },
        };
        let session = self.session_of(Some(&frame));
        let w = self
            .cdp
            .call(
                Some(&session),
                "Page.createIsolatedWorld",
                json!({"frameId": frame, "worldName": WORLD}),
            )
            .await?;
        w.get("executionContextId")
            .and_then(Value::as_i64)
            .ok_or_else(|| BrowserError::Protocol {
                method: "Page.createIsolatedWorld".into(),
                message: "no executionContextId in the answer".into(),
            })
    }

    /// Call `function` in trajforge's isolated world of `frame` with JSON `args`; returns
    /// its value.
    async fn call_in_world(
        &self,
        frame: Option<&str>,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, BrowserError> {
        let arguments: Vec<Value> = args.into_iter().map(|v| json!({"value": v})).collect();
        // A navigation between the two calls destroys the context: take the new one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ctx = self.world(frame).await?;
            let r = self
                .cdp
                .call(
                    Some(&self.session_of(frame)),
                    "Runtime.callFunctionOn",
                    json!({
                        "executionContextId": ctx,
                        "functionDeclaration": function,
                        "arguments": arguments,
                        "returnByValue": true,
                    }),
                )
                .await;
            let r = match r {
                Err(BrowserError::Protocol { message, .. })
                    if attempt < 3 && message.contains("context") =>
                {
                    continue;
                }
                other => other?,
            };
            if let Some(ex) = r.get("exceptionDetails") {
                return Err(BrowserError::Protocol {
                    method: "Runtime.callFunctionOn".into(),
                    message: ex
                        .pointer("/exception/description")
                        .or_else(|| ex.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or("exception")
                        .to_string(),
                });
            }
            return Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null));
        }
    }

    /// Run the page walker in `frame`'s document; frame markers become `world:token`.
    async fn walk(&self, frame: Option<&str>) -> Result<snapshot::Walked, BrowserError> {
        let base = self.next_ref.load(Ordering::SeqCst);
        let raw = self
            .call_in_world(frame, snapshot::WALKER_JS, vec![json!(base)])
            .await?;
        let mut walked: snapshot::Walked = serde_json::from_str(raw.as_str().unwrap_or(""))
            .map_err(|e| BrowserError::Protocol {
                method: "snapshot".into(),
                message: format!("unreadable walker output: {e}"),
            })?;
        self.next_ref.fetch_max(walked.next, Ordering::SeqCst);
        for l in walked.lines.iter_mut().filter(|l| l.1 == 2) {
            l.2 = format!("{}:{}", frame.unwrap_or(""), l.2);
        }
        Ok(walked)
    }

    /// The accessibility snapshot of the page, iframes merged, cut past `max_chars`.
    pub async fn snapshot(&self, max_chars: usize) -> Result<Snapshot, BrowserError> {
        let (walked, location) = tokio::join!(self.walk(None), self.location());
        let mut walked = walked?;
        let (url, title) = location?;
        let mut refs = walked.targets(None);
        let mut lines = std::mem::take(&mut walked.lines);
        if lines.iter().any(|l| l.1 == 2) {
            self.merge_frames(&mut lines, &mut refs).await;
        }
        Ok(snapshot::assemble(lines, refs, max_chars, url, title))
    }

    /// Walk the frames the page's world could not reach (sandboxed documents) in their own
    /// worlds and put them in place; frames that fail or left the origin show nothing.
    async fn merge_frames(
        &self,
        lines: &mut Vec<snapshot::RawLine>,
        refs: &mut Vec<snapshot::RefTarget>,
    ) {
        let Ok(tree) = self.call("Page.getFrameTree", json!({})).await else {
            return;
        };
        // Parents before children: (frame, url, parent).
        let mut frames = Vec::new();
        let mut queue = std::collections::VecDeque::from([(
            tree.get("frameTree").cloned().unwrap_or(Value::Null),
            None::<String>,
        )]);
        while let Some((node, parent)) = queue.pop_front() {
            let Some(id) = node.pointer("/frame/id").and_then(Value::as_str) else {
                continue;
            };
            let url = node
                .pointer("/frame/url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            for c in node
                .get("childFrames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                queue.push_back((c.clone(), Some(id.to_string())));
            }
            frames.push((id.to_string(), url, parent));
        }
        // Which world walked each frame's document: `None` is the page's.
        let mut walked_by: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        for (id, url, parent) in frames {
            let Some(parent) = parent else {
                walked_by.insert(id, None);
                continue;
            };
            let Some(world) = walked_by.get(&parent).cloned() else {
                continue;
            };
            // Unless marked, a frame's document was walked through its owner element.
            walked_by.insert(id.clone(), world.clone());
            let Some(token) = self.frame_token(&id, world.as_deref()).await else {
                continue;
            };
            if self.splice_walked(&id, &url, &token, lines, refs).await {
                walked_by.insert(id.clone(), Some(id));
            }
        }
        // Out-of-process frames (sandboxed ones are isolated) are not in the page's frame
        // tree: each has its own session. Their owners sit in a document walked by the page's
        // world or by another such frame's; repeat while one more frame finds its place.
        let mut left: Vec<(String, String)> = lock(&self.state.frame_sessions)
            .iter()
            .map(|(f, s)| (f.clone(), s.clone()))
            .collect();
        let mut worlds: Vec<Option<String>> = vec![None];
        while !left.is_empty() {
            let mut placed = None;
            'frames: for (i, (id, _)) in left.iter().enumerate() {
                for world in &worlds {
                    if let Some(token) = self.frame_token(id, world.as_deref()).await {
                        placed = Some((i, token));
                        break 'frames;
                    }
                }
            }
            let Some((i, token)) = placed else { break };
            let (id, session) = left.remove(i);
            let url = self
                .cdp
                .call(Some(&session), "Page.getFrameTree", json!({}))
                .await
                .ok()
                .and_then(|t| {
                    t.pointer("/frameTree/frame/url")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            if self.splice_walked(&id, &url, &token, lines, refs).await {
                worlds.push(Some(id));
            }
        }
    }

    /// Walk frame `id` (at `url`) in its own world and put its lines where the marker
    /// `token` stands; false, and nothing shown, when it left the origin or the walk failed.
    async fn splice_walked(
        &self,
        id: &str,
        url: &str,
        token: &str,
        lines: &mut Vec<snapshot::RawLine>,
        refs: &mut Vec<snapshot::RefTarget>,
    ) -> bool {
        if !self.policy.allows(url) {
            return false;
        }
        let Ok(w) = self.walk(Some(id)).await else {
            return false;
        };
        refs.extend(w.targets(Some(id)));
        snapshot::splice_frame(lines, token, w.lines);
        true
    }

    /// The marker token the walker in `world` gave frame `frame`'s owner element, if any.
    async fn frame_token(&self, frame: &str, world: Option<&str>) -> Option<String> {
        let owner = self
            .call("DOM.getFrameOwner", json!({"frameId": frame}))
            .await
            .ok()?;
        let backend = owner.get("backendNodeId")?.as_i64()?;
        let ctx = self.world(world).await.ok()?;
        let node = self
            .call(
                "DOM.resolveNode",
                json!({"backendNodeId": backend, "executionContextId": ctx}),
            )
            .await
            .ok()?;
        let object = node.pointer("/object/objectId")?.as_str()?.to_string();
        let r = self
            .call(
                "Runtime.callFunctionOn",
                json!({
                    "objectId": object,
                    "functionDeclaration": "function() { const S = globalThis.__trajforge; const t = S && S.frameTokens && S.frameTokens.get(this); return t === undefined ? null : t; }",
                    "returnByValue": true,
                }),
            )
            .await;
        let _ = self
            .call("Runtime.releaseObject", json!({"objectId": object}))
            .await;
        let token = r.ok()?.pointer("/result/value")?.as_u64()?;
        Some(format!("{}:{token}", world.unwrap_or("")))
    }

    /// Where `frame`'s viewport starts in the page's (for input events). Its owner element
    /// must sit in a document the page's world reaches (a sandboxed frame inside another
    /// sandboxed frame is not placed).
    async fn frame_origin(&self, frame: &str) -> Result<(f64, f64), BrowserError> {
        let owner = self
            .call("DOM.getFrameOwner", json!({"frameId": frame}))
            .await?;
        let backend = owner
            .get("backendNodeId")
            .and_then(Value::as_i64)
            .ok_or_else(|| BrowserError::Protocol {
                method: "DOM.getFrameOwner".into(),
                message: "no owner element".into(),
            })?;
        let ctx = self.world(None).await?;
        let node = self
            .call(
                "DOM.resolveNode",
                json!({"backendNodeId": backend, "executionContextId": ctx}),
            )
            .await?;
        let object = str_field(
            node.get("object").unwrap_or(&Value::Null),
            "objectId",
            "DOM.resolveNode",
        )?;
        let r = self
            .call(
                "Runtime.callFunctionOn",
                json!({
                    "objectId": object,
                    "functionDeclaration": format!("function() {{ {FRAME_OFFSET_JS} const o = frameOffset(this); const r = this.getBoundingClientRect(); const cs = this.ownerDocument.defaultView.getComputedStyle(this); return [o[0] + r.left + this.clientLeft + parseFloat(cs.paddingLeft), o[1] + r.top + this.clientTop + parseFloat(cs.paddingTop)]; }}"),
                    "returnByValue": true,
                }),
            )
            .await;
        let _ = self
            .call("Runtime.releaseObject", json!({"objectId": object}))
            .await;
        let v = r?.pointer("/result/value").cloned().unwrap_or(Value::Null);
        match (
            v.get(0).and_then(Value::as_f64),
            v.get(1).and_then(Value::as_f64),
        ) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(BrowserError::Protocol {
                method: "click".into(),
                message: "the frame of the element is not on screen".into(),
            }),
        }
    }

    /// Links of the page, absolute, in order: anchors without `download`, and the navigational
    /// `<link rel>`s (index, search, next, prev, contents, help) that reach index and search pages.
    pub async fn links(&self) -> Result<Vec<String>, BrowserError> {
        // In trajforge's world: the page cannot redefine what this calls.
        let r = self
            .call_in_world(
                None,
                "function() { return JSON.stringify(Array.from(document.querySelectorAll('a[href], area[href], link[href][rel~=index], link[href][rel~=search], link[href][rel~=next], link[href][rel~=prev], link[href][rel~=contents], link[href][rel~=help]')).filter(a => !a.hasAttribute('download')).map(a => a.href)); }",
                vec![],
            )
            .await?;
        Ok(serde_json::from_str(r.as_str().unwrap_or("[]")).unwrap_or_default())
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

    /// Call `function` (taking `reveal` and then `args`, with `this` = the element) on the
    /// element behind `target`, a ref of the latest snapshot; returns its JSON result.
    pub async fn call_on(
        &self,
        target: &RefTarget,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, BrowserError> {
        let mut all = vec![json!(target.id)];
        all.extend(args);
        let r = self
            .call_in_world(target.frame.as_deref(), &call_on_source(function), all)
            .await?;
        if r.get("stale").and_then(Value::as_bool) == Some(true) {
            return Err(BrowserError::StaleRef { id: target.id });
        }
        Ok(r.get("value").cloned().unwrap_or(Value::Null))
    }

    /// A real left click in the middle of the element, after scrolling it into view; true
    /// when the click should load a page (a link, a submit button).
    ///
    /// The press only counts if it lands on the element: when the page moved it away in the
    /// meantime (results still being added, a banner sliding in), the page never sees that
    /// press and the click is tried again, then reported as covered.
    pub async fn click(&self, target: &RefTarget) -> Result<bool, BrowserError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (x, y, navigates) = self.click_point(target).await?;
            for (kind, extra) in [
                ("mouseMoved", json!({})),
                ("mousePressed", json!({"button": "left", "clickCount": 1})),
                ("mouseReleased", json!({"button": "left", "clickCount": 1})),
            ] {
                let mut params = json!({"type": kind, "x": x, "y": y});
                if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
                    p.extend(e.clone());
                }
                self.call("Input.dispatchMouseEvent", params).await?;
            }
            // The guard's verdict; a document that went away (the click navigated) has none.
            let verdict = self
                .call_in_world(target.frame.as_deref(), CLICK_VERDICT_JS, vec![])
                .await
                .unwrap_or(Value::Null);
            let Some(other) = verdict.get("missed").and_then(Value::as_str) else {
                return Ok(navigates);
            };
            if attempt >= 3 {
                return Err(BrowserError::Protocol {
                    method: "click".into(),
                    message: format!(
                        "the click would land on {other}, which covers the element; close or scroll away what covers it"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scroll the element into view, arm the guard, and find where to click: in the top
    /// viewport's coordinates (input events use them, also for elements in frames), and
    /// whether the click should load a page.
    async fn click_point(&self, target: &RefTarget) -> Result<(f64, f64, bool), BrowserError> {
        let point = self.call_on(target, &click_prepare_js(), vec![]).await?;
        // A frame the page's world cannot reach (sandboxed) adds its own place on the page.
        let (dx, dy) = match &target.frame {
            Some(f) => self.frame_origin(f).await?,
            None => (0.0, 0.0),
        };
        match (
            point.get(0).and_then(Value::as_f64),
            point.get(1).and_then(Value::as_f64),
        ) {
            (Some(x), Some(y)) => Ok((
                x + dx,
                y + dy,
                point.get(2).and_then(Value::as_bool).unwrap_or(false),
            )),
            _ => Err(BrowserError::Protocol {
                method: "click".into(),
                message: "the element is not visible (it has no box on screen)".into(),
            }),
        }
    }

    /// Focus an editable element, select its content and type `text` over it.
    pub async fn fill(&self, target: &RefTarget, text: &str) -> Result<(), BrowserError> {
        let ok = self
            .call_on(
                target,
                "function(reveal) { reveal(); const t = this.tagName; const editable = this.isContentEditable || t === 'TEXTAREA' || (t === 'INPUT' && !['checkbox','radio','submit','button','image','file','reset','hidden'].includes(this.type)); if (!editable || this.disabled || this.readOnly) return false; this.focus(); if (this.select) this.select(); else this.ownerDocument.execCommand('selectAll'); return true; }",
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
            let _ = self.press("Delete").await?;
        } else {
            self.call("Input.insertText", json!({"text": text})).await?;
        }
        Ok(())
    }

    /// Choose an option of a `<select>` by value or visible label.
    pub async fn select_option(
        &self,
        target: &RefTarget,
        value: &str,
    ) -> Result<String, BrowserError> {
        let r = self
            .call_on(
                target,
                "function(reveal, v) { if (this.tagName !== 'SELECT') return {error: 'the element is not a <select>'}; const o = Array.from(this.options).find(o => o.value === v || o.label === v || o.text.trim() === v); if (!o) return {error: 'no option with value or label ' + JSON.stringify(v) + '; options: ' + Array.from(this.options).map(o => JSON.stringify(o.label)).join(', ')}; this.value = o.value; this.dispatchEvent(new Event('input', {bubbles: true})); this.dispatchEvent(new Event('change', {bubbles: true})); return {label: o.label}; }",
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

    /// Press a key (Enter, Tab, Escape, arrows, ... or one character); true when it should
    /// load a page (Enter on a link or in a form).
    pub async fn press(&self, key: &str) -> Result<bool, BrowserError> {
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
        let navigates = key == "Enter" && self.enter_navigates().await;
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
        Ok(navigates)
    }

    /// Whether Enter on the focused element (followed into same-origin frames and shadow
    /// roots) should load a page. Unknown counts as no: the action then only waits briefly.
    async fn enter_navigates(&self) -> bool {
        let f = format!(
            "function() {{ {WILL_NAVIGATE_JS} let el = document.activeElement; for (let i = 0; el && i < 32; i++) {{ let inner = null; try {{ inner = el.shadowRoot ? el.shadowRoot.activeElement : (el.contentDocument ? el.contentDocument.activeElement : null); }} catch (e) {{ inner = null; }} if (!inner) break; el = inner; }} return willNavigate(el, true); }}"
        );
        matches!(
            self.call_in_world(None, &f, vec![]).await,
            Ok(Value::Bool(true))
        )
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
                        n.loading = ev.method == "Page.frameStartedLoading";
                        drop(n);
                        state.changed.notify_waiters();
                    }
                }
                "Page.frameRequestedNavigation" => {
                    let frame = ev.params.get("frameId").and_then(Value::as_str);
                    let mut n = lock(&state.nav);
                    if frame.is_some() && frame == n.main_frame.as_deref() {
                        n.requested += 1;
                        drop(n);
                        state.changed.notify_waiters();
                    }
                }
                "Page.navigatedWithinDocument" => {
                    // A fragment or history-API change of the URL: a navigation with no load
                    // to wait for. Pages that only re-state their URL (`replaceState` on load,
                    // perhaps announced after the next action) are not one.
                    let frame = ev.params.get("frameId").and_then(Value::as_str);
                    let url = ev.params.get("url").and_then(Value::as_str).unwrap_or("");
                    let mut n = lock(&state.nav);
                    if frame.is_some() && frame == n.main_frame.as_deref() && url != n.url {
                        n.url = url.to_string();
                        n.navigations += 1;
                        drop(n);
                        state.changed.notify_waiters();
                    }
                }
                "Page.frameNavigated" => {
                    let f = &ev.params["frame"];
                    if f.get("parentId").is_none()
                        && let Some(id) = f.get("id").and_then(Value::as_str)
                    {
                        let mut n = lock(&state.nav);
                        n.main_frame = Some(id.to_string());
                        let part = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
                        n.url = format!("{}{}", part("url"), part("urlFragment"));
                        n.navigations += 1;
                        drop(n);
                        state.changed.notify_waiters();
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
                        if kind == "iframe" {
                            // Its target id is its frame id: snapshots walk it through here.
                            lock(&state.frame_sessions).insert(id.clone(), child.clone());
                        }
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

/// True for the request of a service worker's script (Chromium marks it with the
/// `Service-Worker: script` header), refused so that no worker is ever registered.
fn is_service_worker_script(p: &Value) -> bool {
    p.pointer("/request/headers")
        .and_then(Value::as_object)
        .is_some_and(|h| {
            h.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("service-worker") && v.as_str() == Some("script")
            })
        })
}

/// The body of a paused request (a form post, a fetch with a body), when it has one.
fn request_body(p: &Value) -> Option<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    // `postDataEntries` keeps binary parts intact; `postData` is the same body as text.
    if let Some(entries) = p
        .pointer("/request/postDataEntries")
        .and_then(Value::as_array)
    {
        let mut out = Vec::new();
        for e in entries {
            if let Some(bytes) = e.get("bytes").and_then(Value::as_str) {
                out.extend(b64.decode(bytes).ok()?);
            }
        }
        return Some(out);
    }
    p.pointer("/request/postData")
        .and_then(Value::as_str)
        .map(|t| t.as_bytes().to_vec())
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
    let request_body = request_body(p);
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
        if !policy.allows(url) || is_service_worker_script(p) {
            policy.note_blocked(url);
            fail().await?;
            return Ok(());
        }
        match policy.mode() {
            NetMode::Replay(rec) => {
                let Some(r) = rec.lookup_request(method, url, request_body.as_deref()) else {
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
        let _ = rec.add_response(
            method,
            url,
            request_body.as_deref(),
            status,
            headers,
            body.as_deref(),
        );
    }
    cdp.call(s, "Fetch.continueRequest", json!({"requestId": id}))
        .await?;
    Ok(())
}
