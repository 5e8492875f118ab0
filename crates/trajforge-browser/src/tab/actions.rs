//! The low-level actions, as real mouse and keyboard input: click (with a guard that keeps
//! a press that would land elsewhere from the page), fill, select an option, press a key,
//! scroll; and whether an action should load a page.

use std::time::Duration;

use serde_json::{Value, json};

use super::Tab;
use super::frames::FRAME_OFFSET_JS;
use crate::error::BrowserError;
use crate::snapshot::RefTarget;

/// Defines `willNavigate(el, enter)`: whether activating `el` (a click, or Enter) should load a
/// page: a link other than a fragment of this page, a submit button, or Enter in a form field,
/// in the top document (a frame's own navigation is not the page's). Such actions wait for the
/// load to start however late the browser announces it.
const WILL_NAVIGATE_JS: &str = "const willNavigate = (el, enter) => { if (!el || !el.closest) return false; const win = el.ownerDocument.defaultView; if (!win || win !== win.top) return false; const link = el.closest('a[href], area[href]'); if (link) { if (link.hasAttribute('download')) return false; const raw = link.getAttribute('href').trim(); if (/^javascript:/i.test(raw)) return false; let u; try { u = new URL(link.href); } catch (e) { return false; } if (u.protocol !== 'http:' && u.protocol !== 'https:') return false; const here = new URL(el.ownerDocument.location.href); const frag = raw.includes('#'); u.hash = ''; here.hash = ''; return !(frag && u.href === here.href); } const c = el.closest('button, input'); const f = c && c.form; if (!f || c.disabled || (f.getAttribute('method') || '').toLowerCase() === 'dialog') return false; const t = (c.type || '').toLowerCase(); if (c.tagName === 'BUTTON') return t === 'submit'; if (t === 'submit' || t === 'image') return true; return enter && !['checkbox', 'radio', 'button', 'reset', 'file', 'hidden', 'range', 'color'].includes(t); };";

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

impl Tab {
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
        let v = self
            .evaluate(&format!("window.scrollBy({{top: {sign} * Math.round(innerHeight * 0.8), behavior: 'instant'}}); [Math.round(scrollY), innerHeight, document.documentElement.scrollHeight]"))
            .await?;
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
