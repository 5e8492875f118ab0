//! `trajforge functions` on the shipped sample repository and on awkward input.

use std::collections::BTreeSet;

use crate::{assert_success, input_error, repo_root, stderr, stdout, trajforge};

fn sample_repo() -> String {
    repo_root()
        .join("examples/sample-repo")
        .display()
        .to_string()
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn lists_functions_as_json_lines_with_summary_on_stderr() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = trajforge(&["functions", &sample_repo()], cache.path());
    assert_success(&out);
    let text = stdout(&out);
    // Field order as documented, not only the set of fields.
    assert!(text.starts_with("{\"path\":"), "{text}");
    assert!(
        text.lines()
            .all(|l| l.find("\"name\"") < l.find("\"language\"")
                && l.find("\"end_line\"") < l.find("\"kind\""))
    );
    let rows = lines(&text);
    assert!(rows.len() > 200, "{}", rows.len());
    for row in &rows {
        let obj = row.as_object().expect("object");
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["path", "name", "language", "start_line", "end_line", "kind"])
        );
        assert_eq!(row["language"], "python");
        assert!(
            !row["path"].as_str().expect("path").starts_with("tests/"),
            "tests are excluded by default"
        );
    }
    assert!(rows.iter().any(|r| r["name"] == "chunked"
        && r["path"] == "more_itertools/more.py"
        && r["kind"] == "function"));
    assert!(rows.iter().any(|r| r["kind"] == "method"));
    let summary = stderr(&out);
    assert!(
        summary.contains("scanned") && summary.contains("python"),
        "{summary}"
    );
    assert!(summary.contains("--include-tests"), "{summary}");
}

#[test]
fn sample_is_deterministic_and_seed_dependent() {
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |seed: &str| {
        stdout(&trajforge(
            &["functions", &sample_repo(), "--sample", "5", "--seed", seed],
            cache.path(),
        ))
    };
    let a = run("1");
    assert_eq!(lines(&a).len(), 5);
    assert_eq!(a, run("1"));
    assert_ne!(a, run("2"));
    let all: BTreeSet<String> = stdout(&trajforge(&["functions", &sample_repo()], cache.path()))
        .lines()
        .map(String::from)
        .collect();
    assert!(a.lines().all(|l| all.contains(l)));
}

#[test]
fn include_tests_and_lang_filter() {
    let cache = tempfile::tempdir().expect("tempdir");
    let with_tests = lines(&stdout(&trajforge(
        &["functions", &sample_repo(), "--include-tests"],
        cache.path(),
    )));
    assert!(
        with_tests
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.starts_with("tests/")))
    );
    let none = trajforge(
        &["functions", &sample_repo(), "--lang", "rust,go"],
        cache.path(),
    );
    assert!(none.status.success());
    assert!(stdout(&none).is_empty());
    let bad = trajforge(
        &["functions", &sample_repo(), "--lang", "cobol"],
        cache.path(),
    );
    let err = input_error(&bad);
    assert!(err.contains("unknown language"), "{err}");
}

#[test]
fn bad_paths_exit_2_with_one_line_error_and_hint() {
    let cache = tempfile::tempdir().expect("tempdir");
    let missing = trajforge(&["functions", "/definitely/not/here"], cache.path());
    let err = input_error(&missing);
    assert!(
        err.starts_with("error: /definitely/not/here: no such directory\nhint: "),
        "{err}"
    );
    let file = repo_root().join("Cargo.toml").display().to_string();
    let not_dir = trajforge(&["functions", &file], cache.path());
    let err = input_error(&not_dir);
    assert!(err.contains("is a file, not a directory"), "{err}");
    let bad_size = trajforge(
        &["functions", &sample_repo(), "--max-file-size", "huge"],
        cache.path(),
    );
    input_error(&bad_size);
}

#[test]
fn second_run_uses_the_cache_and_prints_the_same() {
    let cache = tempfile::tempdir().expect("tempdir");
    let first = trajforge(
        &["functions", &sample_repo(), "--summary", "json"],
        cache.path(),
    );
    let second = trajforge(
        &["functions", &sample_repo(), "--summary", "json"],
        cache.path(),
    );
    assert_eq!(stdout(&first), stdout(&second));
    let stats: serde_json::Value =
        serde_json::from_str(stderr(&second).trim()).expect("json summary");
    assert!(stats["cache_hits"].as_u64().expect("hits") > 0, "{stats}");
    assert_eq!(stats["parsed"], 0);
    let bypass = trajforge(
        &[
            "functions",
            &sample_repo(),
            "--summary",
            "json",
            "--no-cache",
        ],
        cache.path(),
    );
    let stats: serde_json::Value =
        serde_json::from_str(stderr(&bypass).trim()).expect("json summary");
    assert_eq!(stats["cache_hits"], 0);
    // --no-cache neither reads nor writes the cache.
    let fresh = tempfile::tempdir().expect("tempdir");
    let out = trajforge(&["functions", &sample_repo(), "--no-cache"], fresh.path());
    assert!(out.status.success());
    let written: Vec<_> = walk_files(fresh.path());
    assert!(written.is_empty(), "{written:?}");
}

/// Every file below `dir`.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if entry.file_type().expect("type").is_dir() {
            files.extend(walk_files(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

#[test]
fn every_language_in_one_repository() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = repo_root().join("crates/trajforge-ingest/tests/fixtures");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    let out = trajforge(
        &["functions", &dir.path().display().to_string()],
        cache.path(),
    );
    assert!(out.status.success());
    let langs: BTreeSet<String> = lines(&stdout(&out))
        .iter()
        .map(|r| r["language"].as_str().expect("lang").to_string())
        .collect();
    assert_eq!(
        langs.into_iter().collect::<Vec<_>>(),
        [
            "c",
            "cpp",
            "go",
            "java",
            "javascript",
            "python",
            "rust",
            "typescript"
        ]
    );
}
