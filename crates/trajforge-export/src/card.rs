//! What goes beside the data: a dataset card (README.md), an axolotl config carrying
//! SPEC.md's SFT recipe, and LLaMA-Factory's `dataset_info.json` for ShareGPT exports.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};
use trajforge_store::Store;

use crate::error::ExportError;
use crate::select::{FILTER_ORDER, Key, Plan};
use crate::write::write_text;
use crate::{Format, Options, Result, Summary, companion_dir};

/// Token figures over the rows written.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenStats {
    /// Tokens in all rows.
    pub total: u64,
    /// Smallest row.
    pub min: u64,
    /// Mean per row.
    pub mean: f64,
    /// Median row.
    pub median: u64,
    /// 95th percentile.
    pub p95: u64,
    /// Largest row.
    pub max: u64,
}

fn stats(mut v: Vec<u64>) -> Option<TokenStats> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let total: u64 = v.iter().sum();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some(TokenStats {
        total,
        min: v[0],
        mean: total as f64 / v.len() as f64,
        median: at(0.5),
        p95: at(0.95),
        max: v[v.len() - 1],
    })
}

/// Figures of the export from the first pass's keys and the plan.
pub fn summarize(store: &Store, keys: &[Key], plan: &Plan, opts: &Options<'_>) -> Result<Summary> {
    let mut s = Summary {
        trajectories: store.trajectory_count()?,
        recall_histogram: vec![0; 10],
        ..Summary::default()
    };
    let mut tokens = Vec::new();
    let mut starts = std::collections::BTreeSet::new();
    for k in keys.iter().filter(|k| plan.selected.contains_key(&k.id)) {
        if let Some((intent, start)) = &k.web {
            *s.intents.entry(intent.clone()).or_default() += 1;
            starts.insert(start.clone());
        }
        s.written += 1;
        *s.by_rollout.entry(k.rollout.clone()).or_default() += 1;
        *s.teachers.entry(k.teacher.clone()).or_default() += 1;
        if let Some(m) = &k.menu_entry {
            *s.menu_entries.entry(m.clone()).or_default() += 1;
        }
        if let Some(m) = k.measure {
            tokens.push(m.tokens as u64);
            if m.keep < m.messages {
                s.truncated += 1;
            }
        }
        if k.rollout == "t2"
            && let Some(r) = k.recall
        {
            s.recall_histogram[((r * 10.0).floor() as usize).min(9)] += 1;
        }
    }
    s.tokens = stats(tokens);
    s.start_pages = starts.len() as u64;
    s.notes = crate::select::notes(keys, &opts.filters, s.written);
    s.removed = FILTER_ORDER
        .iter()
        .map(|n| (n.to_string(), plan.removed.get(n).copied().unwrap_or(0)))
        .collect();
    s.files.push(opts.out.clone());
    Ok(s)
}

