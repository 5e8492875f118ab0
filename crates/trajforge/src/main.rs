//! The `trajforge` command: wires the library crates to a command line.
//!
//! Only this crate prints. Library errors arrive typed; [`error::CliError`] turns them into
//! one message with a hint and an exit code (0 success, 1 failure, 2 bad input).

// The binary is the one place that writes to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod error;

use clap::{Parser, Subcommand};

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
    Serve(cmd::serve::Args),
    /// Generate soft-verified trajectories from a repository (the main job; resumable).
    Generate(Box<cmd::generate::Args>),
    /// Show where a run stands: stages, kept and rejected, recall histogram, tokens and cost.
    Status(cmd::status::Args),
}

fn main() {
    let cli = match Cli::try_parse() {
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
        Command::Serve(args) => cmd::serve::run(args),
        Command::Generate(args) => cmd::generate::run(*args),
        Command::Status(args) => cmd::status::run(args),
    };
    if let Err(err) = result {
        std::process::exit(report(&err));
    }
}

fn report(err: &CliError) -> i32 {
    if err.message.is_empty() {
        return err.code;
    }
    eprintln!("error: {}", err.message);
    if let Some(hint) = &err.hint {
        eprintln!("hint: {hint}");
    }
    err.code
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
