//! `trajforge import`: bring SERA, SWE-agent and mini-swe-agent trajectories into a run.

use std::path::PathBuf;

use trajforge_import::{Format, import_files};

use crate::error::CliError;

/// Skipped records listed per file on stderr (all are in `--json`).
const SHOWN_SKIPS: usize = 20;

/// The source formats, as `--from` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// SERA's JSON Lines records (`messages` string, `rollout_patch`, `target_patch`, ...).
    Sera,
    /// SWE-agent `.traj` files (`history`, `trajectory`, `info`; 0.x text actions or 1.x
    /// function calls), or JSON Lines of them.
    SweAgent,
    /// mini-swe-agent trajectory files (`messages`, `info`; 1.x or 2.x, text, tool-call or
    /// Responses-API form) or bare lists of messages, or JSON Lines of them.
    MiniSweAgent,
}

impl Source {
    fn format(self) -> Format {
        match self {
            Source::Sera => Format::Sera,
            Source::SweAgent => Format::SweAgent,
            Source::MiniSweAgent => Format::MiniSweAgent,
        }
    }
}

/// Options of `trajforge import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Format of the files.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub from: Source,
    /// Files to import: JSON Lines (one record per line) or one JSON document per file (.traj, .json).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The run folder to add them to (a new one is created as an import run), or
    /// --store URL --run NAME.
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "store")]
    pub into: Option<PathBuf>,
    #[command(flatten)]
    pub store: crate::args::StoreArgs,
    /// Line-recall threshold for keeping a record that has a reference patch (SERA's
    /// target_patch) [default: the run's threshold, else 0.5].
    #[arg(long, value_name = "R")]
    pub threshold: Option<f64>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Run `trajforge import`.
pub fn run(args: Args) -> Result<(), CliError> {
    let format = args.from.format();
    let into = args.store.required(args.into.as_deref())?;
    let report = import_files(format, &args.files, &into, args.threshold)?;
    stderr_text!("{}", report.render(SHOWN_SKIPS));
    if args.json {
        crate::error::print_json(&report.summary())?;
    }
    if let Some(r) = report.failed() {
        return Err(CliError::failure(format!(
            "{}: {}",
            r.path.display(),
            r.error.as_deref().unwrap_or_default()
        ))
        .hint("the file's records are written in transactions of 32 MiB of source (one for a smaller file), so little or none of it was written; fix the cause and import it again (records already imported are not duplicated)"));
    }
    if let Some(nothing) = report.nothing() {
        return Err(nothing.into());
    }
    Ok(())
}
