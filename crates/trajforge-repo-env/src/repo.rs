//! The repository environment: SWE-agent's tools over a sandboxed copy-on-write workspace.
//!
//! Every command and every file access goes through the episode's sandboxed shell
//! ([`trajforge_sandbox::Session`]); the host never touches the workspace directly.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use trajforge_agent::{BoxFuture, EnvOutcome, Environment, Observation};
use trajforge_sandbox::Session;
use trajforge_teacher::{ToolCall, ToolSpec};

use crate::editor::{self, Editor, Files};
use crate::error::RepoEnvError;

/// Longest `bash` observation shown to the model; the middle of longer output is dropped.
pub const MAX_BASH_CHARS: usize = 16_000;

/// Largest patch an episode hands in whole; a longer one keeps its head and a note, and is
/// marked as cut ([`EnvOutcome::patch_cut`]) so that nothing downstream uses it.
pub const MAX_PATCH_BYTES: usize = 1 << 20;

/// Name of the shell tool.
pub const BASH: &str = "bash";
/// Name of the editor tool.
pub const EDITOR: &str = "str_replace_editor";
/// Name of the submit tool.
pub const SUBMIT: &str = "submit";

/// A repository workspace offered to the agent through `bash`, `str_replace_editor` and `submit`.
pub struct RepoEnvironment {
    session: Arc<Mutex<Session>>,
    editor: Arc<Mutex<Editor>>,
    root: String,
    command_timeout: Option<Duration>,
    submits: usize,
    base_commit: Option<String>,
}

impl RepoEnvironment {
    /// Wrap an episode's shell; `root` is where the workspace appears inside (`/workspace`).
    pub fn new(session: Session, root: &str, command_timeout: Option<Duration>) -> Self {
        RepoEnvironment {
            session: Arc::new(Mutex::new(session)),
            editor: Arc::new(Mutex::new(Editor::new(root))),
            root: root.to_string(),
            command_timeout,
            submits: 0,
            base_commit: None,
        }
    }

    /// Checks, before the patch is taken, that the workspace still holds `commit` (the base
    /// snapshot's): a workspace whose base vanished or was replaced ends in an error instead
    /// of an empty or wrong patch.
    pub fn expecting_base(mut self, commit: &str) -> Self {
        self.base_commit = Some(commit.to_string());
        self
    }

