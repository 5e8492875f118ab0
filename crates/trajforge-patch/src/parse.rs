//! The unified-diff parser.
//!
//! A line-oriented state machine: text before the first file is ignored (commit messages,
//! mail headers, diffstats), a file starts at `diff --git` or at a `--- `/`+++ ` pair, and hunk
//! bodies are delimited by the counts in their `@@` header, as `git apply` does. Trusting the
//! counts is what makes a removed line `-- x` (rendered `--- x`) a body line, not a header.

use std::collections::VecDeque;
use std::rc::Rc;

use serde::Serialize;

use crate::quote::unquote;
use crate::{FilePatch, FileStatus, Hunk, HunkLine, LineKind, Patch};

/// Why a patch could not be parsed, with the 1-based input line it was noticed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line of the input.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// Parses unified-diff text (git or plain `diff -u`) into a [`Patch`].
///
/// Both `\n` and `\r\n` end a line; any other `\r` is content. Empty input, or input with no
/// file section at all, yields an empty patch.
pub fn parse(text: &str) -> Result<Patch, ParseError> {
    let mut files = Collect::default();
    Parser::new(text_lines(text), &mut files).run()?;
    Ok(Patch { files: files.0 })
}

/// The lines of `text`, as the parser reads them.
pub(crate) fn text_lines(text: &str) -> impl Iterator<Item = Line> + '_ {
    text.split_inclusive('\n')
        .map(|l| Ok(Rc::from(strip_eol(l))))
}

/// A line without its `\n` or `\r\n` terminator.
pub(crate) fn strip_eol(line: &str) -> &str {
    match line.strip_suffix('\n') {
        Some(l) => l.strip_suffix('\r').unwrap_or(l),
        None => line,
    }
}

/// Where the parser puts what it reads: [`parse`] keeps everything; a streaming reader
/// ([`crate::line_recall_reader`]) looks at each body line once and keeps none.
pub(crate) trait Sink {
    /// A body line of `hunk`, in the file named `path` (as [`FilePatch::path`] will say).
    fn line(&mut self, path: &str, hunk: &mut Hunk, line: HunkLine);
    /// `\ No newline at end of file` after the last line given to [`Sink::line`].
    fn no_newline(&mut self, hunk: &mut Hunk);
    /// A finished hunk of the current file.
    fn hunk(&mut self, hunks: &mut Vec<Hunk>, hunk: Hunk);
    /// A finished file.
    fn file(&mut self, file: FilePatch);
}

/// The sink of [`parse`]: the whole patch.
#[derive(Default)]
struct Collect(Vec<FilePatch>);

impl Sink for Collect {
    fn line(&mut self, _path: &str, hunk: &mut Hunk, line: HunkLine) {
        hunk.lines.push(line);
    }
    fn no_newline(&mut self, hunk: &mut Hunk) {
        if let Some(last) = hunk.lines.last_mut() {
            last.no_newline_at_eof = true;
        }
    }
    fn hunk(&mut self, hunks: &mut Vec<Hunk>, hunk: Hunk) {
        hunks.push(hunk);
    }
    fn file(&mut self, file: FilePatch) {
        self.0.push(file);
    }
}

/// A line of input, or why the input could not be read there.
pub(crate) type Line = Result<Rc<str>, ParseError>;

/// The input lines the parser may still look at: from its cursor to as far as it has looked
/// ahead (a few lines, except over runs of blank lines), so memory does not grow with the
/// input.
struct Window<I> {
    source: I,
    lines: VecDeque<Rc<str>>,
    /// Index in the input of `lines[0]`.
    first: usize,
    /// Why reading stopped early; reported once the parser has used every line before it.
    failed: Option<ParseError>,
}

impl<I: Iterator<Item = Line>> Window<I> {
    /// Line `index`; lines before `keep_from` are dropped.
    fn get(&mut self, keep_from: usize, index: usize) -> Option<Rc<str>> {
        while self.first < keep_from && self.lines.pop_front().is_some() {
            self.first += 1;
        }
        while self.first + self.lines.len() <= index && self.failed.is_none() {
            match self.source.next()? {
                Ok(line) => self.lines.push_back(line),
                Err(e) => self.failed = Some(e),
            }
        }
        self.lines.get(index.checked_sub(self.first)?).cloned()
    }
}

