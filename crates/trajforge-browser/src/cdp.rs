//! A small DevTools protocol client over Chromium's `--remote-debugging-pipe`
//! (NUL-separated JSON on fds 3 and 4): only what trajforge needs, every call with a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::error::BrowserError;
use crate::lock;

/// A protocol event routed to the session it belongs to.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event name, e.g. `Fetch.requestPaused`.
    pub method: String,
    /// Event parameters.
    pub params: Value,
}

type Reply = oneshot::Sender<Result<Value, (i64, String)>>;

struct Inner {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Reply>>,
    sessions: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    closed: AtomicBool,
}

/// A connection to one browser; cheap to clone.
#[derive(Clone)]
pub struct Cdp {
    inner: Arc<Inner>,
    timeout: Duration,
}

impl Cdp {
    /// Start reader and writer tasks over the browser's pipe ends.
    pub fn start(
        reader: impl AsyncRead + Unpin + Send + 'static,
        writer: impl AsyncWrite + Unpin + Send + 'static,
        timeout: Duration,
    ) -> Cdp {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let inner = Arc::new(Inner {
            tx,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let mut writer = writer;
        let w_inner = Arc::clone(&inner);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if writer.write_all(&msg).await.is_err() || writer.flush().await.is_err() {
                    close(&w_inner);
                    break;
                }
            }
        });
        let r_inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let mut reader = BufReader::with_capacity(1 << 16, reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        dispatch(&r_inner, &buf);
                    }
                }
            }
            close(&r_inner);
        });
        Cdp { inner, timeout }
    }

    /// True once the pipe closed (the browser exited or crashed).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The default timeout of calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Receive the events of `session` (a flattened target session id; "" for the browser).
    pub fn subscribe(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.is_closed() {
            lock(&self.inner.sessions).insert(session.to_string(), tx);
        }
        rx
    }

    /// Stop routing events of `session`.
    pub fn unsubscribe(&self, session: &str) {
        lock(&self.inner.sessions).remove(session);
    }

    /// Call `method` with the default timeout.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, BrowserError> {
        self.call_within(session, method, params, self.timeout)
            .await
    }

    /// Call `method`, failing with [`BrowserError::Timeout`] after `timeout`.
    pub async fn call_within(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, BrowserError> {
        if self.is_closed() {
            return Err(BrowserError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_string());
        }
        let mut bytes = serde_json::to_vec(&msg).map_err(|e| BrowserError::Protocol {
            method: method.to_string(),
            message: e.to_string(),
        })?;
        bytes.push(0);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, tx);
        if self.inner.tx.send(bytes).is_err() {
            lock(&self.inner.pending).remove(&id);
            return Err(BrowserError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err((_code, message)))) => Err(BrowserError::Protocol {
                method: method.to_string(),
                message,
            }),
            Ok(Err(_)) => Err(BrowserError::Closed),
            Err(_) => {
                lock(&self.inner.pending).remove(&id);
                Err(BrowserError::Timeout {
                    method: method.to_string(),
                    millis: timeout.as_millis() as u64,
                })
            }
        }
    }
}

fn close(inner: &Inner) {
    inner.closed.store(true, Ordering::SeqCst);
    // Dropping the senders wakes every waiter with an error.
    lock(&inner.pending).clear();
    lock(&inner.sessions).clear();
}

fn dispatch(inner: &Inner, bytes: &[u8]) {
    let Ok(msg) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    if let Some(id) = msg.get("id").and_then(Value::as_u64) {
        let Some(reply) = lock(&inner.pending).remove(&id) else {
            return;
        };
        let result = match msg.get("error") {
            Some(err) => Err((
                err.get("code").and_then(Value::as_i64).unwrap_or(0),
                err.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string(),
            )),
            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
        };
        let _ = reply.send(result);
        return;
    }
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return;
    };
    let session = msg.get("sessionId").and_then(Value::as_str).unwrap_or("");
    let sessions = lock(&inner.sessions);
    if let Some(tx) = sessions.get(session) {
        let _ = tx.send(Event {
            method: method.to_string(),
            params: msg.get("params").cloned().unwrap_or(Value::Null),
        });
    }
}
