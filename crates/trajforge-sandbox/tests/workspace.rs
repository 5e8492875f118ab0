//! Functional tests: persistent sessions, one-shot commands, diffs, set-up, workspace cost.

// The cost measurements are printed (visible with --nocapture) for the performance notes.
#![allow(clippy::print_stdout)]

mod common;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use trajforge_sandbox::{Environment, EnvironmentOptions};

/// Bytes of disk used under `path` (allocated blocks).
fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            total += disk_usage(&entry.path());
        }
    }
    total
}

#[test]
fn session_keeps_cwd_and_variables_and_reports_exit_codes() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let mut s = ws.session().expect("session");
    let t = Duration::from_secs(10);
    assert_eq!(
        s.run("cd src && export GREETING='hi there'", Some(t))
            .expect("run")
            .exit_code,
        Some(0)
    );
    let out = s.run("pwd; echo \"$GREETING\"", Some(t)).expect("run");
    assert_eq!(out.output, "/workspace/src\nhi there\n");
    let out = s
        .run(
            "echo -n partial; exit_code_is() { return 3; }; exit_code_is",
            Some(t),
        )
        .expect("run");
    assert_eq!((out.output.as_str(), out.exit_code), ("partial", Some(3)));
    let out = s
        .run("echo out; echo err >&2; false", Some(t))
        .expect("run");
    assert_eq!(
        (out.output.as_str(), out.exit_code),
        ("out\nerr\n", Some(1))
    );
    let out = s
        .run("cat; read -r x; echo \"read:[$x]\"", Some(t))
        .expect("run");
    assert_eq!(out.output, "read:[]\n", "commands get /dev/null as stdin");
    let out = s
        .run(
            "echo \"quotes ' and \\\\ and $HOME\"\nprintf 'é\\n'",
            Some(t),
        )
        .expect("run");
    assert_eq!(out.output, "quotes ' and \\ and /root\né\n");
    let out = s.run("if then", Some(t)).expect("syntax error");
    assert_eq!(out.exit_code, Some(2));
    assert!(!out.shell_restarted);
    // `exit` ends the shell: reported, restarted, state lost.
    let out = s.run("echo bye; exit 7", Some(t)).expect("exit");
    assert_eq!(out.exit_code, Some(7));
    assert!(
        out.shell_restarted
            && out.output.starts_with("bye\n")
            && out.output.contains("shell was restarted")
    );
    let out = s
        .run("pwd; echo \"[$GREETING]\"", Some(t))
        .expect("after restart");
    assert_eq!(out.output, "/workspace\n[]\n");
    assert!(!out.shell_restarted);
    assert_eq!(s.restarts(), 1);
}

#[test]
fn session_per_command_overhead_is_small() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let started = Instant::now();
    let mut s = ws.session().expect("session");
    let startup = started.elapsed();
    let n = 200;
    let started = Instant::now();
    for i in 0..n {
        let out = s.run(&format!("echo {i}"), None).expect("run");
        assert_eq!(out.output, format!("{i}\n"));
    }
    let per = started.elapsed() / n;
    drop(s);
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(ws.run("true", None).expect("oneshot").exit_code, Some(0));
    }
    let oneshot = started.elapsed() / 10;
    println!(
        "session start {startup:?}, per-command round trip {per:?}, one-shot sandbox {oneshot:?}"
    );
    assert!(
        per < Duration::from_millis(20),
        "per-command overhead {per:?}"
    );
}

#[test]
fn output_is_clipped_with_a_note() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let mut s = ws.session().expect("session");
    let out = s.run("seq 1 100000; echo done", None).expect("run");
    assert!(out.clipped);
    assert!(out.output.starts_with("1\n2\n3\n"));
    assert!(out.output.ends_with("99999\n100000\ndone\n"));
    assert!(out.output.contains("[... output clipped: "));
    assert!(out.output.len() < 64 * 1024 + 200);
    let one = ws.clone();
    drop(s);
    let out = one
        .run("head -c 300000 /dev/zero | tr '\\0' x", None)
        .expect("oneshot");
    assert!(out.clipped && out.output.contains("bytes omitted"));
}