pub(crate) struct Parser<'s, I, S> {
    lines: Window<I>,
    pos: usize,
    sink: &'s mut S,
}

/// Old and new name of a file; `None` is `/dev/null`.
type Names = (Option<String>, Option<String>);

/// Which kind of diff a file section came from; decides how prefixes are stripped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Git,
    Plain,
}

fn error(index: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line: index + 1,
        message: message.into(),
    }
}
impl<'s, I: Iterator<Item = Line>, S: Sink> Parser<'s, I, S> {
    pub(crate) fn new(lines: I, sink: &'s mut S) -> Self {
        Parser {
            lines: Window {
                source: lines,
                lines: VecDeque::new(),
                first: 0,
                failed: None,
            },
            pos: 0,
            sink,
        }
    }

    /// Line `index` of the input (at or after the cursor).
    fn at(&mut self, index: usize) -> Option<Rc<str>> {
        self.lines.get(self.pos, index)
    }

    fn peek(&mut self) -> Option<Rc<str>> {
        self.at(self.pos)
    }

    /// Parses the whole input, handing each file to the sink.
    pub(crate) fn run(mut self) -> Result<(), ParseError> {
        let result = self.files();
        // A read error ends the input early: it, not what the cut made look wrong, is the cause.
        match self.lines.failed.take() {
            Some(e) => Err(e),
            None => result,
        }
    }

    fn files(&mut self) -> Result<(), ParseError> {
        // Before the first file (and after a mail signature) anything goes; between files
        // only known separators do, so a truncated or mangled patch is not half-accepted.
        let mut in_preamble = true;
        while let Some(line) = self.peek() {
            if line.starts_with("diff --git ") {
                let file = self.git_file()?;
                self.sink.file(file);
                in_preamble = false;
            } else if self.plain_header_at(self.pos) {
                let file = self.plain_file()?;
                self.sink.file(file);
                in_preamble = false;
            } else if let Some(file) = plain_binary(&line) {
                self.sink.file(file);
                self.pos += 1;
                in_preamble = false;
            } else if line.starts_with("@@") {
                return Err(error(self.pos, "hunk header outside any file"));
            } else if in_preamble || line.trim().is_empty() || is_plain_noise(&line) {
                self.pos += 1;
            } else if &*line == "-- " || is_commit_separator(&line) {
                // format-patch signature, next message of an mbox, next commit of `git log -p`
                in_preamble = true;
                self.pos += 1;
            } else {
                return Err(error(
                    self.pos,
                    format!("unexpected line between files: {line:?}"),
                ));
            }
        }
        Ok(())
    }

    /// A `--- ` line directly followed by a `+++ ` line.
    fn plain_header_at(&mut self, index: usize) -> bool {
        self.at(index).is_some_and(|l| l.starts_with("--- "))
            && self.at(index + 1).is_some_and(|l| l.starts_with("+++ "))
    }

    /// A line that can only start something new, so it ends a hunk region.
    fn header_at(&mut self, index: usize) -> bool {
        self.at(index)
            .is_some_and(|l| l.starts_with("diff ") || l.starts_with("@@") || &*l == "-- ")
            || self.plain_header_at(index)
    }

