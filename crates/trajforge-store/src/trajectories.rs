//! Stored trajectories: verdicts, listing, streaming for exports, and imported jobs.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::dup;
use crate::model::{ExitLabel, Outcome, Rollout, Stage, TrajectoryMeta};
use crate::{Result, Store, TrajectoryRecord, now_ms};

/// A stored trajectory with its verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTrajectory {
    /// Where it belongs, how it ended, the verdict.
    #[serde(flatten)]
    pub meta: TrajectoryMeta,
    /// The whole trajectory (JSON).
    pub data: serde_json::Value,
}

/// A stored trajectory as streamed for exports: JSON columns stay text, for the reader to parse.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryRow {
    /// Where it belongs, how it ended, the verdict.
    pub meta: TrajectoryMeta,
    /// The whole trajectory (JSON text; `null` when streamed without data).
    pub data: String,
    /// The job's key, when the job row exists.
    pub job_key: Option<String>,
    /// The job's payload (JSON text).
    pub job_payload: Option<String>,
    /// The attempt's stage results as one JSON object keyed by stage name (JSON text, as
    /// stored: exports write them unchanged).
    pub stages: Option<String>,
}

/// The columns [`meta_of`] reads, then the data column, for a query on `trajectories t`.
pub(crate) const META_COLUMNS: &str =
    "t.id, t.job_id, t.attempt, t.rollout, t.exit_status, t.patch, t.recall, t.kept";

/// A trajectory's metadata from the first columns of a row selected with [`META_COLUMNS`].
pub(crate) fn meta_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrajectoryMeta> {
    Ok(TrajectoryMeta {
        id: r.get(0)?,
        job_id: r.get(1)?,
        attempt: r.get(2)?,
        rollout: Rollout::from(r.get::<_, String>(3)?),
        exit_status: ExitLabel::from(r.get::<_, String>(4)?),
        patch: r.get(5)?,
        recall: r.get(6)?,
        kept: r.get::<_, i64>(7)? != 0,
    })
}

/// The query of [`TrajectoryRow`]s with `clause` (a filter or an order) appended. Stages become
/// one JSON object per row (SQLite's JSON functions), keyed by stage name.
fn row_sql(with_data: bool, clause: &str) -> String {
    let data_col = if with_data { "t.data" } else { "'null'" };
    format!(
        "SELECT {META_COLUMNS}, {data_col},
                j.key, j.payload,
                (SELECT json_group_object(s.stage, json(s.payload)) FROM stages s
                  WHERE s.job_id = t.job_id AND s.attempt = t.attempt)
         FROM trajectories t LEFT JOIN jobs j ON j.id = t.job_id
         {clause}"
    )
}

/// A [`TrajectoryRow`] from a row selected by [`row_sql`].
fn trajectory_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrajectoryRow> {
    Ok(TrajectoryRow {
        meta: meta_of(r)?,
        data: r.get(8)?,
        job_key: r.get(9)?,
        job_payload: r.get(10)?,
        stages: r.get(11)?,
    })
}

/// How many trajectories share a rollout, an exit status and a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrajectoryTally {
    /// Which rollout.
    pub rollout: Rollout,
    /// How the episodes ended.
    pub exit_status: ExitLabel,
    /// Whether they are kept.
    pub kept: bool,
    /// How many.
    pub count: u64,
}

/// A finished job brought in from elsewhere (an import), with everything the pipeline would
/// have recorded for it, written by [`Store::import_jobs`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedJob {
    /// Stable key; a key already in the store is skipped (importing twice duplicates nothing).
    pub key: String,
    /// Another key the same record was stored under by an earlier version; a job under it
    /// also counts as a duplicate.
    pub also_known_as: Option<String>,
    /// What the job was about (JSON).
    pub payload: serde_json::Value,
    /// The job's result.
    pub result: Outcome,
    /// Stage results of attempt 1, in order.
    pub stages: Vec<Stage>,
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

