//! Moving a whole run between stores (`trajforge store copy`): every row as stored, JSON kept
//! as text, ids and times kept, so an export of the copy equals an export of the original.

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
    /// The insert of one row, parameters in [`DumpRow::params`]' order.
    const INSERT: &'static str;
    /// The row from the columns of [`DumpRow::SELECT`].
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error>;
    /// The parameters of [`DumpRow::INSERT`].
    fn params(&self) -> Vec<&dyn Param>;
}

impl DumpRow for (String, String) {
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
    const SELECT: &'static str =
        "SELECT id, key, payload, status, result, updated_at FROM jobs ORDER BY id";
    const INSERT: &'static str = "INSERT INTO jobs(id, key, payload, status, result, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(JobRow {
            id: r.cell(0)?,
            key: r.cell(1)?,
            payload: r.cell(2)?,
            status: r.cell(3)?,
            result: r.cell(4)?,
            updated_at: r.cell(5)?,
        })
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![
            &self.id,
            &self.key,
            &self.payload,
            &self.status,
            &self.result,
            &self.updated_at,
        ]
    }
}

impl DumpRow for StageRow {
    const SELECT: &'static str = "SELECT job_id, attempt, stage, payload, created_at FROM stages ORDER BY job_id, attempt, stage";
    const INSERT: &'static str = "INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(StageRow {
            job_id: r.cell(0)?,
            attempt: r.cell(1)?,
            stage: r.cell(2)?,
            payload: r.cell(3)?,
            created_at: r.cell(4)?,
        })
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![
            &self.job_id,
            &self.attempt,
            &self.stage,
            &self.payload,
            &self.created_at,
        ]
    }
}

impl DumpRow for TrajectoryDumpRow {
    const SELECT: &'static str = "SELECT id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at FROM trajectories ORDER BY id";
    const INSERT: &'static str = "INSERT INTO trajectories(id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(TrajectoryDumpRow {
            id: r.cell(0)?,
            job_id: r.cell(1)?,
            attempt: r.cell(2)?,
            rollout: r.cell(3)?,
            exit_status: r.cell(4)?,
            patch: r.cell(5)?,
            recall: r.cell(6)?,
            kept: r.cell(7)?,
            data: r.cell(8)?,
            created_at: r.cell(9)?,
        })
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![
            &self.id,
            &self.job_id,
            &self.attempt,
            &self.rollout,
            &self.exit_status,
            &self.patch,
            &self.recall,
            &self.kept,
            &self.data,
            &self.created_at,
        ]
    }
}

impl DumpRow for UsageRow {
    const SELECT: &'static str = "SELECT job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at FROM usage ORDER BY id";
    const INSERT: &'static str = "INSERT INTO usage(job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(UsageRow {
            job_id: r.cell(0)?,
            attempt: r.cell(1)?,
            stage: r.cell(2)?,
            prompt_tokens: r.cell(3)?,
            completion_tokens: r.cell(4)?,
            model_seconds: r.cell(5)?,
            created_at: r.cell(6)?,
        })
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![
            &self.job_id,
            &self.attempt,
            &self.stage,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.model_seconds,
            &self.created_at,
        ]
    }
}

impl DumpRow for SessionRow {
    const SELECT: &'static str =
        "SELECT owner, started_at, last_at FROM sessions ORDER BY started_at, owner";
    const INSERT: &'static str =
        "INSERT INTO sessions(owner, started_at, last_at) VALUES (?1, ?2, ?3)";
    fn read<C: Cells>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(SessionRow {
            owner: r.cell(0)?,
            started_at: r.cell(1)?,
            last_at: r.cell(2)?,
        })
    }
    fn params(&self) -> Vec<&dyn Param> {
        vec![&self.owner, &self.started_at, &self.last_at]
    }
}

impl Store {
    /// Copy every row of this run into `target`, which must hold nothing yet (a copy never
    /// overwrites a run); in one transaction on the target.
    pub fn copy_into(&self, target: &Store) -> Result<CopyCounts> {
        if !target.is_empty()? {
            return Err(StoreError::NotEmpty(target.location()));
        }
        let mut dump = self.dump()?;
        for j in &mut dump.jobs {
            if j.status == "running" {
                j.status = "pending".into();
            }
        }
        target.load(&dump)?;
        Ok(CopyCounts {
            jobs: dump.jobs.len(),
            stages: dump.stages.len(),
            trajectories: dump.trajectories.len(),
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

    /// Every row of the run.
    pub fn dump(&self) -> Result<RunDump> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.dump();
        }
        Ok(RunDump {
            meta: self.select_rows()?,
            jobs: self.select_rows()?,
            stages: self.select_rows()?,
            trajectories: self.select_rows()?,
            usage: self.select_rows()?,
            sessions: self.select_rows()?,
        })
    }

    /// Every row of `T`'s table.
    fn select_rows<T: DumpRow>(&self) -> Result<Vec<T>> {
        self.select_all(T::SELECT, |r| T::read(r))
    }

    fn load(&self, dump: &RunDump) -> Result<()> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.load(dump);
        }
        let mut conn = self.lock();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // The copied run's duplicate rule is its own (a run from before the sample-order
            // rule keeps the old one), not the one a new store starts with.
            tx.execute("DELETE FROM meta WHERE key = ?1", [crate::dup::RULE_KEY])?;
            insert_all(&tx, &dump.meta)?;
            insert_all(&tx, &dump.jobs)?;
            insert_all(&tx, &dump.stages)?;
            insert_all(&tx, &dump.trajectories)?;
            insert_all(&tx, &dump.usage)?;
            insert_all(&tx, &dump.sessions)?;
            tx.commit()
        })();
        drop(conn);
        self.sql(r)
    }
}

/// Insert every row of `rows` into its table on SQLite.
fn insert_all<T: DumpRow>(tx: &rusqlite::Transaction<'_>, rows: &[T]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare(T::INSERT)?;
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
