//! Scoring one attempt at a task from what its test run reported.

use crate::task::Task;

/// The task's FAIL_TO_PASS and PASS_TO_PASS tests that did not pass, in task order; a test
/// the run did not report (it could not even be collected) did not pass.
pub fn failing_tests(task: &Task, passed: impl Fn(&str) -> bool) -> Vec<&str> {
    task.fail_to_pass
        .iter()
        .chain(&task.pass_to_pass)
        .map(String::as_str)
        .filter(|t| !passed(t))
        .collect()
}

/// Whether every FAIL_TO_PASS and PASS_TO_PASS test of `task` passed.
pub fn resolved(task: &Task, passed: impl Fn(&str) -> bool) -> bool {
    failing_tests(task, passed).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_test_must_pass_and_missing_ones_do_not() {
        let task: Task = serde_json::from_str(
            r#"{"instance_id":"x","repo":"r","base_commit":"c","patch":"","problem_statement":"s",
                "FAIL_TO_PASS":["t.A.a"],"PASS_TO_PASS":["t.A.b","t.A.c"]}"#,
        )
        .expect("task");
        let all = |_: &str| true;
        assert!(resolved(&task, all));
        let without_c = |t: &str| t != "t.A.c";
        assert!(!resolved(&task, without_c));
        assert_eq!(failing_tests(&task, without_c), ["t.A.c"]);
        assert_eq!(failing_tests(&task, |_| false).len(), 3);
    }
}