    /// The patch against the base, after checking the base is still there.
    async fn patch(&self) -> Result<String, String> {
        let root = self.root.clone();
        let base = self.base_commit.clone();
        let result = self
            .blocking(move |s| {
                if let Some(commit) = base {
                    let check = format!(
                        "(git -C {root} cat-file -e {c}^{{commit}} && git -C {root} merge-base --is-ancestor {c} HEAD) >/dev/null 2>&1",
                        root = quote(&root),
                        c = quote(&commit),
                    );
                    let out = s.run(&check, None)?;
                    if out.exit_code != Some(0) {
                        return Ok(Err(format!(
                            "the workspace no longer holds the base commit {commit}: it was removed or replaced while the episode ran"
                        )));
                    }
                }
                s.diff().map(Ok)
            })
            .await;
        match result {
            Ok(Ok(Ok(patch))) => Ok(patch),
            Ok(Ok(Err(vanished))) => Err(vanished),
            Ok(Err(e)) => Err(format!("cannot compute the patch: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The tools' JSON Schemas.
    pub fn tool_specs() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: BASH.into(),
                description: "Run a command in a bash shell inside the repository's sandbox (no network). \
                    The shell persists between calls: `cd` and exported variables stay. Long output is clipped; \
                    prefer commands that print little (grep -n, head, sed -n)."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"command": {"type": "string", "description": "The command to run."}},
                    "required": ["command"]
                }),
            },
            ToolSpec { name: EDITOR.into(), description: editor::DESCRIPTION.into(), parameters: editor::schema() },
            ToolSpec {
                name: SUBMIT.into(),
                description: "Hand in your change. The first call shows the change and asks you to clean up; \
                    call it again to confirm."
                    .into(),
                parameters: json!({"type": "object", "properties": {}}),
            },
        ]
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Session) -> T + Send + 'static,
    ) -> Result<T, RepoEnvError> {
        let session = Arc::clone(&self.session);
        tokio::task::spawn_blocking(move || work(&mut lock(&session)))
            .await
            .map_err(|source| RepoEnvError::Worker { source })
    }

    async fn bash(&mut self, arguments: &str) -> Observation {
        let command = match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(v) => match v.get("command").and_then(|c| c.as_str()) {
                Some(c) if !c.trim().is_empty() => c.to_string(),
                _ => {
                    return Observation::error("The bash tool needs a non-empty `command` string.");
                }
            },
            Err(e) => return Observation::error(format!("Invalid arguments for bash: {e}")),
        };
        let timeout = self.command_timeout;
        let result = self.blocking(move |s| s.run(&command, timeout)).await;
        match result {
            Ok(Ok(out)) => {
                let mut text = clip_middle(&out.output, MAX_BASH_CHARS);
                if out.timed_out {
                    let secs = timeout.map_or(300, |t| t.as_secs());
                    text.push_str(&format!(
                        "\n[The command ran longer than {secs} s and was stopped. Run long jobs with a smaller input, or in the background with a time limit.]"
                    ));
                } else if let Some(code) = out.exit_code.filter(|&c| c != 0) {
                    text.push_str(&format!("\n[exit code {code}]"));
                }
                if out.shell_restarted {
                    text.push_str("\n[The shell was restarted: the working directory and variables were reset.]");
                }
                if text.trim().is_empty() {
                    text = "(no output)".to_string();
                }
                Observation {
                    text,
                    exit_code: out.exit_code,
                    error: out.timed_out,
                    done: false,
                    duration: out.duration,
                }
            }
            Ok(Err(e)) => Observation::error(format!("The sandbox could not run the command: {e}")),
            Err(e) => Observation::error(e.to_string()),
        }
    }

    async fn edit(&mut self, arguments: &str) -> Observation {
        let editor = Arc::clone(&self.editor);
        let arguments = arguments.to_string();
        let result = self
            .blocking(move |session| {
                let mut files = SessionFiles(session);
                lock(&editor).call(&mut files, &arguments)
            })
            .await;
        match result {
            Ok(r) if r.error => Observation::error(r.output),
            Ok(r) => Observation::ok(r.output),
            Err(e) => Observation::error(e.to_string()),
        }
    }

    async fn submit(&mut self) -> Observation {
        self.submits += 1;
        if self.submits >= 2 {
            let mut obs = Observation::ok("Your change has been submitted.");
            obs.done = true;
            return obs;
        }
        match self.blocking(|s| s.diff()).await {
            Ok(Ok(diff)) if diff.trim().is_empty() => Observation::ok(
                "Your workspace has no changes against the base commit. If that is intended, call submit \
                 again to confirm; otherwise make your fix first.",
            ),
            Ok(Ok(diff)) => Observation::ok(format!(
                "Before this is final, please check your change:\n\
                 1. If you edited code after running your reproduction script, run the script again and check the result.\n\
                 2. Delete the reproduction script and any other scratch files you created.\n\
                 3. If you modified test files, revert them (git checkout -- <file>).\n\
                 4. Then call submit again to confirm.\n\n\
                 Your current change:\n<diff>\n{}\n</diff>",
                clip_middle(&diff, MAX_BASH_CHARS)
            )),
            Ok(Err(e)) => Observation::error(format!("Could not compute your change: {e}")),
            Err(e) => Observation::error(e.to_string()),
        }
    }
}

impl Environment for RepoEnvironment {
    fn tools(&self) -> Vec<ToolSpec> {
        Self::tool_specs()
    }

    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let started = Instant::now();
            let mut obs = match call.name.as_str() {
                BASH => self.bash(&call.arguments).await,
                EDITOR => self.edit(&call.arguments).await,
                SUBMIT => self.submit().await,
                other => Observation::error(format!("Unknown tool {other:?}.")),
            };
            if obs.duration.is_zero() {
                obs.duration = started.elapsed();
            }
            obs
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome> {
        Box::pin(async move {
            match self.patch().await {
                Ok(patch) => {
                    let (patch, patch_cut) = limit_patch(patch, MAX_PATCH_BYTES);
                    EnvOutcome {
                        patch: Some(patch),
                        patch_cut,
                        ..EnvOutcome::default()
                    }
                }
                Err(error) => EnvOutcome {
                    error: Some(error),
                    ..EnvOutcome::default()
                },
            }
        })
    }
}

