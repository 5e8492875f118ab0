//! One held-out task, in SWE-bench's instance format so other harnesses read it, with
//! trajforge's fields (kind, set-up and test commands) beside it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// How a task is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Has FAIL_TO_PASS tests: scored by resolution (and line recall).
    Hard,
    /// No usable tests: scored by line recall against the gold patch alone.
    Soft,
}

/// A held-out task: SWE-bench's instance fields, then trajforge's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique id, `<repo>-<short commit>` for mined tasks.
    pub instance_id: String,
    /// The repository's name (for mined tasks, its folder name or `owner/name`).
    pub repo: String,
    /// The commit the agent starts from (the change's first parent).
    pub base_commit: String,
    /// The gold patch: the change's non-test part.
    pub patch: String,
    /// The change's test part, applied over the agent's patch to score it.
    #[serde(default)]
    pub test_patch: String,
    /// What the agent is told: an issue-style description, never the fix.
    pub problem_statement: String,
    /// Tests that fail at the base (with the test patch) and pass with the gold patch.
    #[serde(rename = "FAIL_TO_PASS", default, deserialize_with = "test_list")]
    pub fail_to_pass: Vec<String>,
    /// Tests that pass both before and after.
    #[serde(rename = "PASS_TO_PASS", default, deserialize_with = "test_list")]
    pub pass_to_pass: Vec<String>,
    /// When the change was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// Hard or soft; absent in plain SWE-bench files, where it follows from FAIL_TO_PASS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TaskKind>,
    /// The commit the task was mined from (its gold change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Set-up command run once in the workspace before the tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// Test command whose output gives per-test outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_cmd: Option<String>,
    /// Fields of other harnesses (SWE-bench's `version`, `hints_text`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Task {
    /// Hard or soft: as written, else hard exactly when there is a FAIL_TO_PASS test.
    pub fn kind(&self) -> TaskKind {
        self.kind.unwrap_or(if self.fail_to_pass.is_empty() {
            TaskKind::Soft
        } else {
            TaskKind::Hard
        })
    }
}

/// SWE-bench's published datasets hold the test lists as a JSON string (`"[\"a\", \"b\"]"`),
/// its harness files as a list: accept both.
fn test_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Encoded(String),
    }
    match Either::deserialize(d)? {
        Either::List(v) => Ok(v),
        Either::Encoded(s) if s.trim().is_empty() => Ok(Vec::new()),
        Either::Encoded(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Task {
        Task {
            instance_id: "more-itertools-abc1234".into(),
            repo: "more-itertools".into(),
            base_commit: "0123".into(),
            patch: "diff --git a/x b/x\n".into(),
            test_patch: String::new(),
            problem_statement: "chunked drops the tail".into(),
            fail_to_pass: vec!["test_a (tests.T.test_a)".into()],
            pass_to_pass: vec![],
            created_at: "2024-01-01T00:00:00Z".into(),
            kind: Some(TaskKind::Hard),
            commit: Some("abc1234".into()),
            setup: None,
            test_cmd: Some("python3 -m unittest -v".into()),
            extra: Map::new(),
        }
    }

    #[test]
    fn round_trips_with_swe_bench_field_names() {
        let t = sample();
        let text = serde_json::to_string(&t).expect("serialize");
        assert!(
            text.contains("\"FAIL_TO_PASS\":[\"test_a (tests.T.test_a)\"]"),
            "{text}"
        );
        assert!(
            !text.contains("\"setup\""),
            "absent options are left out: {text}"
        );
        let back: Task = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, t);
    }

    #[test]
    fn reads_swe_bench_dataset_rows_with_encoded_lists_and_keeps_their_fields() {
        let row = r#"{"instance_id":"astropy__astropy-12907","repo":"astropy/astropy",
            "base_commit":"d16bfe05","patch":"p","test_patch":"t","problem_statement":"s",
            "FAIL_TO_PASS":"[\"a\", \"b\"]","PASS_TO_PASS":"[]","created_at":"2022-03-03T15:14:54Z",
            "version":"4.3","hints_text":""}"#;
        let t: Task = serde_json::from_str(row).expect("dataset row");
        assert_eq!(t.fail_to_pass, ["a", "b"]);
        assert!(t.pass_to_pass.is_empty());
        assert_eq!(t.kind(), TaskKind::Hard);
        assert_eq!(t.extra.get("version"), Some(&Value::from("4.3")));
        let again = serde_json::to_value(&t).expect("serialize");
        assert_eq!(again["version"], "4.3");
    }

    #[test]
    fn kind_follows_the_tests_when_not_written() {
        let mut t = sample();
        t.kind = None;
        assert_eq!(t.kind(), TaskKind::Hard);
        t.fail_to_pass.clear();
        assert_eq!(t.kind(), TaskKind::Soft);
    }
}
