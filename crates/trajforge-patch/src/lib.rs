//! Unified-diff parsing and the line-level recall that trajforge uses for soft verification.
//!
//! SERA's "soft-verified generation" keeps a second rollout when the lines its patch (P2)
//! changes cover the lines the first rollout's patch (P1) changed. This crate parses the
//! patches (`git diff`, `git diff --cached`, `git format-patch`, plain `diff -u`) into a
//! [`Patch`], and computes that recall ([`line_recall`]) exactly as SPEC.md 2.6 defines it.
//! Parsing, rather than filtering raw text lines, is what lets a removed line that happens to
//! look like a header (`--- x`) still count as a change.
//!
//! ```
//! let p1 = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x = 1\n+x = 2\n";
//! let p2 = "--- a/g\n+++ b/g\n@@ -3 +3,2 @@\n-x = 1\n+x = 2\n+y\n";
//! let r = trajforge_patch::line_recall_str(p1, p2).expect("both parse");
//! assert_eq!((r.recall, r.matched, r.total), (Some(1.0), 2, 2));
//! assert_eq!(r.verdict(1.0), trajforge_patch::Verdict::Kept);
//! ```

mod parse;
mod quote;
mod recall;
mod render;

use serde::Serialize;

pub use parse::{ParseError, parse};
pub use recall::{
    ChangedLine, FileRecall, LineMatches, LinePos, Recall, RecallError, RecallReadError, Verdict,
    changed_line_count, changed_lines, line_matches, line_recall, line_recall_reader,
    line_recall_str,
};

/// A parsed patch: the files it touches, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Patch {
    /// One entry per file section of the input.
    pub files: Vec<FilePatch>,
}

/// What a patch does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Content and/or mode changed in place.
    Modified,
    /// The file is new (`new file mode`, or the old side is `/dev/null`).
    Added,
    /// The file is removed (`deleted file mode`, or the new side is `/dev/null`).
    Deleted,
    /// The file was moved (`rename from` / `rename to`), possibly with edits.
    Renamed,
    /// The file was copied (`copy from` / `copy to`), possibly with edits.
    Copied,
}

/// The changes to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePatch {
    /// Path before the change, without the `a/` prefix; `None` for added files.
    pub old_path: Option<String>,
    /// Path after the change, without the `b/` prefix; `None` for deleted files.
    pub new_path: Option<String>,
    /// What happened to the file.
    pub status: FileStatus,
    /// Mode before, from `old mode` / `deleted file mode` lines (not from `index` lines).
    pub old_mode: Option<String>,
    /// Mode after, from `new mode` / `new file mode` lines (not from `index` lines).
    pub new_mode: Option<String>,
    /// Whether git reported binary content (`Binary files ... differ` or `GIT binary patch`).
    pub binary: bool,
    /// Text hunks, in input order; empty for mode-only, binary or empty-file changes.
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The file's name: the new path, or the old path for deletions.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or_default()
    }
}

/// One `@@ -a,b +c,d @@` hunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hunk {
    /// 1-based line of the `@@` header in the parsed input.
    pub line: usize,
    /// First old line the hunk covers.
    pub old_start: usize,
    /// Number of old lines (context plus removed); an omitted count means 1.
    pub old_len: usize,
    /// First new line the hunk covers.
    pub new_start: usize,
    /// Number of new lines (context plus added); an omitted count means 1.
    pub new_len: usize,
    /// Text after the closing `@@` (git's function context), without the separating space.
    pub section: String,
    /// The body lines.
    pub lines: Vec<HunkLine>,
}

/// Whether a body line is kept, added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// ` ` unchanged line.
    Context,
    /// `+` line present only in the new file.
    Added,
    /// `-` line present only in the old file.
    Removed,
}

impl LineKind {
    /// The one-character prefix that marks this kind in a diff.
    pub fn sign(self) -> char {
        match self {
            LineKind::Context => ' ',
            LineKind::Added => '+',
            LineKind::Removed => '-',
        }
    }
}

/// One body line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HunkLine {
    /// Context, added or removed.
    pub kind: LineKind,
    /// The line without its sign and without the `\n` / `\r\n` terminator.
    pub text: String,
    /// Followed by `\ No newline at end of file`.
    pub no_newline_at_eof: bool,
    /// 1-based line in the parsed input.
    pub line: usize,
}
