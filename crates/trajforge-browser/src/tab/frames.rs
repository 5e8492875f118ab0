//! The accessibility snapshot across frames: the page's walk, then the frames its world
//! could not reach (sandboxed, out-of-process) walked in their own worlds and spliced in
//! place, and where a frame's viewport sits on the page (for input events).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::{Tab, str_field};
use crate::error::BrowserError;
use crate::lock;
use crate::snapshot::{self, Snapshot};

/// Defines `frameOffset(el)`: where the viewport of `el`'s frame starts in the top viewport
/// (input events use the top one), adding each frame element's border and padding, up to
/// the first frame this world cannot look out of.
pub(super) const FRAME_OFFSET_JS: &str = "const frameOffset = (el) => { let x = 0, y = 0; let win = el.ownerDocument.defaultView; while (win) { let f = null; try { f = win.frameElement; } catch (e) { f = null; } if (!f) break; const fr = f.getBoundingClientRect(); const cs = f.ownerDocument.defaultView.getComputedStyle(f); x += fr.left + f.clientLeft + parseFloat(cs.paddingLeft); y += fr.top + f.clientTop + parseFloat(cs.paddingTop); win = f.ownerDocument.defaultView; } return [x, y]; };";

impl Tab {
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

    /// Call `function` on the element that owns frame `frame`, as seen from trajforge's
    /// world of `world` (`None`: the page's); returns the call's JSON value.
    async fn call_on_frame_owner(
        &self,
        frame: &str,
        world: Option<&str>,
        function: &str,
    ) -> Result<Value, BrowserError> {
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
        let ctx = self.world(world).await?;
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
                    "functionDeclaration": function,
                    "returnByValue": true,
                }),
            )
            .await;
        let _ = self
            .call("Runtime.releaseObject", json!({"objectId": object}))
            .await;
        Ok(r?.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// The marker token the walker in `world` gave frame `frame`'s owner element, if any.
    async fn frame_token(&self, frame: &str, world: Option<&str>) -> Option<String> {
        let token = self
            .call_on_frame_owner(
                frame,
                world,
                "function() { const S = globalThis.__trajforge; const t = S && S.frameTokens && S.frameTokens.get(this); return t === undefined ? null : t; }",
            )
            .await
            .ok()?
            .as_u64()?;
        Some(format!("{}:{token}", world.unwrap_or("")))
    }

    /// Where `frame`'s viewport starts in the page's (for input events). Its owner element
    /// must sit in a document the page's world reaches (a sandboxed frame inside another
    /// sandboxed frame is not placed).
    pub(super) async fn frame_origin(&self, frame: &str) -> Result<(f64, f64), BrowserError> {
        let v = self
            .call_on_frame_owner(
                frame,
                None,
                &format!("function() {{ {FRAME_OFFSET_JS} const o = frameOffset(this); const r = this.getBoundingClientRect(); const cs = this.ownerDocument.defaultView.getComputedStyle(this); return [o[0] + r.left + this.clientLeft + parseFloat(cs.paddingLeft), o[1] + r.top + this.clientTop + parseFloat(cs.paddingTop)]; }}"),
            )
            .await?;
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
}
