//! Sandboxes as containers of a user's image, started through podman's (or docker's) command
//! line: the same workspace overlay, limits, protocol and patch as the bubblewrap sandbox.
//!
//! The engine's attached `run -i` client is the sandbox's child process: its standard input
//! and output carry the shell protocol exactly as bubblewrap's do. The container's processes
//! are not descendants of that client (the engine's monitor owns them), so killing and
//! interrupting go through the engine: `rm -f` ends the whole container, and an interrupt is a
//! short `exec` inside it that signals the shell and kills every other process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Engine, LOCALE, LOCALE_VARS, base_env};
use crate::error::{Result, SandboxError};
use crate::spawn::{self, Root, Sandbox, Spec};
use crate::sys;

/// How long `rm -f` or an interrupting `exec` may take before we give up on it.
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A running container of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    /// The engine's command-line program.
    program: PathBuf,
    /// podman or docker.
    engine: Engine,
    /// The container's unique name.
    name: String,
}

/// Finds the engine's command-line program on `PATH` (or in /usr/bin, /usr/local/bin).
pub(crate) fn find_engine(engine: Engine) -> Result<PathBuf> {
    let name = engine.program();
    let mut dirs: Vec<PathBuf> = vec!["/usr/bin".into(), "/usr/local/bin".into()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(SandboxError::EngineMissing { program: name })
}

/// Fails unless `image` is present in the engine's local store (it is never pulled).
pub(crate) fn check_image(program: &Path, engine: Engine, image: &str) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(global_args(engine));
    match engine {
        Engine::Podman => cmd.args(["image", "exists", "--", image]),
        Engine::Docker => cmd.args(["image", "inspect", "--format", "{{.Id}}", "--", image]),
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(SandboxError::ImageMissing {
        image: image.to_owned(),
        program: engine.program(),
        detail: if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        },
    })
}

/// Engine options that make podman work without systemd and on hosts with mixed cgroup
/// versions, decided once per process from what the host has.
///
/// Without a running systemd (containers, minimal VMs, CI runners) podman's defaults fail:
/// the systemd cgroup manager and the journald events logger need it, so cgroupfs and a
/// file events log are chosen. On a hybrid cgroup host (v1 controllers plus a v2 tree that
/// has controllers of its own) crun refuses to start containers while runc copes, so runc is
/// used when it is installed. Warnings are silenced: the engine's standard error is part of
/// the command output the agent sees.
fn global_args(engine: Engine) -> &'static [String] {
    static PODMAN: OnceLock<Vec<String>> = OnceLock::new();
    match engine {
        Engine::Docker => &[],
        Engine::Podman => PODMAN.get_or_init(|| {
            let mut args = vec!["--log-level=error".to_owned()];
            if !Path::new("/run/systemd/system").is_dir() {
                args.push("--cgroup-manager=cgroupfs".into());
                args.push("--events-backend=file".into());
            }
            let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
                .is_ok_and(|c| !c.trim().is_empty());
            if hybrid && find_in_path("runc") {
                args.push("--runtime=runc".into());
            }
            args
        }),
    }
}

/// Whether `name` is an executable file in a `PATH` directory.
fn find_in_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// A name no other container of this host has.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "trajforge-{}-{}-{nanos:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `run` options mounting the workspace of `spec` at `inside`.
fn workspace_mount(spec: &Spec<'_>, engine: Engine, inside: &str) -> Result<Vec<String>> {
    Ok(match &spec.root {
        Root::Bind(dir) => vec![
            "-v".into(),
            format!("{}:{inside}", spawn::overlay_path(dir)?),
        ],
        Root::Overlay {
            lower, upper, work, ..
        } => {
            let (lower, upper, work) = (
                spawn::overlay_path(lower)?,
                spawn::overlay_path(upper)?,
                spawn::overlay_path(work)?,
            );
            match engine {
                // podman's overlay volume: the same lower, upper and work directories as
                // bubblewrap's overlay, so the upper directory holds what the episode changed.
                Engine::Podman => vec![
                    "-v".into(),
                    format!("{lower}:{inside}:O,upperdir={upper},workdir={work}"),
                ],
                // docker has no overlay volumes; an anonymous volume of its default (local)
                // driver mounts one. The driver is left implicit: docker defaults to it, and
                // podman's docker-compatible CLI refuses the `volume-driver` option.
                Engine::Docker => vec![
                    "--mount".into(),
                    format!(
                        "type=volume,dst={inside},\
                         volume-opt=type=overlay,volume-opt=device=overlay,\
                         \"volume-opt=o=lowerdir={lower},upperdir={upper},workdir={work}\""
                    ),
                ],
            }
        }
    })
}

