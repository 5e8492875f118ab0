//! The agent loop: any teacher over any environment, one episode at a time.

use std::time::{Duration, Instant};

use trajforge_teacher::{ChatMessage, Teacher, ToolCall, ToolSpec, Usage};

use crate::env::{Environment, Observation};
use crate::trajectory::{ExitStatus, Step, ToolUse, Trajectory, now_ms};

/// Limits and prompts of an episode.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The system prompt.
    pub system_prompt: String,
    /// Most model calls per episode (SERA: 115).
    pub max_steps: usize,
    /// Malformed or missing tool calls in a row that end the episode.
    pub max_malformed_in_a_row: usize,
    /// Stop before a prompt would exceed this many tokens (estimated), when set.
    pub max_context_tokens: Option<u64>,
    /// Steps in a row making the same calls with the same results that end the episode as
    /// stuck (0: never).
    pub max_repeats: usize,
}

/// Default of [`LoopConfig::max_repeats`].
pub const DEFAULT_MAX_REPEATS: usize = 5;

/// The default system prompt for coding episodes.
pub const CODE_SYSTEM_PROMPT: &str = "You are a careful software engineer working in a repository \
checked out at /workspace, inside a sandbox without network access. Work like a developer: read the \
relevant code, form a hypothesis, reproduce the problem with a small script when you can, make a \
minimal change to non-test files, and check it. Use the tools: `bash` runs a shell command (the shell \
persists between calls, so `cd` and exported variables stay), `str_replace_editor` views and edits \
files, and `submit` hands in your change when you are done. Think before each action and explain \
briefly what you are doing. Call exactly one tool per turn.";

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            system_prompt: CODE_SYSTEM_PROMPT.to_string(),
            max_steps: 115,
            max_malformed_in_a_row: 3,
            max_context_tokens: None,
            max_repeats: DEFAULT_MAX_REPEATS,
        }
    }
}

/// Something that happened during an episode, for live output.
#[derive(Debug)]
pub enum Event<'a> {
    /// The model answered.
    Assistant {
        /// Step index.
        step: usize,
        /// The assistant message.
        message: &'a ChatMessage,
        /// Tokens of the call.
        usage: Usage,
        /// Model time, retries included.
        model_time: Duration,
    },
    /// A tool ran.
    Tool {
        /// Step index.
        step: usize,
        /// The call.
        call: &'a ToolCall,
        /// Its observation.
        observation: &'a Observation,
    },
    /// The teacher call failed and the episode ends.
    TeacherFailed {
        /// Step index.
        step: usize,
        /// The error, as text.
        error: String,
    },
}

/// Characters of an answer's text (its content, and its reasoning) kept in the prompt and the
/// trajectory, and of the task: four times an observation's 16,000; the middle of a longer
/// text is dropped with a note.
pub const MAX_MESSAGE_CHARS: usize = 64_000;

/// Characters of one tool call's arguments: a longer call is not run (the model is told to
/// write in smaller parts) and is kept with the middle of its arguments dropped and a note.
pub const MAX_ARGUMENT_CHARS: usize = 256_000;

/// Keeps the head and tail of `text` (`max_chars` in all) with `note(omitted characters)`
/// between them, on lines of their own; a text within the limit as it is.
pub fn clip_middle_with(
    text: &str,
    max_chars: usize,
    note: impl FnOnce(usize) -> String,
) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let half = max_chars / 2;
    let head_end = text.char_indices().nth(half).map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(count - half)
        .map_or(text.len(), |(i, _)| i);
    format!(
        "{}\n{}\n{}",
        &text[..head_end],
        note(count - 2 * half),
        &text[tail_start..]
    )
}

/// [`clip_middle_with`] with trajforge's note for text of the model or the task.
fn clip_text(text: &str, max_chars: usize) -> String {
    clip_middle_with(text, max_chars, |omitted| {
        format!("[trajforge: {omitted} characters cut here, over the limit of {max_chars}]")
    })
}

