//! The HTTP client for OpenAI-compatible chat-completions servers.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::backoff::{parse_retry_after, retry_delay};
use crate::error::{TeacherError, truncate_body};
use crate::key::ApiKey;
use crate::limiter::RequestLimiter;
use crate::router::{AttemptEnd, Router, RouterPolicy};
use crate::types::{Completion, TeacherInfo};
use crate::wire::{build_request, error_message, mentions_context_overflow, parse_response};
use trajforge_chat::ServerStats;
use trajforge_chat::{ChatMessage, Role, Sampling, ToolMode, ToolSpec};

/// A boxed future returned by [`Teacher::complete`].
pub type CompletionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Completion, TeacherError>> + Send + 'a>>;

/// A model that answers a conversation with the next assistant message.
///
/// Object-safe so the agent loop can hold `Arc<dyn Teacher>` and an in-process model
/// can stand in for an HTTP server.
pub trait Teacher: Send + Sync {
    /// Produce the next assistant message for `messages`, offering `tools`.
    fn complete<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a>;

    /// Where the teacher lives and how it exchanges tool calls.
    fn describe(&self) -> TeacherInfo;

    /// Requests, errors and latency per server so far (empty for in-process teachers).
    fn server_stats(&self) -> Vec<ServerStats> {
        Vec::new()
    }
}

/// Reported to [`TeacherConfig::on_retry`] before each retry sleep.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    /// The attempt that just failed (1-based).
    pub attempt: u32,
    /// How long the client waits before the next attempt.
    pub delay: Duration,
    /// Why the attempt failed (never contains the API key).
    pub reason: String,
}

/// Callback told about retries, so a caller can show them live (libraries never print).
pub type RetryHook = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Settings of an [`OpenAiTeacher`].
#[derive(Clone)]
pub struct TeacherConfig {
    /// Base URL ending in the API version, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Further servers of the same model beside `base_url`: each conversation goes to the
    /// one with the fewest requests in flight and stays there (see [`Router`]).
    pub more_servers: Vec<String>,
    /// When a failing server leaves rotation and how it comes back.
    pub routing: RouterPolicy,
    /// Model name sent with every request.
    pub model: String,
    /// Bearer token, if the server needs one.
    pub api_key: Option<ApiKey>,
    /// Tool-call transport.
    pub mode: ToolMode,
    /// Sampling parameters.
    pub sampling: Sampling,
    /// Limit on one HTTP attempt, from sending to the last body byte.
    pub request_timeout: Duration,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// Retries for 200 answers that are not a usable completion (kept low: such
    /// answers are usually deterministic for a given prompt).
    pub max_malformed_retries: u32,
    /// First backoff ceiling; doubles with each retry.
    pub backoff_base: Duration,
    /// Largest wait between attempts, also the cap on a server's `Retry-After`.
    pub backoff_max: Duration,
    /// Cap on requests in flight to `base_url`; each further server gets a limiter of the
    /// same capacity.
    pub limiter: Arc<RequestLimiter>,
    /// Optional observer of retries.
    pub on_retry: Option<RetryHook>,
}

impl TeacherConfig {
    /// Defaults: native tools, temperature 0.6, 600 s timeout, 6 retries, backoff 1 s to 60 s,
    /// a private limiter of 16 requests, key from the environment.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            more_servers: Vec::new(),
            routing: RouterPolicy::default(),
            model: model.into(),
            api_key: ApiKey::from_env(),
            mode: ToolMode::Native,
            sampling: Sampling::default(),
            request_timeout: Duration::from_secs(600),
            max_retries: 6,
            max_malformed_retries: 2,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            limiter: Arc::new(RequestLimiter::default()),
            on_retry: None,
        }
    }
}

