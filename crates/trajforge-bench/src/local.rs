//! `trajforge-bench local`: the embedded local teacher against raw llama.cpp.
//!
//! Three paths run the same model on the same prompt in one process run:
//! (a) raw llama-cpp-2 calls, the baseline; (b) the in-process `LocalTeacher`; (c) the
//! `trajforge serve` binary over HTTP with streaming. Each is timed the same way: the
//! prompt phase lasts from the request to the first generated token, the generation phase
//! from the first to the last token. Then a synthetic episode of N steps (growing
//! conversation, tools offered, grammar on) runs with and without KV-cache prefix reuse.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use serde_json::{Value, json};
use trajforge_local::{
    BATCH_TOKENS, Event, LocalOptions, LocalTeacher, SamplingParams, ToolChoice,
    default_model_path, llama_backend, new_context, sampler_chain,
};
use trajforge_teacher::{ChatMessage, Sampling, Teacher, ToolSpec};

/// Options of `trajforge-bench local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// The GGUF model [default: the installed SmolLM2].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Runs of each path; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Approximate prompt length in tokens.
    #[arg(long, default_value_t = 1000)]
    prompt_tokens: usize,
    /// Tokens generated per run (fewer if the model ends its turn).
    #[arg(long, default_value_t = 128)]
    gen_tokens: u32,
    /// Steps of the synthetic episode (0 skips it).
    #[arg(long, default_value_t = 20)]
    episode_steps: usize,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// The trajforge binary for the server path [default: next to this one].
    #[arg(long)]
    trajforge: Option<PathBuf>,
}

/// Timings of one run of one path.
#[derive(Debug, Clone, Copy)]
struct Sample {
    prompt_tokens: usize,
    prompt: Duration,
    gen_tokens: usize,
    decode: Duration,
}

impl Sample {
    fn prompt_rate(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt.as_secs_f64().max(1e-9)
    }

