//! The settings that give a run's data its meaning, and the check made before resuming.

use serde::{Deserialize, Serialize};
use trajforge_sandbox::Backend;

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
    /// Whether web pairs ending on different pages may be kept (absent in runs before it: no).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_different_final: bool,
    /// Fingerprint of the functions left out for held-out tasks (`--exclude-tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// The container commands ran in (its image holds what episodes and tests see); absent
    /// for bubblewrap, and in runs stored before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Backend>,
}

/// A backend as a setting: `None` for bubblewrap, the default.
pub fn sandbox_setting(backend: &Backend) -> Option<Backend> {
    (*backend != Backend::Bubblewrap).then(|| backend.clone())
}

/// A sandbox setting as shown in a conflict.
fn sandbox_name(sandbox: Option<&Backend>) -> String {
    match sandbox {
        Some(Backend::Container { engine, image }) => format!("{} image {image}", engine.program()),
        _ => "bubblewrap".into(),
    }
}

impl RunSettings {
    /// The differences that forbid resuming: each as "name: stored → requested".
    pub fn conflicts(&self, requested: &RunSettings) -> Vec<String> {
        let mut out = Vec::new();
        // Compared as shown to the user, so the message says exactly what differs.
        let mut check = |name: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
            let (a, b) = (a.to_string(), b.to_string());
            if a != b {
                out.push(format!("{name}: {a} → {b}"));
            }
        };
        let (s, r) = (self, requested);
        check("commit", &s.commit, &r.commit);
        check("menu", &s.menu, &r.menu);
        check("demos", &s.demos, &r.demos);
        check("prompts", &s.prompts, &r.prompts);
        check("threshold", &s.threshold, &r.threshold);
        check("attempts", &s.attempts, &r.attempts);
        check("seed", &s.seed, &r.seed);
        check("model", &s.model, &r.model);
        check(
            "test command",
            &format!("{:?}", s.test_cmd),
            &format!("{:?}", r.test_cmd),
        );
        check("max steps", &s.max_steps, &r.max_steps);
        check("include tests", &s.include_tests, &r.include_tests);
        check(
            "keep different final",
            &s.keep_different_final,
            &r.keep_different_final,
        );
        check(
            "excluded functions (--exclude-tasks)",
            &s.excluded.as_deref().unwrap_or("none"),
            &r.excluded.as_deref().unwrap_or("none"),
        );
        check(
            "sandbox",
            &sandbox_name(s.sandbox.as_ref()),
            &sandbox_name(r.sandbox.as_ref()),
        );
        out
    }
}

/// A stable digest of any serialisable value (FNV-1a over its JSON).
pub use trajforge_hash::fingerprint;

/// `path` as a run's store records the files and folders a command wrote: absolute (not
/// resolving links), so that the same command run from another directory finds them its own.
pub(crate) fn recorded_path(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

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
            keep_different_final: false,
            excluded: None,
            sandbox: None,
        }
    }

    #[test]
    fn another_sandbox_conflicts_and_runs_stored_before_it_read_as_bubblewrap() {
        let bwrap = settings();
        let podman = RunSettings {
            sandbox: sandbox_setting(&Backend::Container {
                engine: trajforge_sandbox::Engine::Podman,
                image: "img:1".into(),
            }),
            ..settings()
        };
        assert_eq!(
            bwrap.conflicts(&podman),
            vec!["sandbox: bubblewrap → podman image img:1"]
        );
        assert!(podman.conflicts(&podman).is_empty());
        // Bubblewrap is left out of the stored settings, as before the setting existed.
        let stored = serde_json::to_value(&bwrap).expect("json");
        assert!(stored.get("sandbox").is_none(), "{stored}");
        assert_eq!(sandbox_setting(&Backend::Bubblewrap), None);
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
