//! Per-episode copy-on-write workspaces and one-shot sandboxed commands.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::env::EnvInner;
use crate::error::{Result, SandboxError};
use crate::output::{Capture, CommandOutput};
use crate::session::Session;
use crate::spawn::{self, ReadEnd, Root};

/// Largest patch `diff` accepts.
pub(crate) const MAX_DIFF_BYTES: usize = 256 << 20;

/// Where the base snapshot's read-only `.git` appears while the patch is computed.
const BASE_GIT_INSIDE: &str = "/tmp/.trajforge-base-git";
/// Where the episode's overlay upper directory appears (read-only) while the patch is computed.
const UPPER_INSIDE: &str = "/tmp/.trajforge-upper";

/// The script computing the patch inside a fresh sandbox (`git add -A; git diff --cached`).
///
/// Nothing the episode wrote decides what the patch says: git runs on a private git
/// directory in /tmp whose HEAD, objects, index, shallow list and excludes come from the
/// base snapshot's read-only `.git` (bound at [`BASE_GIT_INSIDE`]), and
/// whose configuration is ours alone (no system or global file), so `.git/config` filters,
/// a moved HEAD or a doctored index in the workspace change nothing. Its `info/attributes`
/// (the highest-priority attributes file) unsets `filter`, `diff`, `text`, `eol`, `ident`
/// and `working-tree-encoding`, so a `.gitattributes` written by the episode cannot rewrite
/// or hide content either. Every path the overlay's upper layer holds (bound read-only at
/// [`UPPER_INSIDE`]: exactly what the episode created, changed or deleted) is dropped from
/// the index copy first, so git hashes it again whatever its time stamps say: neither an
/// edit within the second of the snapshot nor a restored mtime can hide a change. The other
/// files are compared by size and mtime (`core.checkStat=minimal`, as inode and device
/// numbers seen through the overlay differ from the snapshot's) and are the base's own.
pub(crate) fn diff_script(workspace_dir: &Path) -> String {
    format!(
        r#"cd "{ws}" || exit 90
export GIT_DIR=/tmp/.trajforge-git GIT_WORK_TREE="{ws}" GIT_INDEX_FILE=/tmp/.trajforge-git/index
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
B={base}
rm -rf "$GIT_DIR" && mkdir -p "$GIT_DIR/info" "$GIT_DIR/objects/info" "$GIT_DIR/refs" || exit 90
echo "$B/objects" > "$GIT_DIR/objects/info/alternates"
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n' > "$GIT_DIR/config"
printf '* !filter !diff !text !eol !ident !working-tree-encoding\n' > "$GIT_DIR/info/attributes"
for f in HEAD shallow info/exclude; do [ ! -f "$B/$f" ] || cp "$B/$f" "$GIT_DIR/$f" || exit 90; done
[ ! -f "$B/index" ] || cp -p "$B/index" "$GIT_INDEX_FILE" || exit 90
G="git -c core.checkStat=minimal -c core.trustctime=false --literal-pathspecs"
(cd {upper} && find . -path ./.git -prune -o ! -type d -printf '%P\0') > /tmp/.trajforge-touched || exit 93
[ ! -s /tmp/.trajforge-touched ] || $G rm -q -r --cached --ignore-unmatch --pathspec-from-file=/tmp/.trajforge-touched --pathspec-file-nul >/tmp/.trajforge-diff-err 2>&1 || {{ cat /tmp/.trajforge-diff-err; exit 93; }}
$G add -A >/tmp/.trajforge-diff-err 2>&1 || {{ cat /tmp/.trajforge-diff-err; exit 91; }}
$G diff --cached --no-color --no-ext-diff --no-textconv 2>/tmp/.trajforge-diff-err || {{ cat /tmp/.trajforge-diff-err; exit 92; }}"#,
        ws = workspace_dir.display(),
        base = BASE_GIT_INSIDE,
        upper = UPPER_INSIDE,
    )
}

/// One episode's writable view of the base snapshot.
///
/// On disk it is an overlay upper directory (plus overlayfs' work directory and an empty
/// mount point); the overlay itself only exists inside sandboxes. Dropping the last handle
/// (workspace or session) deletes these directories.
#[derive(Debug, Clone)]
pub struct Workspace {
    inner: Arc<WsInner>,
}

/// Shared state of a workspace.
#[derive(Debug)]
pub(crate) struct WsInner {
    /// The environment it belongs to.
    pub env: Arc<EnvInner>,
    /// Episode directory.
    pub dir: PathBuf,
    /// Set while a session or command has the overlay mounted.
    busy: AtomicBool,
}

/// Marks a workspace as in use until dropped.
#[derive(Debug)]
pub(crate) struct BusyGuard(Arc<WsInner>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl WsInner {
    /// Claims the workspace: an overlay must never be mounted twice at once.
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<BusyGuard> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(SandboxError::WorkspaceBusy {
                path: self.dir.clone(),
            });
        }
        Ok(BusyGuard(self.clone()))
    }

    /// The overlay root for a sandbox.
    pub(crate) fn root(&self) -> Root {
        Root::Overlay {
            lower: self.env.base.clone(),
            upper: self.dir.join("upper"),
            work: self.dir.join("work"),
            merged: self.dir.join("merged"),
        }
    }
}

impl Drop for WsInner {
    fn drop(&mut self) {
        let _ = remove_tree(&self.dir);
    }
}

