//! One change of a repository's history screened into a task: its diff split per file,
//! each file classified (source, test, docs, packaging, generated), the source part kept as
//! the gold patch and the test part as the test patch, or the change skipped with a reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a changed file is, for splitting a change into gold and test patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileClass {
    /// Code of the project: goes into the gold patch.
    Source,
    /// Tests and their fixtures: goes into the test patch.
    Test,
    /// Documentation, change logs, licences.
    Docs,
    /// Build, dependency and CI files: kept in the gold patch when the change has source too
    /// (tests at the gold commit may need them).
    Packaging,
    /// Lock files, minified or generated code, vendored trees: left out of both patches.
    Generated,
}

/// Folder names that hold tests.
const TEST_DIRS: &[&str] = &[
    "test",
    "tests",
    "testing",
    "__tests__",
    "spec",
    "specs",
    "testdata",
    "test_data",
    "fixtures",
];
/// Folder names that hold documentation.
const DOC_DIRS: &[&str] = &["doc", "docs", "documentation", "man", "changelog.d", "news"];
/// Folder names of generated or vendored files.
const GENERATED_DIRS: &[&str] = &["vendor", "node_modules", "dist", "build", "_build"];
/// Files of packaging, dependencies and CI (exact names, compared in lowercase).
const PACKAGING_FILES: &[&str] = &[
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "manifest.in",
    "tox.ini",
    "noxfile.py",
    "pipfile",
    "makefile",
    "cargo.toml",
    "package.json",
    "go.mod",
    "dockerfile",
    "pytest.ini",
    ".gitignore",
    ".gitattributes",
    ".editorconfig",
    ".pre-commit-config.yaml",
    ".readthedocs.yml",
    ".readthedocs.yaml",
    ".travis.yml",
    ".coveragerc",
    "codecov.yml",
    ".flake8",
    "mypy.ini",
    "ruff.toml",
];
/// Lock and generated files (exact names, lowercase).
const GENERATED_FILES: &[&str] = &[
    "cargo.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "uv.lock",
    "pipfile.lock",
    "go.sum",
    "composer.lock",
    "gemfile.lock",
];
/// Documentation file extensions.
const DOC_EXTENSIONS: &[&str] = &["md", "rst", "txt", "adoc", "asciidoc", "rdoc"];
/// Documentation file stems (`README`, `CHANGES.rst`, ...), lowercase.
const DOC_STEMS: &[&str] = &[
    "readme",
    "changelog",
    "changes",
    "history",
    "news",
    "authors",
    "contributors",
    "license",
    "licence",
    "copying",
    "notice",
    "contributing",
    "code_of_conduct",
    "security",
];

/// The class of the file at `path` (relative to the repository, `/`-separated).
pub fn classify(path: &str) -> FileClass {
    let lower = path.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let (dirs, name) = parts.split_at(parts.len() - 1);
    let name = name[0];
    let stem = name.split('.').next().unwrap_or(name);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    if GENERATED_FILES.contains(&name)
        || dirs.iter().any(|d| GENERATED_DIRS.contains(d))
        || name.contains(".min.")
        || name.ends_with("_pb2.py")
        || name.ends_with(".pb.go")
        || name.contains(".generated.")
    {
        return FileClass::Generated;
    }
    let original_name = path.rsplit('/').next().unwrap_or(path);
    if dirs.iter().any(|d| TEST_DIRS.contains(d)) || is_test_file(name, original_name) {
        return FileClass::Test;
    }
    if dirs.first() == Some(&".github")
        || dirs.first() == Some(&".circleci")
        || dirs.first() == Some(&"requirements")
        || PACKAGING_FILES.contains(&name)
        || (name.starts_with("requirements") && ext == "txt")
    {
        return FileClass::Packaging;
    }
    if dirs.iter().any(|d| DOC_DIRS.contains(d))
        || DOC_EXTENSIONS.contains(&ext)
        || DOC_STEMS.contains(&stem)
    {
        return FileClass::Docs;
    }
    FileClass::Source
}

