//! Starting bubblewrap with the namespace plan, and reading its output with deadlines.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Backend, Limits, SandboxConfig, base_env};
use crate::error::{Result, SandboxError};
use crate::proctree;
use crate::sys::{self, NsPlan, Rlimits};

/// What is mounted read-write at the workspace path.
#[derive(Debug, Clone)]
pub(crate) enum Root {
    /// An overlay of `upper` (with its `work` dir) over the read-only `lower`, mounted at `merged`.
    Overlay {
        /// Read-only base snapshot.
        lower: PathBuf,
        /// Per-episode writable layer.
        upper: PathBuf,
        /// Overlayfs scratch directory next to `upper`.
        work: PathBuf,
        /// Empty directory the overlay is mounted on.
        merged: PathBuf,
    },
    /// A plain read-write bind (environment set-up writes the base itself).
    Bind(PathBuf),
}

/// Everything needed to start one sandbox process.
pub(crate) struct Spec<'a> {
    /// Sandbox settings.
    pub config: &'a SandboxConfig,
    /// The sandbox program: bubblewrap, or the container engine's command-line interface.
    pub program: &'a Path,
    /// Limits for this sandbox.
    pub limits: &'a Limits,
    /// The workspace.
    pub root: Root,
    /// Whether the network stays reachable (environment set-up only).
    pub network: bool,
    /// Program and arguments run inside.
    pub argv: Vec<String>,
    /// Whether we keep a pipe to its standard input.
    pub stdin: bool,
    /// Extra read-only binds (host path, path inside), mounted after the workspace.
    pub extra_ro: Vec<(PathBuf, PathBuf)>,
}

/// The argv of a bash that reads no start-up files (so nothing of the image's or the
/// repository's dotfiles runs): running `script` with `-c`, or commands from standard input.
pub(crate) fn bash(script: Option<String>) -> Vec<String> {
    let mut argv = vec!["bash".into(), "--noprofile".into(), "--norc".into()];
    if let Some(script) = script {
        argv.push("-c".into());
        argv.push(script);
    }
    argv
}

/// A started sandbox: the bubblewrap process and our ends of its pipes.
pub(crate) struct Sandbox {
    /// The outer bubblewrap process (for a container, the engine's attached `run` client).
    pub child: Child,
    /// The container, when the backend is a container engine.
    pub container: Option<crate::container::Container>,
    /// Its standard input, when requested.
    pub stdin: Option<ChildStdin>,
    /// Standard output and error, merged, non-blocking.
    pub out: io::PipeReader,
}

/// Host paths of system directories bound read-only (or recreated as symlinks).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// The /etc entries shown with `minimal_etc`: users and groups, name resolution, TLS
/// certificates, the dynamic linker, Debian's alternatives (awk, java, ...), the time zone,
/// and the system-wide configuration of the toolchains an episode runs (git, pip, npm, Java,
/// Maven, Perl, fonts, XML catalogs). Secrets (shadow, ssh, ssl/private, sudoers), machine
/// identity and daemon configuration stay out.
const ETC_ENTRIES: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "networks",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "mime.types",
    "magic",
    "magic.mime",
    "os-release",
    "debian_version",
    "locale.alias",
    "inputrc",
    "terminfo",
    "shells",
    "gitconfig",
    "pip.conf",
    "npmrc",
    "wgetrc",
    "maven",
    "perl",
    "fonts",
    "xml",
    "sgml",
    "vim",
];
/// Prefixes of /etc entries shown with `minimal_etc` (versioned directories).
const ETC_PREFIXES: &[&str] = &["python3", "java-"];
/// Files hidden behind /dev/null when the whole /etc is visible.
const MASKED_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/sudoers",
];
/// Directories hidden behind an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d"];

/// Finds the sandbox program of the configured backend.
pub(crate) fn find_program(config: &SandboxConfig) -> Result<PathBuf> {
    match &config.backend {
        Backend::Bubblewrap => find_bwrap(config),
        Backend::Container { engine, image } => {
            let program = crate::container::find_engine(*engine)?;
            crate::container::check_image(&program, *engine, image)?;
            Ok(program)
        }
    }
}

