//! Escape tests: every attempt to leave the sandbox must fail and leave the host unharmed.
//!
//! Limits here are small (64 processes, 512 MiB address space, 64 MiB files, 32 MiB /tmp)
//! and every command has a short wall-time limit. Resource attacks run only after a bounded
//! probe proved the limit effective (the probe's assertion stops the test otherwise).

// The environment-secret test sets a variable in this process (`std::env::set_var` is unsafe
// in edition 2024 because foreign code could read the environment concurrently; nothing in
// this test binary does).
#![allow(unsafe_code)]

mod common;
// Syscall numbers in the probes are those of x86-64.
#[cfg(target_arch = "x86_64")]
#[path = "escape/probes.rs"]
mod probes;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use trajforge_sandbox::Environment;

/// Short wall-time limit for attack commands.
const T: Option<Duration> = Some(Duration::from_secs(10));

/// Host pids whose command line contains `marker`.
fn host_procs_matching(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

/// Waits briefly for processes with `marker` to disappear, then returns the survivors.
fn survivors(marker: &str) -> Vec<u32> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = host_procs_matching(marker);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cannot_read_outside_the_workspace() {
    let tmp = open_tempdir();
    let secret = tmp.path().join("host-secret.txt");
    fs::write(&secret, "TOPSECRET-4711\n").expect("write secret");
    let (env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let repo = tmp.path().join("repo");
    let cmd = format!(
        "cat {secret}; ls -la {tmpdir}; cat {repo}/README; cat {base}/README; cat /etc/shadow /etc/gshadow; \
         ls -la /root/ /root/.ssh; cat /root/.ssh/*; ls /work /home /var /opt /srv /mnt; \
         cat /proc/1/root{secret}; ls /proc/1/root/work; echo END",
        secret = secret.display(),
        tmpdir = tmp.path().display(),
        repo = repo.display(),
        base = env.base_dir().display(),
    );
    let mut s = ws.session().expect("session");
    let out = s.run(&cmd, T).expect("run");
    assert!(out.output.ends_with("END\n"), "{out:?}");
    assert!(
        !out.output.contains("TOPSECRET"),
        "host file leaked: {}",
        out.output
    );
    assert!(
        !out.output.contains("root:"),
        "shadow readable: {}",
        out.output
    );
    assert!(
        !out.output.contains("later history"),
        "repository outside visible: {}",
        out.output
    );
    for missing in ["/work", "/home", "/var", "/root/.ssh"] {
        assert!(
            out.output.contains(&format!("cannot access '{missing}'")),
            "{missing} visible: {}",
            out.output
        );
    }
    // The snapshot's own history stops at the base commit.
    let out = s
        .run(
            "git log --all --format=%s | cat; git fsck --lost-found 2>&1 | head -3",
            T,
        )
        .expect("run");
    assert_eq!(out.output.lines().next(), Some("base"), "{}", out.output);
}

#[test]
fn cannot_write_outside_the_workspace() {
    let tmp = open_tempdir();
    let (env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let host_marker = format!("/tmp/trajforge-escape-{}", std::process::id());
    let cmd = format!(
        "echo x > /usr/evil-tf; touch /etc/evil-tf; mkdir /evil-tf; echo x > {host_marker}; \
         echo x > {base}/README; echo hacked >> README; echo x > /proc/sys/kernel/hostname; \
         mount -t tmpfs none /mnt; unshare -U true && echo USERNS-OK; echo END",
        base = env.base_dir().display()
    );
    let base_readme = fs::read_to_string(env.base_dir().join("README")).expect("base");
    let out = ws.run(&cmd, T).expect("run");
    assert!(out.output.ends_with("END\n"), "{out:?}");
    assert!(
        !out.output.contains("USERNS-OK"),
        "nested user namespace allowed: {}",
        out.output
    );
    for path in [
        "/usr/evil-tf",
        "/etc/evil-tf",
        "/evil-tf",
        host_marker.as_str(),
    ] {
        assert!(!Path::new(path).exists(), "sandbox wrote host path {path}");
    }
    assert_eq!(
        fs::read_to_string(env.base_dir().join("README")).expect("base"),
        base_readme,
        "base modified"
    );
    assert_eq!(
        fs::read_to_string(ws.upper_dir().join("README")).expect("upper"),
        format!("{base_readme}hacked\n")
    );
}

#[test]
fn cannot_reach_the_network() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let cmd = format!(
        "echo hi > /dev/tcp/127.0.0.1/{port} && echo TCP-OK; \
         python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=2); print(\"PY-OK\")'; \
         getent hosts example.com && echo DNS-OK; \
         python3 -c 'import socket; socket.getaddrinfo(\"example.com\", 443); print(\"PYDNS-OK\")'; \
         cat /proc/net/dev | tail -n +3 | cut -d: -f1; echo END"
    );
    let out = ws.run(&cmd, T).expect("run");
    assert!(out.output.ends_with("END\n"), "{out:?}");
    for ok in ["TCP-OK", "PY-OK", "DNS-OK", "PYDNS-OK"] {
        assert!(!out.output.contains(ok), "{ok}: {}", out.output);
    }
    assert!(
        !out.output.contains("eth") && !out.output.contains("ens"),
        "host interfaces visible: {}",
        out.output
    );
    assert!(listener.accept().is_err(), "the listener got a connection");
}

#[test]
fn cannot_see_host_processes_or_environment() {
    // SAFETY: see the crate attribute above; nothing reads the environment concurrently.
    unsafe { std::env::set_var("TRAJFORGE_API_KEY", "sk-escape-test-secret") };
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let mut s = ws.session().expect("session");
    // Under Landlock, /proc/1/environ (bubblewrap's, outside the domain) cannot even be read.
    let out = s
        .run("ps -eo pid,comm --no-headers; echo ==; env; echo ==; (tr '\\0' '\\n' < /proc/1/environ) 2>/dev/null; echo ==; cat /proc/*/cmdline | tr '\\0' ' '", T)
        .expect("run");
    assert!(
        !out.output.contains("sk-escape-test-secret"),
        "secret leaked: {}",
        out.output
    );
    let mut sections = out.output.split("==\n");
    let ps = sections.next().unwrap_or_default();
    let comms: Vec<&str> = ps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(comms.len() <= 5, "too many processes visible: {ps}");
    for comm in &comms {
        assert!(
            ["bwrap", "bash", "ps"].contains(comm),
            "unexpected process {comm}: {ps}"
        );
    }
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TERM",
        "PAGER",
        "GIT_PAGER",
        "PIP_PROGRESS_BAR",
        "PIP_NO_INPUT",
        "PYTHONDONTWRITEBYTECODE",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    for env_section in [
        sections.next().unwrap_or_default(),
        sections.next().unwrap_or_default(),
    ] {
        for line in env_section.lines().filter(|l| !l.is_empty()) {
            let name = line.split('=').next().unwrap_or_default();
            assert!(allowed.contains(&name), "unexpected variable {line}");
        }
    }
    for (name, value) in std::env::vars() {
        if value.len() > 3 && !allowed.contains(&name.as_str()) {
            assert!(!out.output.contains(&value), "host variable {name} leaked");
        }
    }
    let cmdlines = sections.next().unwrap_or_default();
    assert!(
        !cmdlines.contains("cargo") && !cmdlines.contains("escape-"),
        "host command lines: {cmdlines}"
    );
}

#[test]
fn fork_bombs_hit_the_process_limit() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let mut s = ws.session().expect("session");
    // Bounded probe first: at most 300 sleeping children, then clean up.
    let probe = "python3 - <<'EOF'\nimport os, time, signal\npids = []\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    pids.append(pid)\nprint('forked', len(pids))\nfor p in pids:\n    os.kill(p, signal.SIGKILL)\nEOF";
    let out = s.run(probe, T).expect("probe");
    let forked: usize = out
        .output
        .trim()
        .strip_prefix("forked ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("probe output: {out:?}"));
    assert!(
        (5..64).contains(&forked),
        "process limit not effective: forked {forked}"
    );
    // The limit holds: now a real fork bomb, stopped by its time limit.
    let marker = format!("bomb-{}", std::process::id());
    let bomb = format!(
        "python3 -c 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass' {marker}"
    );
    let started = Instant::now();
    let out = s.run(&bomb, Some(Duration::from_secs(3))).expect("bomb");
    assert!(out.timed_out, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        survivors(&marker).is_empty(),
        "fork bomb survived its time limit"
    );
    let out = s.run("echo alive", T).expect("after bomb");
    assert!(out.output.starts_with("alive"), "{out:?}");
    // The classic shell bomb in a one-shot sandbox.
    drop(s);
    let out = ws
        .run(":(){ :|:& };:", Some(Duration::from_secs(2)))
        .expect("shell bomb");
    assert!(out.exit_code.is_some() || out.timed_out);
    assert!(
        Command::new("true")
            .status()
            .expect("host can still fork")
            .success()
    );
}

#[test]
fn memory_and_disk_limits_hold() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD~1");
    let mut s = ws.session().expect("session");
    // Bounded probe: 64 MiB works, 1 GiB (twice the limit) is refused.
    let out = s
        .run("python3 -c 'a = bytearray(64 << 20); print(\"small ok\")'; python3 -c 'a = bytearray(1 << 30); print(\"BIG-OK\")'", T)
        .expect("probe");
    assert!(
        out.output.contains("small ok")
            && out.output.contains("MemoryError")
            && !out.output.contains("BIG-OK"),
        "{out:?}"
    );
    // The limit holds: now an unbounded allocation loop.
    let out = s
        .run(
            "python3 -c 'a = []\nwhile True: a.append(bytearray(16 << 20))'",
            T,
        )
        .expect("hog");
    assert!(
        out.output.contains("MemoryError") && !out.timed_out,
        "{out:?}"
    );
    // Files: RLIMIT_FSIZE stops a huge file; the tmpfs size stops /tmp and /dev/shm.
    let out = s
        .run("head -c 200M /dev/zero > big.bin; echo rc=$?; head -c 100M /dev/zero > /tmp/fill; echo rc=$?; head -c 100M /dev/zero > /dev/shm/fill; echo rc=$?; du -sm /tmp /dev/shm | cut -f1", T)
        .expect("fill");
    assert!(
        out.output.contains("rc=153"),
        "RLIMIT_FSIZE (SIGXFSZ): {out:?}"
    );
    assert!(out.output.contains("No space left on device"), "{out:?}");
    let big = fs::metadata(ws.upper_dir().join("big.bin"))
        .expect("big.bin")
        .len();
    assert!(big <= 64 << 20, "file grew to {big}");
    let sizes: Vec<u64> = out
        .output
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        sizes.len() == 2 && sizes.iter().all(|mb| *mb <= 33),
        "tmpfs sizes {sizes:?}"
    );
}

