//! `trajforge view`: browse a run in a local web page.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use trajforge_store::Location;
use trajforge_view::{Viewer, server};

use crate::args::StoreArgs;
use crate::error::CliError;

/// Options of `trajforge view`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The first line on stdout is the URL. The pages are read-only (GET only) and \
follow a run that is still going; every asset is built in (works offline). Keys: j/k next/previous \
row or job, n/N next/previous step, / search. Stop with Ctrl-C."
)]
pub struct Args {
    /// The run folder given to `generate --out` or `web generate --out`, or an evaluation's
    /// folder (`eval --out`); or --store URL --run NAME.
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Port to listen on [default: any free port].
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to bind; the default keeps the pages private to this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Open the URL in the default browser (xdg-open).
    #[arg(long)]
    pub open: bool,
    /// The student's tokenizer (tokenizer.json, its folder or a GGUF file): training samples
    /// show their exact token count.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// With an evaluation folder (`trajforge eval --out`): compare it (A) with this other
    /// evaluation (B) on the page /compare, as `trajforge eval compare A B` does.
    #[arg(long, value_name = "EVAL_B")]
    pub compare: Option<PathBuf>,
    /// With --tokenizer: show where `export --max-tokens N` cuts each sample.
    #[arg(long, value_name = "N", requires = "tokenizer")]
    pub max_tokens: Option<usize>,
}

/// Serve the run until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> Result<(), CliError> {
    if let (Some(dir), Some(_)) = (&args.run_dir, &args.store.store) {
        return Err(CliError::input(format!(
            "both a run folder ({}) and --store name the run to view",
            dir.display()
        ))
        .hint("give the run folder alone, or --store URL --run NAME alone"));
    }
    let location = args.store.required(args.run_dir.as_deref())?;
    if args.compare.is_some() && !matches!(location, Location::Folder(_)) {
        return Err(CliError::input("--compare compares evaluation folders")
            .hint("give the evaluation's folder (`eval --out`) instead of --store"));
    }
    let mut viewer = Viewer::open_at(&location)?;
    if let Some(path) = &args.tokenizer {
        viewer = viewer.with_tokenizer(path, args.max_tokens)?;
    }
    if let Some(other) = &args.compare {
        viewer = viewer.with_comparison(other);
    }
    let viewer = Arc::new(viewer);
    let runtime = crate::cmd::server_runtime()?;
    runtime.block_on(async move {
        let listener = server::bind(&args.host, args.port).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::failure(format!("cannot read the bound address: {e}")))?;
        let url = format!("http://{addr}/");
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{url}");
        let _ = out.flush();
        stderr_line!("viewing {location} on {url} (read-only); Ctrl-C stops");
        if args.open
            && let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn()
        {
            stderr_line!("warning: cannot open a browser ({e}); open {url} yourself");
        }
        server::serve(viewer, listener, async {
            let signal = crate::cmd::shutdown_signal().await;
            stderr_line!("{signal}: stopping");
        })
        .await?;
        Ok(())
    })
}
