//! Test support for trajforge:
//!
//! - [`FakeServer`]: a scripted fake OpenAI-compatible chat-completions server, bound to
//!   127.0.0.1 on a free port, that plays tool calls, malformed output, error statuses,
//!   slow answers and dropped connections so every path of the agent loop can be tested
//!   deterministically ([`Script`], [`Step`]).
//! - [`code`]: the scripted teacher of whole code runs (Soft-Verified Generation on a
//!   Python repository), answering every stage from the request alone, with a known fate
//!   per function.
//! - [`web`]: the same for whole web runs over a crawled site's page graph.
//! - [`history`]: real held-out tasks from more-itertools' history, for evaluation tests.
//! - [`reference_python`]: the reference Python environment for cross-checks.
//! - [`fuzz`]: fuzzing as ordinary tests (hostile byte inputs, a short budget by default).
//! - [`run_ok`]: run a helper program (git, python, sqlite3) and fail with its stderr;
//!   [`git`]: run git and return its output or its stderr as the error.
//! - [`postgres::cluster`]: a throwaway PostgreSQL cluster per test process, a fresh
//!   database per test.
//! - [`podman_image`]: the locally built image of the `--sandbox podman` tests.
//! - [`runtime`]: the two-thread async runtime tests drive fake servers and episodes on.

pub mod code;
pub mod fuzz;
pub mod history;
pub mod postgres;
mod process;
mod script;
mod server;
pub mod web;

pub use process::{git, run_ok};
pub use script::{FakeToolCall, FakeUsage, Reply, Script, Step, between, first_user_text};
pub use server::{FakeServer, RecordedRequest, ServerOptions};

use std::path::{Path, PathBuf};

/// A multi-threaded async runtime with two workers and every driver enabled, for tests that
/// start fake servers or run episodes from synchronous code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A prerequisite of the calling test (test data, a browser, a tool) is missing: under CI
/// (`CI` set) the test fails saying `why`, so nothing is silently left untested; elsewhere
/// this prints a skip note and the caller returns.
// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
#[track_caller]
pub fn skip_missing(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI: {why}");
    eprintln!("skipping: {why}");
}

/// The reference Python environment of scripts/python-env.sh ($TRAJFORGE_PYTHON, else
/// `<repo>/.cache/py/bin/python`) when it can `import` every module in `modules` (e.g.
/// `"tokenizers, jinja2"`). Outside CI a missing one skips the calling test with a note;
/// under CI (`CI` set) it fails the test, so a reference check is never silently lost.
pub fn reference_python(modules: &str) -> Option<PathBuf> {
    let py = std::env::var_os("TRAJFORGE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/py/bin/python")
        });
    let ok = std::process::Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    skip_missing(&format!(
        "{} cannot import {modules}; run scripts/python-env.sh",
        py.display()
    ));
    None
}

/// The image of the `--sandbox podman` tests, built (once, cached by content) by
/// scripts/podman-test-image.sh from this host's own Debian packages. Without podman it
/// skips the calling test with a note outside CI, and fails it under CI (`CI=true`), where
/// the container backend must be tested.
// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
pub fn podman_image() -> Option<String> {
    static IMAGE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("podman").is_file()));
    if !found && !ci {
        eprintln!("skipping: podman is not installed (scripts/setup.sh installs it)");
        return None;
    }
    let image = IMAGE.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/podman-test-image.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    match image {
        Ok(image) => Some(image.clone()),
        Err(e) => panic!("the podman test image: {e}"),
    }
}

/// For the `--sandbox docker` tests: the podman test image ([`podman_image`]) and the
/// environment that lets podman-docker's `docker` (a script that runs podman) start it.
/// This tests trajforge's docker arguments against a docker-compatible command line, not
/// against a docker engine. trajforge passes podman the options a host without systemd
/// needs (cgroupfs, a file events log, runc on hybrid cgroups), but docker has no such
/// options, so they come from a containers.conf named by `CONTAINERS_CONF`, as a user of
/// podman-docker would set them. Without /usr/bin/docker it skips the calling test with a
/// note outside CI and fails it under CI (scripts/setup.sh installs podman-docker).
// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
pub fn podman_docker() -> Option<(String, [(&'static str, &'static str); 1])> {
    static CONF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // The sandbox looks for its engine in /usr/bin first, where podman-docker puts it.
    if !Path::new("/usr/bin/docker").is_file() {
        assert!(
            !ci,
            "CI: /usr/bin/docker is missing; scripts/setup.sh installs podman-docker"
        );
        eprintln!("skipping: podman-docker is not installed (scripts/setup.sh installs it)");
        return None;
    }
    let image = podman_image()?;
    let conf = CONF.get_or_init(|| {
        // One file for every test binary, replaced whole (same content) so none reads half.
        let path = std::env::temp_dir().join("trajforge-podman-docker.conf");
        let part = path.with_extension(format!("conf.{}", std::process::id()));
        std::fs::write(
            &part,
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )
        .expect("write containers.conf");
        std::fs::rename(&part, &path).expect("rename containers.conf");
        path.display().to_string()
    });
    Some((image, [("CONTAINERS_CONF", conf.as_str())]))
}
