//! A closed stdout never panics a command: what a reader that stops early (`| head -1`)
//! does to it ends the command quietly with exit code 141, nothing on stderr. A closed stderr
//! loses its messages and changes no exit code.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{repo_root, stderr};

/// The exit code of a command whose stdout was closed by its reader (128 + SIGPIPE).
const CLOSED: i32 = 141;

/// Run the binary with `args` and a stdout pipe whose reader is already gone, so that its
/// first write fails (the same for output of any size).
pub(crate) fn with_stdout_closed(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("trajforge runs")
}

fn trajforge(args: &[&str], cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(args).env("TRAJFORGE_CACHE_DIR", cache);
    cmd
}

#[track_caller]
fn closed_quietly(out: &Output) {
    assert_eq!(out.status.code(), Some(CLOSED), "{}", stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    assert!(!stderr(out).contains("error"), "{}", stderr(out));
}

/// `functions | head -1`: the reader takes one line of many and goes.
#[test]
fn functions_piped_into_head_ends_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let crates = repo_root().join("crates");
    let mut child = trajforge(&["functions", crates.to_str().expect("utf-8")], tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("line");
    assert!(first.starts_with('{'), "{first}");
    // The reader is dropped here: the rest of the output (megabytes) meets a closed pipe.
    let out = child.wait_with_output().expect("wait");
    closed_quietly(&out);
}

/// Every command that prints a report: status (text and JSON), site show, menu, export.
#[test]
fn reports_to_a_closed_stdout_end_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = crate::fixture_run_copy("web", tmp.path());
    let run = run.to_str().expect("utf-8");
    let data = tmp.path().join("out").join("data.jsonl");
    let data = data.to_str().expect("utf-8");
    for args in [
        vec!["status", run],
        vec!["status", run, "--json", "--jobs"],
        vec!["menu"],
        vec!["menu", "--json"],
        vec![
            "export",
            run,
            "--format",
            "raw",
            "--out",
            data,
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
            "--json",
        ],
    ] {
        let out = with_stdout_closed(&mut trajforge(&args, tmp.path()));
        closed_quietly(&out);
    }
    // The export was written before its summary met the closed pipe.
    assert!(std::fs::metadata(data).expect("export").len() > 0);
}

/// Run `cmd` with a stderr pipe whose reader is already gone (stdout captured).
fn with_stderr_closed(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdout(Stdio::piped())
        .stderr(writer)
        .output()
        .expect("trajforge runs")
}

/// A closed stderr (a reader that went away, or `2>&-`) never panics a command: its messages
/// are lost and it ends with its own exit code, on success and on error alike.
#[test]
fn a_closed_stderr_loses_messages_and_keeps_the_exit_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = repo_root().join("examples/sample-repo");
    let sample = sample.to_str().expect("utf-8");
    // With a working stderr, `functions` writes its summary there: the writes below happen.
    let open = trajforge(&["functions", sample], tmp.path())
        .output()
        .expect("runs");
    assert!(open.status.success(), "{}", stderr(&open));
    assert!(
        !stderr(&open).is_empty(),
        "functions wrote nothing to stderr"
    );

    let closed = with_stderr_closed(&mut trajforge(&["functions", sample], tmp.path()));
    assert_eq!(closed.status.code(), Some(0));
    assert_eq!(closed.stdout, open.stdout, "stdout is complete");
    // An error: its message is lost, its exit code (2, bad input) is not.
    let missing = tmp.path().join("no-such-run");
    let missing = missing.to_str().expect("utf-8");
    let failed = with_stderr_closed(&mut trajforge(&["status", missing], tmp.path()));
    assert_eq!(failed.status.code(), Some(2));

    // `2>&-`: no stderr at all.
    for (args, code) in [(vec!["functions", sample], 0), (vec!["status", missing], 2)] {
        let out = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&-")
            .arg(env!("CARGO_BIN_EXE_trajforge"))
            .args(&args)
            .env("TRAJFORGE_CACHE_DIR", tmp.path())
            .output()
            .expect("sh runs");
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}
