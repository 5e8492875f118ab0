//! Turn a run's trajectories into training data (SPEC.md section 5): select them with the
//! filters SERA used, render them in a student's chat format (Qwen hermes for axolotl,
//! OpenAI messages for TRL, ShareGPT for LLaMA-Factory, or everything raw), count tokens
//! exactly with the student's tokenizer and chat template (rendered by `trajforge-chat`, as
//! the embedded teacher renders its prompts), truncate too-long ones after the
//! last assistant turn that fits, and write JSONL or Parquet next to a dataset card and a
//! trainer config.
//!
//! Two streaming passes over the store keep memory flat: the first computes a small key per
//! trajectory (verdicts, patch hash, token figures), the selection runs on the keys, and the
//! second pass renders and writes the selected rows. [`spec::ExportSpec`] is an export as
//! the command line asks for it: options checked, the tokenizer chosen, defaults by kind of run.

pub mod card;
pub mod convert;
mod error;
pub mod select;
pub mod source;
pub mod spec;
pub mod tokens;
pub mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;
use serde_json::{Value, json};
use trajforge_store::{ExitLabel, Rollout, Store, TrajectoryRow};

pub use error::{ExportError, Result};
pub use select::{Filters, Key, Plan};
pub use source::Sample;
pub use spec::{ExportSpec, MergeTurns, SpecError};
pub use tokens::{Measure, StudentTokenizer};
pub use write::{Container, RowWriter};

/// Training formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Qwen hermes text with per-message `train` flags (axolotl `chat_template`).
    Hermes,
    /// OpenAI messages with `tool_calls` and a `tools` list (TRL `SFTTrainer`).
    Openai,
    /// ShareGPT conversations plus `dataset_info.json` (LLaMA-Factory).
    Sharegpt,
    /// Everything the store holds.
    Raw,
}

impl Format {
    /// Parse a format name.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "hermes" => Format::Hermes,
            "openai" => Format::Openai,
            "sharegpt" => Format::Sharegpt,
            "raw" => Format::Raw,
            _ => return None,
        })
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Hermes => "hermes",
            Format::Openai => "openai",
            Format::Sharegpt => "sharegpt",
            Format::Raw => "raw",
        }
    }
}

/// What to export and how.
#[derive(Debug)]
pub struct Options<'a> {
    /// The output format.
    pub format: Format,
    /// The data file (`.jsonl` or `.parquet`).
    pub out: PathBuf,
    /// Selection.
    pub filters: Filters,
    /// Tokenizer for token counts and truncation (none: no token filters).
    pub tokenizer: Option<&'a StudentTokenizer>,
    /// Student model named in the trainer config.
    pub student: String,
    /// The run folder, for the card.
    pub run_dir: PathBuf,
    /// Worker threads of the counting pass.
    pub threads: usize,
    /// Merge consecutive user turns (for chat templates that demand alternating roles).
    pub merge_turns: bool,
    /// Replace the data file when it exists (the user asked to); otherwise refuse.
    pub replace: bool,
}

/// Figures of a finished export.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Trajectories in the store.
    pub trajectories: u64,
    /// Rows written.
    pub written: u64,
    /// Rows written per rollout.
    pub by_rollout: BTreeMap<String, u64>,
    /// Removed per filter, in filter order.
    pub removed: Vec<(String, u64)>,
    /// Rows written truncated.
    pub truncated: u64,
    /// Token figures of the rows written (kept part).
    pub tokens: Option<card::TokenStats>,
    /// Histogram of r over written T2 rows: 10 buckets of 0.1.
    pub recall_histogram: Vec<u64>,
    /// Rows per teacher model.
    pub teachers: BTreeMap<String, u64>,
    /// Rows per menu entry.
    pub menu_entries: BTreeMap<String, u64>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// ShareGPT rows that had turns after their last model turn left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_dropped: u64,
    /// Whether consecutive user turns were merged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub merged_turns: bool,
    /// Rows per intent (web runs).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub intents: BTreeMap<String, u64>,
    /// Distinct start pages of the rows written (web runs).
    #[serde(skip_serializing_if = "is_zero")]
    pub start_pages: u64,
    /// Why the filters that removed most rows removed them, and how to keep those rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<select::FilterNote>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The run's settings as stored by `generate` (`null` for imports without them).
pub fn run_settings(store: &Store) -> Result<Value> {
    Ok(store
        .meta("settings")?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null))
}

/// Per-sample filters that need no tokens, in order; the first that removes it.
fn cheap_filters(s: &Sample, f: &Filters, run_repo: Option<&str>) -> Option<&'static str> {
    let m = &s.meta;
    if !f.rollouts.iter().any(|r| m.rollout == r.as_str()) {
        return Some("rollout");
    }
    let verdict_ok = match (&m.rollout, f.min_recall) {
        (Rollout::T2, Some(min)) => m.recall.is_some_and(|r| r >= min),
        _ => m.kept,
    };
    if !verdict_ok {
        return Some("verdict");
    }
    if f.require_submit && m.exit_status != ExitLabel::Submitted {
        return Some("not_submitted");
    }
    if let Some(max) = f.max_patch_lines {
        let lines = patch_lines(m.patch.as_deref());
        if lines.is_none_or(|n| n > max) {
            return Some("patch_lines");
        }
    }
    if !f.exclude_repos.is_empty()
        && let Some(repo) = s.repository(run_repo)
        && select::excluded(&repo, &f.exclude_repos)
    {
        return Some("excluded_repo");
    }
    None
}