    fn git_file(&mut self) -> Result<FilePatch, ParseError> {
        let start = self.pos;
        let first = self.peek().unwrap_or_default();
        let names = split_git_names(&first["diff --git ".len()..]);
        let (mut old_path, mut new_path) = match names {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let mut head = Header::default();
        self.pos += 1;
        while let Some(line) = self.peek() {
            if let Some(mode) = line.strip_prefix("old mode ") {
                head.old_mode = Some(mode.trim().to_owned());
            } else if let Some(mode) = line.strip_prefix("new mode ") {
                head.new_mode = Some(mode.trim().to_owned());
            } else if let Some(mode) = line.strip_prefix("deleted file mode ") {
                head.deleted = true;
                head.old_mode = Some(mode.trim().to_owned());
            } else if let Some(mode) = line.strip_prefix("new file mode ") {
                head.added = true;
                head.new_mode = Some(mode.trim().to_owned());
            } else if let Some(name) = strip_any(&line, &["rename from ", "rename old "]) {
                head.renamed = true;
                old_path = Some(self.header_name(name)?);
            } else if let Some(name) = strip_any(&line, &["rename to ", "rename new "]) {
                head.renamed = true;
                new_path = Some(self.header_name(name)?);
            } else if let Some(name) = line.strip_prefix("copy from ") {
                head.copied = true;
                old_path = Some(self.header_name(name)?);
            } else if let Some(name) = line.strip_prefix("copy to ") {
                head.copied = true;
                new_path = Some(self.header_name(name)?);
            } else if strip_any(
                &line,
                &["index ", "similarity index ", "dissimilarity index "],
            )
            .is_some()
            {
                // Carries nothing the metric or the status needs.
            } else if binary_files_names(&line).is_some() {
                head.binary = true;
            } else if &*line == "GIT binary patch" {
                head.binary = true;
                self.pos += 1;
                self.skip_binary_data();
                break;
            } else if line.starts_with("--- ") {
                let (old, new) = self.marker_pair(Flavor::Git)?;
                head.old_null = old.is_none();
                head.new_null = new.is_none();
                // A side that is /dev/null keeps the diff --git name until the status is
                // known, so an addition still has its name from either source.
                old_path = old.or(old_path);
                new_path = new.or(new_path);
                break;
            } else {
                break;
            }
            self.pos += 1;
        }
        let hunks = self.hunks(&head.path(&old_path, &new_path))?;
        if old_path.is_none() && new_path.is_none() {
            return Err(error(
                start,
                "cannot tell the file names from this \"diff --git\" line",
            ));
        }
        Ok(head.finish(old_path, new_path, hunks))
    }

    fn plain_file(&mut self) -> Result<FilePatch, ParseError> {
        let (old, new) = self.marker_pair(Flavor::Plain)?;
        let head = Header {
            old_null: old.is_none(),
            new_null: new.is_none(),
            ..Header::default()
        };
        let hunks = self.hunks(&head.path(&old, &new))?;
        Ok(head.finish(old, new, hunks))
    }

    /// Reads the `--- `/`+++ ` pair at the cursor; `None` stands for `/dev/null`.
    fn marker_pair(&mut self, flavor: Flavor) -> Result<Names, ParseError> {
        let minus = self.pos;
        let minus_line = self.peek().unwrap_or_default();
        let old = marker_name(&minus_line["--- ".len()..])
            .ok_or_else(|| error(minus, "malformed quoted file name after \"--- \""))?;
        let Some(plus_line) = self.at(minus + 1).filter(|l| l.starts_with("+++ ")) else {
            return Err(error(
                minus + 1,
                "expected a \"+++ \" line after the \"--- \" line",
            ));
        };
        let new = marker_name(&plus_line["+++ ".len()..])
            .ok_or_else(|| error(minus + 1, "malformed quoted file name after \"+++ \""))?;
        self.pos += 2;
        Ok(strip_prefixes(flavor, old, new))
    }

    fn header_name(&self, name: &str) -> Result<String, ParseError> {
        if name.starts_with('"') {
            match unquote(name) {
                Some((name, "")) => Ok(name),
                _ => Err(error(self.pos, "malformed quoted file name")),
            }
        } else {
            Ok(name.to_owned())
        }
    }

    /// Skips base85 `literal`/`delta` data up to whatever can start the next section.
    fn skip_binary_data(&mut self) {
        while let Some(line) = self.peek() {
            if line.starts_with("diff --git ") || &*line == "-- " || is_commit_separator(&line) {
                break;
            }
            self.pos += 1;
        }
    }

    /// The hunks of the file named `path`.
    fn hunks(&mut self, path: &str) -> Result<Vec<Hunk>, ParseError> {
        let mut hunks = Vec::new();
        while self.peek().is_some_and(|l| l.starts_with("@@")) {
            let hunk = self.hunk(path)?;
            self.sink.hunk(&mut hunks, hunk);
        }
        Ok(hunks)
    }

    fn hunk(&mut self, path: &str) -> Result<Hunk, ParseError> {
        let start = self.pos;
        let header = self.peek().unwrap_or_default();
        let mut hunk = parse_hunk_header(&header)
            .ok_or_else(|| error(start, format!("malformed hunk header: {header:?}")))?;
        hunk.line = start + 1;
        self.pos += 1;
        let (mut old_seen, mut new_seen) = (0, 0);
        // Body lines given to the sink, for `\ No newline` to refer to.
        let mut given = false;
        while old_seen < hunk.old_len || new_seen < hunk.new_len {
            let Some(line) = self.peek() else {
                return Err(count_error(&hunk, old_seen, new_seen));
            };
            let (kind, text) = match line.as_bytes().first() {
                // Some editors strip the lone space of an empty context line.
                None => (LineKind::Context, ""),
                Some(b' ') => (LineKind::Context, &line[1..]),
                Some(b'+') => (LineKind::Added, &line[1..]),
                Some(b'-') => (LineKind::Removed, &line[1..]),
                Some(b'\\') => {
                    self.mark_no_newline(&mut hunk, given)?;
                    continue;
                }
                Some(_) if line.starts_with("diff ") || line.starts_with("@@") => {
                    return Err(count_error(&hunk, old_seen, new_seen));
                }
                Some(_) => {
                    return Err(error(
                        self.pos,
                        format!("hunk line starts with an unknown character: {line:?}"),
                    ));
                }
            };
            let fits = match kind {
                LineKind::Context => old_seen < hunk.old_len && new_seen < hunk.new_len,
                LineKind::Added => new_seen < hunk.new_len,
                LineKind::Removed => old_seen < hunk.old_len,
            };
            if !fits {
                return Err(self.overflow_error(&hunk, old_seen, new_seen));
            }
            if kind != LineKind::Added {
                old_seen += 1;
            }
            if kind != LineKind::Removed {
                new_seen += 1;
            }
            let line = HunkLine {
                kind,
                text: text.to_owned(),
                no_newline_at_eof: false,
                line: self.pos + 1,
            };
            self.sink.line(path, &mut hunk, line);
            given = true;
            self.pos += 1;
        }
        if self.peek().is_some_and(|l| l.starts_with('\\')) {
            self.mark_no_newline(&mut hunk, given)?;
        }
        // More body lines right after the counts ran out: the header undercounts.
        let mut next = self.pos;
        while self.at(next).is_some_and(|l| l.is_empty()) {
            next += 1;
        }
        let body_like = self
            .at(next)
            .is_some_and(|l| l.starts_with([' ', '+', '-']));
        if body_like && !self.header_at(next) {
            return Err(self.overflow_error(&hunk, old_seen, new_seen));
        }
        Ok(hunk)
    }

    /// Handles a `\ No newline at end of file` line (any `\` line: git localises it).
    fn mark_no_newline(&mut self, hunk: &mut Hunk, given: bool) -> Result<(), ParseError> {
        if !given {
            return Err(error(
                self.pos,
                "\"\\ No newline at end of file\" without a line before it",
            ));
        }
        self.sink.no_newline(hunk);
        self.pos += 1;
        Ok(())
    }

    /// Counts the body-like lines from the cursor on, to report how long the hunk really is.
    fn overflow_error(
        &mut self,
        hunk: &Hunk,
        mut old_seen: usize,
        mut new_seen: usize,
    ) -> ParseError {
        let mut index = self.pos;
        while let Some(line) = self.at(index) {
            if self.header_at(index) {
                break;
            }
            match line.as_bytes().first() {
                None | Some(b' ') => {
                    old_seen += 1;
                    new_seen += 1;
                }
                Some(b'-') => old_seen += 1,
                Some(b'+') => new_seen += 1,
                Some(b'\\') => {}
                Some(_) => break,
            }
            index += 1;
        }
        count_error(hunk, old_seen, new_seen)
    }
}

/// What the extended header lines of one file said.
#[derive(Default)]
struct Header {
    old_mode: Option<String>,
    new_mode: Option<String>,
    added: bool,
    deleted: bool,
    renamed: bool,
    copied: bool,
    old_null: bool,
    new_null: bool,
    binary: bool,
}

impl Header {
    /// The name [`FilePatch::path`] will give the file these lines describe.
    fn path(&self, old_path: &Option<String>, new_path: &Option<String>) -> String {
        let status = self.status();
        let new = new_path.as_ref().filter(|_| status != FileStatus::Deleted);
        let old = old_path.as_ref().filter(|_| status != FileStatus::Added);
        new.or(old).cloned().unwrap_or_default()
    }

