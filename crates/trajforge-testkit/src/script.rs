//! What the fake server answers: steps and the scripts that choose them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The text of the first user message of a chat-completions request (`""` when there is
/// none): where scripted teachers recognise the task they are asked about.
pub fn first_user_text(req: &Value) -> &str {
    req["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
}

/// The text between the first `open` in `text` and the next `close` after it.
pub fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// A tool call in a scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToolCall {
    /// Tool name.
    pub name: String,
    /// Arguments, usually a JSON object.
    pub arguments: Value,
    /// Send `arguments` as this raw text instead (to script malformed native arguments).
    pub raw_arguments: Option<String>,
}

/// How a scripted reply reports token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FakeUsage {
    /// Rough counts: request bytes / 4 and reply bytes / 4.
    #[default]
    Estimate,
    /// These exact prompt and completion counts.
    Fixed(u64, u64),
    /// No `usage` field at all.
    Omit,
}

/// A 200 answer carrying one assistant message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Message text (hermes tool calls are appended to it as `<tool_call>` blocks).
    pub content: Option<String>,
    /// Sent as `reasoning_content`.
    pub reasoning_content: Option<String>,
    /// Calls sent in the native `tool_calls` field.
    pub tool_calls: Vec<FakeToolCall>,
    /// `finish_reason`; defaults to `tool_calls` when there are native calls, else `stop`.
    pub finish_reason: Option<String>,
    /// Usage reporting.
    pub usage: FakeUsage,
}

impl Reply {
    /// An empty reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the text.
    pub fn content(mut self, text: impl Into<String>) -> Self {
        self.content = Some(text.into());
        self
    }

    /// Set `reasoning_content`.
    pub fn reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning_content = Some(text.into());
        self
    }

    /// Add a native tool call.
    pub fn tool_call(mut self, name: impl Into<String>, arguments: Value) -> Self {
        self.tool_calls.push(FakeToolCall {
            name: name.into(),
            arguments,
            raw_arguments: None,
        });
        self
    }

    /// Add a native tool call whose arguments are this raw (possibly invalid) text.
    pub fn raw_tool_call(
        mut self,
        name: impl Into<String>,
        raw_arguments: impl Into<String>,
    ) -> Self {
        self.tool_calls.push(FakeToolCall {
            name: name.into(),
            arguments: Value::Null,
            raw_arguments: Some(raw_arguments.into()),
        });
        self
    }

    /// Append a hermes `<tool_call>{"name", "arguments"}</tool_call>` block to the text.
    pub fn hermes_call(self, name: &str, arguments: Value) -> Self {
        // Written by hand so "name" comes first, as models trained on chat templates emit it.
        let block = format!(
            r#"{{"name": {}, "arguments": {}}}"#,
            Value::from(name),
            arguments
        );
        self.hermes_raw(&block)
    }

    /// Append a `<tool_call>` block holding this raw text (to script malformed calls).
    pub fn hermes_raw(mut self, inner: &str) -> Self {
        let mut text = self.content.take().unwrap_or_default();
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str("<tool_call>\n");
        text.push_str(inner);
        text.push_str("\n</tool_call>");
        self.content = Some(text);
        self
    }

    /// Set `finish_reason`.
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Report these exact token counts.
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = FakeUsage::Fixed(prompt_tokens, completion_tokens);
        self
    }

    /// Leave `usage` out of the response.
    pub fn without_usage(mut self) -> Self {
        self.usage = FakeUsage::Omit;
        self
    }
}

/// One scripted action answering one chat-completions request.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// 200 with an assistant message.
    Reply(Reply),
    /// Any status, extra headers and raw body.
    Http {
        /// HTTP status.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Response body.
        body: String,
    },
    /// Wait, then perform the inner step.
    Delayed(Duration, Box<Step>),
    /// Close the connection without answering.
    DropConnection,
}