#[test]
fn timeouts_kill_the_command_and_keep_or_restart_the_shell() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let mut s = ws.session().expect("session");
    s.run("cd src; export KEEP=1", None).expect("run");
    let started = Instant::now();
    let out = s
        .run(
            "echo before; sleep 30; echo after",
            Some(Duration::from_millis(500)),
        )
        .expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.timed_out && !out.shell_restarted, "{out:?}");
    assert!(
        out.output.starts_with("before\n") && !out.output.contains("\nafter\n"),
        "{out:?}"
    );
    assert!(out.output.contains("timed out"));
    let out = s.run("pwd; echo $KEEP", None).expect("run");
    assert_eq!(
        out.output, "/workspace/src\n1\n",
        "state survives an interrupted command"
    );
    // A builtin loop cannot be interrupted from outside: the shell is replaced.
    let out = s
        .run("while :; do :; done", Some(Duration::from_millis(300)))
        .expect("run");
    assert!(
        out.timed_out && out.shell_restarted && out.exit_code.is_none(),
        "{out:?}"
    );
    let out = s.run("pwd", None).expect("run");
    assert_eq!(out.output, "/workspace\n");
    // One-shot commands time out too.
    drop(s);
    let out = ws
        .run("sleep 30", Some(Duration::from_millis(300)))
        .expect("oneshot");
    assert!(out.timed_out && out.exit_code.is_none());
}

#[test]
fn diff_covers_new_deleted_modified_and_binary_files() {
    let tmp = open_tempdir();
    let (env, ws) = small_workspace(tmp.path(), "HEAD~1");
    assert_eq!(ws.diff().expect("empty diff"), "");
    let mut s = ws.session().expect("session");
    let out = s
        .run(
            "cat README; git log --format=%s | cat; rm gone.txt; printf '\\001\\002\\000x' > new.bin; \
             printf 'def f():\\n    return 2\\n' > src/lib.py; printf 'zz\\0' >> blob.bin; \
             mkdir -p pkg/sub && echo new > pkg/sub/new.txt",
            None,
        )
        .expect("edit");
    assert_eq!(
        out.output, "hello\nbase\n",
        "snapshot is the base commit with no later history"
    );
    let patch = s.diff().expect("diff");
    drop(s);
    assert_eq!(
        patch,
        ws.diff().expect("diff again"),
        "session and one-shot diffs agree"
    );
    assert!(
        patch.contains("diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644"),
        "{patch}"
    );
    assert!(
        patch.contains("Binary files a/blob.bin and b/blob.bin differ"),
        "{patch}"
    );
    assert!(
        patch.contains("Binary files /dev/null and b/new.bin differ"),
        "{patch}"
    );
    assert!(patch.contains("-    return 1\n+    return 2\n"), "{patch}");
    assert!(
        patch.contains("new file mode 100644")
            && patch.contains("+++ b/pkg/sub/new.txt\n@@ -0,0 +1 @@\n+new\n")
    );
    // The base snapshot is untouched and a second workspace starts clean.
    assert!(env.base_dir().join("gone.txt").exists());
    let other = env.create_workspace().expect("second workspace");
    assert_eq!(other.diff().expect("clean"), "");
    // A session holds the overlay: no second user at once.
    let _held = ws.session().expect("session");
    assert!(ws.diff().is_err() && ws.session().is_err());
}

#[test]
fn dropping_a_workspace_removes_its_directories() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let dir = ws.path().to_owned();
    let mut s = ws.session().expect("session");
    s.run("mkdir -p a/b && echo x > a/b/c && rm README", None)
        .expect("run");
    assert!(dir.join("upper/a/b/c").exists());
    drop(ws);
    assert!(dir.exists(), "the session still uses it");
    drop(s);
    assert!(!dir.exists(), "{dir:?} left behind");
}

