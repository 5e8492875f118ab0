//! Hard tasks: the repository's tests run in the sandbox at the base commit with the test
//! patch and with the gold and test patches, each side twice; FAIL_TO_PASS and PASS_TO_PASS
//! are the tests whose outcome is the same in both runs of a side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use trajforge_sandbox::{Backend, SandboxError};

use trajforge_repo_env::workdir;

use crate::envs::{EnvError, EnvFactory, SandboxEnvs, default_work_dir};
use crate::error::RunError;
use crate::prepare::SandboxSpec;
use crate::testreport::{self, FAILED_IMPORT, Outcome, TestReport};

/// The tests that decide a task, and those left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Fail (or cannot be imported) before, pass after, in both runs of each side.
    pub fail_to_pass: Vec<String>,
    /// Pass before and after, in both runs of each side.
    pub pass_to_pass: Vec<String>,
    /// Tests whose presence or outcome differed between the two runs of a side.
    pub unstable: Vec<String>,
}

/// Tests with the same outcome in both runs; the others are added to `unstable`.
fn stable(
    a: &TestReport,
    b: &TestReport,
    unstable: &mut BTreeSet<String>,
) -> BTreeMap<String, Outcome> {
    let mut same = BTreeMap::new();
    for (id, outcome) in &a.tests {
        match b.tests.get(id) {
            Some(o) if o == outcome => {
                same.insert(id.clone(), *outcome);
            }
            _ => {
                unstable.insert(id.clone());
            }
        }
    }
    unstable.extend(
        b.tests
            .keys()
            .filter(|id| !a.tests.contains_key(*id))
            .cloned(),
    );
    same
}

/// Modules (unittest) or files (pytest) that could not be imported or collected in a run.
fn uncollectable(tests: &BTreeMap<String, Outcome>) -> Vec<String> {
    tests
        .iter()
        .filter(|(_, o)| **o == Outcome::Error)
        .filter_map(|(id, _)| {
            if let Some(module) = id.strip_prefix(FAILED_IMPORT) {
                Some(format!("{module}."))
            } else if !id.contains("::") && (id.ends_with(".py") || id.ends_with('/')) {
                Some(if id.ends_with('/') {
                    id.clone()
                } else {
                    format!("{id}::")
                })
            } else {
                None
            }
        })
        .collect()
}

/// FAIL_TO_PASS and PASS_TO_PASS from two runs before (base + test patch) and two after
/// (base + gold + test patch). A test held by a module that could not be imported before
/// counts as failing there.
pub fn select(before: [&TestReport; 2], after: [&TestReport; 2]) -> Selection {
    let mut unstable = BTreeSet::new();
    let before = stable(before[0], before[1], &mut unstable);
    let after = stable(after[0], after[1], &mut unstable);
    let broken = uncollectable(&before);
    let mut selection = Selection::default();
    for (id, outcome) in &after {
        if *outcome != Outcome::Passed || unstable.contains(id) {
            continue;
        }
        let was = before.get(id).copied().or_else(|| {
            broken
                .iter()
                .any(|prefix| id.starts_with(prefix.as_str()))
                .then_some(Outcome::Error)
        });
        match was {
            Some(Outcome::Failed | Outcome::Error) => selection.fail_to_pass.push(id.clone()),
            Some(Outcome::Passed) => selection.pass_to_pass.push(id.clone()),
            _ => {}
        }
    }
    selection.unstable = unstable.into_iter().collect();
    selection
}

/// How one change's tests were run and what came of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The tests selected (empty when the tests could not decide).
    pub selection: Selection,
    /// Why the tests could not decide (`setup_failed`, `patch_does_not_apply`, `no_tests_parsed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_reason: Option<String>,
    /// What that reason's command or patch said, cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Exit codes of the four runs (before, before, after, after).
    pub exit_codes: Vec<Option<i32>>,
    /// Tests recognised in each run.
    pub tests_seen: Vec<usize>,
    /// Seconds in the four test runs (each a fresh workspace with its patch applied).
    pub test_seconds: f64,
    /// Seconds of the whole validation (snapshot, set-up, runs, parsing, clean-up).
    pub total_seconds: f64,
}

