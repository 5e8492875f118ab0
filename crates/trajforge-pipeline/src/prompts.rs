//! The prompts of every stage, with defaults written for trajforge and overridable from files.

use std::path::Path;

use trajforge_menu::template::{self, Piece};

/// Fills `{name}` placeholders (`{{` and `}}` are literal braces), in one pass: the menu's
/// template engine, so menu entries and stage prompts follow one syntax.
pub use trajforge_menu::template::render as fill;

/// Prompt templates; `{name}` placeholders are filled at each stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prompts {
    /// Rollout 1 task: `{bug}` (the menu entry, rendered), `{function}`, `{path}`.
    pub rollout1: String,
    /// Self-check question: `{task}`, `{steps}`, `{patch}`.
    pub selfcheck: String,
    /// System prompt of the synthetic-PR writer.
    pub pr_system: String,
    /// Synthetic PR request: `{demo}`, `{task}`, `{patch}`.
    pub pr: String,
    /// Rollout 2 task: `{issue}`.
    pub rollout2: String,
}

/// (file name, field, required placeholder names) of each overridable prompt.
const FILES: [(&str, &str, &[&str]); 5] = [
    ("rollout1.txt", "rollout1", &["bug"]),
    ("selfcheck.txt", "selfcheck", &["task", "patch"]),
    ("pr_system.txt", "pr_system", &[]),
    ("pr.txt", "pr", &["demo", "patch"]),
    ("rollout2.txt", "rollout2", &["issue"]),
];

impl Default for Prompts {
    fn default() -> Self {
        Prompts {
            rollout1: "{bug}\n\nThe cause may be in `{function}` itself, in something it calls, or in one of its \
callers. Investigate the code in /workspace, find the problem and fix it with a minimal change to non-test \
files. If you can, write a small script that reproduces the problem and check that your change fixes it. \
When you are done, call `submit`."
                .into(),
            selfcheck: "An engineer was given this task:\n<task>\n{task}\n</task>\n\nHere is what they did, \
step by step:\n{steps}\n\nTheir final patch:\n<patch>\n{patch}\n</patch>\n\nDoes the patch address the task? \
Answer with a single word: yes or no."
                .into(),
            pr_system: "You write issue reports for a software project's issue tracker, the way its users \
write them."
                .into(),
            pr: "Below is a change that fixed a problem in this repository, and the task that led to it. Write \
the issue a user would have opened before the fix, describing the problem they ran into.\n\nRules:\n\
- Imitate the style of the example issue: its structure, whether it uses markdown, its length, its tone and \
its chatter.\n- Describe the symptom and how to reproduce it; never describe the fix, or its cause in the code.\n\
- Do not mention tests or test files.\n- Never say that the problem is already fixed.\n- Where the example has \
names or personal details, invent different ones.\n- Include code only if the example does.\n- Answer with the \
issue text only.\n\n<example_issue>\n{demo}\n</example_issue>\n\n<original_task>\n{task}\n</original_task>\n\n\
<fix>\n{patch}\n</fix>"
                .into(),
            rollout2: "A user opened this issue about the repository at /workspace:\n\n<issue>\n{issue}\n</issue>\n\n\
Investigate and resolve it with a minimal change to non-test files. If you can, reproduce the problem first \
with a small script and check that your change fixes it. When you are done, call `submit`."
                .into(),
        }
    }
}

/// A prompt file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file exists but cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required placeholder is missing.
    #[error("{path}: the prompt must contain {placeholder}")]
    Missing {
        /// The file.
        path: String,
        /// The placeholder.
        placeholder: String,
    },
    /// The folder does not exist.
    #[error("{path}: no such folder (expected prompt files such as rollout1.txt, pr.txt)")]
    NoFolder {
        /// The folder.
        path: String,
    },
}

impl Prompts {
    /// Defaults, with any of `rollout1.txt`, `selfcheck.txt`, `pr_system.txt`, `pr.txt`,
    /// `rollout2.txt` found in `dir` replacing the matching prompt.
    pub fn load(dir: &Path) -> Result<Prompts, PromptError> {
        let mut prompts = Prompts::default();
        load_files(dir, &FILES, |field, text| *prompts.field_mut(field) = text)?;
        Ok(prompts)
    }

