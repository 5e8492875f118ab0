//! `trajforge export`: a run's trajectories as training data for a student model.

use std::path::PathBuf;
use std::time::Instant;

use trajforge_export::select::{Filters, normalize_repo, parse_mix};
use trajforge_export::{Container, Format, Options, StudentTokenizer};
use trajforge_store::Store;

use crate::error::CliError;

/// Training formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Qwen hermes text with per-message `train` flags (axolotl chat_template).
    Hermes,
    /// OpenAI messages with tool_calls and a tools list (TRL SFTTrainer).
    Openai,
    /// ShareGPT with function_call/observation turns plus dataset_info.json (LLaMA-Factory).
    Sharegpt,
    /// Every field the store holds.
    Raw,
}

/// Options of `trajforge export`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Defaults follow SERA: the run's verdicts, submitted trajectories only, at most 40 changed \
lines per patch, at most 600 tokens per tool response on average, identical patches once, 32,768 tokens per \
sample with too-long samples cut after the last assistant turn that fits and kept down to a ratio of 0.88. \
Set a limit to 0 (or a switch to false) to turn that filter off. Token counts are exact for --tokenizer \
[default: the installed default model's GGUF]. The data is written to a temporary file and renamed; \
README.md (dataset card), axolotl.yaml and, for sharegpt, dataset_info.json are written beside it."
)]
pub struct Args {
    /// The run folder given to `generate --out` (or `import`).
    pub run_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// The data file to write, ending in .jsonl or .parquet.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Rollouts to export, comma-separated.
    #[arg(long, default_value = "t1,t2", value_name = "t1,t2")]
    pub rollouts: String,
    /// Keep T2 trajectories with line recall r >= R instead of the run's own verdict.
    #[arg(long, value_name = "R")]
    pub min_recall: Option<f64>,
    /// Only trajectories that ended with a submit.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub require_submit: bool,
    /// Drop patches with more changed lines (0: off).
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub max_patch_lines: usize,
    /// Drop trajectories whose tool responses average more tokens (0: off) [default: 600 for code
    /// runs, as SERA; off for web runs, whose page snapshots are long by nature].
    #[arg(long, value_name = "N")]
    pub max_tool_tokens: Option<usize>,
    /// Most samples per rollout, e.g. t2=3000,t1=5000 (fitting samples first, then truncated ones by ratio).
    #[arg(long, value_name = "SPEC")]
    pub mix: Option<String>,
    /// Keep one of trajectories with byte-identical patches (per rollout).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub dedup: bool,
    /// Leave out trajectories from these repositories (one per line: owner/name, URL or name), for decontamination.
    #[arg(long, value_name = "FILE")]
    pub exclude_repos: Option<PathBuf>,
    /// The student's tokenizer: a tokenizer.json (chat template from tokenizer_config.json beside it), its folder, or a GGUF file.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// Token limit per sample; longer ones are truncated (0: off).
    #[arg(long, default_value_t = 32768, value_name = "N")]
    pub max_tokens: usize,
    /// Keep truncated samples down to this ratio of kept messages.
    #[arg(long, default_value_t = 0.88, value_name = "R")]
    pub min_ratio: f64,
    /// Student model named in axolotl.yaml.
    #[arg(long, default_value = "Qwen/Qwen3-32B", value_name = "MODEL")]
    pub student: String,
    /// Worker threads for token counting [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn filters(args: &Args) -> Result<Filters, CliError> {
    let rollouts: Vec<String> = args
        .rollouts
        .split(',')
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    if rollouts.is_empty() || rollouts.iter().any(|r| r != "t1" && r != "t2") {
        return Err(CliError::input(format!(
            "--rollouts {:?}: list t1 and/or t2",
            args.rollouts
        )));
    }
    for (name, v) in [
        ("--min-recall", args.min_recall),
        ("--min-ratio", Some(args.min_ratio)),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            return Err(CliError::input(format!(
                "{name} {v}: must be between 0 and 1"
            )));
        }
    }
    let mix = match &args.mix {
        Some(spec) => parse_mix(spec).map_err(|e| {
            CliError::input(format!("--mix: {e}")).hint("write e.g. --mix t2=3000,t1=5000")
        })?,
        None => Vec::new(),
    };
    let exclude_repos = match &args.exclude_repos {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(normalize_repo)
            .collect(),
        None => Vec::new(),
    };
    let nonzero = |n: usize| (n > 0).then_some(n);
    Ok(Filters {
        rollouts,
        min_recall: args.min_recall,
        require_submit: args.require_submit,
        max_patch_lines: nonzero(args.max_patch_lines),
        max_tool_tokens: nonzero(args.max_tool_tokens.unwrap_or(DEFAULT_MAX_TOOL_TOKENS))
            .map(|n| n as f64),
        mix,
        dedup: args.dedup,
        exclude_repos,
        max_tokens: nonzero(args.max_tokens),
        min_ratio: args.min_ratio,
    })
}