/// Changed lines of a patch (`None` when it does not parse).
pub fn patch_lines(patch: Option<&str>) -> Option<usize> {
    match patch {
        None => Some(0),
        Some(p) if p.trim().is_empty() => Some(0),
        Some(p) => trajforge_patch::parse(p)
            .ok()
            .map(|p| trajforge_patch::changed_line_count(&p)),
    }
}

/// The first pass's key of one row.
fn key_of(row: TrajectoryRow, cx: &PassContext<'_>) -> Result<Key> {
    let (f, tokenizer) = (cx.filters, cx.tokenizer);
    let mut s = Sample::from_row(row, false)?;
    convert::prepare(&mut s.trajectory, cx.merge_turns);
    let removed = cheap_filters(&s, f, cx.run_repo);
    let measure = match (removed, tokenizer) {
        (None, Some(tok)) => {
            Some(
                tok.measure(&s.trajectory, f.max_tokens)
                    .map_err(|e| ExportError::Record {
                        id: s.meta.id,
                        message: e.to_string(),
                    })?,
            )
        }
        _ => None,
    };
    Ok(Key {
        id: s.meta.id,
        rollout: s.meta.rollout.to_string(),
        removed,
        patch_hash: s
            .meta
            .patch
            .as_deref()
            .map(|p| xxhash_rust::xxh3::xxh3_64(p.as_bytes())),
        measure,
        recall: s.meta.recall,
        menu_entry: s
            .menu_entry()
            .and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_string)),
        teacher: s.trajectory.teacher.model.clone(),
        patch_lines: patch_lines(s.meta.patch.as_deref()),
        web: s.web_task(cx.site).map(|w| (w.intent, w.start_url)),
    })
}

/// What the first pass needs besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct PassContext<'a> {
    /// Selection.
    pub filters: &'a Filters,
    /// Tokenizer for token figures (none: no token filters).
    pub tokenizer: Option<&'a StudentTokenizer>,
    /// The run's repository, for the exclusion list.
    pub run_repo: Option<&'a str>,
    /// The site of a web run.
    pub site: Option<&'a str>,
    /// Merge consecutive user turns before counting.
    pub merge_turns: bool,
}

