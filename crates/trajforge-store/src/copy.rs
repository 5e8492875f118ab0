//! Moving a whole run between stores (`trajforge store copy`): every row as stored, JSON kept
//! as text, ids and times kept, so an export of the copy equals an export of the original.

use rusqlite::params;

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
        let meta = self.select_all(
            "SELECT key, value FROM meta WHERE key <> 'schema_version' ORDER BY key",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let jobs = self.select_all(
            "SELECT id, key, payload, status, result, updated_at FROM jobs ORDER BY id",
            |r| {
                Ok(JobRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    payload: r.get(2)?,
                    status: r.get(3)?,
                    result: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            },
        )?;
        let stages = self.select_all(
            "SELECT job_id, attempt, stage, payload, created_at FROM stages ORDER BY job_id, attempt, stage",
            |r| {
                Ok(StageRow {
                    job_id: r.get(0)?,
                    attempt: r.get(1)?,
                    stage: r.get(2)?,
                    payload: r.get(3)?,
                    created_at: r.get(4)?,
                })
            },
        )?;
        let trajectories = self.select_all(
            "SELECT id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at FROM trajectories ORDER BY id",
            |r| {
                Ok(TrajectoryDumpRow {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    attempt: r.get(2)?,
                    rollout: r.get(3)?,
                    exit_status: r.get(4)?,
                    patch: r.get(5)?,
                    recall: r.get(6)?,
                    kept: r.get::<_, i64>(7)? != 0,
                    data: r.get(8)?,
                    created_at: r.get(9)?,
                })
            },
        )?;
        let usage = self.select_all(
            "SELECT job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at FROM usage ORDER BY id",
            |r| {
                Ok(UsageRow {
                    job_id: r.get(0)?,
                    attempt: r.get(1)?,
                    stage: r.get(2)?,
                    prompt_tokens: r.get(3)?,
                    completion_tokens: r.get(4)?,
                    model_seconds: r.get(5)?,
                    created_at: r.get(6)?,
                })
            },
        )?;
        let sessions = self.select_all(
            "SELECT owner, started_at, last_at FROM sessions ORDER BY started_at, owner",
            |r| {
                Ok(SessionRow {
                    owner: r.get(0)?,
                    started_at: r.get(1)?,
                    last_at: r.get(2)?,
                })
            },
        )?;
        Ok(RunDump {
            meta,
            jobs,
            stages,
            trajectories,
            usage,
            sessions,
        })
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
            for (k, v) in &dump.meta {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )?;
            }
            {
                let mut job = tx.prepare("INSERT INTO jobs(id, key, payload, status, result, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
                for j in &dump.jobs {
                    job.execute(params![
                        j.id,
                        j.key,
                        j.payload,
                        j.status,
                        j.result,
                        j.updated_at
                    ])?;
                }
                let mut stage = tx.prepare("INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
                for s in &dump.stages {
                    stage.execute(params![
                        s.job_id,
                        s.attempt,
                        s.stage,
                        s.payload,
                        s.created_at
                    ])?;
                }
                let mut traj = tx.prepare("INSERT INTO trajectories(id, job_id, attempt, rollout, exit_status, patch, recall, kept, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")?;
                for t in &dump.trajectories {
                    traj.execute(params![
                        t.id,
                        t.job_id,
                        t.attempt,
                        t.rollout,
                        t.exit_status,
                        t.patch,
                        t.recall,
                        t.kept as i64,
                        t.data,
                        t.created_at
                    ])?;
                }
                let mut usage = tx.prepare("INSERT INTO usage(job_id, attempt, stage, prompt_tokens, completion_tokens, model_seconds, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
                for u in &dump.usage {
                    usage.execute(params![
                        u.job_id,
                        u.attempt,
                        u.stage,
                        u.prompt_tokens,
                        u.completion_tokens,
                        u.model_seconds,
                        u.created_at
                    ])?;
                }
                let mut session = tx.prepare(
                    "INSERT INTO sessions(owner, started_at, last_at) VALUES (?1, ?2, ?3)",
                )?;
                for s in &dump.sessions {
                    session.execute(params![s.owner, s.started_at, s.last_at])?;
                }
            }
            tx.commit()
        })();
        drop(conn);
        self.sql(r)
    }
}
