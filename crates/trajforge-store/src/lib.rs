//! Durable storage of a run: its settings, its jobs under leases, every stage's result and
//! every trajectory, in one SQLite database (WAL mode) inside the run folder.
//!
//! Design rules, so a Postgres backend with several workers can follow without changing the
//! pipeline: all state lives in the database (nothing only in a process); a worker *claims*
//! a job under a time-limited lease and renews it while working; every stage result is
//! committed in one transaction together with the trajectory it produced; recording a stage
//! twice is idempotent; and a lease held by a dead process is reclaimed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Database file name inside a run folder.
pub const DB_FILE: &str = "trajforge.db";

/// Bump when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

/// Errors of the store, with the database path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{path}: database error: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored value is not what this version expects.
    #[error("{path}: corrupt record: {message}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The database was written by an incompatible version.
    #[error("{path}: written by schema version {found}, this trajforge reads version {expected}")]
    Version {
        /// The database file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Version expected.
        expected: i64,
    },
    /// The run folder cannot be created.
    #[error("{path}: cannot create the run folder: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The job's lease was lost to another worker (it expired).
    #[error("job {job}: lease lost (held by {holder:?})")]
    LeaseLost {
        /// The job id.
        job: i64,
        /// Who holds it now.
        holder: Option<String>,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id (order of the sample).
    pub id: i64,
    /// Stable key (for a function: `path::name@line`).
    pub key: String,
    /// What to work on (JSON).
    pub payload: serde_json::Value,
    /// `pending`, `running` or `done`.
    pub status: String,
    /// Final result label when done.
    pub result: Option<String>,
}

/// A stage result as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The job.
    pub job_id: i64,
    /// Attempt number (1-based).
    pub attempt: i64,
    /// Stage name.
    pub stage: String,
    /// Result (JSON).
    pub payload: serde_json::Value,
    /// When it was committed, ms since the epoch.
    pub created_at: i64,
}

/// A trajectory to store with a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRecord {
    /// `t1` or `t2`.
    pub rollout: String,
    /// Exit status label.
    pub exit_status: String,
    /// The patch it produced.
    pub patch: Option<String>,
    /// The whole trajectory (JSON).
    pub data: serde_json::Value,
}

/// A stored trajectory with its verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTrajectory {
    /// Row id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: i64,
    /// `t1` or `t2`.
    pub rollout: String,
    /// Exit status label.
    pub exit_status: String,
    /// The patch.
    pub patch: Option<String>,
    /// Line recall (T2 only).
    pub recall: Option<f64>,
    /// Whether it is kept for training.
    pub kept: bool,
    /// The whole trajectory (JSON).
    pub data: serde_json::Value,
}

/// A stored trajectory as streamed for exports: JSON columns stay text, for the reader to parse.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryRow {
    /// Row id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: i64,
    /// `t1` or `t2`.
    pub rollout: String,
    /// Exit status label.
    pub exit_status: String,
    /// The patch.
    pub patch: Option<String>,
    /// Line recall (T2 only).
    pub recall: Option<f64>,
    /// Whether it is kept for training.
    pub kept: bool,
    /// The whole trajectory (JSON text; `null` when streamed without data).
    pub data: String,
    /// The job's key, when the job row exists.
    pub job_key: Option<String>,
    /// The job's payload (JSON text).
    pub job_payload: Option<String>,
    /// The attempt's stage results as one JSON object keyed by stage name (JSON text).
    pub stages: Option<String>,
}

/// Token usage of one teacher call or episode, for costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Teacher time in seconds.
    pub model_seconds: f64,
}

/// A finished job brought in from elsewhere (an import), with everything the pipeline would
/// have recorded for it, written by [`Store::import_jobs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedJob {
    /// Stable key; a key already in the store is skipped (importing twice duplicates nothing).
    pub key: String,
    /// What the job was about (JSON).
    pub payload: serde_json::Value,
    /// The job's result label.
    pub result: String,
    /// Stage results of attempt 1, in order.
    pub stages: Vec<(String, serde_json::Value)>,
    /// The trajectory (attempt 1).
    pub trajectory: TrajectoryRecord,
    /// Its line recall, when it was verified against a reference.
    pub recall: Option<f64>,
    /// Whether it is kept for training.
    pub kept: bool,
}