/// Finds the bubblewrap binary.
fn find_bwrap(config: &SandboxConfig) -> Result<PathBuf> {
    if let Some(path) = &config.bwrap {
        if path.is_file() {
            return Ok(path.clone());
        }
        return Err(SandboxError::BwrapMissing {
            looked: path.display().to_string(),
        });
    }
    let mut candidates: Vec<PathBuf> = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("bwrap")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| SandboxError::BwrapMissing {
            looked: "/usr/bin, /usr/local/bin and PATH".to_owned(),
        })
}

/// Host uid/gid the sandbox runs as: the sandbox uid when we are root, else ourselves.
pub(crate) fn host_identity(config: &SandboxConfig) -> (u32, u32, bool) {
    if sys::geteuid() == 0 {
        (config.sandbox_uid, config.sandbox_gid, true)
    } else {
        (sys::geteuid(), sys::getegid(), false)
    }
}

/// A path as a C string, refusing characters overlayfs options cannot carry.
pub(crate) fn overlay_path(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| SandboxError::UnsupportedPath {
        path: path.to_owned(),
    })?;
    if text.contains([',', ':', '\\', '\n']) {
        return Err(SandboxError::UnsupportedPath {
            path: path.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// The /etc paths bound into the sandbox with `minimal_etc`, those present on this host.
fn etc_paths() -> Vec<PathBuf> {
    let etc = Path::new("/etc");
    let mut paths: Vec<PathBuf> = ETC_ENTRIES.iter().map(|e| etc.join(e)).collect();
    if let Ok(entries) = std::fs::read_dir(etc) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ETC_PREFIXES.iter().any(|p| name.starts_with(p)) {
                paths.push(entry.path());
            }
        }
    }
    paths.sort();
    paths.retain(|p| p.symlink_metadata().is_ok());
    paths
}

/// Bubblewrap options for `spec` (the command follows them); `seccomp_fd` is the descriptor
/// holding the filter.
fn bwrap_args(
    spec: &Spec<'_>,
    bind_source: &Path,
    seccomp_fd: Option<i32>,
    landlock_helper: Option<&Path>,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| std::ffi::OsString::from(*s)));
    push(&[
        "--unshare-user",
        "--uid",
        "0",
        "--gid",
        "0",
        "--disable-userns",
    ]);
    push(&[
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if !spec.network {
        push(&["--unshare-net"]);
    }
    push(&[
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]);
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    a.push("--symlink".into());
                    a.push(target.into_os_string());
                    a.push((*dir).into());
                }
            }
            Ok(meta) if meta.is_dir() => {
                a.extend(["--ro-bind".into(), (*dir).into(), (*dir).into()]);
            }
            _ => {}
        }
    }
    let prebuilt_etc = spec
        .config
        .minimal_etc
        .then(|| crate::etc::prebuilt(etc_paths))
        .flatten();
    if let Some(dir) = prebuilt_etc {
        a.extend(["--ro-bind".into(), dir.into_os_string(), "/etc".into()]);
    } else if spec.config.minimal_etc {
        // No prebuilt folder (the temporary folder is unusable): one bind per entry.
        for path in etc_paths() {
            match std::fs::read_link(&path) {
                // Relative links (mtab, localtime on some hosts) stay links; the rest is
                // bound, which follows absolute links into /usr or /run.
                Ok(target) if target.is_relative() => {
                    a.push("--symlink".into());
                    a.push(target.into_os_string());
                    a.push(path.into_os_string());
                }
                _ => a.extend([
                    "--ro-bind-try".into(),
                    path.clone().into_os_string(),
                    path.into_os_string(),
                ]),
            }
        }
    } else {
        a.extend(["--ro-bind".into(), "/etc".into(), "/etc".into()]);
        for file in MASKED_FILES {
            if Path::new(file).exists() {
                a.extend(["--ro-bind".into(), "/dev/null".into(), (*file).into()]);
            }
        }
        for dir in MASKED_DIRS {
            if Path::new(dir).is_dir() {
                a.extend([
                    "--size".into(),
                    "4096".into(),
                    "--tmpfs".into(),
                    (*dir).into(),
                ]);
                a.extend(["--remount-ro".into(), (*dir).into()]);
            }
        }
    }
    if let Some(fd) = seccomp_fd {
        a.extend(["--seccomp".into(), fd.to_string().into()]);
    }
    for extra in &spec.config.ro_binds {
        a.extend([
            "--ro-bind".into(),
            extra.clone().into_os_string(),
            extra.clone().into_os_string(),
        ]);
    }
    let tmp_size = spec.limits.tmp_size.to_string();
    a.extend([
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
    ]);
    a.extend([
        "--size".into(),
        tmp_size.clone().into(),
        "--tmpfs".into(),
        "/dev/shm".into(),
    ]);
    a.extend([
        "--size".into(),
        tmp_size.into(),
        "--tmpfs".into(),
        "/tmp".into(),
    ]);
    a.extend([
        "--dir".into(),
        "/tmp/home".into(),
        "--symlink".into(),
        "/tmp/home".into(),
        "/root".into(),
    ]);
    let inside = spec.config.workspace_dir.clone().into_os_string();
    a.extend([
        "--bind".into(),
        bind_source.as_os_str().to_owned(),
        inside.clone(),
    ]);
    for (host, inside) in &spec.extra_ro {
        a.extend([
            "--ro-bind".into(),
            host.clone().into_os_string(),
            inside.clone().into_os_string(),
        ]);
    }
    if let Some(helper) = landlock_helper {
        a.extend([
            "--ro-bind".into(),
            helper.as_os_str().to_owned(),
            crate::landlock::HELPER_INSIDE.into(),
        ]);
    }
    a.extend(["--remount-ro".into(), "/".into(), "--chdir".into(), inside]);
    a
}

