//! `store copy` in bounded memory (issue 16): a synthetic SQLite run of N finished jobs, each
//! with a trajectory of K KB, copied to a throwaway PostgreSQL cluster and back, each copy in
//! a child process of its own so its peak RSS is the copy's. Baseline in the same run: a
//! child holding every row of the run in memory (`Store::dump`, what a copy held before it
//! streamed), next to a child that only opens both stores.

use std::path::Path;
use std::time::Duration;

use trajforge_store::{Location, Outcome, Store};
use trajforge_testkit::postgres::cluster;

/// Options of the copy benchmark.
#[derive(Debug, clap::Args)]
pub struct StoreCopyArgs {
    /// Jobs in the synthetic run, each with one trajectory.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Size of each trajectory's data, in KB.
    #[arg(long, default_value_t = 40)]
    pub kb: usize,
}

/// What one child process does (started by the benchmark itself).
#[derive(Debug, clap::Args)]
pub struct StoreCopyChildArgs {
    /// `copy` (FROM into TO), `hold` (every row of FROM in memory) or `open` (both opened).
    #[arg(long)]
    pub mode: String,
    /// The source: a run folder or a `postgres://` URL.
    #[arg(long)]
    pub from: String,
    /// The target: a run folder or a `postgres://` URL.
    #[arg(long)]
    pub to: String,
}

fn open(place: &str, create: bool) -> Result<Store, String> {
    let run = place.starts_with("postgres").then_some("copy");
    let location = Location::parse(place, run).map_err(|e| e.to_string())?;
    if create {
        Store::open_at(&location).map_err(|e| e.to_string())
    } else {
        Store::open_existing_at(&location)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{place}: no run"))
    }
}

/// One child: copy, hold or only open.
pub fn child(args: StoreCopyChildArgs) -> Result<(), String> {
    let from = open(&args.from, false)?;
    let to = open(&args.to, true)?;
    match args.mode.as_str() {
        "copy" => {
            from.copy_into(&to).map_err(|e| e.to_string())?;
        }
        "hold" => {
            let dump = from.dump().map_err(|e| e.to_string())?;
            std::hint::black_box(&dump);
        }
        "open" => {}
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(())
}

/// A run of `jobs` finished jobs with a trajectory of `kb` KB each, in `dir`.
fn build(dir: &Path, jobs: usize, kb: usize) -> Result<u64, String> {
    let err = |e: trajforge_store::StoreError| e.to_string();
    let store = Store::open(dir).map_err(err)?;
    store.add_jobs(&crate::scaleout::jobs(jobs)).map_err(err)?;
    let r1 = crate::scaleout::rollout1()?;
    let owner = "bench:build";
    store.begin_session(owner).map_err(err)?;
    // Text that does not repeat within a trajectory (no store compresses it away).
    let filler: String = (0..kb * 1024 / 16)
        .map(|i| format!("{:015x} ", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let mut bytes = 0u64;
    while let Some(job) = store.claim(owner, Duration::from_secs(600)).map_err(err)? {
        let t = crate::scaleout::trajectory(job.id, &format!("job {} {filler}", job.id));
        bytes += t.data.to_string().len() as u64;
        store
            .record_stage(owner, job.id, 1, &r1, Some(&t), None)
            .map_err(err)?;
        store.finish(owner, job.id, &Outcome::Kept).map_err(err)?;
    }
    Ok(bytes)
}

fn measure(me: &Path, mode: &str, from: &str, to: &str) -> Result<crate::Measured, String> {
    let args: Vec<String> = [
        "store-copy-child",
        "--mode",
        mode,
        "--from",
        from,
        "--to",
        to,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crate::run_child(me, &args)
}

/// Run the benchmark.
pub fn run(args: StoreCopyArgs) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let source = dir.path().join("source");
    let bytes = build(&source, args.jobs, args.kb)?;
    let source = source.display().to_string();
    let url = cluster().fresh_database("bench_store_copy");
    let back = dir.path().join("back").display().to_string();
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "run: {} jobs, {} trajectories of {} KB: {:.0} MB of trajectory data",
        args.jobs,
        args.jobs,
        args.kb,
        bytes as f64 / 1e6
    );
    let opened = measure(
        &me,
        "open",
        &source,
        &dir.path().join("opened").display().to_string(),
    )?;
    let held = measure(
        &me,
        "hold",
        &source,
        &dir.path().join("held").display().to_string(),
    )?;
    println!(
        "baseline: both stores opened, nothing copied: peak RSS {:.1} MB; every row held in memory (what a copy held before it streamed): peak RSS {:.1} MB in {:.2} s",
        mb(opened.max_rss_kb),
        mb(held.max_rss_kb),
        held.wall.as_secs_f64()
    );
    for (label, from, to) in [
        ("sqlite -> postgres", &source, &url),
        ("postgres -> sqlite", &url, &back),
    ] {
        let copied = measure(&me, "copy", from, to)?;
        println!(
            "copy {label}: peak RSS {:.1} MB in {:.2} s (CPU {:.2} s)",
            mb(copied.max_rss_kb),
            copied.wall.as_secs_f64(),
            copied.cpu.as_secs_f64()
        );
    }
    // The round trip is lossless: the run back from Postgres holds the original's rows.
    let (a, b) = (open(&source, false)?, open(&back, false)?);
    let same = a.trajectory_count().map_err(|e| e.to_string())?
        == b.trajectory_count().map_err(|e| e.to_string())?
        && a.counts().map_err(|e| e.to_string())?.done
            == b.counts().map_err(|e| e.to_string())?.done;
    println!(
        "round trip: {}",
        if same {
            "same jobs and trajectories"
        } else {
            "DIFFERENT"
        }
    );
    if !same {
        return Err("the copied run differs".into());
    }
    Ok(())
}
