//! Reading the first-parent history after a split point with one `git log` and screening
//! every change as it streams by.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use trajforge_eval::{Limits, SkipReason, screen};

use super::MineError;

/// Where the mined history starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Commits after this date (`git log --since`).
    Since(String),
    /// Commits after this revision (`REV..END`), resolved to its full id.
    After(String),
}

/// The window of history to mine, resolved so a resumed run reads the same commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Where it starts.
    pub start: Start,
    /// The last commit (full id).
    pub end: String,
    /// A date the commits must not be after (`git log --until`), when `--until` was a date.
    pub until_date: Option<String>,
}

impl Window {
    /// Resolve `--since`/`--after` and `--until` (a revision, else a date; default HEAD).
    pub fn resolve(repo: &Path, start: Start, until: Option<&str>) -> Result<Window, MineError> {
        let start = match start {
            Start::After(rev) => Start::After(rev_parse(repo, &rev)?),
            since => since,
        };
        let (end, until_date) = match until {
            None => (rev_parse(repo, "HEAD")?, None),
            Some(u) => match rev_parse(repo, u) {
                Ok(end) => (end, None),
                Err(_) => (rev_parse(repo, "HEAD")?, Some(u.to_string())),
            },
        };
        Ok(Window {
            start,
            end,
            until_date,
        })
    }

    /// The `git log` arguments selecting the window.
    fn log_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        match &self.start {
            Start::Since(date) => {
                args.push(format!("--since={date}"));
                args.push(self.end.clone());
            }
            Start::After(rev) => args.push(format!("{rev}..{}", self.end)),
        }
        if let Some(date) = &self.until_date {
            args.push(format!("--until={date}"));
        }
        args
    }
}

/// The full id of `rev` as a commit.
pub fn rev_parse(repo: &Path, rev: &str) -> Result<String, MineError> {
    let out = git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )?;
    if !out.status.success() {
        return Err(MineError::UnknownRevision(rev.to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git(repo: &Path, args: &[&str]) -> Result<std::process::Output, MineError> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(MineError::GitSpawn)
}

/// One first-parent change of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The commit (full id).
    pub commit: String,
    /// Its first parent: the task's base commit.
    pub parent: String,
    /// Its committer date (RFC 3339): when it landed on the branch.
    pub created_at: String,
    /// Its message.
    pub message: String,
    /// Whether it is a merge (its message may be only "Merge ...").
    pub merge: bool,
    /// The source part of its diff against the first parent.
    pub gold: String,
    /// The test part.
    pub test: String,
}

/// What screening the window found: the changes that are tasks, newest first, and how many
/// were skipped for each reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screening {
    /// First-parent commits read.
    pub commits: usize,
    /// Changes that are tasks, newest first.
    pub tasks: Vec<Change>,
    /// Skipped changes per reason label.
    pub skipped: BTreeMap<String, usize>,
}

/// Record separator of the `git log` output: NUL never occurs in a text or `--binary` diff.
const SEP: u8 = 0;

/// Read the window's first-parent changes with one `git log -p` and screen each one.
pub fn screen_window(repo: &Path, window: &Window, limits: Limits) -> Result<Screening, MineError> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "core.quotePath=false",
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "-p",
            "--binary",
            "--no-renames",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--format=%x00%H %P%n%cI%n%B%x00",
        ])
        .args(window.log_args())
        .arg("--")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MineError::GitSpawn)?;
    let stdout = child.stdout.take().ok_or_else(|| MineError::Git {
        args: "log".into(),
        stderr: "no output pipe".into(),
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut screening = Screening::default();
    let mut buf = Vec::new();
    // The stream is: NUL header NUL diff NUL header NUL diff ...
    reader
        .read_until(SEP, &mut buf)
        .map_err(MineError::GitSpawn)?;
    loop {
        buf.clear();
        if reader
            .read_until(SEP, &mut buf)
            .map_err(MineError::GitSpawn)?
            == 0
        {
            break;
        }
        let header = String::from_utf8_lossy(strip_sep(&buf)).into_owned();
        buf.clear();
        reader
            .read_until(SEP, &mut buf)
            .map_err(MineError::GitSpawn)?;
        let diff = String::from_utf8_lossy(strip_sep(&buf));
        screening.commits += 1;
        let mut lines = header.splitn(3, '\n');
        let ids = lines.next().unwrap_or_default();
        let created_at = lines.next().unwrap_or_default().to_string();
        let message = lines.next().unwrap_or_default().trim_end().to_string();
        let mut ids = ids.split(' ');
        let commit = ids.next().unwrap_or_default().to_string();
        let parents: Vec<&str> = ids.collect();
        let Some(parent) = parents.first().filter(|p| !p.is_empty()) else {
            // The root commit has nothing to be a change against.
            *screening.skipped.entry("root".into()).or_default() += 1;
            continue;
        };
        match screen(&message, diff.trim_start_matches('\n'), limits) {
            Ok(split) => screening.tasks.push(Change {
                commit,
                parent: (*parent).to_string(),
                created_at,
                message,
                merge: parents.len() > 1,
                gold: split.gold,
                test: split.test,
            }),
            Err(reason) => {
                *screening
                    .skipped
                    .entry(SkipReason::label(reason).into())
                    .or_default() += 1
            }
        }
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(MineError::GitSpawn)?;
    if !status.success() {
        return Err(MineError::Git {
            args: format!("log {}", window.log_args().join(" ")),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(screening)
}

fn strip_sep(buf: &[u8]) -> &[u8] {
    buf.strip_suffix(&[SEP]).unwrap_or(buf)
}

/// The messages of the commits a merge brought in (oldest first), for a merge whose own
/// message says nothing but "Merge ...".
pub fn merged_messages(repo: &Path, change: &Change) -> Result<String, MineError> {
    let range = format!("{}..{}", change.parent, change.commit);
    let out = git(
        repo,
        &["log", "--no-merges", "--reverse", "--format=%B%x00", &range],
    )?;
    if !out.status.success() {
        return Err(MineError::Git {
            args: format!("log {range}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n"))
}
