//! The browser environment: a site offered to the agent through BrowserGym-style tools over
//! a compact accessibility snapshot with refs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_agent::{BoxFuture, EnvOutcome, Environment, Observation};
use trajforge_teacher::{ToolCall, ToolSpec};
use url::Url;

use crate::browser::{BrowserPool, Lease};
use crate::error::BrowserError;
use crate::net::{NetMode, NetPolicy, parse_web_url};
use crate::snapshot::{RefTarget, Snapshot};
use crate::tab::Tab;

/// Limits of a browser episode.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// Longest snapshot shown (the rest is cut with a marker).
    pub max_snapshot_chars: usize,
    /// Longest wait for a page load.
    pub nav_timeout: Duration,
    /// How long after an input event a navigation may still start.
    pub action_grace: Duration,
    /// How long to wait for the load of an action expected to load a page (a link click, a
    /// form submit, or any action the page answered by asking for a navigation): the browser
    /// may announce it late on a loaded machine.
    pub navigation_grace: Duration,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            max_snapshot_chars: 12_000,
            nav_timeout: Duration::from_secs(20),
            action_grace: Duration::from_millis(30),
            navigation_grace: Duration::from_secs(3),
        }
    }
}

/// How an episode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `answer(text)`.
    Answer(String),
    /// `report_infeasible(reason)`.
    Infeasible(String),
}

/// A website as an agent environment.
pub struct BrowserEnvironment {
    lease: Lease,
    tab: Option<Tab>,
    policy: Arc<NetPolicy>,
    config: EnvConfig,
    snapshot: Snapshot,
    visited: Vec<String>,
    ending: Option<Ending>,
    restarts: usize,
}

/// Tool names.
pub const TOOLS: &[&str] = &[
    "click",
    "fill",
    "select_option",
    "press",
    "scroll",
    "goto",
    "go_back",
    "answer",
    "report_infeasible",
];

fn no_fragment(url: &str) -> String {
    url.split_once('#').map_or(url, |(a, _)| a).to_string()
}

impl BrowserEnvironment {
    /// Borrow a browser from `pool` and open `start_url` under `mode` (live, recorded or
    /// replayed); only the start URL's origin can be reached.
    pub async fn start(
        pool: &BrowserPool,
        start_url: &str,
        mode: NetMode,
        config: EnvConfig,
    ) -> Result<BrowserEnvironment, BrowserError> {
        let policy = Arc::new(NetPolicy::new(start_url, mode)?);
        let mut lease = pool.acquire().await?;
        let tab = open(&mut lease, &policy, &config).await?;
        let mut env = BrowserEnvironment {
            lease,
            tab: None,
            policy,
            config,
            snapshot: Snapshot::default(),
            visited: Vec::new(),
            ending: None,
            restarts: 0,
        };
        tab.goto(start_url).await?;
        env.snapshot = tab.snapshot(env.config.max_snapshot_chars).await?;
        env.tab = Some(tab);
        env.note_visit();
        Ok(env)
    }