#[test]
fn setup_runs_once_with_network_and_is_shared_read_only() {
    let tmp = open_tempdir();
    let repo = small_repo(tmp.path());
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let setup = format!(
        "set -e; echo ping > /dev/tcp/127.0.0.1/{port}; python3 -m venv --without-pip .venv; \
         mkdir -p build && echo artefact > build/out.txt; echo 'generated' >> README"
    );
    let options = test_options(tmp.path().join("env"));
    let env = Environment::prepare(&repo, Some(&setup), &options).expect("prepare with set-up");
    assert!(!env.reused());
    let (mut conn, _) = listener.accept().expect("set-up reached the network");
    let mut got = String::new();
    conn.read_to_string(&mut got).expect("read");
    assert_eq!(got, "ping\n");
    let ws = env.create_workspace().expect("workspace");
    let mut s = ws.session().expect("session");
    let out = s
        .run(
            ".venv/bin/python -c 'import sys; print(sys.prefix)'; cat build/out.txt",
            None,
        )
        .expect("run");
    assert_eq!(out.output, "/workspace/.venv\nartefact\n");
    assert_eq!(
        s.diff().expect("diff"),
        "",
        "set-up products are not part of the episode's patch"
    );
    s.run("echo change >> README", None).expect("edit");
    let patch = s.diff().expect("diff");
    assert!(patch.contains(" generated\n+change\n"), "{patch}");
    // Preparing again with the same commit and command reuses the snapshot.
    let again = Environment::prepare(&repo, Some(&setup), &options).expect("reuse");
    assert!(again.reused());
    let reopened =
        Environment::open(&tmp.path().join("env"), options.sandbox.clone()).expect("open");
    assert_eq!(reopened.commit(), env.commit());
    // A failing set-up is reported with its output.
    let bad = test_options(tmp.path().join("env-bad"));
    let err = Environment::prepare(&repo, Some("echo nope; exit 4"), &bad).expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains("exit code Some(4)") && text.contains("nope"),
        "{text}"
    );
}

#[test]
fn workspace_creation_is_fast_and_small_on_a_big_repository() {
    let tmp = open_tempdir();
    let repo = tmp.path().join("big");
    let started = Instant::now();
    // 2,000 files of 250 lines: a 500k-line repository.
    for d in 0..20 {
        let dir = repo.join(format!("pkg{d}"));
        fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            let body: String = (0..250)
                .map(|l| format!("line {l} of file {f} in package {d}\n"))
                .collect();
            fs::write(dir.join(format!("mod{f}.py")), body).expect("write");
        }
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "big"]);
    let make_repo = started.elapsed();
    let started = Instant::now();
    let env = prepare(tmp.path(), &repo, "HEAD", None);
    let prepare_time = started.elapsed();
    let base_size = disk_usage(env.base_dir());
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let ws = env.create_workspace().expect("workspace");
        times.push(started.elapsed());
        sizes.push(disk_usage(ws.path()));
        keep.push(ws);
    }
    let ws = &keep[0];
    let started = Instant::now();
    let mut s = ws.session().expect("session");
    let session_start = started.elapsed();
    let out = s
        .run("wc -l pkg7/mod3.py && echo x >> pkg7/mod3.py", None)
        .expect("run");
    assert_eq!(out.output, "250 pkg7/mod3.py\n");
    let started = Instant::now();
    let patch = s.diff().expect("diff");
    let diff_time = started.elapsed();
    assert!(patch.contains("+++ b/pkg7/mod3.py"));
    let after = disk_usage(ws.path());
    let worst_time = times.iter().max().copied().unwrap_or_default();
    let worst_size = sizes.iter().max().copied().unwrap_or_default();
    println!(
        "big repo: made in {make_repo:?}, prepare {prepare_time:?}, base {} KB; workspace creation worst {worst_time:?} \
         (all: {times:?}), new disk {} KB; session start {session_start:?}; diff {diff_time:?}; \
         workspace after edit + diff {} KB",
        base_size / 1024,
        worst_size / 1024,
        after / 1024
    );
    assert!(
        worst_time < Duration::from_millis(50),
        "creation took {worst_time:?}"
    );
    assert!(worst_size < 10 << 20, "creation used {worst_size} bytes");
    assert!(after < 10 << 20, "an edit plus diff used {after} bytes");
    let t = Instant::now();
    drop(s);
    println!("drop session {:?}", t.elapsed());
    let t = Instant::now();
    drop(keep);
    println!("drop workspaces {:?}", t.elapsed());
    let t = Instant::now();
    drop(env);
    drop(tmp);
    println!("drop tmp {:?}", t.elapsed());
}

