//! [`LocalTeacher`]: a GGUF model run in-process as a [`Teacher`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use trajforge_teacher::{
    ChatMessage, Completion, CompletionFuture, Sampling, Teacher, TeacherInfo, ToolMode, ToolSpec,
    Usage,
};

use crate::engine::{
    self, EngineConfig, Event, Finish, Generation, Job, QueueCounters, SamplingParams,
};
use crate::error::LocalError;
use crate::gguf::{GgufInfo, read_gguf};
use crate::grammar::{ToolChoice, tool_grammar};
use crate::parse_output;
use trajforge_chat::ChatTemplate;

/// Largest default context: the KV cache of longer ones costs memory for little use here.
pub const MAX_DEFAULT_CTX: u32 = 8192;

/// How a [`LocalTeacher`] runs the model.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// Context size in tokens; `None` = the model's training context, capped at 8192.
    pub n_ctx: Option<u32>,
    /// CPU threads; `None` = all available cores.
    pub threads: Option<usize>,
    /// Default sampling (temperature 0.6 as SERA; `max_tokens` overrides `max_tokens` below).
    pub sampling: Sampling,
    /// Minimum probability relative to the best token (llama.cpp's default 0.05 keeps a tiny
    /// model from wandering into the long tail).
    pub min_p: f32,
    /// Tokens generated per reply when `sampling.max_tokens` is unset.
    pub max_tokens: u32,
    /// What [`Teacher::complete`] allows when tools are offered; `Required` by default
    /// because the agent loop expects a tool call at every step.
    pub tool_choice: ToolChoice,
    /// Allow several tool calls in one reply (one otherwise: a small model keeps emitting
    /// calls until max_tokens cuts the last one in half).
    pub parallel_tool_calls: bool,
    /// Keep the KV cache of the last conversation and evaluate only the new suffix.
    pub prefix_reuse: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            n_ctx: None,
            threads: None,
            sampling: Sampling::default(),
            min_p: 0.05,
            max_tokens: 512,
            tool_choice: ToolChoice::Required,
            parallel_tool_calls: false,
            prefix_reuse: true,
        }
    }
}

/// Counters over every request a teacher served.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LocalStats {
    /// Requests completed.
    pub requests: u64,
    /// Prompt tokens over all requests.
    pub prompt_tokens: u64,
    /// Prompt tokens actually evaluated.
    pub prompt_evaluated: u64,
    /// Prompt tokens served from the KV cache.
    pub prompt_reused: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Time spent evaluating prompts.
    pub prompt_time: Duration,
    /// Time spent generating.
    pub generation_time: Duration,
    /// Jobs (generations and token counts) put in the model's queue.
    pub queued: u64,
    /// Jobs the model started working on.
    pub started: u64,
    /// Jobs passed over because their client had gone before their turn.
    pub skipped: u64,
    /// Jobs stopped part-way because their client went away.
    pub cancelled: u64,
}

/// A finished reply: the assistant message and how it was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The assistant message (tool calls parsed out).
    pub message: ChatMessage,
    /// OpenAI finish reason: `stop`, `tool_calls` or `length`.
    pub finish_reason: &'static str,
    /// Token counts and timings.
    pub generation: Generation,
}

/// A running generation whose events arrive on `events`.
#[derive(Debug)]
pub struct Started {
    /// Text deltas (when streaming) and the final result.
    pub events: UnboundedReceiver<Event>,
    /// Whether the output may contain tool calls (tools offered and not `tool_choice: none`).
    pub tools_enabled: bool,
}

/// A GGUF model served in-process through llama.cpp.
pub struct LocalTeacher {
    path: PathBuf,
    model_name: String,
    template: ChatTemplate,
    jobs: mpsc::Sender<Job>,
    n_ctx: u32,
    options: LocalOptions,
    stats: Mutex<LocalStats>,
    counters: Arc<QueueCounters>,
    next_call: AtomicU64,
    next_seed: AtomicU64,
}

