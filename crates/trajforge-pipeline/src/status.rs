//! Where a run stands, computed from its store alone (so it works while the run goes on,
//! after a crash, and on another machine).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trajforge_store::model::{CodeRollout, RolloutStage, SelfcheckAnswer, WebJob};
use trajforge_store::{JobStatus, Outcome, Rollout, Stage, StageTallies, Store, StoreError};
use trajforge_teacher::ServerStats;

/// Prices for cost figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Pricing {
    /// Dollars per million prompt tokens.
    pub price_in: Option<f64>,
    /// Dollars per million completion tokens.
    pub price_out: Option<f64>,
    /// Dollars per GPU hour, applied to the measured teacher time.
    pub gpu_hour: Option<f64>,
}

impl Pricing {
    /// What the tokens cost at the per-token prices (none when neither price is known).
    pub fn token_cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        match (self.price_in, self.price_out) {
            (None, None) => None,
            (pin, pout) => Some(
                (prompt_tokens as f64 * pin.unwrap_or(0.0)
                    + completion_tokens as f64 * pout.unwrap_or(0.0))
                    / 1e6,
            ),
        }
    }
}

/// Per bug-type entry: how its attempts fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EntryYield {
    /// Rollout 1 attempts.
    pub attempts: u64,
    /// Self-checks answered yes.
    pub selfcheck_yes: u64,
    /// T2 kept.
    pub kept: u64,
}

/// One cell of a web run's intent x start-page grid.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CoverageCell {
    /// Tasks finished (whatever the result).
    pub tried: u64,
    /// Tasks whose pair was kept.
    pub kept: u64,
    /// Tasks that rollout 1 reported infeasible from this page.
    pub infeasible: u64,
}

/// The status of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    /// `code` (functions of a repository), `web` (tasks on a site), `eval` (an evaluation)
    /// or `mine` (changes of a repository's history mined into tasks).
    pub kind: String,
    /// Functions (code), tasks (web), rows (eval) or changes (mine): the run's jobs.
    pub functions: u64,
    /// Functions not started.
    pub pending: u64,
    /// Functions in flight.
    pub running: u64,
    /// Functions finished.
    pub done: u64,
    /// Finished functions per result (`kept`, `low_recall`, `selfcheck_no`, ...).
    pub results: BTreeMap<String, u64>,
    /// Stage results committed, per stage.
    pub stages: BTreeMap<String, u64>,
    /// Rollouts per kind and exit status (`t1/submitted`, `t2/step_limit`, ...).
    pub exits: BTreeMap<String, u64>,
    /// Why attempts were rejected, per reason.
    pub rejections: BTreeMap<String, u64>,
    /// Histogram of line recall r over verified pairs: 10 buckets [0,0.1) ... [0.9,1.0], plus exactly 1.0.
    pub recall_histogram: Vec<u64>,
    /// Pairs whose r is exactly 1.
    pub recall_exactly_one: u64,
    /// Per bug-type entry.
    pub yield_by_entry: BTreeMap<String, EntryYield>,
    /// T1 trajectories kept (self-check passed).
    pub kept_t1: u64,
    /// T2 trajectories kept (r >= threshold).
    pub kept_t2: u64,
    /// Behavioural verdicts recorded, and how many agreed.
    pub tests_recorded: u64,
    /// Behavioural verdicts where P1 and P2 changed the same tests.
    pub tests_agree: u64,
    /// Prompt tokens used.
    pub prompt_tokens: u64,
    /// Completion tokens used.
    pub completion_tokens: u64,
    /// Tokens per stage.
    pub tokens_by_stage: BTreeMap<String, u64>,
    /// Teacher time, seconds, summed over calls.
    pub model_seconds: f64,
    /// Wall time the run was worked on (each process from its start to its last commit;
    /// idle time between invocations left out), seconds.
    pub wall_seconds: f64,
    /// Cost in dollars, when prices are known.
    pub cost: Option<f64>,
    /// Cost per kept trajectory (T1 + T2), when prices are known.
    pub cost_per_kept: Option<f64>,
    /// Tokens per kept trajectory.
    pub tokens_per_kept: Option<f64>,
    /// Web runs: per intent, per start page, how the tasks fared.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub coverage: BTreeMap<String, BTreeMap<String, CoverageCell>>,
    /// Evaluations: the totals of the scored rows (resolve rate, mean recall, exits, per seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<trajforge_eval::Summary>,
    /// Requests, errors and latency per teacher server, all processes summed (empty for
    /// runs recorded before they were counted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teacher_servers: Vec<ServerStats>,
}

