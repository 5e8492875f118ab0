//! Escape probes of issue 19: each a real attempt from inside an episode, each blocked.
//!
//! System calls are made through Python's ctypes so that the probe reaches the kernel
//! exactly as hostile code would (no shell tool in between deciding to refuse). Where a
//! probe relies on the seccomp filter, the same probe runs once with the filter switched
//! off to show that it detects the difference.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::common::*;
use super::{T, survivors};
use trajforge_sandbox::landlock::Status;
use trajforge_sandbox::{Environment, SandboxConfig, Workspace};

/// Python prelude: `sc(label, nr, *args)` prints `label=<errno or ok:<value>>`.
const PY_SYSCALL: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(label, nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    err = ctypes.get_errno()
    print(f"{label}=" + (f"ok:{ret}" if ret >= 0 else str(err)), flush=True)
"#;

/// Runs a Python program (after [`PY_SYSCALL`]) in a one-shot sandbox and parses its
/// `label=value` lines.
fn py_probe(ws: &Workspace, body: &str) -> BTreeMap<String, String> {
    let script = format!("{PY_SYSCALL}\n{body}\nprint('END=1')");
    let cmd = format!("python3 - <<'PYEOF'\n{script}\nPYEOF");
    let out = ws.run(&cmd, T).expect("run probe");
    let results: BTreeMap<String, String> = out
        .output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        results.get("END").map(String::as_str),
        Some("1"),
        "probe did not finish: {out:?}"
    );
    results
}

/// A workspace over the small repository with the seccomp filter on or off.
fn workspace_with(root: &Path, seccomp: bool) -> (Environment, Workspace) {
    workspace_where(root, |sandbox| sandbox.seccomp = seccomp)
}

/// A workspace over the small repository in `root`, with settings changed by `adjust`.
fn workspace_where(
    root: &Path,
    adjust: impl FnOnce(&mut SandboxConfig),
) -> (Environment, Workspace) {
    require_bwrap();
    let repo = small_repo(root);
    let mut options = test_options(root.join("env"));
    adjust(&mut options.sandbox);
    let env = Environment::prepare(&repo, None, &options).expect("prepare");
    let ws = env.create_workspace().expect("workspace");
    (env, ws)
}

/// Asserts every label in `labels` failed with EPERM (errno 1).
fn assert_eperm(results: &BTreeMap<String, String>, labels: &[&str]) {
    for label in labels {
        assert_eq!(
            results.get(*label).map(String::as_str),
            Some("1"),
            "{label} not denied with EPERM: {results:?}"
        );
    }
}

#[test]
fn ptrace_of_pid_1_and_other_processes_memory_is_denied() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let body = r#"
sc("attach1", 101, 16, 1, 0, 0)            # PTRACE_ATTACH to pid 1
sc("seize1", 101, 0x4206, 1, 0, 0)         # PTRACE_SEIZE
sc("traceme", 101, 0, 0, 0, 0)             # PTRACE_TRACEME
buf = ctypes.create_string_buffer(16)
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 16)
remote = IoVec(0x400000, 16)
sc("vm_readv", 310, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
try:
    open("/proc/1/mem", "rb").read(1); print("mem1=ok:read")
except OSError as e:
    print(f"mem1=err:{e.errno}")
"#;
    let r = py_probe(&ws, body);
    assert_eperm(&r, &["attach1", "seize1", "traceme", "vm_readv"]);
    assert!(r["mem1"].starts_with("err:"), "{r:?}");
}

