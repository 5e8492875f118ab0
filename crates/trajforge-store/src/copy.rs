//! Moving a whole run between stores (`trajforge store copy`): every row as stored, JSON kept
//! as text, ids and times kept, so an export of the copy equals an export of the original.
//!
//! Rows stream from the source to the target a portion at a time (memory does not grow with
//! the run): the source is read in one snapshot, the target written in one transaction that
//! commits only once the source has sent every row, so an interrupted copy leaves the target
//! empty, never a part of the run that looks whole.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::{Backend, Result, Store, StoreError};

/// A job row as stored (leases are not copied: a copied running job is pending again).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// Id (sample order).
    pub id: i64,
    /// Stable key.
    pub key: String,
    /// Payload (JSON text).
    pub payload: String,
    /// Status label.
    pub status: String,
    /// Result label.
    pub result: Option<String>,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// A stage row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    /// The job.
    pub job_id: i64,
    /// Attempt.
    pub attempt: i64,
    /// Stage name.
    pub stage: String,
    /// Payload (JSON text).
    pub payload: String,
    /// Commit time.
    pub created_at: i64,
}

/// A trajectory row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryDumpRow {
    /// Row id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Attempt.
    pub attempt: i64,
    /// Rollout label.
    pub rollout: String,
    /// Exit label.
    pub exit_status: String,
    /// Patch.
    pub patch: Option<String>,
    /// Recall.
    pub recall: Option<f64>,
    /// Kept.
    pub kept: bool,
    /// Data (JSON text).
    pub data: String,
    /// Commit time.
    pub created_at: i64,
}

/// A usage row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The job.
    pub job_id: Option<i64>,
    /// Attempt.
    pub attempt: Option<i64>,
    /// Stage name.
    pub stage: String,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Teacher seconds.
    pub model_seconds: f64,
    /// Commit time.
    pub created_at: i64,
}

/// A session row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The process.
    pub owner: String,
    /// Its start.
    pub started_at: i64,
    /// Its last commit.
    pub last_at: i64,
}

/// What one process counted on one teacher server, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherServerRow {
    /// The process.
    pub owner: String,
    /// The server's base URL.
    pub url: String,
    /// Attempts sent.
    pub requests: i64,
    /// Attempts failed.
    pub errors: i64,
    /// Sum of answered latencies, in seconds.
    pub latency_seconds: f64,
    /// Slowest answered attempt, in seconds.
    pub max_latency_seconds: f64,
    /// Times taken out of rotation.
    pub ejections: i64,
    /// Last update.
    pub updated_at: i64,
}

/// Every row of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDump {
    /// Run-level values (the schema version excepted).
    pub meta: Vec<(String, String)>,
    /// Jobs.
    pub jobs: Vec<JobRow>,
    /// Stage results.
    pub stages: Vec<StageRow>,
    /// Trajectories.
    pub trajectories: Vec<TrajectoryDumpRow>,
    /// Usage.
    pub usage: Vec<UsageRow>,
    /// Sessions.
    pub sessions: Vec<SessionRow>,
    /// Per-process teacher server figures (`status` shows their sums).
    pub teacher_servers: Vec<TeacherServerRow>,
}

/// What [`Store::copy_into`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyCounts {
    /// Jobs.
    pub jobs: usize,
    /// Stage results.
    pub stages: usize,
    /// Trajectories.
    pub trajectories: usize,
}

/// A value both backends read from a column.
pub(crate) trait Cell:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>
{
}
impl<T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>> Cell for T {}

/// A value both backends bind as a parameter.
pub(crate) trait Param: rusqlite::ToSql + postgres::types::ToSql + Sync {}
impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {}

/// A row of either backend, read by column index.
pub(crate) trait Cells {
    /// The backend's error.
    type Error;
    /// Column `i`.
    fn cell<T: Cell>(&self, i: usize) -> std::result::Result<T, Self::Error>;
}

impl Cells for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn cell<T: Cell>(&self, i: usize) -> rusqlite::Result<T> {
        self.get(i)
    }
}

impl Cells for postgres::Row {
    type Error = postgres::Error;
    fn cell<T: Cell>(&self, i: usize) -> std::result::Result<T, postgres::Error> {
        self.try_get(i)
    }
}

