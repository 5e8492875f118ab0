//! Sessions: which processes worked on the run, and when (for wall time).

use rusqlite::params;

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
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
    }
}