#[test]
fn namespaces_mounts_chroot_and_setuid_are_denied() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let body = r#"
sc("unshare_user", 272, 0x10000000)
sc("unshare_mnt", 272, 0x00020000)
sc("unshare_net", 272, 0x40000000)
sc("clone_newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)   # clone(CLONE_NEWUSER|SIGCHLD)
sc("clone3", 435, 0, 0)
sc("setns", 308, 0, 0)
sc("mount", 165, b"none", b"/mnt", b"tmpfs", 0, 0)
sc("umount", 166, b"/proc", 2)
sc("pivot_root", 155, b"/tmp", b"/tmp")
sc("chroot", 161, b"/tmp")
sc("fsopen", 430, b"tmpfs", 0)
sc("open_tree", 428, -100, b"/usr", 1)
try:
    os.setuid(1000); print("setuid=ok")
except OSError as e:
    print(f"setuid=err:{e.errno}")
print(f"uid={os.getuid()}")
"#;
    let r = py_probe(&ws, body);
    assert_eperm(
        &r,
        &[
            "unshare_user",
            "unshare_mnt",
            "unshare_net",
            "clone_newuser",
            "setns",
            "mount",
            "umount",
            "pivot_root",
            "chroot",
            "fsopen",
            "open_tree",
        ],
    );
    assert_eq!(r["clone3"], "38", "clone3 must fail with ENOSYS: {r:?}");
    assert!(r["setuid"].starts_with("err:"), "{r:?}");
    assert_eq!(r["uid"], "0");
    // The command-line tools fail the same way, and ordinary forks still work.
    let out = ws
        .run(
            "unshare -r true && echo UNSHARE-OK; unshare -m true && echo MNT-OK; \
             mount -t tmpfs none /mnt && echo MOUNT-OK; (echo child) | cat; echo END",
            T,
        )
        .expect("run");
    assert!(out.output.contains("child\nEND"), "{out:?}");
    for ok in ["UNSHARE-OK", "MNT-OK", "MOUNT-OK"] {
        assert!(!out.output.contains(ok), "{ok}: {}", out.output);
    }
}

#[test]
fn tiocsti_and_tioclinux_are_denied_and_there_is_no_terminal() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let body = r#"
import fcntl, pty, termios
master, slave = pty.openpty()
for label, fd, req, arg in [("sti_slave", slave, 0x5412, b"x"), ("sti_master", master, 0x5412, b"x"),
                            ("linux", slave, 0x541C, b"\x03"), ("linux_master", master, 0x541C, b"\x06")]:
    try:
        fcntl.ioctl(fd, req, arg); print(f"{label}=ok")
    except OSError as e:
        print(f"{label}={e.errno}")
try:
    fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8); print("winsz=ok")
except OSError as e:
    print(f"winsz={e.errno}")
try:
    os.open("/dev/tty", os.O_RDWR); print("devtty=ok")
except OSError as e:
    print(f"devtty=err:{e.errno}")
"#;
    let r = py_probe(&ws, body);
    assert_eperm(&r, &["sti_slave", "sti_master", "linux", "linux_master"]);
    assert_eq!(r["winsz"], "ok", "other terminal ioctls still work: {r:?}");
    assert!(r["devtty"].starts_with("err:"), "{r:?}");
}

#[test]
fn keyrings_bpf_perf_io_uring_and_module_calls_are_denied() {
    let tmp = open_tempdir();
    let body = r#"
sc("keyctl", 250, 0, -3, 1)                      # KEYCTL_GET_KEYRING_ID(session, create)
sc("add_key", 248, b"user", b"tf", b"x", 1, -3)
sc("request_key", 249, b"user", b"tf", 0, 0)
sc("bpf", 321, 0, 0, 0)
attr = ctypes.create_string_buffer(128)
sc("perf", 298, attr, 0, -1, -1, 0)
params = ctypes.create_string_buffer(120)
sc("io_uring", 425, 8, params)
sc("userfaultfd", 323, 0)
sc("init_module", 175, 0, 0, b"")
sc("finit_module", 313, 0, b"", 0)
sc("kexec", 246, 0, 0, 0, 0)
sc("syslog", 103, 3, 0, 0)
sc("x32_getpid", 0x40000000 | 39)
"#;
    let (_env, ws) = workspace_with(tmp.path(), true);
    let r = py_probe(&ws, body);
    assert_eperm(
        &r,
        &[
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf",
            "io_uring",
            "userfaultfd",
            "init_module",
            "finit_module",
            "kexec",
            "syslog",
            "x32_getpid",
        ],
    );
    // Without the filter the keyring call succeeds: the probe sees the difference.
    let (_env2, ws2) = workspace_with(&tmp.path().join("off"), false);
    let r = py_probe(&ws2, body);
    assert!(
        r["keyctl"].starts_with("ok:") || r["keyctl"] != "1",
        "{r:?}"
    );
}

