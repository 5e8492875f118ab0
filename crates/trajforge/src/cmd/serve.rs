//! `trajforge serve`: the local GGUF model as an OpenAI-compatible HTTP endpoint.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use trajforge_local::{LocalError, LocalOptions, LocalTeacher, ServeOptions, default_model_path};

use crate::error::CliError;

/// Options of `trajforge serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Serves POST /v1/chat/completions (tools, streaming, usage) and GET /v1/models. \
Requests are queued on the one model context. Use it as `--teacher http://127.0.0.1:PORT/v1`, \
or from any OpenAI client. The first line on stdout is the base URL. Stop with Ctrl-C or SIGTERM."
)]
pub struct Args {
    /// The GGUF model [default: the model installed by scripts/install-model.sh].
    #[arg(long, value_name = "PATH.gguf")]
    pub model: Option<PathBuf>,
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
    /// Model id announced by /v1/models [default: the file name without .gguf].
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
}

/// Load the model, bind, print the URL and serve until Ctrl-C.
pub fn run(args: Args) -> Result<(), CliError> {
    let path = args.model.unwrap_or_else(default_model_path);
    let options = LocalOptions {
        n_ctx: args.ctx,
        threads: args.threads,
        max_tokens: args.max_tokens.max(1),
        ..LocalOptions::default()
    };
    let teacher = LocalTeacher::load(&path, options).map_err(load_error)?;
    let runtime = crate::cmd::server_runtime()?;
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
        stderr_line!(
            "serving {} (context {} tokens) on http://{addr}/v1; Ctrl-C stops",
            teacher.model_name(),
            teacher.n_ctx()
        );
        let serve_options = ServeOptions {
            model_name: args.name,
            ..ServeOptions::default()
        };
        trajforge_local::serve(listener, Arc::new(teacher), serve_options, async {
            let signal = crate::cmd::shutdown_signal().await;
            stderr_line!("{signal}: stopping");
        })
        .await
        .map_err(CliError::failure)
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
