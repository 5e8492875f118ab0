//! The viewer's side index: full-text search over reasoning, commands, observations and task
//! texts (the synthetic PR is rollout 2's task) with SQLite's FTS5, and a mirror of every
//! trajectory's list row (verdict, outcome, bug type, steps...) where the list is filtered,
//! sorted and counted without scanning the run's wide trajectory rows.
//!
//! The index lives in a database of its own, in a file removed from its temporary folder as
//! soon as it is open (the open file keeps its pages), so nothing is left behind however the
//! viewer ends, killed included: the run's database is only ever read, so its schema stays what every trajforge
//! version expects, and a read-only run folder can be viewed. It is filled in the background
//! in id order and topped up as a live run stores more: list rows of jobs that changed since
//! the last look are read again (a job's `updated_at` moves with each stage it commits), while
//! a trajectory's searchable text is read once (one rewritten in place by a retried stage keeps
//! its first text until the viewer restarts). Everything is read through the store's typed
//! records a batch at a time, so a PostgreSQL run is indexed the same way as a run folder,
//! and searched and listed here without a query on the shared database.

use std::sync::Mutex;

use std::collections::BTreeMap;

use rusqlite::{Connection, params, params_from_iter};
use trajforge_store::Store;

use crate::ViewError;
use crate::query::{ListQuery, ListRow, PAGE_SIZE};

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// Trajectory id.
    pub id: i64,
    /// Its job.
    pub job_id: i64,
    /// `t1` or `t2`.
    pub rollout: String,
    /// The matching passage; matched terms sit between [`MARK_START`] and [`MARK_END`].
    pub snippet: String,
}

/// Opens a matched term in [`Hit::snippet`] (a control character no trajectory text holds
/// after [`body_text`], so the page can escape the snippet and then mark the terms).
pub const MARK_START: char = '\u{1}';
/// Closes a matched term in [`Hit::snippet`].
pub const MARK_END: char = '\u{2}';

/// The search index of one run.
pub struct SearchIndex {
    conn: Mutex<Connection>,
}

/// Trajectories read from the store per indexing batch.
const BATCH: usize = 500;

