//! Durable storage of a run: its settings, its jobs under leases, every stage's result and
//! every trajectory, in one SQLite database (WAL mode) inside the run folder.
//!
//! Design rules, so a Postgres backend with several workers can follow without changing the
//! pipeline: all state lives in the database (nothing only in a process); a worker *claims*
//! a job under a time-limited lease and renews it while working; every stage result is
//! committed in one transaction together with the trajectory it produced; recording a stage
//! twice is idempotent; and a lease held by a dead process is reclaimed.
//!
//! The records themselves are typed in [`model`] (stage names and payloads, job outcomes,
//! rollout kinds, exit statuses, trajectory metadata); the store is split by concept:
//! schema (tables, run-level values), jobs and leases, stages,
//! trajectories (with imports) and sessions.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

mod jobs;
pub mod model;
mod schema;
mod sessions;
mod stages;
mod trajectories;

pub use jobs::{Job, JobCounts};
pub use model::{
    ExitLabel, JobStatus, Outcome, RejectReason, Rollout, Stage, StageName, TrajectoryMeta,
    TrajectoryRecord,
};
pub use stages::{StageRecord, UsageRecord};
pub use trajectories::{ImportCounts, ImportedJob, StoredTrajectory, TrajectoryRow};

/// Database file name inside a run folder.
pub const DB_FILE: &str = "trajforge.db";

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
    /// The database file is empty (0 bytes): no run was ever stored in it.
    #[error("{path}: empty file (0 bytes), not a run's database")]
    Empty {
        /// The database file.
        path: PathBuf,
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

/// The run database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

pub(crate) fn now_ms() -> i64 {
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
        let store = Store::connect(dir.join(DB_FILE), rusqlite::OpenFlags::default())?;
        store.init()?;
        Ok(store)
    }

    /// Open an existing run's database read-mostly (for `status` and exports); it must exist.
    pub fn open_existing(dir: &Path) -> Result<Option<Store>> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        // SQLite takes an empty file for an empty database and would write a schema into it.
        if path.metadata().is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Empty { path });
        }
        Store::open(dir).map(Some)
    }

    /// Open an existing run's database for reading only (a viewer beside a live run): nothing
    /// is created or written, and the schema version is checked as [`Store::open`] does.
    pub fn open_read_only(dir: &Path) -> Result<Option<Store>> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let store = Store::connect(path, flags)?;
        store.check_read_only()?;
        Ok(Some(store))
    }

    fn connect(path: PathBuf, flags: rusqlite::OpenFlags) -> Result<Store> {
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Run `body` on the connection (read-only queries of other crates, such as a viewer's).
    pub fn with_connection<T>(
        &self,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.lock();
        let r = body(&conn);
        drop(conn);
        self.sql(r)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Every row `sql` (without parameters) selects, each read by `row`; the connection is
    /// held only while reading.
    pub(crate) fn select_all<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map([], row)?;
            rows.collect::<rusqlite::Result<Vec<T>>>()
        })();
        drop(conn);
        self.sql(r)
    }

    /// A corrupt-record error on this database.
    pub(crate) fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves the connection usable: SQLite
        // rolls back any transaction that was not committed.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
