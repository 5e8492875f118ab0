//! The `trajforge` command: a thin binary over the library crates. Each command in [`cmd`]
//! maps its options (argument groups shared by commands live once in [`args`]) to a library
//! call and prints the result; [`episode`] shows one episode as it runs and [`config`] reads
//! long options from `trajforge.toml`.
//!
//! Only this crate prints. Library errors arrive typed; [`error::CliError`] turns each into
//! one message with its causes, hints and an exit code (0 success, 1 failure, 2 bad input,
//! 3 `run` without a submit, 141 stdout closed by its reader; a closed stderr changes no exit
//! code, its messages are lost).

// The binary is the one place that writes to the terminal. Stdout goes through
// `error::print` / `error::output` (a closed pipe is a quiet exit, not a panic) and stderr
// through `stderr_line!` / `stderr_text!` (a closed stderr loses the text, never panics), so
// `print!` and `eprint!` stay linted.

// First: its stderr macros are used by the modules below.
#[macro_use]
mod error;
mod args;
mod cmd;
mod config;
mod episode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::CliError;

// Parsing and JSON output allocate many small objects; mimalloc is markedly faster here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn a code repository or a website into soft-verified agent trajectories.
#[derive(Debug, Parser)]
#[command(name = "trajforge", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Read default options from this TOML file [default: ./trajforge.toml when present].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Ignore ./trajforge.toml.
    #[arg(long, global = true)]
    no_config: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the functions and methods of a repository, one JSON object per line.
    Functions(cmd::functions::Args),
    /// Print the bug-type and navigation task-type menus.
    Menu(cmd::menu::Args),
    /// Line-level recall of patch P2 against patch P1 (the soft-verification metric).
    Recall(cmd::recall::Args),
    /// Run one agent episode on a repository with a teacher model, watched live.
    Run(Box<cmd::run::Args>),
    /// Serve a local GGUF model as an OpenAI-compatible endpoint (chat completions with tools).
    #[cfg(feature = "local")]
    Serve(cmd::serve::Args),
    /// Generate soft-verified trajectories from a repository (the main job; resumable).
    Generate(Box<cmd::generate::Args>),
    /// Record a website with a real headless browser (`site crawl`) and summarise it (`site show`).
    Site(cmd::site::Args),
    /// Soft-Verified Generation on a website: `web generate` (resumable).
    Web(cmd::web::Args),
    /// Evaluate a model on held-out tasks (resolved and line recall per task and seed; resumable), or `eval compare` two evaluations.
    Eval(Box<cmd::eval::Args>),
    /// Show where a run stands: stages, kept and rejected, recall histogram, tokens and cost.
    Status(cmd::status::Args),
    /// Browse a run in a local web page: status, plots, every trajectory and its verdict (read-only).
    View(cmd::view::Args),
    /// Import SERA, SWE-agent or mini-swe-agent trajectories into a run, to filter and export them.
    Import(cmd::import::Args),
    /// Held-out tasks from the repository's history: `tasks mine` (SWE-bench instances; resumable).
    Tasks(cmd::tasks::Args),
    /// Work on a run held in a PostgreSQL store, beside workers on other machines (claims jobs under leases).
    Worker(Box<cmd::worker::Args>),
    /// Move a run between a run folder and a PostgreSQL database: `store copy FROM TO`.
    Store(cmd::store::Args),
    /// Export a run's trajectories as training data (hermes, openai, sharegpt, raw; JSONL or Parquet).
    Export(Box<cmd::export::Args>),
}

fn main() {
    // Inside a sandbox this process may be the Landlock helper (it then never returns).
    trajforge_sandbox::landlock::run_helper_if_asked();
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let (argv, applied) = match config::apply(std::env::args_os().collect(), &Cli::command(), &cwd)
    {
        Ok(x) => x,
        Err(err) => std::process::exit(report(&err)),
    };
    if let Some(applied) = applied {
        stderr_line!(
            "settings from {}: {}",
            applied.file.display(),
            applied.keys.join(", ")
        );
    }
    // The file's settings come first; a later occurrence (the user's own) wins.
    let parsed = config::overriding(Cli::command())
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout and usage errors to stderr itself.
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Functions(args) => cmd::functions::run(args),
        Command::Menu(args) => cmd::menu::run(args),
        Command::Recall(args) => cmd::recall::run(args),
        Command::Run(args) => cmd::run::run(*args),
        #[cfg(feature = "local")]
        Command::Serve(args) => cmd::serve::run(args),
        Command::Generate(args) => cmd::generate::run(*args),
        Command::Eval(args) => cmd::eval::run(*args),
        Command::Status(args) => cmd::status::run(args),
        Command::View(args) => cmd::view::run(args),
        Command::Site(args) => cmd::site::run(args),
        Command::Web(args) => cmd::web::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Export(args) => cmd::export::run(*args),
        Command::Worker(args) => cmd::worker::run(*args),
        Command::Store(args) => cmd::store::run(args),
        Command::Tasks(args) => cmd::tasks::run(args),
    };
    if let Err(err) = result {
        std::process::exit(report(&err));
    }
}

fn report(err: &CliError) -> i32 {
    stderr_text!("{}", err.render());
    err.code()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
