//! Line-level recall between two patches (SPEC.md 2.6).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::BufRead;
use std::rc::Rc;

use serde::Serialize;

use crate::parse::{Line, Parser, Sink, strip_eol, text_lines};
use crate::{FilePatch, Hunk, HunkLine, LineKind, ParseError, Patch};

/// One added or removed line that counts for the metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ChangedLine {
    /// The file it belongs to ([`crate::FilePatch::path`]); reported, never compared.
    pub file: String,
    /// The line with its sign: `"+foo"` or `"-bar"`.
    pub text: String,
}

/// The added and removed lines of all hunks, in patch order, that the metric counts.
///
/// Lines whose text after the sign is empty or whitespace only are left out. SERA filtered
/// raw diff text and so also dropped lines starting with `diff`, `---`, `+++` or `@@`;
/// because this works on parsed hunks, headers can never be mistaken for changes, and a body
/// line that merely looks like one (`--- x`, i.e. removing the line `-- x`) is a real change
/// and counts.
pub fn changed_lines(patch: &Patch) -> Vec<ChangedLine> {
    changed_positions(patch).map(|(_, line)| line).collect()
}

/// Where a body line sits in a [`Patch`]: indexes of its file, hunk and line in the hunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LinePos {
    /// Index in [`Patch::files`].
    pub file: usize,
    /// Index in [`crate::FilePatch::hunks`].
    pub hunk: usize,
    /// Index in [`crate::Hunk::lines`].
    pub line: usize,
}

/// [`changed_lines`] with the position of each.
fn changed_positions(patch: &Patch) -> impl Iterator<Item = (LinePos, ChangedLine)> + '_ {
    patch.files.iter().enumerate().flat_map(|(f, file)| {
        file.hunks.iter().enumerate().flat_map(move |(h, hunk)| {
            hunk.lines.iter().enumerate().filter_map(move |(l, line)| {
                if !counts(line) {
                    return None;
                }
                let pos = LinePos {
                    file: f,
                    hunk: h,
                    line: l,
                };
                Some((
                    pos,
                    ChangedLine {
                        file: file.path().to_owned(),
                        text: format!("{}{}", line.kind.sign(), line.text),
                    },
                ))
            })
        })
    })
}

/// Whether the metric counts a body line: added or removed, not blank.
fn counts(line: &HunkLine) -> bool {
    line.kind != LineKind::Context && !line.text.trim().is_empty()
}

/// Every added or removed body line, whitespace-only ones included (the size filter's count).
pub fn changed_line_count(patch: &Patch) -> usize {
    patch
        .files
        .iter()
        .flat_map(|f| &f.hunks)
        .flat_map(|h| &h.lines)
        .filter(|l| l.kind != LineKind::Context)
        .count()
}

/// How many of one P1 file's changed lines P2 also has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FileRecall {
    /// Lines of this file matched by some P2 line.
    pub matched: usize,
    /// Changed lines of this file in P1.
    pub total: usize,
}

/// The result of comparing P1 (reference) with P2 (candidate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recall {
    /// matched / total; `None` (JSON `null`) when P1 has no changed lines.
    pub recall: Option<f64>,
    /// P1 lines that found a P2 line.
    pub matched: usize,
    /// Changed lines in P1.
    pub total: usize,
    /// matched / candidate_total; `None` (JSON `null`) when P2 has no changed lines.
    pub precision: Option<f64>,
    /// Changed lines in P2.
    pub candidate_total: usize,
    /// Per P1 file that has changed lines; a match is credited to P1 lines in patch order.
    pub files: BTreeMap<String, FileRecall>,
}

/// What the soft verifier decides for a rollout-2 trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// recall >= threshold.
    Kept,
    /// recall < threshold.
    Rejected,
    /// P1 has no changed lines, so there is nothing to recall.
    NotVerified,
    /// P2 has no changed lines (the second rollout produced nothing to compare).
    Skipped,
}

