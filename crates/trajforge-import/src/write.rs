//! Imported records as finished jobs of a run, looking to `status` and to exports like
//! generated ones.
//!
//! One job per record, keyed `import:<format>:<fingerprint of the record's canonical JSON>`, finished,
//! with attempt 1 holding:
//! - an `import` stage (format, file, line, rollout, exit, steps),
//! - when the record has a reference patch (SERA's `target_patch`, the T1 patch): the record
//!   is a `t2` trajectory and gets the same `verify` stage as the pipeline writes
//!   ([`VerifyStage::of_patches`]: line recall r of its patch against the reference), so it
//!   is kept exactly when a generated T2 would be;
//! - otherwise it is a `t1` trajectory (no reference to verify against), kept when it was
//!   submitted.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};
use trajforge_agent::ExitStatus;
use trajforge_store::model::{ImportStage, VerifyStage};
use trajforge_store::{
    ExitLabel, ImportCounts, ImportedJob, Outcome, Rollout, Stage, Store, TrajectoryRecord,
};

use crate::{ImportError, Parsed, Record};

/// Where an imported job came from, as its payload records it under `import`.
#[derive(Serialize)]
struct Source<'a> {
    format: &'a str,
    file: &'a str,
    line: usize,
}

/// An imported job's payload: its source and what the record is about.
#[derive(Serialize)]
struct Payload<'a> {
    import: Source<'a>,
    #[serde(flatten)]
    subject: &'a Map<String, Value>,
}

/// The job a record becomes; `file` is how its source is named in the store.
pub fn job_for(record: &Record, file: &str, threshold: f64) -> ImportedJob {
    let t = &record.trajectory;
    let submitted = t.exit == ExitStatus::Submitted;
    let patch = t.outcome.patch.clone();
    let rollout = if record.reference_patch.is_some() {
        Rollout::T2
    } else {
        Rollout::T1
    };
    let exit = ExitLabel::from(t.exit.label());
    let import = ImportStage {
        rollout: rollout.clone(),
        exit: exit.clone(),
        steps: t.steps.len(),
        patch: patch.clone(),
        format: record.format.name().to_string(),
        file: file.to_string(),
        line: record.line,
    };
    let payload = serde_json::to_value(Payload {
        import: Source {
            format: &import.format,
            file: &import.file,
            line: import.line,
        },
        subject: &record.subject,
    })
    .unwrap_or(Value::Null);
    let mut stages = vec![Stage::Import(import)];
    let (result, recall, kept) = match &record.reference_patch {
        Some(reference) => {
            let v = VerifyStage::of_patches(
                reference,
                patch.as_deref().unwrap_or(""),
                submitted,
                threshold,
            );
            let out = (v.result().clone(), v.recall(), v.kept());
            stages.push(Stage::Verify(v));
            out
        }
        None if submitted => (Outcome::Imported, None, true),
        None => (Outcome::NotSubmitted, None, false),
    };
    ImportedJob {
        key: record.key.clone(),
        also_known_as: record.legacy_key.clone(),
        payload,
        result,
        stages,
        trajectory: TrajectoryRecord {
            rollout,
            exit_status: exit,
            patch,
            data: record.data(),
        },
        recall,
        kept,
    }
}

/// Source bytes of records written per transaction: a file up to this size is written in one
/// transaction (all of it or none); a larger one in several, so memory holds one batch.
pub const BATCH_BYTES: usize = 32 << 20;

/// Store one file's records in one transaction (all of them or none), with `meta` values set
/// in the same transaction. Records already in the store are counted as duplicates.
pub fn write(
    store: &Store,
    file: &Path,
    parsed: &Parsed,
    threshold: f64,
    meta: &[(&str, String)],
) -> Result<ImportCounts, ImportError> {
    let mut writer = Writer::new(file, threshold, usize::MAX);
    for record in &parsed.records {
        writer.push(store, record)?;
    }
    writer.finish(store, meta)
}

/// Writes one file's records as they are read, in transactions of about `batch_bytes` of
/// source ([`BATCH_BYTES`] for `import`), so memory holds one batch; `meta` is set with the
/// last one, so the import log names a file only once all of it is in.
pub struct Writer {
    name: String,
    threshold: f64,
    batch_bytes: usize,
    jobs: Vec<ImportedJob>,
    bytes: usize,
    counts: ImportCounts,
}

impl Writer {
    /// A writer of records of `file` (as the store names it) verified at `threshold`.
    pub fn new(file: &Path, threshold: f64, batch_bytes: usize) -> Self {
        Writer {
            name: file.display().to_string(),
            threshold,
            batch_bytes,
            jobs: Vec::new(),
            bytes: 0,
            counts: ImportCounts::default(),
        }
    }

    /// Adds a record; writes the batch when it is full.
    pub fn push(&mut self, store: &Store, record: &Record) -> Result<(), ImportError> {
        self.jobs.push(job_for(record, &self.name, self.threshold));
        self.bytes = self.bytes.saturating_add(record.bytes);
        if self.bytes >= self.batch_bytes {
            self.flush(store, &[])?;
        }
        Ok(())
    }

    fn flush(&mut self, store: &Store, meta: &[(&str, String)]) -> Result<(), ImportError> {
        let c = store.import_jobs(&self.jobs, meta)?;
        self.counts.added += c.added;
        self.counts.duplicates += c.duplicates;
        self.jobs.clear();
        self.bytes = 0;
        Ok(())
    }

    /// Writes what is left with `meta`; what all the batches did.
    pub fn finish(
        mut self,
        store: &Store,
        meta: &[(&str, String)],
    ) -> Result<ImportCounts, ImportError> {
        self.flush(store, meta)?;
        Ok(self.counts)
    }
}
