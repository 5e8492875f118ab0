//! Held-out evaluation: the task file (SWE-bench's instance format plus trajforge's own fields),
//! the result row written per task and seed, SWE-bench predictions, and reading and writing
//! them as JSON Lines. A leaf crate: mining and running live in the pipeline, which fills
//! these types; `eval compare` and other harnesses read them.

pub mod jsonl;
pub mod result;
pub mod score;
pub mod summary;
pub mod task;

pub use jsonl::{JsonlError, read_jsonl, write_jsonl};
pub use result::{Prediction, TaskResult};
pub use summary::{Summary, Totals, summarize, totals};
pub use task::{Task, TaskKind};
