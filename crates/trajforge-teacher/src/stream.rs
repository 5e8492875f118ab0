//! Streamed chat completions: the request sent with `"stream": true` and its server-sent
//! events read as they arrive, for proxies that pass a stream on (`trajforge serve`). With
//! several servers a stream is routed like any request: its conversation stays on one server,
//! a new one goes to the least busy, and failures count towards ejecting a server.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use trajforge_chat::Role;
use trajforge_chat::wire::{ChatChunk, ChatRequest, ErrorBody};

use crate::client::{OpenAiTeacher, RouteGuard, conversation_key, transport_error};
use crate::error::{TeacherError, truncate_body};
use crate::limiter::RequestPermit;
use crate::router::AttemptEnd;
use crate::wire::mentions_context_overflow;

/// The chunks of one streamed completion, read one event at a time.
#[derive(Debug)]
pub struct ChunkStream<'a> {
    response: reqwest::Response,
    url: String,
    idle: Duration,
    buf: Vec<u8>,
    done: bool,
    started: Instant,
    // Dropped before the guard, so the server's slot is free when the router hears the end.
    _permit: RequestPermit<'a>,
    /// Tells the router how the stream ended (abandoned when dropped part-way).
    guard: RouteGuard<'a>,
}

/// How a failed stream counts for its server's health.
fn attempt_end(err: &TeacherError) -> AttemptEnd {
    match err {
        TeacherError::ContextOverflow { .. } | TeacherError::Config(_) => AttemptEnd::Refused,
        TeacherError::Status { status, .. } if (400..500).contains(status) && *status != 408 => {
            AttemptEnd::Refused
        }
        _ => AttemptEnd::ServerFault,
    }
}

impl OpenAiTeacher {
    /// Send `request` as a streamed completion (its `model`, when empty, is the configured
    /// one) and return its chunks as the server sends them. The server is chosen by the
    /// router from the conversation (see [`crate::Router`]); a failure before any chunk is
    /// retried at once on another server only when it took its server out of rotation,
    /// otherwise it is returned as it came, so the caller (or its client) decides about
    /// retries. The request timeout applies to the wait for each event, not to the whole
    /// stream.
    pub async fn stream_chat(
        &self,
        request: &ChatRequest,
    ) -> Result<ChunkStream<'_>, TeacherError> {
        let mut request = request.clone();
        request.stream = true;
        if request.model.is_empty() {
            request.model = self.config().model.clone();
        }
        let body = serde_json::to_vec(&request)
            .map_err(|e| TeacherError::Config(format!("cannot serialise request: {e}")))?;
        let key = conversation_key(request.messages.iter().map(|m| {
            let text = m.content.as_ref().and_then(|c| c.joined_text());
            (m.role.unwrap_or(Role::User), text)
        }));
        let mut tries = 0;
        loop {
            tries += 1;
            let (server, result) = self.stream_once(key, &body).await;
            match result {
                Err(e)
                    if attempt_end(&e) == AttemptEnd::ServerFault
                        && tries < self.server_urls().len()
                        && self.moves_from(server) => {}
                other => return other,
            }
        }
    }

    /// One routed attempt at starting a stream; the server it went to and its outcome.
    async fn stream_once(
        &self,
        key: u64,
        body: &[u8],
    ) -> (usize, Result<ChunkStream<'_>, TeacherError>) {
        let routed = self.route(key);
        let mut guard = routed.guard;
        let server = guard.server;
        let result = self.open_stream(routed.target, body).await;
        let result = match result {
            Ok((response, permit, url)) => Ok(ChunkStream {
                response,
                url,
                idle: self.config().request_timeout,
                buf: Vec::new(),
                done: false,
                started: Instant::now(),
                _permit: permit,
                guard,
            }),
            Err(e) => {
                guard.end = attempt_end(&e);
                Err(e)
            }
        };
        (server, result)
    }

    /// Send the streamed request to `target`; the response once its status is a success.
    async fn open_stream<'t>(
        &'t self,
        target: &'t crate::client::Endpoint,
        body: &[u8],
    ) -> Result<(reqwest::Response, RequestPermit<'t>, String), TeacherError> {
        let permit = target.limiter.acquire().await;
        let url = target.shown_endpoint.clone();
        let timeout = self.config().request_timeout;
        let mut http = self
            .http()
            .post(&target.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body.to_vec());
        if let Some(auth) = self.authorization() {
            http = http.header(AUTHORIZATION, auth.clone());
        }
        let response = tokio::time::timeout(timeout, http.send())
            .await
            .map_err(|_| TeacherError::Timeout {
                url: url.clone(),
                timeout,
                attempts: 1,
            })?
            .map_err(|e| transport_error(e, &url))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().await.unwrap_or_default();
            let text = self.redact(&text);
            let message = ErrorBody::message_in(&text).unwrap_or_else(|| truncate_body(&text));
            if status != 429 && mentions_context_overflow(&text) {
                return Err(TeacherError::ContextOverflow { status, message });
            }
            return Err(TeacherError::Status {
                status,
                url,
                body: message,
                attempts: 1,
            });
        }
        Ok((response, permit, url))
    }
}

