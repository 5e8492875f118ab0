//! What an evaluation writes per task and seed, and the SWE-bench predictions beside it.

use serde::{Deserialize, Serialize};

use crate::task::TaskKind;

/// The file in an evaluation folder that holds its [`TaskResult`] rows, one per line.
pub const RESULTS_FILE: &str = "results.jsonl";

/// One task attempted once (one seed) by one model: the row `eval compare` pairs up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task.
    pub instance_id: String,
    /// Which repetition (0-based); rows of two runs pair on (instance_id, seed).
    pub seed: u32,
    /// Hard or soft, as the task says.
    pub kind: TaskKind,
    /// The model evaluated.
    pub model: String,
    /// Whether every FAIL_TO_PASS and PASS_TO_PASS test passed; `None` for soft tasks.
    pub resolved: Option<bool>,
    /// Line recall of the agent's patch against the gold patch (0 when it made none).
    pub recall: f64,
    /// How the episode ended (`submitted`, `step_limit`, ...).
    pub exit_status: String,
    /// Model calls taken.
    pub steps: usize,
    /// Prompt tokens over the episode.
    pub prompt_tokens: u64,
    /// Completion tokens over the episode.
    pub completion_tokens: u64,
    /// Cost in USD when prices are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Why scoring could not finish (the row then counts as not resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A prediction in SWE-bench's format, for other harnesses to score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// The task.
    pub instance_id: String,
    /// The model that wrote it.
    pub model_name_or_path: String,
    /// Its patch (empty when it made none).
    pub model_patch: String,
}
