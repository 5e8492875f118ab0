//! The job runner shared by the code and web pipelines: stop flag and budgets ([`Control`]),
//! one worker's view of a run ([`Worker`]), the claim/process/finish loop under leases
//! ([`run_jobs`]), and who holds a lease ([`Owner`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use trajforge_agent::BoxFuture;
use trajforge_store::{Job, Outcome, Store, StoreError};
use trajforge_teacher::{Teacher, Usage};

use crate::error::RunError;

/// Shared controls of a run: stop flag and budgets.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    /// Stop after this many tokens (prompt + completion), when set.
    pub max_tokens: Option<u64>,
    /// Stop when the cost (computed by `price`) exceeds this, when set.
    pub max_cost: Option<f64>,
    /// Dollars per million prompt and completion tokens.
    pub price: Option<(f64, f64)>,
    /// How this process takes jobs: lease time, limits, waiting for other workers.
    pub schedule: Schedule,
    /// Why the run stopped early, if it did.
    reason: std::sync::Mutex<Option<String>>,
}

/// How a process takes its jobs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// How long a claimed job stays ours without renewal (renewed every quarter of it).
    pub lease: Duration,
    /// Claim at most this many jobs, then stop (batch schedulers).
    pub max_jobs: Option<u64>,
    /// With `wait_for_others`: stop after this long without a job to claim.
    pub idle_exit: Option<Duration>,
    /// When nothing is claimable but other processes hold jobs, wait for them (a dead
    /// worker's job becomes claimable when its lease expires) instead of stopping.
    pub wait_for_others: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            lease: LEASE,
            max_jobs: None,
            idle_exit: None,
            wait_for_others: false,
        }
    }
}

impl Control {
    /// Stop scheduling new work (Ctrl-C, budget).
    pub fn stop(&self, reason: &str) {
        if !self.stop.swap(true, Ordering::SeqCst)
            && let Ok(mut r) = self.reason.lock()
        {
            *r = Some(reason.to_string());
        }
    }

    /// Whether new work may start.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Why the run was stopped.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Count tokens against the budgets (tokens already spent before a resume included).
    pub fn add(&self, usage: Usage) {
        let p = self
            .prompt_tokens
            .fetch_add(usage.prompt_tokens, Ordering::SeqCst)
            + usage.prompt_tokens;
        let c = self
            .completion_tokens
            .fetch_add(usage.completion_tokens, Ordering::SeqCst)
            + usage.completion_tokens;
        if let Some(max) = self.max_tokens
            && p + c >= max
        {
            self.stop(&format!("token budget reached ({} tokens)", p + c));
        }
        if let (Some(max), Some(cost)) = (self.max_cost, self.cost())
            && cost >= max
        {
            self.stop(&format!("cost budget reached (${cost:.2})"));
        }
    }

    /// Controls with budgets: `max_tokens`, `max_cost` (dollars), `price` per million tokens (in, out).
    pub fn with_budgets(
        max_tokens: Option<u64>,
        max_cost: Option<f64>,
        price: Option<(f64, f64)>,
    ) -> Self {
        Control {
            max_tokens,
            max_cost,
            price,
            ..Control::default()
        }
    }

    /// Cost so far in dollars, when prices are known.
    pub fn cost(&self) -> Option<f64> {
        self.price.map(|(pin, pout)| {
            (self.prompt_tokens.load(Ordering::SeqCst) as f64 * pin
                + self.completion_tokens.load(Ordering::SeqCst) as f64 * pout)
                / 1e6
        })
    }
}

/// One worker's view of a run: the store, the teacher, an environment factory `F` and the
/// pipeline's settings `C` (the code pipeline's by default; the web pipeline names its own).
pub struct Worker<F: ?Sized = dyn crate::envs::EnvFactory, C = crate::code::CodeConfig> {
    /// The store.
    pub store: Arc<Store>,
    /// The teacher.
    pub teacher: Arc<dyn Teacher>,
    /// Environments.
    pub envs: Arc<F>,
    /// Settings.
    pub config: Arc<C>,
    /// Stop flag and budgets.
    pub control: Arc<Control>,
    /// Lease owner name of this process.
    pub owner: String,
}

