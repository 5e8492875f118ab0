//! One module per subcommand.

pub mod eval;
pub mod eval_compare;
pub mod export;
pub mod functions;
pub mod generate;
pub mod import;
pub mod menu;
pub mod recall;
pub mod run;
#[cfg(feature = "local")]
pub mod serve;
pub mod site;
pub mod status;
pub mod store;
pub mod tasks;
pub mod view;
pub mod web;
pub mod web_eval;
pub mod worker;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trajforge_pipeline::prepare::PreparedRun;
use trajforge_pipeline::progress::progress_line;
use trajforge_pipeline::runner::Control;
use trajforge_pipeline::status as run_status;
use trajforge_pipeline::teacher::{BuiltTeacher, Preflight, TeacherSpec};

use crate::error::CliError;

/// Where trajforge keeps caches: `$TRAJFORGE_CACHE_DIR`, `$XDG_CACHE_HOME/trajforge`, or `~/.cache/trajforge`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRAJFORGE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("trajforge"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("trajforge"))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (`kill`, systemd, a container stop), with
/// the signal's name; both mean "stop gracefully". Never resolves if no handler can be installed.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

/// The runtime of a local HTTP server (`serve`, `view`): two worker threads are plenty.
pub fn server_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}

/// Build the teacher and check that it answers, warning when a server does not list the model
/// or (one of several) does not answer.
pub fn teacher(
    spec: &TeacherSpec,
    runtime: &tokio::runtime::Runtime,
    on_retry: Option<trajforge_teacher::RetryHook>,
) -> Result<BuiltTeacher, CliError> {
    let teacher = spec.build(on_retry)?;
    for finding in runtime.block_on(teacher.preflight())? {
        match finding {
            Preflight::ModelNotListed { url, listed } => stderr_line!(
                "warning: {url} lists models {}, not {:?}; trying anyway",
                listed.join(", "),
                teacher.model
            ),
            Preflight::ServerDown { url, error } => stderr_line!(
                "warning: teacher server {url} does not answer ({error}); starting on the others, it is tried again later"
            ),
        }
    }
    Ok(teacher)
}

/// Drive a prepared run with a live progress line and graceful Ctrl-C/SIGTERM, then print
/// where it stands. `advice` (when not empty) is said when nothing was kept.
pub fn drive(
    runtime: &tokio::runtime::Runtime,
    run: &PreparedRun,
    concurrency: usize,
    out: &Path,
    advice: &str,
) -> Result<(), CliError> {
    let started = Instant::now();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signal(Arc::clone(&run.control)));
        let (store, pricing) = (Arc::clone(&run.store), run.pricing);
        let (total, kind) = (run.jobs as u64, run.progress_kind());
        let progress = tokio::spawn(progress_loop(move || {
            let s = run_status::status(&store, pricing).ok()?;
            Some(progress_line(
                &s,
                kind,
                total,
                started.elapsed().as_secs_f64(),
            ))
        }));
        let r = run.drive(concurrency).await;
        progress.abort();
        r
    });
    if std::io::stderr().is_terminal() {
        stderr_line!();
    }
    result?;
    let report = run.status()?;
    stderr_line!("{}", run_status::render(&report, Some(run.threshold)));
    if let Some(reason) = run.control.reason() {
        stderr_line!("stopped early: {reason}. Run the same command again to continue.");
    }
    if report.kept_t2 == 0 && report.done > 0 && !advice.is_empty() {
        stderr_line!("{advice}");
    }
    if run.store.is_shared() {
        stderr_line!(
            "run: {} (trajforge status --store URL --run NAME shows this report again)",
            out.display()
        );
    } else {
        stderr_line!(
            "run folder: {} (trajforge status {} shows this report again)",
            out.display(),
            out.display()
        );
    }
    Ok(())
}

/// Stop scheduling on the first Ctrl-C or SIGTERM (episodes in flight finish); quit at once on
/// the second. Either way the run stays resumable.
pub(crate) async fn stop_on_signal(control: Arc<Control>) {
    let signal = shutdown_signal().await;
    control.stop(&format!("interrupted ({signal})"));
    stderr_line!(
        "\nstopping: episodes in flight finish first; press Ctrl-C again to quit at once (the run stays resumable)"
    );
    shutdown_signal().await;
    std::process::exit(130);
}

/// Print the progress line `line` gives every second on a terminal (in place), else when it
/// changes (at most every 5 s) or once a minute; a beat it gives nothing for is skipped.
pub(crate) async fn progress_loop(mut line: impl FnMut() -> Option<String>) {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let mut last_print = Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::time::sleep(Duration::from_millis(if tty { 1000 } else { 5000 })).await;
        let Some(line) = line() else {
            continue;
        };
        if tty {
            stderr_text!("\r\x1b[2K{line}");
        } else if line != last_line || last_print.elapsed() > Duration::from_secs(60) {
            stderr_line!("{line}");
            last_print = Instant::now();
        }
        last_line = line;
    }
}

/// Parse a size such as `1048576`, `512K`, `2M`, `1MB`, `1MiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text, "a size; use e.g. 1048576, 512K or 2M")?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use K, M or G")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The whole number that `text` (trimmed) starts with, and the unit after it; an error saying
/// `text` is not `what` when it starts with no digits.
fn number_and_unit<'t>(text: &'t str, what: &str) -> Result<(u64, &'t str), String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number = digits
        .parse()
        .map_err(|_| format!("{text:?} is not {what}"))?;
    Ok((number, unit))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("2MB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }
}
