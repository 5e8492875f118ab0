//! `eval compare`: two evaluations paired on (task, seed), with an honest verdict.
//!
//! - **Pairing**: a row of A and a row of B pair when they share `instance_id` and `seed`;
//!   rows of one run alone are counted and left out.
//! - **Resolve rate**: over the pairs whose task is scored by an outcome in both runs (hard, or
//!   web: the target reached); a row counts as resolved only when `resolved` is `Some(true)`
//!   (a scoring error counts as not resolved).
//!   **Mean recall**: over every pair.
//! - **Interval**: 95% cluster bootstrap of B−A. Tasks are drawn with replacement, each with all
//!   its seeds (a task's seeds are not independent), and the difference is recomputed as the
//!   sum of the drawn differences over the drawn rows. The draws come from SplitMix64 with a
//!   fixed seed over the tasks sorted by id, so the same inputs give the same interval, and
//!   swapping A and B gives exactly the mirrored one.
//! - **McNemar**: exact two-sided binomial test on the discordant hard pairs (resolved by one
//!   run only), p = min(1, 2·P(X ≤ min(b, c))) with X ~ Bin(b + c, ½). It treats the pairs as
//!   independent; the bootstrap interval, which does not, decides the verdict.
//! - **Verdict**: on the resolve rate when there are hard pairs, else on recall: better or worse
//!   when the interval excludes 0, else "no difference the data can show" with the number of
//!   tasks that would be needed to detect [`CompareOptions::detect`] (see [`Power`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trajforge_hash::SplitMix64;

use crate::jsonl::{JsonlError, read_jsonl};
use crate::result::{RESULTS_FILE, TaskResult};
use crate::task::TaskKind;

/// z for a two-sided 5% test (the 97.5th percentile of the standard normal).
const Z_ALPHA: f64 = 1.959_963_984_540_054;
/// z for 80% power (the 80th percentile of the standard normal).
const Z_POWER: f64 = 0.841_621_233_572_914_3;
/// A recall change at least this large (on a task's mean over seeds) is listed as a change.
pub const RECALL_CHANGE: f64 = 0.25;

/// Comparing two evaluations failed.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The evaluation folder does not exist.
    #[error("{path}: no such evaluation folder")]
    MissingDir {
        /// The folder.
        path: PathBuf,
    },
    /// The folder holds no results file.
    #[error("{path}: no {RESULTS_FILE} in this folder")]
    NoResults {
        /// The folder.
        path: PathBuf,
    },
    /// The results file could not be read.
    #[error(transparent)]
    Read(#[from] JsonlError),
    /// One run has two rows for the same task and seed.
    #[error("{run}: two rows for task {instance_id} seed {seed}")]
    Duplicate {
        /// The run's label (its folder).
        run: String,
        /// The task.
        instance_id: String,
        /// The seed.
        seed: u32,
    },
    /// The two runs share no (task, seed) row.
    #[error("the two evaluations share no (task, seed) row: A has {a_rows} rows, B has {b_rows}")]
    NothingShared {
        /// Rows of A.
        a_rows: usize,
        /// Rows of B.
        b_rows: usize,
    },
}

/// How to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap draws.
    pub seed: u64,
    /// The difference (as a fraction: 0.05 is 5 points) the power estimate is for.
    pub detect: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            resamples: 10_000,
            seed: 0x7472_616a_666f_7267,
            detect: 0.05,
        }
    }
}

/// One evaluation as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// How the caller named it (its folder).
    pub label: String,
    /// The models of its rows (usually one).
    pub models: Vec<String>,
    /// Rows in its results file.
    pub rows: usize,
    /// Rows with no partner in the other run.
    pub unpaired: usize,
    /// Resolved share of the paired hard rows (`None` without any).
    pub resolve_rate: Option<f64>,
    /// Mean recall over the paired rows.
    pub mean_recall: f64,
}

/// B−A with its interval, as fractions (0.071 is 7.1 points).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// B−A on the paired rows.
    pub estimate: f64,
    /// Lower end of the 95% cluster bootstrap interval.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
}

