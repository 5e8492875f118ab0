//! `trajforge-bench messages`: time to first token and total time of a streamed answer
//! through `trajforge serve --upstream` (Anthropic's Messages API, translated on the fly)
//! against the same upstream called directly (OpenAI chat completions), in the same run.
//!
//! The upstream is the scripted fake server, streaming a fixed reply in small pieces with a
//! fixed pause between them after a fixed "prompt" latency, so both paths see the same
//! upstream timing and the difference is the proxy's. Both are spoken to over a raw HTTP/1.1
//! socket, read as bytes arrive; requests alternate between the paths.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use trajforge_testkit::{FakeServer, Reply, Script, ServerOptions, Step};

/// Options of `trajforge-bench messages`.
#[derive(Debug, clap::Args)]
pub struct MessagesArgs {
    /// Requests per path.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Upstream time before its first byte (prompt processing), in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Upstream pause between streamed pieces, in milliseconds.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// Characters of the streamed reply (sent 3 at a time).
    #[arg(long, default_value_t = 300)]
    chars: usize,
    /// The trajforge binary [default: next to this one].
    #[arg(long)]
    trajforge: Option<PathBuf>,
}

/// The reply text; its first piece marks the first token in both protocols.
const FIRST: &str = "Zq9";

/// One timed request.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first: Duration,
    total: Duration,
}

/// A `trajforge serve` child process, stopped when dropped.
pub(crate) struct Proxy {
    child: Child,
    /// Where it listens (`host:port`).
    pub(crate) addr: String,
}

impl Proxy {
    /// Start `binary serve --port 0 ARGS...` and wait for the URL it prints.
    pub(crate) fn start(binary: &Path, args: &[&str]) -> Result<Proxy, String> {
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| format!("reading the server's URL: {e}"))?;
        if line.trim().is_empty() {
            return Err(format!("{} serve printed no URL", binary.display()));
        }
        Ok(Proxy {
            addr: line
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches("/v1")
                .to_string(),
            child,
        })
    }

    /// The process's peak resident memory so far, in KiB (VmHWM).
    pub(crate) fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open a connection to `addr` and send a whole POST of `body` to `path`
/// (`Connection: close`, so the answer ends with the connection).
pub(crate) fn send_post(addr: &str, path: &str, body: &str) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         x-api-key: dummy\r\nanthropic-version: 2023-06-01\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Read the answer on `stream` to its end, calling `seen` with the bytes so far after each
/// read; the whole answer.
pub(crate) fn read_answer(
    stream: &mut TcpStream,
    mut seen: impl FnMut(&[u8]),
) -> Result<String, String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        seen(&all);
    }
    Ok(String::from_utf8_lossy(&all).into_owned())
}

/// POST `body` to `path` on `addr` and time the first occurrence of [`FIRST`] and the end.
fn timed(addr: &str, path: &str, body: &str) -> Result<Timing, String> {
    let started = Instant::now();
    let mut stream = send_post(addr, path, body)?;
    let mut first = None;
    let text = read_answer(&mut stream, |seen| {
        if first.is_none() && seen.windows(FIRST.len()).any(|w| w == FIRST.as_bytes()) {
            first = Some(started.elapsed());
        }
    })?;
    let total = started.elapsed();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{path}: {}",
            text.lines().next().unwrap_or("no answer")
        ));
    }
    let first = first.ok_or_else(|| format!("{path}: the reply never arrived: {text}"))?;
    Ok(Timing { first, total })
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Run the benchmark and print its table.
pub fn run(args: MessagesArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let text: String = FIRST
        .chars()
        .chain("lorem ipsum dolor sit amet ".chars().cycle())
        .take(args.chars.max(FIRST.len()))
        .collect();
    let options = ServerOptions {
        latency: Duration::from_millis(args.latency_ms),
        stream_interval: Duration::from_millis(args.interval_ms),
        record: false,
        ..ServerOptions::default()
    };
    let fake = runtime.block_on(FakeServer::start_with(
        Script::repeat(Step::Reply(Reply::new().content(text).usage(100, 50))),
        options,
    ));
    let binary = match &args.trajforge {
        Some(p) => p.clone(),
        None => crate::sibling_binary("trajforge")?,
    };
    let proxy = Proxy::start(&binary, &["--upstream", &fake.url(), "--model", "m"])?;
    let direct_addr = fake.addr().to_string();
    let openai = json!({"model": "m", "stream": true, "max_tokens": 256,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Say something."}]})
    .to_string();
    let anthropic = json!({"model": "m", "stream": true, "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say something."}]})
    .to_string();

    // One warm-up request each, then alternate.
    timed(&direct_addr, "/v1/chat/completions", &openai)?;
    timed(&proxy.addr, "/v1/messages?beta=true", &anthropic)?;
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..args.requests.max(1) {
        direct.push(timed(&direct_addr, "/v1/chat/completions", &openai)?);
        through.push(timed(&proxy.addr, "/v1/messages?beta=true", &anthropic)?);
    }
    drop(proxy);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let first = |t: &[Timing]| median(t.iter().map(|t| t.first).collect());
    let total = |t: &[Timing]| median(t.iter().map(|t| t.total).collect());
    let (df, dt) = (first(&direct), total(&direct));
    let (tf, tt) = (first(&through), total(&through));
    println!(
        "Messages API through trajforge serve vs the upstream directly: {} requests each, \
         upstream latency {} ms, {} chars in 3-char pieces every {} ms (medians)",
        args.requests, args.latency_ms, args.chars, args.interval_ms
    );
    println!("{:<44} {:>12} {:>12}", "path", "first token", "total");
    println!(
        "{:<44} {:>9.1} ms {:>9.1} ms",
        "upstream directly (OpenAI, baseline)",
        ms(df),
        ms(dt)
    );
    println!(
        "{:<44} {:>9.1} ms {:>9.1} ms",
        "trajforge serve /v1/messages (Anthropic)",
        ms(tf),
        ms(tt)
    );
    let pct = |a: Duration, b: Duration| (ms(a) - ms(b)) / ms(b).max(1e-9) * 100.0;
    println!(
        "overhead: first token {:+.1}% ({:+.1} ms), total {:+.1}% ({:+.1} ms) (target < 10%)",
        pct(tf, df),
        ms(tf) - ms(df),
        pct(tt, dt),
        ms(tt) - ms(dt)
    );
    Ok(())
}
