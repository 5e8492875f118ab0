//! `trajforge serve`: the local GGUF model, or an upstream OpenAI-compatible server, as an
//! HTTP endpoint speaking OpenAI chat completions and Anthropic's Messages API.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trajforge_export::StudentTokenizer;
use trajforge_local::{
    Backend, CountError, LocalError, LocalOptions, LocalTeacher, MessagesOptions, ServeOptions,
    TRAINED_ROOT, TokenCounter, ToolsMode, TrainedTools, default_model_path,
};
use trajforge_teacher::{ChatMessage, OpenAiTeacher, TeacherConfig, ToolSpec};

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
    /// instead of loading a model, e.g. http://127.0.0.1:8000/v1.
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

/// Exact prompt counts of an upstream model with its tokenizer.
struct Counter(StudentTokenizer);

impl TokenCounter for Counter {
    fn count(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<u64, CountError> {
        self.0
            .count_prompt(messages, tools)
            .map(|n| n as u64)
            .map_err(|e| CountError(Box::new(e)))
    }
}

/// Load the model (or reach the upstream), bind, print the URL and serve until Ctrl-C.
pub fn run(args: Args) -> Result<(), CliError> {
    let runtime = crate::cmd::server_runtime()?;
    let tools = match (args.tools, &args.trained_on) {
        (Tools::Passthrough, None) => ToolsMode::Passthrough,
        (Tools::Passthrough, Some(_)) => {
            return Err(CliError::input("--trained-on needs --tools trained"));
        }
        (Tools::Trained, Some(dir)) => {
            ToolsMode::Trained(TrainedTools::from_dataset(dir).map_err(|e| {
                CliError::input(e).hint(
                    "point --trained-on at the folder `trajforge export --format openai` wrote",
                )
            })?)
        }
        (Tools::Trained, None) => ToolsMode::Trained(TrainedTools {
            system_prompt: trajforge_agent::LoopConfig::default().system_prompt,
            tools: trajforge_repo_env::RepoEnvironment::tool_specs(),
            root: TRAINED_ROOT.to_string(),
        }),
    };
    let backend = match &args.upstream {
        Some(url) => runtime.block_on(upstream(url, &args))?,
        None => {
            let path = args.model.clone().unwrap_or_else(default_model_path);
            let options = LocalOptions {
                n_ctx: args.ctx,
                threads: args.threads,
                max_tokens: args.max_tokens.max(1),
                ..LocalOptions::default()
            };
            Backend::Local(Arc::new(
                LocalTeacher::load(&path, options).map_err(load_error)?,
            ))
        }
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| {
                CliError::input(format!("cannot listen on {}:{}: {e}", args.host, args.port))
                    .hint("pick another --port (0 picks a free one)")
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::failure(format!("cannot read the bound address: {e}")))?;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "http://{addr}/v1");
        let _ = out.flush();
        match &backend {
            Backend::Local(teacher) => stderr_line!(
                "serving {} (context {} tokens) on http://{addr}/v1; Ctrl-C stops",
                teacher.model_name(),
                teacher.n_ctx()
            ),
            Backend::Upstream { client, counter } => stderr_line!(
                "serving {} from {} on http://{addr}/v1 (Messages API; token counts {}); Ctrl-C stops",
                client.config().model,
                trajforge_teacher::Teacher::describe(client.as_ref()).base_url,
                if counter.is_some() { "exact" } else { "estimated: pass --tokenizer" },
            ),
        }
        let serve_options = ServeOptions {
            model_name: args.name,
            ..ServeOptions::default()
        };
        let shutdown = async {
            let signal = crate::cmd::shutdown_signal().await;
            stderr_line!("{signal}: stopping");
        };
        let messages = MessagesOptions {
            tools,
            max_output_tokens: Some(args.max_output_tokens.max(1)),
        };
        trajforge_local::serve_backend(listener, backend, serve_options, messages, shutdown)
            .await
            .map_err(CliError::failure)
    })
}

/// The upstream client, its model name (asked from the server when not given) and counter.
async fn upstream(url: &str, args: &Args) -> Result<Backend, CliError> {
    let given = args
        .model
        .as_ref()
        .map(|m| m.to_string_lossy().into_owned());
    let mut config = TeacherConfig::new(url, given.clone().unwrap_or_default());
    let mut client = OpenAiTeacher::new(config.clone()).map_err(CliError::input)?;
    if given.is_none() {
        let listed = client.models(Duration::from_secs(10)).await.map_err(|e| {
            CliError::input(e).hint("check --upstream, or name the model with --model NAME")
        })?;
        config.model = listed.into_iter().next().ok_or_else(|| {
            CliError::input(format!("{url} lists no model")).hint("name it with --model NAME")
        })?;
        client = OpenAiTeacher::new(config).map_err(CliError::input)?;
    }
    let counter = match &args.tokenizer {
        Some(path) => Some(Arc::new(Counter(StudentTokenizer::load(path).map_err(|e| {
            CliError::input(e)
                .hint("pass the upstream model's tokenizer.json, its folder or a GGUF file")
        })?)) as Arc<dyn TokenCounter>),
        None => None,
    };
    Ok(Backend::Upstream {
        client: Arc::new(client),
        counter,
    })
}

fn load_error(err: LocalError) -> CliError {
    match err {
        LocalError::Missing { .. }
        | LocalError::NotGguf { .. }
        | LocalError::Truncated { .. }
        | LocalError::Corrupt { .. }
        | LocalError::NoChatTemplate { .. }
        | LocalError::Unreadable { .. } => CliError::input(err)
            .hint("run scripts/install-model.sh for the default model, or pass --model PATH.gguf"),
        other => CliError::failure(other),
    }
}
