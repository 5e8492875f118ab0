//! Repository ingestion: the first stage of Soft-Verified Generation.
//!
//! [`scan`] walks a repository (honouring `.gitignore`, skipping dependency, build,
//! vendored and generated folders), parses every Python, Rust, JavaScript, TypeScript,
//! Go, Java, C and C++ file with tree-sitter on all cores, and lists every function and
//! method with its qualified name and line range. Results are cached by file content,
//! so a re-scan of an unchanged repository only reads and hashes files. [`sample`] and
//! [`shuffle`] then draw the functions a run works on, the same on every platform and release.
//!
//! Conventions of the output:
//! - `start_line` is the line of the first decorator, attribute or `template<...>`
//!   line when the definition has one, else the line of the definition itself;
//!   `end_line` is the last line of the definition (trailing comments excluded).
//! - `name` is qualified by the enclosing classes, impls, traits, modules, namespaces
//!   and functions, joined with `.` (a Go method is `Receiver.Method`, a C++
//!   out-of-line method `Class.method`).
//! - Lambdas, closures and anonymous callbacks are not listed; a function expression
//!   bound to a name (`const f = () => {}`, `obj.m = function () {}`) is.

mod alloc;
mod cache;
mod extract;
mod lang;
mod sample;
mod walk;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use alloc::prefer_small_pages;
pub use extract::{FileFunctions, RawFunction};
pub use lang::{Language, UnknownLanguage};
pub use sample::{sample, shuffle};

/// Whether a definition is a plain function or a method of a class-like scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// A free or nested function.
    Function,
    /// A function defined directly in a class, impl, trait, interface or struct.
    Method,
}

/// One function or method of a repository, as `trajforge functions` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Function {
    /// Path relative to the repository root, with `/` separators.
    pub path: String,
    /// Qualified name (`Class.method`, `outer.inner`).
    pub name: String,
    /// Source language.
    pub language: Language,
    /// First line, 1-based (first decorator/attribute line when there is one).
    pub start_line: u32,
    /// Last line, 1-based and inclusive.
    pub end_line: u32,
    /// Function or method.
    pub kind: FunctionKind,
}

impl Function {
    /// SERA's identifier for a sampled function: `path::Class.method`.
    pub fn id(&self) -> String {
        format!("{}::{}", self.path, self.name)
    }
}

/// What a scan looks at and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Keep functions under test directories and test files (and Rust `#[test]` code).
    pub include_tests: bool,
    /// Only these languages (all when `None`).
    pub languages: Option<BTreeSet<Language>>,
    /// Files larger than this many bytes are skipped.
    pub max_file_size: u64,
    /// Where parse results are cached by content hash; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Worker threads for reading and parsing (0: one per core).
    pub threads: usize,
    /// Follow symbolic links (loops are detected and skipped).
    pub follow_symlinks: bool,
    /// Skip dependency, build, virtualenv, vendored and generated folders and files.
    pub default_excludes: bool,
}

/// The default size limit for one source file: 1 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            include_tests: false,
            languages: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            cache_dir: None,
            threads: 0,
            follow_symlinks: false,
            default_excludes: true,
        }
    }
}

/// Why a file was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Contains NUL bytes.
    Binary,
    /// Not valid UTF-8.
    NotUtf8,
    /// Larger than the size limit.
    TooLarge,
    /// Could not be read (permissions, vanished, I/O error).
    Unreadable,
    /// A symbolic link (not followed by default).
    Symlink,
    /// A symbolic link loop (when following links).
    SymlinkLoop,
    /// Marked as generated (`DO NOT EDIT`, `@generated`, `*.min.js`, `*_pb2.py`, ...).
    Generated,
    /// A test file or a file under a test directory.
    Test,
    /// Parsing took longer than the per-file time limit.
    ParseTimeout,
}

impl SkipReason {
    /// Short human label.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Binary => "binary",
            SkipReason::NotUtf8 => "not UTF-8",
            SkipReason::TooLarge => "over the size limit",
            SkipReason::Unreadable => "unreadable",
            SkipReason::Symlink => "symlinks",
            SkipReason::SymlinkLoop => "symlink loops",
            SkipReason::Generated => "generated",
            SkipReason::Test => "tests",
            SkipReason::ParseTimeout => "over the parse time limit",
        }
    }
}

