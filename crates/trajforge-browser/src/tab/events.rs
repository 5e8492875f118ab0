//! The event pump of a page session (and of each child session: frames, workers).

use std::sync::Arc;

use serde_json::{Value, json};

use super::interception::on_request;
use super::{Nav, NavState};
use crate::cdp::{Cdp, Event};
use crate::lock;
use crate::net::NetPolicy;

/// Consume the page's events: navigation state, dialogs, pop-ups, and the network guard.
// Boxed with an explicit `Send` because child sessions (frames, workers) get a pump of their own.
pub(super) fn pump(
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
                    on_main_frame(&state, &ev.params, |n| {
                        n.loading = ev.method == "Page.frameStartedLoading";
                        true
                    });
                }
                "Page.frameRequestedNavigation" => {
                    on_main_frame(&state, &ev.params, |n| {
                        n.requested += 1;
                        true
                    });
                }
                "Page.navigatedWithinDocument" => {
                    // A fragment or history-API change of the URL: a navigation with no load
                    // to wait for. Pages that only re-state their URL (`replaceState` on load,
                    // perhaps announced after the next action) are not one.
                    let url = ev.params.get("url").and_then(Value::as_str).unwrap_or("");
                    on_main_frame(&state, &ev.params, |n| {
                        if url == n.url {
                            return false;
                        }
                        n.url = url.to_string();
                        n.navigations += 1;
                        true
                    });
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

/// Applies `change` to the navigation state when the event (its `frameId`) is about the
/// main frame, and wakes whoever waits on it when `change` says something changed.
fn on_main_frame(state: &NavState, params: &Value, change: impl FnOnce(&mut Nav) -> bool) {
    let frame = params.get("frameId").and_then(Value::as_str);
    let mut n = lock(&state.nav);
    if frame.is_some() && frame == n.main_frame.as_deref() && change(&mut n) {
        drop(n);
        state.changed.notify_waiters();
    }
}
