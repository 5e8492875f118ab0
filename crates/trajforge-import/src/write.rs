//! Imported records as finished jobs of a run, looking to `status` and to exports like
//! generated ones.
//!
//! One job per record, keyed `import:<format>:<xxh3-128 of the record's bytes>`, finished,
//! with attempt 1 holding:
//! - an `import` stage (format, file, line, rollout, exit, steps),
//! - when the record has a reference patch (SERA's `target_patch`, the T1 patch): the record
//!   is a `t2` trajectory and gets the pipeline's own `verify` stage (line recall r of its
//!   patch against the reference), so it is kept exactly when a generated T2 would be;
//! - otherwise it is a `t1` trajectory (no reference to verify against), kept when it was
//!   submitted.

use std::path::Path;

use serde_json::{Map, Value, json};
use trajforge_agent::ExitStatus;
use trajforge_pipeline::code::{stage, verify};
use trajforge_store::{ImportCounts, ImportedJob, Store, TrajectoryRecord};

use crate::{ImportError, Parsed, Record};

/// Name of the stage recording where an imported trajectory came from.
pub const IMPORT_STAGE: &str = "import";

/// The job a record becomes; `file` is how its source is named in the store.
pub fn job_for(record: &Record, file: &str, threshold: f64) -> ImportedJob {
    let t = &record.trajectory;
    let submitted = t.exit == ExitStatus::Submitted;
    let patch = t.outcome.patch.clone();
    let rollout = if record.reference_patch.is_some() {
        "t2"
    } else {
        "t1"
    };
    let source = json!({"format": record.format.name(), "file": file, "line": record.line});
    let mut payload = Map::new();
    payload.insert("import".into(), source.clone());
    payload.extend(record.subject.clone());
    let mut import_stage = json!({"rollout": rollout, "exit": t.exit.label(),
                                  "steps": t.steps.len(), "patch": patch});
    if let (Some(obj), Value::Object(src)) = (import_stage.as_object_mut(), source) {
        obj.extend(src);
    }
    let mut stages = vec![(IMPORT_STAGE.to_string(), import_stage)];
    let (result, recall, kept) = match &record.reference_patch {
        Some(reference) => {
            let v = verify(
                reference,
                patch.as_deref().unwrap_or(""),
                submitted,
                threshold,
            );
            let out = (
                v["result"].as_str().unwrap_or("verified").to_string(),
                v["recall"].as_f64(),
                v["kept"] == true,
            );
            stages.push((stage::VERIFY.to_string(), v));
            out
        }
        None if submitted => ("imported".to_string(), None, true),
        None => ("not_submitted".to_string(), None, false),
    };
    ImportedJob {
        key: record.key.clone(),
        payload: Value::Object(payload),
        result,
        stages,
        trajectory: TrajectoryRecord {
            rollout: rollout.into(),
            exit_status: t.exit.label().into(),
            patch,
            data: record.data(),
        },
        recall,
        kept,
    }
}

/// Store one file's records in one transaction (all of them or none), with `meta` values set
/// in the same transaction. Records already in the store are counted as duplicates.
pub fn write(
    store: &Store,
    file: &Path,
    parsed: &Parsed,
    threshold: f64,
    meta: &[(&str, String)],
) -> Result<ImportCounts, ImportError> {
    let name = file.display().to_string();
    let jobs: Vec<ImportedJob> = parsed
        .records
        .iter()
        .map(|r| job_for(r, &name, threshold))
        .collect();
    Ok(store.import_jobs(&jobs, meta)?)
}