#[test]
fn host_abstract_sockets_are_unreachable() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let name = format!("trajforge-escape-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let listener = UnixListener::bind_addr(&addr).expect("bind abstract");
    listener.set_nonblocking(true).expect("nonblocking");
    let body = format!(
        r#"
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0{name}"); print("abstract=ok")
except OSError as e:
    print(f"abstract=err:{{e.errno}}")
"#
    );
    let r = py_probe(&ws, &body);
    assert!(r["abstract"].starts_with("err:"), "{r:?}");
    assert!(
        listener.accept().is_err(),
        "the host socket got a connection"
    );
}

#[test]
fn host_filesystem_sockets_are_unreachable() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    // A socket in a world-reachable host folder, and the well-known system sockets.
    let path = tmp.path().join("host.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).expect("chmod");
    let body = format!(
        r#"
import socket
for label, p in [("mine", "{path}"), ("dbus", "/run/dbus/system_bus_socket"),
                 ("docker", "/var/run/docker.sock"), ("podman", "/run/podman/podman.sock"),
                 ("journal", "/run/systemd/journal/socket")]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(p); print(f"{{label}}=ok")
    except OSError as e:
        print(f"{{label}}=err:{{e.errno}}")
"#,
        path = path.display()
    );
    let r = py_probe(&ws, &body);
    for label in ["mine", "dbus", "docker", "podman", "journal"] {
        assert!(r[label].starts_with("err:"), "{label}: {r:?}");
    }
    assert!(
        listener.accept().is_err(),
        "the host socket got a connection"
    );
    let out = ws
        .run("find / -xdev -type s 2>/dev/null | head; echo END", T)
        .expect("find");
    assert_eq!(out.output, "END\n", "sockets visible inside: {out:?}");
}

#[test]
fn proc_and_sys_disclose_nothing_of_the_host() {
    let tmp = open_tempdir();
    let (env, ws) = workspace_with(tmp.path(), true);
    let cmd = "ls -A /sys 2>/dev/null | wc -l; echo ==; tr '\\0' ' ' < /proc/1/cmdline; echo; echo ==; \
               echo b > /proc/sysrq-trigger && echo SYSRQ-OK; head -c1 /proc/kcore >/dev/null && echo KCORE-OK; \
               dmesg >/dev/null 2>&1 && echo DMESG-OK; echo 1 > /proc/sys/vm/drop_caches && echo SYSCTL-OK; \
               echo NONZERO=$(grep -vc '^0000000000000000 ' /proc/kallsyms 2>/dev/null); echo ==; ls /proc | grep -c '^[0-9]'";
    let out = ws.run(cmd, T).expect("run");
    let sections: Vec<&str> = out.output.split("==\n").collect();
    assert_eq!(sections.len(), 4, "{out:?}");
    assert_eq!(sections[0].trim(), "0", "/sys is not empty: {out:?}");
    let work = env.work_dir().display().to_string();
    assert!(
        !sections[1].contains(&work) && !sections[1].contains("--ro-bind"),
        "pid 1 shows host paths: {}",
        sections[1]
    );
    for ok in ["SYSRQ-OK", "KCORE-OK", "DMESG-OK", "SYSCTL-OK"] {
        assert!(!sections[2].contains(ok), "{ok}: {}", out.output);
    }
    assert!(
        sections[2].contains("NONZERO=0\n") || sections[2].contains("NONZERO=\n"),
        "kernel addresses visible: {}",
        sections[2]
    );
    let procs: usize = sections[3].trim().parse().expect("count");
    assert!(procs <= 5, "{procs} processes visible: {out:?}");
}

