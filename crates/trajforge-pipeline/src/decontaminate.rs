//! Decontamination: `generate --exclude-tasks tasks.jsonl` never samples a function that a
//! held-out task's gold patch touches.
//!
//! A function is **touched** by a task when, matched by file path and qualified name:
//! - at the task's base commit (read with `git cat-file blob BASE:path`), its line span holds
//!   a line the gold patch removes, or holds both old lines k and k+1 around a pure insertion
//!   (lines added with none removed beside them); or
//! - in the file as the gold patch leaves it (the base file with the patch applied), its span
//!   holds a line the patch adds: so functions the patch adds are left out too, and so are
//!   functions grown at an edge (a decorator added above, lines appended to a Python body),
//!   which the old side alone would miss.
//!
//! Sampled functions are left out when their path and qualified name equal a touched one's,
//! whatever their lines at the commit `generate` samples from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trajforge_eval::{JsonlError, Task, read_jsonl};
use trajforge_ingest::Function;
use trajforge_patch::{FilePatch, Hunk, LineKind};

/// Reading the held-out tasks or their base files failed.
#[derive(Debug, thiserror::Error)]
pub enum ExcludeError {
    /// The task file could not be read.
    #[error("--exclude-tasks: {0}")]
    Read(#[source] JsonlError),
    /// A task's gold patch is not a unified diff.
    #[error("task {instance_id}: its gold patch is not a diff: {source}")]
    Patch {
        /// The task.
        instance_id: String,
        /// What did not parse.
        source: trajforge_patch::ParseError,
    },
    /// A task's base commit is not in the repository.
    #[error("task {instance_id}: its base commit {commit} is not in {repo}")]
    UnknownCommit {
        /// The task.
        instance_id: String,
        /// The base commit.
        commit: String,
        /// The repository.
        repo: PathBuf,
    },
    /// A file the gold patch changes is not at the task's base commit.
    #[error("task {instance_id}: {path} is not at its base commit {commit}")]
    MissingFile {
        /// The task.
        instance_id: String,
        /// The file.
        path: String,
        /// The base commit.
        commit: String,
    },
    /// git could not be run.
    #[error("cannot run git: {0}")]
    Git(#[source] std::io::Error),
    /// `web generate --exclude-tasks` was given a task that is not a web task.
    #[error(
        "task {instance_id} is not a web task: `web generate` holds out tasks of `trajforge web tasks`"
    )]
    NotWebTask {
        /// The task.
        instance_id: String,
    },
}

/// The functions held-out tasks touch, by (path, qualified name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TouchedFunctions {
    /// Qualified names by file path.
    keys: BTreeMap<String, BTreeSet<String>>,
    tasks: usize,
}

impl TouchedFunctions {
    /// Reads `tasks_file` and finds what each task's gold patch touches in `repo`.
    pub fn from_tasks_file(repo: &Path, tasks_file: &Path) -> Result<Self, ExcludeError> {
        let tasks: Vec<Task> = read_jsonl(tasks_file).map_err(ExcludeError::Read)?;
        Self::from_tasks(repo, &tasks)
    }

    /// What the gold patches of `tasks` touch in `repo`.
    pub fn from_tasks(repo: &Path, tasks: &[Task]) -> Result<Self, ExcludeError> {
        let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for task in tasks {
            let patch =
                trajforge_patch::parse(&task.patch).map_err(|source| ExcludeError::Patch {
                    instance_id: task.instance_id.clone(),
                    source,
                })?;
            let mut checked = false;
            for file in patch.files.iter().filter(|f| !f.binary) {
                // Only files a grammar reads have functions.
                if trajforge_ingest::extract_path(file.path(), "").is_none() {
                    continue;
                }
                if !checked {
                    check_commit(repo, task)?;
                    checked = true;
                }
                let old = match &file.old_path {
                    Some(path) => read_at(repo, task, path)?,
                    None => String::new(),
                };
                for (path, name) in touched_in_file(file, &old) {
                    keys.entry(path).or_default().insert(name);
                }
            }
        }
        Ok(TouchedFunctions {
            keys,
            tasks: tasks.len(),
        })
    }

    /// Whether `f` is one of them.
    pub fn contains(&self, f: &Function) -> bool {
        self.keys
            .get(&f.path)
            .is_some_and(|names| names.contains(&f.name))
    }

    /// Distinct (path, name) pairs.
    pub fn len(&self) -> usize {
        self.keys.values().map(BTreeSet::len).sum()
    }

    /// Whether no function is touched.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Tasks read.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// A digest of the set, stored with the run so a resume cannot change it.
    pub fn fingerprint(&self) -> String {
        trajforge_hash::fingerprint(&self.keys)
    }
}

/// `git -C repo cat-file <mode> <object>`, run to the end.
fn cat_file(repo: &Path, mode: &str, object: &str) -> Result<Output, ExcludeError> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", mode, object])
        .output()
        .map_err(ExcludeError::Git)
}

