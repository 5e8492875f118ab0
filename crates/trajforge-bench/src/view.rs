//! `trajforge-bench view`: `trajforge view` on a synthetic run of N trajectories (100,000 by
//! default) built here through the store's API: the overview, list pages, full-text search
//! (p95 over varied queries), the page of a 115-step trajectory, and the server's memory,
//! each against the issue's target, next to `trajforge status --json` on the same store as
//! the baseline of the overview (the same numbers, computed by the CLI). With `--postgres`,
//! the same run copied into a throwaway PostgreSQL cluster is measured the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trajforge_view::synthetic::{self, Spec};

use crate::{run_child, sibling_binary, verdict};

/// Options of the view benchmark.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// Trajectories in the synthetic run (about 3 in 5 jobs give two).
    #[arg(long, default_value_t = 100_000)]
    trajectories: usize,
    /// Steps of every other trajectory.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Timed requests per page (the median and the worst are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keep the run here instead of a temporary folder (reused when it exists).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Also copy the run into a throwaway PostgreSQL cluster (`trajforge store copy`) and
    /// measure `trajforge view --store URL --run NAME` the same way.
    #[arg(long)]
    postgres: bool,
}

/// GET `path` from `addr`; the response's length, the time to its last byte, and its text.
fn get(addr: &str, path: &str) -> Result<(usize, Duration, String), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if status != 200 {
        return Err(format!("GET {path}: status {status}"));
    }
    Ok((out.len(), elapsed, text))
}

/// Time `path` `runs` times; (median, worst) in milliseconds.
fn timed(addr: &str, path: &str, runs: usize) -> Result<(f64, f64, usize), String> {
    let mut ms = Vec::new();
    let mut size = 0;
    for _ in 0..runs.max(1) {
        let (len, t, _) = get(addr, path)?;
        size = len;
        ms.push(t.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1], size))
}

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn row(what: &str, value: f64, unit: &str, target: f64, extra: &str) {
    println!(
        "{what:<34} {value:>9.1} {unit:<3} target < {target:<6} {}  {extra}",
        verdict(value < target)
    );
}

