//! The records of a run, typed: stage names and their payloads, job outcomes, rollout kinds,
//! exit statuses and the metadata of a stored trajectory. Every crate that reads or writes a
//! run (pipelines, import, export, status) uses these, so the schema is written down once.
//!
//! Payloads serialize to the JSON that trajforge 0.1 wrote (same keys, same order), and
//! everything 0.1 wrote deserializes, so old runs resume and export unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

/// Declares a string-labelled enum with a catch-all for labels this version does not know
/// (so a store written by another version still loads, and its labels still count).
macro_rules! labels {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A label this version does not know, kept as written.
            Other(String),
        }

        impl $name {
            /// The label as stored.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $label,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($label => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match $name::from(s.as_str()) {
                    $name::Other(_) => $name::Other(s),
                    known => known,
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                match v {
                    $name::Other(s) => s,
                    known => known.as_str().to_string(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

labels! {
    /// The name of a stage, as stored in the `stages` table.
    StageName {
        /// Rollout 1 (code: from a drawn bug type; web: from a vague intent).
        Rollout1 = "rollout1",
        /// The teacher's self-check of rollout 1 (code).
        Selfcheck = "selfcheck",
        /// The synthetic pull request text (code).
        Pr = "pr",
        /// The synthetic visitor request (web).
        Request = "request",
        /// Rollout 2, from the synthetic text alone.
        Rollout2 = "rollout2",
        /// Line recall (code) or agreement (web) of the two rollouts.
        Verify = "verify",
        /// The behavioural verdict of the test command (code).
        Tests = "tests",
        /// Why an attempt ended without a kept pair.
        Rejected = "rejected",
        /// Where an imported trajectory came from.
        Import = "import",
    }
}

labels! {
    /// How a job ended (its result label), or why an attempt was rejected.
    Outcome {
        /// The pair was kept.
        Kept = "kept",
        /// The run stopped between stages; the job resumes later (never stored).
        Stopped = "stopped",
        /// No attempt was made (zero attempts).
        NoAttempt = "no_attempt",
        /// Rollout 1's environment could not be created.
        T1EnvironmentError = "t1_environment_error",
        /// Rollout 1 did not submit (code).
        T1NotSubmitted = "t1_not_submitted",
        /// Rollout 1 submitted an empty patch.
        P1Empty = "p1_empty",
        /// Rollout 1's patch was over the size limit (never sent to the teacher).
        P1TooLarge = "p1_too_large",
        /// Rollout 2's patch was over the size limit.
        P2TooLarge = "p2_too_large",
        /// Another job already produced the same P1.
        P1Duplicate = "p1_duplicate",
        /// The self-check call failed.
        SelfcheckTeacherError = "selfcheck_teacher_error",
        /// The self-check said no.
        SelfcheckNo = "selfcheck_no",
        /// The self-check never answered yes or no.
        SelfcheckUnparseable = "selfcheck_unparseable",
        /// The pull-request call failed.
        PrTeacherError = "pr_teacher_error",
        /// Rollout 2's environment could not be created.
        T2EnvironmentError = "t2_environment_error",
        /// Rollout 2 did not submit (code).
        T2NotSubmitted = "t2_not_submitted",
        /// Line recall below the threshold.
        LowRecall = "low_recall",
        /// P1 has no changed lines to recall.
        P1NoLines = "p1_no_lines",
        /// Rollout 2 produced no patch.
        P2Empty = "p2_empty",
        /// A patch could not be parsed.
        PatchUnparseable = "patch_unparseable",
        /// The job names an intent the menu does not have (web).
        UnknownIntent = "unknown_intent",
        /// Rollout 1 reported the task infeasible (web).
        T1Infeasible = "t1_infeasible",
        /// Rollout 1 did not answer (web).
        T1NotFinished = "t1_not_finished",
        /// Rollout 1 ended on no page (web).
        T1NoFinalPage = "t1_no_final_page",
        /// The request call failed (web).
        RequestTeacherError = "request_teacher_error",
        /// The request gave the path away (web).
        RequestLeaksPath = "request_leaks_path",
        /// Rollout 2 did not answer (web).
        T2NotFinished = "t2_not_finished",
        /// Rollout 2 reported the task infeasible (web).
        T2Infeasible = "t2_infeasible",
        /// Agreement below the threshold (web).
        LowAgreement = "low_agreement",
        /// Agreement at the threshold, but the rollouts ended on different pages (web).
        DifferentFinal = "different_final",
        /// A rollout went from a held-out task's start page to its target (web, `--exclude-tasks`).
        HeldOut = "held_out",
        /// An imported trajectory without a reference, kept because it submitted.
        Imported = "imported",
        /// An imported trajectory without a reference that did not submit.
        NotSubmitted = "not_submitted",
    }
}

/// Why an attempt was rejected: one of the job outcomes.
pub type RejectReason = Outcome;

labels! {
    /// How an episode ended, labelled as `trajforge_agent::ExitStatus::label()` writes it.
    ExitLabel {
        /// The agent submitted (or answered).
        Submitted = "submitted",
        /// The step limit was reached.
        StepLimit = "step_limit",
        /// The context window overflowed.
        ContextOverflow = "context_overflow",
        /// Too many malformed tool calls.
        MalformedCalls = "malformed_calls",
        /// The same call got the same result too many times in a row.
        Stuck = "stuck",
        /// The teacher failed.
        TeacherError = "teacher_error",
        /// The episode was cancelled.
        Cancelled = "cancelled",
    }
}

labels! {
    /// Which rollout a trajectory is.
    Rollout {
        /// Rollout 1.
        T1 = "t1",
        /// Rollout 2.
        T2 = "t2",
    }
}

labels! {
    /// Where a job stands.
    JobStatus {
        /// Not started.
        Pending = "pending",
        /// Claimed under a lease.
        Running = "running",
        /// Finished with a result.
        Done = "done",
    }
}

/// A rollout stage of the code pipeline.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRollout {
    /// The bug-type menu entry (rollout 1 only).
    pub bug: Option<String>,
    /// Its index in the menu (rollout 1 only).
    pub bug_index: Option<usize>,
    /// The task given to the agent.
    pub task: String,
    /// How the episode ended.
    pub exit: ExitLabel,
    /// The patch it produced.
    #[serialize_always]
    pub patch: Option<String>,
    /// The patch's whole size when it was over the limit and `patch` holds only its head.
    pub patch_cut: Option<u64>,
    /// Steps taken.
    pub steps: usize,
}

/// A rollout stage of the web pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebRollout {
    /// The task given to the agent.
    pub task: String,
    /// How the episode ended.
    pub exit: ExitLabel,
    /// The final page.
    pub final_url: Option<String>,
    /// Its title.
    pub title: Option<String>,
    /// The answer given.
    pub answer: Option<String>,
    /// The reason given when it reported the task infeasible.
    pub infeasible: Option<String>,
    /// Pages visited, in order.
    pub visited: Vec<String>,
    /// Steps taken.
    pub steps: usize,
    /// Why the outcome could not be fully collected.
    pub error: Option<String>,
}

/// A rollout stage (`rollout1`, `rollout2`) of either pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RolloutStage {
    /// A browsing episode (has `visited`).
    Web(WebRollout),
    /// A repository episode.
    Code(CodeRollout),
}