/// Starts the sandbox described by `spec`.
pub(crate) fn start(spec: &Spec<'_>) -> Result<Sandbox> {
    if let Backend::Container { engine, image } = &spec.config.backend {
        return crate::container::start(spec, *engine, image);
    }
    // `volatile` (Linux 5.10+) skips the sync of the whole upper file system each time a
    // sandbox's overlay goes away, which costs seconds under I/O load. Workspaces are
    // disposable, so durability across a host crash does not matter.
    static VOLATILE_OK: AtomicBool = AtomicBool::new(true);
    let volatile = VOLATILE_OK.load(Ordering::Relaxed) && matches!(spec.root, Root::Overlay { .. });
    match start_once(spec, volatile) {
        Err(SandboxError::Spawn { source, .. })
            if volatile && source.raw_os_error() == Some(libc::EINVAL) =>
        {
            VOLATILE_OK.store(false, Ordering::Relaxed);
            start_once(spec, false)
        }
        other => other,
    }
}

/// Empties an overlay's scratch directory (owned by the sandbox uid when we are root).
pub(crate) fn reset_work_dir(work: &Path, config: &SandboxConfig) -> Result<()> {
    let (uid, gid, drop_root) = host_identity(config);
    crate::workspace::remove_tree(work)
        .map_err(SandboxError::io("reset overlay work directory", work))?;
    std::fs::create_dir(work).map_err(SandboxError::io("create", work))?;
    if drop_root {
        std::os::unix::fs::lchown(work, Some(uid), Some(gid))
            .map_err(SandboxError::io("chown", work))?;
    }
    Ok(())
}