/// How to run a repository's tests for validation.
#[derive(Debug, Clone)]
pub struct TestSpec {
    /// The repository.
    pub repo: PathBuf,
    /// Set-up command run once per base snapshot.
    pub setup: Option<String>,
    /// The test command.
    pub test_cmd: String,
    /// Wall-time limit of a command (test runs get four times this).
    pub command_timeout: Duration,
    /// Where snapshots live (default: beside the repository's default work folder).
    pub work_dir: Option<PathBuf>,
    /// What the tests run in: bubblewrap or a container image.
    pub backend: Backend,
}

impl TestSpec {
    /// The repository's work folder, under which each base snapshot has its own folder
    /// keyed by repository, commit and set-up ([`trajforge_repo_env::workdir`]).
    pub fn work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| default_work_dir(&self.repo))
    }

    /// The sandbox of the tests at `base`.
    fn sandbox(&self, base: &str) -> SandboxSpec {
        SandboxSpec {
            commit: base.to_string(),
            setup: self.setup.clone(),
            command_timeout: self.command_timeout,
            work_dir: Some(self.work_dir()),
            backend: self.backend.clone(),
        }
    }

    /// The folder of the snapshot at `base`, when `base` names a commit.
    fn snapshot_dir(&self, base: &str) -> Option<PathBuf> {
        let repo = std::fs::canonicalize(&self.repo).ok()?;
        let commit = workdir::resolve_commit(&repo, base).ok()?;
        Some(workdir::snapshot_dir(
            &self.sandbox(base).work_dir(&self.repo),
            &repo,
            &commit,
            self.setup.as_deref(),
        ))
    }
}

/// Why a validation could not be made at all (the run stops; the change stays pending).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The sandbox failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A test run failed in the sandbox.
    #[error(transparent)]
    Env(#[from] EnvError),
}

