//! Walking a repository and parsing its files on all cores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cache::{self, Cache};
use crate::extract::{self, FileFunctions};
use crate::lang::{self, Detected, Grammar};
use crate::{Function, Scan, ScanOptions, ScanStats, SkipReason};

/// Folder names skipped by default: dependencies, build output, caches, vendored code.
const EXCLUDED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "bower_components",
    "jspm_packages",
    "vendor",
    "third_party",
    "third-party",
    "thirdparty",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
    ".eggs",
    "dist",
    "build",
    "_build",
    "generated",
    "__generated__",
    ".next",
    ".nuxt",
    ".gradle",
    "Pods",
    "coverage",
];

/// Folders that hold test code.
const TEST_DIRS: &[&str] = &["test", "tests", "testing", "__tests__", "__test__"];

/// One file the walk found and that is worth reading.
struct Candidate {
    rel: String,
    abs: PathBuf,
    grammar: Grammar,
}

/// What reading and parsing one candidate gave.
enum Outcome {
    Parsed {
        result: FileFunctions,
        lines: u64,
        bytes: u64,
        origin: Origin,
    },
    Skipped(SkipReason),
}

/// Where a file's functions came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Parsed in this scan.
    Parse,
    /// The content-hash cache.
    Cache,
    /// No parse needed: the file has no function keyword at all.
    NoKeyword,
}

pub(crate) fn run(root: &Path, options: &ScanOptions) -> Scan {
    let mut stats = ScanStats::default();
    let cache_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let cache = options.cache_dir.as_ref().map(|dir| {
        let (cache, warning) = Cache::open(dir, &cache_root);
        if warning.is_some() {
            stats.cache_warning = warning;
        }
        Mutex::new(cache)
    });

    crate::alloc::install();
    // Parse while the walk goes on: the workers take files as the walk finds them.
    let results = parse_while_walking(root, options, cache.as_ref(), &mut stats);

    let mut functions = Vec::new();
    for (candidate, outcome) in results {
        match outcome {
            Outcome::Skipped(reason) => *stats.skipped.entry(reason).or_default() += 1,
            Outcome::Parsed {
                result,
                lines,
                bytes,
                origin,
            } => {
                let language = candidate.grammar.language();
                *stats.files_by_language.entry(language).or_default() += 1;
                stats.lines += lines;
                stats.bytes += bytes;
                match origin {
                    Origin::Parse => stats.parsed += 1,
                    Origin::Cache => stats.cache_hits += 1,
                    Origin::NoKeyword => stats.without_keyword += 1,
                }
                if result.syntax_errors {
                    stats.syntax_error_files += 1;
                }
                for f in result.functions {
                    if f.test && !options.include_tests {
                        stats.test_functions_excluded += 1;
                        continue;
                    }
                    *stats.functions_by_language.entry(language).or_default() += 1;
                    functions.push(Function {
                        path: candidate.rel.clone(),
                        name: f.name,
                        language,
                        start_line: f.start_line,
                        end_line: f.end_line,
                        kind: f.kind,
                    });
                }
            }
        }
    }
    if let Some(cache) = cache {
        let cache = cache
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(warning) = cache.save() {
            stats.cache_warning = Some(warning);
        }
    }
    Scan { functions, stats }
}

/// Walk the tree and hand each file of a known language to `emit` as soon as it is found;
/// `.h` headers wait for the end of the walk (they are C++ when the repository has C++).
fn collect(
    root: &Path,
    options: &ScanOptions,
    stats: &mut ScanStats,
    emit: &mut dyn FnMut(Candidate),
) {
    let default_excludes = options.default_excludes;
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .hidden(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .ignore(true)
        .parents(true)
        // Honour .gitignore even in an extracted tarball that is not a git checkout.
        .require_git(false)
        .follow_links(options.follow_symlinks)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            if entry.depth() == 0 || !entry.file_type().is_some_and(|t| t.is_dir()) {
                return true;
            }
            let name = entry.file_name().to_str().unwrap_or("");
            if name == ".git" {
                return false;
            }
            if !default_excludes {
                return true;
            }
            if EXCLUDED_DIRS.contains(&name) {
                return false;
            }
            // Virtualenvs and Cargo target folders go by any name: recognise them by content.
            let path = entry.path();
            !(path.join("pyvenv.cfg").is_file() || path.join("CACHEDIR.TAG").is_file())
        });

    let mut headers: Vec<(String, PathBuf)> = Vec::new();
    let mut has_cpp = false;
    for entry in builder.build() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let reason = if is_loop(&err) {
                    SkipReason::SymlinkLoop
                } else {
                    SkipReason::Unreadable
                };
                *stats.skipped.entry(reason).or_default() += 1;
                continue;
            }
        };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        let path = entry.path();
        let Some(detected) = lang::detect(path) else {
            continue;
        };
        if file_type.is_symlink() {
            *stats.skipped.entry(SkipReason::Symlink).or_default() += 1;
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let rel = relative(root, path);
        if !options.include_tests && is_test_path(&rel) {
            *stats.skipped.entry(SkipReason::Test).or_default() += 1;
            continue;
        }
        if options.default_excludes && is_generated_name(&rel) {
            *stats.skipped.entry(SkipReason::Generated).or_default() += 1;
            continue;
        }
        if detected == Detected::Known(Grammar::Cpp) {
            has_cpp = true;
        }
        match detected {
            Detected::Known(grammar) => {
                if options
                    .languages
                    .as_ref()
                    .is_none_or(|only| only.contains(&grammar.language()))
                {
                    emit(Candidate {
                        rel,
                        abs: path.to_path_buf(),
                        grammar,
                    });
                }
            }
            Detected::Header => headers.push((rel, path.to_path_buf())),
        }
    }
    let grammar = if has_cpp { Grammar::Cpp } else { Grammar::C };
    if options
        .languages
        .as_ref()
        .is_none_or(|only| only.contains(&grammar.language()))
    {
        for (rel, abs) in headers {
            emit(Candidate { rel, abs, grammar });
        }
    }
}