    fn status(&self) -> FileStatus {
        if self.renamed {
            FileStatus::Renamed
        } else if self.copied {
            FileStatus::Copied
        } else if self.added || self.old_null {
            FileStatus::Added
        } else if self.deleted || self.new_null {
            FileStatus::Deleted
        } else {
            FileStatus::Modified
        }
    }

    fn finish(
        self,
        mut old_path: Option<String>,
        mut new_path: Option<String>,
        hunks: Vec<Hunk>,
    ) -> FilePatch {
        let status = self.status();
        match status {
            FileStatus::Added => old_path = None,
            FileStatus::Deleted => new_path = None,
            _ => {}
        }
        FilePatch {
            old_path,
            new_path,
            status,
            old_mode: self.old_mode,
            new_mode: self.new_mode,
            binary: self.binary,
            hunks,
        }
    }
}

fn count_error(hunk: &Hunk, old_seen: usize, new_seen: usize) -> ParseError {
    let (side, said, seen) = if old_seen != hunk.old_len {
        ("old", hunk.old_len, old_seen)
    } else {
        ("new", hunk.new_len, new_seen)
    };
    let noun = if said == 1 { "line" } else { "lines" };
    error(
        hunk.line - 1,
        format!("hunk header says {said} {side} {noun} but the hunk has {seen}"),
    )
}

/// Parses `@@ -a[,b] +c[,d] @@[ section]` into an empty hunk.
fn parse_hunk_header(line: &str) -> Option<Hunk> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('+')?;
    let (new, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("@@")?;
    let (old_start, old_len) = parse_range(old)?;
    let (new_start, new_len) = parse_range(new)?;
    Some(Hunk {
        line: 0,
        old_start,
        old_len,
        new_start,
        new_len,
        section: rest.strip_prefix(' ').unwrap_or(rest).to_owned(),
        lines: Vec::new(),
    })
}

fn parse_range(range: &str) -> Option<(usize, usize)> {
    match range.split_once(',') {
        Some((start, len)) => Some((number(start)?, number(len)?)),
        None => Some((number(range)?, 1)),
    }
}

/// Digits only: `str::parse` would also take a leading `+`.
fn number(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn strip_any<'s>(line: &'s str, prefixes: &[&str]) -> Option<&'s str> {
    prefixes.iter().find_map(|p| line.strip_prefix(p))
}

