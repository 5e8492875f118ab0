//! Landlock inside the sandbox: writes only beneath the workspace, /tmp, /dev/shm and a few
//! device files, whatever else a mount table or a missed bind would allow.
//!
//! Landlock must be applied after bubblewrap has built the mount table (a Landlock-restricted
//! process cannot mount), so a helper does it inside the sandbox: bubblewrap runs
//! `HELPER [HELPER_ARG] WRITABLE... -- COMMAND...`, the helper restricts itself and executes
//! the command, which inherits the restriction. The helper is a program that calls
//! [`run_helper_if_asked`] first thing in `main` (the `trajforge` binary does, and so does
//! this crate's `trajforge-landlock`). Without Landlock in the kernel, or without a helper,
//! commands run without it and [`status`] says why.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::sys::{self, LandlockPathBeneath, LandlockRulesetAttr};

/// The argument that puts a helper binary in helper mode.
pub const HELPER_ARG: &str = "__trajforge-landlock";

/// Where the helper is bound inside the sandbox.
pub(crate) const HELPER_INSIDE: &str = "/.trajforge-landlock";

/// Filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const TRUNCATE: u64 = 1 << 14;
/// Everything of ABI 1 (bits 0-12), plus REFER (ABI 2) and TRUNCATE (ABI 3).
const ABI1_ALL: u64 = (1 << 13) - 1;
const REFER: u64 = 1 << 13;
/// `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL` (ABI 6).
const SCOPES: u64 = 0b11;

/// Device files a command may write (the rest of /dev is read-only to it).
const WRITABLE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// Whether sandboxed commands run under Landlock, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Applied, with this kernel ABI.
    Applied(u32),
    /// Not applied: the reason.
    Unavailable(String),
}

/// The helper program registered by [`run_helper_if_asked`] (the running binary).
static SELF_HELPER: OnceLock<PathBuf> = OnceLock::new();

/// In a helper process (`argv[1]` is [`HELPER_ARG`]), applies Landlock and executes the
/// command, never returning; otherwise registers the running binary as the helper for the
/// sandboxes this process starts.
pub fn run_helper_if_asked() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == HELPER_ARG) {
        helper_main(&args[2..]);
    }
    if let Ok(exe) = std::env::current_exe() {
        let _ = SELF_HELPER.set(exe);
    }
}

/// The Landlock ABI of this kernel, or why there is none.
fn kernel_abi() -> Result<u32, String> {
    static ABI: OnceLock<Result<u32, String>> = OnceLock::new();
    ABI.get_or_init(|| match sys::landlock_abi() {
        Ok(abi) => Ok(abi),
        Err(e) => Err(format!("the kernel offers no Landlock ({e})")),
    })
    .clone()
}

/// The helper to bind for `configured` (a config's choice, else the registered one), and
/// whether Landlock can be applied at all.
pub(crate) fn helper(configured: Option<&Path>) -> Result<(PathBuf, u32), String> {
    let abi = kernel_abi()?;
    let helper = configured
        .map(Path::to_path_buf)
        .or_else(|| SELF_HELPER.get().cloned())
        .ok_or("no Landlock helper: the program did not call trajforge_sandbox::landlock::run_helper_if_asked")?;
    Ok((helper, abi))
}

/// Whether commands of sandboxes started with this helper setting run under Landlock.
pub fn status(configured: Option<&Path>) -> Status {
    match helper(configured) {
        Ok((_, abi)) => Status::Applied(abi),
        Err(reason) => Status::Unavailable(reason),
    }
}

/// The argv that runs `argv` under Landlock with `writable` directories.
pub(crate) fn wrap(argv: &[String], writable: &[&Path]) -> Vec<String> {
    let mut out = vec![HELPER_INSIDE.to_owned(), HELPER_ARG.to_owned()];
    out.extend(writable.iter().map(|p| p.display().to_string()));
    out.push("--".to_owned());
    out.extend(argv.iter().cloned());
    out
}

/// `WRITABLE... -- COMMAND...`: restricts this process, then executes COMMAND.
fn helper_main(args: &[OsString]) -> ! {
    let split = args.iter().position(|a| a == "--");
    let (writable, command) = match split {
        Some(i) if i + 1 < args.len() => (&args[..i], &args[i + 1..]),
        _ => fail("usage: HELPER __trajforge-landlock WRITABLE... -- COMMAND..."),
    };
    if let Err(e) = restrict(writable) {
        fail(&format!("cannot apply Landlock: {e}"));
    }
    let e = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    // The shell's convention for a command that cannot be run; this process is the sandboxed
    // command, so its stderr is the command's output.
    let _ = writeln!(
        std::io::stderr(),
        "{}: {e}",
        Path::new(&command[0]).display()
    );
    std::process::exit(if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    });
}

fn fail(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "trajforge sandbox: {message}");
    std::process::exit(126)
}

/// Reads and executes anywhere visible; writes beneath `writable` and to the device files.
fn restrict(writable: &[OsString]) -> std::io::Result<()> {
    let abi = sys::landlock_abi()?;
    let mut handled = ABI1_ALL;
    if abi >= 2 {
        handled |= REFER;
    }
    if abi >= 3 {
        handled |= TRUNCATE;
    }
    let attr = LandlockRulesetAttr {
        handled_access_fs: handled,
        handled_access_net: 0,
        scoped: if abi >= 6 { SCOPES } else { 0 },
    };
    // ABI 1-3 know the first field, 4-5 the first two, 6 and later all three.
    let size = match abi {
        0..=3 => 8,
        4 | 5 => 16,
        _ => 24,
    };
    let ruleset = sys::landlock_create_ruleset(&attr, size)?;
    let rule = |path: &Path, allowed: u64| -> std::io::Result<()> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)?;
        sys::landlock_add_rule(
            ruleset.as_raw_fd(),
            &LandlockPathBeneath {
                allowed_access: allowed & handled,
                parent_fd: dir.as_raw_fd(),
            },
        )
    };
    rule(Path::new("/"), EXECUTE | READ_FILE | READ_DIR)?;
    for dir in writable {
        rule(Path::new(dir), handled)?;
    }
    for device in WRITABLE_DEVICES {
        let path = Path::new(device);
        let rights = if path.is_dir() {
            handled
        } else {
            WRITE_FILE | READ_FILE | TRUNCATE
        };
        if path.exists() {
            rule(path, rights)?;
        }
    }
    sys::landlock_restrict_self(ruleset.as_raw_fd())
}