/// One table of a run as copied, the same for both backends: how its rows are selected (in
/// a stable order), read, and inserted (SQLite's `?N` parameters; Postgres rewrites them).
pub(crate) trait DumpRow: Sized {
    /// The select, with its order.
    const SELECT: &'static str;
    /// The select on Postgres, where a table's insertion order is not `rowid`.
    const PG_SELECT: &'static str = Self::SELECT;
    /// A table SQLite stores gain only when opened for writing: absent from an older run
    /// opened read-only, where it has no rows to copy.
    const ADDED_LATER: Option<&'static str> = None;
    /// The insert of one row, parameters in [`DumpRow::params`]' order.
    const INSERT: &'static str;
    /// The row from the columns of [`DumpRow::SELECT`].
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error>;
    /// The parameters of [`DumpRow::INSERT`].
    fn params(&self) -> Vec<&dyn Param>;
    /// Rows per portion of a copy.
    const PORTION: usize = 1000;
    /// A portion of this table's rows.
    fn portion(rows: Vec<Self>) -> Portion;
}

/// A portion of one table's rows on their way from a copy's source to its target.
#[derive(Debug)]
pub(crate) enum Portion {
    Meta(Vec<(String, String)>),
    Jobs(Vec<JobRow>),
    Stages(Vec<StageRow>),
    Trajectories(Vec<TrajectoryDumpRow>),
    Usage(Vec<UsageRow>),
    Sessions(Vec<SessionRow>),
    TeacherServers(Vec<TeacherServerRow>),
    /// The source sent every row: only now may the target commit.
    End,
}

/// A read snapshot of a run, table by table.
pub(crate) trait RowSource {
    /// The backend's error.
    type Error;
    /// Every row of `T`'s table in order, [`DumpRow::PORTION`] at a time, until `visit`
    /// returns false; whether it never did.
    fn portions<T: DumpRow>(
        &mut self,
        visit: &mut dyn FnMut(Vec<T>) -> bool,
    ) -> std::result::Result<bool, Self::Error>;
}

/// Where a copy's rows go, in the target's transaction.
pub(crate) trait RowSink {
    /// The backend's error.
    type Error;
    /// Insert `rows` into `T`'s table.
    fn insert<T: DumpRow>(&mut self, rows: &[T]) -> std::result::Result<(), Self::Error>;
}

/// Send every row of the run `src` reads to `out`, table by table, then [`Portion::End`];
/// stops early, without error, when the receiving side is gone.
pub(crate) fn send_all<S: RowSource>(
    src: &mut S,
    out: &SyncSender<Portion>,
) -> std::result::Result<(), S::Error> {
    fn table<T: DumpRow, S: RowSource>(
        src: &mut S,
        out: &SyncSender<Portion>,
    ) -> std::result::Result<bool, S::Error> {
        src.portions::<T>(&mut |rows| out.send(T::portion(rows)).is_ok())
    }
    let _all_sent = table::<(String, String), S>(src, out)?
        && table::<JobRow, S>(src, out)?
        && table::<StageRow, S>(src, out)?
        && table::<TrajectoryDumpRow, S>(src, out)?
        && table::<UsageRow, S>(src, out)?
        && table::<SessionRow, S>(src, out)?
        && table::<TeacherServerRow, S>(src, out)?
        && out.send(Portion::End).is_ok();
    Ok(())
}

/// Insert every portion `rows` brings through `sink` (a copied running job is pending
/// again: leases are not copied); the counts once [`Portion::End`] came, `None` when the
/// source stopped before it (the caller must not commit).
pub(crate) fn receive_all<S: RowSink>(
    sink: &mut S,
    rows: &Receiver<Portion>,
) -> std::result::Result<Option<CopyCounts>, S::Error> {
    let mut counts = CopyCounts::default();
    for portion in rows.iter() {
        match portion {
            Portion::Meta(v) => sink.insert(&v)?,
            Portion::Jobs(mut v) => {
                for j in &mut v {
                    if j.status == "running" {
                        j.status = "pending".into();
                    }
                }
                counts.jobs += v.len();
                sink.insert(&v)?;
            }
            Portion::Stages(v) => {
                counts.stages += v.len();
                sink.insert(&v)?;
            }
            Portion::Trajectories(v) => {
                counts.trajectories += v.len();
                sink.insert(&v)?;
            }
            Portion::Usage(v) => sink.insert(&v)?,
            Portion::Sessions(v) => sink.insert(&v)?,
            Portion::TeacherServers(v) => sink.insert(&v)?,
            Portion::End => return Ok(Some(counts)),
        }
    }
    Ok(None)
}