/// Compute the status from the store, added up by the database (a few grouped queries over
/// the payloads' fields, nothing loaded), a run folder's SQLite file and a PostgreSQL run alike.
pub fn status(store: &Store, pricing: Pricing) -> Result<Status, StoreError> {
    compute(store, pricing, true)
}

/// [`status`], the run added up by the database when `in_sql` and the store can, else read
/// one record at a time (both ways give the same status: see the tests).
fn compute(store: &Store, pricing: Pricing, in_sql: bool) -> Result<Status, StoreError> {
    let mut s = Status {
        recall_histogram: vec![0; 10],
        ..Status::default()
    };
    let eval = crate::eval::is_eval(store);
    if eval {
        s.eval = Some(crate::eval::summary(store)?);
    }
    // Whether the run is a web run is known only after every job is seen: the grid is filled
    // for every finished job and kept only then (the cells are the same either way).
    let mut jobs = JobsSeen::default();
    let job_tallies = if in_sql { store.job_tallies()? } else { None };
    match job_tallies {
        Some(tallies) => {
            for t in tallies {
                let job = WebJob {
                    intent: t.intent,
                    start_url: t.start_url,
                    ..WebJob::default()
                };
                s.add_jobs(&mut jobs, t.status, t.result, t.has_intent, job, t.count);
            }
        }
        None => store.for_each_job(|j| {
            let has_intent = j.payload.get("intent").is_some();
            let job = WebJob::deserialize(&j.payload).unwrap_or_default();
            s.add_jobs(&mut jobs, j.status, j.result, has_intent, job, 1);
            true
        })?,
    }
    let web = jobs.web;
    if web {
        s.coverage = jobs.coverage;
    }
    s.kind = if eval {
        "eval"
    } else if crate::tasks::is_mining(store) {
        "mine"
    } else if web {
        "web"
    } else {
        "code"
    }
    .into();
    let sessions = store.session_spans()?;
    let mut early = EarlyStages::new(&sessions);
    let stage_tallies = if in_sql {
        store.stage_tallies(early.before)?
    } else {
        None
    };
    match stage_tallies {
        Some(t) => {
            early.span = t.early_span;
            s.add_tallies(t, web);
        }
        None => {
            // The attempt being read (stages come grouped by job and attempt) and its tally.
            let mut attempt: Option<((i64, i64), AttemptYield)> = None;
            store.for_each_stage(|st| {
                early.see(st.created_at);
                let key = (st.job_id, st.attempt);
                if attempt.as_ref().is_some_and(|(k, _)| *k != key)
                    && let Some((_, done)) = attempt.take()
                {
                    done.add_to(&mut s.yield_by_entry);
                }
                let tally = &mut attempt
                    .get_or_insert_with(|| (key, AttemptYield::default()))
                    .1;
                s.add_stage(&st.stage, web, tally);
                true
            })?;
            if let Some((_, done)) = attempt {
                done.add_to(&mut s.yield_by_entry);
            }
        }
    }
    s.wall_seconds = wall_ms(&sessions, &early) as f64 / 1000.0;
    for t in store.trajectory_tallies()? {
        *s.exits
            .entry(format!("{}/{}", t.rollout, t.exit_status))
            .or_default() += t.count;
        if t.kept {
            if t.rollout == Rollout::T1 {
                s.kept_t1 += t.count;
            } else {
                s.kept_t2 += t.count;
            }
        }
    }
    for (name, u) in store.usage_by_stage()? {
        s.prompt_tokens += u.prompt_tokens;
        s.completion_tokens += u.completion_tokens;
        s.model_seconds += u.model_seconds;
        s.tokens_by_stage
            .insert(name, u.prompt_tokens + u.completion_tokens);
    }
    s.teacher_servers = store.teacher_servers()?;
    s.cost = cost(&s, pricing);
    let kept = s.kept_t1 + s.kept_t2;
    if kept > 0 {
        s.cost_per_kept = s.cost.map(|c| c / kept as f64);
        s.tokens_per_kept = Some((s.prompt_tokens + s.completion_tokens) as f64 / kept as f64);
    }
    Ok(s)
}

