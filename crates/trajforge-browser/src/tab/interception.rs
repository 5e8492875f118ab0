//! The network guard: every request of the page and its frames and workers is paused
//! (CDP Fetch) and allowed, blocked, answered from a recording, or recorded.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::cdp::Cdp;
use crate::error::BrowserError;
use crate::net::{NetMode, NetPolicy};

const BLOCKED: &str = "BlockedByClient";

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

pub(super) async fn on_request(
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
