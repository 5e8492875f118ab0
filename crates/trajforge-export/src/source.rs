//! One stored trajectory with what the run recorded around it (job, stages, verdicts).

use serde_json::Value;
use trajforge_agent::Trajectory;
use trajforge_store::model::{WebJob, WebRollout};
use trajforge_store::{StageName, TrajectoryMeta, TrajectoryRow};

use crate::error::{ExportError, Result};

/// What a web sample was asked to do and where it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebTask {
    /// The site (the base URL the run browsed).
    pub site: String,
    /// The intent's menu id.
    pub intent: String,
    /// The start page.
    pub start_url: String,
    /// The page the episode ended on.
    pub final_url: Option<String>,
}

/// A trajectory ready to filter and render.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where it belongs, how it ended, the run's verdict.
    pub meta: TrajectoryMeta,
    /// The job's key, if a job row exists.
    pub job_key: Option<String>,
    /// The job payload (the sampled function for repository runs; `null` when absent).
    pub function: Value,
    /// The attempt's stage results keyed by stage name, as stored (`null` when none); `raw`
    /// writes them unchanged.
    pub stages: Value,
    /// The trajectory.
    pub trajectory: Trajectory,
    /// The trajectory as stored, every field included (kept only when asked for).
    pub data: Option<Value>,
}

fn parse_json(id: i64, what: &str, text: Option<&str>) -> Result<Value> {
    match text {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(t).map_err(|e| ExportError::Record {
            id,
            message: format!("{what}: {e}"),
        }),
    }
}

impl Sample {
    /// Parse a streamed row; `keep_data` also keeps the stored JSON as it is (for `raw`).
    pub fn from_row(row: TrajectoryRow, keep_data: bool) -> Result<Sample> {
        let id = row.meta.id;
        let data = if keep_data {
            Some(parse_json(id, "data", Some(&row.data))?)
        } else {
            None
        };
        let trajectory: Trajectory = match &data {
            Some(v) => Trajectory::deserialize(v),
            None => serde_json::from_str(&row.data),
        }
        .map_err(|e| ExportError::Record {
            id,
            message: format!("not a trajectory record: {e}"),
        })?;
        Ok(Sample {
            meta: row.meta,
            job_key: row.job_key,
            function: parse_json(id, "job payload", row.job_payload.as_deref())?,
            stages: parse_json(id, "stages", row.stages.as_deref())?,
            trajectory,
            data,
        })
    }

    /// `path::name` of the sampled function, when the job names one.
    pub fn function_name(&self) -> Option<String> {
        let name = self.function.get("name")?.as_str()?;
        Some(match self.function.get("path").and_then(Value::as_str) {
            Some(path) if !path.is_empty() => format!("{path}::{name}"),
            _ => name.to_string(),
        })
    }

    /// The bug-type menu entry that produced the sample (`{"id", "index"}`), when recorded.
    pub fn menu_entry(&self) -> Option<Value> {
        let r1 = self.stages.get(StageName::Rollout1.as_str())?;
        let id = r1.get("bug")?.clone();
        Some(
            serde_json::json!({"id": id, "index": r1.get("bug_index").cloned().unwrap_or(Value::Null)}),
        )
    }

    /// The repository the sample came from: the job's own field if it has one (imports), else the run's.
    pub fn repository(&self, run_repo: Option<&str>) -> Option<String> {
        ["repo", "repository"]
            .iter()
            .find_map(|k| self.function.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .or_else(|| run_repo.map(str::to_string))
    }

    /// The task of a web run's sample, from the job and the rollout that made it (`None` for
    /// repository runs and imports).
    pub fn web_task(&self, site: Option<&str>) -> Option<WebTask> {
        let site = site?;
        let job = WebJob::deserialize(&self.function).ok()?;
        let stage = match self.meta.rollout {
            trajforge_store::Rollout::T2 => StageName::Rollout2,
            _ => StageName::Rollout1,
        };
        let rollout = self
            .stages
            .get(stage.as_str())
            .and_then(|v| WebRollout::deserialize(v).ok());
        Some(WebTask {
            site: site.to_string(),
            intent: job.intent,
            start_url: job.start_url,
            final_url: rollout.and_then(|r| r.final_url),
        })
    }

    /// A stable sample id: `job-attempt-rollout`.
    pub fn sample_id(&self) -> String {
        let m = &self.meta;
        format!("{}-{}-{}", m.job_id, m.attempt, m.rollout)
    }
}

use serde::Deserialize;
