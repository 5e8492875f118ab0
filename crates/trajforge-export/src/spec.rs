//! An export as asked for on the command line ([`ExportSpec`]): its options checked and
//! turned into [`Filters`], the tokenizer chosen (the default model's when token limits need
//! one), SERA's defaults applied by kind of run, then [`crate::export`] run; and the summary
//! as text.

use std::path::{Path, PathBuf};

use trajforge_store::Store;

use crate::select::{Filters, normalize_repo, parse_mix};
use crate::{Container, ExportError, Format, Options, StudentTokenizer, Summary};

/// Whether consecutive user turns are merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeTurns {
    /// When the tokenizer's chat template refuses two user turns in a row (Gemma, Mistral).
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// SERA's filter on the mean tokens of a tool response, for code runs.
pub const DEFAULT_MAX_TOOL_TOKENS: usize = 600;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// The run folder (for the card).
    pub run_dir: PathBuf,
    /// Output format.
    pub format: Format,
    /// The data file (`.jsonl` or `.parquet`).
    pub out: PathBuf,
    /// Rollouts, comma-separated (`t1,t2`).
    pub rollouts: String,
    /// Keep T2 with r >= this instead of the run's verdict.
    pub min_recall: Option<f64>,
    /// Only trajectories that ended with a submit.
    pub require_submit: bool,
    /// Most changed lines per patch (0: off).
    pub max_patch_lines: usize,
    /// Most mean tokens per tool response (0: off; none: SERA's 600 for code runs, off for web runs).
    pub max_tool_tokens: Option<usize>,
    /// Samples per rollout, e.g. `t2=3000,t1=5000`.
    pub mix: Option<String>,
    /// One of byte-identical patches per rollout.
    pub dedup: bool,
    /// A file of repositories to leave out.
    pub exclude_repos: Option<PathBuf>,
    /// The student's tokenizer (none: the default model's GGUF when limits need one).
    pub tokenizer: Option<PathBuf>,
    /// Token limit per sample (0: off).
    pub max_tokens: usize,
    /// Keep truncated samples down to this ratio.
    pub min_ratio: f64,
    /// Student model named in axolotl.yaml.
    pub student: String,
    /// Counting threads (none: all cores).
    pub threads: Option<usize>,
    /// Merging of consecutive user turns.
    pub merge_turns: MergeTurns,
    /// Replace the data file `out` when it exists (otherwise the export refuses).
    pub replace: bool,
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The output's name says no container.
    #[error("--out {}: the file name must end in .jsonl or .parquet", .0.display())]
    Out(PathBuf),
    /// `--rollouts` names something else than t1 and t2.
    #[error("--rollouts {0:?}: list t1 and/or t2")]
    Rollouts(String),
    /// A ratio outside 0..1.
    #[error("{name} {value}: must be between 0 and 1")]
    Range {
        /// The option.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// `--mix` is malformed.
    #[error("--mix: {0}")]
    Mix(#[from] crate::select::MixError),
    /// The exclusion file cannot be read.
    #[error("{}: {source}", path.display())]
    ExcludeFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Token limits are on and no tokenizer is at hand.
    #[error("token limits need a tokenizer and none was given (the default model {} is not installed)", .0.display())]
    NoTokenizer(PathBuf),
    /// The tokenizer cannot be loaded.
    #[error(transparent)]
    Tokenizer(ExportError),
    /// The export failed (nothing was written).
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl ExportSpec {
    /// Check the options; the selection they ask for (SERA's tool-token default included).
    pub fn check(&self) -> Result<Filters, SpecError> {
        if Container::from_path(&self.out).is_none() {
            return Err(SpecError::Out(self.out.clone()));
        }
        let rollouts: Vec<String> = self
            .rollouts
            .split(',')
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        if rollouts.is_empty() || rollouts.iter().any(|r| r != "t1" && r != "t2") {
            return Err(SpecError::Rollouts(self.rollouts.clone()));
        }
        for (name, v) in [
            ("--min-recall", self.min_recall),
            ("--min-ratio", Some(self.min_ratio)),
        ] {
            if let Some(value) = v
                && !(0.0..=1.0).contains(&value)
            {
                return Err(SpecError::Range { name, value });
            }
        }
        let mix = match &self.mix {
            Some(spec) => parse_mix(spec).map_err(SpecError::Mix)?,
            None => Vec::new(),
        };
        let exclude_repos = match &self.exclude_repos {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| SpecError::ExcludeFile {
                    path: path.clone(),
                    source,
                })?
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
            min_recall: self.min_recall,
            require_submit: self.require_submit,
            max_patch_lines: nonzero(self.max_patch_lines),
            max_tool_tokens: nonzero(self.max_tool_tokens.unwrap_or(DEFAULT_MAX_TOOL_TOKENS))
                .map(|n| n as f64),
            mix,
            dedup: self.dedup,
            exclude_repos,
            max_tokens: nonzero(self.max_tokens),
            min_ratio: self.min_ratio,
        })
    }

    /// Check the options, pick the tokenizer and export `store`; `on_default_tokenizer` hears
    /// of the default model's tokenizer being used.
    pub fn run(
        &self,
        store: &Store,
        on_default_tokenizer: &mut dyn FnMut(&Path),
    ) -> Result<Summary, SpecError> {
        let mut filters = self.check()?;
        // A web run (written by `web generate`) keeps its snapshots unless a limit is asked for.
        if store.meta("site").map_err(ExportError::from)?.is_some()
            && self.max_tool_tokens.is_none()
        {
            filters.max_tool_tokens = None;
        }
        let needs_tokens = filters.max_tokens.is_some() || filters.max_tool_tokens.is_some();
        let tokenizer_path = match &self.tokenizer {
            Some(p) => Some(p.clone()),
            None if needs_tokens => {
                let p = trajforge_gguf::default_model_path();
                if !p.is_file() {
                    return Err(SpecError::NoTokenizer(p));
                }
                on_default_tokenizer(&p);
                Some(p)
            }
            None => None,
        };
        let tokenizer = match &tokenizer_path {
            Some(p) => Some(StudentTokenizer::load(p).map_err(SpecError::Tokenizer)?),
            None => None,
        };
        if tokenizer.is_none() {
            filters.max_tokens = None;
            filters.max_tool_tokens = None;
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let merge_turns = match self.merge_turns {
            MergeTurns::On => true,
            MergeTurns::Off => false,
            MergeTurns::Auto => tokenizer
                .as_ref()
                .is_some_and(|t| t.template().requires_alternation()),
        };
        let opts = Options {
            format: self.format,
            out: self.out.clone(),
            filters,
            tokenizer: tokenizer.as_ref(),
            student: self.student.clone(),
            run_dir: self.run_dir.clone(),
            threads,
            merge_turns,
            replace: self.replace,
        };
        Ok(crate::export(store, &opts)?)
    }
}

impl Summary {
    /// The summary as text, for the data file `out` in `format`, made in `seconds`.
    pub fn render(&self, out: &Path, format: Format, seconds: f64) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{} of {} trajectories written to {} ({} format, {seconds:.1}s)",
            self.written,
            self.trajectories,
            out.display(),
            format.as_str(),
        );
        for (rollout, n) in &self.by_rollout {
            let _ = writeln!(text, "  {rollout}: {n}");
        }
        if self.truncated > 0 {
            let _ = writeln!(text, "  truncated: {}", self.truncated);
        }
        if let Some(t) = &self.tokens {
            let _ = writeln!(
                text,
                "tokens: {} total, mean {:.0}, median {}, max {}",
                t.total, t.mean, t.median, t.max
            );
        }
        let removed: Vec<String> = self
            .removed
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if !removed.is_empty() {
            let _ = writeln!(text, "removed: {}", removed.join(", "));
        }
        for n in &self.notes {
            let _ = writeln!(
                text,
                "  {} removed {}: {}; to keep them: {}",
                n.filter, n.removed, n.found, n.keep_with
            );
        }
        if self.trailing_dropped > 0 {
            let _ = writeln!(
                text,
                "{} rows ended on an observation: the turns after their last model turn were left out",
                self.trailing_dropped
            );
        }
        if self.merged_turns {
            let _ = writeln!(
                text,
                "consecutive user turns merged (the chat template demands alternating roles)"
            );
        }
        for f in self.files.iter().skip(1) {
            let _ = writeln!(text, "wrote {}", f.display());
        }
        text
    }
}
