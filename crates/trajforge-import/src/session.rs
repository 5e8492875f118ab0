//! One `import` as a whole: every file checked to be readable before the run is touched, the
//! run opened at the first valid record (an import of nothing leaves no run), the threshold
//! taken from the run when not given, each file read once and written as it is read (one
//! transaction for up to 32 MiB of records, the last one with the run's import log), and a
//! report of what happened to each file.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use trajforge_store::{Store, StoreError};

use crate::{BATCH_BYTES, Format, ImportError, Item, Skipped, Writer, each_record};

/// Skipped records listed per file; more are only counted, so a file of millions of bad lines
/// does not fill memory with reasons.
pub const LISTED_SKIPS: usize = 1000;

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its valid records.
    pub records: usize,
    /// Its first [`LISTED_SKIPS`] skipped records.
    pub skipped: Vec<Skipped>,
    /// All its skipped records.
    pub skipped_count: usize,
    /// Records added to the run.
    pub added: usize,
    /// Records the run already held.
    pub duplicates: usize,
    /// Why the file was not written (its transaction rolled back), if it was not.
    pub error: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The files' format.
    pub format: Format,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The recall threshold used for records with a reference patch.
    pub threshold: f64,
    /// Every file, in the order given.
    pub files: Vec<FileReport>,
}

/// One import of one file, as the run's `imports` log records it.
#[derive(Debug, Clone, Serialize)]
struct LogEntry {
    format: Format,
    file: String,
    records: usize,
    skipped: usize,
    threshold: f64,
    at_ms: u64,
}

/// What an import did, as `import --json` prints it.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// The files' format.
    pub format: Format,
    /// The run folder.
    pub run_dir: String,
    /// The recall threshold used.
    pub threshold: f64,
    /// Valid records in all files.
    pub records: usize,
    /// Records added.
    pub added: usize,
    /// Records the run already held.
    pub duplicates: usize,
    /// Records skipped.
    pub skipped: usize,
    /// Each file.
    pub files: Vec<FileSummary<'a>>,
}

/// One file of a [`Summary`].
#[derive(Debug, Serialize)]
pub struct FileSummary<'a> {
    /// The file.
    pub file: String,
    /// Valid records in it.
    pub records: usize,
    /// Records added.
    pub added: usize,
    /// Records the run already held.
    pub duplicates: usize,
    /// Records skipped, with their lines and reasons (the first [`LISTED_SKIPS`]).
    pub skipped: &'a [Skipped],
    /// Records skipped, all of them.
    pub skipped_count: usize,
    /// Why the file was not written, if it was not.
    pub error: Option<&'a str>,
}

/// Why an import could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImportRunError {
    /// The threshold is not a ratio.
    #[error("--threshold {0}: must be between 0 and 1")]
    Threshold(f64),
    /// A file cannot be read (nothing was imported).
    #[error(transparent)]
    Read(ImportError),
    /// `--into` is a file.
    #[error("{}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// The run folder's store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No file held a record of the format (each file's skipped records say why); see
    /// [`ImportReport::nothing`].
    #[error("nothing to import: no valid {} record in {files} file(s){}", .format.name(),
            .first.as_ref().map(|(p, s)| format!(" ({}:{}: {})", p.display(), s.line, s.reason)).unwrap_or_default())]
    NothingToImport {
        /// The format asked for.
        format: Format,
        /// Files read.
        files: usize,
        /// The first record refused, and its file.
        first: Option<(PathBuf, Skipped)>,
        /// The format most refused records look like, when another.
        looks_like: Option<Format>,
    },
}