/// First pass: a key per trajectory, counted on `threads` workers while the store streams.
pub fn first_pass(store: &Store, cx: &PassContext<'_>, threads: usize) -> Result<Vec<Key>> {
    let threads = threads.max(1);
    let (row_tx, row_rx) = mpsc::sync_channel::<TrajectoryRow>(threads * 8);
    let row_rx = std::sync::Mutex::new(row_rx);
    let (key_tx, key_rx) = mpsc::channel::<Result<Key>>();
    let mut keys = Vec::new();
    let mut first_error: Option<ExportError> = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let key_tx = key_tx.clone();
            let row_rx = &row_rx;
            scope.spawn(move || {
                loop {
                    let row = match row_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(row) = row else { return };
                    if key_tx.send(key_of(row, cx)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(key_tx);
        let streamed = store.for_each_trajectory(true, |row| row_tx.send(row).is_ok());
        drop(row_tx);
        for k in key_rx {
            match k {
                Ok(k) => keys.push(k),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = streamed {
            first_error.get_or_insert(e.into());
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(keys),
    }
}

/// Columns every format carries; a web run's rows also say where their task was
/// (`site`, `intent`, `start_url`, `final_url`).
fn meta_columns(s: &Sample, tokens: Option<usize>, ratio: f64, site: Option<&str>) -> Value {
    let mut row = json!({
        "id": s.sample_id(),
        "rollout": s.meta.rollout,
        "recall": s.meta.recall,
        "function": s.function_name(),
        "menu_entry": s.menu_entry(),
        "teacher": s.trajectory.teacher.model,
        "tokens": tokens,
        "truncation_ratio": ratio,
    });
    if let (Some(task), Some(obj)) = (s.web_task(site), row.as_object_mut()) {
        obj.insert("site".into(), task.site.into());
        obj.insert("intent".into(), task.intent.into());
        obj.insert("start_url".into(), task.start_url.into());
        obj.insert("final_url".into(), task.final_url.into());
    }
    row
}

/// The site of a web run (the URL it browsed; `None` for other runs).
pub fn web_site(store: &Store, run: &Value) -> Result<Option<String>> {
    if store.meta("site")?.is_none() {
        return Ok(None);
    }
    Ok(Some(
        run.get("repo")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    ))
}

/// A rendered row and the turns left out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The row.
    pub row: Value,
    /// ShareGPT turns after the last model turn that were left out.
    pub dropped: usize,
}

/// The row of `s` in `format`, keeping its first `keep` messages.
pub fn render_row(
    s: &Sample,
    format: Format,
    keep: usize,
    measure: Option<&Measure>,
    run: &Value,
    site: Option<&str>,
) -> Rendered {
    let keep = keep.min(s.trajectory.messages.len());
    let t = &s.trajectory;
    let ratio = measure.map_or(1.0, Measure::ratio);
    let mut row = meta_columns(s, measure.map(|m| m.tokens), ratio, site);
    let mut dropped = 0;
    let Some(obj) = row.as_object_mut() else {
        return Rendered { row, dropped };
    };
    match format {
        Format::Openai => {
            obj.insert("messages".into(), convert::openai_messages(t, keep).into());
            obj.insert("tools".into(), convert::tools_json(t).into());
        }
        Format::Hermes => {
            obj.insert("messages".into(), convert::hermes_messages(t, keep).into());
        }
        Format::Sharegpt => {
            let share = convert::sharegpt(t, keep);
            dropped = share.dropped;
            obj.insert("conversations".into(), share.conversations.into());
            obj.insert("system".into(), share.system.into());
            obj.insert("tools".into(), share.tools.into());
        }
        Format::Raw => {
            let m = &s.meta;
            obj.insert("job_id".into(), m.job_id.into());
            obj.insert("attempt".into(), m.attempt.into());
            obj.insert("exit_status".into(), m.exit_status.as_str().into());
            obj.insert("kept".into(), m.kept.into());
            obj.insert("patch".into(), m.patch.clone().into());
            obj.insert("patch_lines".into(), patch_lines(m.patch.as_deref()).into());
            obj.insert(
                "tool_tokens_mean".into(),
                measure.map(|m| m.tool_tokens_mean).into(),
            );
            obj.insert(
                "total_tokens".into(),
                measure.map(|m| m.total_tokens).into(),
            );
            obj.insert("job_key".into(), s.job_key.clone().into());
            obj.insert("job".into(), s.function.clone());
            obj.insert("stages".into(), s.stages.clone());
            obj.insert("run".into(), run.clone());
            let mut data = s.data.clone().unwrap_or(Value::Null);
            if keep < t.messages.len()
                && let Some(msgs) = data.get_mut("messages").and_then(Value::as_array_mut)
            {
                msgs.truncate(keep);
            }
            obj.insert("trajectory".into(), data);
        }
    }
    Rendered { row, dropped }
}

/// Run a whole export: both passes, the data file, the card and the trainer config.
pub fn export(store: &Store, opts: &Options<'_>) -> Result<Summary> {
    let container = Container::from_path(&opts.out).ok_or_else(|| {
        ExportError::Options(format!(
            "{}: the output must end in .jsonl or .parquet",
            opts.out.display()
        ))
    })?;
    let run = run_settings(store)?;
    let site = web_site(store, &run)?;
    // Nothing is written when the data file exists (unless the user said to replace it) or a
    // companion file would replace a file trajforge did not write.
    if !opts.replace && std::fs::symlink_metadata(&opts.out).is_ok() {
        return Err(ExportError::DataExists {
            path: opts.out.clone(),
        });
    }
    card::check_companions(opts)?;
    let run_repo = run.get("repo").and_then(Value::as_str).map(str::to_string);
    // Raw rows keep the trajectory as stored, so its message count must stay the stored one.
    let merge = opts.merge_turns && opts.format != Format::Raw;
    let cx = PassContext {
        filters: &opts.filters,
        tokenizer: opts.tokenizer,
        run_repo: run_repo.as_deref(),
        site: site.as_deref(),
        merge_turns: merge,
    };
    let mut keys = first_pass(store, &cx, opts.threads)?;
    let plan = select::plan(&mut keys, &opts.filters);
    let measures: std::collections::HashMap<i64, Measure> = keys
        .iter()
        .filter(|k| plan.selected.contains_key(&k.id))
        .filter_map(|k| k.measure.map(|m| (k.id, m)))
        .collect();

    let mut writer = RowWriter::create(&opts.out, container, opts.format, site.is_some())?;
    let mut failure: Option<ExportError> = None;
    let keep_data = opts.format == Format::Raw;
    let mut trailing_dropped = 0u64;
    store.for_each_trajectory(true, |row| {
        let Some(&keep) = plan.selected.get(&row.meta.id) else {
            return true;
        };
        let result = Sample::from_row(row, keep_data).and_then(|mut s| {
            convert::prepare(&mut s.trajectory, merge);
            let r = render_row(
                &s,
                opts.format,
                keep,
                measures.get(&s.meta.id),
                &run,
                site.as_deref(),
            );
            if r.dropped > 0 {
                trailing_dropped += 1;
            }
            writer.write(r.row)
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    writer.finish()?;

    let mut summary = card::summarize(store, &keys, &plan, opts)?;
    summary.trailing_dropped = trailing_dropped;
    summary.merged_turns = merge;
    card::write_companions(opts, &summary, &run, site.as_deref())
}

/// Where the card and configs of an export go: beside the data file.
pub fn companion_dir(out: &Path) -> PathBuf {
    out.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