fn file_name(opts: &Options<'_>) -> String {
    opts.out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first line of every card, by which a later export knows the card is its own to replace.
pub const CARD_MARK: &str =
    "<!-- dataset card written by trajforge export; each export into this folder rewrites it -->";
/// The first line of every axolotl config written.
const CONFIG_MARK: &str = "# axolotl config written by trajforge export";
/// The key in a `dataset_info.json` entry that says trajforge wrote it (LLaMA-Factory ignores
/// keys it does not know).
const INFO_MARK: &str = "written_by";

/// The companion files of an export: (path, kind), beside the data file.
fn companions(opts: &Options<'_>) -> Vec<(std::path::PathBuf, Companion)> {
    let dir = companion_dir(&opts.out);
    let mut out = vec![(dir.join("README.md"), Companion::Card)];
    if axolotl_config(opts).is_some() {
        out.push((dir.join("axolotl.yaml"), Companion::Config));
    }
    if opts.format == Format::Sharegpt {
        out.push((dir.join("dataset_info.json"), Companion::Info));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Companion {
    Card,
    Config,
    Info,
}

/// Whether the file at `path` (which exists) was written by trajforge export.
fn ours(path: &std::path::Path, kind: Companion) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match kind {
        // Cards of earlier versions had no mark line but this sentence.
        Companion::Card => {
            text.lines().next() == Some(CARD_MARK)
                || (text.starts_with("---\nconfigs:")
                    && text.contains("\n- trajforge\n")
                    && text.contains("Agent trajectories made by trajforge"))
        }
        Companion::Config => text.starts_with(CONFIG_MARK),
        Companion::Info => {
            serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok_and(|m| {
                !m.is_empty()
                    && m.values().all(|e| {
                        e.get(INFO_MARK).and_then(Value::as_str) == Some("trajforge export")
                            || e.get("formatting") == Some(&json!("sharegpt"))
                                && e.get("tags") == dataset_info_tags().get("tags")
                                && m.len() == 1
                    })
            })
        }
    }
}

/// Refuse before anything is written when a companion file would replace a file that
/// trajforge did not write (the user's own README.md, say).
pub fn check_companions(opts: &Options<'_>) -> Result<()> {
    for (path, kind) in companions(opts) {
        if path.exists() && (path.is_dir() || !ours(&path, kind)) {
            return Err(ExportError::WouldOverwrite { path });
        }
    }
    Ok(())
}

/// Write the card and the trainer files; returns the summary with their paths.
pub fn write_companions(
    opts: &Options<'_>,
    summary: &Summary,
    run: &Value,
    site: Option<&str>,
) -> Result<Summary> {
    let mut summary = summary.clone();
    for (path, kind) in companions(opts) {
        // Checked again just before writing: the folder may have changed during the export.
        if path.exists() && !ours(&path, kind) {
            return Err(ExportError::WouldOverwrite { path });
        }
        let text = match kind {
            Companion::Card => card(opts, &summary, run, site),
            Companion::Config => axolotl_config(opts).unwrap_or_default(),
            Companion::Info => {
                let text = serde_json::to_string_pretty(&dataset_info(opts)).unwrap_or_default();
                format!("{text}\n")
            }
        };
        write_text(&path, &text)?;
        summary.files.push(path);
    }
    Ok(summary)
}

/// The ShareGPT tags of our LLaMA-Factory registration.
fn dataset_info_tags() -> Value {
    json!({"tags": {
        "role_tag": "from", "content_tag": "value", "user_tag": "human",
        "assistant_tag": "gpt", "observation_tag": "observation",
        "function_tag": "function_call", "system_tag": "system",
    }})
}

/// The dataset name LLaMA-Factory and the card use: the data file's stem.
fn dataset_name(opts: &Options<'_>) -> String {
    opts.out
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trajforge".into())
}

/// LLaMA-Factory's dataset registration for a ShareGPT export.
pub fn dataset_info(opts: &Options<'_>) -> Value {
    json!({
        dataset_name(opts): {
            "file_name": file_name(opts),
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": dataset_info_tags()["tags"],
            INFO_MARK: "trajforge export",
        }
    })
}

/// An axolotl config with SPEC.md's SFT recipe (hermes and openai exports).
pub fn axolotl_config(opts: &Options<'_>) -> Option<String> {
    let seq = opts.filters.max_tokens.unwrap_or(32768);
    let dataset = match opts.format {
        Format::Hermes => format!(
            "  - path: ./{}\n    ds_type: {}\n    type: chat_template\n    chat_template: chatml\n    field_messages: messages\n    message_property_mappings:\n      role: role\n      content: content\n    message_field_training: train\n",
            file_name(opts),
            ds_type(opts)
        ),
        Format::Openai => format!(
            "  - path: ./{}\n    ds_type: {}\n    type: chat_template\n    chat_template: tokenizer_default\n    field_messages: messages\n    field_tools: tools\n    roles_to_train: [\"assistant\"]\n",
            file_name(opts),
            ds_type(opts)
        ),
        Format::Sharegpt | Format::Raw => return None,
    };
    Some(format!(
        "{CONFIG_MARK}: SERA's SFT recipe (SPEC.md section 5).\n\
# Global batch 32 = micro_batch_size x gradient_accumulation_steps x GPUs; this file assumes\n\
# 1 GPU: divide gradient_accumulation_steps by your GPU count.\n\
base_model: {student}\n\
datasets:\n{dataset}\
dataset_prepared_path: ./prepared\n\
output_dir: ./outputs\n\
sequence_len: {seq}\n\
sample_packing: false\n\
pad_to_sequence_len: false\n\
num_epochs: 3\n\
learning_rate: 1.0e-5\n\
lr_scheduler: cosine\n\
warmup_steps: 48\n\
optimizer: adamw_torch_fused\n\
adam_beta1: 0.9\n\
adam_beta2: 0.95\n\
weight_decay: 0.01\n\
bf16: true\n\
micro_batch_size: 1\n\
gradient_accumulation_steps: 32\n\
gradient_checkpointing: true\n\
flash_attention: true\n\
logging_steps: 1\n\
save_strategy: epoch\n",
        student = opts.student,
    ))
}

fn ds_type(opts: &Options<'_>) -> &'static str {
    if opts.out.extension().is_some_and(|e| e == "parquet") {
        "parquet"
    } else {
        "json"
    }
}

/// The dataset card.
pub fn card(opts: &Options<'_>, s: &Summary, run: &Value, site: Option<&str>) -> String {
    let f = &opts.filters;
    let mut out = String::new();
    let _ = writeln!(out, "{CARD_MARK}");
    let _ = writeln!(out, "---");
    let _ = writeln!(
        out,
        "configs:\n- config_name: default\n  data_files: {}",
        file_name(opts)
    );
    let _ = writeln!(
        out,
        "tags:\n- trajforge\n- agent-trajectories\n- soft-verified-generation"
    );
    let _ = writeln!(out, "---\n");
    let _ = writeln!(out, "# {}\n", dataset_name(opts));
    let _ = writeln!(
        out,
        "Agent trajectories made by trajforge with Soft-Verified Generation (SERA, arXiv 2601.20789), \
exported in the `{}` format for fine-tuning `{}`.\n",
        opts.format.as_str(),
        opts.student
    );
    let _ = writeln!(out, "## Provenance\n");
    let text = |k: &str| {
        run.get(k)
            .and_then(Value::as_str)
            .unwrap_or("(not recorded)")
            .to_string()
    };
    let _ = writeln!(out, "- run folder: `{}`", opts.run_dir.display());
    let num = |k: &str| {
        run.get(k)
            .map_or("(not recorded)".to_string(), Value::to_string)
    };
    if let Some(site) = site {
        let _ = writeln!(
            out,
            "- site: `{site}` (snapshot fingerprint `{}`)",
            text("commit")
        );
        let _ = writeln!(
            out,
            "- intent menu fingerprint: `{}`; prompts: `{}`",
            text("menu"),
            text("prompts")
        );
        let _ = writeln!(
            out,
            "- agreement threshold r >= {}; seed {}; step limit {}",
            num("threshold"),
            num("seed"),
            num("max_steps")
        );
        let _ = writeln!(
            out,
            "- {} intents from {} start pages in the rows written",
            s.intents.len(),
            s.start_pages
        );
    } else {
        let _ = writeln!(
            out,
            "- repository: `{}` at commit `{}`",
            text("repo"),
            text("commit")
        );
        let _ = writeln!(
            out,
            "- bug-type menu fingerprint: `{}`; demonstrations: `{}`; prompts: `{}`",
            text("menu"),
            text("demos"),
            text("prompts")
        );
        let _ = writeln!(
            out,
            "- run threshold r >= {}; attempts per function {}; seed {}; step limit {}",
            num("threshold"),
            num("attempts"),
            num("seed"),
            num("max_steps")
        );
    }
    let _ = writeln!(out, "- trajforge {}\n", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "## Teacher\n");
    for (model, n) in &s.teachers {
        let _ = writeln!(out, "- `{model}`: {n} rows");
    }
    if s.teachers.is_empty() {
        let _ = writeln!(out, "- (no rows)");
    }
    let (entries_title, entries, column) = if site.is_some() {
        ("Intents", &s.intents, "intent")
    } else {
        ("Menu entries", &s.menu_entries, "entry")
    };
    let _ = writeln!(out, "\n## {entries_title}\n");
    if entries.is_empty() {
        let _ = writeln!(out, "(none recorded)");
    } else {
        let _ = writeln!(out, "| {column} | rows |\n|---|---|");
        for (m, n) in entries {
            let _ = writeln!(out, "| {m} | {n} |");
        }
    }
    let _ = writeln!(out, "\n## Counts\n");
    let _ = writeln!(out, "- trajectories in the run: {}", s.trajectories);
    let _ = writeln!(out, "- rows written: {}", s.written);
    for (r, n) in &s.by_rollout {
        let _ = writeln!(out, "  - {r}: {n}");
    }
    let _ = writeln!(out, "- rows truncated: {}", s.truncated);
    let _ = writeln!(out, "\n## Filters\n");
    let _ = writeln!(out, "| filter | setting | removed |\n|---|---|---|");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "off".into());
    let setting = |name: &str| -> String {
        match name {
            "rollout" => f.rollouts.join(","),
            "verdict" => match (f.min_recall, site.is_some()) {
                (Some(r), false) => format!("T1 self-check passed; T2 r >= {r}"),
                (None, false) => "the run's verdicts (T1 self-check, T2 r >= run threshold)".into(),
                (Some(r), true) => format!("T2 agreement r >= {r}"),
                (None, true) => "the run's verdicts (rollouts agree: r >= run threshold)".into(),
            },
            "not_submitted" => {
                if f.require_submit {
                    "submit required".into()
                } else {
                    "off".into()
                }
            }
            "patch_lines" => opt(f.max_patch_lines.map(|n| format!("<= {n} changed lines"))),
            "excluded_repo" => {
                if f.exclude_repos.is_empty() {
                    "off".into()
                } else {
                    format!("{} repositories", f.exclude_repos.len())
                }
            }
            "duplicate_patch" => {
                if f.dedup {
                    "identical patches per rollout".into()
                } else {
                    "off".into()
                }
            }
            "tool_tokens" => opt(f
                .max_tool_tokens
                .filter(|_| opts.tokenizer.is_some())
                .map(|n| format!("mean <= {n} tokens per tool response"))),
            "too_long" => opt(f
                .max_tokens
                .filter(|_| opts.tokenizer.is_some())
                .map(|n| format!("{n} tokens, truncated kept down to ratio {}", f.min_ratio))),
            "mix" => {
                if f.mix.is_empty() {
                    "off".into()
                } else {
                    f.mix
                        .iter()
                        .map(|(k, n)| format!("{k}={n}"))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }
            _ => String::new(),
        }
    };
    for (name, n) in &s.removed {
        let _ = writeln!(out, "| {name} | {} | {n} |", setting(name));
    }
    let _ = writeln!(out, "\n## Tokens\n");
    match (&s.tokens, opts.tokenizer) {
        (Some(t), Some(tok)) => {
            let _ = writeln!(
                out,
                "Counted exactly with `{}` and its chat template, on the conversation as that template renders it \
(OpenAI messages and tools when it handles tools, hermes text otherwise), without a generation prompt.\n",
                tok.source
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "| total | min | mean | median | p95 | max |\n|---|---|---|---|---|---|"
            );
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {} | {} | {} |",
                t.total, t.min, t.mean, t.median, t.p95, t.max
            );
        }
        _ => {
            let _ = writeln!(out, "Not counted (no tokenizer).");
        }
    }
    if site.is_some() {
        let _ = writeln!(
            out,
            "\n## Agreement r of the T2 rows\n\nr is the run's agreement score between rollout 1 (from the intent) and rollout 2 (from the visitor's request alone); the README's web section defines it.\n"
        );
    } else {
        let _ = writeln!(out, "\n## Line recall r of the T2 rows\n");
    }
    let _ = writeln!(out, "| r | rows |\n|---|---|");
    for (i, n) in s.recall_histogram.iter().enumerate() {
        let hi = if i == 9 {
            "1.0]".to_string()
        } else {
            format!("{:.1})", (i + 1) as f64 / 10.0)
        };
        let _ = writeln!(out, "| [{:.1}, {hi} | {n} |", i as f64 / 10.0);
    }
    let _ = writeln!(out, "\n## Format\n");
    let _ = writeln!(
        out,
        "{}",
        match opts.format {
            Format::Hermes =>
                "Qwen hermes: `messages` of `{role, content, train}`; tool schemas in the system prompt, calls as `<tool_call>` blocks, results as `<tool_response>` user turns; `train` is true on assistant turns only. Train with `axolotl.yaml`.",
            Format::Openai =>
                "OpenAI messages (`tool_calls` with `arguments` as the JSON text the model wrote, `role: tool` results named after their tool) with the `tools` list per row, ready for `apply_chat_template(messages, tools=tools)` (TRL `SFTTrainer`; in Parquet each tool and each call's `arguments` is an Arrow JSON value, which `datasets` loads as the nested dicts themselves, keys in the model's order). Train with `axolotl.yaml` or TRL.",
            Format::Sharegpt =>
                "ShareGPT conversations (human / gpt / function_call / observation, alternating, ending on a model turn) with `system` and `tools` (JSON text, as LLaMA-Factory reads it); register with `dataset_info.json` in LLaMA-Factory.",
            Format::Raw =>
                "Every field the store holds: verdicts, stages, patch, the whole trajectory with steps, timings and usage (in Parquet the nested parts are JSON text).",
        }
    );
    let _ = writeln!(
        out,
        "\nEvery assistant turn keeps its reasoning in one `<think>` block. Each row also has `id`, `rollout`, `recall`, `function`, `menu_entry`, `teacher`, `tokens` and `truncation_ratio` (kept messages / all messages){}.",
        if site.is_some() {
            "; rows of this web run also have `site`, `intent`, `start_url` and `final_url`"
        } else {
            ""
        }
    );
    if s.merged_turns {
        let _ = writeln!(
            out,
            "\nConsecutive user turns were merged into one (the student's chat template demands alternating roles)."
        );
    }
    if s.trailing_dropped > 0 {
        let _ = writeln!(
            out,
            "\n{} rows ended on an observation; the turns after their last model turn were left out (LLaMA-Factory drops rows that do not end on a model turn).",
            s.trailing_dropped
        );
    }
    out
}