impl Workspace {
    /// Creates the episode directory `dir` (upper, work and mount point).
    pub(crate) fn create(env: Arc<EnvInner>, dir: PathBuf) -> Result<Self> {
        let (uid, gid, drop_root) = spawn::host_identity(&env.config);
        fs::create_dir(&dir).map_err(SandboxError::io("create workspace", &dir))?;
        let inner = Arc::new(WsInner {
            env,
            dir: dir.clone(),
            busy: AtomicBool::new(false),
        });
        for sub in ["upper", "work", "merged"] {
            let path = dir.join(sub);
            fs::create_dir(&path).map_err(SandboxError::io("create", &path))?;
            if drop_root {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                    .map_err(SandboxError::io("chown", &path))?;
            }
        }
        Ok(Workspace { inner })
    }

    /// The episode directory on the host.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The overlay upper directory: every file the episode created or changed.
    pub fn upper_dir(&self) -> PathBuf {
        self.inner.dir.join("upper")
    }

    /// Starts the persistent shell of this episode (one at a time per workspace).
    pub fn session(&self) -> Result<Session> {
        Session::start(self.inner.clone())
    }

    /// Runs one command in a fresh sandbox over this workspace (`bash -c`); every process it
    /// started is gone when this returns. `timeout` defaults to the configured limit.
    pub fn run(&self, cmd: &str, timeout: Option<Duration>) -> Result<CommandOutput> {
        if cmd.contains('\0') {
            return Err(SandboxError::NulInCommand);
        }
        let _guard = self.inner.acquire()?;
        let env = &self.inner.env;
        let limits = &env.config.limits;
        let spec = spawn::Spec {
            config: &env.config,
            program: &env.program,
            limits,
            root: self.inner.root(),
            network: false,
            argv: spawn::bash(Some(cmd.into())),
            stdin: false,
            extra_ro: Vec::new(),
        };
        run_oneshot(&spec, timeout.unwrap_or(limits.timeout))
    }

    /// The patch of the workspace against the base commit (`git add -A; git diff --cached`:
    /// new files included, binary files marked), computed in a fresh sandbox.
    pub fn diff(&self) -> Result<String> {
        let _guard = self.inner.acquire()?;
        diff_unlocked(&self.inner)
    }
}

/// Computes the patch of `ws` in a fresh sandbox; the caller holds the workspace.
pub(crate) fn diff_unlocked(ws: &WsInner) -> Result<String> {
    let env = &ws.env;
    let limits = crate::config::Limits {
        max_output_bytes: MAX_DIFF_BYTES,
        ..env.config.limits.clone()
    };
    let script = diff_script(&env.config.workspace_dir);
    let spec = spawn::Spec {
        config: &env.config,
        program: &env.program,
        limits: &limits,
        root: ws.root(),
        network: false,
        argv: spawn::bash(Some(script)),
        stdin: false,
        extra_ro: vec![
            (env.base.join(".git"), PathBuf::from(BASE_GIT_INSIDE)),
            (ws.dir.join("upper"), PathBuf::from(UPPER_INSIDE)),
        ],
    };
    let out = run_oneshot(&spec, limits.timeout)?;
    check_diff(&ws.dir, out)
}

/// Turns the diff script's result into the patch or an error.
pub(crate) fn check_diff(dir: &Path, out: CommandOutput) -> Result<String> {
    if out.exit_code != Some(0) || out.timed_out || out.clipped {
        let mut output = out.output;
        if out.clipped {
            output = format!("patch larger than {MAX_DIFF_BYTES} bytes");
        } else if out.timed_out {
            output.push_str("\n(timed out)");
        }
        return Err(SandboxError::DiffFailed {
            path: dir.to_owned(),
            exit_code: out.exit_code,
            output,
        });
    }
    Ok(out.output)
}

/// Runs a sandbox to completion, capturing output; on timeout kills the whole sandbox.
pub(crate) fn run_oneshot(spec: &spawn::Spec<'_>, timeout: Duration) -> Result<CommandOutput> {
    let started = Instant::now();
    let mut sandbox = spawn::start(spec)?;
    let mut capture = Capture::new(spec.limits.max_output_bytes);
    let deadline = started + timeout;
    let end = spawn::read_until(&mut sandbox.out, deadline, |chunk| {
        capture.push(chunk);
        false
    })?;
    let mut timed_out = false;
    let status = match end {
        ReadEnd::Deadline => {
            timed_out = true;
            let status = spawn::kill_sandbox(&mut sandbox);
            // Collect what is still buffered in the pipe.
            let _ = spawn::read_until(
                &mut sandbox.out,
                Instant::now() + Duration::from_millis(200),
                |chunk| {
                    capture.push(chunk);
                    false
                },
            );
            status
        }
        ReadEnd::Eof | ReadEnd::Done => {
            Some(sandbox.child.wait().map_err(|source| SandboxError::Pipe {
                action: "waiting for the sandbox",
                source,
            })?)
        }
    };
    let duration = started.elapsed();
    let (output, clipped) = capture.finish_command(timed_out, timeout);
    Ok(CommandOutput {
        output,
        exit_code: if timed_out {
            None
        } else {
            status.and_then(spawn::exit_code)
        },
        timed_out,
        duration,
        clipped,
        shell_restarted: false,
    })
}

/// Removes a directory tree, first making directories writable and searchable (overlayfs
/// leaves a mode-000 `work/work` directory that an unprivileged owner cannot delete).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_removable(path);
            fs::remove_dir_all(path)
        }
    }
}

/// Gives the owner rwx on every directory below `path`.
fn make_removable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_removable(&entry.path());
        }
    }
}