impl std::fmt::Debug for RepoEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoEnvironment")
            .field("root", &self.root)
            .field("submits", &self.submits)
            .finish()
    }
}

/// A poisoned lock only means another step panicked; the session itself is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The editor's file access, through the sandboxed shell.
struct SessionFiles<'a>(&'a mut Session);

impl SessionFiles<'_> {
    fn test(&mut self, flag: &str, path: &str) -> Result<bool, RepoEnvError> {
        let out = self.0.run(&format!("test {flag} {}", quote(path)), None)?;
        Ok(out.exit_code == Some(0))
    }
}

impl Files for SessionFiles<'_> {
    type Error = RepoEnvError;

    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, RepoEnvError> {
        if !self.test("-f", path)? {
            return Ok(None);
        }
        Ok(Some(self.0.read_file(path)?))
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), RepoEnvError> {
        if let Some((dir, _)) = path.rsplit_once('/')
            && !dir.is_empty()
        {
            let out = self.0.run(&format!("mkdir -p -- {}", quote(dir)), None)?;
            if out.exit_code != Some(0) {
                return Err(RepoEnvError::MakeDir {
                    dir: dir.to_string(),
                    output: out.output,
                });
            }
        }
        Ok(self.0.write_file(path, bytes)?)
    }

    fn is_dir(&mut self, path: &str) -> Result<bool, RepoEnvError> {
        self.test("-d", path)
    }

    fn list(&mut self, path: &str, depth: usize) -> Result<Vec<String>, RepoEnvError> {
        let cmd = format!(
            "find {} -mindepth 1 -maxdepth {depth} -not -path '*/.*' -printf '%P\\t%y\\n' | LC_ALL=C sort",
            quote(path)
        );
        let out = self.0.run(&cmd, None)?;
        Ok(out
            .output
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(p, kind)| {
                if kind == "d" {
                    format!("{p}/")
                } else {
                    p.to_string()
                }
            })
            .collect())
    }
}

/// Quote a string for bash with single quotes.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A patch over `max` bytes cut to its head (at a line end) with a note saying so, and its
/// whole size; a patch within the limit as it is.
pub fn limit_patch(mut patch: String, max: usize) -> (String, Option<u64>) {
    if patch.len() <= max {
        return (patch, None);
    }
    let size = patch.len() as u64;
    let mut end = max;
    while !patch.is_char_boundary(end) {
        end -= 1;
    }
    end = patch[..end].rfind('\n').map_or(0, |i| i + 1);
    patch.truncate(end);
    patch.shrink_to_fit();
    patch.push_str(&format!(
        "[trajforge: patch cut here: {size} bytes, over the limit of {max} bytes]\n"
    ));
    (patch, Some(size))
}

/// Keep the head and tail of long output, with a note saying how much was dropped.
pub fn clip_middle(text: &str, max_chars: usize) -> String {
    trajforge_agent::agent::clip_middle_with(text, max_chars, |omitted| {
        format!(
            "<response clipped: {omitted} characters omitted. Print less, e.g. with grep -n, head or sed -n.>"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_middle_keeps_both_ends() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let clipped = clip_middle(&text, 200);
        assert!(clipped.starts_with("line 0\n"));
        assert!(clipped.ends_with("line 999\n"));
        assert!(clipped.contains("characters omitted"));
        assert_eq!(clip_middle("short", 200), "short");
    }

    #[test]
    fn a_patch_over_the_limit_keeps_its_head_and_says_where_it_was_cut() {
        let patch = "+line\n".repeat(100);
        assert_eq!(limit_patch(patch.clone(), 600), (patch.clone(), None));
        let (cut, size) = limit_patch(patch, 100);
        assert_eq!(size, Some(600));
        assert!(cut.starts_with(&"+line\n".repeat(16)), "{cut}");
        assert!(
            cut.ends_with("[trajforge: patch cut here: 600 bytes, over the limit of 100 bytes]\n")
        );
        assert!(cut.len() < 200);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
