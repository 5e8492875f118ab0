//! The totals of an evaluation's result rows: resolve rate, mean recall, exits, per seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::result::TaskResult;
use crate::task::TaskKind;

/// What a set of result rows adds up to (one evaluation, or one seed of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Rows (task, seed) scored.
    pub rows: u64,
    /// Distinct tasks among them.
    pub tasks: u64,
    /// Rows scored by an outcome: hard tasks scored by their tests, and web tasks.
    pub hard_rows: u64,
    /// Of those, rows of web tasks (their outcome: the target reached or the answer found).
    #[serde(default)]
    pub web_rows: u64,
    /// Of those, rows resolved.
    pub resolved: u64,
    /// `resolved / hard_rows`, when there is a hard row.
    pub resolved_rate: Option<f64>,
    /// Mean line recall against the gold patch over all rows.
    pub mean_recall: Option<f64>,
    /// Rows per exit status of the agent (`submitted`, `step_limit`, ...).
    pub exits: BTreeMap<String, u64>,
    /// Rows whose scoring could not finish (they count as not resolved).
    pub errors: u64,
    /// Mean model calls per row.
    pub mean_steps: Option<f64>,
    /// Prompt tokens over all rows.
    pub prompt_tokens: u64,
    /// Completion tokens over all rows.
    pub completion_tokens: u64,
    /// Cost over the rows that know theirs, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// The totals of all rows, and of each seed's rows (seed-to-seed spread shows the noise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Every row.
    #[serde(flatten)]
    pub all: Totals,
    /// Per seed.
    pub by_seed: BTreeMap<u32, Totals>,
}

/// Adds up `rows`.
pub fn totals<'a>(rows: impl IntoIterator<Item = &'a TaskResult>) -> Totals {
    let mut t = Totals::default();
    let mut tasks = std::collections::BTreeSet::new();
    let (mut recall, mut steps) = (0.0, 0usize);
    for r in rows {
        t.rows += 1;
        tasks.insert(r.instance_id.as_str());
        if r.kind.scored_by_outcome()
            && let Some(resolved) = r.resolved
        {
            t.hard_rows += 1;
            t.web_rows += u64::from(r.kind == TaskKind::Web);
            t.resolved += u64::from(resolved);
        }
        recall += r.recall;
        steps += r.steps;
        *t.exits.entry(r.exit_status.clone()).or_default() += 1;
        t.errors += u64::from(r.error.is_some());
        t.prompt_tokens += r.prompt_tokens;
        t.completion_tokens += r.completion_tokens;
        if let Some(c) = r.cost_usd {
            *t.cost_usd.get_or_insert(0.0) += c;
        }
    }
    t.tasks = tasks.len() as u64;
    if t.hard_rows > 0 {
        t.resolved_rate = Some(t.resolved as f64 / t.hard_rows as f64);
    }
    if t.rows > 0 {
        t.mean_recall = Some(recall / t.rows as f64);
        t.mean_steps = Some(steps as f64 / t.rows as f64);
    }
    t
}

/// The totals of `rows`, overall and per seed.
pub fn summarize(rows: &[TaskResult]) -> Summary {
    let mut seeds: BTreeMap<u32, Vec<&TaskResult>> = BTreeMap::new();
    for r in rows {
        seeds.entry(r.seed).or_default().push(r);
    }
    Summary {
        all: totals(rows),
        by_seed: seeds
            .into_iter()
            .map(|(seed, rows)| (seed, totals(rows)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, seed: u32, kind: TaskKind, resolved: Option<bool>, recall: f64) -> TaskResult {
        TaskResult {
            instance_id: id.into(),
            seed,
            kind,
            model: "m".into(),
            resolved,
            recall,
            exit_status: "submitted".into(),
            steps: 4,
            prompt_tokens: 10,
            completion_tokens: 2,
            cost_usd: None,
            error: None,
        }
    }

    #[test]
    fn rates_count_hard_rows_and_recall_counts_every_row() {
        let rows = vec![
            row("a", 0, TaskKind::Hard, Some(true), 1.0),
            row("a", 1, TaskKind::Hard, Some(false), 0.5),
            row("b", 0, TaskKind::Soft, None, 0.25),
            row("b", 1, TaskKind::Soft, None, 0.25),
        ];
        let s = summarize(&rows);
        assert_eq!((s.all.rows, s.all.tasks, s.all.hard_rows), (4, 2, 2));
        assert_eq!(s.all.resolved_rate, Some(0.5));
        assert_eq!(s.all.mean_recall, Some(0.5));
        assert_eq!(s.all.exits.get("submitted"), Some(&4));
        assert_eq!(s.all.prompt_tokens, 40);
        assert_eq!(s.all.cost_usd, None);
        assert_eq!(s.by_seed[&0].resolved_rate, Some(1.0));
        assert_eq!(s.by_seed[&1].resolved_rate, Some(0.0));
        assert_eq!(s.by_seed[&1].mean_recall, Some(0.375));
    }

    #[test]
    fn no_rows_no_rates() {
        let s = summarize(&[]);
        assert_eq!(s.all.resolved_rate, None);
        assert_eq!(s.all.mean_recall, None);
        assert!(s.by_seed.is_empty());
    }
}
