//! Read-only queries over a run store for the pages: the filtered, sorted, paginated list of
//! trajectories, one job with its stages and trajectories, and neighbours for navigation.
//! Nothing here writes, and everything is read through the store's typed records, so a run
//! folder's SQLite file and a PostgreSQL run are read alike.

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use serde::{Deserialize, Serialize};
use trajforge_store::model::{RolloutStage, Stage};
use trajforge_store::{Job, Rollout, StageRecord, Store, StoreError, TrajectoryMeta};

/// How the list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// By trajectory id (the order they were stored).
    #[default]
    Id,
    /// By r.
    Recall,
    /// By steps taken.
    Steps,
    /// By job.
    Job,
}

impl Sort {
    fn parse(s: &str) -> Sort {
        match s {
            "recall" | "r" => Sort::Recall,
            "steps" => Sort::Steps,
            "job" => Sort::Job,
            _ => Sort::Id,
        }
    }

    /// The name used in links.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Id => "id",
            Sort::Recall => "recall",
            Sort::Steps => "steps",
            Sort::Job => "job",
        }
    }
}

/// The list's filters that pick rows by a label, by their key in the query string: verdict
/// (`kept` or `rejected`), the attempt's outcome (`low_recall`, `selfcheck_no`, ...),
/// rollout (`t1`, `t2`), bug type (code) or intent (web), exit status label, and behavioural
/// verdict (`agree`, `disagree`).
pub const LABEL_FILTERS: [&str; 6] = ["kept", "reason", "rollout", "entry", "exit", "tests"];

/// The list's filters, sort and page, as the query string of `/list` carries them (so a link
/// or a reload shows the same rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// The label filters set, by key (one of [`LABEL_FILTERS`]); a missing one selects all.
    pub labels: BTreeMap<String, String>,
    /// Lowest r.
    pub rmin: Option<f64>,
    /// Highest r.
    pub rmax: Option<f64>,
    /// Sort key.
    pub sort: Sort,
    /// Descending.
    pub desc: bool,
    /// 0-based page.
    pub page: usize,
}

/// Rows per list page.
pub const PAGE_SIZE: usize = 50;

impl ListQuery {
    /// Read the filters from a query string's pairs (unknown keys ignored, bad numbers dropped).
    pub fn from_pairs(pairs: &BTreeMap<String, String>) -> ListQuery {
        let f = |k: &str| pairs.get(k).and_then(|v| v.trim().parse::<f64>().ok());
        ListQuery {
            labels: LABEL_FILTERS
                .iter()
                .filter_map(|k| Some((k.to_string(), pairs.get(*k)?.clone())))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            rmin: f("rmin"),
            rmax: f("rmax"),
            sort: Sort::parse(pairs.get("sort").map_or("", String::as_str)),
            desc: pairs.get("dir").is_some_and(|d| d == "desc"),
            page: pairs.get("page").and_then(|p| p.parse().ok()).unwrap_or(0),
        }
    }

    /// The value of the label filter `key` (empty when it selects all).
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    /// The query string pairs of these filters, with `page` replaced.
    pub fn pairs(&self, page: usize) -> Vec<(&'static str, String)> {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut pairs: Vec<(&'static str, String)> = LABEL_FILTERS
            .iter()
            .map(|k| (*k, self.label(k).to_string()))
            .collect();
        pairs.extend([
            ("rmin", opt(self.rmin)),
            ("rmax", opt(self.rmax)),
            (
                "sort",
                if self.sort == Sort::Id {
                    String::new()
                } else {
                    self.sort.as_str().to_string()
                },
            ),
            ("dir", if self.desc { "desc" } else { "" }.to_string()),
            (
                "page",
                if page == 0 {
                    String::new()
                } else {
                    page.to_string()
                },
            ),
        ]);
        pairs
    }
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListRow {
    /// Trajectory id.
    pub id: i64,
    /// Job id.
    pub job_id: i64,
    /// Attempt.
    pub attempt: i64,
    /// `t1` or `t2`.
    pub rollout: String,
    /// Exit status.
    pub exit: String,
    /// r.
    pub recall: Option<f64>,
    /// Kept for training.
    pub kept: bool,
    /// The attempt's outcome: its rejection reason, else its verification result, else the job's.
    pub outcome: Option<String>,
    /// Bug type (code) or intent (web).
    pub entry: Option<String>,
    /// Steps taken (from the rollout stage).
    pub steps: Option<i64>,
    /// Behavioural verdict, when tests were run.
    pub tests_agree: Option<bool>,
    /// The function's name (code) or the start page (web).
    pub subject: String,
}