fn is_loop(err: &ignore::Error) -> bool {
    match err {
        ignore::Error::Loop { .. } => true,
        ignore::Error::WithPath { err, .. } | ignore::Error::WithDepth { err, .. } => is_loop(err),
        ignore::Error::WithLineNumber { err, .. } => is_loop(err),
        ignore::Error::Partial(errs) => errs.iter().any(is_loop),
        _ => false,
    }
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut out = String::new();
    for (i, part) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&part.as_os_str().to_string_lossy());
    }
    out
}

/// Test files and files under test folders, by the usual conventions of each language.
pub(crate) fn is_test_path(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    let mut file = "";
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            file = part;
        } else if TEST_DIRS.contains(&part) {
            return true;
        }
    }
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) => (s, e),
        None => (file, ""),
    };
    if file == "conftest.py" {
        return true;
    }
    if stem.starts_with("test_") || stem.ends_with("_test") || stem.ends_with("_tests") {
        return true;
    }
    // foo.test.ts, foo.spec.jsx, foo.test-d.ts
    if stem.contains(".test") || stem.contains(".spec") {
        return true;
    }
    ext == "java" && (stem.ends_with("Test") || stem.ends_with("Tests") || stem.ends_with("IT"))
}

/// Generated files recognisable by name alone.
fn is_generated_name(rel: &str) -> bool {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    file.ends_with(".min.js")
        || file.ends_with("_pb2.py")
        || file.ends_with("_pb2_grpc.py")
        || file.ends_with(".pb.go")
        || file.ends_with(".pb.cc")
        || file.ends_with(".pb.h")
        || file.ends_with(".bundle.js")
}

/// Generated files recognisable by a marker near the top (`Code generated ... DO NOT EDIT.`).
fn is_generated_content(text: &str) -> bool {
    let head = match text.char_indices().nth(600) {
        Some((i, _)) => &text[..i],
        None => text,
    };
    head.contains("DO NOT EDIT")
        || head.contains("@generated")
        || head.contains("auto-generated by")
}

/// Walk on this thread while worker threads parse what the walk has found so far; the
/// results come back sorted by path.
fn parse_while_walking(
    root: &Path,
    options: &ScanOptions,
    cache: Option<&Mutex<Cache>>,
    stats: &mut ScanStats,
) -> Vec<(Candidate, Outcome)> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let (tx, rx) = std::sync::mpsc::channel::<Candidate>();
    // One receiver shared by the workers; each holds the lock only to take the next file.
    let rx = Mutex::new(rx);
    let mut results: Vec<(Candidate, Outcome)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let rx = &rx;
                scope.spawn(move || {
                    let mut parsers: BTreeMap<u8, tree_sitter::Parser> = BTreeMap::new();
                    let mut buf = Vec::new();
                    let mut done = Vec::new();
                    loop {
                        let next = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(candidate) = next else { break };
                        let outcome = process(&candidate, options, cache, &mut parsers, &mut buf);
                        done.push((candidate, outcome));
                    }
                    done
                })
            })
            .collect();
        collect(root, options, stats, &mut |c| {
            // The workers outlive the walk, so the receiver is there to take it.
            let _ = tx.send(c);
        });
        drop(tx);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    results.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    results
}

