//! The duplicate-P1 rule, defined once for both backends: a P1 is a duplicate when a job
//! earlier in the sample (a lower job id) produced the same bytes. Committing a P1 takes any
//! later job with the same P1 that went past its duplicate check back to that check, so the
//! data depends on the sample's order, never on which job or worker committed first.
//!
//! SQLite runs created before this rule judged a P1 against any other job (commit order);
//! they keep that rule, so a resumed old run never takes back a job it had finished
//! ([`RULE_KEY`] marks the runs that follow the sample order).

/// The meta key a run following the sample order carries (value [`SAMPLE_ORDER`]).
pub(crate) const RULE_KEY: &str = "p1_duplicates";
/// The value of [`RULE_KEY`].
pub(crate) const SAMPLE_ORDER: &str = "sample_order";

/// Whether an earlier job in the sample produced P1 `?1` (`?2`: the job asking).
pub(crate) const EARLIER: &str =
    "SELECT 1 FROM trajectories t WHERE t.rollout = 't1' AND {same} AND t.job_id < ?2 LIMIT 1";
/// The old rule of SQLite runs created before [`RULE_KEY`]: any other job.
pub(crate) const ANY_OTHER: &str =
    "SELECT 1 FROM trajectories t WHERE t.rollout = 't1' AND {same} AND t.job_id <> ?2 LIMIT 1";

/// The statements of the rule, run inside a commit's transaction by each backend.
pub(crate) trait RuleTx {
    /// The backend's error.
    type Error;
    /// How `t.patch` is compared with parameter `?1` (Postgres goes through an index of
    /// its hash).
    const SAME_PATCH: &'static str;
    /// Lock job `job`'s row until the transaction ends (a no-op where the transaction
    /// already holds the database).
    fn lock_job(&mut self, job: i64) -> Result<(), Self::Error>;
    /// `(job, attempt)` rows selected by `sql` with `?1` a patch and `?2` a job.
    fn pairs(&mut self, sql: &str, patch: &str, job: i64) -> Result<Vec<(i64, i64)>, Self::Error>;
    /// Texts selected by `sql` with integer parameters `params`.
    fn texts(&mut self, sql: &str, params: &[i64]) -> Result<Vec<String>, Self::Error>;
    /// Run `sql` with integer parameters `params`.
    fn exec(&mut self, sql: &str, params: &[i64]) -> Result<(), Self::Error>;
}

/// `sql` with the backend's patch comparison in place of `{same}`.
pub(crate) fn render<T: RuleTx>(sql: &str) -> String {
    sql.replace("{same}", T::SAME_PATCH)
}

/// A P1 was just committed by `job`: a later job with the same P1 that went past its check
/// (or may be about to) is taken back to it.
pub(crate) fn supersede_later<T: RuleTx>(
    tx: &mut T,
    job: i64,
    patch: &str,
) -> Result<(), T::Error> {
    let later = tx.pairs(
        &render::<T>(
            "SELECT t.job_id, t.attempt FROM trajectories t
             WHERE t.rollout = 't1' AND {same} AND t.job_id > ?2
               AND (EXISTS (SELECT 1 FROM stages s WHERE s.job_id = t.job_id AND s.attempt = t.attempt AND s.stage = 'selfcheck')
                    OR NOT EXISTS (SELECT 1 FROM stages s WHERE s.job_id = t.job_id AND s.attempt = t.attempt AND s.stage = 'rejected'))
             ORDER BY t.job_id",
        ),
        patch,
        job,
    )?;
    for (job, attempt) in later {
        reset_to_check(tx, job, attempt)?;
    }
    Ok(())
}

/// Take `job` back to the duplicate check of `attempt`: its later stages and attempts are
/// removed, its lease revoked (its worker can no longer commit) and it is pending again.
/// Later jobs rejected before their self-check, possibly as duplicates of a P1 removed here,
/// are taken back too.
fn reset_to_check<T: RuleTx>(tx: &mut T, job: i64, attempt: i64) -> Result<(), T::Error> {
    tx.lock_job(job)?;
    let removed = tx.texts(
        "SELECT patch FROM trajectories WHERE job_id = ?1 AND attempt > ?2 AND rollout = 't1' AND patch IS NOT NULL",
        &[job, attempt],
    )?;
    for sql in [
        "DELETE FROM stages WHERE job_id = ?1 AND (attempt > ?2 OR (attempt = ?2 AND stage <> 'rollout1'))",
        "DELETE FROM usage WHERE job_id = ?1 AND (attempt > ?2 OR (attempt = ?2 AND stage <> 'rollout1'))",
        "DELETE FROM trajectories WHERE job_id = ?1 AND (attempt > ?2 OR (attempt = ?2 AND rollout <> 't1'))",
        "UPDATE trajectories SET kept = false, recall = NULL WHERE job_id = ?1 AND attempt = ?2",
    ] {
        tx.exec(sql, &[job, attempt])?;
    }
    tx.exec(
        "UPDATE jobs SET status = 'pending', result = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ?1",
        &[job],
    )?;
    for patch in removed {
        let later = tx.pairs(
            &render::<T>(
                "SELECT t.job_id, t.attempt FROM trajectories t
                 WHERE t.rollout = 't1' AND {same} AND t.job_id > ?2
                   AND NOT EXISTS (SELECT 1 FROM stages s WHERE s.job_id = t.job_id AND s.attempt = t.attempt AND s.stage = 'selfcheck')
                 ORDER BY t.job_id",
            ),
            &patch,
            job,
        )?;
        for (job, attempt) in later {
            reset_to_check(tx, job, attempt)?;
        }
    }
    Ok(())
}

/// On SQLite, through the shared reference a commit's body is given.
impl RuleTx for &rusqlite::Transaction<'_> {
    type Error = rusqlite::Error;
    const SAME_PATCH: &'static str = "t.patch = ?1";

    fn lock_job(&mut self, _job: i64) -> rusqlite::Result<()> {
        // The IMMEDIATE transaction of a commit holds the whole database already.
        Ok(())
    }

    fn pairs(&mut self, sql: &str, patch: &str, job: i64) -> rusqlite::Result<Vec<(i64, i64)>> {
        let mut stmt = self.prepare(sql)?;
        let rows = stmt.query_map(rusqlite::params![patch, job], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect()
    }

    fn texts(&mut self, sql: &str, params: &[i64]) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.prepare(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(0))?;
        rows.collect()
    }

    fn exec(&mut self, sql: &str, params: &[i64]) -> rusqlite::Result<()> {
        self.execute(sql, rusqlite::params_from_iter(params))
            .map(|_| ())
    }
}
