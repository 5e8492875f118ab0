//! A scripted teacher for whole code runs (Soft-Verified Generation on Python
//! repositories, the pipeline's `code` module), as [`web`](crate::web) is for web runs.
//!
//! It answers every stage from the content of the request alone (so many conversations can
//! run at once and a resumed run gets the same answers): rollout 1 appends a comment to the
//! line defining the function, the self-check answers by the function's [`Fate`], the
//! synthetic issue names the function and its file, and rollout 2 repeats, varies or
//! misplaces rollout 1's edit.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::Step;

/// What the scripted teacher does with a function, by the length of its short name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The self-check says no, on every attempt.
    SelfCheckNo,
    /// Rollout 2 makes the same edit: r = 1.
    Exact,
    /// Rollout 2 makes a different edit of the same line: r = 0.5.
    Partial,
    /// Rollout 2 edits another line: r = 0.
    Wrong,
}

/// The fate of a function (`Class.method` or `name`).
pub fn fate(function: &str) -> Fate {
    let short = function.rsplit('.').next().unwrap_or(function);
    match short.len() % 4 {
        0 => Fate::SelfCheckNo,
        1 => Fate::Exact,
        2 => Fate::Partial,
        _ => Fate::Wrong,
    }
}

/// The result label the pipeline must give a function at threshold 0.5.
pub fn expected_result(function: &str) -> &'static str {
    match fate(function) {
        Fate::SelfCheckNo => "selfcheck_no",
        Fate::Exact | Fate::Partial => "kept",
        Fate::Wrong => "low_recall",
    }
}

/// The function and file named in backticks in a task (menu entries write `{function}` and `{path}` so).
fn named(text: &str) -> (String, String) {
    let mut parts = text.split('`').skip(1).step_by(2);
    let function = parts.next().unwrap_or("").to_string();
    let path = parts
        .find(|p| p.contains('/') || p.ends_with(".py"))
        .unwrap_or("")
        .to_string();
    (function, path)
}

/// A bash command that appends `comment` to the line `offset` lines after the definition.
fn edit(function: &str, path: &str, comment: &str, offset: u32) -> String {
    let short = function.rsplit('.').next().unwrap_or(function);
    format!(
        "cd /workspace && L=$(grep -n 'def {short}(' {path} | head -1 | cut -d: -f1) && L=$((L + {offset})) && sed -i \"${{L}}s/\\$/  # {comment}/\" {path} && sed -n \"${{L}}p\" {path}"
    )
}

/// Answers for a whole run; `fault_every` > 0 makes every n-th request fail (500 or a dropped connection).
#[derive(Debug, Default)]
pub struct CodeTeacher {
    requests: AtomicUsize,
    fault_every: usize,
}

impl CodeTeacher {
    /// A teacher that injects a fault into every `fault_every`-th request (0: never).
    pub fn new(fault_every: usize) -> Self {
        CodeTeacher {
            requests: AtomicUsize::new(0),
            fault_every,
        }
    }

    /// The answer to one chat-completions request.
    pub fn answer(&self, req: &Value) -> Step {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if self.fault_every > 0 && n % self.fault_every == self.fault_every - 1 {
            return if n.is_multiple_of(2) {
                Step::status(500, "injected fault")
            } else {
                Step::DropConnection
            };
        }
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let all: String = messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let has_tools = req
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_tools {
            if all.contains("Does the patch address the task?") {
                let (function, _) = named(&all);
                return Step::text(if fate(&function) == Fate::SelfCheckNo {
                    "No."
                } else {
                    "Yes, it does."
                });
            }
            // The synthetic issue. The demonstration comes first and may hold backticks.
            let task = all.split("<original_task>").nth(1).unwrap_or(&all);
            let (function, path) = named(task);
            return Step::text(format!(
                "Calling `{function}` from `{path}` misbehaves for me. Steps: call it."
            ));
        }
        let first_user = messages
            .get(1)
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let (function, path) = named(first_user);
        let rollout2 = first_user.contains("A user opened this issue");
        let command = match (rollout2, fate(&function)) {
            (false, _) | (true, Fate::Exact) => edit(&function, &path, "trajforge-fix", 0),
            (true, Fate::Partial) => edit(&function, &path, "another-fix", 0),
            (true, _) => edit(&function, &path, "elsewhere", 1),
        };
        match messages.iter().filter(|m| m["role"] == "assistant").count() {
            0 => Step::tool_call("bash", json!({"command": command})),
            1 | 2 => Step::tool_call("submit", json!({})),
            _ => Step::text("done"),
        }
    }

    /// Requests answered so far (faults included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_cover_every_path() {
        assert_eq!(fate("Outer.abcd"), Fate::SelfCheckNo);
        assert_eq!(fate("a"), Fate::Exact);
        assert_eq!(expected_result("ab"), "kept");
        assert_eq!(expected_result("abc"), "low_recall");
    }

    #[test]
    fn names_come_from_backticks() {
        assert_eq!(
            named("bug in `chunked` (in `more_itertools/more.py`)"),
            ("chunked".into(), "more_itertools/more.py".into())
        );
    }
}
