//! Held-out evaluation as data: the task file ([`task`]: SWE-bench's instance format plus
//! trajforge's own fields, web navigation tasks included), the result row written per task
//! and seed and SWE-bench predictions ([`result`]), scoring one attempt from its test report
//! ([`score`]), the totals of a result file ([`summary`]), reading and writing them as JSON
//! Lines ([`jsonl`]), and the paired comparison of two evaluations ([`compare`](mod@compare): bootstrap,
//! McNemar, verdict); and the pure parts of mining tasks from history ([`change`]: splitting
//! a change into gold and test patches, classifying files, skip reasons; [`leak`]: the
//! statement leak check). A leaf crate: mining and running live in the pipeline, which fills
//! these types; `eval compare` and other harnesses read them.

pub mod change;
pub mod compare;
pub mod jsonl;
pub mod leak;
pub mod result;
pub mod score;
pub mod summary;
pub mod task;

pub use change::{FileClass, Limits, SkipReason, SplitChange, classify, screen};
pub use compare::{CompareError, CompareOptions, Comparison, compare, compare_dirs, render};
pub use jsonl::{JsonlError, read_jsonl, write_jsonl};
pub use leak::leaked_lines;
pub use result::{Prediction, RESULTS_FILE, TaskResult};
pub use summary::{Summary, Totals, summarize, totals};
pub use task::{Task, TaskKind, WebIntent, WebTarget};