    /// Tokens after the first over the time after the first (the first ends the prompt phase).
    fn gen_rate(&self) -> f64 {
        self.gen_tokens.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

const SEED: u32 = 1234;

fn sampling(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.6,
        top_p: 1.0,
        min_p: 0.05,
        seed: SEED,
        max_tokens,
        stop: Vec::new(),
    }
}

/// A conversation of about `tokens` prompt tokens whose natural answer is long. `run` goes
/// first so consecutive runs share no prefix (no path gets KV-cache reuse).
fn conversation(tokens: usize, run: usize) -> Vec<ChatMessage> {
    let filler = "The archive holds letters, maps and ledgers from the harbour office, \
                  each catalogued by year and by the clerk who filed it. ";
    // About 25 tokens per repetition of the filler.
    let body = filler.repeat((tokens / 25).max(1));
    vec![
        ChatMessage::system(format!("Session {run}. You are a careful historian.")),
        ChatMessage::user(format!(
            "{body}\nWrite a long, detailed essay about the history of this harbour archive."
        )),
    ]
}

/// Run the benchmark and print its figures.
pub fn run(args: LocalArgs) -> Result<(), String> {
    let path = args.model.clone().unwrap_or_else(default_model_path);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = LocalOptions {
        threads: Some(threads),
        prefix_reuse: false,
        ..LocalOptions::default()
    };
    let teacher = LocalTeacher::load(&path, options).map_err(|e| e.to_string())?;
    let n_ctx = teacher.n_ctx();
    println!(
        "model {} | context {n_ctx} | {threads} threads | prompt ~{} tokens | up to {} generated | {} runs",
        teacher.model_name(),
        args.prompt_tokens,
        args.gen_tokens,
        args.runs
    );

    let backend = llama_backend().map_err(|e| e.to_string())?;
    let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
        .map_err(|e| format!("raw load: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server = Server::start(&args, &path, n_ctx, threads)?;

    let mut raw = Vec::new();
    let mut inproc = Vec::new();
    let mut http = Vec::new();
    // Interleaved, so drift in machine load hits all three paths alike.
    for run in 0..=args.runs.max(1) {
        let messages = conversation(args.prompt_tokens, run);
        let prompt = teacher.render(&messages, &[]).map_err(|e| e.to_string())?;
        let raw_path = RawPath {
            backend,
            model: &model,
            path: &path,
            n_ctx,
            threads,
        };
        let r = raw_path.run(&prompt, args.gen_tokens)?;
        let i = runtime.block_on(inproc_run(&teacher, &messages, args.gen_tokens))?;
        let h = server.run(&messages, args.gen_tokens)?;
        // The first round warms caches and page-ins; it is not counted.
        if run > 0 {
            raw.push(r);
            inproc.push(i);
            http.push(h);
        }
    }
    drop(server);

    println!();
    println!(
        "{:<24} {:>10} {:>12} {:>10} {:>12}",
        "path", "prompt tok", "prompt t/s", "gen tok", "gen t/s"
    );
    let row = |name: &str, s: &[Sample]| {
        let pt = s.first().map_or(0, |x| x.prompt_tokens);
        let gt = median(s.iter().map(|x| x.gen_tokens as f64).collect());
        let pr = median(s.iter().map(Sample::prompt_rate).collect());
        let gr = median(s.iter().map(Sample::gen_rate).collect());
        println!("{name:<24} {pt:>10} {pr:>12.1} {gt:>10.0} {gr:>12.1}");
        (pr, gr)
    };
    let (raw_p, raw_g) = row("raw llama-cpp-2", &raw);
    let (in_p, in_g) = row("LocalTeacher", &inproc);
    let (http_p, http_g) = row("trajforge serve (HTTP)", &http);
    let overhead = |ours: f64, base: f64| (base / ours - 1.0) * 100.0;
    println!();
    println!(
        "overhead vs raw (time per token): in-process prompt {:+.1}%, generation {:+.1}%; \
         server prompt {:+.1}%, generation {:+.1}% (target < 10%)",
        overhead(in_p, raw_p),
        overhead(in_g, raw_g),
        overhead(http_p, raw_p),
        overhead(http_g, raw_g)
    );

    if args.episode_steps > 0 {
        println!();
        let with = episode(&path, threads, true, args.episode_steps, &runtime)?;
        let without = episode(&path, threads, false, args.episode_steps, &runtime)?;
        println!(
            "{}-step episode (tools + grammar): with prefix reuse {:.1} s ({} prompt tokens, {} evaluated); \
             without {:.1} s ({} prompt tokens, {} evaluated); {:.1}x faster",
            args.episode_steps,
            with.0.as_secs_f64(),
            with.1,
            with.2,
            without.0.as_secs_f64(),
            without.1,
            without.2,
            without.0.as_secs_f64() / with.0.as_secs_f64()
        );
    }
    Ok(())
}

/// (a) The baseline: llama-cpp-2 calls only, same context parameters and sampler chain.
struct RawPath<'a> {
    backend: &'a LlamaBackend,
    model: &'a LlamaModel,
    path: &'a Path,
    n_ctx: u32,
    threads: usize,
}

impl RawPath<'_> {
    /// Tokenize, decode the prompt in batches, then sample and decode token by token.
    fn run(&self, prompt: &str, max_tokens: u32) -> Result<Sample, String> {
        let mut ctx = new_context(
            self.backend,
            self.model,
            self.path,
            self.n_ctx,
            self.threads as i32,
        )
        .map_err(|e| e.to_string())?;
        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
        let started = Instant::now();
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        let last = tokens.len() - 1;
        for (c, chunk) in tokens.chunks(BATCH_TOKENS).enumerate() {
            batch.clear();
            for (i, t) in chunk.iter().enumerate() {
                let pos = c * BATCH_TOKENS + i;
                batch
                    .add(*t, pos as i32, &[0], pos == last)
                    .map_err(|e| e.to_string())?;
            }
            ctx.decode(&mut batch).map_err(|e| e.to_string())?;
        }
        let mut sampler = sampler_chain(&sampling(max_tokens));
        let mut pos = tokens.len() as i32;
        let mut index = batch.n_tokens() - 1;
        let mut first_at = None;
        let mut generated = 0usize;
        let mut text = Vec::new();
        while generated < max_tokens as usize {
            let token = sampler.sample(&ctx, index);
            if first_at.is_none() {
                first_at = Some(Instant::now());
            }
            if vocab.is_eog(token) {
                break;
            }
            generated += 1;
            text.extend_from_slice(&vocab.token_to_piece(token, false, None));
            if generated == max_tokens as usize {
                break;
            }
            batch.clear();
            batch
                .add(token, pos, &[0], true)
                .map_err(|e| e.to_string())?;
            ctx.decode(&mut batch).map_err(|e| e.to_string())?;
            pos += 1;
            index = 0;
        }
        let end = Instant::now();
        let first_at = first_at.unwrap_or(end);
        Ok(Sample {
            prompt_tokens: tokens.len(),
            prompt: first_at - started,
            gen_tokens: generated,
            decode: end - first_at,
        })
    }
}

/// (b) The in-process teacher, streaming so the first token's arrival is seen.
async fn inproc_run(
    teacher: &LocalTeacher,
    messages: &[ChatMessage],
    max_tokens: u32,
) -> Result<Sample, String> {
    let started = Instant::now();
    let mut run = teacher
        .start(
            messages,
            &[],
            &ToolChoice::Auto,
            false,
            sampling(max_tokens),
            true,
        )
        .map_err(|e| e.to_string())?;
    let mut first_at = None;
    loop {
        match run.events.recv().await {
            Some(Event::Text(_)) => {
                first_at.get_or_insert_with(Instant::now);
            }
            Some(Event::Done(result)) => {
                let end = Instant::now();
                let g = result.map_err(|e| e.to_string())?;
                let first_at = first_at.unwrap_or(end);
                return Ok(Sample {
                    prompt_tokens: g.prompt_tokens,
                    prompt: first_at - started,
                    gen_tokens: g.completion_tokens,
                    decode: end - first_at,
                });
            }
            None => return Err("the model worker stopped".into()),
        }
    }
}

/// (c) `trajforge serve` in a child process, spoken to over a raw HTTP/1.1 socket with SSE.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &LocalArgs, model: &Path, n_ctx: u32, threads: usize) -> Result<Server, String> {
        let binary = match &args.trajforge {
            Some(p) => p.clone(),
            None => crate::sibling_binary("trajforge")?,
        };
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args([
                "--port",
                "0",
                "--ctx",
                &n_ctx.to_string(),
                "--threads",
                &threads.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the server's URL: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("http://")
            .and_then(|r| r.strip_suffix("/v1"))
            .ok_or_else(|| format!("unexpected first line from trajforge serve: {line:?}"))?
            .to_string();
        Ok(Server { child, addr })
    }

    fn run(&self, messages: &[ChatMessage], max_tokens: u32) -> Result<Sample, String> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let body = json!({
            "messages": msgs, "max_tokens": max_tokens, "temperature": 0.6, "seed": SEED,
            "stream": true, "stream_options": {"include_usage": true}
        })
        .to_string();
        let started = Instant::now();
        let mut stream = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // Chunked transfer encoding frames the SSE events; reading line by line and looking
        // only at `data:` lines is enough to time them.
        let mut reader = BufReader::new(stream);
        let mut first_at = None;
        let mut last_at = started;
        let mut usage = Value::Null;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(data).map_err(|e| format!("{e}: {data}"))?;
            if v.get("error").is_some() {
                return Err(format!("server error: {v}"));
            }
            if let Some(content) = v["choices"][0]["delta"]["content"].as_str()
                && !content.is_empty()
            {
                let now = Instant::now();
                first_at.get_or_insert(now);
                last_at = now;
            }
            if !v["usage"].is_null() {
                usage = v["usage"].clone();
            }
        }
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let first_at = first_at.unwrap_or(last_at);
        Ok(Sample {
            prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0) as usize,
            prompt: first_at - started,
            gen_tokens: usage["completion_tokens"].as_u64().unwrap_or(0) as usize,
            decode: last_at - first_at,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn episode_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a shell command in the repository and return its output.".into(),
            parameters: json!({"type": "object", "properties": {"command": {"type": "string"}},
                               "required": ["command"]}),
        },
        ToolSpec {
            name: "str_replace_editor".into(),
            description: "View, create and edit files.".into(),
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
                "path": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"}
            }, "required": ["command", "path"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the fix.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// A synthetic episode: each step's tool call gets a fixed observation of ~150 tokens.
/// Returns wall time, prompt tokens over all steps, and prompt tokens evaluated.
fn episode(
    path: &Path,
    threads: usize,
    reuse: bool,
    steps: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Duration, u64, u64), String> {
    let teacher = LocalTeacher::load(
        path,
        LocalOptions {
            threads: Some(threads),
            prefix_reuse: reuse,
            max_tokens: 64,
            sampling: Sampling {
                seed: Some(7),
                ..Sampling::default()
            },
            ..LocalOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let tools = episode_tools();
    let observation = "total 48\ndrwxr-xr-x  5 user user 4096 src\n-rw-r--r--  1 user user 1523 README.md\n\
                       -rw-r--r--  1 user user  812 setup.py\ndrwxr-xr-x  3 user user 4096 tests\n\
                       src/archive/ledger.py:41: def parse_entry(line):\nsrc/archive/ledger.py:57:     \
                       return Entry(date=parse_date(fields[0]), amount=float(fields[1]))\n\
                       tests/test_ledger.py::test_parse_entry PASSED\ntests/test_ledger.py::test_empty FAILED";
    let mut messages = vec![
        ChatMessage::system(
            "You are a software engineering agent. Investigate the repository with the tools, \
             fix the bug, then submit.",
        ),
        ChatMessage::user(
            "parse_entry in src/archive/ledger.py fails on empty lines. Reproduce the failure, \
             fix it and submit.",
        ),
    ];
    let started = Instant::now();
    for _ in 0..steps {
        let completion = runtime
            .block_on(teacher.complete(&messages, &tools))
            .map_err(|e| e.to_string())?;
        let assistant = completion.message;
        messages.push(assistant.clone());
        if assistant.tool_calls.is_empty() {
            messages.push(ChatMessage::user("Call a tool."));
        }
        for call in &assistant.tool_calls {
            messages.push(ChatMessage::tool_result(call, observation));
        }
    }
    let elapsed = started.elapsed();
    let stats = teacher.stats();
    Ok((elapsed, stats.prompt_tokens, stats.prompt_evaluated))
}
