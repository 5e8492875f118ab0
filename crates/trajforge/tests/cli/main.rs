//! End-to-end tests: the real `trajforge` binary on real inputs in temporary folders.

mod export;
mod functions;
mod generate;
mod import;
mod local;
mod menu;
mod readme;
mod recall;
mod run;
mod site;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the binary with `args` and an isolated cache folder.
pub fn trajforge(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(args)
        .env("TRAJFORGE_CACHE_DIR", cache)
        .output()
        .expect("trajforge runs")
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