impl RolloutStage {
    /// How the episode ended.
    pub fn exit(&self) -> &ExitLabel {
        match self {
            RolloutStage::Web(r) => &r.exit,
            RolloutStage::Code(r) => &r.exit,
        }
    }
}

/// The self-check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelfcheckAnswer {
    /// P1 addresses the task.
    Yes,
    /// It does not.
    No,
    /// No yes or no could be read.
    Unparseable,
}

/// The `selfcheck` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfcheckStage {
    /// The answer.
    pub answer: SelfcheckAnswer,
    /// Calls made.
    pub tries: u32,
}

/// The `pr` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrStage {
    /// The demonstration issue imitated.
    pub demo: String,
    /// The issue text.
    pub text: String,
}

/// The `request` stage (web).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStage {
    /// The visitor's request.
    pub text: String,
    /// Whether it gives the path away.
    pub leaks_path: bool,
}

/// Line recall of P2 against P1 (code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallVerify {
    /// Line recall r (`null` when P1 has no changed lines).
    pub recall: Option<f64>,
    /// Line precision.
    pub precision: Option<f64>,
    /// P1 lines matched.
    pub matched: usize,
    /// P1 changed lines.
    pub total: usize,
    /// P2 changed lines.
    pub candidate_total: usize,
    /// The soft verifier's verdict label.
    pub verdict: String,
    /// Whether T2 is kept.
    pub kept: bool,
    /// The job's result.
    pub result: Outcome,
}

/// A patch that could not be parsed (code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnparseableVerify {
    /// The parse error.
    pub error: String,
    /// Always false.
    pub kept: bool,
    /// The job's result.
    pub result: Outcome,
}

