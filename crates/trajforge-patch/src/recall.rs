//! Line-level recall between two patches (SPEC.md 2.6).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

use crate::{LineKind, ParseError, Patch, parse};

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
                if line.kind == LineKind::Context || line.text.trim().is_empty() {
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
    let reference = changed_lines(p1);
    let candidate = changed_lines(p2);
    let (flags, _) = match_flags(&reference, &candidate);
    let mut files: BTreeMap<String, FileRecall> = BTreeMap::new();
    let mut matched = 0;
    for (line, hit) in reference.iter().zip(flags) {
        let file = files.entry(line.file.clone()).or_default();
        file.total += 1;
        if hit {
            file.matched += 1;
            matched += 1;
        }
    }
    let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    Recall {
        recall: ratio(matched, reference.len()),
        matched,
        total: reference.len(),
        precision: ratio(matched, candidate.len()),
        candidate_total: candidate.len(),
        files,
    }
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

/// Parses both patches and computes [`line_recall`].
pub fn line_recall_str(p1: &str, p2: &str) -> Result<Recall, RecallError> {
    let p1 = parse(p1).map_err(RecallError::P1)?;
    let p2 = parse(p2).map_err(RecallError::P2)?;
    Ok(line_recall(&p1, &p2))
}