/// Run the benchmark.
pub fn run(args: ViewArgs) -> Result<(), String> {
    let trajforge = sibling_binary("trajforge")?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("run"));
    if !dir.join("trajforge.db").is_file() {
        let jobs = (args.trajectories * 3).div_ceil(5);
        let started = Instant::now();
        let n = synthetic::build(
            &dir,
            &Spec {
                jobs,
                steps: args.steps,
                long_steps: 115,
                text: &|i| format!("observation {i} alpha{} beta{}", i % 1000, i % 37),
            },
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "built {n} trajectories ({jobs} jobs) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let db_mb = std::fs::metadata(dir.join("trajforge.db")).map_or(0, |m| m.len()) / 1_000_000;
    // What the store holds (a kept --run-dir may hold another number than asked for).
    let stored = trajforge_store::Store::open_read_only(&dir)
        .map_err(|e| e.to_string())?
        .ok_or("no run store")?
        .trajectory_count()
        .map_err(|e| e.to_string())?;

    // The baseline: `trajforge status --json` on the same store.
    let run_dir = dir.display().to_string();
    serve_and_measure(
        &trajforge,
        std::slice::from_ref(&run_dir),
        &args,
        (stored, db_mb),
    )?;
    if args.postgres {
        let url = trajforge_testkit::postgres::cluster().fresh_database("bench_view");
        let copy = run_child(
            &trajforge,
            &[
                "store".into(),
                "copy".into(),
                run_dir,
                url.clone(),
                "--run".into(),
                "bench".into(),
            ],
        )?;
        println!(
            "\nthe same run copied into PostgreSQL (store copy {:.1} s):",
            copy.wall.as_secs_f64()
        );
        let shared = ["--store".into(), url, "--run".into(), "bench".into()];
        serve_and_measure(&trajforge, &shared, &args, (stored, db_mb))?;
    }
    Ok(())
}

/// `trajforge status --json RUN…` as the baseline, then `trajforge view RUN…` measured.
fn serve_and_measure(
    trajforge: &std::path::Path,
    run: &[String],
    args: &ViewArgs,
    sizes: (u64, u64),
) -> Result<(), String> {
    let status_args: Vec<String> = ["status".to_string(), "--json".into()]
        .into_iter()
        .chain(run.iter().cloned())
        .collect();
    let status = run_child(trajforge, &status_args)?;
    let mut child = Command::new(trajforge)
        .arg("view")
        .args(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("trajforge view: {e}"))?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let result = measure(&addr, args, pid, sizes, status.wall);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn measure(
    addr: &str,
    args: &ViewArgs,
    pid: u32,
    (stored, db_mb): (u64, u64),
    status: Duration,
) -> Result<(), String> {
    // The first overview computes the status from the store (later ones are served from that
    // computation while the background task renews it).
    let (_, cold, _) = get(addr, "/")?;
    // The search index fills in the background; wait for it (its time is reported).
    let started = Instant::now();
    loop {
        let (_, _, body) = get(addr, "/search")?;
        if !body.contains("index-progress") {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("search index not built within 30 min".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let index_s = started.elapsed().as_secs_f64();
    println!(
        "trajforge view on {stored} trajectories (store {db_mb} MB); search index built in {index_s:.1} s"
    );
    let runs = args.runs;
    row(
        "overview, first request (cold)",
        cold.as_secs_f64() * 1000.0,
        "ms",
        1000.0,
        &format!(
            "the status computed from the store; baseline `status --json` {:.0} ms",
            status.as_secs_f64() * 1000.0
        ),
    );
    let (med, worst, size) = timed(addr, "/", runs)?;
    row(
        "overview (median)",
        med,
        "ms",
        1000.0,
        &format!(
            "worst {worst:.0} ms, {} kB; baseline `status --json` {:.0} ms",
            size / 1000,
            status.as_secs_f64() * 1000.0
        ),
    );
    for (what, path) in [
        ("list, first page", "/list".to_string()),
        ("list, page 1000", "/list?page=1000".to_string()),
        (
            "list, kept T2 sorted by r",
            "/list?kept=kept&rollout=t2&sort=recall&dir=desc".to_string(),
        ),
        (
            "list, by bug type and r range",
            "/list?entry=off-by-one&rmin=0.5&rmax=0.8".to_string(),
        ),
    ] {
        let (med, worst, _) = timed(addr, &path, runs)?;
        row(what, med, "ms", 300.0, &format!("worst {worst:.0} ms"));
    }
    let mut search_ms = Vec::new();
    let mut hits = 0;
    for i in 0..20 {
        let q = match i % 4 {
            0 => format!("alpha{}", i * 37 % 1000),
            1 => format!("beta{} wrong", i % 37),
            2 => "function returns the wrong value".to_string(),
            _ => format!("observation {}", i * 4999),
        };
        let path = format!("/search?q={}", q.replace(' ', "+"));
        let (_, t, body) = get(addr, &path)?;
        hits += usize::from(!body.contains("id=\"hit-count\">0<"));
        search_ms.push(t.as_secs_f64() * 1000.0);
    }
    search_ms.sort_by(f64::total_cmp);
    let p95 = search_ms[(search_ms.len() * 95 / 100).min(search_ms.len() - 1)];
    row(
        "full-text search (p95 of 20)",
        p95,
        "ms",
        300.0,
        &format!(
            "median {:.0} ms, {hits} of 20 with hits",
            search_ms[search_ms.len() / 2]
        ),
    );
    let (med, worst, size) = timed(addr, "/job/0", runs)?;
    row(
        "115-step trajectory page (job 0)",
        med,
        "ms",
        500.0,
        &format!("worst {worst:.0} ms, {} kB", size / 1000),
    );
    let peak = proc_kb(pid, "VmHWM:") as f64 / 1024.0;
    row(
        "server peak memory (VmHWM)",
        peak,
        "MB",
        200.0,
        &format!("now {:.0} MB", proc_kb(pid, "VmRSS:") as f64 / 1024.0),
    );
    Ok(())
}