/// The name on a `--- `/`+++ ` line: quoted, or up to the tab before a timestamp (git adds
/// a tab when the name has a space). `Some(None)` is `/dev/null`; `None` a broken quote.
fn marker_name(rest: &str) -> Option<Option<String>> {
    let name = if rest.starts_with('"') {
        unquote(rest)?.0
    } else {
        rest.split('\t').next().unwrap_or_default().to_owned()
    };
    Some((name != "/dev/null").then_some(name))
}

/// Git's own `a/`, `b/` (or mnemonic `c/`, `i/`, `w/`, `o/`) prefix.
fn strip_git_prefix(name: &str) -> &str {
    let b = name.as_bytes();
    if b.len() > 2 && b[0].is_ascii_alphanumeric() && b[1] == b'/' {
        &name[2..]
    } else {
        name
    }
}

/// Removes prefixes: always in git diffs, and in plain diffs only for the `a/` + `b/` pair
/// (`diff -ru a b`), since there a first component is usually a real directory.
fn strip_prefixes(flavor: Flavor, old: Option<String>, new: Option<String>) -> Names {
    let strip = match flavor {
        Flavor::Git => true,
        Flavor::Plain => {
            old.as_deref().is_none_or(|o| o.starts_with("a/"))
                && new.as_deref().is_none_or(|n| n.starts_with("b/"))
        }
    };
    if !strip {
        return (old, new);
    }
    let cut = |n: Option<String>| n.map(|n| strip_git_prefix(&n).to_owned());
    (cut(old), cut(new))
}