#[test]
fn a_file_planted_in_host_etc_is_not_visible_and_etc_is_reduced() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let planted = format!("/etc/trajforge-escape-{}.conf", std::process::id());
    // Root (CI and this machine) can plant a file; other users check the listing alone.
    let did_plant = fs::write(&planted, "planted-secret-value\n").is_ok();
    let out = ws
        .run(&format!("cat {planted}; ls -A /etc; echo END"), T)
        .expect("run");
    if did_plant {
        let _ = fs::remove_file(&planted);
    }
    assert!(out.output.ends_with("END\n"), "{out:?}");
    assert!(
        !out.output.contains("planted-secret-value"),
        "planted file read: {out:?}"
    );
    let inside: Vec<&str> = out
        .output
        .lines()
        .filter(|l| !l.contains("No such file") && *l != "END")
        .collect();
    for secret in [
        "shadow",
        "gshadow",
        "ssh",
        "sudoers",
        "machine-id",
        "subuid",
        "crontab",
    ] {
        assert!(
            !inside.contains(&secret),
            "/etc/{secret} visible: {inside:?}"
        );
    }
    let host = fs::read_dir("/etc").expect("etc").count();
    assert!(
        inside.len() < host / 2,
        "/etc not reduced: {} of {host} entries visible",
        inside.len()
    );
    for needed in ["passwd", "group", "hosts", "ld.so.cache"] {
        if Path::new("/etc").join(needed).exists() {
            assert!(
                inside.contains(&needed),
                "/etc/{needed} missing: {inside:?}"
            );
        }
    }
    // What programs need still works: TLS certificates, user names, the dynamic linker.
    let out = ws
        .run(
            "python3 -c 'import ssl; print(len(ssl.create_default_context().get_ca_certs()) >= 0)'; \
             id -un; git --version >/dev/null && echo GIT",
            T,
        )
        .expect("run");
    assert_eq!(out.output, "True\nroot\nGIT\n", "{out:?}");
}

#[test]
fn symlinks_are_not_followed_when_the_patch_is_computed_or_the_workspace_removed() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let secret_dir = tmp.path().join("host-secrets");
    fs::create_dir(&secret_dir).expect("mkdir");
    fs::set_permissions(&secret_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = secret_dir.join("key.txt");
    fs::write(&secret, "host-secret-contents\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let cmd = format!(
        "ln -s {secret} leak.txt; ln -s {dir} leakdir; ln -s /etc/shadow shadow; \
         ln -s ../../../../.. up; cat leak.txt; echo END",
        secret = secret.display(),
        dir = secret_dir.display()
    );
    let out = ws.run(&cmd, T).expect("run");
    assert!(!out.output.contains("host-secret-contents"), "{out:?}");
    let patch = ws.diff().expect("diff");
    assert!(patch.contains("+++ b/leak.txt"), "{patch}");
    assert!(
        !patch.contains("host-secret-contents"),
        "patch followed a link: {patch}"
    );
    assert!(
        patch.contains(&format!("+{}", secret.display())),
        "link target expected: {patch}"
    );
    let upper = ws.upper_dir();
    drop(ws);
    assert!(!upper.exists(), "workspace not removed");
    assert_eq!(
        fs::read_to_string(&secret).expect("secret survives"),
        "host-secret-contents\n"
    );
}

/// Edits `src/lib.py` and tampers with git in the episode, then checks the patch.
fn tampered_patch(tamper: &str) -> String {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let mut s = ws.session().expect("session");
    let cmd = format!(
        "m=$(stat -c %Y src/lib.py); printf 'def f():\\n    return 2\\n' > src/lib.py; {tamper}; echo END"
    );
    let out = s.run(&cmd, T).expect("tamper");
    assert!(out.output.ends_with("END\n"), "{out:?}");
    let patch = s.diff().expect("diff");
    drop(s);
    assert_eq!(ws.diff().expect("one-shot diff"), patch);
    patch
}

/// What an honest patch of the edit in [`tampered_patch`] contains.
fn assert_honest(patch: &str) {
    assert!(
        patch.contains("--- a/src/lib.py\n+++ b/src/lib.py")
            && patch.contains("-    return 1\n+    return 2\n"),
        "the edit is missing or rewritten: {patch}"
    );
    assert!(!patch.contains("FORGED"), "forged content: {patch}");
}