/// An answer as the prompt and the trajectory keep it: long texts cut with a note, and a call
/// with oversized arguments marked unusable (so it is answered with an error, not run).
fn bounded(mut message: ChatMessage) -> ChatMessage {
    for text in [&mut message.content, &mut message.reasoning]
        .into_iter()
        .flatten()
    {
        if text.len() > MAX_MESSAGE_CHARS {
            *text = clip_text(text, MAX_MESSAGE_CHARS);
        }
    }
    for call in &mut message.tool_calls {
        if call.arguments.len() > MAX_ARGUMENT_CHARS {
            let count = call.arguments.chars().count();
            if count > MAX_ARGUMENT_CHARS {
                call.arguments = clip_text(&call.arguments, MAX_ARGUMENT_CHARS);
                call.parse_error.get_or_insert(format!(
                    "its arguments are {count} characters, over the limit of {MAX_ARGUMENT_CHARS}; \
write large content in several smaller steps"
                ));
            }
        }
    }
    message
}

/// What the model is told when its answer carried no usable tool call, naming the tools the
/// environment offers (a repository's or a browser's).
fn no_tool_call(tools: &[ToolSpec]) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    format!(
        "Your last answer did not call a tool. Every answer must call exactly one of the tools offered \
({}) with valid JSON arguments. Try again.",
        names.join(", ")
    )
}

/// Run one episode of `teacher` in `env` on `task`, reporting events to `on_event`.
pub async fn run_episode(
    teacher: &dyn Teacher,
    env: &mut dyn Environment,
    task: &str,
    config: &LoopConfig,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Trajectory {
    let started = Instant::now();
    let started_at_ms = now_ms();
    let tools = env.tools();
    let mut messages = vec![
        ChatMessage::system(&config.system_prompt),
        ChatMessage::user(clip_text(task, MAX_MESSAGE_CHARS)),
    ];
    let mut steps: Vec<Step> = Vec::new();
    let mut usage = Usage::default();
    let mut malformed_in_a_row = 0usize;
    let mut repeats = Repeats::default();
    let mut last_prompt_tokens = 0u64;
    let mut exit = ExitStatus::StepLimit;

    'episode: for index in 0..config.max_steps {
        if let Some(limit) = config.max_context_tokens
            && estimate_prompt_tokens(&messages, last_prompt_tokens) > limit
        {
            exit = ExitStatus::ContextOverflow;
            break;
        }
        let step_started_at_ms = now_ms();
        let call_started = Instant::now();
        let completion = teacher.complete(&messages, &tools).await;
        let model_time = call_started.elapsed();
        let completion = match completion {
            Ok(c) => c,
            Err(err) => {
                on_event(Event::TeacherFailed {
                    step: index,
                    error: err.to_string(),
                });
                exit = if err.is_context_overflow() {
                    ExitStatus::ContextOverflow
                } else {
                    ExitStatus::TeacherError(err.to_string())
                };
                break;
            }
        };
        let ours = Instant::now();
        usage.prompt_tokens += completion.usage.prompt_tokens;
        usage.completion_tokens += completion.usage.completion_tokens;
        last_prompt_tokens = completion.usage.prompt_tokens + completion.usage.completion_tokens;
        let assistant = bounded(completion.message);
        on_event(Event::Assistant {
            step: index,
            message: &assistant,
            usage: completion.usage,
            model_time,
        });
        messages.push(assistant.clone());

        let mut uses = Vec::new();
        let mut tool_time = Duration::ZERO;
        let mut done = false;
        if assistant.tool_calls.is_empty() {
            malformed_in_a_row += 1;
            messages.push(ChatMessage::user(no_tool_call(&tools)));
        } else {
            let mut all_malformed = true;
            for call in &assistant.tool_calls {
                let observation = if let Some(problem) = &call.parse_error {
                    Observation::error(format!(
                        "Your tool call could not be parsed: {problem}. Call a tool with a JSON object of arguments."
                    ))
                } else if !tools.iter().any(|t| t.name == call.name) {
                    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                    Observation::error(format!(
                        "Unknown tool {:?}. The tools are: {}.",
                        call.name,
                        names.join(", ")
                    ))
                } else {
                    all_malformed = false;
                    let t = Instant::now();
                    let mut obs = env.call(call).await;
                    let took = t.elapsed();
                    tool_time += took;
                    if obs.duration.is_zero() {
                        obs.duration = took;
                    }
                    obs
                };
                on_event(Event::Tool {
                    step: index,
                    call,
                    observation: &observation,
                });
                messages.push(ChatMessage::tool_result(call, observation.text.clone()));
                done = observation.done;
                uses.push(ToolUse {
                    id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    observation,
                });
                if done {
                    break;
                }
            }
            if all_malformed {
                malformed_in_a_row += 1;
            } else {
                malformed_in_a_row = 0;
            }
        }
        let repeated = repeats.count(&uses);
        let overhead = ours.elapsed().saturating_sub(tool_time);
        steps.push(Step {
            index,
            started_at_ms: step_started_at_ms,
            assistant,
            usage: completion.usage,
            model_time,
            attempts: completion.attempts,
            tools: uses,
            overhead,
        });
        if done {
            exit = ExitStatus::Submitted;
            break 'episode;
        }
        if malformed_in_a_row >= config.max_malformed_in_a_row {
            exit = ExitStatus::MalformedCalls;
            break;
        }
        if config.max_repeats > 0 && repeated >= config.max_repeats {
            exit = ExitStatus::Stuck;
            break;
        }
    }
    let outcome = env.finish().await;
    Trajectory {
        version: 1,
        teacher: teacher.describe(),
        task: task.to_string(),
        tools,
        messages,
        steps,
        exit,
        outcome,
        usage,
        started_at_ms,
        duration: started.elapsed(),
    }
}

