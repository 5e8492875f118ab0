//! Sessions: which processes worked on the run, when (for wall time), and what each counted
//! on every teacher server.

use rusqlite::params;
use trajforge_chat::ServerStats;

use crate::{Result, Store, now_ms};

/// The session of `owner` was active at `now`.
pub(crate) fn touch_session(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE sessions SET last_at = MAX(last_at, ?2) WHERE owner = ?1",
        params![owner, now],
    )
    .map(|_| ())
}

impl Store {
    /// Note that process `owner` starts working on the run now (its wall time counts from
    /// here, not from its first committed stage).
    pub fn begin_session(&self, owner: &str) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.begin_session(owner);
        }
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
        if let Some(pg) = self.pg() {
            return pg.session_spans();
        }
        self.select_all(
            "SELECT started_at, MAX(started_at, last_at) FROM sessions ORDER BY started_at",
            |r| <(i64, i64)>::try_from(r),
        )
    }

    /// When each finished job finished (milliseconds since the epoch, by the store's clock),
    /// oldest first, and the store's clock now: what throughput over time is drawn from.
    pub fn finish_times(&self) -> Result<(i64, Vec<i64>)> {
        if let Some(pg) = self.pg() {
            return pg.finish_times();
        }
        let times = self.select_all(
            "SELECT updated_at FROM jobs WHERE status = 'done' ORDER BY updated_at",
            |r| r.get(0),
        )?;
        Ok((now_ms(), times))
    }
}

impl Store {
    /// Replace what process `owner` has counted so far on each teacher server (cumulative
    /// figures, so recording them again, periodically or at the end, never double counts).
    pub fn record_teacher_servers(&self, owner: &str, servers: &[ServerStats]) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.record_teacher_servers(owner, servers);
        }
        let now = now_ms();
        let mut conn = self.lock();
        let r = (|| {
            let tx = conn.transaction()?;
            for s in servers {
                tx.execute(
                    "INSERT INTO teacher_servers(owner, url, requests, errors, latency_seconds,
                        max_latency_seconds, ejections, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(owner, url) DO UPDATE SET requests = excluded.requests,
                        errors = excluded.errors, latency_seconds = excluded.latency_seconds,
                        max_latency_seconds = excluded.max_latency_seconds,
                        ejections = excluded.ejections, updated_at = excluded.updated_at",
                    params![
                        owner,
                        s.url,
                        s.requests as i64,
                        s.errors as i64,
                        s.latency_seconds,
                        s.max_latency_seconds,
                        s.ejections as i64,
                        now
                    ],
                )?;
            }
            tx.commit()
        })();
        drop(conn);
        self.sql(r)
    }

    /// Every teacher server of the run with the figures of all processes summed, in the
    /// order they were first recorded. Empty for runs recorded before per-server figures.
    pub fn teacher_servers(&self) -> Result<Vec<ServerStats>> {
        if let Some(pg) = self.pg() {
            return pg.teacher_servers();
        }
        // A store opened read-only (a viewer) cannot create the table on older runs.
        let has_table = self.select_all(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'teacher_servers'",
            |_| Ok(()),
        )?;
        if has_table.is_empty() {
            return Ok(Vec::new());
        }
        self.select_all(
            "SELECT url, SUM(requests), SUM(errors), SUM(latency_seconds), MAX(max_latency_seconds),
                    SUM(ejections)
             FROM teacher_servers GROUP BY url ORDER BY MIN(rowid)",
            |r| {
                Ok(ServerStats {
                    url: r.get(0)?,
                    requests: r.get::<_, i64>(1)? as u64,
                    errors: r.get::<_, i64>(2)? as u64,
                    latency_seconds: r.get(3)?,
                    max_latency_seconds: r.get(4)?,
                    ejections: r.get::<_, i64>(5)? as u64,
                })
            },
        )
    }
}