/// Counts that describe a scan, for the summary on stderr and for benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    /// Source files parsed (or taken from the cache), per language.
    pub files_by_language: BTreeMap<Language, usize>,
    /// Functions listed, per language.
    pub functions_by_language: BTreeMap<Language, usize>,
    /// Lines in the parsed files.
    pub lines: u64,
    /// Bytes in the parsed files.
    pub bytes: u64,
    /// Files passed over, per reason.
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Functions left out because they are test code inside non-test files.
    pub test_functions_excluded: usize,
    /// Files in which tree-sitter recovered from syntax errors (their functions are still listed).
    pub syntax_error_files: usize,
    /// Files whose results came from the cache.
    pub cache_hits: usize,
    /// Files parsed in this scan.
    pub parsed: usize,
    /// Files with no function keyword at all (Python `def`, Rust `fn`, Go `func`): counted
    /// and listed as having no functions, without being parsed.
    pub without_keyword: usize,
    /// A problem with the cache (never fatal).
    pub cache_warning: Option<String>,
}

impl ScanStats {
    /// Files parsed or read from the cache, all languages together.
    pub fn files(&self) -> usize {
        self.files_by_language.values().sum()
    }

    /// Functions listed, all languages together.
    pub fn functions(&self) -> usize {
        self.functions_by_language.values().sum()
    }
}

/// The result of [`scan`].
#[derive(Debug, Clone)]
pub struct Scan {
    /// Every function found, ordered by path then position.
    pub functions: Vec<Function>,
    /// What was read and skipped.
    pub stats: ScanStats,
}

/// Errors that stop a scan before it starts; problems with single files never do.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The repository path does not exist.
    #[error("{}: no such directory", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The repository path is a file.
    #[error("{}: is a file, not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The repository path cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// List the functions of the repository at `root`.
pub fn scan(root: &Path, options: &ScanOptions) -> Result<Scan, IngestError> {
    let meta = std::fs::metadata(root).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IngestError::NotFound {
            path: root.to_path_buf(),
        },
        _ => IngestError::Unreadable {
            path: root.to_path_buf(),
            source,
        },
    })?;
    if !meta.is_dir() {
        return Err(IngestError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    Ok(walk::run(root, options))
}

/// Parse one source text as `language` and list its functions (test code included).
///
/// `tsx` selects the TSX grammar for TypeScript.
pub fn extract_source(language: Language, source: &str, tsx: bool) -> FileFunctions {
    extract_grammar(
        match language {
            Language::Python => lang::Grammar::Python,
            Language::Rust => lang::Grammar::Rust,
            Language::JavaScript => lang::Grammar::JavaScript,
            Language::TypeScript if tsx => lang::Grammar::Tsx,
            Language::TypeScript => lang::Grammar::TypeScript,
            Language::Go => lang::Grammar::Go,
            Language::Java => lang::Grammar::Java,
            Language::C => lang::Grammar::C,
            Language::Cpp => lang::Grammar::Cpp,
        },
        source,
    )
}

/// Parse one file's source with the grammar its path names, as a scan would (a `.h` header
/// as C++, whose grammar reads C declarations too), test code included; `None` for a file no
/// grammar reads. For sources that are not in a folder, such as `git show REV:path`.
pub fn extract_path(path: &str, source: &str) -> Option<FileFunctions> {
    let grammar = match lang::detect(Path::new(path))? {
        lang::Detected::Known(g) => g,
        lang::Detected::Header => lang::Grammar::Cpp,
    };
    Some(extract_grammar(grammar, source))
}

fn extract_grammar(grammar: lang::Grammar, source: &str) -> FileFunctions {
    alloc::install();
    let mut parser = tree_sitter::Parser::new();
    match parser.set_language(&grammar.ts_language()) {
        Ok(()) => extract::extract(&mut parser, grammar, source.as_bytes()),
        // Grammar crates are pinned with the tree-sitter version, so this is unreachable
        // in a build that compiled; report it as an unparsed file rather than panicking.
        Err(_) => FileFunctions {
            functions: Vec::new(),
            syntax_errors: true,
            timed_out: false,
        },
    }
}

/// Whether a repository-relative path is test code by its name or folder.
pub fn is_test_path(rel: &str) -> bool {
    walk::is_test_path(rel)
}