/// Import `files` of `format` into the run at `into` (a run folder, or a run of a shared
/// store; created as an import run when new).
pub fn import_files(
    format: Format,
    files: &[PathBuf],
    into: &trajforge_store::Location,
    threshold: Option<f64>,
) -> Result<ImportReport, ImportRunError> {
    if let Some(t) = threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ImportRunError::Threshold(t));
    }
    // A missing or unreadable file stops the import before the run is touched.
    for path in files {
        if let Err(source) = std::fs::File::open(path) {
            return Err(ImportRunError::Read(ImportError::Read {
                path: path.clone(),
                source,
            }));
        }
    }
    if let trajforge_store::Location::Folder(dir) = into
        && dir.exists()
        && !dir.is_dir()
    {
        return Err(ImportRunError::NotAFolder(dir.clone()));
    }
    let mut report = ImportReport {
        format,
        run_dir: PathBuf::from(into.to_string()),
        threshold: threshold.unwrap_or(0.5),
        files: Vec::with_capacity(files.len()),
    };
    // Opened at the first valid record, so an import of nothing leaves no run behind.
    let mut run: Option<Run> = None;
    for path in files {
        let mut file = FileReport {
            path: path.clone(),
            records: 0,
            skipped: Vec::new(),
            skipped_count: 0,
            added: 0,
            duplicates: 0,
            error: None,
        };
        // Records are written as they are read: memory holds one batch.
        let mut writer: Option<Writer> = None;
        // The run could not be opened (the import stops), or a batch not written (the file
        // is reported as not imported).
        let mut open_failed: Option<ImportRunError> = None;
        let mut write_failed: Option<ImportError> = None;
        let read = each_record(format, path, |item| match item {
            Item::Skipped(s) => {
                file.skipped_count += 1;
                if file.skipped.len() < LISTED_SKIPS {
                    file.skipped.push(s);
                }
            }
            Item::Record(record) => {
                file.records += 1;
                if open_failed.is_some() || write_failed.is_some() {
                    return;
                }
                if run.is_none() {
                    match Run::open(into) {
                        Ok(r) => {
                            if threshold.is_none() {
                                report.threshold =
                                    run_threshold(&r.store).unwrap_or(report.threshold);
                            }
                            run = Some(r);
                        }
                        Err(e) => {
                            open_failed = Some(e);
                            return;
                        }
                    }
                }
                let Some(r) = run.as_ref() else { return };
                let w =
                    writer.get_or_insert_with(|| Writer::new(path, report.threshold, BATCH_BYTES));
                if let Err(e) = w.push(&r.store, &record) {
                    write_failed = Some(e);
                }
            }
        });
        read.map_err(ImportRunError::Read)?;
        if let Some(e) = open_failed {
            return Err(e);
        }
        file.error = write_failed.map(|e| e.to_string());
        if let (Some(w), Some(r), None) = (writer, run.as_mut(), &file.error) {
            match r.finish_file(w, &file, format, report.threshold) {
                Ok(c) => {
                    file.added = c.added;
                    file.duplicates = c.duplicates;
                }
                // This file's last transaction rolled back; the files before it stay imported.
                Err(e) => file.error = Some(e.to_string()),
            }
        }
        report.files.push(file);
    }
    Ok(report)
}

/// The run being imported into, and its import log.
struct Run {
    store: Store,
    /// The `imports` log; entries written by other versions are kept as they are.
    log: Vec<Value>,
    /// Whether the run is new and not yet marked as an import run.
    mark_new_run: bool,
}

impl Run {
    fn open(into: &trajforge_store::Location) -> Result<Run, ImportRunError> {
        let store = Store::open_at(into)?;
        let mark_new_run = store.meta("settings")?.is_none()
            && store.meta("kind")?.is_none()
            && store.counts()? == Default::default();
        let log = store
            .meta("imports")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(Run {
            store,
            log,
            mark_new_run,
        })
    }

