//! Reads for browsing a run a page at a time (`trajforge view`), on both backends: the
//! trajectories after an id with their jobs and stages, the jobs changed since a moment, a
//! job's neighbours, and a mark that moves with every commit; and the counts `status` (the
//! viewer's overview) adds up, in PostgreSQL's SQL. Nothing here loads a whole run.

use rusqlite::params;

use crate::model::{ExitLabel, JobStatus, Outcome, Rollout, TrajectoryMeta};
use crate::pg::{Cached, Pg};
use crate::stages::{BugYield, StageTallyRow};
use crate::trajectories::{META_COLUMNS, meta_of};
use crate::{Job, JobTally, Result, StageRecord, Store, StoreError, TrajectoryTally};

/// Something that changes whenever the run commits anything (a stage, a verdict, a finished
/// job, a worker's session), so a reader can tell whether what it computed is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMark(Mark);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    /// Sizes and modification times of the SQLite file and its write-ahead log.
    Files([(u64, Option<std::time::SystemTime>); 2]),
    /// The latest job update and the highest job, trajectory and usage ids, and the latest
    /// session commit of a Postgres run.
    Rows([i64; 5]),
}

/// A JSON array of ids, the parameter of SQLite's `json_each` for `IN` lists.
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// At most `limit` trajectories with ids above `after`, by id, each with its data (JSON
    /// text).
    pub fn trajectories_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(TrajectoryMeta, String)>> {
        let limit = limit as i64;
        let sql = format!(
            "SELECT {META_COLUMNS}, t.data FROM trajectories t WHERE t.id > ?1 ORDER BY t.id LIMIT ?2"
        );
        if let Some(pg) = self.pg() {
            let rows = pg.with(|c| c.query(&crate::pg::dollars(&sql), &[&after, &limit]))?;
            return Ok(rows
                .iter()
                .map(|r| (crate::pg::meta_of(r), r.get(8)))
                .collect());
        }
        self.select_with(&sql, params![after, limit], |r| {
            Ok((meta_of(r)?, r.get(8)?))
        })
    }

    /// The trajectories of the jobs `jobs`, without their data, by id.
    pub fn trajectories_of_jobs(&self, jobs: &[i64]) -> Result<Vec<TrajectoryMeta>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(pg) = self.pg() {
            let sql = format!(
                "SELECT {META_COLUMNS} FROM trajectories t WHERE t.job_id = ANY($1) ORDER BY t.id"
            );
            let rows = pg.with(|c| c.query(&sql, &[&jobs]))?;
            return Ok(rows.iter().map(crate::pg::meta_of).collect());
        }
        let sql = format!(
            "SELECT {META_COLUMNS} FROM trajectories t WHERE t.job_id IN (SELECT value FROM json_each(?1)) ORDER BY t.id"
        );
        self.select_with(&sql, [id_list(jobs)], meta_of)
    }

    /// The jobs `ids` that exist, by id.
    pub fn jobs_of(&self, ids: &[i64]) -> Result<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(pg) = self.pg() {
            return pg.jobs_where("WHERE id = ANY($1) ORDER BY id", &[&ids]);
        }
        self.select_jobs_with(
            "WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
            [id_list(ids)],
        )
    }

    /// Every stage result of the jobs `ids`, by job, attempt and commit.
    pub fn stages_of_jobs(&self, ids: &[i64]) -> Result<Vec<StageRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(pg) = self.pg() {
            return pg.stages_where(
                "WHERE job_id = ANY($1) ORDER BY job_id, attempt, created_at, stage",
                &[&ids],
            );
        }
        self.select_stages_with(
            "WHERE job_id IN (SELECT value FROM json_each(?1)) ORDER BY job_id, attempt, created_at, stage",
            [id_list(ids)],
        )
    }

    /// The jobs updated (a stage committed, a verdict, the job finished) at or after `ms`, by
    /// id, and the latest update of any job (-1 when there is no job).
    pub fn jobs_changed_since(&self, ms: i64) -> Result<(Vec<i64>, i64)> {
        let (changed, latest) = (
            "SELECT id FROM jobs WHERE updated_at >= ?1 ORDER BY id",
            "SELECT COALESCE(MAX(updated_at), -1) FROM jobs",
        );
        if let Some(pg) = self.pg() {
            return pg.with(|c| {
                let ids = c.query(&crate::pg::dollars(changed), &[&ms])?;
                let latest: i64 = c.query_one(latest, &[])?.get(0);
                Ok((ids.iter().map(|r| r.get(0)).collect(), latest))
            });
        }
        let ids = self.select_with(changed, [ms], |r| r.get(0))?;
        let latest = self.select_all(latest, |r| r.get(0))?;
        Ok((ids, latest.first().copied().unwrap_or(-1)))
    }

    /// The highest trajectory id (0 when there is none).
    pub fn last_trajectory_id(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM trajectories";
        if let Some(pg) = self.pg() {
            return pg.with(|c| c.query_one(sql, &[])).map(|r| r.get(0));
        }
        Ok(self
            .select_all(sql, |r| r.get(0))?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// The jobs before and after job `id`, by id (none at either end).
    pub fn job_neighbours(&self, id: i64) -> Result<(Option<i64>, Option<i64>)> {
        let sql = "SELECT (SELECT MAX(id) FROM jobs WHERE id < ?1), (SELECT MIN(id) FROM jobs WHERE id > ?1)";
        if let Some(pg) = self.pg() {
            return pg
                .with(|c| c.query_one(&crate::pg::dollars(sql), &[&id]))
                .map(|r| (r.get(0), r.get(1)));
        }
        Ok(self
            .select_with(sql, [id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .pop()
            .unwrap_or((None, None)))
    }

    /// The run's current [`ChangeMark`].
    pub fn change_mark(&self) -> Result<ChangeMark> {
        if let Some(pg) = self.pg() {
            return pg.change_mark();
        }
        let of = |path: std::path::PathBuf| {
            std::fs::metadata(path).map_or((0, None), |m| (m.len(), m.modified().ok()))
        };
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(ChangeMark(Mark::Files([
            of(self.path.clone()),
            of(wal.into()),
        ])))
    }
}

/// What `status` adds up, in PostgreSQL's SQL (the same fields as SQLite's, in the same
/// groups: see `Store::job_tallies`, `Store::stage_tallies`, `Store::trajectory_tallies`).
impl Pg {
    pub(crate) fn job_tallies(&self) -> Result<Vec<JobTally>> {
        let rows = self.with(|c| {
            c.query(
                "SELECT status, result, p -> 'intent' IS NOT NULL,
                        CASE WHEN json_typeof(p -> 'intent') = 'string' THEN p ->> 'intent' ELSE '' END,
                        CASE WHEN json_typeof(p -> 'start_url') = 'string' THEN p ->> 'start_url' ELSE '' END,
                        COUNT(*)
                 FROM (SELECT status, result, payload::json AS p FROM jobs) j
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| JobTally {
                status: JobStatus::from(r.get::<_, String>(0)),
                result: r.get::<_, Option<String>>(1).map(Outcome::from),
                has_intent: r.get(2),
                intent: r.get(3),
                start_url: r.get(4),
                count: r.get::<_, i64>(5) as u64,
            })
            .collect())
    }

    pub(crate) fn stage_tally_rows(
        &self,
        before: i64,
    ) -> Result<(Vec<StageTallyRow>, Vec<BugYield>)> {
        self.with(|c| {
            // Only the payloads of the stages whose fields are read are parsed (as `json`, which
            // is only checked, not converted as `jsonb` would be).
            let rows = c.query(
                "SELECT stage,
                    CASE stage WHEN 'rejected' THEN p ->> 'reason' WHEN 'verify' THEN p ->> 'result' END,
                    CASE stage WHEN 'verify' THEN COALESCE((p ->> 'recall')::float8, (p ->> 'r')::float8) END,
                    CASE WHEN stage = 'tests' AND json_typeof(p -> 'verdict') = 'object'
                         THEN (p -> 'verdict' ->> 'agree')::boolean END,
                    COUNT(*),
                    MIN(CASE WHEN created_at < $1 THEN created_at END),
                    MAX(CASE WHEN created_at < $1 THEN created_at END)
                 FROM (SELECT stage, created_at,
                              CASE WHEN stage IN ('rejected', 'verify', 'tests') THEN payload::json END AS p
                       FROM stages) s
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                &[&before],
            )?;
            let yields = c.query(
                "SELECT bug, COUNT(*), SUM(yes)::bigint, SUM(kept)::bigint FROM (
                    SELECT MAX(CASE WHEN stage = 'rollout1'
                                    THEN COALESCE(payload::json ->> 'bug', '?') END) AS bug,
                           MAX(CASE WHEN stage = 'selfcheck' AND payload::json ->> 'answer' = 'yes'
                                    THEN 1 ELSE 0 END) AS yes,
                           MAX(CASE WHEN stage = 'verify' AND (payload::json ->> 'kept')::boolean
                                    THEN 1 ELSE 0 END) AS kept
                    FROM stages WHERE stage IN ('rollout1', 'selfcheck', 'verify')
                    GROUP BY job_id, attempt) a
                 WHERE bug IS NOT NULL GROUP BY bug ORDER BY bug",
                &[],
            )?;
            Ok((rows, yields))
        })
        .map(|(rows, yields)| {
            let rows = rows
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        r.get(1),
                        r.get(2),
                        r.get(3),
                        r.get::<_, i64>(4) as u64,
                        r.get::<_, Option<i64>>(5).zip(r.get::<_, Option<i64>>(6)),
                    )
                })
                .collect();
            let yields = yields
                .iter()
                .map(|r| {
                    let n = |i| r.get::<_, i64>(i) as u64;
                    (r.get(0), [n(1), n(2), n(3)])
                })
                .collect();
            (rows, yields)
        })
    }

    pub(crate) fn trajectory_tallies(&self) -> Result<Vec<TrajectoryTally>> {
        let rows = self.with(|c| {
            c.query(
                "SELECT rollout, exit_status, kept, COUNT(*) FROM trajectories
                 GROUP BY rollout, exit_status, kept ORDER BY rollout, exit_status, kept",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| TrajectoryTally {
                rollout: Rollout::from(r.get::<_, String>(0)),
                exit_status: ExitLabel::from(r.get::<_, String>(1)),
                kept: r.get(2),
                count: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }
}

impl Pg {
    fn change_mark(&self) -> Result<ChangeMark> {
        let row = self.with(|c| {
            c.query_one(
                "SELECT (SELECT COALESCE(MAX(updated_at), -1) FROM jobs),
                        (SELECT COALESCE(MAX(id), -1) FROM jobs),
                        (SELECT COALESCE(MAX(id), -1) FROM trajectories),
                        (SELECT COALESCE(MAX(id), -1) FROM usage),
                        (SELECT COALESCE(MAX(last_at), -1) FROM sessions)",
                &[],
            )
        })?;
        Ok(ChangeMark(Mark::Rows([
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
        ])))
    }
}

/// The runs of a PostgreSQL database, by name (what `--run` can name there).
pub fn postgres_runs(url: &str) -> Result<Vec<String>> {
    crate::pg::run_names(url).map_err(|source| StoreError::Postgres {
        location: crate::redact_url(url),
        source,
    })
}
