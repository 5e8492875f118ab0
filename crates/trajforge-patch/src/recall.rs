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
    let mut out = Vec::new();
    for file in &patch.files {
        for line in file.hunks.iter().flat_map(|h| &h.lines) {
            if line.kind == LineKind::Context || line.text.trim().is_empty() {
                continue;
            }
            out.push(ChangedLine {
                file: file.path().to_owned(),
                text: format!("{}{}", line.kind.sign(), line.text),
            });
        }
    }
    out
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

/// Line-level recall of `p1` in `p2`: exact text with sign, multiset matching, names ignored.
pub fn line_recall(p1: &Patch, p2: &Patch) -> Recall {
    let reference = changed_lines(p1);
    let candidate = changed_lines(p2);
    // Multiset: each P2 line can be used once.
    let mut pool: HashMap<&str, usize> = HashMap::new();
    for line in &candidate {
        *pool.entry(line.text.as_str()).or_default() += 1;
    }
    let mut files: BTreeMap<String, FileRecall> = BTreeMap::new();
    let mut matched = 0;
    for line in &reference {
        let file = files.entry(line.file.clone()).or_default();
        file.total += 1;
        if let Some(left) = pool.get_mut(line.text.as_str())
            && *left > 0
        {
            *left -= 1;
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