/// The list rows of the trajectories `metas`, read from their jobs and stages in the run
/// store (both backends, a batch at a time); they are mirrored into the side index, where the
/// list is filtered and counted (see [`crate::search`]).
pub fn list_rows(store: &Store, metas: &[TrajectoryMeta]) -> Result<Vec<ListRow>, StoreError> {
    let mut ids: Vec<i64> = metas.iter().map(|m| m.job_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let jobs: BTreeMap<i64, Job> = store
        .jobs_of(&ids)?
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let mut stages: BTreeMap<(i64, i64), Vec<Stage>> = BTreeMap::new();
    for s in store.stages_of_jobs(&ids)? {
        stages
            .entry((s.job_id, s.attempt))
            .or_default()
            .push(s.stage);
    }
    let none = Vec::new();
    Ok(metas
        .iter()
        .map(|m| {
            let stages = stages.get(&(m.job_id, m.attempt)).unwrap_or(&none);
            list_row(m, jobs.get(&m.job_id), stages)
        })
        .collect())
}

/// A trajectory's list row from its job and its attempt's stages.
fn list_row(m: &TrajectoryMeta, job: Option<&Job>, stages: &[Stage]) -> ListRow {
    let text = |key: &str| {
        job.and_then(|j| j.payload.get(key)?.as_str())
            .map(str::to_string)
    };
    let outcome = stages
        .iter()
        .find_map(|s| match s {
            Stage::Rejected(r) => Some(r.reason.to_string()),
            _ => None,
        })
        .or_else(|| {
            stages.iter().find_map(|s| match s {
                Stage::Verify(v) => Some(v.result().to_string()),
                _ => None,
            })
        })
        .or_else(|| job.and_then(|j| j.result.as_ref()).map(|r| r.to_string()));
    let entry = text("intent").or_else(|| {
        stages.iter().find_map(|s| match s {
            Stage::Rollout1(RolloutStage::Code(r)) => r.bug.clone(),
            _ => None,
        })
    });
    let steps = stages
        .iter()
        .find_map(|s| match (s, m.rollout == Rollout::T1) {
            (Stage::Rollout1(r), true) | (Stage::Rollout2(r), false) => Some(match r {
                RolloutStage::Code(c) => c.steps as i64,
                RolloutStage::Web(w) => w.steps as i64,
            }),
            _ => None,
        });
    let tests_agree = stages.iter().find_map(|s| match s {
        Stage::Tests(t) => t.verdict.as_ref().map(|v| v.agree),
        _ => None,
    });
    ListRow {
        id: m.id,
        job_id: m.job_id,
        attempt: m.attempt,
        rollout: m.rollout.to_string(),
        exit: m.exit_status.to_string(),
        recall: m.recall,
        kept: m.kept,
        outcome,
        entry,
        steps,
        tests_agree,
        subject: text("name")
            .or_else(|| text("start_url"))
            .or_else(|| job.map(|j| j.key.clone()))
            .unwrap_or_default(),
    }
}

/// A [`ListRow`] from the twelve columns in its field order.
pub fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListRow> {
    Ok(ListRow {
        id: r.get(0)?,
        job_id: r.get(1)?,
        attempt: r.get(2)?,
        rollout: r.get(3)?,
        exit: r.get(4)?,
        recall: r.get(5)?,
        kept: r.get::<_, i64>(6)? != 0,
        outcome: r.get(7)?,
        entry: r.get(8)?,
        steps: r.get(9)?,
        tests_agree: r.get::<_, Option<i64>>(10)?.map(|v| v != 0),
        subject: r.get(11)?,
    })
}

/// The `WHERE` and `ORDER BY` of `q` over the mirrored rows (table `rows`), with their arguments.
pub fn list_filter(q: &ListQuery) -> (String, String, Vec<Sql>) {
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    for (column, key) in [
        ("rollout", "rollout"),
        ("exit", "exit"),
        ("outcome", "reason"),
        ("entry", "entry"),
    ] {
        let v = q.label(key);
        if !v.is_empty() {
            args.push(Sql::Text(v.to_string()));
            wheres.push(format!("{column} = ?{}", args.len()));
        }
    }
    match q.label("kept") {
        "kept" => wheres.push("kept != 0".into()),
        "rejected" => wheres.push("kept = 0".into()),
        _ => {}
    }
    match q.label("tests") {
        "agree" => wheres.push("tests_agree = 1".into()),
        "disagree" => wheres.push("tests_agree = 0".into()),
        _ => {}
    }
    for (op, v) in [(">=", q.rmin), ("<=", q.rmax)] {
        if let Some(v) = v {
            args.push(Sql::Real(v));
            wheres.push(format!("recall {op} ?{}", args.len()));
        }
    }
    let filter = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let dir = if q.desc { "DESC" } else { "ASC" };
    let order = match q.sort {
        Sort::Id => format!("id {dir}"),
        Sort::Recall => format!("recall IS NULL, recall {dir}, id"),
        Sort::Steps => format!("steps IS NULL, steps {dir}, id"),
        Sort::Job => format!("job_id {dir}, attempt, rollout"),
    };
    (filter, order, args)
}

/// A stored trajectory of a job, parsed when it has the agent's trajectory format.
#[derive(Debug, Clone)]
pub struct JobTrajectory {
    /// Row metadata and verdict.
    pub meta: TrajectoryMeta,
    /// The episode, when its JSON reads as one.
    pub trajectory: Option<trajforge_agent::Trajectory>,
    /// The JSON as stored, for trajectories that do not read as an episode.
    pub raw: String,
}

/// One job with everything the store holds about it.
#[derive(Debug, Clone)]
pub struct JobStory {
    /// The job.
    pub job: Job,
    /// Its stage results, in commit order.
    pub stages: Vec<StageRecord>,
    /// Its trajectories, by attempt and rollout.
    pub trajectories: Vec<JobTrajectory>,
    /// The previous and next job ids, for navigation.
    pub neighbours: (Option<i64>, Option<i64>),
}

impl JobStory {
    /// The attempts recorded, in order.
    pub fn attempts(&self) -> Vec<i64> {
        let mut a: Vec<i64> = self
            .stages
            .iter()
            .map(|s| s.attempt)
            .chain(self.trajectories.iter().map(|t| t.meta.attempt))
            .collect();
        a.sort_unstable();
        a.dedup();
        a
    }

    /// The stage `pick` selects in `attempt`.
    pub fn stage<'a, T>(
        &'a self,
        attempt: i64,
        pick: impl Fn(&'a Stage) -> Option<T>,
    ) -> Option<T> {
        self.stages
            .iter()
            .filter(|s| s.attempt == attempt)
            .find_map(|s| pick(&s.stage))
    }

    /// The trajectory of `rollout` in `attempt`.
    pub fn trajectory(&self, attempt: i64, rollout: &str) -> Option<&JobTrajectory> {
        self.trajectories
            .iter()
            .find(|t| t.meta.attempt == attempt && t.meta.rollout == rollout)
    }
}

/// Everything about job `id`, or None when there is no such job.
pub fn job_story(store: &Store, id: i64) -> Result<Option<JobStory>, StoreError> {
    let Some(job) = store.job(id)? else {
        return Ok(None);
    };
    let stages = store.stages(id)?;
    let rows = store.job_trajectories(id)?;
    let trajectories = rows
        .into_iter()
        .map(|(meta, raw)| JobTrajectory {
            meta,
            trajectory: serde_json::from_str(&raw).ok(),
            raw,
        })
        .collect();
    let neighbours = store.job_neighbours(id)?;
    Ok(Some(JobStory {
        job,
        stages,
        trajectories,
        neighbours,
    }))
}
