//! `trajforge-bench export`: `trajforge export` of N trajectories with exact token counts and
//! truncation (Qwen3's tokenizer and chat template), against the same work done in Python with
//! `tokenizers` and `jinja2` (scripts/hf_export_reference.py) on the same store, in the same
//! run. Also exports a quarter of the trajectories, to show peak memory does not grow with N.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use trajforge_agent::Trajectory;
use trajforge_store::model::{CodeRollout, RolloutStage};
use trajforge_store::{ExitLabel, Outcome, Rollout, Stage, Store, TrajectoryRecord};
use trajforge_teacher::{ChatMessage, TeacherInfo, ToolCall, ToolMode, ToolSpec};

use crate::{Measured, cores, run_child, sibling_binary, verdict};

/// Options of the export benchmark.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The Qwen3 tokenizer folder (tokenizer.json + tokenizer_config.json; scripts/fetch-test-data.sh).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Trajectories in the store.
    #[arg(long, default_value_t = 10_000)]
    pub trajectories: usize,
    /// Token limit per sample (the synthetic episodes are sized so a share is truncated).
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Ratio down to which truncated samples are kept.
    #[arg(long, default_value_t = 0.5)]
    pub min_ratio: f64,
    /// The Python interpreter with tokenizers and jinja2 [default: .cache/py/bin/python];
    /// `none` times trajforge alone.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The trajforge binary [default: next to this one].
    #[arg(long)]
    pub trajforge: Option<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a bash command in the repository.".into(),
            parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
        },
        ToolSpec {
            name: "str_replace_editor".into(),
            description: "View, create and edit files.".into(),
            parameters: json!({"type": "object", "properties": {"command": {"type": "string"}, "path": {"type": "string"}}, "required": ["command", "path"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the change.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// Real source text from this checkout, as tool observations.
fn corpus() -> Result<Vec<String>, String> {
    let mut texts = Vec::new();
    let crates = root().join("crates");
    let dirs = std::fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))?;
    for d in dirs.flatten() {
        if let Ok(files) = std::fs::read_dir(d.path().join("src")) {
            for f in files.flatten() {
                if let Ok(text) = std::fs::read_to_string(f.path()) {
                    texts.push(text);
                }
            }
        }
    }
    if texts.is_empty() {
        return Err("no source files found for the synthetic corpus".into());
    }
    Ok(texts)
}

/// Episode `i`: 2..13 steps, observations of 200..2,200 characters, reasoning on most turns.
fn trajectory(i: usize, corpus: &[String]) -> Trajectory {
    let mut messages = vec![
        ChatMessage::system("You are a careful software engineer. Work in /workspace."),
        ChatMessage::user(format!(
            "There may be a problem in `f{i}` (in `pkg/mod{}.py`). Investigate and fix it with a minimal change.",
            i % 97
        )),
    ];
    let steps = 2 + (i * 7919) % 12;
    for s in 0..steps {
        // Mixed, not linear, in (i, s): observations must not come back every few thousand
        // episodes, or the counting caches would meet them again and flatter the figures.
        let pick = |salt: u64, modulo: usize| {
            (mix(((i as u64) << 20) ^ ((s as u64) << 4) ^ salt) % modulo as u64) as usize
        };
        let text = &corpus[pick(1, corpus.len())];
        let start = text.char_indices().nth(pick(2, 500)).map_or(0, |(b, _)| b);
        let len = 200 + pick(3, 2000);
        let end = text[start..]
            .char_indices()
            .nth(len)
            .map_or(text.len(), |(b, _)| start + b);
        let call = ToolCall::new(
            format!("call_{i}_{s}"),
            "bash",
            json!({"command": format!("sed -n '{},{}p' pkg/mod{}.py", s * 10, s * 10 + 40, i % 97)}).to_string(),
        );
        let mut a = ChatMessage::assistant(
            (s % 2 == 0).then(|| format!("Looking at part {s}.")),
            vec![call.clone()],
        );
        if !(i + s).is_multiple_of(4) {
            a.reasoning = Some(format!(
                "Step {s}: the function f{i} may mishandle its input; read the next part before editing."
            ));
        }
        messages.push(a);
        messages.push(ChatMessage::tool_result(&call, &text[start..end]));
    }
    let submit = ToolCall::new(format!("call_{i}_end"), "submit", "{}");
    messages.push(ChatMessage::assistant(None, vec![submit.clone()]));
    messages.push(ChatMessage::tool_result(&submit, "Submitted."));
    messages.push(ChatMessage::assistant(Some("Done.".into()), vec![]));
    let teacher = TeacherInfo {
        base_url: "http://127.0.0.1:8000/v1".into(),
        model: "bench-teacher".into(),
        mode: ToolMode::Native,
    };
    Trajectory::conversation(teacher, "bench", tools(), messages, Some(patch(i)))
}

/// A well-spread 64-bit value from any input: one SplitMix64 step from state `x`.
fn mix(x: u64) -> u64 {
    trajforge_hash::SplitMix64::new(x).next_u64()
}

fn patch(i: usize) -> String {
    format!(
        "diff --git a/pkg/mod{m}.py b/pkg/mod{m}.py\n--- a/pkg/mod{m}.py\n+++ b/pkg/mod{m}.py\n@@ -1 +1 @@\n-def f{i}(x): return x\n+def f{i}(x): return x or 0\n",
        m = i % 97
    )
}

/// A run store with `n` kept, submitted T1 trajectories (written through the store's own API).
fn build_store(dir: &Path, n: usize, corpus: &[String]) -> Result<(), String> {
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    let jobs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            (
                format!("pkg/mod{}.py::f{i}@1", i % 97),
                json!({"name": format!("f{i}"), "path": format!("pkg/mod{}.py", i % 97)}),
            )
        })
        .collect();
    store.add_jobs(&jobs).map_err(|e| e.to_string())?;
    let owner = "bench";
    while let Some(job) = store
        .claim(owner, Duration::from_secs(600))
        .map_err(|e| e.to_string())?
    {
        let i = job.id as usize;
        let t = trajectory(i, corpus);
        let rec = TrajectoryRecord {
            rollout: Rollout::T1,
            exit_status: ExitLabel::Submitted,
            patch: t.outcome.patch.clone(),
            data: serde_json::to_value(&t).map_err(|e| e.to_string())?,
        };
        let stage = Stage::Rollout1(RolloutStage::Code(CodeRollout {
            bug: Some("generic".into()),
            bug_index: Some(0),
            task: String::new(),
            exit: ExitLabel::Submitted,
            patch: t.outcome.patch.clone(),
            patch_cut: None,
            steps: t.steps.len(),
        }));
        store
            .record_stage(owner, job.id, 1, &stage, Some(&rec), None)
            .map_err(|e| e.to_string())?;
        store
            .set_verdict(owner, job.id, 1, &Rollout::T1, true, None)
            .map_err(|e| e.to_string())?;
        store
            .finish(owner, job.id, &Outcome::Kept)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// id -> tokens of an export's rows.
fn tokens_by_id(path: &Path) -> Result<HashMap<String, u64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
            Ok((
                v["id"].as_str().unwrap_or_default().to_string(),
                v["tokens"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

fn ours(trajforge: &Path, run: &Path, out: &Path, args: &ExportArgs) -> Result<Measured, String> {
    let a = |s: &str| s.to_string();
    run_child(
        trajforge,
        &[
            a("export"),
            run.display().to_string(),
            a("--format"),
            a("openai"),
            a("--out"),
            out.display().to_string(),
            a("--tokenizer"),
            args.tokenizer.join("tokenizer.json").display().to_string(),
            a("--max-tokens"),
            args.max_tokens.to_string(),
            a("--min-ratio"),
            args.min_ratio.to_string(),
            // The reference computes the tool-response means too but filters on nothing else.
            a("--max-tool-tokens"),
            a("1000000000"),
        ],
    )
}

/// Run the benchmark and print the figures.
pub fn run(args: ExportArgs) -> Result<(), String> {
    let trajforge = match &args.trajforge {
        Some(p) => p.clone(),
        None => sibling_binary("trajforge")?,
    };
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| root().join(".cache/py/bin/python"));
    if !args.tokenizer.join("tokenizer.json").is_file() {
        return Err(format!(
            "{}: no tokenizer.json (scripts/fetch-test-data.sh fetches Qwen3's)",
            args.tokenizer.display()
        ));
    }
    let corpus = corpus()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let n = args.trajectories.max(4);
    let small = n / 4;
    eprintln!("building stores of {n} and {small} trajectories ...");
    let big_run = tmp.path().join("run");
    let small_run = tmp.path().join("run-small");
    build_store(&big_run, n, &corpus)?;
    build_store(&small_run, small, &corpus)?;

    let ours_out = tmp.path().join("ours.jsonl");
    let small_out = tmp.path().join("ours-small.jsonl");
    let py_out = tmp.path().join("python.jsonl");
    eprintln!("trajforge export ...");
    let rust = ours(&trajforge, &big_run, &ours_out, &args)?;
    let rust_small = ours(&trajforge, &small_run, &small_out, &args)?;
    if python.as_os_str() == "none" {
        println!(
            "trajforge export of {n}:  {:.2} s wall  {:.2} s CPU  {:.1} MB peak RSS (no Python reference: --python none)",
            rust.wall.as_secs_f64(),
            rust.cpu.as_secs_f64(),
            rust.max_rss_kb as f64 / 1024.0
        );
        return Ok(());
    }
    eprintln!("Python reference ...");
    let py = run_child(
        &python,
        &[
            root()
                .join("scripts/hf_export_reference.py")
                .display()
                .to_string(),
            "store".into(),
            args.tokenizer.display().to_string(),
            big_run.join("trajforge.db").display().to_string(),
            args.max_tokens.to_string(),
            args.min_ratio.to_string(),
            py_out.display().to_string(),
        ],
    )?;

    let a = tokens_by_id(&ours_out)?;
    let b = tokens_by_id(&py_out)?;
    let same = a == b;
    let truncated = std::fs::read_to_string(&ours_out)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("\"truncation_ratio\":1.0"))
        .count();
    let total_tokens: u64 = a.values().sum();
    let ratio = py.wall.as_secs_f64() / rust.wall.as_secs_f64().max(1e-9);
    let mem_growth = rust.max_rss_kb as f64 / rust_small.max_rss_kb.max(1) as f64;
    println!(
        "export of {n} trajectories (openai format, Qwen3 tokenizer + chat template, max {} tokens, {} cores)",
        args.max_tokens,
        cores()
    );
    println!(
        "rows written:            trajforge {}  python {}  (truncated {truncated}; {total_tokens} tokens kept)",
        a.len(),
        b.len()
    );
    println!(
        "identical token counts:  {}",
        if same { "yes, every row" } else { "NO" }
    );
    println!(
        "trajforge export:        {:>8.2} s wall  {:>8.2} s CPU  {:>7.1} MB peak RSS",
        rust.wall.as_secs_f64(),
        rust.cpu.as_secs_f64(),
        rust.max_rss_kb as f64 / 1024.0
    );
    println!(
        "python tokenizers+jinja2:{:>8.2} s wall  {:>8.2} s CPU  {:>7.1} MB peak RSS",
        py.wall.as_secs_f64(),
        py.cpu.as_secs_f64(),
        py.max_rss_kb as f64 / 1024.0
    );
    println!(
        "speed ratio:             {ratio:.1}x faster (target >= 5x: {})",
        verdict(ratio >= 5.0)
    );
    println!(
        "CPU ratio:               {:.1}x less CPU",
        py.cpu.as_secs_f64() / rust.cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "memory, {small} vs {n} trajectories: {:.1} MB vs {:.1} MB ({mem_growth:.2}x for 4x the data; target flat: {})",
        rust_small.max_rss_kb as f64 / 1024.0,
        rust.max_rss_kb as f64 / 1024.0,
        verdict(mem_growth < 1.5)
    );
    if !same {
        return Err("token counts differ between trajforge and the Python reference".into());
    }
    Ok(())
}