impl ChunkStream<'_> {
    /// The next chunk; `None` after `[DONE]` or the end of the body.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, TeacherError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(data) = self.take_event() {
                match self.parse(&data) {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            let chunk = match tokio::time::timeout(self.idle, self.response.chunk()).await {
                Err(_) => {
                    return Some(self.fail(TeacherError::Timeout {
                        url: self.url.clone(),
                        timeout: self.idle,
                        attempts: 1,
                    }));
                }
                Ok(Err(e)) => {
                    let err = transport_error(e, &self.url);
                    return Some(self.fail(err));
                }
                Ok(Ok(chunk)) => chunk,
            };
            match chunk {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => {
                    self.finished();
                    // A last event without its blank line still counts.
                    let rest = std::mem::take(&mut self.buf);
                    let data = event_data(&rest);
                    return data.and_then(|d| self.parse(&d));
                }
            }
        }
    }

    /// The stream ended as it should: the server answered.
    fn finished(&mut self) {
        self.done = true;
        self.guard.end = AttemptEnd::Answered {
            latency: self.started.elapsed(),
        };
    }

    /// The stream ended on `err`; the server is told of it.
    fn fail(&mut self, err: TeacherError) -> Result<ChatChunk, TeacherError> {
        self.done = true;
        self.guard.end = attempt_end(&err);
        Err(err)
    }

    /// The data of the next complete event in the buffer, if any.
    fn take_event(&mut self) -> Option<String> {
        loop {
            let end = find_blank_line(&self.buf)?;
            let event: Vec<u8> = self.buf.drain(..end.1).collect();
            if let Some(data) = event_data(&event[..end.0]) {
                return Some(data);
            }
        }
    }

    /// A chunk, the end, or an error event; `None` for events to skip.
    fn parse(&mut self, data: &str) -> Option<Result<ChatChunk, TeacherError>> {
        if data.trim() == "[DONE]" {
            self.finished();
            return None;
        }
        // Chunks are parsed once, straight into their type; only an event that may be an
        // error object is looked at as JSON first (a chunk's fields all have defaults, so an
        // error object would read as an empty chunk).
        if data.contains("\"error\"") {
            let value: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
            if value.get("error").is_some() && value.get("choices").is_none() {
                return Some(self.fail(TeacherError::Status {
                    status: 200,
                    url: self.url.clone(),
                    body: ErrorBody::message_in(data).unwrap_or_else(|| truncate_body(data)),
                    attempts: 1,
                }));
            }
        }
        match serde_json::from_str(data) {
            Ok(chunk) => Some(Ok(chunk)),
            Err(e) => Some(self.fail(TeacherError::Malformed {
                url: self.url.clone(),
                message: format!("not a chat-completion chunk ({e}): {}", truncate_body(data)),
                attempts: 1,
            })),
        }
    }
}

/// Where the first event of `buf` ends: (end of its text, end including the blank line).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// The `data:` lines of one event joined by newlines; `None` when it has none (comments).
fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end_matches('\r'))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let buf = b"data: {\"a\":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n";
        let first = find_blank_line(buf).unwrap();
        assert_eq!(event_data(&buf[..first.0]).as_deref(), Some("{\"a\":1}"));
        let rest = &buf[first.1..];
        let second = find_blank_line(rest).unwrap();
        assert_eq!(event_data(&rest[..second.0]), None);
        let rest = &rest[second.1..];
        let third = find_blank_line(rest).unwrap();
        assert_eq!(event_data(&rest[..third.0]).as_deref(), Some("x\ny"));
    }
}
