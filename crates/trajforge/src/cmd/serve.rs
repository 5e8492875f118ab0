//! `trajforge serve`: the local GGUF model, or an upstream OpenAI-compatible server, as an
//! HTTP endpoint speaking OpenAI chat completions and Anthropic's Messages API.

use std::io::Write;
use std::path::PathBuf;

use trajforge_pipeline::serve::{ServeSpec, prepare_serve};

use crate::error::CliError;

/// Options of `trajforge serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Serves POST /v1/chat/completions (tools, streaming, usage), POST /v1/messages and \
POST /v1/messages/count_tokens (Anthropic's Messages API, for Claude Code and Anthropic SDKs) and \
GET /v1/models. Requests are queued on the one model context. Use it as `--teacher \
http://127.0.0.1:PORT/v1`, from any OpenAI client, or from Claude Code with \
ANTHROPIC_BASE_URL=http://127.0.0.1:PORT. With --upstream, /v1/messages is passed on to that \
OpenAI-compatible server, streamed as it streams. The first line on stdout is the base URL. \
Stop with Ctrl-C or SIGTERM."
)]
pub struct Args {
    /// The GGUF model [default: the model installed by scripts/install-model.sh]; with
    /// --upstream, the model name sent upstream [default: the first the upstream lists].
    #[arg(long, value_name = "PATH.gguf|NAME")]
    pub model: Option<PathBuf>,
    /// Pass Messages requests on to this OpenAI-compatible server (vLLM, llama.cpp, SGLang)
    /// instead of loading a model, e.g. http://127.0.0.1:8000/v1; several servers of the
    /// model, comma-separated, share the load (a conversation stays on one).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// The upstream model's tokenizer (tokenizer.json with its tokenizer_config.json, their
    /// folder, or a GGUF file), for exact count_tokens; without it counts are estimates.
    #[arg(long, value_name = "PATH", requires = "upstream")]
    pub tokenizer: Option<PathBuf>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind; the default keeps the server private to this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Context size in tokens [default: the model's, at most 8192].
    #[arg(long, value_name = "TOKENS")]
    pub ctx: Option<u32>,
    /// CPU threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Tokens per reply when a request sets no max_tokens.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_tokens: u32,
    /// Largest max_tokens passed on from a Messages request (Claude Code asks for 128,000;
    /// a server refuses more than its context leaves).
    #[arg(long, default_value_t = 8192, value_name = "N")]
    pub max_output_tokens: u64,
    /// Model id announced by /v1/models [default: the file name without .gguf].
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
    /// Tools the model sees on /v1/messages: `trained` swaps Claude Code's system prompt and
    /// tools for the ones trajforge trains on and translates the calls both ways;
    /// `passthrough` forwards Claude Code's.
    #[arg(long, value_enum, default_value_t = Tools::Passthrough)]
    pub tools: Tools,
    /// The dataset the model was trained on (a folder of `export --format openai` JSONL), whose
    /// system prompt and tools `--tools trained` uses [default: trajforge's built-in ones].
    #[arg(long, value_name = "DATASET_DIR")]
    pub trained_on: Option<PathBuf>,
}

/// `--tools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tools {
    /// The trained tool set (bash, str_replace_editor, submit) in place of Claude Code's.
    Trained,
    /// Claude Code's tools as they are.
    Passthrough,
}

/// Load the model (or reach the upstream), bind, print the URL and serve until Ctrl-C.
pub fn run(args: Args) -> Result<(), CliError> {
    let runtime = crate::cmd::server_runtime()?;
    let (host, port) = (args.host, args.port);
    let spec = ServeSpec {
        upstream: args.upstream,
        model: args.model,
        tokenizer: args.tokenizer,
        ctx: args.ctx,
        threads: args.threads,
        max_tokens: args.max_tokens,
        max_output_tokens: args.max_output_tokens,
        name: args.name,
        trained: args.tools == Tools::Trained,
        trained_on: args.trained_on,
    };
    runtime.block_on(async move {
        let prepared = prepare_serve(spec).await?;
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| {
                CliError::input(format!("cannot listen on {host}:{port}: {e}"))
                    .hint("pick another --port (0 picks a free one)")
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::failure(format!("cannot read the bound address: {e}")))?;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "http://{addr}/v1");
        let _ = out.flush();
        stderr_line!(
            "{}; Ctrl-C stops",
            prepared.describe(&format!("http://{addr}/v1"))
        );
        let shutdown = async {
            let signal = crate::cmd::shutdown_signal().await;
            stderr_line!("{signal}: stopping");
        };
        trajforge_local::serve_backend(
            listener,
            prepared.backend,
            prepared.options,
            prepared.messages,
            shutdown,
        )
        .await
        .map_err(CliError::failure)
    })
}