#[test]
fn files_can_be_read_and_written_through_the_session() {
    let tmp = open_tempdir();
    let (_env, ws) = small_workspace(tmp.path(), "HEAD");
    let mut s = ws.session().expect("session");
    assert_eq!(
        s.read_file("/workspace/blob.bin").expect("read"),
        vec![0u8, 1, 2, 3, 0, 255]
    );
    s.run("cd src", None).expect("cd");
    assert_eq!(
        s.read_file("lib.py").expect("relative"),
        b"def f():\n    return 1\n"
    );
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    s.write_file("/workspace/it's new.bin", &data)
        .expect("write");
    assert_eq!(
        s.read_file("/workspace/it's new.bin").expect("read back"),
        data
    );
    s.write_file("/workspace/empty", b"").expect("write empty");
    assert_eq!(s.read_file("/workspace/empty").expect("read empty"), b"");
    assert!(s.read_file("/workspace/missing").is_err());
    assert!(s.read_file("/workspace/src").is_err());
    assert!(s.write_file("/usr/nope", b"x").is_err());
    assert!(s.write_file("/workspace/no/such/dir/f", b"x").is_err());
    let patch = s.diff().expect("diff");
    assert!(patch.contains("b/it's new.bin"), "{patch}");
}

/// Handles can move to other threads (the agent loop will drive them from tokio).
#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<trajforge_sandbox::Environment>();
    check::<trajforge_sandbox::Workspace>();
    check::<trajforge_sandbox::Session>();
}

#[test]
fn root_callers_get_a_clear_error_for_private_work_directories() {
    use std::os::unix::fs::PermissionsExt;
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return; // only root drops to the sandbox uid, which needs a traversable path
    }
    require_bwrap();
    let tmp = open_tempdir();
    let repo = small_repo(tmp.path());
    let private = tmp.path().join("private");
    fs::create_dir(&private).expect("mkdir");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
    let options = EnvironmentOptions::new(private.join("env"));
    let err = Environment::prepare(&repo, None, &options).expect_err("must be refused");
    assert!(
        err.to_string()
            .contains("not accessible to the sandbox uid 65534"),
        "{err}"
    );
}

// The skip note goes to the test's output, where a reader of the test run looks for it.
#[allow(clippy::print_stderr)]
#[test]
fn a_container_image_that_is_not_there_is_a_clear_error_not_a_pull() {
    let podman = ["/usr/bin/podman", "/usr/local/bin/podman"]
        .iter()
        .any(|p| Path::new(p).is_file());
    if !podman {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI: podman not installed; run scripts/setup.sh"
        );
        eprintln!("skipping: podman is not installed (scripts/setup.sh installs it)");
        return;
    }
    let tmp = open_tempdir();
    let repo = small_repo(tmp.path());
    let mut options = test_options(tmp.path().join("env"));
    options.sandbox.backend = trajforge_sandbox::Backend::Container {
        engine: trajforge_sandbox::Engine::Podman,
        image: "localhost/trajforge-no-such-image:0".into(),
    };
    let err = Environment::prepare(&repo, None, &options).expect_err("no such image");
    let text = err.to_string();
    assert!(
        matches!(err, trajforge_sandbox::SandboxError::ImageMissing { .. })
            && text.contains("localhost/trajforge-no-such-image:0")
            && text.contains("never pulled"),
        "{text}"
    );
}