impl Difference {
    /// Whether the interval excludes 0, and on which side.
    pub fn outcome(&self) -> Outcome {
        if self.ci_low > 0.0 {
            Outcome::Better
        } else if self.ci_high < 0.0 {
            Outcome::Worse
        } else {
            Outcome::NoDifference
        }
    }
}

/// The exact McNemar test on resolved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Hard pairs resolved by A only.
    pub a_only: usize,
    /// Hard pairs resolved by B only.
    pub b_only: usize,
    /// Two-sided exact p-value.
    pub p_value: f64,
}

/// How many tasks a difference of `detect` would need (5% two-sided, 80% power).
///
/// For resolve rates, Connor's (1987) sample size for paired proportions:
/// n = (z_α·√ψ + z_β·√(ψ − δ²))² / δ² pairs, with ψ the observed share of discordant pairs,
/// raised to at least δ (a difference of δ needs at least that share). For recall, the paired
/// mean's n = ((z_α + z_β)·σ / δ)² tasks, with σ the standard deviation of the per-task mean
/// differences. Pairs become tasks at the observed seeds per task; the within-task correlation
/// of seeds is ignored, so the figure is a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Power {
    /// The difference it is for (a fraction).
    pub detect: f64,
    /// Tasks needed in all.
    pub tasks_needed: usize,
    /// Tasks the comparison has (hard ones for the resolve rate).
    pub tasks_now: usize,
}

impl Power {
    /// Tasks to add (0 when there are enough already).
    pub fn more_tasks(&self) -> usize {
        self.tasks_needed.saturating_sub(self.tasks_now)
    }
}

/// Which way the verdict goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// B is better: the interval lies above 0.
    Better,
    /// B is worse: the interval lies below 0.
    Worse,
    /// The interval holds 0.
    NoDifference,
}

/// The metric a verdict is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Resolve rate over hard tasks.
    Resolved,
    /// Mean line recall (when no task is hard).
    Recall,
}

/// The verdict, in words and as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The metric it is on.
    pub metric: Metric,
    /// Better, worse or no difference.
    pub outcome: Outcome,
    /// One sentence.
    pub text: String,
}

/// One task whose result changed between A and B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    /// The task.
    pub instance_id: String,
    /// Hard when both runs scored it by tests.
    pub kind: TaskKind,
    /// Paired seeds.
    pub seeds: usize,
    /// Seeds resolved by A (hard tasks).
    pub resolved_a: usize,
    /// Seeds resolved by B (hard tasks).
    pub resolved_b: usize,
    /// A's mean recall over the seeds.
    pub recall_a: f64,
    /// B's mean recall over the seeds.
    pub recall_b: f64,
}

impl TaskChange {
    /// Seeds resolved, A → B (`2/3 → 3/3`), or `soft` for a task scored by recall alone.
    pub fn seeds_resolved(&self) -> String {
        match self.kind {
            TaskKind::Hard | TaskKind::Web => format!(
                "{}/{} → {}/{}",
                self.resolved_a, self.seeds, self.resolved_b, self.seeds
            ),
            TaskKind::Soft => "soft".to_string(),
        }
    }
}

/// The whole comparison: what `eval compare` prints, as text or `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Run A.
    pub a: RunSummary,
    /// Run B.
    pub b: RunSummary,
    /// Paired rows.
    pub paired_rows: usize,
    /// Tasks with at least one paired row.
    pub paired_tasks: usize,
    /// Paired rows hard in both runs.
    pub hard_rows: usize,
    /// Tasks with a hard paired row.
    pub hard_tasks: usize,
    /// Bootstrap resamples behind the intervals.
    pub resamples: usize,
    /// B−A in resolve rate (`None` without hard rows).
    pub resolved: Option<Difference>,
    /// B−A in mean recall.
    pub recall: Difference,
    /// Exact McNemar test on resolved (`None` without hard rows).
    pub mcnemar: Option<McNemar>,
    /// Tasks a difference of `detect` would need, when no difference shows.
    pub power: Option<Power>,
    /// The verdict.
    pub verdict: Verdict,
    /// Tasks that flipped (resolved on more seeds in one run) or whose mean recall moved by at
    /// least [`RECALL_CHANGE`], B's gains first.
    pub changes: Vec<TaskChange>,
}