/// Test files by name alone: `test_x.py`, `x_test.go`, `x.test.ts`, `x.spec.js`, `conftest.py`,
/// `FooTest.java` (the last by its capital, so `contest.py` stays source).
fn is_test_file(lower_name: &str, name: &str) -> bool {
    let stem_of =
        |n: &'_ str| -> String { n.rsplit_once('.').map_or(n, |(stem, _)| stem).to_string() };
    let stem = stem_of(lower_name);
    let original_stem = stem_of(name);
    lower_name == "conftest.py"
        || stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with(".test")
        || stem.ends_with(".spec")
        || original_stem.ends_with("Test")
        || original_stem.ends_with("Tests")
}

/// One file's section of a `git diff` (from its `diff --git` line to the next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff<'a> {
    /// The file's path (the new one; the old one for deletions).
    pub path: String,
    /// Its class.
    pub class: FileClass,
    /// The section's text, as in the diff.
    pub text: &'a str,
    /// Added plus removed lines.
    pub changed_lines: usize,
    /// Whether the section is binary (`GIT binary patch` or `Binary files ... differ`).
    pub binary: bool,
}

/// Splits a `git diff` (with `diff --git` headers, as `git log -p` and `git diff` print it)
/// into its file sections; text before the first header is ignored.
pub fn split_files(diff: &str) -> Vec<FileDiff<'_>> {
    let mut starts: Vec<usize> = Vec::new();
    let mut offset = 0;
    for line in diff.split_inclusive('\n') {
        if line.starts_with("diff --git ") {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut files = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(diff.len());
        let text = &diff[start..end];
        let (path, changed_lines, binary) = section_facts(text);
        files.push(FileDiff {
            class: classify(&path),
            path,
            text,
            changed_lines,
            binary,
        });
    }
    files
}

/// The path, changed-line count and binary flag of one file section.
fn section_facts(text: &str) -> (String, usize, bool) {
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let mut old = None;
    let mut new = None;
    let mut changed = 0;
    let mut binary = false;
    let mut in_hunks = false;
    for line in lines {
        if in_hunks {
            // Past the `+++` header every `+`/`-` line is content, even an added line that
            // itself begins with `++ ` (so it reads `+++ ...`).
            if line.starts_with('+') || line.starts_with('-') {
                changed += 1;
            }
            continue;
        }
        if let Some(p) = line.strip_prefix("--- ") {
            old = strip_side(p, "a/");
        } else if let Some(p) = line.strip_prefix("+++ ") {
            new = strip_side(p, "b/");
            in_hunks = true;
        } else if let Some(p) = line.strip_prefix("rename to ") {
            new = Some(unquote(p));
        } else if line.starts_with("GIT binary patch") || line.starts_with("Binary files ") {
            binary = true;
        }
    }
    let path = new
        .or(old)
        .unwrap_or_else(|| header_path(header.trim_start_matches("diff --git ")));
    (path, changed, binary)
}

/// A `---`/`+++` side without its prefix; `None` for `/dev/null`.
fn strip_side(side: &str, prefix: &str) -> Option<String> {
    let side = unquote(side.trim_end_matches('\r'));
    let side = side.split('\t').next().unwrap_or_default().to_string();
    if side == "/dev/null" {
        return None;
    }
    Some(side.strip_prefix(prefix).unwrap_or(&side).to_string())
}

/// The path of a header `a/P b/P` (same path both sides, as without renames).
fn header_path(rest: &str) -> String {
    let rest = rest.trim_end();
    if let Some(inner) = rest.strip_prefix('"') {
        let end = inner.find("\" ").map_or(rest.len(), |i| i + 2);
        let old = unquote(&rest[..end]);
        return old.strip_prefix("a/").unwrap_or(&old).to_string();
    }
    let half = rest.len().saturating_sub(1) / 2;
    rest.get(2..half).unwrap_or(rest).to_string()
}