    /// Writes the file's last batch with its log entry.
    fn finish_file(
        &mut self,
        writer: Writer,
        file: &FileReport,
        format: Format,
        threshold: f64,
    ) -> Result<trajforge_store::ImportCounts, ImportError> {
        let entry = LogEntry {
            format,
            file: file.path.display().to_string(),
            records: file.records,
            skipped: file.skipped_count,
            threshold,
            at_ms: now_ms(),
        };
        self.log
            .push(serde_json::to_value(entry).unwrap_or(Value::Null));
        let mut meta = vec![("imports", Value::Array(self.log.clone()).to_string())];
        if self.mark_new_run {
            // A run made by importing: no repository, no generation settings.
            meta.push(("kind", "import".to_string()));
        }
        match writer.finish(&self.store, &meta) {
            Ok(c) => {
                self.mark_new_run = false;
                Ok(c)
            }
            Err(e) => {
                self.log.pop();
                Err(e)
            }
        }
    }
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

impl ImportReport {
    /// The error to report when no file held a record of the format (nothing was written),
    /// naming the first refused record and the format most of them look like.
    pub fn nothing(&self) -> Option<ImportRunError> {
        if self.records() > 0 {
            return None;
        }
        let skipped = || {
            self.files
                .iter()
                .flat_map(|r| r.skipped.iter().map(move |s| (r, s)))
        };
        let mut counts: Vec<(Format, usize)> = Vec::new();
        for (_, s) in skipped() {
            if let Some(f) = s.looks_like {
                match counts.iter_mut().find(|(g, _)| *g == f) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((f, 1)),
                }
            }
        }
        Some(ImportRunError::NothingToImport {
            format: self.format,
            files: self.files.len(),
            first: skipped().next().map(|(r, s)| (r.path.clone(), s.clone())),
            looks_like: counts.iter().max_by_key(|(_, n)| *n).map(|(f, _)| *f),
        })
    }

    fn sum(&self, f: impl Fn(&FileReport) -> usize) -> usize {
        self.files.iter().map(f).sum()
    }

    /// Valid records in all files.
    pub fn records(&self) -> usize {
        self.sum(|r| r.records)
    }

    /// The first file that could not be written.
    pub fn failed(&self) -> Option<&FileReport> {
        self.files.iter().find(|r| r.error.is_some())
    }

    /// The report as `import --json` prints it.
    pub fn summary(&self) -> Summary<'_> {
        Summary {
            format: self.format,
            run_dir: self.run_dir.display().to_string(),
            threshold: self.threshold,
            records: self.records(),
            added: self.sum(|r| r.added),
            duplicates: self.sum(|r| r.duplicates),
            skipped: self.sum(|r| r.skipped_count),
            files: self
                .files
                .iter()
                .map(|r| FileSummary {
                    file: r.path.display().to_string(),
                    records: r.records,
                    added: r.added,
                    duplicates: r.duplicates,
                    skipped: &r.skipped,
                    skipped_count: r.skipped_count,
                    error: r.error.as_deref(),
                })
                .collect(),
        }
    }

    /// The report as lines for stderr: each file's first `shown_skips` skipped records, its
    /// counts, and a total when there are several files.
    pub fn render(&self, shown_skips: usize) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for r in &self.files {
            let p = r.path.display();
            for s in r.skipped.iter().take(shown_skips) {
                let _ = writeln!(out, "{p}:{}: skipped: {}", s.line, s.reason);
            }
            if r.skipped_count > shown_skips {
                let listed = if r.skipped_count > LISTED_SKIPS {
                    format!("--json lists the first {LISTED_SKIPS}")
                } else {
                    "see --json".to_string()
                };
                let _ = writeln!(
                    out,
                    "{p}: ... {} more skipped ({listed})",
                    r.skipped_count - shown_skips
                );
            }
            let status = match &r.error {
                Some(e) => format!("not imported ({e})"),
                None => format!("{} added, {} already in the run", r.added, r.duplicates),
            };
            let _ = writeln!(
                out,
                "{p}: {} records, {} skipped; {status}",
                r.records, r.skipped_count
            );
        }
        if self.files.len() > 1 {
            let _ = writeln!(
                out,
                "total: {} records, {} skipped; {} added, {} already in the run",
                self.records(),
                self.sum(|r| r.skipped_count),
                self.sum(|r| r.added),
                self.sum(|r| r.duplicates)
            );
        }
        out
    }
}