/// Starts the container described by `spec`.
pub(crate) fn start(spec: &Spec<'_>, engine: Engine, image: &str) -> Result<Sandbox> {
    let (uid, gid, drop_root) = spawn::host_identity(spec.config);
    if let Root::Overlay { work, .. } = &spec.root {
        // The overlay's scratch directory must be empty for a new mount.
        spawn::reset_work_dir(work, spec.config)?;
    }
    // Volume options split on ':' and ',', which overlay layers refuse too.
    let inside = spawn::overlay_path(&spec.config.workspace_dir)?;
    let name = unique_name();
    let limits = spec.limits;
    let mut a: Vec<String> = global_args(engine).to_vec();
    a.extend(
        [
            "run",
            "--rm",
            "-i",
            "--pull=never",
            "--init",
            "--read-only",
            "--hostname=sandbox",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--label=trajforge=sandbox",
        ]
        .map(String::from),
    );
    a.push(format!("--name={name}"));
    if engine == Engine::Podman {
        // Our own /tmp below; podman's default tmpfs mounts have no size limit.
        a.push("--read-only-tmpfs=false".into());
    }
    a.push(format!(
        "--network={}",
        if spec.network { "host" } else { "none" }
    ));
    // As root, the unprivileged sandbox uid that owns the snapshot; rootless, the container's
    // root, which is the calling user on the host.
    a.push(if drop_root {
        format!("--user={uid}:{gid}")
    } else {
        "--user=0:0".to_owned()
    });
    let size = limits.tmp_size;
    a.push(format!("--tmpfs=/tmp:rw,size={size},mode=1777"));
    a.push(format!("--tmpfs=/root:rw,size={size},mode=1777"));
    a.push(format!("--shm-size={size}"));
    // Explicit values for every limit the engine would otherwise set to its own default,
    // which may exceed the host's hard limit (and fail without CAP_SYS_RESOURCE).
    let nproc = limits
        .max_processes
        .or_else(|| sys::hard_limit(libc::RLIMIT_NPROC));
    let nofile = limits
        .max_open_files
        .or_else(|| sys::hard_limit(libc::RLIMIT_NOFILE));
    for (name, value) in [
        ("nproc", nproc),
        ("nofile", nofile),
        ("fsize", limits.max_file_size),
    ] {
        if let Some(v) = value {
            a.push(format!("--ulimit={name}={v}:{v}"));
        }
    }
    // A cgroup bound on the container's processes as a whole; rootless podman on cgroup v1
    // cannot set one, where RLIMIT_NPROC alone applies.
    if let (Some(n), true) = (limits.max_processes, drop_root) {
        a.push(format!("--pids-limit={n}"));
    }
    // The locale variables are set by the wrapper below, once it has checked that the image
    // has the locale: a bash started under a locale the image lacks warns on its standard
    // error, which the engine relays apart from standard output (see below).
    let env = base_env()
        .into_iter()
        .filter(|(k, _)| !LOCALE_VARS.contains(&k.as_str()));
    for (k, v) in env.chain(spec.config.env.iter().cloned()) {
        a.push(format!("--env={k}={v}"));
    }
    a.push(format!("--workdir={inside}"));
    a.extend(workspace_mount(spec, engine, &inside)?);
    let extra = spec
        .config
        .ro_binds
        .iter()
        .map(|p| (p.clone(), p.clone()))
        .chain(spec.extra_ro.iter().cloned());
    for (host, target) in extra {
        a.push("-v".into());
        a.push(format!(
            "{}:{}:ro",
            spawn::overlay_path(&host)?,
            spawn::overlay_path(&target)?
        ));
    }
    a.push("--".into());
    a.push(image.to_owned());
    // The address-space limit has no engine option (`--ulimit as` is refused), so a wrapper
    // shell sets it before the command. Standard error joins standard output inside the
    // container, first of all: the engine relays the two streams separately, which would let
    // error output overtake the shell protocol's end marker. The wrapper also picks the
    // locale: C.UTF-8 where the image has it (most do), else C, so that no command in the
    // episode starts with a setlocale warning; a locale the user set is kept.
    let rlimit_as = limits
        .memory_bytes
        .map(|b| format!("ulimit -S -H -v {} || exit 125; ", b / 1024))
        .unwrap_or_default();
    a.extend(spawn::bash(Some(format!(
        "exec 2>&1; l={LOCALE}; [ -z \"$(bash -c \"LC_ALL=$l\" 2>&1)\" ] || l=C; \
         export LANG=\"${{LANG-$l}}\" LC_ALL=\"${{LC_ALL-$l}}\"; {rlimit_as}exec \"$@\""
    ))));
    a.push("trajforge".into());
    a.extend(spec.argv.iter().cloned());

    let mut cmd = Command::new(spec.program);
    cmd.args(&a);
    cmd.current_dir("/");
    let program = format!("{} run", spec.program.display());
    let mut sandbox = spawn::launch_piped(cmd, spec.stdin, program)?;
    sandbox.container = Some(Container {
        program: spec.program.to_owned(),
        engine,
        name,
    });
    Ok(sandbox)
}

