//! Shared helpers: where the site and the browser are, and process checks.

use std::path::PathBuf;
use std::time::Duration;

use trajforge_browser::{BrowserPool, LaunchConfig};

/// The bidict HTML docs, or None (skip) when not fetched; under CI a missing site fails.
pub fn site_dir() -> Option<PathBuf> {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/test-data")
        });
    let dir = data.join("sites/bidict-doc/usr/share/doc/python-bidict-doc/html");
    let browser = trajforge_browser::browser::default_executable();
    let have_browser = browser.is_absolute() && browser.exists();
    if dir.join("index.html").exists() && have_browser {
        return Some(dir);
    }
    let why = format!(
        "test site {} or browser {} missing: run scripts/setup.sh and scripts/fetch-test-data.sh",
        dir.display(),
        browser.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    None
}

/// A pool with one browser and the given call timeout.
pub fn pool(call_timeout: Duration) -> BrowserPool {
    BrowserPool::new(
        LaunchConfig {
            call_timeout,
            ..LaunchConfig::default()
        },
        1,
    )
}

/// Processes whose process group is `pgid` (a browser and its helpers).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Wait until no process of group `pgid` is left (zombies aside).
pub async fn assert_group_gone(pgid: u32) {
    for _ in 0..50 {
        if group_members(pgid).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "orphan browser processes left in group {pgid}: {:?}",
        group_members(pgid)
    );
}

/// Remove `[ref=eN]` markers (ids differ between browser processes).
pub fn without_refs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" [ref=e") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let end = after.find(']').map_or(after.len(), |j| j + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
