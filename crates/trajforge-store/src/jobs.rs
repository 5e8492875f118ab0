//! Jobs under leases: adding, claiming, renewing, reclaiming, releasing and finishing them.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::model::{JobStatus, Outcome};
use crate::sessions::touch_session;
use crate::{Result, Store, StoreError, now_ms};

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id (order of the sample).
    pub id: i64,
    /// Stable key (for a function: `path::name@line`).
    pub key: String,
    /// What to work on (JSON).
    pub payload: serde_json::Value,
    /// Where it stands.
    pub status: JobStatus,
    /// Its result when done.
    pub result: Option<Outcome>,
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

/// A process working on the run, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its lease owner name (`host:pid:start`).
    pub owner: String,
    /// When it started, ms since the epoch.
    pub started_at: i64,
    /// Its last heartbeat (Postgres) or commit (SQLite), ms since the epoch.
    pub last_seen: i64,
    /// Jobs it finished (recorded by Postgres stores only).
    pub jobs_done: Option<u64>,
    /// Jobs it holds under a live lease now.
    pub in_flight: u64,
}

/// The columns of a job row, in [`JOB_SELECT`]'s order.
type JobColumns = (i64, String, String, String, Option<String>);

/// The query of job rows, a clause to append.
const JOB_SELECT: &str = "SELECT id, key, payload, status, result FROM jobs";