/// Clip long command output for the record.
fn clip(s: &str) -> String {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Run the tests of one change at `base`: twice with `test` applied, twice with `gold` and
/// `test` applied.
pub async fn validate(
    spec: &TestSpec,
    base: &str,
    gold: &str,
    test: &str,
) -> Result<Validation, ValidateError> {
    let started = Instant::now();
    let sandbox = spec.sandbox(base);
    let repo = spec.repo.clone();
    let prepared = tokio::task::spawn_blocking(move || sandbox.prepare(&repo))
        .await
        .map_err(EnvError::from)?;
    let mut v = Validation::default();
    let env = match prepared {
        Ok(env) => env,
        Err(RunError::SetupFailed { output, .. })
        | Err(RunError::Sandbox {
            source: SandboxError::SetupFailed { output, .. },
            ..
        }) => {
            v.soft_reason = Some("setup_failed".into());
            v.detail = Some(clip(&output));
            if let Some(dir) = spec.snapshot_dir(base) {
                remove(dir, false).await;
            }
            v.total_seconds = started.elapsed().as_secs_f64();
            return Ok(v);
        }
        Err(e) => return Err(e.into()),
    };
    let dir = env.work_dir().to_path_buf();
    let timeout = spec.command_timeout.max(Duration::from_secs(1));
    let envs = SandboxEnvs::new(env, timeout, timeout * 4);
    let both = format!("{gold}{test}");
    let mut reports = Vec::with_capacity(4);
    let mut failure = None;
    for patch in [test, test, &both, &both] {
        let t = Instant::now();
        let run = envs
            .run_tests((!patch.is_empty()).then_some(patch), &spec.test_cmd)
            .await;
        v.test_seconds += t.elapsed().as_secs_f64();
        match run {
            Ok((output, code)) => {
                let report = testreport::parse(&output, code);
                v.exit_codes.push(code);
                v.tests_seen.push(report.tests.len());
                reports.push(report);
            }
            Err(EnvError::PatchDoesNotApply { output }) => {
                failure = Some(("patch_does_not_apply", output));
                break;
            }
            Err(e) => {
                drop(envs);
                remove(dir, true).await;
                return Err(e.into());
            }
        }
    }
    drop(envs);
    remove(dir, true).await;
    if let Some((reason, output)) = failure {
        v.soft_reason = Some(reason.into());
        v.detail = Some(clip(&output));
    } else if reports.iter().take(2).all(|r| r.tests.is_empty()) {
        v.soft_reason = Some("no_tests_parsed".into());
    } else {
        v.selection = select([&reports[0], &reports[1]], [&reports[2], &reports[3]]);
    }
    v.total_seconds = started.elapsed().as_secs_f64();
    Ok(v)
}

/// Remove a base snapshot once its change is validated, unless another run or job still
/// uses it (`used`: this validation prepared it and gives it back). Best effort: a leftover
/// is only disk.
async fn remove(dir: PathBuf, used: bool) {
    let _ = tokio::task::spawn_blocking(move || {
        if used {
            workdir::release_and_remove(&dir)
        } else {
            workdir::remove_unused(&dir)
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    fn report(tests: &[(&str, Outcome)]) -> TestReport {
        TestReport {
            tests: tests.iter().map(|(t, o)| ((*t).to_string(), *o)).collect(),
            format: Some("unittest".into()),
            exit_code: Some(1),
        }
    }

    #[test]
    fn fail_to_pass_and_pass_to_pass_from_stable_runs() {
        let before = report(&[
            ("m.T.a", Failed),
            ("m.T.b", Passed),
            ("m.T.c", Error),
            ("m.T.d", Passed),
        ]);
        let after = report(&[
            ("m.T.a", Passed),
            ("m.T.b", Passed),
            ("m.T.c", Passed),
            ("m.T.d", Failed),
        ]);
        let s = select([&before, &before], [&after, &after]);
        assert_eq!(s.fail_to_pass, ["m.T.a", "m.T.c"]);
        assert_eq!(s.pass_to_pass, ["m.T.b"]);
        assert!(s.unstable.is_empty());
    }

    #[test]
    fn a_test_that_differs_between_two_runs_of_a_side_is_left_out() {
        let before = report(&[
            ("m.T.a", Failed),
            ("m.T.b", Passed),
            ("m.T.t_1700000000", Passed),
        ]);
        let before2 = report(&[
            ("m.T.a", Failed),
            ("m.T.b", Failed),
            ("m.T.t_1700000001", Passed),
        ]);
        let after = report(&[
            ("m.T.a", Passed),
            ("m.T.b", Passed),
            ("m.T.t_1700000002", Passed),
        ]);
        let after2 = report(&[
            ("m.T.a", Passed),
            ("m.T.b", Passed),
            ("m.T.t_1700000003", Passed),
        ]);
        let s = select([&before, &before2], [&after, &after2]);
        assert_eq!(s.fail_to_pass, ["m.T.a"]);
        assert!(s.pass_to_pass.is_empty(), "{s:?}");
        assert_eq!(s.unstable.len(), 5, "{s:?}");
        // Flaky after the fix: not FAIL_TO_PASS either.
        let flaky_after = report(&[("m.T.a", Failed)]);
        let s = select([&before, &before], [&after, &flaky_after]);
        assert!(s.fail_to_pass.is_empty(), "{s:?}");
    }

    #[test]
    fn tests_of_a_module_that_cannot_be_imported_before_count_as_failing() {
        let before = report(&[
            ("unittest.loader._FailedTest.tests.test_new", Error),
            ("tests.test_old.U.test_f", Passed),
        ]);
        let after = report(&[
            ("tests.test_new.T.test_g", Passed),
            ("tests.test_new_other.T.test_h", Passed),
            ("tests.test_old.U.test_f", Passed),
        ]);
        let s = select([&before, &before], [&after, &after]);
        assert_eq!(s.fail_to_pass, ["tests.test_new.T.test_g"]);
        assert_eq!(s.pass_to_pass, ["tests.test_old.U.test_f"]);
        let before = report(&[("tests/test_new.py", Error)]);
        let after = report(&[
            ("tests/test_new.py::test_g", Passed),
            ("tests/test_other.py::test_h", Passed),
        ]);
        let s = select([&before, &before], [&after, &after]);
        assert_eq!(s.fail_to_pass, ["tests/test_new.py::test_g"]);
    }
}
