//! The database schema and run-level values.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, StoreError};

/// Bump when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

impl Store {
    pub(crate) fn init(&self) -> Result<()> {
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
             -- What `status` counts of the trajectories, read without their bodies. Added
             -- without a schema bump: older stores gain it when next opened for writing.
             CREATE INDEX IF NOT EXISTS trajectories_verdict
                 ON trajectories(rollout, exit_status, kept);
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
             );
             -- What each process counted on each teacher server (cumulative, replaced as it
             -- goes). Added without a schema bump, like sessions: older stores gain it empty.
             CREATE TABLE IF NOT EXISTS teacher_servers (
                 owner TEXT NOT NULL,
                 url TEXT NOT NULL,
                 requests INTEGER NOT NULL,
                 errors INTEGER NOT NULL,
                 latency_seconds REAL NOT NULL,
                 max_latency_seconds REAL NOT NULL,
                 ejections INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL,
                 PRIMARY KEY (owner, url)
             );
             -- The duplicate-P1 check looks P1s up by their text, once per job: without an
             -- index a run's jobs would cost quadratic time. An index changes no data, so it
             -- comes without a schema bump.
             CREATE INDEX IF NOT EXISTS trajectories_t1_patch ON trajectories(rollout, patch);",
        );
        drop(conn);
        self.sql(r)?;
        if self.meta("schema_version")?.is_none() {
            // A new run judges duplicate P1s by the sample's order (see `dup`).
            self.set_meta(crate::dup::RULE_KEY, crate::dup::SAMPLE_ORDER)?;
            return self.set_meta("schema_version", &SCHEMA_VERSION.to_string());
        }
        self.check_version()
    }

    /// The stored schema version must be this version's (a store without one is new).
    fn check_version(&self) -> Result<()> {
        let Some(v) = self.meta("schema_version")? else {
            return Ok(());
        };
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

    /// Check a read-only connection: wait for writers, and the schema version must match.
    pub(crate) fn check_read_only(&self) -> Result<()> {
        let conn = self.lock();
        let r = conn.execute_batch("PRAGMA busy_timeout = 10000;");
        drop(conn);
        self.sql(r)?;
        self.check_version()
    }

    /// A run-level value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        if let Some(pg) = self.pg() {
            return pg.meta(key);
        }
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
        if let Some(pg) = self.pg() {
            return pg.set_meta(key, value);
        }
        let conn = self.lock();
        let r = conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        );
        drop(conn);
        self.sql(r).map(|_| ())
    }
}