/// Judge-free agreement of the two rollouts (web).
///
/// Records written before the agreement had a version (trajforge 0.1 and the releases up to
/// issue 14) have no `scoring` field: their score gave an empty route of rollout 1 a
/// `visited_recall` of 1 and did not require the same final page. They are read as written
/// and never rescored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementVerify {
    /// The agreement score, the same field as code's line recall (0.1 wrote it as `r`).
    #[serde(alias = "r")]
    pub recall: f64,
    /// Both ended on the same page.
    pub same_final: bool,
    /// Share of rollout 1's pages rollout 2 visited; `None` (since scoring 2) when rollout 1
    /// never left its start page, so the part is left out of the score.
    pub visited_recall: Option<f64>,
    /// Both gave the same answer, when one is asked for.
    pub same_answer: Option<bool>,
    /// Pages rollout 1 visited, start page excluded.
    pub t1_pages: usize,
    /// Of those, the ones rollout 2 visited.
    pub shared_pages: usize,
    /// The threshold applied.
    pub threshold: f64,
    /// Whether the pair is kept.
    pub kept: bool,
    /// The job's result.
    pub result: Outcome,
    /// Version of the score's definition (absent: the definition before scoring 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<u32>,
    /// Whether pairs ending on different pages could be kept (`--keep-different-final`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_different_final: bool,
}

/// The `verify` stage of either pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VerifyStage {
    /// Web agreement (has `same_final`).
    Agreement(AgreementVerify),
    /// Code line recall.
    Recall(RecallVerify),
    /// Code, patch unparseable.
    Unparseable(UnparseableVerify),
}

impl VerifyStage {
    /// The score r: line recall (code) or agreement (web).
    pub fn recall(&self) -> Option<f64> {
        match self {
            VerifyStage::Agreement(v) => Some(v.recall),
            VerifyStage::Recall(v) => v.recall,
            VerifyStage::Unparseable(_) => None,
        }
    }

    /// Whether the pair is kept.
    pub fn kept(&self) -> bool {
        match self {
            VerifyStage::Agreement(v) => v.kept,
            VerifyStage::Recall(v) => v.kept,
            VerifyStage::Unparseable(v) => v.kept,
        }
    }

    /// The job's result.
    pub fn result(&self) -> &Outcome {
        match self {
            VerifyStage::Agreement(v) => &v.result,
            VerifyStage::Recall(v) => &v.result,
            VerifyStage::Unparseable(v) => &v.result,
        }
    }

    /// Soft verification of P2 against P1 (SPEC.md section 2): line recall, its verdict at
    /// `threshold`, whether T2 is kept and the job's result.
    pub fn of_patches(p1: &str, p2: &str, t2_submitted: bool, threshold: f64) -> VerifyStage {
        use trajforge_patch::Verdict;
        match trajforge_patch::line_recall_str(p1, p2) {
            Ok(r) => {
                let verdict = r.verdict(threshold);
                let kept = t2_submitted && verdict == Verdict::Kept;
                let result = if !t2_submitted {
                    Outcome::T2NotSubmitted
                } else {
                    match verdict {
                        Verdict::Kept => Outcome::Kept,
                        Verdict::Rejected => Outcome::LowRecall,
                        Verdict::NotVerified => Outcome::P1NoLines,
                        Verdict::Skipped => Outcome::P2Empty,
                    }
                };
                VerifyStage::Recall(RecallVerify {
                    recall: r.recall,
                    precision: r.precision,
                    matched: r.matched,
                    total: r.total,
                    candidate_total: r.candidate_total,
                    verdict: verdict.as_str().to_string(),
                    kept,
                    result,
                })
            }
            Err(e) => VerifyStage::Unparseable(UnparseableVerify {
                error: e.to_string(),
                kept: false,
                result: Outcome::PatchUnparseable,
            }),
        }
    }
}

/// Exit codes of the three test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestExitCodes {
    /// The base commit.
    pub base: Option<i32>,
    /// With P1 applied.
    pub p1: Option<i32>,
    /// With P2 applied.
    pub p2: Option<i32>,
}

/// The behavioural verdict as stored: whether P1 and P2 agree, and the test report's detail
/// (its shape belongs to the test-report parser).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestsVerdict {
    /// Whether P1 and P2 change the same tests the same way.
    pub agree: bool,
    /// The rest of the verdict.
    #[serde(flatten)]
    pub detail: serde_json::Map<String, Value>,
}

/// The `tests` stage: a verdict with exit codes, or the error that prevented one.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestsStage {
    /// The verdict.
    pub verdict: Option<TestsVerdict>,
    /// Exit codes of the runs.
    pub exit_codes: Option<TestExitCodes>,
    /// Why no verdict was reached.
    pub error: Option<String>,
}

