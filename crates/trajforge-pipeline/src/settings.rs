//! The settings that give a run's data its meaning, and the check made before resuming.

use serde::{Deserialize, Serialize};

/// What a run was started with; stored in the run and compared on every resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The repository (as given).
    pub repo: String,
    /// The base commit id.
    pub commit: String,
    /// Fingerprint of the bug-type menu.
    pub menu: String,
    /// Fingerprint of the demonstration pool.
    pub demos: String,
    /// Fingerprint of the prompts.
    pub prompts: String,
    /// Recall threshold.
    pub threshold: f64,
    /// Attempts per function.
    pub attempts: u32,
    /// Seed of the sample and the draws.
    pub seed: u64,
    /// Teacher model name.
    pub model: String,
    /// Test command of the behavioural verdict.
    pub test_cmd: Option<String>,
    /// Step limit of each rollout.
    pub max_steps: usize,
    /// Whether test files were sampled.
    pub include_tests: bool,
    /// Fingerprint of the functions left out for held-out tasks (`--exclude-tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

impl RunSettings {
    /// The differences that forbid resuming: each as "name: stored → requested".
    pub fn conflicts(&self, requested: &RunSettings) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} → {b}"));
            }
        };
        check("commit", self.commit.clone(), requested.commit.clone());
        check("menu", self.menu.clone(), requested.menu.clone());
        check("demos", self.demos.clone(), requested.demos.clone());
        check("prompts", self.prompts.clone(), requested.prompts.clone());
        check(
            "threshold",
            self.threshold.to_string(),
            requested.threshold.to_string(),
        );
        check(
            "attempts",
            self.attempts.to_string(),
            requested.attempts.to_string(),
        );
        check("seed", self.seed.to_string(), requested.seed.to_string());
        check("model", self.model.clone(), requested.model.clone());
        check(
            "test command",
            format!("{:?}", self.test_cmd),
            format!("{:?}", requested.test_cmd),
        );
        check(
            "max steps",
            self.max_steps.to_string(),
            requested.max_steps.to_string(),
        );
        check(
            "include tests",
            self.include_tests.to_string(),
            requested.include_tests.to_string(),
        );
        check(
            "excluded functions (--exclude-tasks)",
            self.excluded.clone().unwrap_or_else(|| "none".into()),
            requested.excluded.clone().unwrap_or_else(|| "none".into()),
        );
        out
    }
}

/// A stable digest of any serialisable value (FNV-1a over its JSON).
pub use trajforge_hash::fingerprint;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RunSettings {
        RunSettings {
            repo: "r".into(),
            commit: "abc".into(),
            menu: "m".into(),
            demos: "d".into(),
            prompts: "p".into(),
            threshold: 0.5,
            attempts: 3,
            seed: 0,
            model: "glm".into(),
            test_cmd: None,
            max_steps: 115,
            include_tests: false,
            excluded: None,
        }
    }

    #[test]
    fn meaning_changes_conflict_and_the_repo_path_does_not() {
        let a = settings();
        assert!(a.conflicts(&a).is_empty());
        let b = RunSettings {
            threshold: 1.0,
            commit: "def".into(),
            repo: "elsewhere".into(),
            ..settings()
        };
        let c = a.conflicts(&b);
        assert_eq!(
            c,
            vec![
                "commit: abc → def".to_string(),
                "threshold: 0.5 → 1".to_string()
            ]
        );
    }

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint(&settings()), fingerprint(&settings()));
        assert_ne!(fingerprint(&1), fingerprint(&2));
    }
}
