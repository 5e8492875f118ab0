//! Durable storage of a run: its settings, its jobs under leases, every stage's result and
//! every trajectory, in one SQLite database (WAL mode) inside the run folder, or in a
//! PostgreSQL database shared by worker processes on many machines ([`Location`]).
//!
//! Design rules, so a Postgres backend with several workers can follow without changing the
//! pipeline: all state lives in the database (nothing only in a process); a worker *claims*
//! a job under a time-limited lease and renews it while working; every stage result is
//! committed in one transaction together with the trajectory it produced; recording a stage
//! twice is idempotent; and a lease held by a dead process is reclaimed.
//!
//! The records themselves are typed in [`model`] (stage names and payloads, job outcomes,
//! rollout kinds, exit statuses, trajectory metadata); the store is split by concept:
//! schema (tables, run-level values), jobs and leases, stages, trajectories (with imports)
//! and sessions, each written for SQLite, with the PostgreSQL backend beside them (`pg`: the
//! same operations, one schema per run) and [`copy`] moving a whole run between the two
//! (`trajforge store copy`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

mod browse;
pub mod copy;
mod dup;
mod jobs;
pub mod model;
mod pg;
mod schema;
mod sessions;
mod stages;
mod trajectories;

pub use browse::{ChangeMark, postgres_runs};
pub use jobs::{Job, JobCounts, JobTally, WorkerInfo};
pub use model::{
    ExitLabel, JobStatus, Outcome, RejectReason, Rollout, Stage, StageName, TrajectoryMeta,
    TrajectoryRecord,
};
pub use pg::{redact_url, valid_run_name};
pub use stages::{StageRecord, StageTallies, UsageRecord};
pub use trajectories::{
    ImportCounts, ImportedJob, StoredTrajectory, TrajectoryRow, TrajectoryTally,
};

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
    /// PostgreSQL failed.
    #[error("{location}: database error: {source}")]
    Postgres {
        /// The database (password hidden) and run.
        location: String,
        /// What the server or client said.
        source: postgres::Error,
    },
    /// A run name that cannot name a run.
    #[error("run name {0:?}: use letters, digits, '_' and '-', at most 40")]
    RunName(String),
    /// A Postgres store needs a run name.
    #[error("{0}: a PostgreSQL store holds several runs: name one with --run NAME")]
    NoRunName(String),
    /// A copy's target already holds a run.
    #[error("{0}: already holds a run; a copy goes into a new one")]
    NotEmpty(String),
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

/// Where a run is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A run folder holding its SQLite database.
    Folder(PathBuf),
    /// Run `run` in the PostgreSQL database at `url`.
    Postgres {
        /// `postgres://USER@HOST/DB` (any libpq-style URL).
        url: String,
        /// The run's name.
        run: String,
    },
}

impl Location {
    /// A `postgres://` or `postgresql://` URL with `run`, else the run folder `place`.
    pub fn parse(place: &str, run: Option<&str>) -> Result<Location> {
        if place.starts_with("postgres://") || place.starts_with("postgresql://") {
            let run = run.ok_or_else(|| StoreError::NoRunName(redact_url(place)))?;
            if !valid_run_name(run) {
                return Err(StoreError::RunName(run.to_string()));
            }
            Ok(Location::Postgres {
                url: place.to_string(),
                run: run.to_string(),
            })
        } else {
            Ok(Location::Folder(PathBuf::from(place)))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(p) => write!(f, "{}", p.display()),
            Location::Postgres { url, run } => write!(f, "{} (run {run})", redact_url(url)),
        }
    }
}

/// The run database.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
    path: PathBuf,
}

/// The database behind a [`Store`]: every public operation exists for both.
#[derive(Debug)]
enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres(Box<pg::Pg>),
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
            backend: Backend::Sqlite(Mutex::new(conn)),
            path,
        })
    }

    /// Run `body` on a run folder's connection (tests that alter a store by hand).
    #[cfg(test)]
    pub(crate) fn with_connection<T>(
        &self,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.lock();
        let r = body(&conn);
        drop(conn);
        self.sql(r)
    }

    /// Open (creating if needed) the run at `location`.
    pub fn open_at(location: &Location) -> Result<Store> {
        match location {
            Location::Folder(dir) => Store::open(dir),
            Location::Postgres { url, run } => Ok(Store::postgres(
                pg::Pg::open(url, run, true)?
                    .ok_or_else(|| StoreError::NoRunName(redact_url(url)))?,
            )),
        }
    }

    /// Open the existing run at `location`; `None` when there is none.
    pub fn open_existing_at(location: &Location) -> Result<Option<Store>> {
        match location {
            Location::Folder(dir) => Store::open_existing(dir),
            Location::Postgres { url, run } => {
                Ok(pg::Pg::open(url, run, false)?.map(Store::postgres))
            }
        }
    }

    fn postgres(pg: pg::Pg) -> Store {
        Store {
            path: PathBuf::from(&pg.location),
            backend: Backend::Postgres(Box::new(pg)),
        }
    }

    /// The database file (for a Postgres run: its URL, password hidden, and name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run as named in messages.
    pub fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether the run lives in PostgreSQL (shared by workers on several machines).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The Postgres backend, when the run lives there.
    fn pg(&self) -> Option<&pg::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
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
        self.select_with(sql, [], row)
    }

    /// Every row `sql` selects with `params` bound, each read by `row`; the connection is
    /// held only while reading.
    pub(crate) fn select_with<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params, row)?;
            rows.collect::<rusqlite::Result<Vec<T>>>()
        })();
        drop(conn);
        self.sql(r)
    }

    /// Visit the rows `sql` (without parameters) selects one at a time, each read by
    /// `columns` then `parse`, until `visit` returns false; memory does not grow with the
    /// number of rows. The connection is held while visiting.
    pub(crate) fn stream<C, T>(
        &self,
        sql: &str,
        columns: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<C>,
        parse: impl Fn(C) -> Result<T>,
        mut visit: impl FnMut(T) -> bool,
    ) -> Result<()> {
        let conn = self.lock();
        let mut bad = None;
        let r = (|| {
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                match parse(columns(r)?) {
                    Ok(item) => {
                        if !visit(item) {
                            break;
                        }
                    }
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            Ok(())
        })();
        drop(conn);
        self.sql(r)?;
        bad.map_or(Ok(()), Err)
    }

    /// A corrupt-record error on this database.
    pub(crate) fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message,
        }
    }

    /// The SQLite connection; every operation dispatches a Postgres store to [`pg`] before
    /// reaching here.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        let Backend::Sqlite(conn) = &self.backend else {
            unreachable!("SQLite operation on a PostgreSQL store")
        };
        // A panic elsewhere while holding the lock leaves the connection usable: SQLite
        // rolls back any transaction that was not committed.
        conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pg;
