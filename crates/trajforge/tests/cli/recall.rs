//! `trajforge recall` on patches produced by real `git diff`.

use std::path::Path;
use std::process::Command;

use trajforge_testkit::run_ok;

use crate::{assert_success, input_error, stdout, trajforge, write_file};

/// Runs git in `dir` with a fixed identity; its standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "core.autocrlf=false",
            ])
            .args(args)
            .current_dir(dir),
        &format!("git {args:?}"),
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Make P1 and P2 by editing a copy of a small repository two ways.
fn patches(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return w + h\n";
    let make = |name: &str, edited: &str, extra: Option<&str>| {
        let repo = dir.join(name);
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("geo.py"), base).expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        std::fs::write(repo.join("geo.py"), edited).expect("write");
        if let Some(extra) = extra {
            std::fs::write(repo.join("notes.txt"), extra).expect("write");
        }
        git(&repo, &["add", "-A"]);
        let diff = git(&repo, &["diff", "--cached"]);
        let path = dir.join(format!("{name}.diff"));
        std::fs::write(&path, diff).expect("write diff");
        path
    };
    let fixed =
        "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n";
    let p1 = make("one", fixed, None);
    let p2 = make("two", fixed, Some("reproduced\n"));
    (p1, p2)
}

#[test]
fn plain_and_json_on_git_diffs() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let (p1, p2) = patches(dir.path());
    let (p1, p2) = (p1.display().to_string(), p2.display().to_string());
    let out = trajforge(&["recall", &p1, &p2], cache.path());
    assert_success(&out);
    assert_eq!(stdout(&out), "1\n");
    let out = trajforge(
        &["recall", &p2, &p1, "--json", "--threshold", "0.5"],
        cache.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    // P2 has 3 lines (two in geo.py, one in notes.txt); P1 matches two of them.
    assert_eq!(v["total"], 3);
    assert_eq!(v["matched"], 2);
    assert_eq!(v["precision"], 1.0);
    assert_eq!(v["verdict"], "kept");
    assert!((v["recall"].as_f64().expect("r") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(v["files"]["notes.txt"]["matched"], 0);
}

#[test]
fn malformed_patch_names_the_line_and_exits_2() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write_file(
        dir.path(),
        "bad.diff",
        "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n",
    );
    let good = write_file(
        dir.path(),
        "good.diff",
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
    );
    let out = trajforge(&["recall", &good, &bad], cache.path());
    let err = input_error(&out);
    assert!(
        err.contains("bad.diff") && err.contains("P2") && err.contains("line 3"),
        "{err}"
    );
    let missing = trajforge(&["recall", "/nope/p1.diff", &good], cache.path());
    input_error(&missing);
}

#[test]
fn empty_p1_is_undefined() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = write_file(dir.path(), "empty.diff", "");
    let out = trajforge(&["recall", &empty, &empty, "--json"], cache.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(v["recall"].is_null());
}

#[test]
fn a_patch_at_the_limit_is_compared_and_one_byte_more_is_refused() {
    // P1 of 21,000 added lines, padded to exactly the 1 MiB patch limit of `run` and
    // `generate`; P2 repeats every third line but the last.
    const LIMIT: usize = 1 << 20;
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let n: usize = 21_000;
    let pad = "x".repeat(40);
    let lines: Vec<String> = (0..n).map(|i| format!("+{pad} {i}\n")).collect();
    let hunk = |count: usize| format!("--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,{count} @@\n");
    let mut p1 = hunk(n) + &lines.concat();
    let fill = LIMIT - p1.len();
    p1.truncate(p1.len() - 1);
    p1.push_str(&"y".repeat(fill));
    p1.push('\n');
    assert_eq!(p1.len(), LIMIT);
    let kept: Vec<&String> = lines[..n - 1].iter().step_by(3).collect();
    let p2 = hunk(kept.len()) + &kept.iter().map(|l| l.as_str()).collect::<String>();
    let (p1_path, p2_path) = (
        write_file(dir.path(), "p1.diff", &p1),
        write_file(dir.path(), "p2.diff", &p2),
    );
    let out = trajforge(&["recall", &p1_path, &p2_path, "--json"], cache.path());
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["total"], n);
    assert_eq!(v["matched"], kept.len());
    assert_eq!(v["files"]["big.txt"]["total"], n);
    // One byte more, as P1 or as P2: refused, naming the patch.
    p1.insert(p1.len() - 1, 'y');
    let over = write_file(dir.path(), "over.diff", &p1);
    for (args, which) in [([&over, &p2_path], "P1"), ([&p2_path, &over], "P2")] {
        let out = trajforge(&["recall", args[0], args[1]], cache.path());
        let err = input_error(&out);
        assert!(
            err.contains("over.diff")
                && err.contains(&format!("{which} is over the limit of {LIMIT} bytes")),
            "{err}"
        );
        assert!(
            err.contains("--max-bytes"),
            "the hint names the way out: {err}"
        );
    }
    // A user who wants it compared anyway raises the limit.
    let limit = (LIMIT + 1).to_string();
    let out = trajforge(
        &["recall", &over, &p2_path, "--json", "--max-bytes", &limit],
        cache.path(),
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        (v["total"].clone(), v["matched"].clone()),
        (n.into(), kept.len().into())
    );
}
