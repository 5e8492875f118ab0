//! `trajforge import`: bring SERA, SWE-agent and mini-swe-agent trajectories into a run.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trajforge_import::{Format, ImportError, Parsed, read_file, write};
use trajforge_store::Store;

use crate::error::CliError;

/// Skipped records listed per file on stderr (all are in `--json`).
const SHOWN_SKIPS: usize = 20;

/// The source formats, as `--from` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// SERA's JSON Lines records (`messages` string, `rollout_patch`, `target_patch`, ...).
    Sera,
    /// SWE-agent `.traj` files (`history`, `trajectory`, `info`), or JSON Lines of them.
    SweAgent,
    /// mini-swe-agent trajectory files (`messages`, `info`), or JSON Lines of them.
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
    /// The run folder to add them to (a new one is created as an import run).
    #[arg(long, value_name = "RUN_DIR")]
    pub into: PathBuf,
    /// Line-recall threshold for keeping a record that has a reference patch (SERA's
    /// target_patch) [default: the run's threshold, else 0.5].
    #[arg(long, value_name = "R")]
    pub threshold: Option<f64>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What happened to one file.
struct FileReport {
    path: PathBuf,
    parsed: Parsed,
    added: usize,
    duplicates: usize,
    error: Option<String>,
}

/// Run `trajforge import`.
pub fn run(args: Args) -> Result<(), CliError> {
    if let Some(t) = args.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(CliError::input(format!(
            "--threshold {t}: must be between 0 and 1"
        )));
    }
    let format = args.from.format();
    // Read everything before touching the run: a missing file leaves the run as it was.
    let mut reports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let parsed = read_file(format, path).map_err(|e| match e {
            ImportError::Read { .. } => {
                CliError::input(e).hint("check the path; nothing was imported")
            }
            other => CliError::failure(other),
        })?;
        reports.push(FileReport {
            path: path.clone(),
            parsed,
            added: 0,
            duplicates: 0,
            error: None,
        });
    }
    let valid: usize = reports.iter().map(|r| r.parsed.records.len()).sum();
    let mut threshold = args.threshold.unwrap_or(0.5);
    if valid > 0 {
        let store = open_store(&args.into)?;
        let new_run = store.meta("settings").map_err(CliError::failure)?.is_none()
            && store.meta("kind").map_err(CliError::failure)?.is_none()
            && store.counts().map_err(CliError::failure)? == Default::default();
        if args.threshold.is_none() {
            threshold = run_threshold(&store).unwrap_or(threshold);
        }
        let mut log: Vec<Value> = store
            .meta("imports")
            .map_err(CliError::failure)?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut mark_new_run = new_run;
        for r in reports.iter_mut() {
            if r.parsed.records.is_empty() {
                continue;
            }
            log.push(
                json!({"format": format.name(), "file": r.path.display().to_string(),
                            "records": r.parsed.records.len(), "skipped": r.parsed.skipped.len(),
                            "threshold": threshold, "at_ms": now_ms()}),
            );
            let mut meta = vec![("imports", Value::Array(log.clone()).to_string())];
            if mark_new_run {
                // A run made by importing: no repository, no generation settings.
                meta.push(("kind", "import".to_string()));
            }
            match write(&store, &r.path, &r.parsed, threshold, &meta) {
                Ok(c) => {
                    mark_new_run = false;
                    r.added = c.added;
                    r.duplicates = c.duplicates;
                }
                Err(e) => {
                    // This file's transaction rolled back; the files before it stay imported.
                    log.pop();
                    r.error = Some(e.to_string());
                }
            }
        }
    }
    let summary = summary(&args, format, threshold, &reports);
    print_summary(&reports);
    if args.json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        writeln!(std::io::stdout().lock(), "{text}").map_err(crate::error::output)?;
    }
    if let Some(r) = reports.iter().find(|r| r.error.is_some()) {
        return Err(CliError::failure(format!(
            "{}: {}",
            r.path.display(),
            r.error.as_deref().unwrap_or_default()
        ))
        .hint("nothing of that file was written; fix the cause and import it again (records already imported are not duplicated)"));
    }
    if valid == 0 {
        return Err(CliError::failure(format!(
            "nothing to import: no valid {} record in {} file(s)",
            format.name(),
            reports.len()
        ))
        .hint("check that --from names the files' format (sera, swe-agent or mini-swe-agent)"));
    }
    Ok(())
}

fn open_store(dir: &Path) -> Result<Store, CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::input(format!("{}: not a folder", dir.display()))
            .hint("--into takes a run folder (new or made by `trajforge generate` or `trajforge import`)"));
    }
    Store::open(dir).map_err(|e| {
        CliError::failure(e).hint(
            "--into takes a run folder (new or made by `trajforge generate` or `trajforge import`)",
        )
    })
}

/// The threshold a generated run was started with.
fn run_threshold(store: &Store) -> Option<f64> {
    let settings: Value = serde_json::from_str(&store.meta("settings").ok()??).ok()?;
    settings["threshold"].as_f64()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn summary(args: &Args, format: Format, threshold: f64, reports: &[FileReport]) -> Value {
    let files: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "file": r.path.display().to_string(),
                "records": r.parsed.records.len(),
                "added": r.added,
                "duplicates": r.duplicates,
                "skipped": r.parsed.skipped,
                "error": r.error,
            })
        })
        .collect();
    let sum = |f: &dyn Fn(&FileReport) -> usize| reports.iter().map(f).sum::<usize>();
    json!({
        "format": format.name(),
        "run_dir": args.into.display().to_string(),
        "threshold": threshold,
        "records": sum(&|r| r.parsed.records.len()),
        "added": sum(&|r| r.added),
        "duplicates": sum(&|r| r.duplicates),
        "skipped": sum(&|r| r.parsed.skipped.len()),
        "files": files,
    })
}

fn print_summary(reports: &[FileReport]) {
    for r in reports {
        let p = r.path.display();
        for s in r.parsed.skipped.iter().take(SHOWN_SKIPS) {
            eprintln!("{p}:{}: skipped: {}", s.line, s.reason);
        }
        if r.parsed.skipped.len() > SHOWN_SKIPS {
            eprintln!(
                "{p}: ... {} more skipped (see --json)",
                r.parsed.skipped.len() - SHOWN_SKIPS
            );
        }
        let status = match &r.error {
            Some(e) => format!("not imported ({e})"),
            None => format!("{} added, {} already in the run", r.added, r.duplicates),
        };
        eprintln!(
            "{p}: {} records, {} skipped; {status}",
            r.parsed.records.len(),
            r.parsed.skipped.len()
        );
    }
    if reports.len() > 1 {
        let n = |f: &dyn Fn(&FileReport) -> usize| reports.iter().map(f).sum::<usize>();
        eprintln!(
            "total: {} records, {} skipped; {} added, {} already in the run",
            n(&|r| r.parsed.records.len()),
            n(&|r| r.parsed.skipped.len()),
            n(&|r| r.added),
            n(&|r| r.duplicates)
        );
    }
}