impl Container {
    /// Runs the engine with `args` to completion (bounded by [`ENGINE_CALL_TIMEOUT`]),
    /// discarding its output; whether it succeeded.
    fn call(&self, args: &[&str]) -> bool {
        let mut cmd = Command::new(&self.program);
        cmd.args(global_args(self.engine))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        wait_bounded(&mut child, ENGINE_CALL_TIMEOUT).is_some_and(|s| s.success())
    }

    /// Removes the container with every process in it, then reaps the `run` client.
    pub(crate) fn kill(&self, client: &mut Child) -> Option<ExitStatus> {
        // `rm -f` returns once the container is gone and its overlay unmounted, so the
        // workspace can be mounted again at once.
        let args: &[&str] = match self.engine {
            Engine::Podman => &["rm", "-f", "-t", "0", "--", &self.name],
            // `-v`: the anonymous volume of the workspace overlay goes with the container
            // (docker's `--rm` removes it only when the container exits by itself).
            Engine::Docker => &["rm", "-f", "-v", "--", &self.name],
        };
        self.call(args);
        if let Some(status) = wait_bounded(client, ENGINE_CALL_TIMEOUT) {
            return Some(status);
        }
        let _ = client.kill();
        client.wait().ok()
    }

    /// One round of interrupting the shell whose pid in the container is `shell`: with
    /// `signal_shell`, SIGUSR1 tells it to skip the rest of the command; every other process
    /// but the container's init and this helper itself is killed.
    pub(crate) fn interrupt(&self, shell: u32, signal_shell: bool) -> bool {
        let usr1 = if signal_shell {
            format!("kill -USR1 {shell} 2>/dev/null; ")
        } else {
            String::new()
        };
        // Only builtins, so the helper starts no process the loop would have to spare.
        let script = format!(
            "{usr1}for d in /proc/[0-9]*; do p=${{d#/proc/}}; \
             case $p in 1|{shell}|$$) ;; *) kill -9 \"$p\" 2>/dev/null;; esac; done; exit 0"
        );
        let mut args = vec!["exec", "--", &self.name];
        let argv = spawn::bash(Some(script));
        args.extend(argv.iter().map(String::as_str));
        self.call(&args)
    }
}

/// Waits for `child` up to `timeout`; `None` if it is still running (or cannot be waited on).
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}