fn check_commit(repo: &Path, task: &Task) -> Result<(), ExcludeError> {
    let out = cat_file(repo, "-e", &format!("{}^{{commit}}", task.base_commit))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ExcludeError::UnknownCommit {
            instance_id: task.instance_id.clone(),
            commit: task.base_commit.clone(),
            repo: repo.to_path_buf(),
        })
    }
}

fn read_at(repo: &Path, task: &Task, path: &str) -> Result<String, ExcludeError> {
    let out = cat_file(repo, "blob", &format!("{}:{path}", task.base_commit))?;
    if !out.status.success() {
        return Err(ExcludeError::MissingFile {
            instance_id: task.instance_id.clone(),
            path: path.to_string(),
            commit: task.base_commit.clone(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where one file's patch changes it: old-side line ranges a touched function's span holds
/// whole (a removed line as `(l, l)`, a pure insertion after line k as `(k, k + 1)`) and
/// new-side added lines.
#[derive(Debug, Default, PartialEq)]
struct Marks {
    old: Vec<(u32, u32)>,
    new: Vec<u32>,
}

fn marks(hunks: &[Hunk]) -> Marks {
    let mut m = Marks::default();
    for h in hunks {
        // `-k,0` means "after old line k": the next old line is k + 1 (likewise new).
        let mut old_no = (h.old_start + usize::from(h.old_len == 0)) as u32;
        let mut new_no = (h.new_start + usize::from(h.new_len == 0)) as u32;
        let mut removed_in_block = false;
        let mut added_in_block = false;
        let flush = |removed: &mut bool, added: &mut bool, old_no: u32, m: &mut Marks| {
            if *added && !*removed {
                m.old.push((old_no.saturating_sub(1), old_no));
            }
            *removed = false;
            *added = false;
        };
        for line in &h.lines {
            match line.kind {
                LineKind::Context => {
                    flush(&mut removed_in_block, &mut added_in_block, old_no, &mut m);
                    old_no += 1;
                    new_no += 1;
                }
                LineKind::Removed => {
                    m.old.push((old_no, old_no));
                    removed_in_block = true;
                    old_no += 1;
                }
                LineKind::Added => {
                    m.new.push(new_no);
                    added_in_block = true;
                    new_no += 1;
                }
            }
        }
        flush(&mut removed_in_block, &mut added_in_block, old_no, &mut m);
    }
    m
}

/// The file as the patch leaves it: `old` with the hunks applied (the gold patch was made
/// against exactly this file, so its context lines are taken on trust).
fn apply(old: &str, hunks: &[Hunk]) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(old_lines.len());
    let mut next = 0usize;
    for h in hunks {
        let start = if h.old_len == 0 {
            h.old_start
        } else {
            h.old_start.saturating_sub(1)
        }
        .min(old_lines.len());
        out.extend(&old_lines[next.min(start)..start]);
        next = start;
        for line in &h.lines {
            match line.kind {
                LineKind::Context => {
                    out.push(&line.text);
                    next += 1;
                }
                LineKind::Removed => next += 1,
                LineKind::Added => out.push(&line.text),
            }
        }
    }
    out.extend(old_lines.get(next..).unwrap_or_default());
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The (path, name) of every function of `file` its patch touches; `old` is the base content.
fn touched_in_file(file: &FilePatch, old: &str) -> Vec<(String, String)> {
    let m = marks(&file.hunks);
    let mut out = Vec::new();
    if let Some(path) = &file.old_path
        && let Some(found) = trajforge_ingest::extract_path(path, old)
    {
        out.extend(
            found
                .functions
                .into_iter()
                .filter(|f| {
                    m.old
                        .iter()
                        .any(|&(a, b)| f.start_line <= a && b <= f.end_line)
                })
                .map(|f| (path.clone(), f.name)),
        );
    }
    if let Some(path) = &file.new_path
        && let Some(found) = trajforge_ingest::extract_path(path, &apply(old, &file.hunks))
    {
        out.extend(
            found
                .functions
                .into_iter()
                .filter(|f| {
                    m.new
                        .iter()
                        .any(|l| (f.start_line..=f.end_line).contains(l))
                })
                .map(|f| (path.clone(), f.name)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "def a():\n    return 1\n\n\ndef b():\n    return 2\n\n\ndef c():\n    return 3\n";

    fn file(diff: &str) -> FilePatch {
        trajforge_patch::parse(diff).expect("diff").files.remove(0)
    }

    fn names(touched: Vec<(String, String)>) -> Vec<String> {
        let mut n: Vec<String> = touched.into_iter().map(|(_, n)| n).collect();
        n.sort();
        n.dedup();
        n
    }

    #[test]
    fn a_changed_line_touches_its_function_only() {
        let diff = "--- a/m.py\n+++ b/m.py\n@@ -4,4 +4,4 @@\n \n def b():\n-    return 2\n+    return 22\n \n";
        let f = file(diff);
        assert_eq!(names(touched_in_file(&f, BASE)), ["b"]);
        assert_eq!(
            apply(BASE, &f.hunks),
            BASE.replace("return 2\n", "return 22\n")
        );
    }

    #[test]
    fn added_functions_are_touched_by_name_and_insertions_touch_their_neighbours() {
        // A new function between b and c, after the blank lines: touches only the new one.
        let diff = "--- a/m.py\n+++ b/m.py\n@@ -7,3 +7,7 @@\n \n \n+def b2():\n+    return 5\n+\n+\n def c():\n";
        let f = file(diff);
        assert_eq!(
            marks(&f.hunks),
            Marks {
                old: vec![(8, 9)],
                new: vec![9, 10, 11, 12]
            }
        );
        // Old lines 8 and 9 are a blank line and `def c():`: no old span holds both.
        assert_eq!(names(touched_in_file(&f, BASE)), ["b2"]);
        // A decorator added above c grows c's new span over an added line.
        let diff = "--- a/m.py\n+++ b/m.py\n@@ -8,2 +8,3 @@\n \n+@cache\n def c():\n";
        assert_eq!(names(touched_in_file(&file(diff), BASE)), ["c"]);
        // An insertion inside a body touches that function alone.
        let diff =
            "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,3 @@\n def a():\n+    x = 0\n     return 1\n";
        assert_eq!(names(touched_in_file(&file(diff), BASE)), ["a"]);
    }

    #[test]
    fn new_and_deleted_files() {
        let added = "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1,2 @@\n+def fresh():\n+    pass\n";
        assert_eq!(
            touched_in_file(&file(added), ""),
            [("n.py".to_string(), "fresh".to_string())]
        );
        let deleted = "diff --git a/m.py b/m.py\ndeleted file mode 100644\n--- a/m.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-def a():\n-    return 1\n";
        assert_eq!(
            names(touched_in_file(&file(deleted), "def a():\n    return 1\n")),
            ["a"]
        );
    }

    #[test]
    fn contains_matches_path_and_name() {
        let t = TouchedFunctions {
            keys: [("m.py".to_string(), ["b".to_string()].into())].into(),
            tasks: 1,
        };
        let f = |path: &str, name: &str| Function {
            path: path.into(),
            name: name.into(),
            language: trajforge_ingest::Language::Python,
            start_line: 1,
            end_line: 2,
            kind: trajforge_ingest::FunctionKind::Function,
        };
        assert!(t.contains(&f("m.py", "b")));
        assert!(!t.contains(&f("m.py", "bb")));
        assert!(!t.contains(&f("m.py", "a")));
        assert!(!t.contains(&f("other.py", "b")));
    }
}

/// Held-out web tasks (`web generate --exclude-tasks`), as (start page, target page) pairs.
///
/// A generated pair is held out when a rollout starts on a held-out task's start page and
/// ends on its target page: that pair would teach the very navigation the task tests. Pages
/// are compared by their site paths after [`crate::web::normalize_url`] (scheme, host, port
/// and fragment ignored), so the site may be served elsewhere than where the tasks were drawn.
/// Pairs from other start pages, or ending on other pages, stay: they teach other routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldOutPages {
    pairs: BTreeSet<(String, String)>,
}

impl HeldOutPages {
    /// Reads `tasks_file` (tasks written by `web tasks`).
    pub fn from_tasks_file(tasks_file: &Path) -> Result<Self, ExcludeError> {
        let tasks: Vec<Task> = read_jsonl(tasks_file).map_err(ExcludeError::Read)?;
        Self::from_tasks(&tasks)
    }

    /// The pairs of `tasks`; a task that is not a web task is refused.
    pub fn from_tasks(tasks: &[Task]) -> Result<Self, ExcludeError> {
        let pairs = tasks
            .iter()
            .map(|t| match &t.web {
                Some(w) => Ok((page_key(&w.start_url), page_key(&w.target_url))),
                None => Err(ExcludeError::NotWebTask {
                    instance_id: t.instance_id.clone(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(HeldOutPages { pairs })
    }

    /// Whether a rollout from `start_url` ending on `final_url` is a held-out task's.
    pub fn holds(&self, start_url: &str, final_url: &str) -> bool {
        !self.pairs.is_empty()
            && self
                .pairs
                .contains(&(page_key(start_url), page_key(final_url)))
    }

    /// Held-out pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// No pair is held out.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Identifies the pairs (part of a run's settings: a resume cannot change them).
    pub fn fingerprint(&self) -> String {
        trajforge_hash::fingerprint(&self.pairs)
    }
}

fn page_key(url: &str) -> String {
    crate::web::site_path(&crate::web::normalize_url(url))
}