/// Reads `EVAL_DIR/results.jsonl` of an evaluation folder.
pub fn read_results(dir: &Path) -> Result<Vec<TaskResult>, CompareError> {
    if !dir.is_dir() {
        return Err(CompareError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let file = dir.join(RESULTS_FILE);
    if !file.is_file() {
        return Err(CompareError::NoResults {
            path: dir.to_path_buf(),
        });
    }
    Ok(read_jsonl(&file)?)
}

/// Compares the evaluations in folders `a` and `b` (labelled by their paths).
pub fn compare_dirs(
    a: &Path,
    b: &Path,
    options: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let rows_a = read_results(a)?;
    let rows_b = read_results(b)?;
    compare(
        (&a.display().to_string(), &rows_a),
        (&b.display().to_string(), &rows_b),
        options,
    )
}

/// One paired row, reduced to what the statistics use.
#[derive(Debug, Clone, Copy)]
struct Pair {
    /// Scored by an outcome in both runs (hard, or web).
    hard: bool,
    /// A's kind, shown in the table of changes.
    kind: TaskKind,
    resolved_a: bool,
    resolved_b: bool,
    recall_a: f64,
    recall_b: f64,
}

/// A task's paired rows, summed: the unit the bootstrap draws.
#[derive(Debug, Clone, Copy, Default)]
struct Cluster {
    rows: usize,
    hard: usize,
    resolved_diff: f64,
    recall_diff: f64,
}

/// The rows of one run by (task, seed); two rows for one key are an error.
fn index<'r>(
    label: &str,
    rows: &'r [TaskResult],
) -> Result<HashMap<(&'r str, u32), &'r TaskResult>, CompareError> {
    let mut map = HashMap::with_capacity(rows.len());
    for r in rows {
        if map.insert((r.instance_id.as_str(), r.seed), r).is_some() {
            return Err(CompareError::Duplicate {
                run: label.to_string(),
                instance_id: r.instance_id.clone(),
                seed: r.seed,
            });
        }
    }
    Ok(map)
}

/// Compares two runs' rows; each comes with its label.
pub fn compare(
    (label_a, rows_a): (&str, &[TaskResult]),
    (label_b, rows_b): (&str, &[TaskResult]),
    options: &CompareOptions,
) -> Result<Comparison, CompareError> {
    index(label_a, rows_a)?;
    let index_b = index(label_b, rows_b)?;
    // Sorted by task id (then seed) so neither file order nor hashing moves the draws.
    let mut tasks: BTreeMap<&str, Vec<(u32, Pair)>> = BTreeMap::new();
    for ra in rows_a {
        let Some(rb) = index_b.get(&(ra.instance_id.as_str(), ra.seed)) else {
            continue;
        };
        let pair = Pair {
            hard: ra.kind.scored_by_outcome() && rb.kind.scored_by_outcome(),
            kind: ra.kind,
            resolved_a: ra.resolved == Some(true),
            resolved_b: rb.resolved == Some(true),
            recall_a: ra.recall,
            recall_b: rb.recall,
        };
        tasks
            .entry(&ra.instance_id)
            .or_default()
            .push((ra.seed, pair));
    }
    let paired_rows: usize = tasks.values().map(Vec::len).sum();
    if paired_rows == 0 {
        return Err(CompareError::NothingShared {
            a_rows: rows_a.len(),
            b_rows: rows_b.len(),
        });
    }
    let pairs: Vec<Pair> = tasks.values().flatten().map(|(_, p)| *p).collect();
    let clusters: Vec<Cluster> = tasks
        .values()
        .map(|rows| {
            rows.iter().fold(Cluster::default(), |mut c, (_, p)| {
                c.rows += 1;
                if p.hard {
                    c.hard += 1;
                    c.resolved_diff +=
                        f64::from(u8::from(p.resolved_b)) - f64::from(u8::from(p.resolved_a));
                }
                c.recall_diff += p.recall_b - p.recall_a;
                c
            })
        })
        .collect();
    let hard: Vec<&Pair> = pairs.iter().filter(|p| p.hard).collect();
    let hard_rows = hard.len();
    let hard_tasks = clusters.iter().filter(|c| c.hard > 0).count();
    let rate = |f: fn(&Pair) -> bool| {
        (hard_rows > 0).then(|| hard.iter().filter(|p| f(p)).count() as f64 / hard_rows as f64)
    };
    let mean = |f: fn(&Pair) -> f64| pairs.iter().map(f).sum::<f64>() / paired_rows as f64;

    let (resolved_ci, recall_ci) = bootstrap(&clusters, options);
    let resolved = match (rate(|p| p.resolved_a), rate(|p| p.resolved_b), resolved_ci) {
        (Some(ra), Some(rb), Some((lo, hi))) => Some(Difference {
            estimate: rb - ra,
            ci_low: lo,
            ci_high: hi,
        }),
        _ => None,
    };
    let recall = Difference {
        estimate: mean(|p| p.recall_b) - mean(|p| p.recall_a),
        ci_low: recall_ci.0,
        ci_high: recall_ci.1,
    };
    let mcnemar = (hard_rows > 0).then(|| {
        let a_only = hard
            .iter()
            .filter(|p| p.resolved_a && !p.resolved_b)
            .count();
        let b_only = hard
            .iter()
            .filter(|p| p.resolved_b && !p.resolved_a)
            .count();
        McNemar {
            a_only,
            b_only,
            p_value: mcnemar_exact(a_only, b_only),
        }
    });

    let (metric, primary) = match resolved {
        Some(d) => (Metric::Resolved, d),
        None => (Metric::Recall, recall),
    };
    let outcome = primary.outcome();
    let power = (outcome == Outcome::NoDifference).then(|| match mcnemar {
        Some(m) => {
            let pairs_needed = pairs_for_proportions(
                (m.a_only + m.b_only) as f64 / hard_rows as f64,
                options.detect,
            );
            let seeds_per_task = hard_rows as f64 / hard_tasks as f64;
            Power {
                detect: options.detect,
                tasks_needed: (pairs_needed / seeds_per_task).ceil() as usize,
                tasks_now: hard_tasks,
            }
        }
        None => {
            let per_task: Vec<f64> = clusters
                .iter()
                .map(|c| c.recall_diff / c.rows as f64)
                .collect();
            Power {
                detect: options.detect,
                tasks_needed: tasks_for_mean(&per_task, options.detect).ceil() as usize,
                tasks_now: clusters.len(),
            }
        }
    });
    let verdict = Verdict {
        metric,
        outcome,
        text: verdict_text(metric, primary, power),
    };

    let changes = changes(&tasks);
    let summary = |label: &str, rows: &[TaskResult], rate: Option<f64>, recall: f64| RunSummary {
        label: label.to_string(),
        models: {
            let mut m: Vec<String> = rows.iter().map(|r| r.model.clone()).collect();
            m.sort();
            m.dedup();
            m
        },
        rows: rows.len(),
        unpaired: rows.len() - paired_rows,
        resolve_rate: rate,
        mean_recall: recall,
    };
    Ok(Comparison {
        a: summary(
            label_a,
            rows_a,
            rate(|p| p.resolved_a),
            mean(|p| p.recall_a),
        ),
        b: summary(
            label_b,
            rows_b,
            rate(|p| p.resolved_b),
            mean(|p| p.recall_b),
        ),
        paired_rows,
        paired_tasks: clusters.len(),
        hard_rows,
        hard_tasks,
        resamples: options.resamples,
        resolved,
        recall,
        mcnemar,
        power,
        verdict,
        changes,
    })
}

/// Percentile intervals of the resolve-rate and recall differences over cluster resamples
/// (the resolve one `None` without hard rows).
fn bootstrap(clusters: &[Cluster], options: &CompareOptions) -> (Option<(f64, f64)>, (f64, f64)) {
    let mut rng = SplitMix64::new(options.seed);
    let n = clusters.len() as u64;
    let mut resolved = Vec::with_capacity(options.resamples);
    let mut recall = Vec::with_capacity(options.resamples);
    for _ in 0..options.resamples.max(1) {
        let mut sum = Cluster::default();
        for _ in 0..n {
            let c = &clusters[rng.below(n) as usize];
            sum.rows += c.rows;
            sum.hard += c.hard;
            sum.resolved_diff += c.resolved_diff;
            sum.recall_diff += c.recall_diff;
        }
        // A draw without hard rows says nothing about the resolve rate.
        if sum.hard > 0 {
            resolved.push(sum.resolved_diff / sum.hard as f64);
        }
        recall.push(sum.recall_diff / sum.rows as f64);
    }
    (
        (!resolved.is_empty()).then(|| percentile_interval(resolved)),
        percentile_interval(recall),
    )
}

/// The central 95% of `values`: the same rank from each end, so negated values give exactly
/// the mirrored interval.
fn percentile_interval(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let k = values.len();
    let low = (k as f64 * 0.025).floor() as usize;
    (values[low], values[k - 1 - low])
}

/// Exact two-sided McNemar p-value for `b` and `c` discordant pairs.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    let m = b.min(c);
    if n == 0 {
        return 1.0;
    }
    // Sum the binomial(n, ½) probabilities of 0..=m in log space: 2^-n underflows past n = 1074.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0;
    let mut terms = Vec::with_capacity(m + 1);
    for k in 0..=m {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        terms.push(ln_choose + ln_half_n);
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = top.exp() * terms.iter().map(|t| (t - top).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Connor's pairs needed for a paired-proportions difference `delta` given a discordant share.
fn pairs_for_proportions(discordant: f64, delta: f64) -> f64 {
    let psi = discordant.max(delta);
    let root = Z_ALPHA * psi.sqrt() + Z_POWER * (psi - delta * delta).max(0.0).sqrt();
    root * root / (delta * delta)
}

/// Tasks needed for a paired mean difference `delta` given per-task differences.
fn tasks_for_mean(diffs: &[f64], delta: f64) -> f64 {
    let n = diffs.len() as f64;
    if diffs.len() < 2 {
        return 0.0;
    }
    let mean = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    ((Z_ALPHA + Z_POWER) * var.sqrt() / delta).powi(2)
}

/// Points with one decimal: 0.0712 → "7.1".
fn points(x: f64) -> String {
    let p = x * 100.0;
    // "-0.0" reads as a difference; it is none.
    if p.abs() < 0.05 {
        "0.0".into()
    } else {
        format!("{p:.1}")
    }
}

/// A difference in points with its sign: "+5.0", "-7.3", "0.0".
fn signed(x: f64) -> String {
    let p = points(x);
    if p == "0.0" || p.starts_with('-') {
        p
    } else {
        format!("+{p}")
    }
}

fn verdict_text(metric: Metric, d: Difference, power: Option<Power>) -> String {
    let ci = format!("95% CI [{}, {}]", points(d.ci_low), points(d.ci_high));
    let (subject, more, less) = match metric {
        Metric::Resolved => ("B resolves", "more", "fewer"),
        Metric::Recall => ("B's recall is", "higher", "lower"),
    };
    match d.outcome() {
        Outcome::Better => format!(
            "{subject} {} points {more}, {ci}: better",
            points(d.estimate)
        ),
        Outcome::Worse => format!(
            "{subject} {} points {less}, {ci}: worse",
            points(-d.estimate)
        ),
        Outcome::NoDifference => {
            let what = match metric {
                Metric::Resolved => "B−A",
                Metric::Recall => "B−A in recall",
            };
            let mut s = format!(
                "no difference the data can show ({what} {} points, {ci})",
                signed(d.estimate)
            );
            if let Some(p) = power {
                let d = p.detect * 100.0;
                let detect = if (d - d.round()).abs() < 1e-9 {
                    format!("{d:.0}")
                } else {
                    format!("{d:.1}")
                };
                match p.more_tasks() {
                    0 => s.push_str(&format!(
                        "; {} tasks are enough to detect {detect} points, so any difference is likely smaller",
                        p.tasks_now
                    )),
                    more => s.push_str(&format!(
                        "; about {more} more tasks would be needed to detect {detect} points"
                    )),
                }
            }
            s
        }
    }
}

/// The tasks that changed, B's gains first.
fn changes(tasks: &BTreeMap<&str, Vec<(u32, Pair)>>) -> Vec<TaskChange> {
    let mut out: Vec<TaskChange> = tasks
        .iter()
        .filter_map(|(id, rows)| {
            let seeds = rows.len();
            let hard = rows.iter().all(|(_, p)| p.hard);
            let count = |f: fn(&Pair) -> bool| rows.iter().filter(|(_, p)| p.hard && f(p)).count();
            let avg =
                |f: fn(&Pair) -> f64| rows.iter().map(|(_, p)| f(p)).sum::<f64>() / seeds as f64;
            let change = TaskChange {
                instance_id: (*id).to_string(),
                kind: match rows.first() {
                    Some((_, p)) if hard => p.kind,
                    _ => TaskKind::Soft,
                },
                seeds,
                resolved_a: count(|p| p.resolved_a),
                resolved_b: count(|p| p.resolved_b),
                recall_a: avg(|p| p.recall_a),
                recall_b: avg(|p| p.recall_b),
            };
            let flipped = rows
                .iter()
                .any(|(_, p)| p.hard && p.resolved_a != p.resolved_b);
            (flipped || (change.recall_b - change.recall_a).abs() >= RECALL_CHANGE)
                .then_some(change)
        })
        .collect();
    out.sort_by(|x, y| {
        let gain = |c: &TaskChange| c.resolved_b as i64 - c.resolved_a as i64;
        gain(y)
            .cmp(&gain(x))
            .then((y.recall_b - y.recall_a).total_cmp(&(x.recall_b - x.recall_a)))
            .then(x.instance_id.cmp(&y.instance_id))
    });
    out
}

/// The comparison as the terminal shows it.
pub fn render(c: &Comparison) -> String {
    let mut s = String::new();
    for (name, r) in [("A", &c.a), ("B", &c.b)] {
        s.push_str(&format!(
            "{name}: {} ({}; {} rows, {} unpaired)\n",
            r.label,
            if r.models.is_empty() {
                "no model".to_string()
            } else {
                r.models.join(", ")
            },
            r.rows,
            r.unpaired
        ));
    }
    s.push_str(&format!(
        "paired: {} rows over {} tasks; hard: {} rows over {} tasks\n\n",
        c.paired_rows, c.paired_tasks, c.hard_rows, c.hard_tasks
    ));
    s.push_str(&format!(
        "{:<12}{:>9}{:>9}{:>9}   95% CI (B−A, {} resamples)\n",
        "", "A", "B", "B−A", c.resamples
    ));
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let row = |name: &str, a: String, b: String, d: Option<Difference>| match d {
        Some(d) => format!(
            "{name:<12}{a:>9}{b:>9}{:>9}   [{}, {}]\n",
            signed(d.estimate),
            points(d.ci_low),
            points(d.ci_high)
        ),
        None => format!("{name:<12}{a:>9}{b:>9}{:>9}\n", "-"),
    };
    s.push_str(&row(
        "resolved",
        pct(c.a.resolve_rate),
        pct(c.b.resolve_rate),
        c.resolved,
    ));
    s.push_str(&row(
        "recall",
        format!("{:.3}", c.a.mean_recall),
        format!("{:.3}", c.b.mean_recall),
        Some(c.recall),
    ));
    if let Some(m) = c.mcnemar {
        s.push_str(&format!(
            "\nexact McNemar on resolved: {} resolved by A only, {} by B only, p = {}\n",
            m.a_only,
            m.b_only,
            p_value(m.p_value)
        ));
    }
    s.push_str(&format!("\nverdict: {}\n", c.verdict.text));
    if c.changes.is_empty() {
        s.push_str("\nno task flipped or moved its recall by 0.25 or more\n");
    } else {
        s.push_str(&format!(
            "\n{} tasks changed (resolved seeds and mean recall, A → B):\n",
            c.changes.len()
        ));
        let width = c
            .changes
            .iter()
            .map(|t| t.instance_id.len())
            .max()
            .unwrap_or(0);
        for t in &c.changes {
            let resolved = t.seeds_resolved();
            s.push_str(&format!(
                "  {:<width$}  {resolved:<13}  {:.2} → {:.2}\n",
                t.instance_id, t.recall_a, t.recall_b
            ));
        }
    }
    s
}

/// A p-value as read: 4 significant digits, scientific below 0.001.
fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests;