impl Store {
    /// Mark a trajectory kept or not, with its recall, if `owner` still holds the job's lease
    /// (a worker that lost it cannot change another's verdict). Idempotent, so a resumed job
    /// sets it again.
    pub fn set_verdict(
        &self,
        owner: &str,
        job: i64,
        attempt: i64,
        rollout: &Rollout,
        kept: bool,
        recall: Option<f64>,
    ) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.set_verdict(owner, job, attempt, rollout, kept, recall);
        }
        self.with_lease(owner, job, |tx, _| {
            tx.execute(
                "UPDATE trajectories SET kept = ?1, recall = COALESCE(?2, recall) WHERE job_id = ?3 AND attempt = ?4 AND rollout = ?5",
                params![kept as i64, recall, job, attempt, rollout.as_str()],
            )
            .map(drop)
        })
    }

    /// Every trajectory (data included when `with_data`).
    pub fn trajectories(&self, with_data: bool) -> Result<Vec<StoredTrajectory>> {
        if let Some(pg) = self.pg() {
            return pg.trajectories(with_data);
        }
        let data_col = if with_data { "t.data" } else { "'null'" };
        let sql = format!(
            "SELECT {META_COLUMNS}, {data_col} FROM trajectories t ORDER BY t.job_id, t.attempt, t.rollout"
        );
        self.select_all(&sql, |r| Ok((meta_of(r)?, r.get::<_, String>(8)?)))?
            .into_iter()
            .map(|(meta, data)| {
                let data = serde_json::from_str(&data)
                    .map_err(|e| self.corrupt(format!("trajectory {}: {e}", meta.id)))?;
                Ok(StoredTrajectory { meta, data })
            })
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
        if let Some(pg) = self.pg() {
            return pg.for_each_trajectory(with_data, true, &mut visit);
        }
        let conn = self.lock();
        let sql = row_sql(with_data, "ORDER BY t.job_id, t.attempt, t.rollout");
        let r = (|| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                if !visit(trajectory_row(r)?) {
                    break;
                }
            }
            Ok(())
        })();
        drop(conn);
        self.sql(r)
    }

    /// One trajectory as [`Store::for_each_trajectory`] gives it, by row id.
    pub fn trajectory_row(&self, id: i64) -> Result<Option<TrajectoryRow>> {
        if let Some(pg) = self.pg() {
            return pg.trajectory_row(id);
        }
        let conn = self.lock();
        let r = conn
            .query_row(&row_sql(true, "WHERE t.id = ?1"), [id], |r| {
                trajectory_row(r)
            })
            .optional();
        drop(conn);
        self.sql(r)
    }

    /// The trajectories of one job, data included, by attempt and rollout.
    pub fn job_trajectories(&self, job: i64) -> Result<Vec<(TrajectoryMeta, String)>> {
        if let Some(pg) = self.pg() {
            return pg.job_trajectories(job);
        }
        let conn = self.lock();
        let sql = format!(
            "SELECT {META_COLUMNS}, t.data FROM trajectories t WHERE t.job_id = ?1 ORDER BY t.attempt, t.rollout"
        );
        let r = (|| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([job], |r| Ok((meta_of(r)?, r.get::<_, String>(8)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        drop(conn);
        self.sql(r)
    }

    /// Trajectories counted per rollout, exit status and verdict, in that order (`status` on a
    /// large run reads no trajectory row).
    pub fn trajectory_tallies(&self) -> Result<Vec<TrajectoryTally>> {
        if let Some(pg) = self.pg() {
            return pg.trajectory_tallies();
        }
        self.select_all(
            // Grouped as the index `trajectories_verdict` orders them (covering: no body read).
            "SELECT rollout, exit_status, kept, COUNT(*) FROM trajectories
             GROUP BY rollout, exit_status, kept ORDER BY rollout, exit_status, kept",
            |r| {
                Ok(TrajectoryTally {
                    rollout: Rollout::from(r.get::<_, String>(0)?),
                    exit_status: ExitLabel::from(r.get::<_, String>(1)?),
                    kept: r.get::<_, i64>(2)? != 0,
                    count: r.get::<_, i64>(3)? as u64,
                })
            },
        )
    }

    /// Number of stored trajectories.
    pub fn trajectory_count(&self) -> Result<u64> {
        if let Some(pg) = self.pg() {
            return pg.trajectory_count();
        }
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
        rollout: &Rollout,
    ) -> Result<Option<serde_json::Value>> {
        if let Some(pg) = self.pg() {
            return pg.trajectory_data(job, attempt, rollout);
        }
        let conn = self.lock();
        let r = conn
            .query_row(
                "SELECT data FROM trajectories WHERE job_id = ?1 AND attempt = ?2 AND rollout = ?3",
                params![job, attempt, rollout.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional();
        drop(conn);
        match self.sql(r)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| self.corrupt(format!("trajectory of job {job}: {e}"))),
        }
    }

    /// Whether another job already produced this exact P1 (byte-identical duplicates are
    /// discarded). The rule is the sample's order (see `dup`): only jobs earlier in the sample
    /// count, and committing a P1 takes any later job with the same P1 back to its check.
    /// SQLite runs created before that rule keep theirs: any other job.
    pub fn has_other_t1_patch(&self, job: i64, patch: &str) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.has_earlier_t1_patch(job, patch);
        }
        let rule = if self.sample_order_duplicates()? {
            dup::EARLIER
        } else {
            dup::ANY_OTHER
        };
        let sql = dup::render::<&rusqlite::Transaction<'_>>(rule);
        let conn = self.lock();
        let r = conn
            .query_row(&sql, params![patch, job], |_| Ok(()))
            .optional();
        drop(conn);
        Ok(self.sql(r)?.is_some())
    }

    /// Whether this SQLite run judges duplicate P1s by the sample's order (created since).
    pub(crate) fn sample_order_duplicates(&self) -> Result<bool> {
        Ok(self.meta(dup::RULE_KEY)?.as_deref() == Some(dup::SAMPLE_ORDER))
    }

    /// Add finished jobs with their stages and trajectories, and set `meta` values, in one
    /// transaction: either all of it is stored or nothing is. Jobs whose key exists are skipped.
    pub fn import_jobs(
        &self,
        jobs: &[ImportedJob],
        meta: &[(&str, String)],
    ) -> Result<ImportCounts> {
        // Payloads are serialized before the transaction, so a bad one stores nothing.
        let stages = jobs
            .iter()
            .map(|job| {
                job.stages
                    .iter()
                    .map(|s| {
                        let name = s.name();
                        let payload = s.to_json().map_err(|e| {
                            self.corrupt(format!("stage {name} of import {}: {e}", job.key))
                        })?;
                        Ok((name, payload.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(pg) = self.pg() {
            return pg.import_jobs(jobs, &stages, meta);
        }
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
                let mut known = tx.prepare("SELECT 1 FROM jobs WHERE key = ?1")?;
                for (i, job) in jobs.iter().enumerate() {
                    if let Some(old_key) = &job.also_known_as
                        && known.exists(params![old_key])?
                    {
                        counts.duplicates += 1;
                        continue;
                    }
                    let n = job_insert.execute(params![
                        id,
                        job.key,
                        job.payload.to_string(),
                        job.result.as_str(),
                        now
                    ])?;
                    if n == 0 {
                        counts.duplicates += 1;
                        continue;
                    }
                    for (stage, payload) in &stages[i] {
                        stage_insert.execute(params![id, stage.as_str(), payload, now])?;
                    }
                    let t = &job.trajectory;
                    traj_insert.execute(params![
                        id,
                        t.rollout.as_str(),
                        t.exit_status.as_str(),
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
}
