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

pub mod code;
pub mod fuzz;
pub mod history;
pub mod postgres;
mod process;
mod script;
mod server;
pub mod web;

pub use process::{git, run_ok};
pub use script::{FakeToolCall, FakeUsage, Reply, Script, Step};
pub use server::{FakeServer, RecordedRequest, ServerOptions};

use std::path::{Path, PathBuf};

/// The reference Python environment of scripts/python-env.sh ($TRAJFORGE_PYTHON, else
/// `<repo>/.cache/py/bin/python`) when it can `import` every module in `modules` (e.g.
/// `"tokenizers, jinja2"`). Outside CI a missing one skips the calling test with a note;
/// under CI (`CI` set) it fails the test, so a reference check is never silently lost.
// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
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
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: {} cannot import {modules}; run scripts/python-env.sh",
        py.display()
    );
    eprintln!(
        "skipping: {} cannot import {modules} (run scripts/python-env.sh)",
        py.display()
    );
    None
}
