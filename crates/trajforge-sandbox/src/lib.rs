//! Rootless sandboxed workspaces for trajforge episodes.
//!
//! * [`Environment::prepare`] snapshots one commit of a repository into a base directory
//!   (a one-commit shallow clone, so `git diff` works and later history is absent) and runs
//!   an optional set-up command there once, with network, inside the sandbox.
//! * [`Environment::create_workspace`] makes a copy-on-write [`Workspace`]: three empty
//!   directories used as an overlayfs upper layer over the read-only base. The overlay is
//!   mounted inside each sandbox's own user + mount namespace, never on the host.
//! * [`Workspace::session`] starts a persistent bash ([`Session`]); [`Workspace::run`] runs a
//!   one-shot command; [`Workspace::diff`] / [`Session::diff`] return the patch.
//!
//! Every sandbox is bubblewrap in fresh user, pid, ipc, uts, cgroup and network namespaces,
//! with /usr and the like read-only, only the /etc entries programs need (one prebuilt
//! folder, bound once), Landlock where the kernel has it (writes only beneath the workspace,
//! /tmp and /dev/shm; no signals or abstract sockets across the domain), a seccomp filter
//! (no ptrace, keyrings, BPF, perf, mounts, namespaces, kernel modules, TIOCSTI), bubblewrap
//! arguments passed through a descriptor (no host paths in /proc/1/cmdline), private
//! size-limited /tmp and /dev/shm, an empty environment apart from a fixed minimal one, and rlimits on processes,
//! address space, file size and open files. When the caller is root the sandbox runs as an
//! unprivileged uid (65534 by default), because the kernel exempts uid 0 from RLIMIT_NPROC.
//! The limit is set after the sandbox's user namespace is created, so it counts that
//! sandbox's processes only (per-user-namespace accounting), for root and normal users alike.
//!
//! Known limits of the design: RLIMIT_AS bounds each process, not the sandbox's total; the
//! upper directory's total size is bounded only per file (RLIMIT_FSIZE), not overall; the
//! overlay is mounted `volatile` (no sync on unmount), so workspaces do not survive a host
//! crash. bubblewrap 0.8 has no `--overlay`, so the crate mounts the overlay itself in a user
//! namespace created between fork and exec, then runs bubblewrap nested inside it.

// The namespace set-up between fork and exec (unshare, uid maps, overlay mount, setrlimit)
// and polling the output pipe need raw libc calls; they are confined to `sys` (plus the one
// `pre_exec` registration in `spawn`), each in a one-call unsafe block with a SAFETY note.
#![allow(unsafe_code)]

mod b64;
mod config;
mod container;
mod env;
mod error;
mod etc;
pub mod landlock;
mod output;
mod proctree;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod seccomp;
mod session;
mod spawn;
mod sys;
mod workspace;

pub use config::{Backend, DEFAULT_SANDBOX_UID, Engine, Limits, SandboxConfig};
pub use env::{Environment, EnvironmentOptions};
pub use error::{Result, SandboxError};
pub use output::CommandOutput;
pub use session::Session;
pub use workspace::{Workspace, remove_tree};