fn job_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl Store {
    /// The processes that worked on the run, by start, and the store's clock now (ms).
    pub fn workers(&self) -> Result<(i64, Vec<WorkerInfo>)> {
        if let Some(pg) = self.pg() {
            return pg.workers();
        }
        let now = now_ms();
        let rows = self.select_all(
            "SELECT s.owner, s.started_at, MAX(s.started_at, s.last_at),
                (SELECT COUNT(*) FROM jobs j WHERE j.lease_owner = s.owner AND j.status = 'running')
             FROM sessions s ORDER BY s.started_at",
            |r| {
                Ok(WorkerInfo {
                    owner: r.get(0)?,
                    started_at: r.get(1)?,
                    last_seen: r.get(2)?,
                    jobs_done: None,
                    in_flight: r.get::<_, i64>(3)? as u64,
                })
            },
        )?;
        Ok((now, rows))
    }

    /// Add jobs that are not there yet (by key); returns how many were added.
    pub fn add_jobs(&self, jobs: &[(String, serde_json::Value)]) -> Result<usize> {
        if let Some(pg) = self.pg() {
            return pg.add_jobs(jobs);
        }
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
        if let Some(pg) = self.pg() {
            return pg.claim(owner, lease);
        }
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
                    |r| <(i64, String, String)>::try_from(r),
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
            status: JobStatus::Running,
            result: None,
        }))
    }

    /// Extend the leases of every job `owner` holds (the worker's heartbeat); returns how
    /// many. A Postgres lease that expired already is not renewed: it may be another's now.
    pub fn renew(&self, owner: &str, lease: Duration) -> Result<usize> {
        if let Some(pg) = self.pg() {
            return pg.renew(owner, lease);
        }
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
        if let Some(pg) = self.pg() {
            let mut n = 0;
            for owner in pg.running_owners()?.into_iter().filter(|o| is_dead(o)) {
                n += pg.release_owner(&owner)?;
            }
            return Ok(n);
        }
        let owners: Vec<String> = self.select_all(
            "SELECT DISTINCT lease_owner FROM jobs WHERE status = 'running' AND lease_owner IS NOT NULL",
            |r| r.get::<_, String>(0),
        )?;
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
        if let Some(pg) = self.pg() {
            return pg.release_job(owner, job);
        }
        let conn = self.lock();
        let r = conn.execute(
            "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
            params![job, owner],
        );
        drop(conn);
        self.sql(r).map(|n| n > 0)
    }

    /// Run `body` in one immediate transaction that first checks `owner` still holds the lease
    /// of `job`, then marks the owner's session active and commits; a lost lease commits nothing.
    pub(crate) fn with_lease(
        &self,
        owner: &str,
        job: i64,
        body: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let mut conn = self.lock();
        let now = now_ms();
        let r = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let holder: Option<String> = tx
                .query_row("SELECT lease_owner FROM jobs WHERE id = ?1", [job], |r| {
                    r.get(0)
                })
                .optional()?
                .flatten();
            if holder.as_deref() != Some(owner) {
                return Ok(Err(holder));
            }
            body(&tx, now)?;
            touch_session(&tx, owner, now)?;
            tx.commit()?;
            Ok(Ok(()))
        })();
        drop(conn);
        self.sql(r)?
            .map_err(|holder| StoreError::LeaseLost { job, holder })
    }

    /// Finish a job with a result label.
    pub fn finish(&self, owner: &str, job: i64, result: &Outcome) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.finish(owner, job, result);
        }
        self.with_lease(owner, job, |tx, now| {
            tx.execute(
                "UPDATE jobs SET status = 'done', result = ?1, lease_owner = NULL, lease_until = NULL, updated_at = ?2 WHERE id = ?3",
                params![result.as_str(), now, job],
            )?;
            Ok(())
        })
    }

    /// Every job.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        if let Some(pg) = self.pg() {
            return pg.jobs();
        }
        self.select_jobs_with("ORDER BY id", [])
    }

    /// One job, if there is one with this id.
    pub fn job(&self, id: i64) -> Result<Option<Job>> {
        if let Some(pg) = self.pg() {
            return Ok(pg.jobs_where("WHERE id = $1", &[&id])?.pop());
        }
        Ok(self.select_jobs_with("WHERE id = ?1", [id])?.pop())
    }

    /// Visit every job in id order, one at a time, so memory does not grow with the run
    /// (`status` on a large run); `visit` returns false to stop early.
    pub fn for_each_job(&self, visit: impl FnMut(Job) -> bool) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.for_each_job(visit);
        }
        self.stream(
            &format!("{JOB_SELECT} ORDER BY id"),
            job_columns,
            |columns| self.job_of(columns),
            visit,
        )
    }

    /// The jobs `clause` selects, with `params` bound.
    pub(crate) fn select_jobs_with(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Job>> {
        let sql = format!("{JOB_SELECT} {clause}");
        self.select_with(&sql, params, job_columns)?
            .into_iter()
            .map(|columns| self.job_of(columns))
            .collect()
    }

    /// A job from the columns [`JOB_SELECT`] reads, its payload parsed.
    fn job_of(&self, (id, key, payload, status, result): JobColumns) -> Result<Job> {
        let payload = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            message: format!("job {id}: {e}"),
        })?;
        Ok(Job {
            id,
            key,
            payload,
            status: JobStatus::from(status),
            result: result.map(Outcome::from),
        })
    }

    /// Jobs per status.
    pub fn counts(&self) -> Result<JobCounts> {
        if let Some(pg) = self.pg() {
            return pg.counts();
        }
        let rows = self.select_all("SELECT status, COUNT(*) FROM jobs GROUP BY status", |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut counts = JobCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => counts.pending = n as u64,
                "running" => counts.running = n as u64,
                "done" => counts.done = n as u64,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// Jobs that share a status, a result and (web jobs) an intent and start page, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTally {
    /// Their status.
    pub status: JobStatus,
    /// Their result, when done.
    pub result: Option<Outcome>,
    /// Whether their payload names an intent (a web run's jobs do).
    pub has_intent: bool,
    /// The intent (empty when none is named as text).
    pub intent: String,
    /// The start page (empty when none is named as text).
    pub start_url: String,
    /// How many.
    pub count: u64,
}

impl Store {
    /// The jobs counted by the database by status, result, intent and start page, without
    /// reading a payload here, on either backend (an `Option` for callers that can also visit
    /// [`Store::for_each_job`]).
    pub fn job_tallies(&self) -> Result<Option<Vec<JobTally>>> {
        if let Some(pg) = self.pg() {
            return pg.job_tallies().map(Some);
        }
        let text = |key: &str| {
            format!(
                "CASE WHEN json_type(payload, '$.{key}') = 'text' THEN json_extract(payload, '$.{key}') ELSE '' END"
            )
        };
        let sql = format!(
            "SELECT status, result, json_type(payload, '$.intent') IS NOT NULL, {}, {}, COUNT(*)
             FROM jobs GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            text("intent"),
            text("start_url")
        );
        self.select_all(&sql, |r| {
            Ok(JobTally {
                status: JobStatus::from(r.get::<_, String>(0)?),
                result: r.get::<_, Option<String>>(1)?.map(Outcome::from),
                has_intent: r.get(2)?,
                intent: r.get(3)?,
                start_url: r.get(4)?,
                count: r.get::<_, i64>(5)? as u64,
            })
        })
        .map(Some)
    }
}
