//! Host-side view of the processes of one sandbox, through `/proc`.

use std::fs;
use std::thread;
use std::time::Duration;

/// Direct children of `pid` (all of its threads), from `/proc/PID/task/TID/children`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// All descendants of `root` (not including `root`), parents before children.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for child in children(pid) {
            if !out.contains(&child) {
                out.push(child);
                queue.push(child);
            }
        }
    }
    out
}

/// The pid of `pid` in each nested pid namespace (`NSpid` of /proc/PID/status), outermost first.
pub(crate) fn ns_pids(pid: u32) -> Vec<u32> {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` still runs (neither gone nor a zombie).
pub(crate) fn is_alive(pid: u32) -> bool {
    !is_dead(pid)
}

/// Whether `pid` is a zombie (or already gone): nothing left to kill.
fn is_dead(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z") | Some("X") | None)
}

/// Kills with SIGKILL every descendant of `root` except those in `keep`, repeating until none
/// is left (a process forking while we scan is caught in the next round).
pub(crate) fn kill_descendants_except(root: u32, keep: &[u32]) {
    for _ in 0..200 {
        let victims: Vec<u32> = descendants(root)
            .into_iter()
            .filter(|p| !keep.contains(p) && !is_dead(*p))
            .collect();
        if victims.is_empty() {
            return;
        }
        for pid in victims {
            crate::sys::kill(pid, libc::SIGKILL);
        }
        thread::sleep(Duration::from_millis(2));
    }
}