/// What the jobs tell before the stages are read: whether the run is a web run, and the
/// coverage grid of its finished jobs.
#[derive(Default)]
struct JobsSeen {
    web: bool,
    coverage: BTreeMap<String, BTreeMap<String, CoverageCell>>,
}

/// What one attempt of a code run gave its bug type: known once its rollout 1 is seen,
/// whatever order its stages come in.
#[derive(Default)]
struct AttemptYield {
    /// The bug type of its rollout 1.
    bug: Option<String>,
    /// Self-checks answered yes.
    selfcheck_yes: u64,
    /// Verifications that kept the pair.
    kept: u64,
}

impl AttemptYield {
    /// Count the attempt in its bug type's entry (an attempt without rollout 1 counts nowhere).
    fn add_to(self, entries: &mut BTreeMap<String, EntryYield>) {
        if let Some(bug) = self.bug {
            let entry = entries.entry(bug).or_default();
            entry.selfcheck_yes += self.selfcheck_yes;
            entry.kept += self.kept;
        }
    }
}

impl Status {
    /// Count `n` jobs of `status` and `result`; `job` names their intent and start page.
    fn add_jobs(
        &mut self,
        seen: &mut JobsSeen,
        status: JobStatus,
        result: Option<Outcome>,
        has_intent: bool,
        job: WebJob,
        n: u64,
    ) {
        self.functions += n;
        seen.web |= has_intent;
        match status {
            JobStatus::Pending => self.pending += n,
            JobStatus::Running => self.running += n,
            _ => {
                self.done += n;
                let result = result.unwrap_or_else(|| Outcome::from("unknown"));
                let or_unknown = |s: String| if s.is_empty() { "?".to_string() } else { s };
                let cell = seen
                    .coverage
                    .entry(or_unknown(job.intent))
                    .or_default()
                    .entry(or_unknown(job.start_url))
                    .or_default();
                cell.tried += n;
                if result == Outcome::Kept {
                    cell.kept += n;
                }
                if result == Outcome::T1Infeasible {
                    cell.infeasible += n;
                }
                *self.results.entry(result.to_string()).or_default() += n;
            }
        }
    }

    /// Count `n` verifications of score `recall` and `result`.
    fn add_verify(&mut self, recall: Option<f64>, result: &Outcome, n: u64) {
        // Line recall for code, agreement for web: one field.
        if let Some(r) = recall {
            let bucket = ((r * 10.0).floor() as usize).min(9);
            self.recall_histogram[bucket] += n;
            if r >= 1.0 {
                self.recall_exactly_one += n;
            }
        }
        if *result != Outcome::Kept {
            *self.rejections.entry(result.to_string()).or_default() += n;
        }
    }

    /// Count the stage results the database added up.
    fn add_tallies(&mut self, t: StageTallies, web: bool) {
        self.stages.extend(t.stages);
        for (reason, n) in t.rejections {
            *self.rejections.entry(reason).or_default() += n;
        }
        for ((recall, result), n) in t.verified {
            self.add_verify(recall, &Outcome::from(result), n);
        }
        (self.tests_recorded, self.tests_agree) = t.tests;
        // Web rollouts have no bug type: their yield is the coverage grid.
        if !web {
            for (bug, [attempts, selfcheck_yes, kept]) in t.yields {
                self.yield_by_entry.insert(
                    bug,
                    EntryYield {
                        attempts,
                        selfcheck_yes,
                        kept,
                    },
                );
            }
        }
    }

