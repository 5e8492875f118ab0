//! The model thread: owns the llama.cpp model and its one context, runs queued generation
//! jobs one at a time, and keeps the KV cache of the last conversation for prefix reuse.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::LocalError;

/// Tokens decoded per `llama_decode` call while evaluating a prompt.
pub const BATCH_TOKENS: usize = 512;

/// The process-wide llama.cpp backend (llama.cpp allows one initialisation per process),
/// with llama.cpp's own logging silenced: libraries do not write to stderr.
pub fn llama_backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Option<LlamaBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            LlamaBackend::init().ok().map(|mut b| {
                b.void_logs();
                b
            })
        })
        .as_ref()
        .ok_or_else(|| {
            LocalError::Inference(
                "the llama.cpp backend was already initialised elsewhere in this process".into(),
            )
        })
}

/// Sampling settings of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Temperature; 0 or less means greedy.
    pub temperature: f32,
    /// Nucleus mass (1 disables).
    pub top_p: f32,
    /// Minimum probability relative to the best token (0 disables).
    pub min_p: f32,
    /// RNG seed.
    pub seed: u32,
    /// Cap on generated tokens.
    pub max_tokens: u32,
    /// Stop strings: generation ends before the first of them.
    pub stop: Vec<String>,
}

/// The sampler chain used for both our path and the raw benchmark baseline.
pub fn sampler_chain(p: &SamplingParams) -> LlamaSampler {
    if p.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::new();
    if p.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(p.top_p, 1));
    }
    if p.min_p > 0.0 {
        chain.push(LlamaSampler::min_p(p.min_p, 1));
    }
    chain.push(LlamaSampler::temp(p.temperature));
    chain.push(LlamaSampler::dist(p.seed));
    LlamaSampler::chain_simple(chain)
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn (or a stop string was reached).
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The receiver went away (the client disconnected): generation stopped there.
    Cancelled,
}

/// The outcome of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated text (stop string excluded).
    pub text: String,
    /// Why it ended.
    pub finish: Finish,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens that had to be evaluated.
    pub prompt_evaluated: usize,
    /// Prompt tokens whose KV entries were reused from the previous job.
    pub prompt_reused: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Time spent generating.
    pub generation_time: Duration,
}

/// Messages from a running job.
#[derive(Debug)]
pub enum Event {
    /// New text (only sent when the job asked for streaming).
    Text(String),
    /// The job is over.
    Done(Result<Generation, LocalError>),
}

/// One generation request in the queue.
pub struct Job {
    /// The rendered prompt.
    pub prompt: String,
    /// GBNF grammar constraining the output.
    pub grammar: Option<String>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Send text deltas as they come.
    pub stream: bool,
    /// Only count the prompt's tokens (the answer's `prompt_tokens`); generate nothing.
    pub count_only: bool,
    /// Where events go.
    pub events: UnboundedSender<Event>,
}

/// What the worker reports once the model is loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Context size in use.
    pub n_ctx: u32,
}

/// What the model thread did with the jobs it was given, counted as it goes.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Jobs put in the queue.
    pub queued: AtomicU64,
    /// Jobs the model started working on.
    pub started: AtomicU64,
    /// Jobs whose receiver had gone before their turn came: never run.
    pub skipped: AtomicU64,
    /// Jobs stopped part-way because their receiver went away.
    pub cancelled: AtomicU64,
}

impl QueueCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Settings for the worker.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The model file.
    pub path: PathBuf,
    /// Context size.
    pub n_ctx: u32,
    /// Threads for generation and prompt evaluation.
    pub threads: i32,
    /// Whether the KV cache of the last conversation is reused.
    pub prefix_reuse: bool,
    /// Where the model thread counts what it did.
    pub counters: Arc<QueueCounters>,
}

/// Start the model thread; returns the job queue once the model is loaded.
pub fn spawn(config: EngineConfig) -> Result<(mpsc::Sender<Job>, Loaded), LocalError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let path = config.path.clone();
    std::thread::Builder::new()
        .name("trajforge-local-model".into())
        .spawn(move || worker(config, ready_tx, job_rx))
        .map_err(|e| LocalError::Load {
            path: path.clone(),
            message: format!("cannot start the model thread: {e}"),
        })?;
    let loaded = ready_rx.recv().map_err(|_| LocalError::WorkerGone)??;
    Ok((job_tx, loaded))
}

fn worker(
    config: EngineConfig,
    ready: mpsc::Sender<Result<Loaded, LocalError>>,
    jobs: mpsc::Receiver<Job>,
) {
    let load_err = |message: String| LocalError::Load {
        path: config.path.clone(),
        message,
    };
    let backend = match llama_backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let model =
        match LlamaModel::load_from_file(backend, &config.path, &LlamaModelParams::default()) {
            Ok(m) => m,
            Err(e) => {
                let _ = ready.send(Err(load_err(format!("{e} (corrupt file?)"))));
                return;
            }
        };
    let mut engine = match Engine::new(backend, &model, &config) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready
        .send(Ok(Loaded {
            n_ctx: engine.ctx.n_ctx(),
        }))
        .is_err()
    {
        return;
    }
    // The queue: jobs run strictly one after another in arrival order; a job whose client
    // has gone is passed over, so abandoned requests cost nothing.
    let counters = Arc::clone(&config.counters);
    for job in jobs {
        if job.events.is_closed() {
            QueueCounters::bump(&counters.skipped);
            continue;
        }
        QueueCounters::bump(&counters.started);
        let result = engine.run(&job);
        if matches!(&result, Ok(g) if g.finish == Finish::Cancelled) {
            QueueCounters::bump(&counters.cancelled);
        }
        let _ = job.events.send(Event::Done(result));
    }
}

