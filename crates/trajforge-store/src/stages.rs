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

/// The columns of a stage row, in [`STAGE_SELECT`]'s order.
type StageColumns = (i64, i64, String, String, i64);

/// The query of stage rows, a clause to append.
const STAGE_SELECT: &str = "SELECT job_id, attempt, stage, payload, created_at FROM stages";

fn stage_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<StageColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
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

    /// Visit every stage result of the run one at a time, so memory does not grow with the
    /// run (`status` on a large run): grouped by job and attempt in that order, in no
    /// particular order within an attempt. `visit` returns false to stop early.
    pub fn for_each_stage(&self, visit: impl FnMut(StageRecord) -> bool) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.for_each_stage(visit);
        }
        // The primary key's index gives this order without sorting the table.
        self.stream(
            &format!("{STAGE_SELECT} ORDER BY job_id, attempt"),
            stage_columns,
            |columns| self.stage_of(columns),
            visit,
        )
    }

    fn query_stages(&self, clause: &str, job: Option<i64>) -> Result<Vec<StageRecord>> {
        if let Some(pg) = self.pg() {
            return pg.stages(job);
        }
        self.select_stages_with(clause, rusqlite::params_from_iter(job))
    }

    /// The stage results `clause` selects, with `params` bound.
    pub(crate) fn select_stages_with(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StageRecord>> {
        let sql = format!("{STAGE_SELECT} {clause}");
        self.select_with(&sql, params, stage_columns)?
            .into_iter()
            .map(|columns| self.stage_of(columns))
            .collect()
    }

    /// A stage result from the columns [`STAGE_SELECT`] reads, its payload parsed.
    fn stage_of(
        &self,
        (job_id, attempt, name, payload, created_at): StageColumns,
    ) -> Result<StageRecord> {
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

/// What `status` reads of a run's stage results, added up by the database (a SQLite run):
/// each list is (key, count), sorted by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTallies {
    /// Stage results per stage name.
    pub stages: Vec<(String, u64)>,
    /// `rejected` stages per reason.
    pub rejections: Vec<(String, u64)>,
    /// `verify` stages per (r, result): r is the line recall or the web agreement.
    pub verified: Vec<((Option<f64>, String), u64)>,
    /// `tests` stages with a verdict, and how many of those agree.
    pub tests: (u64, u64),
    /// Per bug type of rollout 1 (`?` when it names none): (attempts, self-checks answered
    /// yes, verifications that kept the pair) of those attempts.
    pub yields: Vec<(String, [u64; 3])>,
    /// The earliest and latest commit before the time asked for.
    pub early_span: Option<(i64, i64)>,
}

impl Store {
    /// The stage results added up in SQL over the payloads' fields (the same fields the
    /// typed [`Stage`]s read), without reading a payload here, on either backend (an
    /// `Option` for callers that can also visit [`Store::for_each_stage`]). `before`: the end
    /// of the span [`StageTallies::early_span`] covers.
    pub fn stage_tallies(&self, before: i64) -> Result<Option<StageTallies>> {
        let (rows, yields) = match self.pg() {
            Some(pg) => pg.stage_tally_rows(before)?,
            None => self.sqlite_stage_tally_rows(before)?,
        };
        let mut t = StageTallies {
            yields,
            ..StageTallies::default()
        };
        let mut stages: std::collections::BTreeMap<String, u64> = Default::default();
        for (stage, label, recall, agree, n, span) in rows {
            *stages.entry(stage.clone()).or_default() += n;
            match (stage.as_str(), label) {
                ("rejected", Some(reason)) => t.rejections.push((reason, n)),
                ("verify", Some(result)) => t.verified.push(((recall, result), n)),
                _ => {}
            }
            if let Some(agree) = agree {
                t.tests.0 += n;
                t.tests.1 += if agree { n } else { 0 };
            }
            if let Some((a, b)) = span {
                t.early_span = Some(t.early_span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
        t.stages = stages.into_iter().collect();
        Ok(Some(t))
    }

    /// The rows [`Store::stage_tallies`] adds up, by SQLite.
    fn sqlite_stage_tally_rows(&self, before: i64) -> Result<(Vec<StageTallyRow>, Vec<BugYield>)> {
        // One scan for the counts, reasons, scores, verdicts and the early span (a payload's
        // field is read only for the stages that have it); one for the yield per bug type,
        // an attempt's stages taken together in the primary key's order.
        let rows = self.select_with(
            "SELECT stage,
                CASE stage WHEN 'rejected' THEN json_extract(payload, '$.reason')
                           WHEN 'verify' THEN json_extract(payload, '$.result') END,
                CASE stage WHEN 'verify' THEN COALESCE(json_extract(payload, '$.recall'),
                                                       json_extract(payload, '$.r')) END,
                CASE WHEN stage = 'tests' AND json_type(payload, '$.verdict') = 'object'
                     THEN json_extract(payload, '$.verdict.agree') = 1 END,
                COUNT(*),
                MIN(CASE WHEN created_at < ?1 THEN created_at END),
                MAX(CASE WHEN created_at < ?1 THEN created_at END)
             FROM stages GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            [before],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                    r.get::<_, Option<bool>>(3)?,
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, Option<i64>>(5)?.zip(r.get::<_, Option<i64>>(6)?),
                ))
            },
        )?;
        let yields = self.select_all(
            "SELECT bug, COUNT(*), SUM(yes), SUM(kept) FROM (
                SELECT MAX(CASE WHEN stage = 'rollout1'
                                THEN COALESCE(json_extract(payload, '$.bug'), '?') END) AS bug,
                       MAX(stage = 'selfcheck' AND json_extract(payload, '$.answer') = 'yes') AS yes,
                       MAX(stage = 'verify' AND json_extract(payload, '$.kept') = 1) AS kept
                FROM stages WHERE stage IN ('rollout1', 'selfcheck', 'verify')
                GROUP BY job_id, attempt)
             WHERE bug IS NOT NULL GROUP BY bug ORDER BY bug",
            |r| {
                let n = |i| r.get::<_, i64>(i).map(|n| n as u64);
                Ok((r.get(0)?, [n(1)?, n(2)?, n(3)?]))
            },
        )?;
        Ok((rows, yields))
    }
}

/// Stage results of one name, reason or result, score and test verdict, counted, with the
/// earliest and latest commit before the time asked for (see [`Store::stage_tallies`]).
pub(crate) type StageTallyRow = (
    String,
    Option<String>,
    Option<f64>,
    Option<bool>,
    u64,
    Option<(i64, i64)>,
);

/// A bug type of rollout 1 with (attempts, self-checks answered yes, pairs kept).
pub(crate) type BugYield = (String, [u64; 3]);