/// The outcome `process` returns when the run was stopped before the job could finish.
pub const STOPPED: Outcome = Outcome::Stopped;

/// How long a claimed job stays ours without renewal.
pub const LEASE: Duration = Duration::from_secs(120);

/// Runs one claimed job to its outcome ([`STOPPED`] when the run stopped between stages).
pub type JobHandler =
    Arc<dyn Fn(Job) -> BoxFuture<'static, Result<Outcome, StoreError>> + Send + Sync>;

/// The job loop shared by the code and web pipelines: claim under a lease, process, finish
/// (or release when stopped between stages), `concurrency` at a time, leases renewed.
pub async fn run_jobs(
    store: Arc<Store>,
    control: Arc<Control>,
    owner: String,
    concurrency: usize,
    handler: JobHandler,
) -> Result<(), RunError> {
    // The run's wall time (and a GPU-hour cost) counts from here.
    store.begin_session(&owner)?;
    let schedule = control.schedule.clone();
    // Keep our leases alive while jobs run (the worker's heartbeat).
    let renewer = {
        let (store, owner, lease) = (Arc::clone(&store), owner.clone(), schedule.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 4).await;
                let _ = store.renew(&owner, lease);
            }
        })
    };
    let claimed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (store, control, owner, handler, schedule, claimed) = (
            Arc::clone(&store),
            Arc::clone(&control),
            owner.clone(),
            Arc::clone(&handler),
            schedule.clone(),
            Arc::clone(&claimed),
        );
        tasks.push(tokio::spawn(async move {
            let mut idle_since = None;
            loop {
                if control.stopped() {
                    return Ok::<(), StoreError>(());
                }
                if let Some(max) = schedule.max_jobs
                    && claimed.fetch_add(1, Ordering::SeqCst) >= max
                {
                    return Ok(());
                }
                let Some(job) = store.claim(&owner, schedule.lease)? else {
                    claimed.fetch_sub(1, Ordering::SeqCst);
                    if !wait_for_job(&store, &schedule, &mut idle_since).await? {
                        return Ok(());
                    }
                    continue;
                };
                idle_since = None;
                let id = job.id;
                let committed = match handler(job).await {
                    Ok(result) if result == STOPPED => {
                        // Stopped between stages: the job resumes from its committed stages later.
                        store.release_job(&owner, id).map(|_| ())
                    }
                    Ok(result) => store.finish(&owner, id, &result),
                    Err(e) => Err(e),
                };
                match committed {
                    // Our lease ran out (we were paused or cut off) and another worker has
                    // the job: nothing of ours was committed since; go on with another.
                    Err(StoreError::LeaseLost { .. }) => {}
                    other => other?,
                }
            }
        }));
    }
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                control.stop("store error");
                first_error.get_or_insert(RunError::Store(e));
            }
            Err(join) => {
                control.stop("worker panicked");
                first_error.get_or_insert(RunError::WorkerPanicked {
                    message: panic_message(join),
                });
            }
        }
    }
    renewer.abort();
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Nothing was claimable: whether to try again, after a pause. Only a process that waits for
/// others does, while the run has jobs left and it has not been idle for `idle_exit`.
async fn wait_for_job(
    store: &Store,
    schedule: &Schedule,
    idle_since: &mut Option<std::time::Instant>,
) -> Result<bool, StoreError> {
    if !schedule.wait_for_others {
        return Ok(false);
    }
    let counts = store.counts()?;
    if counts.pending == 0 && counts.running == 0 {
        return Ok(false);
    }
    let since = *idle_since.get_or_insert_with(std::time::Instant::now);
    if schedule
        .idle_exit
        .is_some_and(|limit| since.elapsed() >= limit)
    {
        return Ok(false);
    }
    tokio::time::sleep(
        (schedule.lease / 8).clamp(Duration::from_millis(100), Duration::from_secs(2)),
    )
    .await;
    Ok(true)
}