    fn field_mut(&mut self, name: &str) -> &mut String {
        match name {
            "rollout1" => &mut self.rollout1,
            "selfcheck" => &mut self.selfcheck,
            "pr_system" => &mut self.pr_system,
            "pr" => &mut self.pr,
            _ => &mut self.rollout2,
        }
    }
}

/// Read the prompt files of `files` (file name, field, required placeholder names) found in
/// `dir`, checking their placeholders, and hand each to `set`.
fn load_files(
    dir: &Path,
    files: &[(&str, &str, &[&str])],
    mut set: impl FnMut(&str, String),
) -> Result<(), PromptError> {
    if !dir.is_dir() {
        return Err(PromptError::NoFolder {
            path: dir.display().to_string(),
        });
    }
    for (file, field, required) in files {
        let path = dir.join(file);
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| PromptError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(name) = required.iter().find(|name| !has_placeholder(&text, name)) {
            return Err(PromptError::Missing {
                path: path.display().to_string(),
                placeholder: format!("{{{name}}}"),
            });
        }
        set(field, text);
    }
    Ok(())
}

/// Whether `template` has a `{name}` placeholder that [`fill`] would replace.
fn has_placeholder(template: &str, name: &str) -> bool {
    template::scan(template).contains(&Piece::Placeholder(name))
}

/// Prompt templates of the web pipeline (SPEC.md section 6).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebPrompts {
    /// Rollout 1 task: `{intent}` (the menu entry, rendered), `{start_url}`, `{start_title}`, `{ending}`.
    pub rollout1: String,
    /// System prompt of the request writer.
    pub request_system: String,
    /// The request writer's task: `{start_title}`, `{final_title}`, `{final_url}`, `{answer}`.
    pub request: String,
    /// Rollout 2 task: `{request}`, `{start_url}`, `{start_title}`, `{ending}`.
    pub rollout2: String,
}

const WEB_FILES: [(&str, &str, &[&str]); 4] = [
    ("web_rollout1.txt", "rollout1", &["intent"]),
    ("web_request_system.txt", "request_system", &[]),
    ("web_request.txt", "request", &["final_url"]),
    ("web_rollout2.txt", "rollout2", &["request"]),
];

impl Default for WebPrompts {
    fn default() -> Self {
        WebPrompts {
            rollout1: "You are using a web browser on the page \"{start_title}\" ({start_url}).\n\n{intent}\n\n\
Look at the page snapshot, follow links and use the page's menus, search and forms as a visitor would. \
{ending}"
                .into(),
            request_system: "You write the requests that visitors of a website type into a browsing \
assistant, in their own words."
                .into(),
            request: "A visitor of a website started on the page \"{start_title}\" and ended on the page \
\"{final_title}\" ({final_url}).{answer}\n\nWrite the request this visitor would have made to get there: \
what they wanted to find or do, in one or two sentences, in their own voice. Never mention URLs, link or \
button names to click, menus, or the steps to take; a real visitor does not know them. Answer with the \
request only."
                .into(),
            rollout2: "You are using a web browser on the page \"{start_title}\" ({start_url}).\n\nA visitor \
asks you: {request}\n\nLook at the page snapshot, follow links and use the page's menus, search and forms \
as a visitor would. {ending}"
                .into(),
        }
    }
}