impl SearchIndex {
    /// A new, empty index in a file of a fresh temporary folder, both removed once it is open
    /// (SQLite keeps using the open file; without a journal it never opens another).
    pub fn create() -> Result<SearchIndex, ViewError> {
        let dir = tempfile::Builder::new()
            .prefix("trajforge-view-")
            .tempdir()
            .map_err(ViewError::Index)?;
        let conn = Connection::open(dir.path().join("search.db"))
            .and_then(|c| {
                c.execute_batch(
                    "PRAGMA journal_mode = OFF;
                     PRAGMA synchronous = OFF;
                     CREATE VIRTUAL TABLE fts USING fts5(body, job UNINDEXED, rollout UNINDEXED,
                         tokenize = 'unicode61');
                     CREATE TABLE rows (id INTEGER PRIMARY KEY, job_id INTEGER, attempt INTEGER,
                         rollout TEXT, exit TEXT, recall REAL, kept INTEGER, outcome TEXT,
                         entry TEXT, steps INTEGER, tests_agree INTEGER, subject TEXT);
                     CREATE INDEX rows_job ON rows(job_id);
                     CREATE INDEX rows_recall ON rows(recall);
                     CREATE INDEX rows_entry ON rows(entry);
                     CREATE INDEX rows_outcome ON rows(outcome);
                     CREATE TABLE watermark (id INTEGER PRIMARY KEY CHECK (id = 0),
                         jobs_updated INTEGER NOT NULL);
                     INSERT INTO watermark VALUES (0, -1);",
                )?;
                Ok(c)
            })
            .map_err(ViewError::Search)?;
        dir.close().map_err(ViewError::Index)?;
        Ok(SearchIndex {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest trajectory id indexed (0 when none).
    pub fn indexed_up_to(&self) -> Result<i64, ViewError> {
        self.lock()
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM fts", [], |r| r.get(0))
            .map_err(ViewError::Search)
    }

    /// Index up to one batch of trajectories stored after the last one indexed, and read again
    /// the list rows of jobs that changed; returns how many trajectories were added (0: caught
    /// up).
    pub fn refresh(&self, store: &Store) -> Result<usize, ViewError> {
        let after = self.indexed_up_to()?;
        // Jobs changed since the last look (read before the new rows, so nothing slips between).
        let seen: i64 = self
            .lock()
            .query_row("SELECT jobs_updated FROM watermark", [], |r| r.get(0))
            .map_err(ViewError::Search)?;
        // `>=`: a commit in the same millisecond as the last look is read again, not missed.
        // The first fill reads every row as new: only later looks need the changed jobs.
        let since = if seen >= 0 { seen } else { i64::MAX };
        let (changed_jobs, latest) = store.jobs_changed_since(since)?;
        let changed = crate::query::list_rows(store, &store.trajectories_of_jobs(&changed_jobs)?)?;
        let texts = store.trajectories_after(after, BATCH)?;
        let metas: Vec<_> = texts.iter().map(|(m, _)| m.clone()).collect();
        let new_rows = crate::query::list_rows(store, &metas)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(ViewError::Search)?;
        {
            let mut insert = tx
                .prepare("INSERT INTO fts(rowid, body, job, rollout) VALUES (?1, ?2, ?3, ?4)")
                .map_err(ViewError::Search)?;
            for (m, data) in &texts {
                insert
                    .execute(params![m.id, body_text(data), m.job_id, m.rollout.as_str()])
                    .map_err(ViewError::Search)?;
            }
            let mut row = tx
                .prepare(
                    "INSERT OR REPLACE INTO rows VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(ViewError::Search)?;
            for r in changed.iter().chain(&new_rows) {
                row.execute(params![
                    r.id,
                    r.job_id,
                    r.attempt,
                    r.rollout,
                    r.exit,
                    r.recall,
                    r.kept,
                    r.outcome,
                    r.entry,
                    r.steps,
                    r.tests_agree,
                    r.subject
                ])
                .map_err(ViewError::Search)?;
            }
            tx.execute("UPDATE watermark SET jobs_updated = ?1", [latest])
                .map_err(ViewError::Search)?;
        }
        tx.commit().map_err(ViewError::Search)?;
        Ok(texts.len())
    }

    /// One page of the list under `q`'s filters and sort, and how many rows match in all.
    pub fn list(&self, q: &ListQuery) -> Result<(Vec<ListRow>, u64), ViewError> {
        let (filter, order, args) = crate::query::list_filter(q);
        let conn = self.lock();
        let r = (|| {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, job_id, attempt, rollout, exit, recall, kept, outcome, entry, steps, tests_agree, subject
                 FROM rows {filter} ORDER BY {order} LIMIT {PAGE_SIZE} OFFSET {}",
                q.page * PAGE_SIZE
            ))?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), crate::query::row_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM rows {filter}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            Ok((rows, total as u64))
        })();
        r.map_err(ViewError::Search)
    }

    /// The values the list's menus offer: rollouts, exit statuses and outcomes present.
    pub fn choices(&self) -> Result<BTreeMap<&'static str, Vec<String>>, ViewError> {
        let conn = self.lock();
        let mut out = BTreeMap::new();
        for (name, column) in [
            ("rollout", "rollout"),
            ("exit", "exit"),
            ("reason", "outcome"),
        ] {
            let values = (|| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT DISTINCT {column} FROM rows WHERE {column} IS NOT NULL ORDER BY 1"
                ))?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })()
            .map_err(ViewError::Search)?;
            out.insert(name, values);
        }
        Ok(out)
    }

    /// Trajectories whose text holds every word of `query` (each taken literally): the best
    /// `limit` by relevance, or, when more than [`RANKED_AT_MOST`] match (ranking them all
    /// would take long on a large run), the first `limit` by id.
    pub fn search(&self, query: &str, limit: usize) -> Result<Found, ViewError> {
        let Some(expr) = fts_query(query) else {
            return Ok(Found::default());
        };
        let conn = self.lock();
        let r = (|| {
            let matching: i64 = conn.query_row(
                &format!(
                    "SELECT COUNT(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ?1 LIMIT {})",
                    RANKED_AT_MOST + 1
                ),
                [&expr],
                |r| r.get(0),
            )?;
            let ranked = matching as usize <= RANKED_AT_MOST;
            let order = if ranked { "rank" } else { "rowid" };
            let mut stmt = conn.prepare(&format!(
                "SELECT rowid, job, rollout, snippet(fts, 0, char(1), char(2), '…', 16)
                 FROM fts WHERE fts MATCH ?1 ORDER BY {order} LIMIT ?2"
            ))?;
            let hits = stmt
                .query_map(params![expr, limit as i64], |r| {
                    Ok(Hit {
                        id: r.get(0)?,
                        job_id: r.get(1)?,
                        rollout: r.get(2)?,
                        snippet: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Found { hits, ranked })
        })();
        r.map_err(ViewError::Search)
    }
}

/// Matches ranked by relevance at most; past this many, the first by id are shown.
pub const RANKED_AT_MOST: usize = 5000;

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Found {
    /// The hits shown.
    pub hits: Vec<Hit>,
    /// Whether they are the most relevant (false: too many matched, the first by id).
    pub ranked: bool,
}

/// The FTS5 expression for a user's words: each word quoted as a phrase (so no word is read as
/// FTS syntax), all required; None when there is no word.
pub fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The searchable text of a stored trajectory: its task, and every message's text, reasoning
/// and tool-call arguments (commands); tool results are the observations. A trajectory that
/// does not read as an episode is indexed as its JSON text.
pub fn body_text(data: &str) -> String {
    let mut out = String::new();
    match serde_json::from_str::<trajforge_agent::Trajectory>(data) {
        Ok(t) => {
            out.push_str(&t.task);
            for m in &t.messages {
                for part in [m.content.as_deref(), m.reasoning.as_deref()]
                    .into_iter()
                    .flatten()
                {
                    out.push('\n');
                    out.push_str(part);
                }
                for c in &m.tool_calls {
                    out.push('\n');
                    out.push_str(&c.arguments);
                }
            }
            if let Some(p) = &t.outcome.patch {
                out.push('\n');
                out.push_str(p);
            }
        }
        Err(_) => out.push_str(data),
    }
    out.retain(|c| c != MARK_START && c != MARK_END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_taken_literally() {
        assert_eq!(
            fts_query("NEAR(a b) \"x OR"),
            Some("\"NEAR(a\" \"b)\" \"\"\"x\" \"OR\"".to_string())
        );
        assert_eq!(fts_query("  "), None);
    }
}