    /// Count one stage result; `attempt` gathers what its attempt gives its bug type.
    fn add_stage(&mut self, stage: &Stage, web: bool, attempt: &mut AttemptYield) {
        *self.stages.entry(stage.name().to_string()).or_default() += 1;
        match stage {
            // Web rollouts have no bug type: their yield is the coverage grid.
            Stage::Rollout1(r) if !web => {
                let bug = match r {
                    RolloutStage::Code(CodeRollout { bug: Some(b), .. }) => b.clone(),
                    _ => "?".to_string(),
                };
                self.yield_by_entry.entry(bug.clone()).or_default().attempts += 1;
                attempt.bug = Some(bug);
            }
            Stage::Selfcheck(c) if c.answer == SelfcheckAnswer::Yes => attempt.selfcheck_yes += 1,
            Stage::Rejected(r) => {
                *self.rejections.entry(r.reason.to_string()).or_default() += 1;
            }
            Stage::Verify(v) => {
                self.add_verify(v.recall(), v.result(), 1);
                attempt.kept += u64::from(v.kept());
            }
            Stage::Tests(t) => {
                if let Some(verdict) = &t.verdict {
                    self.tests_recorded += 1;
                    self.tests_agree += u64::from(verdict.agree);
                }
            }
            _ => {}
        }
    }
}

/// The span of the stages committed before the first session: all that is known of the time
/// worked on a store written before sessions were recorded.
struct EarlyStages {
    /// The first session's start (none: every stage counts).
    before: i64,
    /// The earliest and latest such stage seen.
    span: Option<(i64, i64)>,
}

impl EarlyStages {
    fn new(sessions: &[(i64, i64)]) -> EarlyStages {
        EarlyStages {
            before: sessions.first().map_or(i64::MAX, |s| s.0),
            span: None,
        }
    }