    /// The tools' JSON Schemas.
    pub fn tool_specs() -> Vec<ToolSpec> {
        let r = json!({"type": "string", "description": "An element ref from the latest snapshot, e.g. e12."});
        let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        };
        vec![
            spec(
                "click",
                "Click an element (link, button, checkbox, ...) by its ref.",
                json!({"type": "object", "properties": {"ref": r}, "required": ["ref"]}),
            ),
            spec(
                "fill",
                "Type text into a text field by its ref, replacing what it holds. Follow with press(\"Enter\") to submit.",
                json!({"type": "object", "properties": {"ref": r, "text": {"type": "string"}}, "required": ["ref", "text"]}),
            ),
            spec(
                "select_option",
                "Choose an option of a drop-down list by its value or label.",
                json!({"type": "object", "properties": {"ref": r, "value": {"type": "string"}}, "required": ["ref", "value"]}),
            ),
            spec(
                "press",
                "Press a key in the focused element: Enter, Tab, Escape, Backspace, ArrowDown, PageDown, ... or one character.",
                json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
            ),
            spec(
                "scroll",
                "Scroll the page up or down by most of a screen.",
                json!({"type": "object", "properties": {"direction": {"type": "string", "enum": ["up", "down"]}}, "required": ["direction"]}),
            ),
            spec(
                "goto",
                "Open a URL of this site (absolute, or relative to the current page). Other sites cannot be opened.",
                json!({"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}),
            ),
            spec(
                "go_back",
                "Go back to the previous page.",
                json!({"type": "object", "properties": {}}),
            ),
            spec(
                "answer",
                "End the task with your answer (or a short confirmation that you reached the page asked for).",
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
            spec(
                "report_infeasible",
                "End the task because it cannot be done on this site, saying why.",
                json!({"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]}),
            ),
        ]
    }

    /// The current page as the model sees it (URL, title, snapshot).
    pub fn observation(&self) -> String {
        format!(
            "URL: {}\nTitle: {}\n\n{}",
            self.snapshot.url, self.snapshot.title, self.snapshot.text
        )
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Pages visited in order (consecutive repeats collapsed), fragments removed.
    pub fn visited(&self) -> &[String] {
        &self.visited
    }

    /// The current URL.
    pub fn current_url(&self) -> &str {
        &self.snapshot.url
    }

    /// How the episode ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Browser restarts during this episode (crash or hang).
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// The network policy (blocked requests, replay misses).
    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    /// Process id of the browser in use (for tests that kill it).
    pub fn browser_pid(&mut self) -> u32 {
        self.lease.browser().pid()
    }

    /// Close the page and hand the browser back to the pool.
    pub async fn close(mut self) {
        if let Some(tab) = self.tab.take() {
            tab.close().await;
        }
    }

    fn note_visit(&mut self) {
        let u = no_fragment(&self.snapshot.url);
        if self.visited.last() != Some(&u) {
            self.visited.push(u);
        }
    }

    fn tab(&self) -> Result<&Tab, BrowserError> {
        self.tab.as_ref().ok_or(BrowserError::Closed)
    }

    /// Run one action by name with its JSON arguments.
    pub async fn act(&mut self, name: &str, args: &Value) -> Observation {
        let started = Instant::now();
        let mut obs = match self.try_act(name, args).await {
            Ok(o) => o,
            Err(e) if e.is_fatal() => self.recover(&e).await,
            Err(e) => {
                let mut o = Observation::error(format!(
                    "{}\n\n{}",
                    action_error(name, &e),
                    self.observation()
                ));
                o.error = true;
                o
            }
        };
        obs.duration = started.elapsed();
        obs
    }

    /// How long to wait for a navigation after an action.
    fn grace(&self, navigates: bool) -> Duration {
        if navigates {
            self.config.navigation_grace
        } else {
            self.config.action_grace
        }
    }

    fn target(&self, args: &Value) -> Result<RefTarget, BrowserError> {
        let r = args.get("ref").and_then(Value::as_str).unwrap_or("").trim();
        if r.is_empty() {
            return Err(bad(
                "this tool needs a `ref` such as \"e12\" from the latest snapshot",
            ));
        }
        self.snapshot
            .refs
            .get(r)
            .cloned()
            .ok_or_else(|| bad(&format!("unknown ref {r:?}: it is not on the current page (refs of earlier pages are stale); use a ref from the snapshot below")))
    }

    async fn try_act(&mut self, name: &str, args: &Value) -> Result<Observation, BrowserError> {
        let text_arg = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        let grace = self.config.action_grace;
        let note = match name {
            "click" => {
                let b = self.target(args)?;
                let tab = self.tab()?;
                let mark = tab.nav_mark();
                let navigates = tab.click(&b).await?;
                tab.settle(mark, self.grace(navigates)).await;
                format!("Clicked {}.", self.describe(args))
            }
            "fill" => {
                let b = self.target(args)?;
                let text = text_arg("text").ok_or_else(|| bad("fill needs `text`"))?;
                let tab = self.tab()?;
                tab.settle_after(grace, tab.fill(&b, &text)).await?;
                format!("Filled {} with {:?}.", self.describe(args), text)
            }
            "select_option" => {
                let b = self.target(args)?;
                let value = text_arg("value").ok_or_else(|| bad("select_option needs `value`"))?;
                let tab = self.tab()?;
                let label = tab
                    .settle_after(grace, tab.select_option(&b, &value))
                    .await?;
                format!("Selected {label:?} in {}.", self.describe(args))
            }
            "press" => {
                let key = text_arg("key").ok_or_else(|| bad("press needs `key`"))?;
                let tab = self.tab()?;
                let mark = tab.nav_mark();
                let navigates = tab.press(&key).await?;
                tab.settle(mark, self.grace(navigates)).await;
                format!("Pressed {key}.")
            }
            "scroll" => {
                let dir = text_arg("direction").unwrap_or_else(|| "down".into());
                let down = match dir.as_str() {
                    "down" => true,
                    "up" => false,
                    _ => return Err(bad("direction must be \"up\" or \"down\"")),
                };
                let (y, h, total) = self.tab()?.scroll(down).await?;
                format!(
                    "Scrolled {dir}: showing {y}-{} of {total} pixels.",
                    (y + h).min(total)
                )
            }
            "goto" => {
                let raw = text_arg("url").ok_or_else(|| bad("goto needs `url`"))?;
                let base = Url::parse(&self.snapshot.url).ok();
                let url = match Url::parse(&raw) {
                    Ok(u) => u,
                    Err(_) => base
                        .as_ref()
                        .and_then(|b| b.join(&raw).ok())
                        .ok_or_else(|| bad(&format!("{raw:?} is not a URL")))?,
                };
                if !self.policy.allows(url.as_str()) {
                    return Err(bad(&format!(
                        "{url} cannot be opened: only pages of {} are allowed",
                        self.policy.origin()
                    )));
                }
                self.tab()?.goto(url.as_str()).await?;
                format!("Opened {url}.")
            }
            "go_back" => {
                if self.tab()?.go_back().await? {
                    "Went back.".to_string()
                } else {
                    return Err(bad("there is no previous page"));
                }
            }
            "answer" | "report_infeasible" => {
                let key = if name == "answer" { "text" } else { "reason" };
                let text = text_arg(key)
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| bad(&format!("{name} needs a non-empty `{key}`")))?;
                self.ending = Some(if name == "answer" {
                    Ending::Answer(text)
                } else {
                    Ending::Infeasible(text)
                });
                let mut o = Observation::ok(format!("Done. Final page: {}", self.snapshot.url));
                o.done = true;
                return Ok(o);
            }
            other => {
                return Err(bad(&format!(
                    "unknown tool {other:?}; the tools are {}",
                    TOOLS.join(", ")
                )));
            }
        };
        let mut note = note;
        self.snapshot = self.tab()?.snapshot(self.config.max_snapshot_chars).await?;
        let url = self.snapshot.url.clone();
        if !self.policy.allows(&url) && url != "about:blank" {
            // An action led off the site (blocked by the guard): step back onto it.
            let tab = self.tab()?;
            tab.go_back().await?;
            self.snapshot = tab.snapshot(self.config.max_snapshot_chars).await?;
            note = format!(
                "{note} It led to {url}, which is off this site and cannot be opened; you are back on the previous page."
            );
            self.note_visit();
            let mut o = Observation::error(format!("{note}\n{}", self.observation()));
            o.error = true;
            return Ok(o);
        }
        self.note_visit();
        Ok(Observation::ok(format!("{note}\n{}", self.observation())))
    }

    /// Take a fresh snapshot of the current page (pages that render late, e.g. search results).
    pub async fn refresh(&mut self) -> Result<&Snapshot, BrowserError> {
        self.snapshot = self.tab()?.snapshot(self.config.max_snapshot_chars).await?;
        self.note_visit();
        Ok(&self.snapshot)
    }

    fn describe(&self, args: &Value) -> String {
        let r = args.get("ref").and_then(Value::as_str).unwrap_or("");
        match self.snapshot.refs.get(r) {
            Some(t) if !t.name.is_empty() => format!("{} {:?} ({r})", t.role, t.name),
            Some(t) => format!("{} ({r})", t.role),
            None => r.to_string(),
        }
    }

    /// The browser crashed or hung: replace it, reopen the last page, and tell the model.
    async fn recover(&mut self, cause: &BrowserError) -> Observation {
        self.restarts += 1;
        self.tab = None;
        let url = self.snapshot.url.clone();
        let result = async {
            self.lease.replace().await?;
            let tab = open(&mut self.lease, &self.policy, &self.config).await?;
            tab.goto(&url).await?;
            let snap = tab.snapshot(self.config.max_snapshot_chars).await?;
            Ok::<_, BrowserError>((tab, snap))
        }
        .await;
        match result {
            Ok((tab, snap)) => {
                self.tab = Some(tab);
                self.snapshot = snap;
                Observation::error(format!(
                    "The browser failed ({cause}) and was restarted on the same page; the action was not completed.\n{}",
                    self.observation()
                ))
            }
            Err(e) => Observation::error(format!(
                "The browser failed ({cause}) and could not be restarted: {e}"
            )),
        }
    }
}

async fn open(
    lease: &mut Lease,
    policy: &Arc<NetPolicy>,
    config: &EnvConfig,
) -> Result<Tab, BrowserError> {
    let cdp = lease.browser().cdp().clone();
    let mut tab = Tab::open(&cdp, Arc::clone(policy)).await?;
    tab.nav_timeout = config.nav_timeout;
    tab.navigation_grace = config.navigation_grace;
    Ok(tab)
}

fn bad(message: &str) -> BrowserError {
    BrowserError::Protocol {
        method: "argument".into(),
        message: message.to_string(),
    }
}

fn action_error(name: &str, e: &BrowserError) -> String {
    match e {
        // Bad arguments, and what an action found wrong with the element (not visible,
        // covered, not editable): the model's to fix, said plainly.
        BrowserError::Protocol { method, message } if method == "argument" || method == name => {
            format!("{name}: {message}.")
        }
        BrowserError::StaleRef { .. } => format!(
            "{name}: the element is gone from the page (stale ref); take refs from the snapshot below."
        ),
        BrowserError::Protocol { message, .. }
            if message.contains("No node")
                || message.contains("not found")
                || message.contains("Could not find") =>
        {
            format!(
                "{name}: the element is gone from the page (stale ref); take refs from the snapshot below."
            )
        }
        other => format!("{name} failed: {other}."),
    }
}

impl Drop for BrowserEnvironment {
    fn drop(&mut self) {
        if let Some(tab) = self.tab.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(tab.close());
        }
    }
}

impl Environment for BrowserEnvironment {
    fn tools(&self) -> Vec<ToolSpec> {
        Self::tool_specs()
    }

    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let args: Value = if call.arguments.trim().is_empty() {
                json!({})
            } else {
                match serde_json::from_str(&call.arguments) {
                    Ok(v) => v,
                    Err(e) => {
                        return Observation::error(format!(
                            "Invalid arguments for {}: {e}",
                            call.name
                        ));
                    }
                }
            };
            self.act(&call.name, &args).await
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome> {
        Box::pin(async move {
            EnvOutcome {
                patch: None,
                patch_cut: None,
                final_url: Some(no_fragment(&self.snapshot.url)),
                answer: match &self.ending {
                    Some(Ending::Answer(a)) => Some(a.clone()),
                    _ => None,
                },
                title: Some(self.snapshot.title.clone()),
                visited: self.visited.clone(),
                infeasible: match &self.ending {
                    Some(Ending::Infeasible(r)) => Some(r.clone()),
                    _ => None,
                },
                error: if self.tab.is_none() {
                    Some("the browser could not be restarted after a failure".into())
                } else {
                    None
                },
            }
        })
    }
}

/// Check a start URL before launching anything.
pub fn check_start_url(url: &str) -> Result<(), BrowserError> {
    parse_web_url(url).map(|_| ())
}