/// [`run_jobs`] on `worker`'s store, stop flag and lease owner, each claimed job processed by
/// `process(worker, job)`.
pub async fn run_worker<F, C, P>(
    worker: Arc<Worker<F, C>>,
    concurrency: usize,
    process: P,
) -> Result<(), RunError>
where
    F: ?Sized + Send + Sync + 'static,
    C: Send + Sync + 'static,
    P: for<'a> Fn(&'a Worker<F, C>, &'a Job) -> BoxFuture<'a, Result<Outcome, StoreError>>
        + Send
        + Sync
        + 'static,
{
    let w = Arc::clone(&worker);
    let process = Arc::new(process);
    let handler: JobHandler = Arc::new(move |job: Job| {
        let (w, process) = (Arc::clone(&w), Arc::clone(&process));
        Box::pin(async move { process(&w, &job).await })
    });
    let jobs = run_jobs(
        Arc::clone(&worker.store),
        Arc::clone(&worker.control),
        worker.owner.clone(),
        concurrency,
        handler,
    );
    recording_teacher_servers(&worker.store, &worker.owner, &*worker.teacher, jobs).await
}

/// How often a working process records its per-server teacher figures.
const SERVER_FIGURES_EVERY: Duration = Duration::from_secs(10);

/// Run `work`, recording `teacher`'s per-server figures in the store every few seconds and
/// once at the end (so `status` shows them during the run and after a crash, nearly current).
pub async fn recording_teacher_servers<T>(
    store: &Store,
    owner: &str,
    teacher: &dyn Teacher,
    work: impl std::future::Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    let record = || {
        let figures = teacher.server_stats();
        if figures.is_empty() {
            Ok(())
        } else {
            store.record_teacher_servers(owner, &figures)
        }
    };
    let mut work = std::pin::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            () = tokio::time::sleep(SERVER_FIGURES_EVERY) => {
                // A failed periodic write is retried at the next tick and at the end.
                let _ = record();
            }
        }
    };
    let recorded = record();
    let value = result?;
    recorded?;
    Ok(value)
}

/// What a failed worker task said: its panic message, or why it ended.
fn panic_message(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return join.to_string();
    }
    let payload = join.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Who holds a lease: `host:pid:start`, so a later process can tell whether the holder still lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Owner(format!("{}:{}:{start}", hostname(), std::process::id()))
    }

    /// The name stored with leases.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// A lease owner on this machine whose process is gone (never this process).
    pub fn is_dead(owner: &str) -> bool {
        let mut parts = owner.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        host == hostname()
            && pid != std::process::id().to_string()
            && !Path::new("/proc").join(pid).exists()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_of_gone_processes_are_dead_and_this_one_is_not() {
        let me = Owner::this_process();
        assert!(!Owner::is_dead(me.name()));
        // pid 0 is never a process of /proc; another host is never judged.
        let host = hostname();
        assert!(Owner::is_dead(&format!("{host}:999999999:1")));
        assert!(!Owner::is_dead("another-host.invalid:999999999:1"));
        assert!(!Owner::is_dead("garbage"));
    }

    #[test]
    fn budgets_stop_the_run_with_a_reason() {
        let c = Control::with_budgets(Some(100), None, None);
        c.add(Usage {
            prompt_tokens: 60,
            completion_tokens: 30,
        });
        assert!(!c.stopped());
        c.add(Usage {
            prompt_tokens: 10,
            completion_tokens: 0,
        });
        assert!(c.stopped());
        assert_eq!(
            c.reason().as_deref(),
            Some("token budget reached (100 tokens)")
        );
        let c = Control::with_budgets(None, Some(1.0), Some((1.0, 2.0)));
        c.add(Usage {
            prompt_tokens: 500_000,
            completion_tokens: 250_000,
        });
        assert!(c.stopped());
        assert_eq!(c.cost(), Some(1.0));
    }

    #[tokio::test]
    async fn a_panicking_handler_is_reported_as_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        store
            .add_jobs(&[("a".into(), serde_json::json!({}))])
            .expect("jobs");
        let handler: JobHandler =
            Arc::new(|_job| Box::pin(async { panic!("boom in the handler") }));
        let control = Arc::new(Control::default());
        let err = run_jobs(store, Arc::clone(&control), "t:1:1".into(), 1, handler)
            .await
            .expect_err("the panic is an error");
        assert!(
            matches!(&err, RunError::WorkerPanicked { message } if message == "boom in the handler"),
            "{err:?}"
        );
        assert_eq!(control.reason().as_deref(), Some("worker panicked"));
    }
}