/// Build a context for `model` (shared with the raw benchmark so both run the same way).
pub fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    path: &Path,
    n_ctx: u32,
    threads: i32,
) -> Result<LlamaContext<'m>, LocalError> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model
        .new_context(backend, params)
        .map_err(|e| LocalError::Load {
            path: path.to_path_buf(),
            message: format!("cannot create a context of {n_ctx} tokens: {e}"),
        })
}

struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Tokens whose KV entries are in sequence 0, in order.
    cached: Vec<LlamaToken>,
    prefix_reuse: bool,
}

impl<'m> Engine<'m> {
    fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        config: &EngineConfig,
    ) -> Result<Self, LocalError> {
        let ctx = new_context(backend, model, &config.path, config.n_ctx, config.threads)?;
        Ok(Self {
            model,
            ctx,
            batch: LlamaBatch::new(BATCH_TOKENS, 1),
            cached: Vec::new(),
            prefix_reuse: config.prefix_reuse,
        })
    }

    fn run(&mut self, job: &Job) -> Result<Generation, LocalError> {
        let result = self.run_inner(job);
        if result.is_err() {
            // The cache content is unknown after a failed decode: start afresh next time.
            self.ctx.clear_kv_cache();
            self.cached.clear();
        }
        result
    }

    fn run_inner(&mut self, job: &Job) -> Result<Generation, LocalError> {
        let vocab = self.model.vocab();
        // The template writes every special token itself, so no BOS is added here.
        let tokens = vocab.tokenize(job.prompt.as_bytes(), false, true);
        let n_ctx = self.ctx.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(LocalError::InvalidRequest("the prompt is empty".into()));
        }
        if job.count_only {
            return Ok(Generation {
                text: String::new(),
                finish: Finish::Stop,
                prompt_tokens: tokens.len(),
                prompt_evaluated: 0,
                prompt_reused: 0,
                completion_tokens: 0,
                prompt_time: Duration::ZERO,
                generation_time: Duration::ZERO,
            });
        }
        if tokens.len() >= n_ctx {
            return Err(LocalError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx: n_ctx as u32,
            });
        }

        let started = Instant::now();
        let reused = self.reuse_prefix(&tokens)?;
        if !self.decode_prompt(&tokens, reused, job)? {
            return Ok(Generation {
                text: String::new(),
                finish: Finish::Cancelled,
                prompt_tokens: tokens.len(),
                prompt_evaluated: self.cached.len().saturating_sub(reused),
                prompt_reused: reused,
                completion_tokens: 0,
                prompt_time: started.elapsed(),
                generation_time: Duration::ZERO,
            });
        }
        let prompt_time = started.elapsed();

        let started = Instant::now();
        let mut grammar = match &job.grammar {
            Some(g) => Some(LlamaSampler::grammar(self.model, g, "root").map_err(|e| {
                LocalError::InvalidRequest(format!("the tool grammar does not compile: {e}"))
            })?),
            None => None,
        };
        let mut chain = sampler_chain(&job.sampling);
        let budget = (job.sampling.max_tokens as usize).min(n_ctx - tokens.len());
        let mut text = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut finish = Finish::Length;
        let mut generated = 0usize;
        let mut logits_index = self.batch.n_tokens() - 1;
        let mut sent = 0usize;
        while generated < budget {
            // A client that went away stops its generation (the stream noticing a failed send
            // is not enough: a non-streamed or tool-call reply sends nothing until the end).
            if job.events.is_closed() {
                finish = Finish::Cancelled;
                break;
            }
            let token = match grammar.as_mut() {
                Some(g) => self.sample_constrained(&mut chain, g, logits_index),
                // `sample` accepts the token into the chain itself.
                None => chain.sample(&self.ctx, logits_index),
            };
            if vocab.is_eog(token) {
                finish = Finish::Stop;
                break;
            }
            generated += 1;
            pending.extend_from_slice(&vocab.token_to_piece(token, false, None));
            // A token may end inside a UTF-8 sequence; keep the tail until it completes.
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid > 0 {
                text.push_str(&String::from_utf8_lossy(&pending[..valid]));
                pending.drain(..valid);
            }
            if let Some(cut) = stop_position(&text, &job.sampling.stop) {
                text.truncate(cut);
                finish = Finish::Stop;
                break;
            }
            if job.stream {
                // Hold back text that could be the start of a stop string.
                let safe = safe_len(&text, &job.sampling.stop);
                if safe > sent {
                    if job
                        .events
                        .send(Event::Text(text[sent..safe].to_string()))
                        .is_err()
                    {
                        finish = Finish::Cancelled;
                        break;
                    }
                    sent = safe;
                }
            }
            if generated == budget {
                break;
            }
            self.batch.clear();
            let pos = self.cached.len() as i32;
            self.batch
                .add(token, pos, &[0], true)
                .map_err(|e| LocalError::Inference(e.to_string()))?;
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| LocalError::Inference(format!("decode failed: {e}")))?;
            self.cached.push(token);
            logits_index = 0;
        }
        if !pending.is_empty() {
            text.push_str(&String::from_utf8_lossy(&pending));
        }
        if job.stream && finish != Finish::Cancelled && text.len() > sent {
            let _ = job.events.send(Event::Text(text[sent..].to_string()));
        }
        Ok(Generation {
            text,
            finish,
            prompt_tokens: tokens.len(),
            prompt_evaluated: tokens.len() - reused,
            prompt_reused: reused,
            completion_tokens: generated,
            prompt_time,
            generation_time: started.elapsed(),
        })
    }

    /// Drop KV entries past the longest prefix shared with `tokens`; returns its length.
    fn reuse_prefix(&mut self, tokens: &[LlamaToken]) -> Result<usize, LocalError> {
        let mut common = if self.prefix_reuse {
            self.cached
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            0
        };
        // The last prompt token is always evaluated again: its logits start generation.
        if common == tokens.len() {
            common -= 1;
        }
        if common == 0 {
            self.ctx.clear_kv_cache();
        } else {
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(0), Some(common as u32), None)
                .map_err(|e| LocalError::Inference(e.to_string()))?;
            if !removed {
                self.ctx.clear_kv_cache();
                common = 0;
            }
        }
        self.cached.truncate(common);
        Ok(common)
    }

    /// Evaluate `tokens[from..]`, leaving the logits of the last token in the batch; false
    /// when `job`'s client went away between two batches (the evaluated part stays cached).
    fn decode_prompt(
        &mut self,
        tokens: &[LlamaToken],
        from: usize,
        job: &Job,
    ) -> Result<bool, LocalError> {
        let last = tokens.len() - 1;
        let mut pos = from;
        while pos < tokens.len() {
            if job.events.is_closed() {
                return Ok(false);
            }
            let end = (pos + BATCH_TOKENS).min(tokens.len());
            self.batch.clear();
            for (i, token) in tokens[pos..end].iter().enumerate() {
                let at = pos + i;
                self.batch
                    .add(*token, at as i32, &[0], at == last)
                    .map_err(|e| LocalError::Inference(e.to_string()))?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| LocalError::Inference(format!("prompt decode failed: {e}")))?;
            self.cached.extend_from_slice(&tokens[pos..end]);
            pos = end;
        }
        Ok(true)
    }

    /// Sample under a grammar, checking the grammar only against the token the plain chain
    /// picked and resampling over the whole vocabulary only when the grammar rejects it
    /// (as llama.cpp's common sampler does): most steps then cost one grammar check, not one
    /// per vocabulary entry.
    fn sample_constrained(
        &self,
        chain: &mut LlamaSampler,
        grammar: &mut LlamaSampler,
        index: i32,
    ) -> LlamaToken {
        let mut candidates = self.ctx.token_data_array_ith(index);
        chain.apply(&mut candidates);
        let mut token = candidates.selected_token();
        if let Some(t) = token {
            let mut single =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(t, 1.0, 0.0)], false);
            grammar.apply(&mut single);
            if single
                .data
                .first()
                .is_none_or(|d| d.logit() == f32::NEG_INFINITY)
            {
                token = None;
            }
        }
        let token = match token {
            Some(t) => t,
            None => {
                let mut candidates = self.ctx.token_data_array_ith(index);
                grammar.apply(&mut candidates);
                chain.apply(&mut candidates);
                candidates
                    .selected_token()
                    .unwrap_or_else(|| self.model.vocab().eos())
            }
        };
        // `apply` does not accept (unlike `sample`): accept exactly once, and never an
        // end-of-generation token, which the grammar has no transition for.
        if !self.model.vocab().is_eog(token) {
            grammar.accept(token);
        }
        chain.accept(token);
        token
    }
}

/// Byte offset of the earliest stop string in `text`.
fn stop_position(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Length of the prefix of `text` that cannot be the beginning of a stop string.
fn safe_len(text: &str, stops: &[String]) -> usize {
    let mut safe = text.len();
    for stop in stops.iter().filter(|s| !s.is_empty()) {
        for (i, _) in text.char_indices().rev().take(stop.chars().count()) {
            if stop.starts_with(&text[i..]) {
                safe = safe.min(i);
            }
        }
    }
    safe
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings() {
        let stops = vec!["END".to_string()];
        assert_eq!(stop_position("abcENDx", &stops), Some(3));
        assert_eq!(stop_position("abc", &stops), None);
        assert_eq!(safe_len("abcEN", &stops), 3);
        assert_eq!(safe_len("abcX", &stops), 4);
        assert_eq!(safe_len("é", &[]), 2);
    }
}