impl WebPrompts {
    /// Defaults, with any of `web_rollout1.txt`, `web_request_system.txt`, `web_request.txt`,
    /// `web_rollout2.txt` found in `dir` replacing the matching prompt.
    pub fn load(dir: &Path) -> Result<WebPrompts, PromptError> {
        let mut prompts = WebPrompts::default();
        load_files(dir, &WEB_FILES, |field, text| match field {
            "rollout1" => prompts.rollout1 = text,
            "request_system" => prompts.request_system = text,
            "request" => prompts.request = text,
            _ => prompts.rollout2 = text,
        })?;
        Ok(prompts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_single_pass() {
        let s = fill("a {x} b {y} {z}", &[("x", "{y}"), ("y", "Y")]);
        assert_eq!(s, "a {y} b Y {z}");
    }

    /// Every built-in prompt, filled with values full of braces, hashed (FNV-1a) with its
    /// length; recorded from the release before the pipeline shared the menu's template
    /// engine. A change here changes what the teacher is asked in every run.
    #[test]
    fn default_prompts_render_as_released() {
        let value = |name: &str| format!("<{name} value with {{task}} and {{{{ and }}}}>");
        let (p, w) = (Prompts::default(), WebPrompts::default());
        let web = ["start_url", "start_title", "ending"];
        let cases: [(&str, &str, &[&str], u64, usize); 9] = [
            (
                "rollout1",
                &p.rollout1,
                &["bug", "function", "path"],
                0xb0bc_5188_ab4a_6922,
                397,
            ),
            (
                "selfcheck",
                &p.selfcheck,
                &["task", "steps", "patch"],
                0x434a_d5e4_bec3_f725,
                313,
            ),
            ("pr_system", &p.pr_system, &[], 0xe4e9_566f_04e0_e75d, 93),
            (
                "pr",
                &p.pr,
                &["demo", "task", "patch"],
                0xd05e_19f7_8d63_6cdb,
                844,
            ),
            (
                "rollout2",
                &p.rollout2,
                &["issue"],
                0xfa56_cf9d_ef87_ddbd,
                318,
            ),
            (
                "web_rollout1",
                &w.rollout1,
                &["intent", web[0], web[1], web[2]],
                0x5a7f_090e_89fa_8c87,
                321,
            ),
            (
                "web_request_system",
                &w.request_system,
                &[],
                0xf7b5_be5e_0eb3_4e6f,
                101,
            ),
            (
                "web_request",
                &w.request,
                &["start_title", "final_title", "final_url", "answer"],
                0xa250_92dd_be54_2d38,
                531,
            ),
            (
                "web_rollout2",
                &w.rollout2,
                &["request", web[0], web[1], web[2]],
                0xa6e3_1267_2c31_1a08,
                342,
            ),
        ];
        for (name, template, names, digest, len) in cases {
            let values: Vec<(&str, String)> = names.iter().map(|n| (*n, value(n))).collect();
            let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = fill(template, &values);
            assert_eq!(
                (trajforge_hash::fnv1a64(out.as_bytes()), out.len()),
                (digest, len),
                "{name} renders differently:\n{out}"
            );
            if name == "web_rollout2" {
                assert!(out.starts_with(
                    "You are using a web browser on the page \"<start_title value with {task} and \
                     {{ and }}>\" (<start_url value with {task} and {{ and }}>)."
                ));
            }
        }
    }

    /// Run folders store these fingerprints; recorded from the release that wrote them.
    #[test]
    fn default_prompt_fingerprints_are_pinned() {
        assert_eq!(
            crate::settings::fingerprint(&Prompts::default()),
            "d729c58aca485691"
        );
        assert_eq!(
            crate::settings::fingerprint(&WebPrompts::default()),
            "b1df99f8755c08f6"
        );
    }

    #[test]
    fn defaults_have_their_placeholders() {
        let p = Prompts::default();
        for (_, field, required) in FILES {
            let mut copy = p.clone();
            let text = copy.field_mut(field).clone();
            for r in required {
                assert!(has_placeholder(&text, r), "{field} lacks {{{r}}}");
            }
        }
    }

    #[test]
    fn files_override_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("tf-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("rollout2.txt"), "Fix: {issue}").expect("write");
        let p = Prompts::load(&dir).expect("load");
        assert_eq!(p.rollout2, "Fix: {issue}");
        assert_eq!(p.rollout1, Prompts::default().rollout1);
        std::fs::write(dir.join("pr.txt"), "no placeholders").expect("write");
        let err = Prompts::load(&dir).expect_err("missing placeholder");
        assert!(err.to_string().contains("{demo}"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(matches!(
            Prompts::load(&dir),
            Err(PromptError::NoFolder { .. })
        ));
    }
}
