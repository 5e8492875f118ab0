//! Work folders: one base snapshot per (repository, commit, set-up), shared safely by runs.
//!
//! The sandbox keeps one base snapshot per folder and replaces it when asked for another
//! commit, so every snapshot gets a folder of its own, named by what it holds, under the
//! repository's work folder (`snapshots/<commit>-<key>`). Runs in other processes may share
//! it at the same time:
//!
//! - `prepare.lock` is held exclusively while the snapshot is made or checked, so two runs
//!   never build one snapshot at once;
//! - `use.lock` is held shared by every process using the snapshot (until it releases it or
//!   exits), and a snapshot is only removed by whoever can take it exclusively: a snapshot
//!   in use is never removed;
//! - `users/<pid>.lock` is held by each live process using the snapshot, so the workspaces
//!   (`episodes/ws-<pid>-<n>`) of processes that died are told apart and reclaimed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use trajforge_sandbox::{Environment, EnvironmentOptions, SandboxError, remove_tree};

/// Folder of the keyed snapshots under a repository's work folder.
const SNAPSHOTS: &str = "snapshots";
/// Held exclusively while a snapshot is prepared or removed.
const PREPARE_LOCK: &str = "prepare.lock";
/// Held shared by every process using the snapshot.
const USE_LOCK: &str = "use.lock";
/// Per-process liveness locks.
const USERS: &str = "users";
/// Episode workspaces of a snapshot (the sandbox's layout).
const EPISODES: &str = "episodes";

