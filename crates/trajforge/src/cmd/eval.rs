//! `trajforge eval`: evaluation of held-out tasks. This branch holds only `eval compare`; the
//! lead merges it into the evaluation run's own `eval` command.

use crate::cmd::eval_compare;
use crate::error::CliError;

/// Options of `trajforge eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvalCommand {
    /// Compare two evaluations paired on (task, seed): resolve rates, recall, a 95% bootstrap interval, McNemar and a verdict.
    Compare(eval_compare::Args),
}

/// Run `trajforge eval`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        EvalCommand::Compare(args) => eval_compare::run(args),
    }
}