fn process(
    candidate: &Candidate,
    options: &ScanOptions,
    cache: Option<&Mutex<Cache>>,
    parsers: &mut BTreeMap<u8, tree_sitter::Parser>,
    buf: &mut Vec<u8>,
) -> Outcome {
    // One open and an fstat rather than two path lookups, into a buffer the thread reuses.
    let Ok(mut file) = std::fs::File::open(&candidate.abs) else {
        return Outcome::Skipped(SkipReason::Unreadable);
    };
    match file.metadata() {
        Ok(meta) if meta.len() > options.max_file_size => {
            return Outcome::Skipped(SkipReason::TooLarge);
        }
        Ok(_) => {}
        Err(_) => return Outcome::Skipped(SkipReason::Unreadable),
    }
    buf.clear();
    // Read at most one byte past the limit: enough to see the file grew past it.
    if std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut file, options.max_file_size.saturating_add(1)),
        buf,
    )
    .is_err()
    {
        return Outcome::Skipped(SkipReason::Unreadable);
    }
    let bytes: &[u8] = buf;
    // The file may have grown between the walk and the read.
    if bytes.len() as u64 > options.max_file_size {
        return Outcome::Skipped(SkipReason::TooLarge);
    }
    if bytes.contains(&0) {
        return Outcome::Skipped(SkipReason::Binary);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Outcome::Skipped(SkipReason::NotUtf8);
    };
    if options.default_excludes && is_generated_content(text) {
        return Outcome::Skipped(SkipReason::Generated);
    }
    let lines = count_lines(bytes);
    let size = bytes.len() as u64;
    if !may_define_functions(candidate.grammar, text) {
        return Outcome::Parsed {
            result: FileFunctions {
                functions: Vec::new(),
                syntax_errors: false,
                timed_out: false,
            },
            lines,
            bytes: size,
            origin: Origin::NoKeyword,
        };
    }
    let key = cache.map(|_| cache::key(bytes, candidate.grammar.tag()));
    if let (Some(cache), Some(key)) = (cache, key.as_ref()) {
        let hit = cache.lock().ok().and_then(|mut c| c.get(key));
        if let Some(result) = hit {
            return Outcome::Parsed {
                result,
                lines,
                bytes: size,
                origin: Origin::Cache,
            };
        }
    }
    let parser = parsers.entry(candidate.grammar.tag()).or_insert_with(|| {
        let mut parser = tree_sitter::Parser::new();
        // Every grammar crate is built against this tree-sitter version.
        let _ = parser.set_language(&candidate.grammar.ts_language());
        parser
    });
    let result = extract::extract(parser, candidate.grammar, bytes);
    if result.timed_out {
        return Outcome::Skipped(SkipReason::ParseTimeout);
    }
    if let (Some(cache), Some(key)) = (cache, key)
        && let Ok(mut c) = cache.lock()
    {
        c.put(key, result.clone());
    }
    Outcome::Parsed {
        result,
        lines,
        bytes: size,
        origin: Origin::Parse,
    }
}

/// False when the file cannot hold a function, so parsing it is wasted work: every Python
/// function needs the `def` keyword, every Rust one `fn`, every Go one `func`. (Many files have
/// none: `__init__.py`, migrations, settings, constants.) The other languages declare methods
/// without a keyword, so they are always parsed.
fn may_define_functions(grammar: Grammar, text: &str) -> bool {
    match grammar {
        Grammar::Python => text.contains("def"),
        Grammar::Rust => text.contains("fn"),
        Grammar::Go => text.contains("func"),
        _ => true,
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    if bytes.last().is_some_and(|&b| b != b'\n') {
        newlines + 1
    } else {
        newlines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_a_function_keyword_are_not_parsed() {
        assert!(!may_define_functions(
            Grammar::Python,
            "X = 1\nclass A:\n    y = 2\n"
        ));
        assert!(may_define_functions(
            Grammar::Python,
            "class A:\n    async def f(self): pass\n"
        ));
        assert!(!may_define_functions(Grammar::Rust, "pub struct S;\n"));
        assert!(may_define_functions(Grammar::Rust, "pub fn f() {}"));
        assert!(!may_define_functions(Grammar::Go, "package p\nvar x = 1\n"));
        // Methods need no keyword in these, so they are always parsed.
        assert!(may_define_functions(
            Grammar::Java,
            "class A { void f() {} }"
        ));
        assert!(may_define_functions(
            Grammar::JavaScript,
            "const o = { f() {} };"
        ));
    }

    #[test]
    fn test_paths_by_folder_and_name() {
        for p in [
            "tests/test_x.py",
            "pkg/tests/helpers.py",
            "src/__tests__/a.js",
            "src/test/java/FooTest.java",
            "pkg/test_mod.py",
            "pkg/mod_test.py",
            "conftest.py",
            "server/handler_test.go",
            "web/app.test.ts",
            "web/app.spec.js",
            "web/app.test.tsx",
            "lib/FooTest.java",
            "testing/util.go",
        ] {
            assert!(is_test_path(p), "{p} should be a test path");
        }
        for p in [
            "pkg/mod.py",
            "src/contest.py",
            "src/testify.go",
            "latest/main.rs",
            "src/attest.js",
            "tests.py/x",
        ] {
            assert!(!is_test_path(p), "{p} should not be a test path");
        }
    }

    #[test]
    fn generated_markers() {
        assert!(is_generated_name("web/vendor.min.js"));
        assert!(is_generated_name("api/foo_pb2.py"));
        assert!(!is_generated_name("api/foo.py"));
        assert!(is_generated_content(
            "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n"
        ));
        assert!(!is_generated_content("package x\n\nfunc main() {}\n"));
    }

    #[test]
    fn line_counting() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
