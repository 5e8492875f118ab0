//! Real held-out tasks from more-itertools' history (the bundle in `examples/`): merges
//! that fix a bug and add its test, built into [`Task`]s from a clone, for the `eval` tests
//! and the evaluation benchmark alike.

use std::path::Path;

use trajforge_eval::{Task, TaskKind};

use crate::git;

/// A merge of more-itertools that fixes a bug and adds its test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fix {
    /// The merge commit.
    pub commit: &'static str,
    /// The test class in `tests/test_more.py` that holds the new test.
    pub class: &'static str,
    /// The FAIL_TO_PASS test of that class.
    pub test: &'static str,
    /// The problem statement, in the style of an issue (symptom, never the fix).
    pub statement: &'static str,
}

/// The fixes, in the order the tests and the benchmark use them.
pub const FIXES: [Fix; 3] = [
    Fix {
        commit: "c2859de7ae7b791b77c33462a58f81f9a4d9d5d6",
        class: "SlicedTests",
        test: "test_negative",
        statement: "`more_itertools.sliced(seq, n)` with a negative `n` silently yields a wrong result \
                    (for example `list(sliced('ABCDEFG', -1))`) instead of rejecting the size. It should \
                    raise ValueError, with or without strict=True.",
    },
    Fix {
        commit: "b363d6b82c7082db647bd350560fca5e1d724a16",
        class: "InterleaveEvenlyTests",
        test: "test_no_iterables",
        statement: "`list(more_itertools.interleave_evenly([]))` raises an exception instead of returning \
                    an empty list; the same with `lengths=[]`.",
    },
    Fix {
        commit: "3bbe636e23bdfa359d80e6851e0c37abbc860d4c",
        class: "NumericRangeTests",
        test: "test_get_item_by_slice",
        statement: "Slicing a `more_itertools.numeric_range` with a negative step (for example \
                    `numeric_range(10)[::-1]`) returns an empty range instead of the reversed values.",
    },
];

/// The hard tasks of `fixes` from a clone of more-itertools at `repo`: base = the merge's
/// first parent, gold patch = its change to `more_itertools/`, test patch = its change to
/// `tests/`, PASS_TO_PASS = the test class's other tests at the base, and a test command
/// that runs the class.
pub fn fix_tasks(repo: &Path, fixes: &[Fix]) -> Result<Vec<Task>, String> {
    fixes
        .iter()
        .map(|fix| {
            let base = git(repo, &["rev-parse", &format!("{}^1", fix.commit)])?;
            let base = base.trim();
            let diff = |path: &str| git(repo, &["diff", base, fix.commit, "--", path]);
            let tests_at_base = git(repo, &["show", &format!("{base}:tests/test_more.py")])?;
            let class_body = tests_at_base
                .split(&format!("class {}(", fix.class))
                .nth(1)
                .ok_or_else(|| format!("no class {} at {base}", fix.class))?
                .split("\nclass ")
                .next()
                .unwrap_or_default();
            let pass_to_pass = class_body
                .lines()
                .filter_map(|l| l.trim().strip_prefix("def test_"))
                .filter_map(|l| l.split('(').next())
                .map(|name| format!("tests.test_more.{}.test_{name}", fix.class))
                .collect();
            Ok(Task {
                instance_id: format!("more-itertools-{}", &fix.commit[..7]),
                repo: "more-itertools/more-itertools".into(),
                base_commit: base.to_string(),
                patch: diff("more_itertools")?,
                test_patch: diff("tests")?,
                problem_statement: fix.statement.to_string(),
                fail_to_pass: vec![format!("tests.test_more.{}.{}", fix.class, fix.test)],
                pass_to_pass,
                created_at: String::new(),
                kind: Some(TaskKind::Hard),
                commit: Some(fix.commit.to_string()),
                setup: None,
                test_cmd: Some(format!(
                    "python3 -m unittest -v tests.test_more.{}",
                    fix.class
                )),
                web: None,
                extra: serde_json::Map::new(),
            })
        })
        .collect()
}
