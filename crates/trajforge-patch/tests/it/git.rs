//! Parses real `git diff --cached` and `git format-patch` output of a scratch repository.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use trajforge_patch::{FilePatch, FileStatus, LineKind, Patch, changed_lines, line_recall, parse};
use trajforge_testkit::run_ok;

/// A scratch directory removed on drop (tempfile is not a dependency of this crate).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("trajforge-patch-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs git with a neutral configuration, so the user's settings cannot change the output.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut git = Command::new("git");
    git.args(["-c", "core.autocrlf=false", "-c", "core.quotePath=true"])
        .args([
            "-c",
            "diff.mnemonicPrefix=false",
            "-c",
            "diff.noprefix=false",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "format.signature=2.40.0",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    let out = run_ok(&mut git, &format!("git {args:?}"));
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).expect("write file");
}

#[cfg(unix)]
fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A repository whose staged changes cover every kind of file change the parser handles.
fn staged_repo() -> Scratch {
    let scratch = Scratch::new("repo");
    let dir = scratch.0.as_path();
    git(dir, &["init", "-q", "-b", "main"]);
    write(dir, "modify.txt", "one\ntwo\nthree\nfour\nfive\n");
    write(dir, "delete.txt", "gone\n");
    let numbered: String = (1..=12).map(|i| format!("line {i}\n")).collect();
    write(dir, "rename-src.txt", &numbered);
    write(dir, "script.sh", "#!/bin/sh\necho hi\n");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    write(dir, "image.bin", &bytes);
    write(dir, "noeol.txt", "first\nsecond");
    write(dir, "crlf.txt", "alpha\r\nbeta\r\ngamma\r\n");
    write(dir, "dashes.txt", "keep\n-- x\nend\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);

    write(dir, "modify.txt", "one\ntwo\nTHREE\nfour\nfive\nsix\n");
    fs::remove_file(dir.join("delete.txt")).expect("delete");
    fs::remove_file(dir.join("rename-src.txt")).expect("rename");
    write(
        dir,
        "renamed.txt",
        numbered.replace("line 7\n", "line seven\n"),
    );
    #[cfg(unix)]
    set_executable(&dir.join("script.sh"));
    let mut changed = bytes.clone();
    changed[10] = 0xff;
    write(dir, "image.bin", &changed);
    write(dir, "noeol.txt", "first\nsecond changed");
    write(dir, "crlf.txt", "alpha\r\nBETA\r\ngamma\r\n");
    write(dir, "dashes.txt", "keep\nend\n");
    write(dir, "new.txt", "brand new\n   \n");
    write(dir, "sp ace \u{e9}.txt", "quoted\n");
    git(dir, &["add", "-A"]);
    scratch
}

fn file<'p>(patch: &'p Patch, path: &str) -> &'p FilePatch {
    patch
        .files
        .iter()
        .find(|f| f.path() == path)
        .unwrap_or_else(|| panic!("{path} not in patch: {patch:#?}"))
}

fn changed_in(patch: &Patch, path: &str) -> Vec<String> {
    changed_lines(patch)
        .into_iter()
        .filter(|l| l.file == path)
        .map(|l| l.text)
        .collect()
}

