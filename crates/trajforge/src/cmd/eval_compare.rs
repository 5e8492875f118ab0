//! `trajforge eval compare`: two evaluations of the same tasks, paired, with a verdict.

use std::io::Write;
use std::path::PathBuf;

use trajforge_eval::{CompareOptions, compare_dirs, render};

use crate::error::{self, CliError};

/// Options of `trajforge eval compare`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Rows of the two runs' results.jsonl pair on (task, seed); rows of one run alone are counted \
and left out. The resolve rate is over hard tasks, recall over all. B−A comes with a 95% bootstrap interval \
that draws whole tasks (with all their seeds) and an exact McNemar test on resolved. The verdict says \
better or worse only when the interval excludes 0; otherwise it estimates how many tasks a 5-point \
difference would need. Exit status 0 whatever the verdict."
)]
pub struct Args {
    /// The first evaluation folder (`trajforge eval --out`), the baseline.
    #[arg(value_name = "EVAL_A")]
    pub a: PathBuf,
    /// The second evaluation folder, compared against A.
    #[arg(value_name = "EVAL_B")]
    pub b: PathBuf,
    /// Print the whole comparison as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Run `trajforge eval compare`.
pub fn run(args: Args) -> Result<(), CliError> {
    let comparison = compare_dirs(&args.a, &args.b, &CompareOptions::default())?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&comparison)
            .map_err(|e| CliError::failure(format!("cannot encode the comparison: {e}")))?;
        s.push('\n');
        s
    } else {
        render(&comparison)
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).map_err(error::output)?;
    out.flush().map_err(error::output)
}
