//! Real code: PyPI source distributions against Python's own `ast`, and the sources of
//! crates cargo downloaded to build this project (Rust, C, JavaScript).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use trajforge_ingest::{FunctionKind, Language, ScanOptions, scan};
use trajforge_testkit::run_ok;

type Key = (String, u32, u32);

fn test_data() -> PathBuf {
    let dir = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".cache/test-data"));
    let src = dir.join("src");
    assert!(
        src.is_dir(),
        "real-code test data missing at {}: run scripts/fetch-test-data.sh (scripts/test.sh does it)",
        src.display()
    );
    src
}

/// Functions per file as Python's `ast` sees them (through scripts/py_functions.py).
fn ast_functions(root: &Path) -> (BTreeMap<String, BTreeSet<Key>>, BTreeSet<String>) {
    let script = crate::repo_root().join("scripts/py_functions.py");
    let out = run_ok(
        Command::new("python3").arg(&script).arg(root),
        "py_functions.py failed",
    );
    let mut by_file: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if let Some(path) = v.get("skipped").and_then(|p| p.as_str()) {
            skipped.insert(path.to_string());
            continue;
        }
        let path = v["path"].as_str().expect("path").to_string();
        let key = (
            v["name"].as_str().expect("name").to_string(),
            v["start_line"].as_u64().expect("start") as u32,
            v["end_line"].as_u64().expect("end") as u32,
        );
        by_file.entry(path).or_default().insert(key);
    }
    (by_file, skipped)
}

fn python_everything() -> ScanOptions {
    ScanOptions {
        include_tests: true,
        languages: Some([Language::Python].into()),
        default_excludes: false,
        ..ScanOptions::default()
    }
}

fn assert_agrees_with_ast(root: &Path) -> usize {
    let (expected, skipped) = ast_functions(root);
    let found = scan(root, &python_everything()).expect("scan");
    let mut ours: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for f in found.functions {
        ours.entry(f.path)
            .or_default()
            .insert((f.name, f.start_line, f.end_line));
    }
    let mut differences = Vec::new();
    let files: BTreeSet<&String> = expected.keys().chain(ours.keys()).collect();
    for file in files {
        if skipped.contains(file) {
            continue;
        }
        let empty = BTreeSet::new();
        let want = expected.get(file).unwrap_or(&empty);
        let got = ours.get(file).unwrap_or(&empty);
        if want != got {
            let missing: Vec<_> = want.difference(got).take(3).collect();
            let extra: Vec<_> = got.difference(want).take(3).collect();
            differences.push(format!("{file}: missing {missing:?}, extra {extra:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{}: {} files differ from ast:\n{}",
        root.display(),
        differences.len(),
        differences.join("\n")
    );
    expected.values().map(BTreeSet::len).sum()
}

#[test]
fn python_functions_equal_ast_on_pypi_sdists() {
    let src = test_data();
    let mut checked = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src)
        .expect("test data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let n = assert_agrees_with_ast(&dir);
        checked.push((
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            n,
        ));
    }
    // The fetch script pins seven packages; a silently empty folder must not pass.
    assert!(
        checked.len() >= 7,
        "expected at least 7 sdists, found {checked:?}"
    );
    let total: usize = checked.iter().map(|(_, n)| n).sum();
    assert!(
        total > 10_000,
        "only {total} functions checked: {checked:?}"
    );
}

#[test]
fn python_functions_equal_ast_on_the_sample_repository() {
    let n = assert_agrees_with_ast(&crate::repo_root().join("examples/sample-repo"));
    assert!(n > 200, "{n}");
}

/// The folder cargo unpacks downloaded crates into.
fn registry_crate(prefix: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let mut found = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))
        .expect("cargo registry sources")
        .flatten()
    {
        for krate in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = krate.file_name().to_string_lossy().to_string();
            if name.starts_with(prefix)
                && name[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
            {
                found.push(krate.path());
            }
        }
    }
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("crate source {prefix}* not found in the cargo registry"))
}

/// Every listed function's lines really hold a definition of that name.
fn assert_names_on_their_lines(
    root: &Path,
    lang: Language,
    marker: impl Fn(&str) -> String,
) -> usize {
    let options = ScanOptions {
        languages: Some([lang].into()),
        include_tests: true,
        ..ScanOptions::default()
    };
    let found = scan(root, &options).expect("scan");
    assert!(
        found.stats.files() > 0,
        "no {lang} files under {}",
        root.display()
    );
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &found.functions {
        let lines = texts.entry(f.path.clone()).or_insert_with(|| {
            std::fs::read_to_string(root.join(&f.path))
                .expect("source")
                .lines()
                .map(String::from)
                .collect()
        });
        assert!(
            f.start_line >= 1 && f.start_line <= f.end_line && f.end_line as usize <= lines.len(),
            "{f:?}"
        );
        let last = f.name.rsplit('.').next().unwrap_or(&f.name);
        let needle = marker(last);
        let window = &lines[f.start_line as usize - 1..f.end_line as usize];
        assert!(
            window.iter().any(|l| l.contains(&needle)),
            "{}:{}-{} {:?}: no {needle:?} in its lines",
            f.path,
            f.start_line,
            f.end_line,
            f.name
        );
    }
    found.functions.len()
}

#[test]
fn rust_crate_sources() {
    let root = registry_crate("ignore-");
    let n = assert_names_on_their_lines(&root, Language::Rust, |name| format!("fn {name}"));
    assert!(n > 300, "{n}");
    let found = scan(&root, &ScanOptions::default()).expect("scan");
    let has = |path: &str, name: &str, kind: FunctionKind| {
        found
            .functions
            .iter()
            .any(|f| f.path == path && f.name == name && f.kind == kind)
    };
    assert!(has("src/walk.rs", "WalkBuilder.new", FunctionKind::Method));
    assert!(has(
        "src/gitignore.rs",
        "GitignoreBuilder.add_line",
        FunctionKind::Method
    ));
    // `#[cfg(test)] mod tests` is test code: left out by default, kept on request.
    assert!(!found.functions.iter().any(|f| f.name.starts_with("tests.")));
    assert!(found.stats.test_functions_excluded > 10);
    let all = scan(
        &root,
        &ScanOptions {
            include_tests: true,
            ..ScanOptions::default()
        },
    )
    .expect("scan");
    assert!(all.functions.iter().any(|f| f.name.starts_with("tests.")));
}

#[test]
fn c_sources_of_tree_sitter() {
    let root = registry_crate("tree-sitter-");
    let n = assert_names_on_their_lines(&root.join("src"), Language::C, |name| format!("{name}("));
    assert!(n > 300, "{n}");
    let found = scan(&root, &ScanOptions::default()).expect("scan");
    assert!(
        found
            .functions
            .iter()
            .any(|f| f.path == "src/parser.c" && f.name == "ts_parser_parse")
    );
}

#[test]
fn javascript_grammar_sources() {
    let root = registry_crate("tree-sitter-javascript-");
    let found = scan(
        &root,
        &ScanOptions {
            languages: Some([Language::JavaScript].into()),
            ..ScanOptions::default()
        },
    )
    .expect("scan");
    // grammar.js is one object literal whose rules are arrow functions bound to keys.
    for rule in ["program", "function_declaration", "arrow_function"] {
        assert!(
            found
                .functions
                .iter()
                .any(|f| f.path == "grammar.js" && f.name == rule),
            "rule {rule} missing"
        );
    }
    let n = assert_names_on_their_lines(&root, Language::JavaScript, |name| name.to_string());
    assert!(n > 100, "{n}");
}