#[test]
fn git_config_filters_cannot_change_the_patch() {
    let patch = tampered_patch(
        "git config filter.x.clean 'echo FORGED'; git config filter.x.required true; \
         git config core.attributesFile /workspace/attrs; echo '* filter=x' > attrs; \
         git config diff.noprefix true; git config core.autocrlf true; \
         git config core.fsmonitor 'echo FORGED >&2'",
    );
    assert_honest(&patch);
}

#[test]
fn gitattributes_cannot_hide_or_rewrite_content() {
    let patch = tampered_patch(
        "printf '*.py -diff filter=y ident\\n* text eol=crlf\\n' > .gitattributes; \
         git config filter.y.clean 'sed s/2/FORGED/'",
    );
    assert_honest(&patch);
    assert!(patch.contains("+++ b/.gitattributes"), "{patch}");
}

#[test]
fn commits_and_a_moved_head_do_not_empty_the_patch() {
    let patch = tampered_patch(
        "git -c user.name=a -c user.email=a@a commit -qam hide; git update-ref HEAD HEAD; \
         git checkout -q --detach HEAD; echo 'ref: refs/heads/nowhere' > .git/HEAD.x",
    );
    assert_honest(&patch);
}

#[test]
fn a_doctored_index_or_restored_mtime_does_not_hide_an_edit() {
    // Same size as the original, time stamp restored, and the index told it is clean.
    let patch = tampered_patch(
        "touch -d @$m src/lib.py; git update-index --refresh -q; \
         git update-index --assume-unchanged src/lib.py; test $(stat -c %Y src/lib.py) = $m",
    );
    assert_honest(&patch);
}

#[test]
fn the_episodes_shell_cannot_forge_the_patch() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let mut s = ws.session().expect("session");
    let out = s
        .run(
            "mkdir -p /tmp/bin; printf '#!/bin/sh\\necho FORGED\\n' > /tmp/bin/git; chmod +x /tmp/bin/git; \
             export PATH=/tmp/bin:$PATH; git() { echo FORGED; }; function /usr/bin/git { echo FORGED; }; \
             echo changed >> README; cd src; echo END",
            T,
        )
        .expect("run");
    assert!(out.output.contains("END"), "{out:?}");
    let patch = s.diff().expect("diff");
    assert!(!patch.contains("FORGED"), "{patch}");
    assert!(patch.contains("+changed"), "{patch}");
    // The episode goes on in its working directory.
    let out = s.run("pwd", T).expect("pwd");
    assert_eq!(out.output, "/workspace/src\n");
}

#[test]
fn double_forked_daemons_do_not_outlive_the_command_or_the_session() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let marker = format!("2000.{}7", std::process::id());
    let daemon = format!(
        "python3 -c 'import os, time\nif os.fork(): os._exit(0)\nos.setsid()\nif os.fork(): os._exit(0)\n\
         os.closerange(0, 256)\ntime.sleep(1)\nopen(\"/workspace/daemon.txt\", \"w\").write(\"alive\")\n\
         os.execvp(\"sleep\", [\"sleep\", \"{marker}\"])'; echo started"
    );
    let out = ws.run(&daemon, T).expect("one-shot");
    assert_eq!(out.output, "started\n", "{out:?}");
    assert!(survivors(&marker).is_empty(), "one-shot daemon survived");
    let mut s = ws.session().expect("session");
    let out = s.run(&daemon, T).expect("session");
    assert_eq!(out.output, "started\n", "{out:?}");
    thread::sleep(Duration::from_millis(1500));
    assert!(survivors(&marker).is_empty(), "session daemon survived");
    drop(s);
    assert!(
        !ws.upper_dir().join("daemon.txt").exists(),
        "a daemon wrote after its command ended"
    );
}

