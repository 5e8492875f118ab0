//! `trajforge export`: a run's trajectories as training data for a student model.

use std::path::PathBuf;
use std::time::Instant;

use trajforge_export::{ExportSpec, Format, MergeTurns};
use trajforge_pipeline::prepare;

use crate::args::StoreArgs;
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

/// When to merge consecutive user turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeArg {
    /// When the tokenizer's chat template refuses two user turns in a row (Gemma, Mistral).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// Options of `trajforge export`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Defaults follow SERA: the run's verdicts, submitted trajectories only, at most 40 changed \
lines per patch, at most 600 tokens per tool response on average, identical patches once, 32,768 tokens per \
sample with too-long samples cut after the last assistant turn that fits and kept down to a ratio of 0.88. \
Set a limit to 0 (or a switch to false) to turn that filter off. Token counts are exact for --tokenizer \
[default: the installed default model's GGUF]. The data is written to a temporary file and renamed; \
an existing data file is replaced only with --force (otherwise exit code 2, nothing written); \
README.md (dataset card), axolotl.yaml and, for sharegpt, dataset_info.json are written beside it. \
Those never replace a file trajforge did not write: if one is in the way the export stops before \
writing anything (exit code 2); export into a folder of its own, e.g. --out my-dataset/data.jsonl."
)]
pub struct Args {
    /// The run folder given to `generate --out` (or `import`), or --store URL --run NAME.
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
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
    /// Merge consecutive user turns (e.g. a demonstration turn and the task) into one, for
    /// chat templates that demand alternating roles; auto: when the template of --tokenizer refuses two user turns in a row.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub merge_turns: MergeArg,
    /// Replace the data file --out when it exists (without it the export refuses, exit code 2).
    /// Companion files trajforge did not write are never replaced.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `trajforge export`.
pub fn run(args: Args) -> Result<(), CliError> {
    let format = match args.format {
        FormatArg::Hermes => Format::Hermes,
        FormatArg::Openai => Format::Openai,
        FormatArg::Sharegpt => Format::Sharegpt,
        FormatArg::Raw => Format::Raw,
    };
    let location = args.store.required(args.run_dir.as_deref())?;
    let spec = ExportSpec {
        run_dir: PathBuf::from(location.to_string()),
        format,
        out: args.out.clone(),
        rollouts: args.rollouts,
        min_recall: args.min_recall,
        require_submit: args.require_submit,
        max_patch_lines: args.max_patch_lines,
        max_tool_tokens: args.max_tool_tokens,
        mix: args.mix,
        dedup: args.dedup,
        exclude_repos: args.exclude_repos,
        tokenizer: args.tokenizer,
        max_tokens: args.max_tokens,
        min_ratio: args.min_ratio,
        student: args.student,
        threads: args.threads,
        merge_turns: match args.merge_turns {
            MergeArg::Auto => MergeTurns::Auto,
            MergeArg::On => MergeTurns::On,
            MergeArg::Off => MergeTurns::Off,
        },
        replace: args.force,
    };
    // Options are checked before the run folder is opened.
    spec.check()?;
    let store = prepare::open_existing_at(&location)?;
    let started = Instant::now();
    let summary = spec.run(&store, &mut |p| {
        stderr_line!("counting tokens with {}", p.display());
    })?;
    if args.json {
        crate::error::print_json(&summary)
    } else {
        crate::error::print(&summary.render(&args.out, format, started.elapsed().as_secs_f64()))
    }
}
