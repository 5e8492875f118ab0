//! Thin wrappers around the few libc calls the sandbox needs.
//!
//! Every `unsafe` block in the crate lives here and wraps exactly one system call. The
//! functions used between `fork` and `exec` ([`NsPlan::apply`]) allocate nothing and only
//! issue system calls, so they are async-signal-safe.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a -1 return value into the current `errno`.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Effective uid of this process.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Effective gid of this process.
pub(crate) fn getegid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// The hard limit of `resource` for this process, `None` when unlimited (or unreadable).
pub(crate) fn hard_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    let ret = unsafe { libc::getrlimit(resource, &mut lim) };
    (ret == 0 && lim.rlim_max != libc::RLIM_INFINITY).then_some(lim.rlim_max)
}

/// Puts a file descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    check(flags)?;
    // SAFETY: F_SETFL with an integer argument; no memory is passed.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })
}

/// Waits until `fd` is readable (or hung up) or `timeout` passes; returns whether it is ready.
pub(crate) fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and we pass a count of 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ret == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ret > 0)
}

/// Sends `signal` to the process `pid`; a vanished process is not an error.
pub(crate) fn kill(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill only takes integers; a positive pid never addresses a process group.
    let _ = unsafe { libc::kill(pid, signal) };
}

/// An anonymous in-memory file holding `data`, positioned at its start, closed on exec
/// (the child that needs it clears that flag itself, see [`NsPlan`]).
pub(crate) fn memfd_with(name: &CStr, data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; memfd_create returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    check(fd)?;
    // SAFETY: `fd` was just created by us and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut rest = data;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for `rest.len()` bytes.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        rest = &rest[n as usize..];
    }
    // SAFETY: lseek on our own descriptor with integer arguments.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// Resource limits applied to the sandbox (values in the units of setrlimit).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rlimits {
    /// RLIMIT_NPROC.
    pub nproc: Option<u64>,
    /// RLIMIT_AS in bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_FSIZE in bytes.
    pub file_size: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
}

/// What the forked child does before it executes bubblewrap.
///
/// The child (already switched to the sandbox uid by `std::process::Command::uid` when the
/// caller is root) creates a user and mount namespace mapping its uid to 0, mounts the
/// workspace overlay there, and lowers its resource limits *after* creating the namespace, so
/// RLIMIT_NPROC counts the processes of this sandbox only (per-user-namespace accounting).
pub(crate) struct NsPlan {
    uid_map: CString,
    gid_map: CString,
    overlay: Option<(CString, CString)>,
    limits: Rlimits,
    inherit_fds: [Option<RawFd>; 2],
}

impl NsPlan {
    /// Prepares everything the child needs so that `apply` allocates nothing.
    pub(crate) fn new(
        uid: u32,
        gid: u32,
        overlay: Option<(CString, CString)>,
        limits: Rlimits,
        inherit_fds: [Option<RawFd>; 2],
    ) -> Self {
        let uid_map = CString::new(format!("0 {uid} 1\n")).unwrap_or_default();
        let gid_map = CString::new(format!("0 {gid} 1\n")).unwrap_or_default();
        NsPlan {
            uid_map,
            gid_map,
            overlay,
            limits,
            inherit_fds,
        }
    }

    /// Runs in the child between fork and exec: only system calls, no allocation.
    pub(crate) fn apply(&self) -> io::Result<()> {
        // After a setuid from root the process is not dumpable, which would make its own
        // /proc/self/uid_map owned by root and unwritable. Restore it.
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) })?;
        // SAFETY: unshare takes flags only.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })?;
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", self.uid_map.as_bytes())?;
        write_file(c"/proc/self/gid_map", self.gid_map.as_bytes())?;
        // Make sure nothing we mount propagates back to the host.
        // SAFETY: all pointers are NUL-terminated static strings or null.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        if let Some((target, options)) = &self.overlay {
            // SAFETY: every pointer is a NUL-terminated string owned by `self`.
            check(unsafe {
                libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                )
            })?;
        }
        for fd in self.inherit_fds.iter().flatten() {
            // The descriptors bubblewrap reads (its arguments, the seccomp program) must
            // survive its exec; everywhere else they stay close-on-exec.
            // SAFETY: F_SETFD with an integer argument on a descriptor of this process.
            check(unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) })?;
        }
        set_rlimit(libc::RLIMIT_CORE, Some(0))?;
        set_rlimit(libc::RLIMIT_NPROC, self.limits.nproc)?;
        set_rlimit(libc::RLIMIT_AS, self.limits.address_space)?;
        set_rlimit(libc::RLIMIT_FSIZE, self.limits.file_size)?;
        set_rlimit(libc::RLIMIT_NOFILE, self.limits.open_files)?;
        Ok(())
    }
}

/// Resource identifier type of `setrlimit` on glibc.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
/// Resource identifier type of `setrlimit` on other libcs.
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Lowers soft and hard limit of `resource` to `value` (no-op for `None`).
fn set_rlimit(resource: Resource, value: Option<u64>) -> io::Result<()> {
    let Some(value) = value else { return Ok(()) };
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    check(unsafe { libc::setrlimit(resource, &limit) })
}

/// Writes `data` to the file `path` with raw system calls (usable after fork).
fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd)?;
    // SAFETY: `data` is valid for `data.len()` bytes; `fd` was just opened by us.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let result = if written == -1 {
        Err(io::Error::last_os_error())
    } else if written as usize != data.len() {
        Err(io::Error::from_raw_os_error(libc::EIO))
    } else {
        Ok(())
    };
    // SAFETY: closing the descriptor opened above exactly once.
    unsafe { libc::close(fd) };
    result
}

/// `struct landlock_ruleset_attr` (ABI 6 layout; the size passed tells the kernel which
/// fields it reads).
#[repr(C)]
pub(crate) struct LandlockRulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed: 12 bytes).
#[repr(C, packed)]
pub(crate) struct LandlockPathBeneath {
    pub allowed_access: u64,
    pub parent_fd: i32,
}

/// The Landlock ABI version the kernel offers (an error without Landlock).
pub(crate) fn landlock_abi() -> io::Result<u32> {
    // SAFETY: a null attribute with size 0 and the VERSION flag only queries the ABI.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<LandlockRulesetAttr>(),
            0usize,
            1u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u32)
    }
}

/// A new Landlock ruleset; `size` is how much of `attr` this ABI knows.
pub(crate) fn landlock_create_ruleset(
    attr: &LandlockRulesetAttr,
    size: usize,
) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is valid for `size` <= size_of::<LandlockRulesetAttr>() bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            attr as *const LandlockRulesetAttr,
            size.min(std::mem::size_of::<LandlockRulesetAttr>()),
            0u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Adds a path-beneath rule to a ruleset.
pub(crate) fn landlock_add_rule(ruleset: RawFd, rule: &LandlockPathBeneath) -> io::Result<()> {
    // SAFETY: `rule` is a valid, packed path-beneath attribute (rule type 1).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            1u32,
            rule as *const LandlockPathBeneath,
            0u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Restricts this thread (and what it executes) to the ruleset; sets no_new_privs first.
pub(crate) fn landlock_restrict_self(ruleset: RawFd) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: the descriptor is a ruleset; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