impl fmt::Debug for TeacherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeacherConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field(
                "more_servers",
                &self
                    .more_servers
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("routing", &self.routing)
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("mode", &self.mode)
            .field("sampling", &self.sampling)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_malformed_retries", &self.max_malformed_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("limiter", &self.limiter)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

/// A [`Teacher`] speaking the OpenAI chat-completions protocol over HTTP, to one server or
/// several serving the same model.
pub struct OpenAiTeacher {
    http: reqwest::Client,
    config: TeacherConfig,
    servers: Vec<Endpoint>,
    router: Mutex<Router>,
    authorization: Option<HeaderValue>,
    /// Source of ids for tool calls the server did not number (hermes text).
    next_call: AtomicU64,
}

/// One server of an [`OpenAiTeacher`].
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `{base_url}/chat/completions`, used for requests.
    pub(crate) endpoint: String,
    /// The endpoint without any userinfo, used in errors.
    pub(crate) shown_endpoint: String,
    /// Its own cap on requests in flight.
    pub(crate) limiter: Arc<RequestLimiter>,
}

/// A request's server, chosen by the router, and its place there.
#[derive(Debug)]
pub(crate) struct Routed<'a> {
    /// The server.
    pub(crate) target: &'a Endpoint,
    /// Set its `end` to tell the router how the attempt went.
    pub(crate) guard: RouteGuard<'a>,
}

impl fmt::Debug for OpenAiTeacher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<&str> = self
            .servers
            .iter()
            .map(|s| s.shown_endpoint.as_str())
            .collect();
        f.debug_struct("OpenAiTeacher")
            .field("endpoints", &endpoints)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Counts a routed attempt out of the router however it ends, also when the caller drops
/// the request's future (a run stopping, a timeout around the episode) or a stream.
#[derive(Debug)]
pub(crate) struct RouteGuard<'a> {
    router: &'a Mutex<Router>,
    /// The server the attempt went to.
    pub(crate) server: usize,
    /// How it ended; `Abandoned` until the caller says otherwise.
    pub(crate) end: AttemptEnd,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        lock(self.router).finish(self.server, self.end, Instant::now());
    }
}

/// The router's lock; a panic elsewhere while holding it leaves consistent counters.
fn lock(router: &Mutex<Router>) -> MutexGuard<'_, Router> {
    router
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What identifies a conversation across its steps: everything up to its first user
/// message (the system prompt and the task), which every later request repeats. Given as
/// each message's role and text, so wire messages (streams) and chat messages key alike.
pub(crate) fn conversation_key<T: AsRef<str>>(
    messages: impl IntoIterator<Item = (Role, Option<T>)>,
) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for (role, content) in messages {
        format!("{role:?}").hash(&mut hasher);
        content
            .as_ref()
            .map(|c| AsRef::<str>::as_ref(c))
            .hash(&mut hasher);
        if role == Role::User {
            break;
        }
    }
    hasher.finish()
}

/// One failed attempt, before attempts are counted in.
enum Failure {
    Overflow {
        status: u16,
        message: String,
    },
    Status {
        status: u16,
        body: String,
        retryable: bool,
        retry_after: Option<Duration>,
    },
    Timeout,
    Connection(String),
    Malformed(String),
    Config(String),
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Status { retryable, .. } => *retryable,
            Failure::Timeout | Failure::Connection(_) | Failure::Malformed(_) => true,
            Failure::Overflow { .. } | Failure::Config(_) => false,
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Overflow { status, .. } => format!("HTTP {status}: context overflow"),
            Failure::Status { status, body, .. } => format!("HTTP {status}: {body}"),
            Failure::Timeout => "timed out".to_string(),
            Failure::Connection(m) => format!("connection error: {m}"),
            Failure::Malformed(m) => format!("malformed response: {m}"),
            Failure::Config(m) => m.clone(),
        }
    }
}