impl Step {
    /// A plain text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Step::Reply(Reply::new().content(content))
    }

    /// A reply with one native tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Step::Reply(Reply::new().tool_call(name, arguments))
    }

    /// A reply whose text holds one hermes `<tool_call>` block.
    pub fn hermes_call(name: &str, arguments: Value) -> Self {
        Step::Reply(Reply::new().hermes_call(name, arguments))
    }

    /// An error status with a JSON error body.
    pub fn status(status: u16, message: &str) -> Self {
        Step::Http {
            status,
            headers: Vec::new(),
            body: serde_json::json!({"error": {"message": message, "code": status}}).to_string(),
        }
    }

    /// 429 with `Retry-After: <retry_after>` (seconds or an HTTP date).
    pub fn too_many_requests(retry_after: &str) -> Self {
        Step::Http {
            status: 429,
            headers: vec![("Retry-After".to_string(), retry_after.to_string())],
            body: r#"{"error":{"message":"rate limit exceeded","code":429}}"#.to_string(),
        }
    }

    /// 400 worded the way vLLM reports a prompt longer than the context window.
    pub fn context_overflow() -> Self {
        Step::Http {
            status: 400,
            headers: Vec::new(),
            body: r#"{"object":"error","message":"This model's maximum context length is 8192 tokens. However, you requested 9001 tokens in the messages. Please reduce the length of the messages.","type":"BadRequestError","param":null,"code":400}"#.to_string(),
        }
    }

    /// 200 whose body is not valid JSON.
    pub fn malformed_json() -> Self {
        Step::Http {
            status: 200,
            headers: Vec::new(),
            body: r#"{"id": "chatcmpl-broken", "choices": [{"message": "#.to_string(),
        }
    }

    /// 200 with an empty `choices` array.
    pub fn empty_choices() -> Self {
        Step::Http {
            status: 200,
            headers: Vec::new(),
            body: r#"{"id":"chatcmpl-empty","object":"chat.completion","choices":[]}"#.to_string(),
        }
    }

    /// This step, performed after waiting `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Step::Delayed(delay, Box::new(self))
    }
}

type Handler = Arc<dyn Fn(&Value) -> Step + Send + Sync>;

/// How the server picks the step for each chat-completions request.
#[derive(Clone)]
pub struct Script {
    kind: ScriptKind,
}

#[derive(Clone)]
enum ScriptKind {
    Sequence(Arc<Mutex<VecDeque<Step>>>),
    Handler(Handler),
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ScriptKind::Sequence(steps) => {
                let left = steps.lock().map(|s| s.len()).unwrap_or(0);
                write!(f, "Script::Sequence({left} steps left)")
            }
            ScriptKind::Handler(_) => f.write_str("Script::Handler"),
        }
    }
}

impl Script {
    /// Steps consumed in order, one per request; when they run out the server answers
    /// 500 "script exhausted" so an unexpected extra request fails the test loudly.
    pub fn sequence(steps: Vec<Step>) -> Self {
        Self {
            kind: ScriptKind::Sequence(Arc::new(Mutex::new(steps.into()))),
        }
    }

    /// Each request is answered by calling `handler` with its JSON body, so many
    /// concurrent conversations can be answered from their content.
    pub fn handler(handler: impl Fn(&Value) -> Step + Send + Sync + 'static) -> Self {
        Self {
            kind: ScriptKind::Handler(Arc::new(handler)),
        }
    }

    /// Every request gets the same step (an "instant teacher" for benchmarks).
    pub fn repeat(step: Step) -> Self {
        Self::handler(move |_| step.clone())
    }

    /// The step for this request.
    pub(crate) fn next_step(&self, request: &Value) -> Step {
        match &self.kind {
            ScriptKind::Sequence(steps) => {
                let next = match steps.lock() {
                    Ok(mut guard) => guard.pop_front(),
                    Err(poisoned) => poisoned.into_inner().pop_front(),
                };
                next.unwrap_or_else(|| Step::status(500, "trajforge-testkit: script exhausted"))
            }
            ScriptKind::Handler(handler) => handler(request),
        }
    }

    /// Steps not yet used by a sequence script (0 for handlers).
    pub(crate) fn remaining(&self) -> usize {
        match &self.kind {
            ScriptKind::Sequence(steps) => match steps.lock() {
                Ok(guard) => guard.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            },
            ScriptKind::Handler(_) => 0,
        }
    }
}