/// `read` and `params` of a [`DumpRow`] whose columns are its fields, in this order.
macro_rules! columns {
    ($($field:ident),+ $(,)?) => {
        fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
            // Struct fields are evaluated in the order written: column 0, 1, ...
            let mut column = 0..;
            Ok(Self {
                $($field: r.cell(column.next().unwrap_or_default())?),+
            })
        }
        fn params(&self) -> Vec<&dyn Param> {
            vec![$(&self.$field),+]
        }
    };
}

impl DumpRow for (String, String) {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Meta(rows)
    }
    const SELECT: &'static str =
        "SELECT key, value FROM meta WHERE key <> 'schema_version' ORDER BY key";
    const INSERT: &'static str = "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok((r.cell(0)?, r.cell(1)?))
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![&self.0, &self.1]
    }
}

impl DumpRow for JobRow {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Jobs(rows)
    }
    const SELECT: &'static str =
        "SELECT id, key, payload, status, result, updated_at FROM jobs ORDER BY id";
    const INSERT: &'static str = "INSERT INTO jobs(id, key, payload, status, result, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    columns!(id, key, payload, status, result, updated_at);
}

impl DumpRow for StageRow {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Stages(rows)
    }
    const SELECT: &'static str = "SELECT job_id, attempt, stage, payload, created_at FROM stages ORDER BY job_id, attempt, stage";
    const INSERT: &'static str = "INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    columns!(job_id, attempt, stage, payload, created_at);
}

impl DumpRow for TrajectoryDumpRow {
    // Trajectories can be large: a few at a time.
    const PORTION: usize = 32;
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Trajectories(rows)
    }
    const SELECT: &'static str = "SELECT id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at FROM trajectories ORDER BY id";
    const INSERT: &'static str = "INSERT INTO trajectories(id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    columns!(
        id,
        job_id,
        attempt,
        rollout,
        exit_status,
        patch,
        recall,
        kept,
        data,
        created_at
    );
}

impl DumpRow for UsageRow {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Usage(rows)
    }
    const SELECT: &'static str = "SELECT job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at FROM usage ORDER BY id";
    const INSERT: &'static str = "INSERT INTO usage(job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    columns!(
        job_id,
        attempt,
        stage,
        prompt_tokens,
        completion_tokens,
        model_seconds,
        created_at
    );
}

impl DumpRow for SessionRow {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::Sessions(rows)
    }
    const SELECT: &'static str =
        "SELECT owner, started_at, last_at FROM sessions ORDER BY started_at, owner";
    const INSERT: &'static str =
        "INSERT INTO sessions(owner, started_at, last_at) VALUES (?1, ?2, ?3)";
    columns!(owner, started_at, last_at);
}

impl DumpRow for TeacherServerRow {
    fn portion(rows: Vec<Self>) -> Portion {
        Portion::TeacherServers(rows)
    }
    // In the order servers were first recorded, which `teacher_servers()` lists them in.
    const SELECT: &'static str = "SELECT owner, url, requests, errors, latency_seconds, max_latency_seconds, ejections, updated_at FROM teacher_servers ORDER BY rowid";
    const PG_SELECT: &'static str = "SELECT owner, url, requests, errors, latency_seconds, max_latency_seconds, ejections, updated_at FROM teacher_servers ORDER BY seq";
    const ADDED_LATER: Option<&'static str> = Some("teacher_servers");
    const INSERT: &'static str = "INSERT INTO teacher_servers(owner, url, requests, errors, latency_seconds, max_latency_seconds, ejections, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    columns!(
        owner,
        url,
        requests,
        errors,
        latency_seconds,
        max_latency_seconds,
        ejections,
        updated_at
    );
}

