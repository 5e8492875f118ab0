//! What an episode records: every step, its timing and usage, the exit status and outcome.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trajforge_teacher::{ChatMessage, Role, TeacherInfo, ToolSpec, Usage};

use crate::env::{EnvOutcome, Observation};

/// Why an episode ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum ExitStatus {
    /// The agent submitted (or answered) and confirmed.
    Submitted,
    /// The step limit was reached.
    StepLimit,
    /// The conversation no longer fits the model's context.
    ContextOverflow,
    /// Too many malformed tool calls in a row.
    MalformedCalls,
    /// The same calls got the same results too many steps in a row (the loop guard).
    Stuck,
    /// The teacher failed after its retries.
    TeacherError(String),
    /// The run was cancelled (budget or Ctrl-C) before the episode ended.
    Cancelled,
}

impl ExitStatus {
    /// Short label, for summaries and status counts.
    pub fn label(&self) -> &'static str {
        match self {
            ExitStatus::Submitted => "submitted",
            ExitStatus::StepLimit => "step_limit",
            ExitStatus::ContextOverflow => "context_overflow",
            ExitStatus::MalformedCalls => "malformed_calls",
            ExitStatus::Stuck => "stuck",
            ExitStatus::TeacherError(_) => "teacher_error",
            ExitStatus::Cancelled => "cancelled",
        }
    }
}

/// One tool call made in a step and what it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    /// The call id.
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// Raw JSON arguments.
    pub arguments: String,
    /// The observation returned to the model.
    pub observation: Observation,
}

/// One model call and the tool calls it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 0-based index of the model call.
    pub index: usize,
    /// When the model call started, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// The assistant message (text, reasoning, tool calls).
    pub assistant: ChatMessage,
    /// Tokens of this call.
    pub usage: Usage,
    /// Time the model took, retries included.
    #[serde(with = "millis")]
    pub model_time: Duration,
    /// Requests sent for this call (1 without retries).
    pub attempts: u32,
    /// The tool calls and their observations, in order.
    pub tools: Vec<ToolUse>,
    /// Time our own code spent on this step, outside the model and the tools.
    #[serde(with = "micros")]
    pub overhead: Duration,
}

/// A whole episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Format version of this record.
    pub version: u32,
    /// The teacher that produced it.
    pub teacher: TeacherInfo,
    /// The task text given to the agent.
    pub task: String,
    /// The tools offered, as JSON Schemas.
    pub tools: Vec<ToolSpec>,
    /// The full conversation, as the model saw it.
    pub messages: Vec<ChatMessage>,
    /// Per-step records.
    pub steps: Vec<Step>,
    /// Why it ended.
    pub exit: ExitStatus,
    /// What the environment handed back.
    pub outcome: EnvOutcome,
    /// Sum of the steps' usage.
    pub usage: Usage,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time of the episode.
    #[serde(with = "millis")]
    pub duration: Duration,
}

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Durations as whole milliseconds in JSON.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Deserialise from milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Durations as whole microseconds in JSON (for small overheads).
pub mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise as microseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    /// Deserialise from microseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

impl Trajectory {
    /// A submitted episode known only by its conversation (imported, or made up for a test or
    /// a benchmark): no step records, usage or timing; `patch` is what it handed back.
    pub fn conversation(
        teacher: TeacherInfo,
        task: impl Into<String>,
        tools: Vec<ToolSpec>,
        messages: Vec<ChatMessage>,
        patch: Option<String>,
    ) -> Trajectory {
        Trajectory {
            version: 1,
            teacher,
            task: task.into(),
            tools,
            messages,
            steps: Vec::new(),
            exit: ExitStatus::Submitted,
            outcome: EnvOutcome {
                patch,
                ..EnvOutcome::default()
            },
            usage: Usage::default(),
            started_at_ms: 0,
            duration: Duration::ZERO,
        }
    }

    /// Give every tool result without a name the name of the tool it answers (found by call
    /// id, else by position among the preceding assistant turn's calls): trainers' templates
    /// and LLaMA-Factory expect named tool turns, and sources often leave the name out.
    pub fn name_tool_results(&mut self) {
        let mut calls: Vec<(String, String)> = Vec::new();
        let mut answered = 0usize;
        for m in self.messages.iter_mut() {
            match m.role {
                Role::Assistant => {
                    calls = m
                        .tool_calls
                        .iter()
                        .map(|c| (c.id.clone(), c.name.clone()))
                        .collect();
                    answered = 0;
                }
                Role::Tool => {
                    if m.name.as_deref().is_none_or(str::is_empty) {
                        let by_id = m
                            .tool_call_id
                            .as_deref()
                            .and_then(|id| calls.iter().find(|(c, _)| c == id));
                        if let Some((_, name)) = by_id.or_else(|| calls.get(answered)) {
                            m.name = Some(name.clone());
                        }
                    }
                    answered += 1;
                }
                _ => {}
            }
        }
    }
}