/// Starts the sandbox, with or without a volatile overlay.
fn start_once(spec: &Spec<'_>, volatile: bool) -> Result<Sandbox> {
    let (uid, gid, drop_root) = host_identity(spec.config);
    if let (Root::Overlay { work, .. }, true) = (&spec.root, volatile) {
        // A volatile overlay leaves `work/work/incompat/volatile` behind and refuses to mount
        // again while it exists; the work directory holds nothing else of value between
        // mounts, so start from an empty one.
        reset_work_dir(work, spec.config)?;
    }
    let (bind_source, overlay) = match &spec.root {
        Root::Bind(dir) => (dir.clone(), None),
        Root::Overlay {
            lower,
            upper,
            work,
            merged,
        } => {
            let options = format!(
                "lowerdir={},upperdir={},workdir={},userxattr{}",
                overlay_path(lower)?,
                overlay_path(upper)?,
                overlay_path(work)?,
                if volatile { ",volatile" } else { "" }
            );
            let target = CString::new(merged.as_os_str().as_bytes()).map_err(|_| {
                SandboxError::UnsupportedPath {
                    path: merged.clone(),
                }
            })?;
            let options = CString::new(options).map_err(|_| SandboxError::UnsupportedPath {
                path: upper.clone(),
            })?;
            (merged.clone(), Some((target, options)))
        }
    };
    let limits = Rlimits {
        nproc: spec.limits.max_processes,
        address_space: spec.limits.memory_bytes,
        file_size: spec.limits.max_file_size,
        open_files: spec.limits.max_open_files,
    };
    let seccomp = if spec.config.seccomp {
        Some(seccomp_memfd()?)
    } else {
        None
    };
    let seccomp_fd = seccomp.as_ref().map(AsRawFd::as_raw_fd);
    // Without Landlock in the kernel or a helper, commands run without it
    // (`SandboxConfig::landlock_status` says why).
    let landlock = spec
        .config
        .landlock
        .then(|| crate::landlock::helper(spec.config.landlock_helper.as_deref()).ok())
        .flatten()
        .map(|(helper, _)| helper);
    let argv = match &landlock {
        Some(_) => {
            let workspace = spec.config.workspace_dir.as_path();
            crate::landlock::wrap(
                &spec.argv,
                &[workspace, Path::new("/tmp"), Path::new("/dev/shm")],
            )
        }
        None => spec.argv.clone(),
    };
    // The arguments go through a descriptor (`--args`), so the sandbox's pid 1 shows no host
    // paths or settings in /proc/1/cmdline.
    let mut arg_bytes = Vec::new();
    for arg in bwrap_args(spec, &bind_source, seccomp_fd, landlock.as_deref()) {
        arg_bytes.extend_from_slice(arg.as_bytes());
        arg_bytes.push(0);
    }
    let args_file = sys::memfd_with(c"trajforge-bwrap-args", &arg_bytes).map_err(|source| {
        SandboxError::Pipe {
            action: "writing the sandbox arguments",
            source,
        }
    })?;
    let plan = NsPlan::new(
        uid,
        gid,
        overlay,
        limits,
        [seccomp_fd, Some(args_file.as_raw_fd())],
    );

    let mut cmd = Command::new(spec.program);
    // bubblewrap takes the command itself from its real argument list only.
    cmd.arg("--args").arg(args_file.as_raw_fd().to_string());
    cmd.arg("--").args(&argv);
    cmd.env_clear();
    cmd.envs(base_env());
    cmd.envs(
        spec.config
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    cmd.current_dir("/");
    if drop_root {
        cmd.uid(uid).gid(gid);
    }
    // SAFETY: `NsPlan::apply` only issues system calls on data prepared before the fork
    // (no allocation, no locks), which is what `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || plan.apply());
    }
    let program = format!(
        "{} (user/mount namespace, overlay, rlimits)",
        spec.program.display()
    );
    launch_piped(cmd, spec.stdin, program)
}

/// Starts `cmd` with its standard output and error on one non-blocking pipe (and its
/// standard input on another when `stdin` is set); `program` names it in errors.
pub(crate) fn launch_piped(mut cmd: Command, stdin: bool, program: String) -> Result<Sandbox> {
    let (reader, writer) = io::pipe().map_err(|source| SandboxError::Pipe {
        action: "creating the output pipe",
        source,
    })?;
    let writer2 = writer.try_clone().map_err(|source| SandboxError::Pipe {
        action: "duplicating the output pipe",
        source,
    })?;
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(writer);
    cmd.stderr(writer2);
    let mut child = launch(cmd).map_err(|source| SandboxError::Spawn { program, source })?;
    sys::set_nonblocking(reader.as_raw_fd()).map_err(|source| SandboxError::Pipe {
        action: "setting the output pipe non-blocking",
        source,
    })?;
    let stdin = child.stdin.take();
    Ok(Sandbox {
        child,
        container: None,
        stdin,
        out: reader,
    })
}

