//! trajforge's scripts in the page: its isolated world in each frame (page scripts cannot
//! reach it), calls into that world, calls on the element behind a snapshot ref, and what
//! they read of the page (links, MIME type).

use serde_json::{Value, json};

use super::{Tab, str_field};
use crate::error::BrowserError;
use crate::lock;
use crate::snapshot::RefTarget;

/// The name of trajforge's isolated world in every page (page scripts cannot reach it).
const WORLD: &str = "trajforge";

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
    pub(super) async fn world(&self, frame: Option<&str>) -> Result<i64, BrowserError> {
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
    pub(super) async fn call_in_world(
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
        let v = self.evaluate("document.contentType").await?;
        Ok(v.as_str().unwrap_or("").to_string())
    }

    /// The JSON value of a JavaScript expression evaluated in the page's own world (where the
    /// page's scripts run; `null` for values JSON cannot hold).
    pub async fn evaluate(&self, expression: &str) -> Result<Value, BrowserError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// Wait up to `timeout` until `expression` is true in the page; whether it became true.
    pub async fn wait_for(
        &self,
        expression: &str,
        timeout: std::time::Duration,
    ) -> Result<bool, BrowserError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.evaluate(expression).await? == Value::Bool(true) {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A PNG screenshot of the whole page (beyond the viewport too).
    pub async fn screenshot_png(&self) -> Result<Vec<u8>, BrowserError> {
        use base64::Engine;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?;
        let data = r.get("data").and_then(Value::as_str).unwrap_or("");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| BrowserError::Protocol {
                method: "Page.captureScreenshot".into(),
                message: e.to_string(),
            })
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
}
