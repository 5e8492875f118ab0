//! Stage results, committed one transaction each with their trajectory and usage.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::model::{Rollout, Stage, StageName};
use crate::{Result, Store, TrajectoryRecord};

/// A stage result as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRecord {
    /// The job.
    pub job_id: i64,
    /// Attempt number (1-based).
    pub attempt: i64,
    /// The stage and its result.
    pub stage: Stage,
    /// When it was committed, ms since the epoch.
    pub created_at: i64,
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

impl Store {
    /// Commit one stage's result, with its trajectory and usage, in one transaction.
    ///
    /// Recording the same (job, attempt, stage) again replaces it: a retried stage after a
    /// crash never duplicates anything.
    pub fn record_stage(
        &self,
        owner: &str,
        job: i64,
        attempt: i64,
        stage: &Stage,
        trajectory: Option<&TrajectoryRecord>,
        usage: Option<UsageRecord>,
    ) -> Result<()> {
        let name = stage.name();
        let payload = stage
            .to_json()
            .map_err(|e| self.corrupt(format!("stage {name} of job {job}: {e}")))?
            .to_string();
        let stage = name.as_str();
        if let Some(pg) = self.pg() {
            return pg.record_stage(owner, job, attempt, stage, &payload, trajectory, usage);
        }
        let sample_order = self.sample_order_duplicates()?;
        self.with_lease(owner, job, |tx, now| {
            tx.execute(
                "INSERT INTO stages(job_id, attempt, stage, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(job_id, attempt, stage) DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at",
                params![job, attempt, stage, payload, now],
            )?;
            if let Some(t) = trajectory {
                tx.execute(
                    "INSERT INTO trajectories(job_id, attempt, rollout, exit_status, patch, data, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(job_id, attempt, rollout) DO UPDATE SET exit_status = excluded.exit_status,
                        patch = excluded.patch, data = excluded.data, recall = NULL, kept = 0, created_at = excluded.created_at",
                    params![job, attempt, t.rollout.as_str(), t.exit_status.as_str(), t.patch, t.data.to_string(), now],
                )?;
                if sample_order
                    && t.rollout == Rollout::T1
                    && let Some(patch) = t.patch.as_deref().filter(|p| !p.trim().is_empty())
                {
                    crate::dup::supersede_later(&mut { tx }, job, patch)?;
                }
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
            Ok(())
        })
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
        if let Some(pg) = self.pg() {
            return pg.stages(job);
        }
        let sql =
            format!("SELECT job_id, attempt, stage, payload, created_at FROM stages {clause}");
        self.select_with(&sql, rusqlite::params_from_iter(job), |r| {
            <(i64, i64, String, String, i64)>::try_from(r)
        })?
        .into_iter()
        .map(|(job_id, attempt, name, payload, created_at)| {
            let name = StageName::from(name);
            let stage = serde_json::from_str(&payload)
                .and_then(|v| Stage::from_json(name.clone(), v))
                .map_err(|e| self.corrupt(format!("stage {name} of job {job_id}: {e}")))?;
            Ok(StageRecord {
                job_id,
                attempt,
                stage,
                created_at,
            })
        })
        .collect()
    }

    /// Total usage per stage name.
    pub fn usage_by_stage(&self) -> Result<Vec<(String, UsageRecord)>> {
        if let Some(pg) = self.pg() {
            return pg.usage_by_stage();
        }
        self.select_all(
            "SELECT stage, SUM(prompt_tokens), SUM(completion_tokens), SUM(model_seconds) FROM usage GROUP BY stage ORDER BY stage",
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    UsageRecord {
                        prompt_tokens: r.get::<_, i64>(1)? as u64,
                        completion_tokens: r.get::<_, i64>(2)? as u64,
                        model_seconds: r.get::<_, f64>(3)?,
                    },
                ))
            },
        )
    }
}