    /// Count a stage committed at `t`.
    fn see(&mut self, t: i64) {
        if t < self.before {
            self.span = Some(self.span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        }
    }
}

/// Wall time worked on a run, in milliseconds: the union of the sessions' spans (sorted by
/// start), plus the span of the stages committed before the first session.
fn wall_ms(sessions: &[(i64, i64)], early: &EarlyStages) -> i64 {
    early.span.map_or(0, |(a, b)| b - a) + union_ms(sessions)
}

/// Total length of the union of spans `(start, end)`, sorted by start.
fn union_ms(spans: &[(i64, i64)]) -> i64 {
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for &(start, end) in spans {
        let end = end.max(start);
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0, |(s, e)| e - s)
}

fn cost(s: &Status, p: Pricing) -> Option<f64> {
    if let Some(hourly) = p.gpu_hour {
        // The teacher time summed over calls overcounts a server running many requests at
        // once; the wall time of the run is what a rented GPU costs.
        return Some(hourly * s.wall_seconds / 3600.0);
    }
    p.token_cost(s.prompt_tokens, s.completion_tokens)
}

/// The status as text for a terminal.
pub fn render(s: &Status, threshold: Option<f64>) -> String {
    let mut o = String::new();
    if let Some(e) = &s.eval {
        o.push_str(&format!(
            "tasks x seeds: {} ({} done, {} in flight, {} pending)\n",
            s.functions, s.done, s.running, s.pending
        ));
        o.push_str(&crate::eval::render(e));
        o.push_str(&format!(
            "tokens: {} prompt + {} completion{}\n",
            s.prompt_tokens,
            s.completion_tokens,
            s.cost.map(|c| format!(", ${c:.2}")).unwrap_or_default()
        ));
        return o;
    }
    let web = s.kind == "web";
    let mine = s.kind == "mine";
    o.push_str(&format!(
        "{}: {} ({} done, {} in flight, {} pending)\n",
        match s.kind.as_str() {
            "web" => "tasks",
            "mine" => "changes",
            _ => "functions",
        },
        s.functions,
        s.done,
        s.running,
        s.pending
    ));
    if mine {
        // A change's result is what it became (hard, soft, or why it was dropped): no pairs.
    } else if web {
        o.push_str(&format!("kept: {} pairs (T1 and T2 agree)\n", s.kept_t2));
    } else {
        o.push_str(&format!(
            "kept: {} T2 (soft-verified), {} T1 (self-check passed)\n",
            s.kept_t2, s.kept_t1
        ));
    }
    if !s.results.is_empty() {
        o.push_str(&format!("results: {}\n", join(&s.results)));
    }
    if !s.stages.is_empty() {
        o.push_str(&format!("stages: {}\n", join(&s.stages)));
    }
    if !s.exits.is_empty() {
        o.push_str(&format!("rollout exits: {}\n", join(&s.exits)));
    }
    if !s.rejections.is_empty() {
        o.push_str(&format!("rejected: {}\n", join(&s.rejections)));
    }
    let verified: u64 = s.recall_histogram.iter().sum();
    if verified > 0 {
        let t = threshold
            .map(|t| format!(", threshold {t}"))
            .unwrap_or_default();
        o.push_str(&format!(
            "{} r over {verified} pairs ({} at r = 1{t}):\n",
            if web { "agreement" } else { "line recall" },
            s.recall_exactly_one
        ));
        let max = s.recall_histogram.iter().copied().max().unwrap_or(1).max(1);
        for (i, n) in s.recall_histogram.iter().enumerate() {
            let bar = "#".repeat(((*n as f64 / max as f64) * 30.0).round() as usize);
            o.push_str(&format!(
                "  {:.1}-{:.1} {:>5} {bar}\n",
                i as f64 / 10.0,
                (i + 1) as f64 / 10.0,
                n
            ));
        }
    }
    if s.tests_recorded > 0 {
        o.push_str(&format!(
            "behavioural verdict: P1 and P2 changed the same tests in {} of {}\n",
            s.tests_agree, s.tests_recorded
        ));
    }
    if !s.yield_by_entry.is_empty() {
        o.push_str("yield per bug type (attempts / self-check yes / kept):\n");
        let mut entries: Vec<_> = s.yield_by_entry.iter().collect();
        entries.sort_by(|a, b| {
            b.1.kept
                .cmp(&a.1.kept)
                .then(b.1.attempts.cmp(&a.1.attempts))
                .then(a.0.cmp(b.0))
        });
        for (id, y) in entries.iter().take(12) {
            o.push_str(&format!(
                "  {id:<32} {:>4} {:>4} {:>4}\n",
                y.attempts, y.selfcheck_yes, y.kept
            ));
        }
        if entries.len() > 12 {
            o.push_str(&format!("  ... {} more (see --json)\n", entries.len() - 12));
        }
    }
    if !s.coverage.is_empty() {
        o.push_str("coverage, intent x start page (tried / kept / infeasible):\n");
        let shown = 16;
        for (intent, pages) in s.coverage.iter().take(shown) {
            let (t, k, i) = pages.values().fold((0, 0, 0), |(t, k, i), c| {
                (t + c.tried, k + c.kept, i + c.infeasible)
            });
            o.push_str(&format!(
                "  {intent:<32} {} pages: {t:>4} {k:>4} {i:>4}\n",
                pages.len()
            ));
        }
        if s.coverage.len() > shown {
            o.push_str(&format!(
                "  ... {} more intents (see --json for every cell)\n",
                s.coverage.len() - shown
            ));
        }
    }
    o.push_str(&format!(
        "tokens: {} prompt + {} completion; teacher time {:.0}s; wall {:.0}s\n",
        s.prompt_tokens, s.completion_tokens, s.model_seconds, s.wall_seconds
    ));
    if !s.teacher_servers.is_empty() {
        o.push_str("teacher servers:\n");
        for t in &s.teacher_servers {
            o.push_str(&format!(
                "  {}: {} requests, {} errors, mean {:.2}s (max {:.2}s){}\n",
                t.url,
                t.requests,
                t.errors,
                t.mean_latency_seconds(),
                t.max_latency_seconds,
                match t.ejections {
                    0 => String::new(),
                    n => format!(", out of rotation {n}x"),
                }
            ));
        }
    }
    if let Some(t) = s.tokens_per_kept {
        o.push_str(&format!("tokens per kept trajectory: {t:.0}\n"));
    }
    match (s.cost, s.cost_per_kept) {
        (Some(c), Some(k)) => o.push_str(&format!("cost: ${c:.2} (${k:.4} per kept trajectory)\n")),
        (Some(c), None) => o.push_str(&format!("cost: ${c:.2}\n")),
        _ => o.push_str("cost: unknown (give --price-in/--price-out or --gpu-hour-price)\n"),
    }
    o
}

fn join(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishes_fall_into_five_minute_intervals_ending_now_or_at_the_last_finish() {
        let min = 60_000;
        let now = 1_000_000 * min;
        // Two in the newest interval, one 7 minutes ago, one over an hour ago (left out).
        let t = bucket_finishes(now, &[now - 61 * min, now - 7 * min, now - min, now]);
        assert_eq!(t.interval_seconds, 300);
        assert_eq!(t.finished, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(t.per_hour, 3.0);
        // A run that stopped two hours ago shows its last hour of work.
        let t = bucket_finishes(now + 120 * min, &[now - 30 * min, now]);
        // 30 min before the last finish is 1 ms short of the seventh interval's start.
        assert_eq!(t.finished, [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            render_throughput(&t),
            "throughput: 2 jobs/h over the last hour; finished per 5 min, oldest first: 0 0 0 0 0 1 0 0 0 0 0 1\n"
        );
        assert_eq!(bucket_finishes(now, &[]).finished, [0; 12]);
    }

    #[test]
    fn session_spans_are_merged() {
        assert_eq!(union_ms(&[]), 0);
        assert_eq!(union_ms(&[(0, 10), (20, 25)]), 15);
        assert_eq!(union_ms(&[(0, 10), (5, 12), (6, 8)]), 12);
        assert_eq!(union_ms(&[(0, 10), (10, 20)]), 20);
        assert_eq!(
            union_ms(&[(5, 3)]),
            0,
            "a span ending before it starts is empty"
        );
    }

    /// The wall time of `sessions` and stages committed at `times`.
    fn wall_of(sessions: &[(i64, i64)], times: &[i64]) -> i64 {
        let mut early = EarlyStages::new(sessions);
        times.iter().for_each(|&t| early.see(t));
        wall_ms(sessions, &early)
    }

    #[test]
    fn stages_from_before_sessions_count_by_their_span() {
        // An old store: no sessions, stages from 100 to 400.
        assert_eq!(wall_of(&[], &[100, 250, 400]), 300);
        // Resumed by a version that records sessions: the old part plus the new session.
        assert_eq!(wall_of(&[(1000, 1500)], &[100, 400, 1200, 1500]), 800);
        // Only sessions: the stages inside them add nothing.
        assert_eq!(wall_of(&[(0, 50), (100, 130)], &[40, 120]), 80);
    }

    /// The 0.1 fixture runs (code, web, imported): the status the database adds up is the
    /// one read record by record, and the same again from a PostgreSQL copy of the run.
    #[test]
    fn the_status_added_up_in_sql_is_the_status_read_record_by_record() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../trajforge/tests/fixtures/runs-0.1");
        let url = trajforge_testkit::postgres::cluster().fresh_database("status");
        for kind in ["code", "web", "imported"] {
            let tmp = tempfile::tempdir().expect("tempdir");
            std::fs::copy(
                fixtures.join(kind).join(trajforge_store::DB_FILE),
                tmp.path().join(trajforge_store::DB_FILE),
            )
            .expect("copy the fixture");
            let store = Store::open_read_only(tmp.path())
                .expect("open")
                .expect("a run");
            let pricing = Pricing {
                price_in: Some(1.0),
                price_out: Some(2.0),
                gpu_hour: None,
            };
            let in_sql = compute(&store, pricing, true).expect("status in SQL");
            let streamed = compute(&store, pricing, false).expect("status streamed");
            assert_eq!(in_sql, streamed, "{kind}");
            assert!(
                in_sql.done > 0 && !in_sql.stages.is_empty(),
                "{kind}: {in_sql:?}"
            );
            let location = trajforge_store::Location::parse(&url, Some(kind)).expect("location");
            let pg = Store::open_at(&location).expect("a Postgres run");
            store.copy_into(&pg).expect("copy");
            // Each database sums the teacher's seconds in its own order: the last bits differ.
            let rounded = |mut s: Status| {
                s.model_seconds = (s.model_seconds * 1e9).round();
                s
            };
            let pg_in_sql = compute(&pg, pricing, true).expect("Postgres status in SQL");
            assert_eq!(
                rounded(pg_in_sql),
                rounded(in_sql.clone()),
                "{kind} on Postgres"
            );
            let pg_streamed = compute(&pg, pricing, false).expect("Postgres status streamed");
            assert_eq!(
                rounded(pg_streamed),
                rounded(in_sql),
                "{kind} on Postgres, streamed"
            );
        }
    }

    proptest::proptest! {
        /// The merged length equals the number of milliseconds some span covers.
        #[test]
        fn union_counts_each_covered_millisecond_once(
            mut spans in proptest::collection::vec((0i64..200, 0i64..60), 0..12)
        ) {
            spans.sort();
            let spans: Vec<(i64, i64)> = spans.iter().map(|&(s, len)| (s, s + len)).collect();
            let covered = (0..260)
                .filter(|&ms| spans.iter().any(|&(s, e)| s <= ms && ms < e))
                .count() as i64;
            proptest::prop_assert_eq!(union_ms(&spans), covered);
        }
    }
}

/// A worker of a run as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// Its lease owner name (`host:pid:start`).
    pub owner: String,
    /// Whether it gave a heartbeat within the last minute (the default lease).
    pub alive: bool,
    /// Seconds since its last heartbeat.
    pub last_heartbeat_secs: f64,
    /// Jobs it finished (shared stores record it).
    pub jobs_done: Option<u64>,
    /// Jobs it holds under a live lease now.
    pub in_flight: u64,
}

/// The workers of a run, by start.
pub fn workers(store: &Store) -> Result<Vec<WorkerStatus>, StoreError> {
    let (now, rows) = store.workers()?;
    Ok(rows
        .into_iter()
        .map(|w| {
            let age = (now - w.last_seen).max(0) as f64 / 1000.0;
            WorkerStatus {
                owner: w.owner,
                alive: age <= 60.0,
                last_heartbeat_secs: age,
                jobs_done: w.jobs_done,
                in_flight: w.in_flight,
            }
        })
        .collect())
}

/// Jobs finished per interval over the last hour of a run's work, oldest interval first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Length of one interval, seconds.
    pub interval_seconds: u64,
    /// Jobs finished in each interval; the last one ends now (or at the last finish, for a
    /// run nobody works on any more).
    pub finished: Vec<u64>,
    /// Jobs finished per hour over those intervals.
    pub per_hour: f64,
}

