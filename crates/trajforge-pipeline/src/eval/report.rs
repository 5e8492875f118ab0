//! What an evaluation's store adds up to: its score rows, their totals, and the files
//! written beside the store (`results.jsonl`, SWE-bench predictions per seed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use trajforge_eval::{
    JsonlError, Prediction, Summary, TaskKind, TaskResult, summarize, write_jsonl,
};
use trajforge_store::{Stage, Store, StoreError};

use super::{EvalError, SCORE_STAGE, ScoreStage};

/// Every scored job of the store, sorted by task and seed.
pub fn results(store: &Store) -> Result<Vec<ScoreStage>, StoreError> {
    Ok(scored_jobs(store)?.into_iter().map(|(_, s)| s).collect())
}

/// Every scored job of the store with its job id (read one stage at a time), sorted by task
/// and seed.
pub fn scored_jobs(store: &Store) -> Result<Vec<(i64, ScoreStage)>, StoreError> {
    let mut rows: Vec<(i64, ScoreStage)> = Vec::new();
    store.for_each_stage(|s| {
        if let Stage::Other(name, v) = s.stage
            && name == SCORE_STAGE
            && let Ok(score) = serde_json::from_value(v)
        {
            rows.push((s.job_id, score));
        }
        true
    })?;
    rows.sort_by(|(_, a), (_, b)| {
        (&a.result.instance_id, a.result.seed).cmp(&(&b.result.instance_id, b.result.seed))
    });
    Ok(rows)
}

/// The totals of the scored rows, overall and per seed.
pub fn summary(store: &Store) -> Result<Summary, StoreError> {
    let rows: Vec<TaskResult> = results(store)?.into_iter().map(|s| s.result).collect();
    Ok(summarize(&rows))
}

/// The files [`write_outputs`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputsWritten {
    /// `results.jsonl`: one row per task and seed.
    pub results: PathBuf,
    /// `predictions.jsonl` (seed 0), then `predictions-seed<N>.jsonl` per further seed (none
    /// for web tasks, which have no patch).
    pub predictions: Vec<PathBuf>,
    /// Rows written.
    pub rows: usize,
}

/// Write the scored rows into the evaluation folder `dir` (created when the store lives
/// elsewhere): `results.jsonl`, and SWE-bench predictions, one file per seed since an
/// instance id may appear once per file. The store records the folder first, so that a
/// later resume may replace these files.
pub fn write_outputs(store: &Store, dir: &Path) -> Result<OutputsWritten, EvalError> {
    std::fs::create_dir_all(dir).map_err(|source| {
        EvalError::Outputs(JsonlError::Io {
            path: dir.to_path_buf(),
            source,
        })
    })?;
    store.set_meta(&super::written_meta(dir), "written")?;
    let rows = results(store)?;
    let results_path = dir.join("results.jsonl");
    let plain: Vec<&TaskResult> = rows.iter().map(|r| &r.result).collect();
    write_jsonl(&results_path, &plain).map_err(EvalError::Outputs)?;
    let mut by_seed: BTreeMap<u32, Vec<Prediction>> = BTreeMap::new();
    // A web row has no patch: SWE-bench predictions are for code tasks only.
    for r in rows.iter().filter(|r| r.result.kind != TaskKind::Web) {
        by_seed.entry(r.result.seed).or_default().push(Prediction {
            instance_id: r.result.instance_id.clone(),
            model_name_or_path: r.result.model.clone(),
            model_patch: r.model_patch.clone(),
        });
    }
    let mut predictions = Vec::new();
    for (seed, preds) in by_seed {
        let path = dir.join(if seed == 0 {
            "predictions.jsonl".to_string()
        } else {
            format!("predictions-seed{seed}.jsonl")
        });
        write_jsonl(&path, &preds).map_err(EvalError::Outputs)?;
        predictions.push(path);
    }
    Ok(OutputsWritten {
        results: results_path,
        predictions,
        rows: rows.len(),
    })
}

/// The totals as text for a terminal.
pub fn render(s: &Summary) -> String {
    let t = &s.all;
    let mut o = String::new();
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let recall = t.mean_recall.map_or("-".into(), |r| format!("{r:.3}"));
    if t.web_rows > 0 && t.web_rows == t.rows {
        o.push_str(&format!(
            "evaluation: {} rows over {} web tasks; succeeded {} of {} ({}: target page reached or answer found); mean route recall {recall}\n",
            t.rows,
            t.tasks,
            t.resolved,
            t.hard_rows,
            pct(t.resolved_rate),
        ));
    } else {
        o.push_str(&format!(
            "evaluation: {} rows over {} tasks; resolved {} of {} hard rows ({}); mean line recall {recall}\n",
            t.rows,
            t.tasks,
            t.resolved,
            t.hard_rows,
            pct(t.resolved_rate),
        ));
    }
    if !t.exits.is_empty() {
        let exits: Vec<String> = t.exits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        o.push_str(&format!("agent exits: {}\n", exits.join(", ")));
    }
    if t.errors > 0 {
        o.push_str(&format!(
            "rows whose scoring failed (counted as not resolved): {}\n",
            t.errors
        ));
    }
    if s.by_seed.len() > 1 {
        for (seed, st) in &s.by_seed {
            o.push_str(&format!(
                "  seed {seed}: resolved {} ({} of {}), mean recall {}\n",
                pct(st.resolved_rate),
                st.resolved,
                st.hard_rows,
                st.mean_recall.map_or("-".into(), |r| format!("{r:.3}")),
            ));
        }
    }
    o
}
