//! One held-out task, in SWE-bench's instance format so other harnesses read it, with
//! trajforge's fields (kind, set-up and test commands) beside it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;

/// How a task is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Has FAIL_TO_PASS tests: scored by resolution (and line recall).
    Hard,
    /// No usable tests: scored by line recall against the gold patch alone.
    Soft,
    /// A navigation task on a website: scored by success (target page reached, or the
    /// answer found) and by recall of the route to the target.
    Web,
}

impl TaskKind {
    /// Whether rows of this kind are scored by an outcome (resolved or not), not recall alone.
    pub fn scored_by_outcome(self) -> bool {
        matches!(self, TaskKind::Hard | TaskKind::Web)
    }
}

/// What a web task asks of the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebIntent {
    /// Reach the target page: success when the final page is the target.
    Navigate,
    /// Find a fact the target page states: success when the answer matches.
    Answer,
}

/// Where a web task starts and what it must reach, drawn from a crawled site's page graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebTarget {
    /// The site's origin (`http://127.0.0.1:8000`), as recorded by the crawl.
    pub origin: String,
    /// The page the visitor starts on.
    pub start_url: String,
    /// Its title.
    pub start_title: String,
    /// The page that answers the request.
    pub target_url: String,
    /// Its title.
    pub target_title: String,
    /// Reach the page, or find the answer on it.
    pub intent: WebIntent,
    /// The answer, as the target page states it (answer tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// A shortest route of links from the start page to the target (start excluded, target
    /// included): what route recall is measured against.
    #[serde(default)]
    pub route: Vec<String>,
}

/// A held-out task: SWE-bench's instance fields, then trajforge's.
#[skip_serializing_none]
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
    pub kind: Option<TaskKind>,
    /// The commit the task was mined from (its gold change).
    pub commit: Option<String>,
    /// Set-up command run once in the workspace before the tests.
    pub setup: Option<String>,
    /// Test command whose output gives per-test outcomes.
    pub test_cmd: Option<String>,
    /// Web tasks: the start page, the target and the answer; absent for code tasks.
    pub web: Option<WebTarget>,
    /// Fields of other harnesses (SWE-bench's `version`, `hints_text`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Task {
    /// As written; else web when it has a web target, hard exactly when there is a
    /// FAIL_TO_PASS test, soft otherwise.
    pub fn kind(&self) -> TaskKind {
        if self.kind.is_none() && self.web.is_some() {
            return TaskKind::Web;
        }
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
            web: None,
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

    #[test]
    fn web_tasks_round_trip_and_old_files_read_without_the_field() {
        let mut t = sample();
        t.kind = Some(TaskKind::Web);
        t.web = Some(WebTarget {
            origin: "http://h".into(),
            start_url: "http://h/".into(),
            start_title: "Home".into(),
            target_url: "http://h/docs/a.html".into(),
            target_title: "A".into(),
            intent: WebIntent::Answer,
            answer: Some("42".into()),
            route: vec!["http://h/docs/".into(), "http://h/docs/a.html".into()],
        });
        let text = serde_json::to_string(&t).expect("serialize");
        assert!(text.contains("\"kind\":\"web\""), "{text}");
        assert!(text.contains("\"intent\":\"answer\""), "{text}");
        let back: Task = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, t);
        assert!(back.kind().scored_by_outcome());
        // A web target without a written kind is a web task; a code task has no target.
        t.kind = None;
        assert_eq!(t.kind(), TaskKind::Web);
        let old = serde_json::to_string(&sample()).expect("serialize");
        assert!(!old.contains("\"web\""), "{old}");
        assert_eq!(serde_json::from_str::<Task>(&old).expect("old").web, None);
    }
}