impl std::fmt::Debug for LocalTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTeacher")
            .field("path", &self.path)
            .field("model", &self.model_name)
            .field("n_ctx", &self.n_ctx)
            .finish_non_exhaustive()
    }
}

impl LocalTeacher {
    /// Check the file, read its chat template, load it and start the model thread.
    pub fn load(path: &Path, options: LocalOptions) -> Result<LocalTeacher, LocalError> {
        let info: GgufInfo = read_gguf(path)?;
        let source = info
            .chat_template
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| LocalError::NoChatTemplate {
                path: path.to_path_buf(),
            })?;
        let template =
            ChatTemplate::new(source, info.bos_token.as_deref(), info.eos_token.as_deref())
                .map_err(|source| LocalError::Template {
                    path: path.to_path_buf(),
                    source,
                })?;
        let trained = info
            .context_length
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(MAX_DEFAULT_CTX);
        let n_ctx = options
            .n_ctx
            .unwrap_or(trained.min(MAX_DEFAULT_CTX))
            .max(64);
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 256) as i32;
        let counters = Arc::new(QueueCounters::default());
        let (jobs, loaded) = engine::spawn(EngineConfig {
            path: path.to_path_buf(),
            n_ctx,
            threads,
            prefix_reuse: options.prefix_reuse,
            counters: Arc::clone(&counters),
        })?;
        let model_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .or(info.name.clone())
            .unwrap_or_else(|| "local".to_string());
        let seed_base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(LocalTeacher {
            path: path.to_path_buf(),
            model_name,
            template,
            jobs,
            n_ctx: loaded.n_ctx,
            options,
            stats: Mutex::new(LocalStats::default()),
            counters,
            next_call: AtomicU64::new(1),
            next_seed: AtomicU64::new(seed_base),
        })
    }

    /// The model name: the file name without `.gguf`.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Context size in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// The options the teacher was loaded with.
    pub fn options(&self) -> &LocalOptions {
        &self.options
    }

    /// Totals over all requests so far.
    pub fn stats(&self) -> LocalStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LocalStats {
            queued: load(&self.counters.queued),
            started: load(&self.counters.started),
            skipped: load(&self.counters.skipped),
            cancelled: load(&self.counters.cancelled),
            ..self.stats.lock().map(|s| *s).unwrap_or_default()
        }
    }

    /// Put `job` in the model's queue.
    fn submit(&self, job: Job) -> Result<(), LocalError> {
        // Counted first, so `started` never runs ahead of `queued`.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|_| LocalError::WorkerGone)
    }

    /// The prompt text the model sees for `messages` and `tools`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<String, LocalError> {
        self.template
            .render_chat(messages, tools, true)
            .map_err(|source| LocalError::Template {
                path: self.path.clone(),
                source,
            })
    }

    /// Resolve `sampling` against the teacher's defaults (max_tokens, min_p, a fresh seed).
    pub fn sampling_params(&self, sampling: &Sampling) -> SamplingParams {
        let seed = sampling
            .seed
            .unwrap_or_else(|| self.next_seed.fetch_add(0x9E37_79B9, Ordering::Relaxed));
        SamplingParams {
            temperature: sampling.temperature,
            top_p: sampling.top_p.unwrap_or(1.0),
            min_p: self.options.min_p,
            // Seeds are 64-bit on the wire, 32-bit in llama.cpp: fold rather than truncate.
            seed: (seed ^ (seed >> 32)) as u32,
            max_tokens: sampling
                .max_tokens
                .unwrap_or(self.options.max_tokens)
                .max(1),
            stop: sampling.stop.clone(),
        }
    }

    /// Queue a generation; events arrive on the returned receiver. `parallel` allows
    /// several tool calls in the reply.
    pub fn start(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        tool_choice: &ToolChoice,
        parallel: bool,
        sampling: SamplingParams,
        stream: bool,
    ) -> Result<Started, LocalError> {
        let offered: &[ToolSpec] = if *tool_choice == ToolChoice::None {
            &[]
        } else {
            tools
        };
        let prompt = self.render(messages, offered)?;
        let grammar = tool_grammar(offered, tool_choice, parallel)
            .map_err(|e| LocalError::InvalidRequest(e.to_string()))?;
        let (tx, rx) = unbounded_channel();
        self.submit(Job {
            prompt,
            grammar,
            sampling,
            stream,
            count_only: false,
            events: tx,
        })?;
        Ok(Started {
            events: rx,
            tools_enabled: !offered.is_empty(),
        })
    }

    /// Tokens of the prompt the model would see for `messages` and `tools` (exact: the
    /// model's own tokenizer over its own template), waiting in the queue if it is busy.
    pub async fn count_tokens(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<usize, LocalError> {
        let prompt = self.render(messages, tools)?;
        let (tx, mut rx) = unbounded_channel();
        self.submit(Job {
            prompt,
            grammar: None,
            sampling: self.sampling_params(&self.options.sampling),
            stream: false,
            count_only: true,
            events: tx,
        })?;
        while let Some(event) = rx.recv().await {
            if let Event::Done(result) = event {
                return result.map(|g| g.prompt_tokens);
            }
        }
        Err(LocalError::WorkerGone)
    }

    /// Generate the next assistant message, waiting in the queue if the model is busy.
    pub async fn generate(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        tool_choice: &ToolChoice,
        sampling: SamplingParams,
    ) -> Result<Reply, LocalError> {
        let parallel = self.options.parallel_tool_calls;
        let mut started = self.start(messages, tools, tool_choice, parallel, sampling, false)?;
        while let Some(event) = started.events.recv().await {
            if let Event::Done(result) = event {
                let generation = result?;
                return Ok(self.finish(generation, started.tools_enabled));
            }
        }
        Err(LocalError::WorkerGone)
    }

    /// Turn a finished generation into a reply and count it in the stats.
    pub fn finish(&self, generation: Generation, tools_enabled: bool) -> Reply {
        if let Ok(mut s) = self.stats.lock() {
            s.requests += 1;
            s.prompt_tokens += generation.prompt_tokens as u64;
            s.prompt_evaluated += generation.prompt_evaluated as u64;
            s.prompt_reused += generation.prompt_reused as u64;
            s.completion_tokens += generation.completion_tokens as u64;
            s.prompt_time += generation.prompt_time;
            s.generation_time += generation.generation_time;
        }
        let mut next_id = || format!("call_{}", self.next_call.fetch_add(1, Ordering::Relaxed));
        let (content, calls) = parse_output(&generation.text, tools_enabled, &mut next_id);
        let finish_reason = match generation.finish {
            Finish::Length => "length",
            _ if !calls.is_empty() => "tool_calls",
            _ => "stop",
        };
        Reply {
            message: ChatMessage::assistant(content, calls),
            finish_reason,
            generation,
        }
    }
}

impl Teacher for LocalTeacher {
    fn complete<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        tools: &'a [ToolSpec],
    ) -> CompletionFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let sampling = self.sampling_params(&self.options.sampling);
            let reply = self
                .generate(messages, tools, &self.options.tool_choice, sampling)
                .await?;
            Ok(Completion {
                usage: Usage {
                    prompt_tokens: reply.generation.prompt_tokens as u64,
                    completion_tokens: reply.generation.completion_tokens as u64,
                },
                message: reply.message,
                finish_reason: Some(reply.finish_reason.to_string()),
                latency: started.elapsed(),
                attempts: 1,
            })
        })
    }

    fn describe(&self) -> TeacherInfo {
        TeacherInfo {
            base_url: format!("local:{}", self.path.display()),
            model: self.model_name.clone(),
            // The model reads tool schemas and writes calls as hermes text.
            mode: ToolMode::Hermes,
        }
    }
}