impl OpenAiTeacher {
    /// Validate the configuration and build the HTTP client.
    pub fn new(config: TeacherConfig) -> Result<Self, TeacherError> {
        let mut servers = Vec::with_capacity(1 + config.more_servers.len());
        for (i, raw) in std::iter::once(&config.base_url)
            .chain(&config.more_servers)
            .enumerate()
        {
            let base = raw.trim().trim_end_matches('/').to_string();
            let url = reqwest::Url::parse(&base)
                .map_err(|e| TeacherError::Config(format!("invalid teacher base URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(TeacherError::Config(format!(
                    "teacher base URL must be http or https, not {}",
                    url.scheme()
                )));
            }
            servers.push(Endpoint {
                endpoint: format!("{base}/chat/completions"),
                shown_endpoint: format!("{}/chat/completions", redact_url(&base)),
                limiter: if i == 0 {
                    Arc::clone(&config.limiter)
                } else {
                    Arc::new(RequestLimiter::new(config.limiter.capacity()))
                },
            });
        }
        let shown: Vec<String> = std::iter::once(&config.base_url)
            .chain(&config.more_servers)
            .map(|u| redact_url(u))
            .collect();
        let router = Mutex::new(Router::new(&shown, config.routing));

        let authorization = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                    TeacherError::Config(
                        "API key contains characters not allowed in an HTTP header".into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };

        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("trajforge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                TeacherError::Config(format!("cannot build HTTP client: {}", error_chain(&e)))
            })?;

        Ok(Self {
            http,
            servers,
            router,
            authorization,
            config,
            next_call: AtomicU64::new(1),
        })
    }

    /// Ask the server which models it serves (`GET {base}/models`), with a short timeout.
    ///
    /// A quick reachability check before an episode: a server that is down or a wrong URL
    /// is reported at once instead of after the retries of the first completion.
    pub async fn models(&self, timeout: Duration) -> Result<Vec<String>, TeacherError> {
        self.models_of(0, timeout).await
    }

    /// The base URLs of the servers (without credentials), in the order given.
    pub fn server_urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| {
                s.shown_endpoint
                    .trim_end_matches("/chat/completions")
                    .to_string()
            })
            .collect()
    }

    /// [`OpenAiTeacher::models`] of server number `server` (see [`OpenAiTeacher::server_urls`]).
    pub async fn models_of(
        &self,
        server: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, TeacherError> {
        let Some(target) = self.servers.get(server) else {
            return Err(TeacherError::Config(format!(
                "no teacher server number {server}"
            )));
        };
        let base = target.endpoint.trim_end_matches("/chat/completions");
        let url = format!("{base}/models");
        let shown = target
            .shown_endpoint
            .trim_end_matches("/chat/completions")
            .to_string()
            + "/models";
        let mut request = self.http.get(&url).timeout(timeout);
        if let Some(auth) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                TeacherError::Timeout {
                    url: shown.clone(),
                    timeout,
                    attempts: 1,
                }
            } else {
                TeacherError::Connection {
                    url: shown.clone(),
                    message: error_chain(&e),
                    attempts: 1,
                }
            }
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            let cut = body
                .char_indices()
                .nth(crate::error::MAX_ERROR_BODY)
                .map_or(body.len(), |(i, _)| i);
            let body = body[..cut].to_string();
            return Err(TeacherError::Status {
                status,
                url: shown,
                body,
                attempts: 1,
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| TeacherError::Malformed {
                url: shown.clone(),
                message: format!("not JSON: {e}"),
                attempts: 1,
            })?;
        Ok(value["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &TeacherConfig {
        &self.config
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Route the next request of conversation `key` (see [`Router::route`]) and hold its
    /// place in the router until the returned guard is dropped.
    pub(crate) fn route(&self, key: u64) -> Routed<'_> {
        let server = lock(&self.router).route(key, Instant::now()).server;
        Routed {
            target: &self.servers[server],
            guard: RouteGuard {
                router: &self.router,
                server,
                end: AttemptEnd::Abandoned,
            },
        }
    }

    /// Whether a failed attempt on `server` should move at once to another server: it just
    /// left rotation and another is available.
    pub(crate) fn moves_from(&self, server: usize) -> bool {
        let router = lock(&self.router);
        let now = Instant::now();
        !router.is_available(server, now) && (0..router.len()).any(|s| router.is_available(s, now))
    }

    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    async fn complete_with_retries(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<Completion, TeacherError> {
        let request = build_request(
            &self.config.model,
            messages,
            tools,
            &self.config.sampling,
            self.config.mode,
        );
        let body = serde_json::to_vec(&request)
            .map_err(|e| TeacherError::Config(format!("cannot serialise request: {e}")))?;
        let key = conversation_key(messages.iter().map(|m| (m.role, m.content.as_deref())));
        let mut attempt: u32 = 0;
        let mut malformed_seen: u32 = 0;
        loop {
            attempt += 1;
            let routed = self.route(key);
            let server = routed.guard.server;
            let failure = match self.attempt(routed, &body).await {
                Ok(mut completion) => {
                    completion.attempts = attempt;
                    return Ok(completion);
                }
                Err(f) => f,
            };
            if matches!(failure, Failure::Malformed(_)) {
                malformed_seen += 1;
            }
            let retries_used = attempt - 1;
            let out_of_retries = retries_used >= self.config.max_retries
                || malformed_seen > self.config.max_malformed_retries;
            if !failure.retryable() || out_of_retries {
                return Err(self.to_error(server, failure, attempt));
            }
            let retry_after = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let delay = if self.moves_from(server) {
                // This server just left rotation and another can take the retry at once.
                Duration::ZERO
            } else {
                retry_delay(
                    attempt,
                    self.config.backoff_base,
                    self.config.backoff_max,
                    retry_after,
                )
            };
            if let Some(hook) = &self.config.on_retry {
                hook(&RetryEvent {
                    attempt,
                    delay,
                    reason: failure.reason(),
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange with the routed `server`, holding its limiter slot only while the
    /// request is in flight, and telling the router how it ended.
    async fn attempt(&self, routed: Routed<'_>, body: &[u8]) -> Result<Completion, Failure> {
        let Routed { target, mut guard } = routed;
        let result = self.exchange(target, body).await;
        guard.end = match &result {
            Ok(c) => AttemptEnd::Answered { latency: c.latency },
            Err(Failure::Overflow { .. } | Failure::Config(_)) => AttemptEnd::Refused,
            Err(Failure::Status { status, .. })
                if (400..500).contains(status) && *status != 408 =>
            {
                AttemptEnd::Refused
            }
            Err(_) => AttemptEnd::ServerFault,
        };
        result
    }

    async fn exchange(&self, target: &Endpoint, body: &[u8]) -> Result<Completion, Failure> {
        let permit = target.limiter.acquire().await;
        let started = Instant::now();
        let exchange = async {
            let mut request = self
                .http
                .post(&target.endpoint)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            if let Some(auth) = &self.authorization {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let response = request.send().await.map_err(transport_failure)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let text = response.text().await.map_err(transport_failure)?;
            Ok::<_, Failure>((status, retry_after, text))
        };
        let outcome = tokio::time::timeout(self.config.request_timeout, exchange).await;
        let latency = started.elapsed();
        drop(permit);
        let (status, retry_after, text) = outcome.map_err(|_| Failure::Timeout)??;
        self.classify(status, retry_after, &text, latency)
    }

    fn classify(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        text: &str,
        latency: Duration,
    ) -> Result<Completion, Failure> {
        let text = &self.redact(text);
        if (200..300).contains(&status) {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                Failure::Malformed(format!("body is not JSON ({e}): {}", truncate_body(text)))
            })?;
            let mut next_id = || format!("call_{}", self.next_call.fetch_add(1, Ordering::Relaxed));
            return match parse_response(&value, self.config.mode, &mut next_id) {
                Ok(parsed) => Ok(Completion {
                    message: parsed.message,
                    usage: parsed.usage,
                    finish_reason: parsed.finish_reason,
                    latency,
                    attempts: 0,
                }),
                // Some proxies answer 200 with an error object.
                Err(_) if value.get("error").is_some() && mentions_context_overflow(text) => {
                    Err(Failure::Overflow {
                        status,
                        message: error_message(text),
                    })
                }
                Err(why) => Err(Failure::Malformed(format!(
                    "{why}: {}",
                    truncate_body(text)
                ))),
            };
        }
        if status != 429 && mentions_context_overflow(text) {
            return Err(Failure::Overflow {
                status,
                message: error_message(text),
            });
        }
        let retryable = status == 429 || status == 408 || (500..600).contains(&status);
        Err(Failure::Status {
            status,
            body: error_message(text),
            retryable,
            retry_after,
        })
    }

    /// Some servers echo the key they rejected; keep it out of error messages.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &self.config.api_key {
            Some(key) if !key.expose_secret().is_empty() && text.contains(key.expose_secret()) => {
                std::borrow::Cow::Owned(text.replace(key.expose_secret(), "***"))
            }
            _ => std::borrow::Cow::Borrowed(text),
        }
    }

    fn to_error(&self, server: usize, failure: Failure, attempts: u32) -> TeacherError {
        let url = self.servers[server].shown_endpoint.clone();
        match failure {
            Failure::Overflow { status, message } => {
                TeacherError::ContextOverflow { status, message }
            }
            Failure::Status { status, body, .. } => TeacherError::Status {
                status,
                url,
                body,
                attempts,
            },
            Failure::Timeout => TeacherError::Timeout {
                url,
                timeout: self.config.request_timeout,
                attempts,
            },
            Failure::Connection(message) => TeacherError::Connection {
                url,
                message,
                attempts,
            },
            Failure::Malformed(message) => TeacherError::Malformed {
                url,
                message,
                attempts,
            },
            Failure::Config(message) => TeacherError::Config(message),
        }
    }
}

impl Teacher for OpenAiTeacher {
    fn complete<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(self.complete_with_retries(messages, tools))
    }

    fn describe(&self) -> TeacherInfo {
        TeacherInfo {
            base_url: self.server_urls().join(","),
            model: self.config.model.clone(),
            mode: self.config.mode,
        }
    }

    fn server_stats(&self) -> Vec<ServerStats> {
        lock(&self.router).stats()
    }
}

/// reqwest is built without a default crypto provider so aws-lc (cmake, nasm) is not needed;
/// install ring unless the process already chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A transport failure of a one-attempt exchange (streams are not retried).
pub(crate) fn transport_error(err: reqwest::Error, url: &str) -> TeacherError {
    let url = url.to_string();
    match transport_failure(err) {
        Failure::Timeout => TeacherError::Connection {
            url,
            message: "timed out".into(),
            attempts: 1,
        },
        Failure::Config(message) => TeacherError::Config(message),
        other => TeacherError::Connection {
            url,
            message: other.reason(),
            attempts: 1,
        },
    }
}

fn transport_failure(err: reqwest::Error) -> Failure {
    if err.is_builder() {
        return Failure::Config(error_chain(&err.without_url()));
    }
    if err.is_timeout() {
        return Failure::Timeout;
    }
    Failure::Connection(error_chain(&err.without_url()))
}

/// An error and its sources on one line (reqwest's Display alone hides the cause).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The URL without user name and password: userinfo is a credential too.
fn redact_url(raw: &str) -> String {
    let trimmed = raw.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(mut url) if url.password().is_some() || !url.username().is_empty() => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.as_str().trim_end_matches('/').to_string()
        }
        Ok(_) => trimmed.to_string(),
        // `new` rejects such URLs, but Debug may still show one: hide anything before '@'.
        Err(_) => match trimmed.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => trimmed.to_string(),
        },
    }
}