/// Splits the two names of a `diff --git` line and strips their prefixes.
///
/// Unquoted names may contain spaces, so when both are bare the split that makes the two
/// names equal wins (true for everything but renames and copies, whose `rename`/`copy`
/// lines give the exact names anyway).
fn split_git_names(rest: &str) -> Option<(String, String)> {
    let pair = |a: &str, b: &str| {
        Some((
            strip_git_prefix(a).to_owned(),
            strip_git_prefix(b).to_owned(),
        ))
    };
    if rest.starts_with('"') {
        let (a, tail) = unquote(rest)?;
        let tail = tail.strip_prefix(' ')?;
        if tail.starts_with('"') {
            let (b, end) = unquote(tail)?;
            return if end.is_empty() { pair(&a, &b) } else { None };
        }
        return pair(&a, tail);
    }
    if rest.ends_with('"') {
        for (i, _) in rest.match_indices(" \"") {
            if let Some((b, end)) = unquote(&rest[i + 1..])
                && end.is_empty()
            {
                return pair(&rest[..i], &b);
            }
        }
    }
    let spaces = || rest.match_indices(' ').map(|(i, _)| i);
    if let Some(i) =
        spaces().find(|&i| strip_git_prefix(&rest[..i]) == strip_git_prefix(&rest[i + 1..]))
    {
        return pair(&rest[..i], &rest[i + 1..]);
    }
    let i = spaces().find(|&i| strip_git_prefix(&rest[i + 1..]) != &rest[i + 1..])?;
    pair(&rest[..i], &rest[i + 1..])
}

/// The names in `Binary files X and Y differ`.
fn binary_files_names(line: &str) -> Option<(&str, &str)> {
    line.strip_prefix("Binary files ")?
        .strip_suffix(" differ")?
        .split_once(" and ")
}

/// A binary file reported by plain `diff -r` (no `diff --git` around it).
fn plain_binary(line: &str) -> Option<FilePatch> {
    let (old, new) = binary_files_names(line)?;
    let name = |n: &str| (n != "/dev/null").then(|| n.to_owned());
    let (old, new) = strip_prefixes(Flavor::Plain, name(old), name(new));
    let head = Header {
        old_null: old.is_none(),
        new_null: new.is_none(),
        binary: true,
        ..Header::default()
    };
    Some(head.finish(old, new, Vec::new()))
}

/// Lines `diff -r` prints between files, and svn-style `Index:` banners.
fn is_plain_noise(line: &str) -> bool {
    line.starts_with("diff ")
        || line.starts_with("Only in ")
        || line.starts_with("Index: ")
        || line.starts_with("Common subdirectories: ")
        || (line.len() >= 3 && line.bytes().all(|b| b == b'='))
}

/// `From <sha> ...` (next mbox message) or `commit <sha>` (next `git log -p` entry).
fn is_commit_separator(line: &str) -> bool {
    let Some(rest) = line
        .strip_prefix("From ")
        .or_else(|| line.strip_prefix("commit "))
    else {
        return false;
    };
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    hex >= 40 && matches!(rest.as_bytes().get(hex), None | Some(b' '))
}