/// Why a work folder could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    /// The sandbox failed to make or set up the snapshot.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A file of the work folder could not be created, locked or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The revision does not name a commit of the repository.
    #[error("{rev:?} is not a commit of {repo}: {stderr}")]
    UnknownCommit {
        /// The repository.
        repo: PathBuf,
        /// The revision as given.
        rev: String,
        /// What git said.
        stderr: String,
    },
    /// The repository has no commit yet, so there is nothing to snapshot.
    #[error("{repo} has no commits yet")]
    NoCommits {
        /// The repository.
        repo: PathBuf,
    },
    /// git could not be started.
    #[error("cannot run git: {0}")]
    Git(#[source] io::Error),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WorkDirError + 'a {
    move |source| WorkDirError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The folder of the snapshot of `repo` at the full commit id `commit` after `setup`, under
/// the repository's work folder `root`: the same inputs always give the same folder, and any
/// other repository, commit or set-up another folder.
pub fn snapshot_dir(root: &Path, repo: &Path, commit: &str, setup: Option<&str>) -> PathBuf {
    let short: String = commit
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let key = format!(
        "{}\0{commit}\0{}",
        repo.display(),
        setup.unwrap_or_default()
    );
    let key = trajforge_hash::fnv1a64(key.as_bytes());
    root.join(SNAPSHOTS).join(format!("{short}-{key:016x}"))
}

/// The full commit id `rev` names in `repo`.
pub fn resolve_commit(repo: &Path, rev: &str) -> Result<String, WorkDirError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(WorkDirError::Git)?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if (!out.status.success() || id.is_empty()) && !has_commits(repo)? {
        return Err(WorkDirError::NoCommits {
            repo: repo.to_path_buf(),
        });
    }
    if !out.status.success() || id.is_empty() {
        return Err(WorkDirError::UnknownCommit {
            repo: repo.to_path_buf(),
            rev: rev.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(id)
}

/// Whether `repo` has any commit (an unborn HEAD has none).
fn has_commits(repo: &Path) -> Result<bool, WorkDirError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-list", "-n", "1", "--all"])
        .stdin(Stdio::null())
        .output()
        .map_err(WorkDirError::Git)?;
    Ok(out.status.success() && !out.stdout.trim_ascii().is_empty())
}

/// Prepares (or reuses) the snapshot of `repo` at `rev` after `setup` in its own folder
/// under `root`, marks it in use by this process, and reclaims the workspaces that dead
/// processes left under `root`. `options.work_dir` and `options.commit` are replaced.
pub fn prepare(
    root: &Path,
    repo: &Path,
    rev: &str,
    setup: Option<&str>,
    options: &EnvironmentOptions,
) -> Result<Environment, WorkDirError> {
    let repo = fs::canonicalize(repo).map_err(io_err("resolve repository", repo))?;
    let commit = resolve_commit(&repo, rev)?;
    make_dir(root)?;
    make_dir(&root.join(SNAPSHOTS))?;
    let dir = snapshot_dir(root, &repo, &commit, setup);
    let mut options = options.clone();
    options.work_dir = dir.clone();
    options.commit = Some(commit);
    let environment = {
        let _preparing = lock_prepare(&dir)?;
        let environment = Environment::prepare(&repo, setup, &options)?;
        acquire_lease(&dir)?;
        environment
    };
    reclaim(root);
    Ok(environment)
}

/// Ends this process's use of the snapshot folder `dir` (one call per [`prepare`] that the
/// caller wants to undo) and removes the snapshot when no process uses it any more.
/// Returns whether it was removed.
pub fn release_and_remove(dir: &Path) -> Result<bool, WorkDirError> {
    let ended = {
        let mut leases = leases();
        match leases.get_mut(dir) {
            Some(lease) if lease.count > 1 => {
                lease.count -= 1;
                false
            }
            Some(_) => leases.remove(dir).is_some(),
            None => false,
        }
    };
    let mut removed = remove_unused(dir)?;
    // Our last use just ended, yet a child one of our threads is starting holds a copy of
    // the lock's descriptor until it execs: a few short retries tell that apart from another
    // process's use (which keeps the folder, after at most a second's wait).
    let mut tries = if ended { 50 } else { 0 };
    while !removed && tries > 0 && dir.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        removed = remove_unused(dir)?;
        tries -= 1;
    }
    Ok(removed)
}

/// Removes the snapshot folder `dir` unless a process (this one included) uses it or is
/// preparing it. Returns whether it was removed.
pub fn remove_unused(dir: &Path) -> Result<bool, WorkDirError> {
    if !dir.exists() {
        return Ok(false);
    }
    let preparing = lock_prepare(dir)?;
    let use_path = dir.join(USE_LOCK);
    let use_lock = open_lock(&use_path)?;
    match use_lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(io_err("lock", &use_path)(e)),
    }
    remove_tree(dir).map_err(io_err("remove", dir))?;
    drop(use_lock);
    drop(preparing);
    // The folder of snapshots goes with its last one (a run preparing one makes it again).
    if let Some(parent) = dir.parent() {
        let _ = fs::remove_dir(parent);
    }
    Ok(true)
}

/// This process's use of one snapshot folder.
#[derive(Debug)]
struct Lease {
    /// `users/<pid>.lock`, held exclusively.
    _alive: File,
    /// `use.lock`, held shared.
    _using: File,
    /// Uses not released yet.
    count: usize,
}

/// This process's leases by snapshot folder.
fn leases() -> MutexGuard<'static, BTreeMap<PathBuf, Lease>> {
    static LEASES: Mutex<BTreeMap<PathBuf, Lease>> = Mutex::new(BTreeMap::new());
    LEASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marks `dir` as used by this process (kept until released or the process exits).
fn acquire_lease(dir: &Path) -> Result<(), WorkDirError> {
    let mut leases = leases();
    if let Some(lease) = leases.get_mut(dir) {
        lease.count += 1;
        return Ok(());
    }
    let users = dir.join(USERS);
    make_dir(&users)?;
    let alive_path = users.join(format!("{}.lock", std::process::id()));
    let alive = open_lock(&alive_path)?;
    alive.lock().map_err(io_err("lock", &alive_path))?;
    let use_path = dir.join(USE_LOCK);
    let using = open_lock(&use_path)?;
    using.lock_shared().map_err(io_err("lock", &use_path))?;
    leases.insert(
        dir.to_path_buf(),
        Lease {
            _alive: alive,
            _using: using,
            count: 1,
        },
    );
    Ok(())
}