impl Verdict {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Kept => "kept",
            Verdict::Rejected => "rejected",
            Verdict::NotVerified => "not_verified",
            Verdict::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Recall {
    /// Applies a threshold; "not verified" wins over "skipped" when both patches are empty.
    pub fn verdict(&self, threshold: f64) -> Verdict {
        match self.recall {
            None => Verdict::NotVerified,
            Some(_) if self.candidate_total == 0 => Verdict::Skipped,
            Some(r) if r >= threshold => Verdict::Kept,
            Some(_) => Verdict::Rejected,
        }
    }
}

/// Which changed lines the recall pairs up: for every line of [`changed_lines`] of P1 and of
/// P2, in patch order, whether it is matched.
fn match_flags(reference: &[ChangedLine], candidate: &[ChangedLine]) -> (Vec<bool>, Vec<bool>) {
    // Multiset: each P2 line can be used once; P1 lines take them in patch order.
    let mut pool: HashMap<&str, usize> = HashMap::new();
    for line in candidate {
        *pool.entry(line.text.as_str()).or_default() += 1;
    }
    let mut used: HashMap<&str, usize> = HashMap::new();
    let reference_flags = reference
        .iter()
        .map(|line| match pool.get_mut(line.text.as_str()) {
            Some(left) if *left > 0 => {
                *left -= 1;
                *used.entry(line.text.as_str()).or_default() += 1;
                true
            }
            _ => false,
        })
        .collect();
    // The P2 lines used are, per text, its first occurrences.
    let candidate_flags = candidate
        .iter()
        .map(|line| match used.get_mut(line.text.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect();
    (reference_flags, candidate_flags)
}

/// Every changed line of P1 and of P2 with its position and whether [`line_recall`] counts it
/// as matched (for showing the verdict line by line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineMatches {
    /// P1's changed lines, in patch order.
    pub reference: Vec<(LinePos, bool)>,
    /// P2's changed lines, in patch order.
    pub candidate: Vec<(LinePos, bool)>,
}

/// The matched and unmatched changed lines of `p1` and `p2`, under the rule of [`line_recall`].
pub fn line_matches(p1: &Patch, p2: &Patch) -> LineMatches {
    let (pos1, lines1): (Vec<LinePos>, Vec<ChangedLine>) = changed_positions(p1).unzip();
    let (pos2, lines2): (Vec<LinePos>, Vec<ChangedLine>) = changed_positions(p2).unzip();
    let (f1, f2) = match_flags(&lines1, &lines2);
    LineMatches {
        reference: pos1.into_iter().zip(f1).collect(),
        candidate: pos2.into_iter().zip(f2).collect(),
    }
}

/// Line-level recall of `p1` in `p2`: exact text with sign, multiset matching, names ignored.
pub fn line_recall(p1: &Patch, p2: &Patch) -> Recall {
    let mut tally = Tally::default();
    for (_, line) in counted(p2) {
        tally.candidate(line);
    }
    for (path, line) in counted(p1) {
        tally.reference(path, line);
    }
    tally.finish()
}

/// The lines of `patch` the metric counts, with their file's name.
fn counted(patch: &Patch) -> impl Iterator<Item = (&str, &HunkLine)> {
    patch.files.iter().flat_map(|f| {
        f.hunks
            .iter()
            .flat_map(|h| &h.lines)
            .filter(|l| counts(l))
            .map(move |l| (f.path(), l))
    })
}

/// The counting of [`line_recall`], one changed line at a time: P2's lines first, kept as a
/// multiset of 128-bit hashes of their text (16 bytes and a count per distinct line, whatever
/// its length; two different lines sharing a hash is a 2^-128 chance), then P1's, each taking
/// a P2 line of its text while one is left.
#[derive(Default)]
struct Tally {
    pool: HashMap<u128, u32>,
    candidate_total: usize,
    matched: usize,
    total: usize,
    files: BTreeMap<String, FileRecall>,
}

impl Tally {
    /// The line's text with its sign, as the metric compares it.
    fn key(line: &HunkLine) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(line.text.as_bytes(), line.kind.sign() as u64)
    }

    fn candidate(&mut self, line: &HunkLine) {
        *self.pool.entry(Self::key(line)).or_default() += 1;
        self.candidate_total += 1;
    }

    fn reference(&mut self, path: &str, line: &HunkLine) {
        let hit = match self.pool.get_mut(&Self::key(line)) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if !self.files.contains_key(path) {
            self.files.insert(path.to_owned(), FileRecall::default());
        }
        if let Some(file) = self.files.get_mut(path) {
            file.total += 1;
            file.matched += usize::from(hit);
        }
        self.total += 1;
        self.matched += usize::from(hit);
    }

    fn finish(self) -> Recall {
        let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
        Recall {
            recall: ratio(self.matched, self.total),
            matched: self.matched,
            total: self.total,
            precision: ratio(self.matched, self.candidate_total),
            candidate_total: self.candidate_total,
            files: self.files,
        }
    }
}

/// A [`Sink`] that hands each counted line to a function and keeps nothing.
struct Counted<F>(F);

impl<F: FnMut(&str, &HunkLine)> Sink for Counted<F> {
    fn line(&mut self, path: &str, _hunk: &mut Hunk, line: HunkLine) {
        if counts(&line) {
            (self.0)(path, &line);
        }
    }
    fn no_newline(&mut self, _hunk: &mut Hunk) {}
    fn hunk(&mut self, _hunks: &mut Vec<Hunk>, _hunk: Hunk) {}
    fn file(&mut self, _file: FilePatch) {}
}

/// Parses `lines` without keeping them, handing each counted line to `f`.
fn each_counted(
    lines: impl Iterator<Item = Line>,
    f: impl FnMut(&str, &HunkLine),
) -> Result<(), ParseError> {
    Parser::new(lines, &mut Counted(f)).run()
}

/// A patch given to [`line_recall_str`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecallError {
    /// The reference patch (rollout 1) is malformed.
    #[error("P1 does not parse: {0}")]
    P1(ParseError),
    /// The candidate patch (rollout 2) is malformed.
    #[error("P2 does not parse: {0}")]
    P2(ParseError),
}