/// The checks shared by every rendering of the same staged changes.
fn check_staged(patch: &Patch) {
    assert_eq!(patch.files.len(), 10, "{patch:#?}");

    let modify = file(patch, "modify.txt");
    assert_eq!(modify.status, FileStatus::Modified);
    assert_eq!(modify.old_path.as_deref(), Some("modify.txt"));
    assert_eq!(modify.hunks.len(), 1);
    let hunk = &modify.hunks[0];
    assert_eq!(
        (hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len),
        (1, 5, 1, 6)
    );
    assert_eq!(
        changed_in(patch, "modify.txt"),
        ["-three", "+THREE", "+six"]
    );

    let new = file(patch, "new.txt");
    assert_eq!(new.status, FileStatus::Added);
    assert_eq!(new.old_path, None);
    assert_eq!(new.new_mode.as_deref(), Some("100644"));
    assert_eq!((new.hunks[0].old_start, new.hunks[0].old_len), (0, 0));
    // the whitespace-only added line is a body line but not a changed line
    assert_eq!(new.hunks[0].lines.len(), 2);
    assert_eq!(changed_in(patch, "new.txt"), ["+brand new"]);

    let quoted = file(patch, "sp ace \u{e9}.txt");
    assert_eq!(quoted.status, FileStatus::Added);
    assert_eq!(changed_in(patch, "sp ace \u{e9}.txt"), ["+quoted"]);

    let deleted = file(patch, "delete.txt");
    assert_eq!(deleted.status, FileStatus::Deleted);
    assert_eq!(deleted.new_path, None);
    assert_eq!(deleted.old_mode.as_deref(), Some("100644"));
    assert_eq!(changed_in(patch, "delete.txt"), ["-gone"]);

    let renamed = file(patch, "renamed.txt");
    assert_eq!(renamed.status, FileStatus::Renamed);
    assert_eq!(renamed.old_path.as_deref(), Some("rename-src.txt"));
    assert_eq!(changed_in(patch, "renamed.txt"), ["-line 7", "+line seven"]);

    let script = file(patch, "script.sh");
    assert_eq!(script.status, FileStatus::Modified);
    if cfg!(unix) {
        assert_eq!(script.old_mode.as_deref(), Some("100644"));
        assert_eq!(script.new_mode.as_deref(), Some("100755"));
    }
    assert!(script.hunks.is_empty());

    let image = file(patch, "image.bin");
    assert!(image.binary);
    assert!(image.hunks.is_empty());

    let noeol = file(patch, "noeol.txt");
    let flagged: Vec<(LineKind, &str)> = noeol.hunks[0]
        .lines
        .iter()
        .filter(|l| l.no_newline_at_eof)
        .map(|l| (l.kind, l.text.as_str()))
        .collect();
    assert_eq!(
        flagged,
        [
            (LineKind::Removed, "second"),
            (LineKind::Added, "second changed")
        ]
    );

    // CRLF content in an LF patch: the \r\n is the terminator, so the CR is not content.
    assert_eq!(changed_in(patch, "crlf.txt"), ["-beta", "+BETA"]);

    // Removing the line "-- x" renders as "--- x": a body line, counted.
    assert_eq!(changed_in(patch, "dashes.txt"), ["--- x"]);
    assert_eq!(file(patch, "dashes.txt").hunks[0].lines.len(), 3);

    let itself = line_recall(patch, patch);
    assert_eq!(itself.recall, Some(1.0));
    assert_eq!(itself.total, 13);
}

#[test]
fn parses_git_diff_cached() {
    let repo = staged_repo();
    let text = git(&repo.0, &["diff", "--cached", "-M"]);
    assert!(text.contains("\"b/sp ace \\303\\251.txt\""), "{text}");
    assert!(text.contains("Binary files a/image.bin and b/image.bin differ"));
    let patch = parse(&text).expect("git diff parses");
    check_staged(&patch);
    // the hunk header line numbers point at the "@@" lines of the input
    let lines: Vec<&str> = text.lines().collect();
    for hunk in patch.files.iter().flat_map(|f| &f.hunks) {
        assert!(lines[hunk.line - 1].starts_with("@@ -"));
        for body in &hunk.lines {
            let line = lines[body.line - 1].trim_end_matches('\r');
            assert_eq!(&line[1..], body.text);
        }
    }
}

#[test]
fn parses_git_binary_patches() {
    let repo = staged_repo();
    let text = git(&repo.0, &["diff", "--cached", "-M", "--binary"]);
    assert!(text.contains("GIT binary patch"));
    let patch = parse(&text).expect("binary diff parses");
    check_staged(&patch);
    let plain = parse(&git(&repo.0, &["diff", "--cached", "-M"])).expect("parses");
    assert_eq!(changed_lines(&patch), changed_lines(&plain));
}

#[test]
fn parses_format_patch_mbox() {
    let repo = staged_repo();
    let dir = repo.0.as_path();
    let staged = parse(&git(dir, &["diff", "--cached", "-M"])).expect("parses");
    git(
        dir,
        &[
            "commit",
            "-q",
            "-m",
            "Change everything\n\nA body line\n--- not a header\n",
        ],
    );
    write(dir, "modify.txt", "one\ntwo\nTHREE\nfour\nfive\nseven\n");
    git(dir, &["commit", "-qam", "second"]);
    let text = git(dir, &["format-patch", "-2", "--stdout", "-M"]);
    assert!(text.contains("\n-- \n2.40.0\n"), "{text}");
    assert!(text.contains("Subject: [PATCH 2/2] second"));
    let patch = parse(&text).expect("format-patch parses");
    let (first, second) = patch.files.split_at(10);
    let first = Patch {
        files: first.to_vec(),
    };
    check_staged(&first);
    assert_eq!(changed_lines(&first), changed_lines(&staged));
    assert_eq!(second.len(), 1);
    let second = Patch {
        files: second.to_vec(),
    };
    assert_eq!(changed_in(&second, "modify.txt"), ["-six", "+seven"]);
}