/// Undo git's C-style quoting of a path (`"a/t\303\251st"`); unquoted paths are returned as is.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = it.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        it.next();
                    }
                }
                bytes.push(v as u8);
            }
            Some(other) => bytes.push(other),
            None => bytes.push(b'\\'),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Why a change of the history is not a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// It reverts an earlier change.
    Revert,
    /// Its diff against its first parent is empty.
    Empty,
    /// It touches documentation only.
    OnlyDocs,
    /// It touches tests only.
    OnlyTests,
    /// It touches packaging, dependency or CI files only.
    OnlyPackaging,
    /// It touches lock files or generated code only.
    OnlyGenerated,
    /// It touches several of docs, tests, packaging and generated files, but no source.
    NoSourceChange,
    /// Its source part is binary only (nothing an agent could write as text).
    BinarySource,
    /// More files or changed lines than the limits.
    Huge,
}

impl SkipReason {
    /// The label shown in summaries (`only_docs`, `huge`, ...).
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Revert => "revert",
            SkipReason::Empty => "empty",
            SkipReason::OnlyDocs => "only_docs",
            SkipReason::OnlyTests => "only_tests",
            SkipReason::OnlyPackaging => "only_packaging",
            SkipReason::OnlyGenerated => "only_generated",
            SkipReason::NoSourceChange => "no_source_change",
            SkipReason::BinarySource => "binary_source",
            SkipReason::Huge => "huge",
        }
    }
}

/// Size limits of a change worth a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most files (source and test) a change may touch.
    pub max_files: usize,
    /// Most changed lines (added plus removed, source and test) a change may have.
    pub max_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // SWE-bench's gold patches are mostly under a few files and a few hundred lines; a
        // change ten times that is a refactor or a release, not a task.
        Limits {
            max_files: 30,
            max_lines: 1500,
        }
    }
}

/// A change that is a task: its gold and test patches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitChange {
    /// Source (and, beside source, packaging) sections: what the agent has to write.
    pub gold: String,
    /// Test sections: applied over the agent's patch to score it.
    pub test: String,
    /// Every changed file with its class.
    pub files: Vec<(String, FileClass)>,
}

/// Whether a commit message says the commit reverts another (`git revert`'s wording, or the
/// `revert-N-...` branch GitHub's revert button makes).
pub fn is_revert(message: &str) -> bool {
    let first = message.lines().next().unwrap_or_default();
    message.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("Revert \"") || l.starts_with("This reverts commit ")
    }) || (first.starts_with("Merge ") && first.contains("/revert-"))
}