#[test]
fn host_processes_cannot_be_signalled() {
    let tmp = open_tempdir();
    let (_env, ws) = workspace_with(tmp.path(), true);
    let mut victim = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    let pid = victim.id();
    let out = ws
        .run(
            &format!("kill -9 {pid} && echo KILLED; kill -9 -1; kill -STOP 1; echo END"),
            T,
        )
        .expect("run");
    assert!(!out.output.contains("KILLED"), "{out:?}");
    assert!(
        matches!(victim.try_wait(), Ok(None)),
        "host process was signalled"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn secrets_in_the_environment_reach_neither_set_up_nor_commands() {
    // SAFETY: see the crate attribute of escape.rs; nothing reads the environment concurrently.
    unsafe { std::env::set_var("OPENAI_API_KEY", "sk-setup-secret") };
    let tmp = open_tempdir();
    let repo = small_repo(tmp.path());
    let options = test_options(tmp.path().join("env"));
    let setup = "env > setup-env.txt; tr '\\0' '\\n' < /proc/1/environ >> setup-env.txt; echo done";
    let env = Environment::prepare(&repo, Some(setup), &options).expect("prepare");
    let dumped = fs::read_to_string(env.base_dir().join("setup-env.txt")).expect("dump");
    assert!(dumped.contains("PATH="), "the dump is real: {dumped}");
    assert!(!dumped.contains("sk-setup-secret"), "{dumped}");
    let ws = env.create_workspace().expect("workspace");
    let out = ws
        .run(
            "env; tr '\\0' '\\n' < /proc/1/environ; cat /proc/*/environ",
            T,
        )
        .expect("run");
    assert!(out.output.contains("PATH="), "{out:?}");
    assert!(!out.output.contains("sk-setup-secret"), "{out:?}");
}

#[test]
fn landlock_blocks_writes_that_the_mounts_allow() {
    // /dev is a writable tmpfs and /proc/self files are writable by the sandbox's root; pid 1
    // (bubblewrap) is outside the Landlock domain, so Landlock's signal scope covers it.
    let body = r#"
def attempt(label, f):
    try:
        f()
        print(f"{label}=ok", flush=True)
    except OSError as e:
        print(f"{label}={e.errno}", flush=True)
attempt("dev_file", lambda: open("/dev/planted", "w").write("x"))
attempt("dev_fifo", lambda: os.mkfifo("/dev/planted-fifo"))
attempt("proc_comm", lambda: open("/proc/self/comm", "w").write("renamed"))
sc("signal_init", 62, 1, 0)
attempt("workspace", lambda: open(os.path.join(os.getcwd(), "ok.txt"), "w").write("x"))
attempt("tmp", lambda: open("/tmp/ok.txt", "w").write("x"))
attempt("shm", lambda: open("/dev/shm/ok", "w").write("x"))
attempt("devnull", lambda: open("/dev/null", "w").write("x"))
"#;
    let tmp = open_tempdir();
    let (env, ws) = workspace_where(tmp.path(), |_| {});
    assert!(
        matches!(env.config().landlock_status(), Status::Applied(abi) if abi >= 1),
        "Landlock is not applied on this machine: {:?}",
        env.config().landlock_status()
    );
    let r = py_probe(&ws, body);
    for (label, want) in [
        ("dev_file", "13"),
        ("dev_fifo", "13"),
        ("proc_comm", "13"),
        ("workspace", "ok"),
        ("tmp", "ok"),
        ("shm", "ok"),
        ("devnull", "ok"),
    ] {
        assert_eq!(
            r.get(label).map(String::as_str),
            Some(want),
            "{label}: {r:?}"
        );
    }
    if matches!(env.config().landlock_status(), Status::Applied(abi) if abi >= 6) {
        assert_eq!(r["signal_init"], "1", "{r:?}");
    }
    // Without Landlock the same writes and the signal go through: the probe sees the difference.
    let (_env2, ws2) = workspace_where(&tmp.path().join("off"), |s| s.landlock = false);
    let r = py_probe(&ws2, body);
    for label in ["dev_file", "dev_fifo", "proc_comm"] {
        assert_eq!(r[label], "ok", "{label}: {r:?}");
    }
    assert_eq!(r["signal_init"], "ok:0", "{r:?}");
}