/// The `rejected` stage: the reason, with what explains it.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedStage {
    /// Why.
    pub reason: RejectReason,
    /// The bug type of the attempt (code).
    pub bug: Option<String>,
    /// The unknown intent (web).
    pub intent: Option<String>,
    /// The error met.
    pub error: Option<String>,
    /// How rollout 1 ended, when that was the reason.
    pub exit: Option<ExitLabel>,
    /// Rollout 1's infeasibility reason (web).
    pub infeasible: Option<String>,
}

impl RejectedStage {
    /// A rejection for `reason` with nothing else recorded.
    pub fn new(reason: RejectReason) -> RejectedStage {
        RejectedStage {
            reason,
            bug: None,
            intent: None,
            error: None,
            exit: None,
            infeasible: None,
        }
    }

    /// The same, with the error met.
    pub fn error(mut self, error: impl fmt::Display) -> RejectedStage {
        self.error = Some(error.to_string());
        self
    }
}

/// The `import` stage: where an imported trajectory came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportStage {
    /// Which rollout it became.
    pub rollout: Rollout,
    /// How it ended.
    pub exit: ExitLabel,
    /// Steps.
    pub steps: usize,
    /// Its patch.
    pub patch: Option<String>,
    /// The format imported from.
    pub format: String,
    /// The file.
    pub file: String,
    /// The line (or record number) in it.
    pub line: usize,
}

/// One stage's result, tagged by the stage it belongs to (the tag is the `stage` column; the
/// payload column holds the variant's fields).
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `rollout1`.
    Rollout1(RolloutStage),
    /// `selfcheck`.
    Selfcheck(SelfcheckStage),
    /// `pr`.
    Pr(PrStage),
    /// `request`.
    Request(RequestStage),
    /// `rollout2`.
    Rollout2(RolloutStage),
    /// `verify`.
    Verify(VerifyStage),
    /// `tests`.
    Tests(TestsStage),
    /// `rejected`.
    Rejected(RejectedStage),
    /// `import`.
    Import(ImportStage),
    /// A stage this version does not know, kept as stored.
    Other(StageName, Value),
}

impl Stage {
    /// Its name.
    pub fn name(&self) -> StageName {
        match self {
            Stage::Rollout1(_) => StageName::Rollout1,
            Stage::Selfcheck(_) => StageName::Selfcheck,
            Stage::Pr(_) => StageName::Pr,
            Stage::Request(_) => StageName::Request,
            Stage::Rollout2(_) => StageName::Rollout2,
            Stage::Verify(_) => StageName::Verify,
            Stage::Tests(_) => StageName::Tests,
            Stage::Rejected(_) => StageName::Rejected,
            Stage::Import(_) => StageName::Import,
            Stage::Other(name, _) => name.clone(),
        }
    }

    /// The payload as JSON.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        match self {
            Stage::Rollout1(s) | Stage::Rollout2(s) => serde_json::to_value(s),
            Stage::Selfcheck(s) => serde_json::to_value(s),
            Stage::Pr(s) => serde_json::to_value(s),
            Stage::Request(s) => serde_json::to_value(s),
            Stage::Verify(s) => serde_json::to_value(s),
            Stage::Tests(s) => serde_json::to_value(s),
            Stage::Rejected(s) => serde_json::to_value(s),
            Stage::Import(s) => serde_json::to_value(s),
            Stage::Other(_, v) => Ok(v.clone()),
        }
    }

    /// Read the payload stored under `name`.
    pub fn from_json(name: StageName, payload: Value) -> serde_json::Result<Stage> {
        use serde_json::from_value as de;
        Ok(match name {
            StageName::Rollout1 => Stage::Rollout1(de(payload)?),
            StageName::Selfcheck => Stage::Selfcheck(de(payload)?),
            StageName::Pr => Stage::Pr(de(payload)?),
            StageName::Request => Stage::Request(de(payload)?),
            StageName::Rollout2 => Stage::Rollout2(de(payload)?),
            StageName::Verify => Stage::Verify(de(payload)?),
            StageName::Tests => Stage::Tests(de(payload)?),
            StageName::Rejected => Stage::Rejected(de(payload)?),
            StageName::Import => Stage::Import(de(payload)?),
            StageName::Other(_) => Stage::Other(name, payload),
        })
    }
}

/// What a code job works on: a sampled function (the job payload has more fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeJob {
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// Its file.
    #[serde(default)]
    pub path: String,
}

