//! `trajforge-bench abandon`: `trajforge serve` on the embedded model when clients give up
//! (issue 19). N clients each send a long request and disconnect while it waits in the
//! queue; then a small request is timed. Measured for a baseline binary and for this one in
//! the same run, next to the same small request on the idle server, with each server's peak
//! memory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::messages::{Proxy, read_answer, send_post};

/// Options of `trajforge-bench abandon`.
#[derive(Debug, clap::Args)]
pub struct AbandonArgs {
    /// The baseline trajforge binary (e.g. the main branch's, built once).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The trajforge binary measured [default: next to this one].
    #[arg(long)]
    trajforge: Option<PathBuf>,
    /// Requests whose clients disconnect.
    #[arg(long, default_value_t = 50)]
    abandoned: usize,
    /// max_tokens of each abandoned request.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// CPU threads of the served model [default: trajforge's].
    #[arg(long)]
    threads: Option<usize>,
}

/// Figures of one binary.
struct Figures {
    idle: Duration,
    behind: Duration,
    peak_kb: u64,
}

/// Time a small non-streamed chat completion on `addr`.
fn small_request(addr: &str) -> Result<Duration, String> {
    let body = json!({"messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4, "temperature": 0})
    .to_string();
    let started = Instant::now();
    let mut stream = send_post(addr, "/v1/chat/completions", &body)?;
    let answer = read_answer(&mut stream, |_| {})?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "small request: {}",
            answer.lines().next().unwrap_or("no answer")
        ));
    }
    Ok(started.elapsed())
}

fn measure(binary: &std::path::Path, args: &AbandonArgs) -> Result<Figures, String> {
    let threads = args.threads.map(|t| t.to_string());
    let mut serve_args = vec!["--ctx", "2048"];
    if let Some(t) = &threads {
        serve_args.extend(["--threads", t.as_str()]);
    }
    let proxy = Proxy::start(binary, &serve_args)?;
    // Warm-up, then the baseline: the same small request on an idle server.
    small_request(&proxy.addr)?;
    let idle = small_request(&proxy.addr)?;
    let long = json!({"messages": [{"role": "user", "content":
        "Write a long story about a lighthouse keeper, in many chapters."}],
        "max_tokens": args.max_tokens, "temperature": 0})
    .to_string();
    let mut clients = Vec::with_capacity(args.abandoned);
    for _ in 0..args.abandoned {
        clients.push(send_post(&proxy.addr, "/v1/chat/completions", &long)?);
    }
    // Let the server read every request into its queue, then every client gives up.
    std::thread::sleep(Duration::from_millis(500));
    drop(clients);
    let behind = small_request(&proxy.addr)?;
    Ok(Figures {
        idle,
        behind,
        peak_kb: proxy.peak_rss_kb(),
    })
}

/// Run the benchmark and print its table.
pub fn run(args: AbandonArgs) -> Result<(), String> {
    let this = match &args.trajforge {
        Some(p) => p.clone(),
        None => crate::sibling_binary("trajforge")?,
    };
    let mut rows = Vec::new();
    if let Some(base) = &args.baseline {
        rows.push(("baseline", measure(base, &args)?));
    }
    rows.push(("this tree", measure(&this, &args)?));
    println!(
        "trajforge serve (embedded model): a small request (max_tokens 4) on the idle server and \
         right after {} clients sent a request of max_tokens {} and disconnected",
        args.abandoned, args.max_tokens
    );
    println!(
        "{:<12} {:>14} {:>22} {:>12}",
        "binary", "idle", "behind abandoned", "peak RSS"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (label, f) in &rows {
        println!(
            "{:<12} {:>11.0} ms {:>19.0} ms {:>9} MB",
            label,
            ms(f.idle),
            ms(f.behind),
            f.peak_kb / 1024
        );
    }
    if let Some((_, f)) = rows.last() {
        // Target: the abandoned requests cost nothing, so the wait is that of an idle server
        // (within a factor of 2 for the noise of a shared machine).
        let ok = f.behind <= f.idle * 2 + Duration::from_millis(50);
        println!(
            "behind abandoned / idle: {:.1}x (target: about 1x) {}",
            f.behind.as_secs_f64() / f.idle.as_secs_f64().max(1e-9),
            if ok { "ok" } else { "MISSED" }
        );
    }
    Ok(())
}