impl Store {
    /// Copy every row of this run into `target`, which must hold nothing yet (a copy never
    /// overwrites a run): streamed a portion at a time from one snapshot of this run, in one
    /// transaction on the target.
    pub fn copy_into(&self, target: &Store) -> Result<CopyCounts> {
        if !target.is_empty()? {
            return Err(StoreError::NotEmpty(target.location()));
        }
        // Two portions on their way at most: what a copy holds is a few portions.
        let (out, rows) = sync_channel(2);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || self.send_rows(&out));
            let written = target.receive_rows(rows);
            let read = reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // A failed read ended the rows early: its error, not the target's.
            read?;
            written?.ok_or_else(|| StoreError::Corrupt {
                path: self.location().into(),
                message: "the copy's rows ended before the end of the run".into(),
            })
        })
    }

    fn is_empty(&self) -> Result<bool> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.is_empty();
        }
        let conn = self.lock();
        let r = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM meta WHERE key NOT IN ('schema_version', ?1))",
            [crate::dup::RULE_KEY],
            |r| r.get::<_, i64>(0),
        );
        drop(conn);
        self.sql(r).map(|n| n == 0)
    }

    /// Every row of the run, in memory (tests compare runs with it; a copy streams).
    pub fn dump(&self) -> Result<RunDump> {
        let (out, rows) = sync_channel(2);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || self.send_rows(&out));
            let mut dump = RunDump::default();
            for portion in rows {
                match portion {
                    Portion::Meta(v) => dump.meta.extend(v),
                    Portion::Jobs(v) => dump.jobs.extend(v),
                    Portion::Stages(v) => dump.stages.extend(v),
                    Portion::Trajectories(v) => dump.trajectories.extend(v),
                    Portion::Usage(v) => dump.usage.extend(v),
                    Portion::Sessions(v) => dump.sessions.extend(v),
                    Portion::TeacherServers(v) => dump.teacher_servers.extend(v),
                    Portion::End => {}
                }
            }
            reader
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            Ok(dump)
        })
    }

    /// Send every row of the run to `out` from one snapshot (see [`send_all`]).
    fn send_rows(&self, out: &SyncSender<Portion>) -> Result<()> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.send_rows(out);
        }
        let mut conn = self.lock();
        let r = (|| {
            // One read transaction: every table from the same snapshot.
            let tx = conn.transaction()?;
            send_all(&mut &tx, out)?;
            tx.commit()
        })();
        drop(conn);
        self.sql(r)
    }

    /// Write the rows `rows` brings in one transaction, committed only when they were all
    /// sent; `None` when they were not (nothing written).
    fn receive_rows(&self, rows: Receiver<Portion>) -> Result<Option<CopyCounts>> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.receive_rows(rows);
        }
        let mut conn = self.lock();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // The copied run's duplicate rule is its own (a run from before the sample-order
            // rule keeps the old one), not the one a new store starts with.
            tx.execute("DELETE FROM meta WHERE key = ?1", [crate::dup::RULE_KEY])?;
            let counts = receive_all(&mut &tx, &rows)?;
            if counts.is_some() {
                tx.commit()?;
            }
            Ok(counts)
        })();
        drop(conn);
        self.sql(r)
    }
}

impl RowSource for &rusqlite::Transaction<'_> {
    type Error = rusqlite::Error;
    fn portions<T: DumpRow>(
        &mut self,
        visit: &mut dyn FnMut(Vec<T>) -> bool,
    ) -> rusqlite::Result<bool> {
        if let Some(table) = T::ADDED_LATER {
            let present: i64 = self.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )?;
            if present == 0 {
                return Ok(true);
            }
        }
        let mut stmt = self.prepare(T::SELECT)?;
        let mut rows = stmt.query([])?;
        let mut portion = Vec::with_capacity(T::PORTION);
        while let Some(r) = rows.next()? {
            portion.push(T::read(r)?);
            if portion.len() == T::PORTION && !visit(std::mem::take(&mut portion)) {
                return Ok(false);
            }
        }
        Ok(portion.is_empty() || visit(portion))
    }
}

impl RowSink for &rusqlite::Transaction<'_> {
    type Error = rusqlite::Error;
    fn insert<T: DumpRow>(&mut self, rows: &[T]) -> rusqlite::Result<()> {
        let mut stmt = self.prepare_cached(T::INSERT)?;
        for row in rows {
            let params: Vec<&dyn rusqlite::ToSql> = row
                .params()
                .into_iter()
                .map(|p| p as &dyn rusqlite::ToSql)
                .collect();
            stmt.execute(params.as_slice())?;
        }
        Ok(())
    }
}