/// Screen one change (its message and its diff against its first parent): the split gold
/// and test patches, or why it is not a task.
pub fn screen(message: &str, diff: &str, limits: Limits) -> Result<SplitChange, SkipReason> {
    if is_revert(message) {
        return Err(SkipReason::Revert);
    }
    let files = split_files(diff);
    if files.is_empty() {
        return Err(SkipReason::Empty);
    }
    let mut per_class: BTreeMap<FileClass, usize> = BTreeMap::new();
    for f in &files {
        *per_class.entry(f.class).or_default() += 1;
    }
    if !per_class.contains_key(&FileClass::Source) {
        let only = |c| per_class.len() == 1 && per_class.contains_key(&c);
        return Err(if only(FileClass::Docs) {
            SkipReason::OnlyDocs
        } else if only(FileClass::Test) {
            SkipReason::OnlyTests
        } else if only(FileClass::Packaging) {
            SkipReason::OnlyPackaging
        } else if only(FileClass::Generated) {
            SkipReason::OnlyGenerated
        } else {
            SkipReason::NoSourceChange
        });
    }
    let counted = files
        .iter()
        .filter(|f| matches!(f.class, FileClass::Source | FileClass::Test));
    let (n_files, n_lines) = counted.fold((0, 0), |(n, l), f| (n + 1, l + f.changed_lines));
    if n_files > limits.max_files || n_lines > limits.max_lines {
        return Err(SkipReason::Huge);
    }
    if files
        .iter()
        .filter(|f| f.class == FileClass::Source)
        .all(|f| f.binary || f.changed_lines == 0)
    {
        return Err(SkipReason::BinarySource);
    }
    let mut split = SplitChange::default();
    for f in &files {
        match f.class {
            FileClass::Source | FileClass::Packaging => split.gold.push_str(f.text),
            FileClass::Test => split.test.push_str(f.text),
            FileClass::Docs | FileClass::Generated => {}
        }
        split.files.push((f.path.clone(), f.class));
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn section(path: &str, body: &str) -> String {
        format!(
            "diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n{body}"
        )
    }

    #[test]
    fn classifies_real_layouts() {
        for (path, class) in [
            ("more_itertools/more.py", FileClass::Source),
            ("more_itertools/more.pyi", FileClass::Source),
            ("src/lib.rs", FileClass::Source),
            ("tests/test_more.py", FileClass::Test),
            ("pkg/foo_test.go", FileClass::Test),
            ("web/app.spec.ts", FileClass::Test),
            ("src/__tests__/x.js", FileClass::Test),
            ("conftest.py", FileClass::Test),
            ("src/test/java/FooTest.java", FileClass::Test),
            ("docs/versions.rst", FileClass::Docs),
            ("docs/conf.py", FileClass::Docs),
            ("README.rst", FileClass::Docs),
            ("LICENSE", FileClass::Docs),
            ("CHANGES", FileClass::Docs),
            ("setup.cfg", FileClass::Packaging),
            ("pyproject.toml", FileClass::Packaging),
            ("requirements/packaging.txt", FileClass::Packaging),
            ("requirements-dev.txt", FileClass::Packaging),
            (".github/workflows/python-app.yml", FileClass::Packaging),
            ("Makefile", FileClass::Packaging),
            ("Cargo.lock", FileClass::Generated),
            ("static/app.min.js", FileClass::Generated),
            ("proto/x_pb2.py", FileClass::Generated),
            ("vendor/github.com/x/y.go", FileClass::Generated),
            ("src/latest.py", FileClass::Source),
            ("src/contest.py", FileClass::Source),
        ] {
            assert_eq!(classify(path), class, "{path}");
        }
    }

    #[test]
    fn splits_source_from_tests_and_drops_docs() {
        let diff = format!(
            "{}{}{}",
            section("more_itertools/recipes.py", "-a\n+b\n"),
            section("tests/test_recipes.py", "+def test_x(): pass\n"),
            section("docs/versions.rst", "+1.0\n")
        );
        let split = screen("Fix tail", &diff, Limits::default()).expect("a task");
        assert_eq!(split.gold, section("more_itertools/recipes.py", "-a\n+b\n"));
        assert_eq!(
            split.test,
            section("tests/test_recipes.py", "+def test_x(): pass\n")
        );
        assert_eq!(
            split.files,
            [
                ("more_itertools/recipes.py".to_string(), FileClass::Source),
                ("tests/test_recipes.py".to_string(), FileClass::Test),
                ("docs/versions.rst".to_string(), FileClass::Docs),
            ]
        );
    }

    #[test]
    fn skip_reasons() {
        let docs = section("README.rst", "+x\n");
        let tests = section("tests/test_a.py", "+x\n");
        let pkg = section("setup.cfg", "+x\n");
        let lock = section("uv.lock", "+x\n");
        let src = section("a.py", "+x\n");
        let limits = Limits::default();
        assert_eq!(screen("m", &docs, limits), Err(SkipReason::OnlyDocs));
        assert_eq!(screen("m", &tests, limits), Err(SkipReason::OnlyTests));
        assert_eq!(screen("m", &pkg, limits), Err(SkipReason::OnlyPackaging));
        assert_eq!(screen("m", &lock, limits), Err(SkipReason::OnlyGenerated));
        assert_eq!(
            screen("m", &format!("{docs}{tests}"), limits),
            Err(SkipReason::NoSourceChange)
        );
        assert_eq!(screen("m", "", limits), Err(SkipReason::Empty));
        assert_eq!(
            screen("Revert \"Add x\"\n\nThis reverts commit abc.", &src, limits),
            Err(SkipReason::Revert)
        );
        assert_eq!(
            screen(
                "Merge pull request #1148 from o/revert-1107-hints\n\nRevert \"Issue 1032\"",
                &src,
                limits
            ),
            Err(SkipReason::Revert)
        );
        let small = Limits {
            max_files: 1,
            max_lines: 100,
        };
        assert_eq!(
            screen("m", &format!("{src}{tests}"), small),
            Err(SkipReason::Huge)
        );
        let bin =
            "diff --git a/a.so b/a.so\nindex 1..2 100644\nGIT binary patch\nliteral 3\nabc\n\n";
        assert_eq!(screen("m", bin, limits), Err(SkipReason::BinarySource));
        assert!(
            screen("m", &format!("{src}{pkg}"), limits).is_ok_and(|s| s.gold.contains("setup.cfg"))
        );
    }

    #[test]
    fn paths_of_added_deleted_and_quoted_files() {
        let added = "diff --git a/n.py b/n.py\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x\n";
        let deleted = "diff --git a/tests/o.py b/tests/o.py\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/tests/o.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
        let quoted = "diff --git \"a/t\\303\\251st.py\" \"b/t\\303\\251st.py\"\nindex 1..2 100644\n--- \"a/t\\303\\251st.py\"\n+++ \"b/t\\303\\251st.py\"\n@@ -1 +1 @@\n-a\n+b\n";
        let mode = "diff --git a/run a b/run a\nold mode 100644\nnew mode 100755\n";
        let diff = format!("{added}{deleted}{quoted}{mode}");
        let files = split_files(&diff);
        let paths: Vec<(&str, usize)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.changed_lines))
            .collect();
        assert_eq!(
            paths,
            [("n.py", 1), ("tests/o.py", 1), ("tést.py", 2), ("run a", 0)]
        );
    }

    proptest! {
        /// Whatever the files, the gold and test patches are exactly the source (+packaging)
        /// and test sections, in order, and nothing else.
        #[test]
        fn gold_and_test_partition_the_sections(
            files in proptest::collection::vec(
                (prop_oneof![
                    Just("src/m.py"), Just("tests/test_m.py"), Just("docs/a.rst"),
                    Just("setup.py"), Just("yarn.lock"), Just("lib/x_test.go"), Just("pkg/core.rs"),
                ], "[a-z +-]{0,20}"),
                1..8,
            )
        ) {
            let sections: Vec<String> = files
                .iter()
                .map(|(p, body)| section(p, &format!("+{body}\n")))
                .collect();
            let diff = sections.concat();
            match screen("change", &diff, Limits { max_files: 100, max_lines: 1000 }) {
                Ok(split) => {
                    let mut gold = String::new();
                    let mut test = String::new();
                    for ((p, _), s) in files.iter().zip(&sections) {
                        match classify(p) {
                            FileClass::Source | FileClass::Packaging => gold.push_str(s),
                            FileClass::Test => test.push_str(s),
                            _ => {}
                        }
                    }
                    prop_assert_eq!(split.gold, gold);
                    prop_assert_eq!(split.test, test);
                    prop_assert_eq!(split.files.len(), files.len());
                }
                Err(reason) => {
                    prop_assert!(files.iter().all(|(p, _)| classify(p) != FileClass::Source), "{reason:?}");
                }
            }
        }
    }
}