/// SERA's filter on the mean tokens of a tool response, for code runs.
const DEFAULT_MAX_TOOL_TOKENS: usize = 600;

/// Run `trajforge export`.
pub fn run(args: Args) -> Result<(), CliError> {
    if Container::from_path(&args.out).is_none() {
        return Err(CliError::input(format!(
            "--out {}: the file name must end in .jsonl or .parquet",
            args.out.display()
        )));
    }
    let mut filters = filters(&args)?;
    let store = Store::open_existing(&args.run_dir)
        .map_err(CliError::failure)?
        .ok_or_else(|| {
            CliError::input(format!(
                "{}: not a run folder (no trajforge.db)",
                args.run_dir.display()
            ))
            .hint("pass the folder given to `trajforge generate --out`")
        })?;
    // A web run (written by `web generate`) keeps its snapshots unless a limit is asked for.
    let web_run = store.meta("site").map_err(CliError::failure)?.is_some();
    if web_run && args.max_tool_tokens.is_none() {
        filters.max_tool_tokens = None;
    }
    let needs_tokens = filters.max_tokens.is_some() || filters.max_tool_tokens.is_some();
    let tokenizer_path = match &args.tokenizer {
        Some(p) => Some(p.clone()),
        None if needs_tokens => {
            let p = trajforge_local::default_model_path();
            if !p.is_file() {
                return Err(CliError::input(format!(
                    "token limits need a tokenizer and none was given (the default model {} is not installed)",
                    p.display()
                ))
                .hint("pass --tokenizer (tokenizer.json or a GGUF file), install the default model with scripts/install-model.sh, or turn the limits off with --max-tokens 0 --max-tool-tokens 0"));
            }
            eprintln!("counting tokens with {}", p.display());
            Some(p)
        }
        None => None,
    };
    let tokenizer = match &tokenizer_path {
        Some(p) => Some(StudentTokenizer::load(p).map_err(|e| {
            CliError::input(e).hint(
                "pass a Hugging Face tokenizer.json with its tokenizer_config.json, or a GGUF file",
            )
        })?),
        None => None,
    };
    if tokenizer.is_none() {
        filters.max_tokens = None;
        filters.max_tool_tokens = None;
    }
    let format = match args.format {
        FormatArg::Hermes => Format::Hermes,
        FormatArg::Openai => Format::Openai,
        FormatArg::Sharegpt => Format::Sharegpt,
        FormatArg::Raw => Format::Raw,
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let opts = Options {
        format,
        out: args.out.clone(),
        filters,
        tokenizer: tokenizer.as_ref(),
        student: args.student.clone(),
        run_dir: args.run_dir.clone(),
        threads,
    };
    let started = Instant::now();
    let summary = trajforge_export::export(&store, &opts).map_err(|e| {
        let hint = match &e {
            trajforge_export::ExportError::Io { .. } => "check that the output folder is writable",
            trajforge_export::ExportError::Template(_) => "the tokenizer's chat template cannot render these conversations; try another --tokenizer",
            _ => "nothing was written; fix the cause and run the export again",
        };
        CliError::failure(e).hint(hint)
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{} of {} trajectories written to {} ({} format, {:.1}s)",
        summary.written,
        summary.trajectories,
        args.out.display(),
        format.as_str(),
        started.elapsed().as_secs_f64()
    );
    for (rollout, n) in &summary.by_rollout {
        println!("  {rollout}: {n}");
    }
    if summary.truncated > 0 {
        println!("  truncated: {}", summary.truncated);
    }
    if let Some(t) = &summary.tokens {
        println!(
            "tokens: {} total, mean {:.0}, median {}, max {}",
            t.total, t.mean, t.median, t.max
        );
    }
    let removed: Vec<String> = summary
        .removed
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if !removed.is_empty() {
        println!("removed: {}", removed.join(", "));
    }
    for f in summary.files.iter().skip(1) {
        println!("wrote {}", f.display());
    }
    Ok(())
}
