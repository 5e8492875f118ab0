//! The problem statement of a mined task: the commit message as it is (`--statement commit`),
//! or an issue written by the teacher from the change and its message, describing the
//! symptom and never the fix, refused when it quotes an added line of the gold patch.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use trajforge_eval::leaked_lines;
use trajforge_teacher::{ChatMessage, Teacher, TeacherError, Usage};

use crate::code::clean_issue;
use crate::prompts::{Prompts, fill};

/// Where problem statements come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementSource {
    /// The teacher writes an issue from the change and its message.
    Teacher,
    /// The commit message, for users without a teacher at hand.
    Commit,
}

/// The request for an issue-style statement: `{message}`, `{patch}`, `{tests}`.
pub const STATEMENT_PROMPT: &str = "Below is a change a developer made to this repository, with its commit \
message and the tests that came with it. Write the issue a user would have opened before the change: what they \
tried, what happened and what they expected instead.\n\nRules:\n- Describe the symptom and how to reproduce \
it (a short snippet calling the public API is welcome); never describe the fix, the code that changed or the \
cause in the code.\n- Never copy a line of the change.\n- Do not mention tests, test files or the commit.\n\
- Never say the problem is already fixed.\n- If the change adds a feature rather than fixing a bug, write the \
feature request: the behaviour wanted and an example of its use.\n- Answer with the issue text only.\n\n\
<commit_message>\n{message}\n</commit_message>\n\n<change>\n{patch}\n</change>\n\n<tests>\n{tests}\n</tests>";

/// Tries before a change is given up because every statement quoted the fix.
pub const STATEMENT_TRIES: usize = 3;

/// What the teacher wrote, or why nothing usable came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// The statement; `None` when every try leaked the fix or was empty.
    pub text: Option<String>,
    /// Tries made.
    pub tries: usize,
    /// Added lines of the gold patch the last refused try quoted.
    pub leaked: Vec<String>,
    /// Tokens spent.
    pub prompt_tokens: u64,
    /// Tokens spent.
    pub completion_tokens: u64,
    /// Seconds spent waiting for the teacher.
    pub seconds: f64,
}

/// The commit message as a statement: a GitHub merge's own "Merge pull request #N from ..."
/// line dropped when the pull request's title follows it, else `merged` (the messages of the
/// merged commits) in its place.
pub fn from_commit(message: &str, merge: bool, merged: &str) -> String {
    let message = message.trim();
    if !merge {
        return message.to_string();
    }
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    if first.starts_with("Merge ") {
        let rest = rest.trim();
        if !rest.is_empty() {
            return rest.to_string();
        }
        if !merged.trim().is_empty() {
            return merged.trim().to_string();
        }
    }
    message.to_string()
}

/// Ask the teacher for an issue-style statement of the change, up to [`STATEMENT_TRIES`]
/// times until one quotes no added line of `gold`.
pub async fn write(
    teacher: &dyn Teacher,
    message: &str,
    gold: &str,
    tests: &str,
) -> Result<Written, TeacherError> {
    let prompt = fill(
        STATEMENT_PROMPT,
        &[("message", message), ("patch", gold), ("tests", tests)],
    );
    let messages = [
        ChatMessage::system(Prompts::default().pr_system),
        ChatMessage::user(prompt),
    ];
    let mut written = Written {
        text: None,
        tries: 0,
        leaked: Vec::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        seconds: 0.0,
    };
    while written.tries < STATEMENT_TRIES {
        written.tries += 1;
        let started = Instant::now();
        let c = teacher.complete(&messages, &[]).await?;
        written.seconds += started.elapsed().as_secs_f64();
        add_usage(&mut written, c.usage);
        let text = clean_issue(c.message.content.as_deref().unwrap_or(""));
        if text.trim().is_empty() {
            continue;
        }
        written.leaked = leaked_lines(&text, gold);
        if written.leaked.is_empty() {
            written.text = Some(text);
            break;
        }
    }
    Ok(written)
}

fn add_usage(w: &mut Written, u: Usage) {
    w.prompt_tokens += u.prompt_tokens;
    w.completion_tokens += u.completion_tokens;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_messages_give_the_pull_request_title_or_the_merged_commits() {
        let pr = "Merge pull request #1236 from pochmann/patch-8\n\nSimplify and speed up nth_permutation";
        assert_eq!(
            from_commit(pr, true, "ignored"),
            "Simplify and speed up nth_permutation"
        );
        let branch = "Merge branch 'CodingFeng101-codex/tail-negative'";
        assert_eq!(
            from_commit(branch, true, "Make tail reject negative n\n\nFix tail"),
            "Make tail reject negative n\n\nFix tail"
        );
        assert_eq!(from_commit(branch, true, ""), branch);
        assert_eq!(from_commit("Fix x\n\nbody\n", false, "x"), "Fix x\n\nbody");
    }
}