/// What [`Store::import_jobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Jobs added.
    pub added: usize,
    /// Jobs whose key was already there.
    pub duplicates: usize,
}

/// Counts for status displays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Jobs not started.
    pub pending: u64,
    /// Jobs in flight.
    pub running: u64,
    /// Jobs finished.
    pub done: u64,
}

/// The run database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The session of `owner` was active at `now`.
fn touch_session(tx: &rusqlite::Transaction<'_>, owner: &str, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE sessions SET last_at = MAX(last_at, ?2) WHERE owner = ?1",
        params![owner, now],
    )
    .map(|_| ())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (creating if needed) the database of the run folder `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = Store {
            conn: Mutex::new(conn),
            path,
        };
        store.init()?;
        Ok(store)
    }

    /// Open an existing run's database read-mostly (for `status` and exports); it must exist.
    pub fn open_existing(dir: &Path) -> Result<Option<Store>> {
        if !dir.join(DB_FILE).is_file() {
            return Ok(None);
        }
        Store::open(dir).map(Some)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves the connection usable: SQLite
        // rolls back any transaction that was not committed.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn init(&self) -> Result<()> {
        let conn = self.lock();
        let r = conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS jobs (
                 id INTEGER PRIMARY KEY,
                 key TEXT NOT NULL UNIQUE,
                 payload TEXT NOT NULL,
                 status TEXT NOT NULL DEFAULT 'pending',
                 lease_owner TEXT,
                 lease_until INTEGER,
                 result TEXT,
                 updated_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, id);
             CREATE TABLE IF NOT EXISTS stages (
                 job_id INTEGER NOT NULL REFERENCES jobs(id),
                 attempt INTEGER NOT NULL,
                 stage TEXT NOT NULL,
                 payload TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 PRIMARY KEY (job_id, attempt, stage)
             );
             CREATE TABLE IF NOT EXISTS trajectories (
                 id INTEGER PRIMARY KEY,
                 job_id INTEGER NOT NULL REFERENCES jobs(id),
                 attempt INTEGER NOT NULL,
                 rollout TEXT NOT NULL,
                 exit_status TEXT NOT NULL,
                 patch TEXT,
                 recall REAL,
                 kept INTEGER NOT NULL DEFAULT 0,
                 data TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 UNIQUE (job_id, attempt, rollout)
             );
             CREATE TABLE IF NOT EXISTS usage (
                 id INTEGER PRIMARY KEY,
                 job_id INTEGER,
                 attempt INTEGER,
                 stage TEXT NOT NULL,
                 prompt_tokens INTEGER NOT NULL,
                 completion_tokens INTEGER NOT NULL,
                 model_seconds REAL NOT NULL,
                 created_at INTEGER NOT NULL
             );
             -- One row per process working on the run: when it started and when it last
             -- committed something. Added without a schema bump: older stores gain it empty.
             CREATE TABLE IF NOT EXISTS sessions (
                 owner TEXT PRIMARY KEY,
                 started_at INTEGER NOT NULL,
                 last_at INTEGER NOT NULL
             );",
        );
        drop(conn);
        self.sql(r)?;
        match self.meta("schema_version")? {
            None => self.set_meta("schema_version", &SCHEMA_VERSION.to_string()),
            Some(v) => {
                let found: i64 = v.parse().unwrap_or(-1);
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::Version {
                        path: self.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    /// A run-level value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        let conn = self.lock();
        let r = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional();
        drop(conn);
        self.sql(r)
    }

    /// Set a run-level value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let conn = self.lock();
        let r = conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        );
        drop(conn);
        self.sql(r).map(|_| ())
    }

    /// Add jobs that are not there yet (by key); returns how many were added.
    pub fn add_jobs(&self, jobs: &[(String, serde_json::Value)]) -> Result<usize> {
        let mut conn = self.lock();
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction()?;
            let mut added = 0;
            {
                let next: i64 =
                    tx.query_row("SELECT COALESCE(MAX(id) + 1, 0) FROM jobs", [], |r| {
                        r.get(0)
                    })?;
                let mut id = next;
                let mut insert = tx.prepare(
                    "INSERT OR IGNORE INTO jobs(id, key, payload, updated_at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (key, payload) in jobs {
                    let n = insert.execute(params![id, key, payload.to_string(), now])?;
                    if n > 0 {
                        added += 1;
                        id += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(added)
        })();
        drop(conn);
        self.sql(r)
    }

    /// Claim the lowest pending job, or a running one whose lease expired, for `owner`.
    pub fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Job>> {
        let mut conn = self.lock();
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row = tx
                .query_row(
                    "SELECT id, key, payload FROM jobs
                     WHERE status = 'pending' OR (status = 'running' AND lease_until < ?1)
                     ORDER BY id LIMIT 1",
                    [now],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((id, key, payload)) = row else {
                tx.commit()?;
                return Ok(None);
            };
            tx.execute(
                "UPDATE jobs SET status = 'running', lease_owner = ?1, lease_until = ?2, updated_at = ?3 WHERE id = ?4",
                params![owner, until, now, id],
            )?;
            tx.commit()?;
            Ok(Some((id, key, payload)))
        })();
        drop(conn);
        let Some((id, key, payload)) = self.sql(r)? else {
            return Ok(None);
        };
        let payload = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            message: format!("job {id} payload: {e}"),
        })?;
        Ok(Some(Job {
            id,
            key,
            payload,
            status: "running".into(),
            result: None,
        }))
    }

    /// Extend the leases of every job `owner` holds; returns how many.
    pub fn renew(&self, owner: &str, lease: Duration) -> Result<usize> {
        let conn = self.lock();
        let until = now_ms() + lease.as_millis() as i64;
        let r = conn.execute(
            "UPDATE jobs SET lease_until = ?1 WHERE lease_owner = ?2 AND status = 'running'",
            params![until, owner],
        );
        drop(conn);
        self.sql(r)
    }

    /// Hand back jobs held by owners for which `is_dead` is true (a crashed process's leases),
    /// so they can be claimed at once instead of after the lease expires.
    pub fn reclaim(&self, is_dead: impl Fn(&str) -> bool) -> Result<usize> {
        let owners: Vec<String> = {
            let conn = self.lock();
            let r = (|| {
                let mut stmt =
                    conn.prepare("SELECT DISTINCT lease_owner FROM jobs WHERE status = 'running' AND lease_owner IS NOT NULL")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })();
            drop(conn);
            self.sql(r)?
        };
        let mut n = 0;
        for owner in owners.into_iter().filter(|o| is_dead(o)) {
            let conn = self.lock();
            let r = conn.execute(
                "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1 AND status = 'running'",
                [&owner],
            );
            drop(conn);
            n += self.sql(r)?;
        }
        Ok(n)
    }

    /// Hand back the jobs `owner` holds without finishing them (graceful stop).
    pub fn release(&self, owner: &str) -> Result<usize> {
        self.reclaim(|o| o == owner)
    }

    /// Hand back one job `owner` holds without finishing it, so it is claimed again later.
    pub fn release_job(&self, owner: &str, job: i64) -> Result<bool> {
        let conn = self.lock();
        let r = conn.execute(
            "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
            params![job, owner],
        );
        drop(conn);
        self.sql(r).map(|n| n > 0)
    }

    fn check_lease(
        tx: &rusqlite::Transaction<'_>,
        job: i64,
        owner: &str,
    ) -> rusqlite::Result<Option<Option<String>>> {
        let holder: Option<String> = tx
            .query_row("SELECT lease_owner FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        Ok(if holder.as_deref() == Some(owner) {
            None
        } else {
            Some(holder)
        })
    }

    /// Commit one stage's result, with its trajectory and usage, in one transaction.
    ///
    /// Recording the same (job, attempt, stage) again replaces it: a retried stage after a
    /// crash never duplicates anything.
    // One call commits one stage atomically; bundling the parts into a struct would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn record_stage(
        &self,
        owner: &str,
        job: i64,
        attempt: i64,
        stage: &str,
        payload: &serde_json::Value,
        trajectory: Option<&TrajectoryRecord>,
        usage: Option<UsageRecord>,
    ) -> Result<()> {
        let mut conn = self.lock();
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(holder) = Self::check_lease(&tx, job, owner)? {
                return Ok(Err(holder));
            }
            tx.execute(
                "INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(job_id, attempt, stage) DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at",
                params![job, attempt, stage, payload.to_string(), now],
            )?;
            if let Some(t) = trajectory {
                tx.execute(
                    "INSERT INTO trajectories(job_id, attempt, rollout, exit_status, patch, data, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(job_id, attempt, rollout) DO UPDATE SET exit_status = excluded.exit_status,
                        patch = excluded.patch, data = excluded.data, recall = NULL, kept = 0, created_at = excluded.created_at",
                    params![job, attempt, t.rollout, t.exit_status, t.patch, t.data.to_string(), now],
                )?;
            }
            if let Some(u) = usage {
                tx.execute(
                    "DELETE FROM usage WHERE job_id = ?1 AND attempt = ?2 AND stage = ?3",
                    params![job, attempt, stage],
                )?;
                tx.execute(
                    "INSERT INTO usage(job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![job, attempt, stage, u.prompt_tokens as i64, u.completion_tokens as i64, u.model_seconds, now],
                )?;
            }
            tx.execute(
                "UPDATE jobs SET updated_at = ?1 WHERE id = ?2",
                params![now, job],
            )?;
            touch_session(&tx, owner, now)?;
            tx.commit()?;
            Ok(Ok(()))
        })();
        drop(conn);
        self.sql(r)?
            .map_err(|holder| StoreError::LeaseLost { job, holder })
    }

    /// Mark a trajectory kept or not, with its recall.
    pub fn set_verdict(
        &self,
        job: i64,
        attempt: i64,
        rollout: &str,
        kept: bool,
        recall: Option<f64>,
    ) -> Result<()> {
        let conn = self.lock();
        let r = conn.execute(
            "UPDATE trajectories SET kept = ?1, recall = COALESCE(?2, recall) WHERE job_id = ?3 AND attempt = ?4 AND rollout = ?5",
            params![kept as i64, recall, job, attempt, rollout],
        );
        drop(conn);
        self.sql(r).map(|_| ())
    }

    /// Finish a job with a result label.
    pub fn finish(&self, owner: &str, job: i64, result: &str) -> Result<()> {
        let mut conn = self.lock();
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(holder) = Self::check_lease(&tx, job, owner)? {
                return Ok(Err(holder));
            }
            tx.execute(
                "UPDATE jobs SET status = 'done', result = ?1, lease_owner = NULL, lease_until = NULL, updated_at = ?2 WHERE id = ?3",
                params![result, now, job],
            )?;
            touch_session(&tx, owner, now)?;
            tx.commit()?;
            Ok(Ok(()))
        })();
        drop(conn);
        self.sql(r)?
            .map_err(|holder| StoreError::LeaseLost { job, holder })
    }

    /// The stage results of a job, in commit order.
    pub fn stages(&self, job: i64) -> Result<Vec<StageRecord>> {
        self.query_stages(
            "WHERE job_id = ?1 ORDER BY attempt, created_at, stage",
            Some(job),
        )
    }

    /// Every stage result of the run.
    pub fn all_stages(&self) -> Result<Vec<StageRecord>> {
        self.query_stages("ORDER BY job_id, attempt, created_at, stage", None)
    }

    fn query_stages(&self, clause: &str, job: Option<i64>) -> Result<Vec<StageRecord>> {
        let conn = self.lock();
        let sql =
            format!("SELECT job_id, attempt, stage, payload, created_at FROM stages {clause}");
        let r = (|| {
            let mut stmt = conn.prepare(&sql)?;
            let map = |r: &rusqlite::Row<'_>| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            };
            let rows = match job {
                Some(j) => stmt
                    .query_map([j], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => stmt
                    .query_map([], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(rows)
        })();
        drop(conn);
        self.sql(r)?
            .into_iter()
            .map(|(job_id, attempt, stage, payload, created_at)| {
                let payload = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    message: format!("stage {stage} of job {job_id}: {e}"),
                })?;
                Ok(StageRecord {
                    job_id,
                    attempt,
                    stage,
                    payload,
                    created_at,
                })
            })
            .collect()
    }

    /// Every job.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt =
                conn.prepare("SELECT id, key, payload, status, result FROM jobs ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        self.sql(r)?
            .into_iter()
            .map(|(id, key, payload, status, result)| {
                let payload = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    message: format!("job {id}: {e}"),
                })?;
                Ok(Job {
                    id,
                    key,
                    payload,
                    status,
                    result,
                })
            })
            .collect()
    }

    /// Jobs per status.
    pub fn counts(&self) -> Result<JobCounts> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        let mut counts = JobCounts::default();
        for (status, n) in self.sql(r)? {
            match status.as_str() {
                "pending" => counts.pending = n as u64,
                "running" => counts.running = n as u64,
                "done" => counts.done = n as u64,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Every trajectory (data included when `with_data`).
    pub fn trajectories(&self, with_data: bool) -> Result<Vec<StoredTrajectory>> {
        let conn = self.lock();
        let data_col = if with_data { "data" } else { "'null'" };
        let sql = format!(
            "SELECT id, job_id, attempt, rollout, exit_status, patch, recall, kept, {data_col} FROM trajectories ORDER BY job_id, attempt, rollout"
        );
        let r = (|| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        self.sql(r)?
            .into_iter()
            .map(
                |(id, job_id, attempt, rollout, exit_status, patch, recall, kept, data)| {
                    let data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                        path: self.path.clone(),
                        message: format!("trajectory {id}: {e}"),
                    })?;
                    Ok(StoredTrajectory {
                        id,
                        job_id,
                        attempt,
                        rollout,
                        exit_status,
                        patch,
                        recall,
                        kept: kept != 0,
                        data,
                    })
                },
            )
            .collect()
    }

    /// Visit every trajectory in order (job, attempt, rollout) with its job and its attempt's
    /// stage results, one row at a time, so exports use memory independent of the run's size.
    /// `visit` returns false to stop early.
    pub fn for_each_trajectory(
        &self,
        with_data: bool,
        mut visit: impl FnMut(TrajectoryRow) -> bool,
    ) -> Result<()> {
        let conn = self.lock();
        let data_col = if with_data { "t.data" } else { "'null'" };
        // Stages become one JSON object per row (SQLite's JSON functions), keyed by stage name.
        let sql = format!(
            "SELECT t.id, t.job_id, t.attempt, t.rollout, t.exit_status, t.patch, t.recall, t.kept, {data_col},
                    j.key, j.payload,
                    (SELECT json_group_object(s.stage, json(s.payload)) FROM stages s
                      WHERE s.job_id = t.job_id AND s.attempt = t.attempt)
             FROM trajectories t LEFT JOIN jobs j ON j.id = t.job_id
             ORDER BY t.job_id, t.attempt, t.rollout"
        );
        let r = (|| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let row = TrajectoryRow {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    attempt: r.get(2)?,
                    rollout: r.get(3)?,
                    exit_status: r.get(4)?,
                    patch: r.get(5)?,
                    recall: r.get(6)?,
                    kept: r.get::<_, i64>(7)? != 0,
                    data: r.get(8)?,
                    job_key: r.get(9)?,
                    job_payload: r.get(10)?,
                    stages: r.get(11)?,
                };
                if !visit(row) {
                    break;
                }
            }
            Ok(())
        })();
        drop(conn);
        self.sql(r)
    }

    /// Number of stored trajectories.
    pub fn trajectory_count(&self) -> Result<u64> {
        let conn = self.lock();
        let r = conn.query_row("SELECT COUNT(*) FROM trajectories", [], |r| {
            r.get::<_, i64>(0)
        });
        drop(conn);
        self.sql(r).map(|n| n as u64)
    }

    /// One trajectory's data, if stored.
    pub fn trajectory_data(
        &self,
        job: i64,
        attempt: i64,
        rollout: &str,
    ) -> Result<Option<serde_json::Value>> {
        let conn = self.lock();
        let r = conn
            .query_row(
                "SELECT data FROM trajectories WHERE job_id = ?1 AND attempt = ?2 AND rollout = ?3",
                params![job, attempt, rollout],
                |r| r.get::<_, String>(0),
            )
            .optional();
        drop(conn);
        match self.sql(r)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    message: format!("trajectory of job {job}: {e}"),
                }),
        }
    }

    /// Whether another job already produced this exact P1 (byte-identical duplicates are discarded).
    pub fn has_other_t1_patch(&self, job: i64, patch: &str) -> Result<bool> {
        let conn = self.lock();
        let r = conn
            .query_row(
                "SELECT 1 FROM trajectories WHERE rollout = 't1' AND patch = ?1 AND job_id != ?2 LIMIT 1",
                params![patch, job],
                |_| Ok(()),
            )
            .optional();
        drop(conn);
        Ok(self.sql(r)?.is_some())
    }

    /// Add finished jobs with their stages and trajectories, and set `meta` values, in one
    /// transaction: either all of it is stored or nothing is. Jobs whose key exists are skipped.
    pub fn import_jobs(
        &self,
        jobs: &[ImportedJob],
        meta: &[(&str, String)],
    ) -> Result<ImportCounts> {
        let mut conn = self.lock();
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut counts = ImportCounts::default();
            {
                let mut id: i64 =
                    tx.query_row("SELECT COALESCE(MAX(id) + 1, 0) FROM jobs", [], |r| {
                        r.get(0)
                    })?;
                let mut job_insert = tx.prepare(
                    "INSERT OR IGNORE INTO jobs(id, key, payload, status, result, updated_at) VALUES (?1, ?2, ?3, 'done', ?4, ?5)",
                )?;
                let mut stage_insert = tx.prepare(
                    "INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, 1, ?2, ?3, ?4)",
                )?;
                let mut traj_insert = tx.prepare(
                    "INSERT INTO trajectories(job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for job in jobs {
                    let n = job_insert.execute(params![
                        id,
                        job.key,
                        job.payload.to_string(),
                        job.result,
                        now
                    ])?;
                    if n == 0 {
                        counts.duplicates += 1;
                        continue;
                    }
                    for (stage, payload) in &job.stages {
                        stage_insert.execute(params![id, stage, payload.to_string(), now])?;
                    }
                    let t = &job.trajectory;
                    traj_insert.execute(params![
                        id,
                        t.rollout,
                        t.exit_status,
                        t.patch,
                        job.recall,
                        job.kept as i64,
                        t.data.to_string(),
                        now
                    ])?;
                    counts.added += 1;
                    id += 1;
                }
            }
            for (key, value) in meta {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )?;
            }
            tx.commit()?;
            Ok(counts)
        })();
        drop(conn);
        self.sql(r)
    }

    /// Note that process `owner` starts working on the run now (its wall time counts from
    /// here, not from its first committed stage).
    pub fn begin_session(&self, owner: &str) -> Result<()> {
        let now = now_ms();
        let conn = self.lock();
        let r = conn.execute(
            "INSERT INTO sessions(owner, started_at, last_at) VALUES (?1, ?2, ?2)
             ON CONFLICT(owner) DO NOTHING",
            params![owner, now],
        );
        drop(conn);
        self.sql(r).map(|_| ())
    }

    /// When each process that worked on the run started and last committed something
    /// (milliseconds since the epoch), by start. Empty for stores written before sessions
    /// were recorded.
    pub fn session_spans(&self) -> Result<Vec<(i64, i64)>> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare(
                "SELECT started_at, MAX(started_at, last_at) FROM sessions ORDER BY started_at",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        self.sql(r)
    }

    /// Total usage per stage name.
    pub fn usage_by_stage(&self) -> Result<Vec<(String, UsageRecord)>> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare(
                "SELECT stage, SUM(prompt_tokens), SUM(completion_tokens), SUM(model_seconds) FROM usage GROUP BY stage ORDER BY stage",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    UsageRecord {
                        prompt_tokens: r.get::<_, i64>(1)? as u64,
                        completion_tokens: r.get::<_, i64>(2)? as u64,
                        model_seconds: r.get::<_, f64>(3)?,
                    },
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        self.sql(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jobs(n: usize) -> Vec<(String, serde_json::Value)> {
        (0..n).map(|i| (format!("f{i}"), json!({"i": i}))).collect()
    }

    #[test]
    fn sessions_span_from_their_start_to_their_last_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert!(store.session_spans().expect("spans").is_empty());
        store.add_jobs(&jobs(1)).expect("add");
        store.begin_session("w1").expect("begin");
        std::thread::sleep(Duration::from_millis(30));
        let job = store
            .claim("w1", Duration::from_secs(60))
            .expect("claim")
            .expect("job");
        store
            .record_stage("w1", job.id, 1, "rollout1", &json!({}), None, None)
            .expect("stage");
        std::thread::sleep(Duration::from_millis(30));
        store.finish("w1", job.id, "kept").expect("finish");
        let spans = store.session_spans().expect("spans");
        assert_eq!(spans.len(), 1);
        // The first stage came 30 ms after the start: that time counts too.
        assert!(spans[0].1 - spans[0].0 >= 60, "{spans:?}");
        // A later session that commits nothing spans nothing; reopening keeps the sessions.
        store.begin_session("w2").expect("begin");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let again = store.session_spans().expect("spans");
        assert_eq!(again[0], spans[0]);
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].0, again[1].1);
    }

    #[test]
    fn jobs_are_added_once_and_claimed_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.add_jobs(&jobs(3)).expect("add"), 3);
        assert_eq!(
            store.add_jobs(&jobs(5)).expect("add"),
            2,
            "existing keys are not added again"
        );
        let a = store
            .claim("w1", Duration::from_secs(60))
            .expect("claim")
            .expect("job");
        let b = store
            .claim("w2", Duration::from_secs(60))
            .expect("claim")
            .expect("job");
        assert_eq!((a.id, b.id), (0, 1));
        assert_eq!(a.payload, json!({"i": 0}));
        let counts = store.counts().expect("counts");
        assert_eq!((counts.pending, counts.running, counts.done), (3, 2, 0));
    }

    #[test]
    fn expired_or_dead_leases_are_reclaimed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.add_jobs(&jobs(1)).expect("add");
        let job = store
            .claim("dead", Duration::from_millis(0))
            .expect("claim")
            .expect("job");
        std::thread::sleep(Duration::from_millis(5));
        // The lease expired: another worker may take it, and the first one can no longer write.
        let again = store
            .claim("alive", Duration::from_secs(60))
            .expect("claim")
            .expect("job");
        assert_eq!(again.id, job.id);
        let err = store
            .record_stage("dead", job.id, 1, "x", &json!({}), None, None)
            .expect_err("lease lost");
        assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
        // A dead owner's jobs go back to pending at once.
        assert_eq!(store.reclaim(|o| o == "alive").expect("reclaim"), 1);
        assert_eq!(store.counts().expect("counts").pending, 1);
    }

    #[test]
    fn stages_are_idempotent_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store.add_jobs(&jobs(1)).expect("add");
            let job = store
                .claim("w", Duration::from_secs(60))
                .expect("claim")
                .expect("job");
            let t = TrajectoryRecord {
                rollout: "t1".into(),
                exit_status: "submitted".into(),
                patch: Some("p".into()),
                data: json!({"steps": 1}),
            };
            let u = UsageRecord {
                prompt_tokens: 10,
                completion_tokens: 2,
                model_seconds: 0.5,
            };
            store
                .record_stage(
                    "w",
                    job.id,
                    1,
                    "rollout1",
                    &json!({"a": 1}),
                    Some(&t),
                    Some(u),
                )
                .expect("record");
            store
                .record_stage(
                    "w",
                    job.id,
                    1,
                    "rollout1",
                    &json!({"a": 2}),
                    Some(&t),
                    Some(u),
                )
                .expect("record again");
            store
                .set_verdict(job.id, 1, "t1", true, None)
                .expect("verdict");
            store.finish("w", job.id, "kept").expect("finish");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let stages = store.all_stages().expect("stages");
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].payload, json!({"a": 2}));
        let trajs = store.trajectories(true).expect("trajectories");
        assert_eq!(trajs.len(), 1);
        assert!(trajs[0].kept);
        let mut streamed = Vec::new();
        store
            .for_each_trajectory(true, |row| {
                streamed.push(row);
                true
            })
            .expect("stream");
        assert_eq!(streamed.len(), 1);
        assert_eq!(streamed[0].data, r#"{"steps":1}"#);
        assert_eq!(streamed[0].job_key.as_deref(), Some("f0"));
        let stages: serde_json::Value =
            serde_json::from_str(streamed[0].stages.as_deref().expect("stages")).expect("json");
        assert_eq!(stages, json!({"rollout1": {"a": 2}}));
        assert_eq!(store.trajectory_count().expect("count"), 1);
        assert_eq!(
            store.usage_by_stage().expect("usage")[0].1.prompt_tokens,
            10,
            "usage is not double counted"
        );
        assert!(store.has_other_t1_patch(99, "p").expect("dup"));
        assert!(!store.has_other_t1_patch(0, "p").expect("dup"));
        assert_eq!(
            store.jobs().expect("jobs")[0].result.as_deref(),
            Some("kept")
        );
        assert!(
            store
                .claim("w", Duration::from_secs(1))
                .expect("claim")
                .is_none()
        );
    }

    #[test]
    fn imported_jobs_are_added_once_and_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.add_jobs(&jobs(1)).expect("add");
        let job = |key: &str| ImportedJob {
            key: key.into(),
            payload: json!({"k": key}),
            result: "kept".into(),
            stages: vec![("import".into(), json!({"line": 1}))],
            trajectory: TrajectoryRecord {
                rollout: "t2".into(),
                exit_status: "submitted".into(),
                patch: Some("p".into()),
                data: json!({"steps": []}),
            },
            recall: Some(0.5),
            kept: true,
        };
        let c = store
            .import_jobs(&[job("a"), job("b")], &[("kind", "import".into())])
            .expect("import");
        assert_eq!((c.added, c.duplicates), (2, 0));
        let c = store
            .import_jobs(&[job("b"), job("c")], &[])
            .expect("import again");
        assert_eq!((c.added, c.duplicates), (1, 1));
        let all = store.jobs().expect("jobs");
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].key, "c");
        assert_eq!(all[3].status, "done");
        let trajs = store.trajectories(true).expect("trajectories");
        assert_eq!(trajs.len(), 3);
        assert_eq!(trajs[0].recall, Some(0.5));
        assert!(trajs.iter().all(|t| t.kept && t.attempt == 1));
        assert_eq!(store.all_stages().expect("stages").len(), 3);
        assert_eq!(store.meta("kind").expect("meta").as_deref(), Some("import"));
        // Imported jobs are finished: a worker never claims them.
        let claimed = store
            .claim("w", Duration::from_secs(1))
            .expect("claim")
            .expect("the generated job");
        assert_eq!(claimed.key, "f0");
        assert!(
            store
                .claim("w", Duration::from_secs(1))
                .expect("claim")
                .is_none()
        );
    }

    #[test]
    fn meta_round_trip_and_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_meta("k", "v1").expect("set");
        store.set_meta("k", "v2").expect("set");
        assert_eq!(store.meta("k").expect("get").as_deref(), Some("v2"));
        store.set_meta("schema_version", "999").expect("set");
        drop(store);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Version { found: 999, .. })
        ));
    }
}