#[test]
fn nothing_outlives_its_command() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let repo = tmp.path().join("repo");
    let pid = std::process::id();
    // One-shot command leaving a background child.
    let m1 = format!("1000.{pid}1");
    let out = ws
        .run(&format!("sleep {m1} & echo started"), T)
        .expect("run");
    assert_eq!(out.output, "started\n");
    assert!(
        survivors(&m1).is_empty(),
        "one-shot background child survived"
    );
    let mut s = ws.session().expect("session");
    // Session: background, setsid'd and nohup'd children die when the command returns.
    let (m2, m3) = (format!("1000.{pid}2"), format!("1000.{pid}3"));
    let out = s
        .run(&format!("sleep {m2} & setsid nohup sleep {m3} >/dev/null 2>&1 & (sleep 1; echo late > /workspace/late.txt) & echo started"), T)
        .expect("run");
    assert!(out.output.starts_with("started"), "{out:?}");
    assert!(
        survivors(&m2).is_empty() && survivors(&m3).is_empty(),
        "session background child survived"
    );
    // On timeout, the whole tree dies.
    let (m4, m5) = (format!("1000.{pid}4"), format!("1000.{pid}5"));
    let out = s
        .run(
            &format!("sleep {m4} & sleep {m5}"),
            Some(Duration::from_millis(500)),
        )
        .expect("run");
    assert!(out.timed_out);
    assert!(
        survivors(&m4).is_empty() && survivors(&m5).is_empty(),
        "timed-out command survived"
    );
    thread::sleep(Duration::from_millis(1300));
    assert!(
        !ws.upper_dir().join("late.txt").exists(),
        "a killed child wrote later"
    );
    drop(s);

    // With keep_background the child lives on (proving the check can see it) until the
    // session ends.
    let mut options = test_options(tmp.path().join("env"));
    options.sandbox.keep_background = true;
    let keep_env = Environment::prepare(&repo, None, &options).expect("reuse");
    let ws2 = keep_env.create_workspace().expect("workspace");
    let mut s = ws2.session().expect("session");
    let m6 = format!("1000.{pid}6");
    s.run(&format!("sleep {m6} &"), T).expect("run");
    let until = Instant::now() + Duration::from_secs(2);
    while host_procs_matching(&m6).is_empty() && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        host_procs_matching(&m6).len(),
        1,
        "the background child should be visible from the host"
    );
    drop(s);
    assert!(
        survivors(&m6).is_empty(),
        "child survived the end of the session"
    );
}