/// What a web job works on: an intent from a start page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebJob {
    /// The intent's menu id.
    #[serde(default)]
    pub intent: String,
    /// Whether the task asks for an answer.
    #[serde(default)]
    pub answer: bool,
    /// The start page.
    #[serde(default)]
    pub start_url: String,
    /// Its title.
    #[serde(default)]
    pub start_title: String,
}

/// A trajectory to store with the stage that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRecord {
    /// Which rollout.
    pub rollout: Rollout,
    /// How the episode ended.
    pub exit_status: ExitLabel,
    /// The patch it produced.
    pub patch: Option<String>,
    /// The whole trajectory (JSON).
    pub data: Value,
}

/// What the store knows about a trajectory besides its data: where it belongs, how it ended
/// and the run's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryMeta {
    /// Row id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: i64,
    /// Which rollout.
    pub rollout: Rollout,
    /// How the episode ended.
    pub exit_status: ExitLabel,
    /// The patch.
    pub patch: Option<String>,
    /// Line recall (or web agreement) when verified.
    pub recall: Option<f64>,
    /// Whether it is kept for training.
    pub kept: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_round_trip_and_keep_unknown_ones() {
        for s in ["kept", "low_agreement", "something_new"] {
            let o: Outcome = serde_json::from_value(json!(s)).expect("label");
            assert_eq!(serde_json::to_value(&o).expect("json"), json!(s));
        }
        assert_eq!(Outcome::from("stopped"), Outcome::Stopped);
        assert_eq!(ExitLabel::from("step_limit").as_str(), "step_limit");
    }

    #[test]
    fn web_agreement_written_as_r_reads_as_recall() {
        let old = json!({"r": 0.75, "same_final": true, "visited_recall": 0.5, "same_answer": null,
                         "t1_pages": 2, "shared_pages": 1, "threshold": 0.5, "kept": true, "result": "kept"});
        let v = Stage::from_json(StageName::Verify, old.clone()).expect("verify");
        let Stage::Verify(v) = v else {
            panic!("not verify")
        };
        assert_eq!((v.recall(), v.kept()), (Some(0.75), true));
        // Read as written: no scoring version, and written back the same way.
        let Stage::Verify(VerifyStage::Agreement(a)) =
            Stage::from_json(StageName::Verify, old).expect("verify")
        else {
            panic!("not agreement")
        };
        assert_eq!(
            (a.scoring, a.keep_different_final, a.visited_recall),
            (None, false, Some(0.5))
        );
        let back = serde_json::to_value(&a).expect("json");
        assert!(back.get("scoring").is_none() && back.get("keep_different_final").is_none());
    }

    #[test]
    fn payloads_serialize_as_0_1_wrote_them() {
        let code = json!({"bug": "off_by_one", "bug_index": 3, "task": "t", "exit": "submitted",
                          "patch": null, "steps": 4});
        let s = Stage::from_json(StageName::Rollout1, code.clone()).expect("rollout");
        assert!(matches!(s, Stage::Rollout1(RolloutStage::Code(_))));
        assert_eq!(s.to_json().expect("json"), code);
        let web = json!({"task": "t", "exit": "submitted", "final_url": "http://h/a", "title": null,
                         "answer": null, "infeasible": null, "visited": ["http://h/"], "steps": 2, "error": null});
        let s = Stage::from_json(StageName::Rollout2, web.clone()).expect("rollout");
        assert!(matches!(s, Stage::Rollout2(RolloutStage::Web(_))));
        assert_eq!(s.to_json().expect("json"), web);
        for (name, v) in [
            (
                StageName::Verify,
                json!({"error": "bad", "kept": false, "result": "patch_unparseable"}),
            ),
            (
                StageName::Verify,
                json!({"recall": null, "precision": null, "matched": 0, "total": 0,
                                       "candidate_total": 1, "verdict": "not_verified", "kept": false, "result": "p1_no_lines"}),
            ),
            (
                StageName::Rejected,
                json!({"reason": "t1_not_submitted", "bug": "b", "exit": "step_limit"}),
            ),
            (
                StageName::Tests,
                json!({"verdict": {"agree": true, "parsed": false}, "exit_codes": {"base": 0, "p1": null, "p2": 1}}),
            ),
            (StageName::Tests, json!({"error": "base run: x"})),
            (
                StageName::Selfcheck,
                json!({"answer": "unparseable", "tries": 3}),
            ),
        ] {
            let s = Stage::from_json(name, v.clone()).expect("stage");
            assert_eq!(s.to_json().expect("json"), v);
        }
    }
}
