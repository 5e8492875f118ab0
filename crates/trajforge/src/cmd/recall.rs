//! `trajforge recall`: the soft-verification metric between two patches.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use trajforge_patch::{Recall, RecallError, RecallReadError};
use trajforge_repo_env::repo::MAX_PATCH_BYTES;

use crate::error::{self, CliError};

/// Options of `trajforge recall`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Recall r = (P1 lines matched in P2) / (P1 lines), over the added and removed lines of each \
patch (sign included, exact text, file names ignored, each P2 line matching once; whitespace-only lines \
do not count). Plain output is r, or \"undefined\" when P1 changes no lines. Use - to read a patch from stdin. \
Each patch may have at most --max-bytes (1 MiB by default, the patch limit of run and generate); a larger one \
is refused with exit code 2. Memory grows with that limit, not with the input."
)]
pub struct Args {
    /// The patch of rollout 1 (the reference).
    pub p1: PathBuf,
    /// The patch of rollout 2 (the candidate).
    pub p2: PathBuf,
    /// Print {"recall", "matched", "total", "precision", "files"} as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also print whether the pair is kept at this threshold (exit status stays 0).
    #[arg(long, value_name = "R")]
    pub threshold: Option<f64>,
    /// Largest patch compared, in bytes [default: 1048576, the patch limit of run and generate].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: Option<u64>,
}

/// Run `trajforge recall`.
pub fn run(args: Args) -> Result<(), CliError> {
    if args.p1 == Path::new("-") && args.p2 == Path::new("-") {
        return Err(CliError::input(
            "only one of P1 and P2 can be read from stdin",
        ));
    }
    if let Some(t) = args.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(CliError::input(format!(
            "--threshold {t}: must be between 0 and 1"
        )));
    }
    // Both patches are read as streams, each up to a limit (by default that of an episode's
    // patch, since `generate` rejects a larger one before any recall): memory is bounded by
    // the limit, not by the input.
    let stdin = std::io::stdin();
    let (p1, p2) = (open(&args.p1, &stdin)?, open(&args.p2, &stdin)?);
    let limit = args.max_bytes.unwrap_or(MAX_PATCH_BYTES as u64);
    let recall = trajforge_patch::line_recall_reader(p1, p2, limit).map_err(|e| match e {
        RecallReadError::Parse(e @ RecallError::P1(_)) => {
            CliError::input(format!("{}: {e}", args.p1.display()))
                .hint("P1 must be a unified diff, as `git diff` prints it")
        }
        RecallReadError::Parse(e @ RecallError::P2(_)) => {
            CliError::input(format!("{}: {e}", args.p2.display()))
                .hint("P2 must be a unified diff, as `git diff` prints it")
        }
        RecallReadError::TooLarge { which, limit } => {
            let path = if which == "P1" { &args.p1 } else { &args.p2 };
            CliError::input(format!(
                "{}: {which} is over the limit of {limit} bytes: not compared",
                path.display()
            ))
            .hint(format!(
                "run and generate cut an episode's patch at {MAX_PATCH_BYTES} bytes and never verify a \
                 larger one; to compare larger patches anyway, raise --max-bytes (memory grows with it)"
            ))
        }
        RecallReadError::Read { which, source } => {
            let path = if which == "P1" { &args.p1 } else { &args.p2 };
            CliError::input(format!("{}: cannot read: {source}", path.display()))
                .hint("pass two patch files, e.g. `git diff > p1.diff`")
        }
    })?;
    let text = render(&recall, args.json, args.threshold);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).map_err(error::output)?;
    out.flush().map_err(error::output)
}

/// A patch file, or stdin for `-`, as a buffered stream.
fn open(path: &Path, stdin: &std::io::Stdin) -> Result<Box<dyn BufRead>, CliError> {
    if path == Path::new("-") {
        return Ok(Box::new(stdin.lock()));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        CliError::input(format!("{}: cannot read: {e}", path.display()))
            .hint("pass two patch files, e.g. `git diff > p1.diff`")
    })?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// The recall as printed.
pub fn render(recall: &Recall, json: bool, threshold: Option<f64>) -> String {
    if json {
        let mut value = serde_json::to_value(recall).unwrap_or_default();
        if let (Some(t), Some(map)) = (threshold, value.as_object_mut()) {
            map.insert("threshold".into(), t.into());
            map.insert("verdict".into(), recall.verdict(t).as_str().into());
        }
        return format!("{value}\n");
    }
    let mut s = match recall.recall {
        Some(r) => format!("{r}\n"),
        None => "undefined (P1 changes no lines)\n".to_string(),
    };
    if let Some(t) = threshold {
        s.push_str(&format!(
            "{} at threshold {t}\n",
            recall.verdict(t).as_str()
        ));
    }
    s
}