/// The seccomp program in a fresh in-memory file for bubblewrap to read.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn seccomp_memfd() -> Result<std::os::fd::OwnedFd> {
    static PROGRAM: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let program = PROGRAM
        .get_or_init(crate::seccomp::program)
        .as_deref()
        .ok_or_else(|| SandboxError::Seccomp {
            detail: "a jump of the filter program cannot be encoded",
            source: io::Error::from(io::ErrorKind::InvalidData),
        })?;
    sys::memfd_with(c"trajforge-seccomp", program).map_err(|source| SandboxError::Seccomp {
        detail: "writing it to an in-memory file",
        source,
    })
}

/// No filter is written for this architecture; refuse rather than run unfiltered.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn seccomp_memfd() -> Result<std::os::fd::OwnedFd> {
    Err(SandboxError::Seccomp {
        detail: "no filter for this architecture; set `seccomp` off to run without one",
        source: io::Error::from(io::ErrorKind::Unsupported),
    })
}

/// A spawn request for the launcher thread.
type Job = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from one long-lived thread.
///
/// bubblewrap's `--die-with-parent` uses PR_SET_PDEATHSIG, which fires when the *thread* that
/// forked the process exits; spawning from a thread that never exits keeps sandboxes alive
/// when the caller's thread (for instance a tokio blocking worker) goes away.
fn launch(cmd: Command) -> io::Result<Child> {
    static LAUNCHER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = thread::Builder::new()
            .name("trajforge-sandbox-launcher".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        spawned.ok().map(|_| tx)
    });
    let Some(sender) = sender else {
        let mut cmd = cmd;
        return cmd.spawn();
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("sandbox launcher thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("sandbox launcher thread is gone"))?
}

/// Outcome of reading until a condition, a deadline or end of file.
pub(crate) enum ReadEnd {
    /// The consumer said it has what it needs.
    Done,
    /// The writing side closed.
    Eof,
    /// The deadline passed.
    Deadline,
}

/// Reads from `out`, handing chunks to `consume` until it returns true, EOF or `deadline`.
pub(crate) fn read_until(
    out: &mut io::PipeReader,
    deadline: Instant,
    mut consume: impl FnMut(&[u8]) -> bool,
) -> Result<ReadEnd> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match out.read(&mut buf) {
            Ok(0) => return Ok(ReadEnd::Eof),
            Ok(n) => {
                if consume(&buf[..n]) {
                    return Ok(ReadEnd::Done);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SandboxError::Pipe {
                    action: "reading sandbox output",
                    source,
                });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(ReadEnd::Deadline);
        }
        sys::poll_readable(out.as_raw_fd(), deadline - now).map_err(|source| {
            SandboxError::Pipe {
                action: "waiting for sandbox output",
                source,
            }
        })?;
    }
}

/// Kills the whole sandbox (bubblewrap and everything below it, or the container) and reaps it.
pub(crate) fn kill_sandbox(sandbox: &mut Sandbox) -> Option<ExitStatus> {
    if let Some(container) = &sandbox.container {
        return container.kill(&mut sandbox.child);
    }
    let child = &mut sandbox.child;
    let root = child.id();
    let below = proctree::descendants(root);
    // Kill the sandbox's processes first (the pid namespace dies with its init) so the outer
    // bubblewrap reaps them and exits on its own, instead of leaving zombies to the host init.
    for pid in &below {
        sys::kill(*pid, libc::SIGKILL);
    }
    let until = Instant::now() + Duration::from_millis(200);
    while !below.is_empty() && Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
        thread::sleep(Duration::from_millis(1));
    }
    sys::kill(root, libc::SIGKILL);
    let status = child.wait().ok();
    // Wait until every process is gone, so the overlay is unmounted before it is reused.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && below.iter().any(|p| proctree::is_alive(*p)) {
        thread::sleep(Duration::from_millis(2));
    }
    status
}

/// Exit code of a finished process: its code, or 128 + the signal that killed it.
pub(crate) fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}