/// Counts steps in a row whose tool calls and results are the same as the step before.
#[derive(Debug, Default)]
struct Repeats {
    last: Option<u64>,
    run: usize,
}

impl Repeats {
    /// Records a step's tool uses; returns how many steps in a row (this one included) made
    /// these calls with these results. A step without a call counts as none.
    fn count(&mut self, uses: &[ToolUse]) -> usize {
        use std::hash::{Hash, Hasher};
        if uses.is_empty() {
            *self = Repeats::default();
            return 0;
        }
        // In-process only: std's hasher is enough to tell steps apart.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for u in uses {
            (&u.tool, &u.arguments, &u.observation.text).hash(&mut h);
            (u.observation.exit_code, u.observation.error).hash(&mut h);
        }
        let key = h.finish();
        if self.last == Some(key) {
            self.run += 1;
        } else {
            self.last = Some(key);
            self.run = 1;
        }
        self.run
    }
}

/// The next prompt's size: the last call's tokens plus about 4 characters per token of
/// what was added since (observations are what grows a conversation).
fn estimate_prompt_tokens(messages: &[ChatMessage], last_total: u64) -> u64 {
    if last_total == 0 {
        let chars: usize = messages.iter().map(message_chars).sum();
        return (chars / 4) as u64;
    }
    // Messages after the last assistant turn are new since the last call.
    let new_chars: usize = messages
        .iter()
        .rev()
        .take_while(|m| m.role != trajforge_teacher::Role::Assistant)
        .map(message_chars)
        .sum();
    last_total + (new_chars / 4) as u64
}

fn message_chars(m: &ChatMessage) -> usize {
    m.content.as_deref().map_or(0, str::len)
        + m.reasoning.as_deref().map_or(0, str::len)
        + m.tool_calls
            .iter()
            .map(|c| c.arguments.len() + c.name.len())
            .sum::<usize>()
}
