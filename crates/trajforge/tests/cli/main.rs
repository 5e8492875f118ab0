//! End-to-end tests: the real `trajforge` binary on real inputs in temporary folders.

mod bad_input;
mod claude_code;
mod decontaminate;
mod eval;
mod eval_compare;
mod export;
mod functions;
mod generate;
mod import;
mod local;
mod menu;
mod messages;
mod old_runs;
mod readme;
mod recall;
mod run;
mod scaleout;
mod scaleout_commands;
mod site;
mod stdout;
mod tasks;
mod teachers;
mod view;
mod web;
mod web_eval;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Run the binary with `args` and an isolated cache folder.
pub fn trajforge(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(args)
        .env("TRAJFORGE_CACHE_DIR", cache)
        .output()
        .expect("trajforge runs")
}

/// Assert that a command succeeded; its stderr is the failure message.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assert that a command was refused for its input (exit status 2); its stderr, which is
/// the failure message, is returned.
#[track_caller]
pub fn input_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("root")
}

/// Trajectories stored in the run folder `run` so far (0 before its store exists).
fn stored_trajectories(run: &Path) -> usize {
    match trajforge_store::Store::open_existing(run) {
        Ok(Some(store)) => store.trajectories(false).map_or(0, |t| t.len()),
        _ => 0,
    }
}

/// Wait until `child` has stored a trajectory of its own in `run` (or exited): a moment
/// mid-run on a fast machine and on a loaded one alike, where a fixed delay could catch a slow
/// start before any work.
pub async fn wait_until_stored(child: &mut Child, run: &Path) {
    let before = stored_trajectories(run);
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().expect("try_wait").is_none() && stored_trajectories(run) <= before {
        assert!(
            Instant::now() < deadline,
            "no trajectory stored within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL `child` as soon as it has stored a trajectory of its own in `run`.
pub async fn kill_once_stored(child: &mut Child, run: &Path) {
    wait_until_stored(child, run).await;
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL `child` once `ready()` holds (polled every 20 ms); fails when the child exits
/// first or `ready()` does not hold within 300 s.
#[track_caller]
pub fn kill_when(child: &mut Child, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished before the kill"
        );
        assert!(Instant::now() < deadline, "nothing done within 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
}

/// The `trajforge` subcommand `words` (e.g. `["web", "generate"]`) taught by the fake
/// server at `url` (`--teacher URL --model fake-model`), without the user's API keys.
pub fn taught(words: &[&str], url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(words)
        .args(["--teacher", url, "--model", "fake-model"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRAJFORGE_API_KEY");
    cmd
}

/// `trajforge status --json` of a run folder with `extra` options, which must succeed.
pub fn status_json(run: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["status", "--json"])
        .args(extra)
        .arg(run)
        .output()
        .expect("status");
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// Write `text` to `dir/name`; the file's path, as an argument.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// The values of a JSON Lines file, one a line.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A clone of [`more_itertools_bundle`] at `dir/more-itertools` (held-out tasks name their
/// `repo` by that folder name).
pub fn more_itertools_clone(dir: &Path) -> PathBuf {
    let repo = dir.join("more-itertools");
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(more_itertools_bundle())
        .arg(&repo)
        .output()
        .expect("git clone");
    assert_success(&out);
    repo
}

/// The git bundle of more-itertools with its full history (the sample repository's real
/// commits and tests), committed beside the sample input.
pub fn more_itertools_bundle() -> PathBuf {
    repo_root().join("examples/more-itertools.bundle")
}

/// A minimal HTTP/1.1 `GET url` (`http://HOST:PORT/PATH`): the whole response, head included.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(hostport).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body
}

/// A copy of the 0.1 fixture run `kind` (`code`, `web`, `imported`) in `dir/kind` (SQLite
/// adds files beside a database it opens, so the committed fixture is never opened).
pub fn fixture_run_copy(kind: &str, dir: &Path) -> PathBuf {
    let run = dir.join(kind);
    std::fs::create_dir_all(&run).expect("mkdir");
    std::fs::copy(
        repo_root().join(format!(
            "crates/trajforge/tests/fixtures/runs-0.1/{kind}/trajforge.db"
        )),
        run.join("trajforge.db"),
    )
    .expect("copy the fixture run");
    run
}