/// Takes `dir/prepare.lock` exclusively, creating `dir`; the lock is released when the file
/// is dropped. A lock file removed (with its folder) while waiting is taken again.
fn lock_prepare(dir: &Path) -> Result<File, WorkDirError> {
    let path = dir.join(PREPARE_LOCK);
    loop {
        make_dir(dir)?;
        let file = open_lock(&path)?;
        file.lock().map_err(io_err("lock", &path))?;
        let held = file.metadata().map_err(io_err("stat", &path))?;
        match fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(file),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &path)(e)),
        }
    }
}

fn open_lock(path: &Path) -> Result<File, WorkDirError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// Creates a folder the sandbox's unprivileged user can traverse.
fn make_dir(dir: &Path) -> Result<(), WorkDirError> {
    if dir.is_dir() {
        return Ok(());
    }
    match fs::create_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err("create", dir)(e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err("set permissions of", dir))
}

/// Removes the workspaces of dead processes under every snapshot folder of `root` (and the
/// older single-snapshot layout's `episodes/`). Best effort: what cannot be removed now is
/// tried again on the next start. Returns how many were removed.
pub fn reclaim(root: &Path) -> usize {
    let mut removed = 0;
    let mut folders = vec![root.to_path_buf()];
    if let Ok(entries) = fs::read_dir(root.join(SNAPSHOTS)) {
        folders.extend(entries.flatten().map(|e| e.path()));
    }
    for dir in folders {
        let Ok(entries) = fs::read_dir(dir.join(EPISODES)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = workspace_pid(&name.to_string_lossy()) else {
                continue;
            };
            if !is_alive(&dir, pid) && remove_tree(&entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The process id in a workspace name `ws-<pid>-<n>`.
fn workspace_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("ws-")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` may still use workspaces of the snapshot folder `dir`: it holds
/// its liveness lock there, or (without a lock file: an older trajforge) it exists.
fn is_alive(dir: &Path, pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let path = dir.join(USERS).join(format!("{pid}.lock"));
    match OpenOptions::new().write(true).open(&path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => {
                let _ = fs::remove_file(&path);
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => true,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Path::new(&format!("/proc/{pid}")).exists()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_repository_commit_and_setup_has_its_own_folder() {
        let (w, r) = (Path::new("/w"), Path::new("/repo"));
        let a = snapshot_dir(w, r, "0123456789abcdef", None);
        assert!(
            a.display()
                .to_string()
                .starts_with("/w/snapshots/0123456789ab-"),
            "{}",
            a.display()
        );
        assert_eq!(a, snapshot_dir(w, r, "0123456789abcdef", None));
        assert_ne!(a, snapshot_dir(w, r, "0123456789abcdee", None));
        assert_ne!(
            a,
            snapshot_dir(w, r, "0123456789abcdef", Some("pip install"))
        );
        assert_ne!(
            a,
            snapshot_dir(w, Path::new("/other"), "0123456789abcdef", None)
        );
        // Revision names with slashes stay one folder deep.
        let b = snapshot_dir(w, r, "origin/main~3", None);
        assert_eq!(b.parent(), Some(Path::new("/w/snapshots")));
    }

    #[test]
    fn workspace_names_give_their_process() {
        assert_eq!(workspace_pid("ws-1234-0"), Some(1234));
        assert_eq!(workspace_pid("ws-1234-x"), None);
        assert_eq!(workspace_pid("base"), None);
    }

    #[test]
    fn a_dead_process_is_told_from_a_live_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        // Without a lock file, the process table decides.
        assert!(is_alive(dir, std::process::id()));
        let mut child = Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!is_alive(dir, pid));
        // A lock file nobody holds is a dead process's, even if the pid exists again.
        make_dir(&dir.join(USERS)).expect("users");
        let parent = std::os::unix::process::parent_id();
        File::create(dir.join(USERS).join(format!("{parent}.lock"))).expect("lock file");
        assert!(!is_alive(dir, parent));
    }
}