/// How many intervals [`throughput`] reports, and their length.
const THROUGHPUT_INTERVALS: usize = 12;
const THROUGHPUT_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// Throughput over time: jobs finished per 5 minutes over the last hour, ending now, or at the
/// last finish when that was more than an hour ago (so a stopped run shows how it ended).
pub fn throughput(store: &Store) -> Result<Throughput, StoreError> {
    let (now, times) = store.finish_times()?;
    Ok(bucket_finishes(now, &times))
}

fn bucket_finishes(now: i64, times: &[i64]) -> Throughput {
    let span = THROUGHPUT_INTERVAL_MS * THROUGHPUT_INTERVALS as i64;
    let end = match times.last() {
        Some(&last) if now - last > span => last + 1,
        _ => now + 1,
    };
    let start = end - span;
    let mut finished = vec![0u64; THROUGHPUT_INTERVALS];
    for &t in times.iter().filter(|&&t| t >= start && t < end) {
        finished[((t - start) / THROUGHPUT_INTERVAL_MS) as usize] += 1;
    }
    let total: u64 = finished.iter().sum();
    Throughput {
        interval_seconds: (THROUGHPUT_INTERVAL_MS / 1000) as u64,
        finished,
        per_hour: total as f64 * 3_600_000.0 / span as f64,
    }
}

/// Throughput as a line of `status`.
pub fn render_throughput(t: &Throughput) -> String {
    let counts: Vec<String> = t.finished.iter().map(u64::to_string).collect();
    format!(
        "throughput: {:.0} jobs/h over the last hour; finished per {} min, oldest first: {}\n",
        t.per_hour,
        t.interval_seconds / 60,
        counts.join(" ")
    )
}

/// The workers as lines of `status`.
pub fn render_workers(workers: &[WorkerStatus]) -> String {
    let mut o = format!("workers: {}\n", workers.len());
    for w in workers {
        let _ = std::fmt::Write::write_fmt(
            &mut o,
            format_args!(
                "  {} {:<5} last heartbeat {:.0} s ago, {} done, {} in flight\n",
                w.owner,
                if w.alive { "alive" } else { "gone" },
                w.last_heartbeat_secs,
                w.jobs_done.map_or("?".into(), |n| n.to_string()),
                w.in_flight
            ),
        );
    }
    o
}