/// Computes [`line_recall`] straight from the text of both patches, holding a few lines of
/// each at a time and the multiset of P2's changed lines (see [`line_recall_reader`]).
pub fn line_recall_str(p1: &str, p2: &str) -> Result<Recall, RecallError> {
    recall_lines(text_lines(p1), text_lines(p2))
}

/// [`line_recall`] over two streams of lines: P2 first, then P1.
fn recall_lines(
    p1: impl Iterator<Item = Line>,
    p2: impl Iterator<Item = Line>,
) -> Result<Recall, RecallError> {
    let mut tally = Tally::default();
    each_counted(p2, |_, line| tally.candidate(line)).map_err(RecallError::P2)?;
    each_counted(p1, |path, line| tally.reference(path, line)).map_err(RecallError::P1)?;
    Ok(tally.finish())
}

/// A patch given to [`line_recall_reader`] could not be read, was over the size limit or did
/// not parse.
#[derive(Debug, thiserror::Error)]
pub enum RecallReadError {
    /// A patch is malformed (a line that is not UTF-8 is a malformed line).
    #[error(transparent)]
    Parse(#[from] RecallError),
    /// Reading a patch failed.
    #[error("cannot read {which}: {source}")]
    Read {
        /// `"P1"` or `"P2"`.
        which: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A patch has more bytes than the limit; it was not compared.
    #[error("{which} is over the limit of {limit} bytes: not compared")]
    TooLarge {
        /// `"P1"` or `"P2"`.
        which: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
}

/// [`line_recall`] of two patches read as streams, each of at most `max_bytes` bytes: memory
/// holds one line of each at a time, the multiset of P2's changed lines as hashes and P1's
/// file names, so it is bounded by `max_bytes` whatever the input (a longer patch is refused
/// with [`RecallReadError::TooLarge`] once `max_bytes` of it were read). P2 is read first;
/// when it fails, P1 is not read.
pub fn line_recall_reader(
    p1: impl BufRead,
    p2: impl BufRead,
    max_bytes: u64,
) -> Result<Recall, RecallReadError> {
    let mut tally = Tally::default();
    let mut p2 = ReadLines::new(p2, max_bytes);
    let parsed = each_counted(&mut p2, |_, line| tally.candidate(line));
    p2.check("P2")?;
    parsed.map_err(RecallError::P2)?;
    let mut p1 = ReadLines::new(p1, max_bytes);
    let parsed = each_counted(&mut p1, |path, line| tally.reference(path, line));
    p1.check("P1")?;
    parsed.map_err(RecallError::P1)?;
    Ok(tally.finish())
}

/// Why a [`ReadLines`] stopped before the end of its stream.
enum Stop {
    Failed(std::io::Error),
    TooLarge,
}

/// The lines of a reader, at most `left` bytes in all; a read error or going over the limit
/// ends them and is kept in `stopped`.
struct ReadLines<R> {
    reader: R,
    buf: Vec<u8>,
    index: usize,
    left: u64,
    limit: u64,
    stopped: Option<Stop>,
}

impl<R: BufRead> ReadLines<R> {
    fn new(reader: R, limit: u64) -> Self {
        ReadLines {
            reader,
            buf: Vec::new(),
            index: 0,
            left: limit,
            limit,
            stopped: None,
        }
    }

    /// The error that ended the lines early, if any.
    fn check(&mut self, which: &'static str) -> Result<(), RecallReadError> {
        match self.stopped.take() {
            None => Ok(()),
            Some(Stop::Failed(source)) => Err(RecallReadError::Read { which, source }),
            Some(Stop::TooLarge) => Err(RecallReadError::TooLarge {
                which,
                limit: self.limit,
            }),
        }
    }
}

impl<R: BufRead> Iterator for ReadLines<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.stopped.is_some() {
            return None;
        }
        self.buf.clear();
        // One byte past the limit tells a patch over it from one exactly at it, and keeps
        // the buffer within the limit however long the line.
        let mut bounded = std::io::Read::take(&mut self.reader, self.left.saturating_add(1));
        let n = match bounded.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(n) => n as u64,
            Err(e) => {
                self.stopped = Some(Stop::Failed(e));
                return None;
            }
        };
        if n > self.left {
            self.stopped = Some(Stop::TooLarge);
            return None;
        }
        self.left -= n;
        self.index += 1;
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Some(Ok(Rc::from(strip_eol(text)))),
            Err(e) => Some(Err(ParseError {
                line: self.index,
                message: format!("not UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
            })),
        }
    }
}
