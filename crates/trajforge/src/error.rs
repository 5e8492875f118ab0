//! The one user-facing error type: what went wrong, why (the source chain), what to do about
//! it (hints), and its kind, which decides the exit code. Every library error has one `From`
//! here, so commands use `?` and the wording of hints lives in one place.
//!
//! Exit codes: 0 success, 1 failure while working, 2 bad input, 3 `run` ended without a submit,
//! 130 a second Ctrl-C, 141 stdout closed by its reader (`| head`): the command stops quietly,
//! as a Unix tool killed by SIGPIPE does (128 + 13).

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;

use trajforge_pipeline::RunError;
use trajforge_pipeline::envs::RepoError;
use trajforge_pipeline::tasks::MineError;
use trajforge_pipeline::teacher::TeacherSetupError;
use trajforge_sandbox::SandboxError;
use trajforge_teacher::TeacherError;

/// Exit code for bad input: a wrong path, a malformed file, a bad option value.
pub const EXIT_INPUT: i32 = 2;
/// Exit code for a failure while doing the work.
pub const EXIT_FAILURE: i32 = 1;

/// What kind of error, and so the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input (exit code 2).
    Input,
    /// A failure while working (exit code 1).
    Failure,
    /// Nothing to print: the command already said what happened; exit with this code.
    Silent(i32),
}

/// An error as the user sees it.
#[derive(Debug)]
pub struct CliError {
    /// What kind of error it is.
    pub kind: Kind,
    /// One line saying what went wrong, with the path, line or id involved.
    pub message: String,
    /// The causes that the message does not already say, outermost first.
    pub causes: Vec<String>,
    /// What to do about it.
    pub hints: Vec<String>,
}

impl CliError {
    fn new(kind: Kind, message: impl fmt::Display) -> Self {
        CliError {
            kind,
            message: message.to_string(),
            causes: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// Bad input (exit code 2).
    pub fn input(message: impl fmt::Display) -> Self {
        Self::new(Kind::Input, message)
    }

    /// A failure while working (exit code 1).
    pub fn failure(message: impl fmt::Display) -> Self {
        Self::new(Kind::Failure, message)
    }

    /// Exit with `code` without a message (the command has reported the outcome itself).
    pub fn silent(code: i32) -> Self {
        Self::new(Kind::Silent(code), "")
    }

    /// A library error of `kind`, with its source chain.
    pub fn from_error(kind: Kind, err: &(dyn StdError + 'static)) -> Self {
        let mut e = Self::new(kind, err);
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            // Most messages already quote their source; only what they leave out is added.
            if !e.message.contains(&text) && !e.causes.iter().any(|c| c.contains(&text)) {
                e.causes.push(text);
            }
            source = s.source();
        }
        e
    }

    /// Attach a hint.
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.hints.push(hint.to_string());
        self
    }

    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self.kind {
            Kind::Input => EXIT_INPUT,
            Kind::Failure => EXIT_FAILURE,
            Kind::Silent(code) => code,
        }
    }

    /// What goes to stderr: `error: ...`, `caused by: ...` lines, `hint: ...` lines.
    pub fn render(&self) -> String {
        if self.message.is_empty() && matches!(self.kind, Kind::Silent(_)) {
            return String::new();
        }
        let mut out = format!("error: {}\n", self.message);
        for cause in &self.causes {
            out.push_str(&format!("caused by: {cause}\n"));
        }
        for hint in &self.hints {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

impl From<trajforge_ingest::IngestError> for CliError {
    fn from(err: trajforge_ingest::IngestError) -> Self {
        use trajforge_ingest::IngestError as E;
        let hint = match &err {
            E::NotFound { .. } => {
                "pass the path of a repository folder, e.g. `trajforge functions .`"
            }
            E::NotADirectory { .. } => {
                "pass the folder that holds the repository, not a file in it"
            }
            E::Unreadable { .. } => "check the folder's permissions",
        };
        CliError::from_error(Kind::Input, &err).hint(hint)
    }
}

impl From<trajforge_menu::MenuError> for CliError {
    fn from(err: trajforge_menu::MenuError) -> Self {
        CliError::from_error(Kind::Input, &err)
            .hint("fix the menu file (see `trajforge menu --help` for its format)")
    }
}

impl From<RepoError> for CliError {
    fn from(err: RepoError) -> Self {
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            RepoError::Missing { .. } => {
                e(Kind::Input).hint("pass the folder of a git repository with --repo")
            }
            RepoError::NotADirectory { .. } => e(Kind::Input),
            RepoError::Git(_) => e(Kind::Failure).hint("install git (scripts/setup.sh does)"),
            RepoError::NotARepository { .. } => e(Kind::Input).hint(
                "episodes start from a commit; make one with: git init && git add -A && git commit -m base",
            ),
            RepoError::NotTopLevel { .. } => e(Kind::Input).hint(
                "pass the repository's top level, or make the folder a repository of its own (git init)",
            ),
        }
    }
}

impl From<TeacherSetupError> for CliError {
    fn from(err: TeacherSetupError) -> Self {
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            TeacherSetupError::Option(_) => e(Kind::Input),
            TeacherSetupError::ModelRequired => e(Kind::Input).hint(
                "pass the name the server serves (curl URL/models lists them), or use --teacher local",
            ),
            TeacherSetupError::Client(_) => e(Kind::Input).hint(
                "pass the server's base URL including the API version, e.g. http://127.0.0.1:8000/v1",
            ),
            TeacherSetupError::Unreachable { url, source } => {
                e(Kind::Failure).hint(unreachable_hint(url, source))
            }
            #[cfg(feature = "local")]
            TeacherSetupError::Local(_) => e(Kind::Input).hint(
                "scripts/install-model.sh installs the default model; or pass --teacher local:PATH.gguf",
            ),
            TeacherSetupError::LocalNotBuilt(_) => e(Kind::Input).hint(
                "build trajforge with its default features (needs cmake and clang: scripts/setup.sh installs them): \
                 cargo build --release -p trajforge; or serve a model and pass --teacher http://HOST:PORT/v1",
            ),
        }
    }
}

#[cfg(feature = "local")]
impl From<trajforge_pipeline::serve::ServeSetupError> for CliError {
    fn from(err: trajforge_pipeline::serve::ServeSetupError) -> Self {
        use trajforge_local::LocalError;
        use trajforge_pipeline::serve::ServeSetupError as E;
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            E::TrainedOnNeedsTrained | E::Client(_) => e(Kind::Input),
            E::TrainedOn(_) => e(Kind::Input)
                .hint("point --trained-on at the folder `trajforge export --format openai` wrote"),
            E::Models { .. } => {
                e(Kind::Input).hint("check --upstream, or name the model with --model NAME")
            }
            E::NoModel { .. } => e(Kind::Input).hint("name it with --model NAME"),
            E::Tokenizer(_) => e(Kind::Input)
                .hint("pass the upstream model's tokenizer.json, its folder or a GGUF file"),
            E::Load(
                LocalError::Missing { .. }
                | LocalError::NotGguf { .. }
                | LocalError::Truncated { .. }
                | LocalError::Corrupt { .. }
                | LocalError::NoChatTemplate { .. }
                | LocalError::Unreadable { .. },
            ) => e(Kind::Input).hint(
                "run scripts/install-model.sh for the default model, or pass --model PATH.gguf",
            ),
            E::Load(_) => e(Kind::Failure),
        }
    }
}

fn unreachable_hint(url: &str, err: &TeacherError) -> String {
    match err {
        TeacherError::Status {
            status: 401 | 403, ..
        } => "the server refused the credentials: set TRAJFORGE_API_KEY (or OPENAI_API_KEY)"
            .to_string(),
        TeacherError::Status { status: 404, .. } => {
            format!("no /models under {url}: the base URL usually ends in /v1")
        }
        _ => {
            format!("is the server running and listening at {url}? (check with: curl {url}/models)")
        }
    }
}

/// The hint for a sandbox failure; `work_dir` is where snapshots and workspaces live.
pub fn sandbox_hint(err: &SandboxError, work_dir: &Path) -> String {
    match err {
        SandboxError::BwrapMissing { .. } => "install bubblewrap: scripts/setup.sh does it".into(),
        SandboxError::NotAccessible { .. } => format!(
            "the sandbox runs as an unprivileged user that must reach {}; choose another --work-dir (e.g. under /var/tmp)",
            work_dir.display()
        ),
        SandboxError::Git { .. } => "check that --commit names a commit of the repository".into(),
        _ => "see the message above; `scripts/test.sh` runs the sandbox's own checks".into(),
    }
}

impl From<RunError> for CliError {
    fn from(err: RunError) -> Self {
        use Kind::{Failure, Input};
        const CRAWL_FIRST: &str = "crawl the site first: trajforge site crawl URL --out SITE_DIR";
        use trajforge_store::StoreError as S;
        let err = match err {
            // What the store says about a database or its schema needs no folder advice.
            RunError::RunFolder(
                inner @ (S::Postgres { .. } | S::Version { .. } | S::RunName(_) | S::NoRunName(_)),
            )
            | RunError::OpenRun(inner @ (S::Postgres { .. } | S::Version { .. })) => {
                return inner.into();
            }
            RunError::Menu(inner) => return inner.into(),
            RunError::Repository(inner) => return inner.into(),
            RunError::Ingest(inner) => return inner.into(),
            RunError::Teacher(inner) => return inner.into(),
            other => other,
        };
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            RunError::Menu(_)
            | RunError::Repository(_)
            | RunError::Ingest(_)
            | RunError::Teacher(_) => e(Failure),
            RunError::Option(_) | RunError::Prompts(_) => e(Input),
            RunError::Demos(_) => e(Input).hint("one JSON object per line with a \"text\" field"),
            RunError::Environment(_) => e(Failure)
                .hint("see the message above; `scripts/test.sh` runs the sandbox's own checks"),
            RunError::Sandbox { source, work_dir } => e(Failure).hint(sandbox_hint(source, work_dir)),
            RunError::WorkFolder { source, work_dir } => {
                use trajforge_repo_env::workdir::WorkDirError as W;
                match source.as_ref() {
                    W::UnknownCommit { .. } => {
                        e(Input).hint("check that --commit names a commit of the repository")
                    }
                    W::NoCommits { .. } => e(Input).hint(
                        "episodes start from a commit: commit the files first (git add -A && git commit -m initial)",
                    ),
                    W::Git(_) => e(Failure).hint("install git (scripts/setup.sh does)"),
                    W::Io { .. } | W::Sandbox(_) => e(Failure).hint(format!(
                        "snapshots and workspaces live in {}: check it is writable, or choose another --work-dir",
                        work_dir.display()
                    )),
                }
            }
            RunError::SetupFailed { .. } => {
                e(Failure).hint("fix --setup; it runs once in the base snapshot with network access")
            }
            RunError::RunFolder(_) => e(Failure).hint("choose another --out folder"),
            RunError::NoSuchRun(_) => e(Input).hint("check --run; `generate`, `eval` and `tasks mine` create a run with --store URL --run NAME (`generate --no-work` only enqueues)"),
            RunError::OtherKind { .. } => e(Input).hint(
                "give this command a run of its own: another --run NAME in the database, or another folder",
            ),
            RunError::WorkerRefused(_) => e(Input),
            RunError::NotARunFolder(_) => {
                e(Input).hint("pass the folder given to `trajforge generate --out`")
            }
            RunError::OpenRun(trajforge_store::StoreError::Empty { .. }) => e(Input).hint(
                "a run that never started leaves no data: pass the folder of a run, or remove this one",
            ),
            RunError::UnreadableSettings { .. } | RunError::Runtime(_) | RunError::OpenRun(_) => {
                e(Failure)
            }
            RunError::SettingsConflict { .. } => e(Input).hint(
                "use the run's original settings to resume it, or a new --out folder (or --run NAME) for a new run",
            ),
            RunError::NoFunctions { .. } => e(Input).hint(
                "trajforge reads Python, Rust, JavaScript, TypeScript, Go, Java, C and C++; check `trajforge functions`",
            ),
            RunError::ExcludeTasks(inner) => {
                use trajforge_pipeline::decontaminate::ExcludeError as X;
                match inner {
                    X::Read(_) | X::Patch { .. } => e(Input).hint(
                        "--exclude-tasks takes a task file written by `trajforge tasks mine` (or SWE-bench instances), one JSON object per line",
                    ),
                    X::UnknownCommit { .. } | X::MissingFile { .. } => e(Input).hint(
                        "the tasks must come from this repository's history; fetch the commits they name, or pass the right --repo",
                    ),
                    X::Git(_) => e(Failure).hint("install git (scripts/setup.sh does)"),
                    X::NotWebTask { .. } => e(Input).hint(
                        "web generate --exclude-tasks takes a task file written by `trajforge web tasks`",
                    ),
                }
            }
            RunError::NoTasks => {
                e(Input).hint("add [[task]] entries, or drop --menu to use the built-in ones")
            }
            RunError::BudgetSpent(_) => {
                e(Input).hint("raise --max-tokens or --max-cost to continue this run")
            }
            RunError::NotASiteFolder(_) => e(Input).hint(
                "crawl the site first: trajforge site crawl URL --out SITE_DIR (or --dir FOLDER for local HTML)",
            ),
            RunError::NotASite(_) => {
                e(Input).hint("pass a folder written by `trajforge site crawl`, or the site's URL")
            }
            RunError::Site(_) => e(Input).hint(CRAWL_FIRST),
            RunError::NoPages(_) => {
                e(Input).hint("crawl it again: trajforge site crawl URL --out SITE_DIR")
            }
            RunError::Crawl(_) => e(Failure)
                .hint("check that the site answers, then run the same command again"),
            RunError::Store(_) | RunError::WorkerPanicked { .. } => {
                e(Failure).hint("the run is resumable: run the same command again")
            }
        }
    }
}

impl From<MineError> for CliError {
    fn from(err: MineError) -> Self {
        match err {
            MineError::Run(e) => e.into(),
            MineError::Store(e) => e.into(),
            MineError::OutputExists(ref path) => CliError::from_error(Kind::Input, &err).hint(format!(
                "trajforge never replaces a file it did not write: remove {} or choose another --out",
                path.display()
            )),
            MineError::UnknownRevision(_) | MineError::NoTeacher => {
                CliError::from_error(Kind::Input, &err)
            }
            other => CliError::from_error(Kind::Failure, &other),
        }
    }
}

impl From<trajforge_store::StoreError> for CliError {
    fn from(err: trajforge_store::StoreError) -> Self {
        use trajforge_store::StoreError as S;
        match &err {
            S::RunName(_) | S::NoRunName(_) | S::NotEmpty(_) => {
                CliError::from_error(Kind::Input, &err)
            }
            S::Version { .. } => CliError::from_error(Kind::Input, &err)
                .hint("a newer trajforge wrote this store: use that version (or newer) here"),
            S::Postgres { .. } => CliError::from_error(Kind::Failure, &err).hint(
                "check --store (postgres://USER@HOST[:PORT]/DB, or $TRAJFORGE_STORE): the server must run, be reachable from here and accept the user, and the database must exist (createdb DB)",
            ),
            _ => CliError::from_error(Kind::Failure, &err),
        }
    }
}

impl From<trajforge_view::ViewError> for CliError {
    fn from(err: trajforge_view::ViewError) -> Self {
        use trajforge_view::ViewError as V;
        let err = match err {
            V::Store(inner) => return inner.into(),
            other => other,
        };
        match &err {
            V::NotARun(_) => CliError::from_error(Kind::Input, &err)
                .hint("give the folder passed to `generate --out` or `web generate --out`"),
            V::NoSuchRun { runs, .. } if runs.is_empty() => CliError::from_error(Kind::Input, &err)
                .hint("this database holds no run yet: check --store, or create one with `generate --store URL --run NAME`"),
            V::NoSuchRun { runs, .. } => CliError::from_error(Kind::Input, &err)
                .hint(format!("check --run; this database holds: {}", runs.join(", "))),
            V::Listen { .. } => CliError::from_error(Kind::Input, &err)
                .hint("pick another --port, or leave it out for any free port"),
            _ => CliError::from_error(Kind::Failure, &err),
        }
    }
}

impl From<trajforge_browser::BrowserError> for CliError {
    fn from(err: trajforge_browser::BrowserError) -> Self {
        use trajforge_browser::BrowserError as B;
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            B::Launch { .. } => e(Kind::Failure).hint(
                "install Chromium (scripts/setup.sh installs Debian's chromium) or pass --browser / set TRAJFORGE_CHROMIUM",
            ),
            B::Url { .. } => e(Kind::Input)
                .hint("pass an absolute http(s) URL, e.g. http://127.0.0.1:8000/"),
            B::Store { .. } => e(Kind::Input),
            _ => e(Kind::Failure),
        }
    }
}

impl From<trajforge_export::SpecError> for CliError {
    fn from(err: trajforge_export::SpecError) -> Self {
        use trajforge_export::{ExportError, SpecError as S};
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            S::Out(_) | S::Rollouts(_) | S::Range { .. } | S::ExcludeFile { .. } => e(Kind::Input),
            S::Mix(_) => e(Kind::Input).hint("write e.g. --mix t2=3000,t1=5000"),
            S::NoTokenizer(_) => e(Kind::Input).hint(
                "pass --tokenizer (tokenizer.json or a GGUF file), install the default model with \
                 scripts/install-model.sh, or turn the limits off with --max-tokens 0 --max-tool-tokens 0",
            ),
            S::Tokenizer(_) => e(Kind::Input).hint(
                "pass a Hugging Face tokenizer.json with its tokenizer_config.json, or a GGUF file",
            ),
            S::Export(ExportError::WouldOverwrite { .. }) => e(Kind::Input).hint(
                "nothing was written; export into a folder of its own (e.g. --out my-dataset/data.jsonl), \
                 or move that file away",
            ),
            S::Export(ExportError::DataExists { .. }) => e(Kind::Input).hint(
                "nothing was written; choose another --out, or pass --force to replace the data file",
            ),
            S::Export(inner) => e(Kind::Failure).hint(match inner {
                ExportError::Io { .. } => "check that the output folder is writable",
                ExportError::Template(_) => "the tokenizer's chat template cannot render these conversations; try another --tokenizer",
                _ => "nothing was written; fix the cause and run the export again",
            }),
        }
    }
}

impl From<trajforge_import::ImportRunError> for CliError {
    fn from(err: trajforge_import::ImportRunError) -> Self {
        use trajforge_import::ImportRunError as I;
        const INTO: &str =
            "--into takes a run folder (new or made by `trajforge generate` or `trajforge import`)";
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            I::Threshold(_) => e(Kind::Input),
            I::Read(trajforge_import::ImportError::Read { .. }) => {
                e(Kind::Input).hint("check the path; nothing was imported")
            }
            I::Read(_) => e(Kind::Failure),
            I::NotAFolder(_) => e(Kind::Input).hint(INTO),
            I::Store(_) => e(Kind::Failure).hint(INTO),
            I::NothingToImport {
                looks_like: Some(f),
                ..
            } => e(Kind::Failure).hint(format!(
                "the records look like {}: import them with --from {}",
                f.what(),
                f.name()
            )),
            I::NothingToImport { .. } => e(Kind::Failure).hint(
                "check that --from names the files' format (sera, swe-agent or mini-swe-agent)",
            ),
        }
    }
}

impl From<trajforge_eval::CompareError> for CliError {
    fn from(err: trajforge_eval::CompareError) -> Self {
        use trajforge_eval::CompareError as C;
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            C::MissingDir { .. } => {
                e(Kind::Input).hint("pass two folders written by `trajforge eval --out`")
            }
            C::NoResults { .. } => e(Kind::Input).hint(
                "pass the folder given to `trajforge eval --out`; it writes results.jsonl as tasks finish",
            ),
            C::Read(trajforge_eval::JsonlError::Io { .. }) => {
                e(Kind::Input).hint("check the file's permissions")
            }
            C::Read(trajforge_eval::JsonlError::Record { .. }) => e(Kind::Input)
                .hint("each line of results.jsonl must be a result row as `trajforge eval` writes it"),
            C::Duplicate { .. } => e(Kind::Input).hint(
                "a results file holds one row per task and seed; was it edited or concatenated by hand?",
            ),
            C::NothingShared { .. } => e(Kind::Input).hint(
                "compare two evaluations of the same task file and seeds (trajforge eval --tasks ... --seeds N)",
            ),
        }
    }
}

/// Write to stderr (messages, warnings, progress). A closed or broken stderr (`2>&-`, a
/// reader that went away) drops the text and the command carries on to its own exit code;
/// `eprint!` would panic instead. Every write to stderr goes through here, by [`stderr_line!`]
/// and [`stderr_text!`].
pub fn to_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.flush();
}

/// `eprintln!` that never panics: see [`to_stderr`].
macro_rules! stderr_line {
    () => {
        $crate::error::to_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::error::to_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics: see [`to_stderr`].
macro_rules! stderr_text {
    ($($arg:tt)*) => {
        $crate::error::to_stderr(format_args!($($arg)*))
    };
}

/// Exit code when stdout was closed by its reader: 128 + SIGPIPE, what a shell reports for
/// a Unix tool killed by the signal.
pub const EXIT_CLOSED_STDOUT: i32 = 141;

/// Writing to stdout failed; a closed pipe (`| head`) is not an error worth reporting, the
/// command ends quietly with [`EXIT_CLOSED_STDOUT`]. Every write to stdout maps its error here.
pub fn output(err: std::io::Error) -> CliError {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::silent(EXIT_CLOSED_STDOUT)
    } else {
        CliError::failure(format!("cannot write output: {err}"))
    }
}

/// Print `value` to stdout as pretty JSON and a newline (see [`print`]).
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    print(&format!("{text}\n"))
}

/// Print `text` to stdout and flush it; a closed stdout is [`output`]'s quiet exit, never a
/// panic (as `print!` would).
pub fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(output)?;
    out.flush().map_err(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn causes_the_message_leaves_out_are_shown_once() {
        let e = CliError::from_error(Kind::Failure, &Outer(Inner)).hint("do this");
        assert_eq!(e.code(), 1);
        assert_eq!(
            e.render(),
            "error: outer\ncaused by: inner detail\nhint: do this\n"
        );
    }

    #[test]
    fn silent_errors_print_nothing_and_keep_their_code() {
        let e = CliError::silent(3);
        assert_eq!((e.render(), e.code()), (String::new(), 3));
        assert_eq!(CliError::input("x").code(), 2);
    }

    #[test]
    fn run_errors_keep_their_exit_codes_and_hints() {
        let e: CliError = RunError::BudgetSpent("token budget reached (5 tokens)".into()).into();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.render(),
            "error: the budget is already spent: token budget reached (5 tokens)\n\
             hint: raise --max-tokens or --max-cost to continue this run\n"
        );
        let e: CliError = RunError::WorkerPanicked {
            message: "boom".into(),
        }
        .into();
        assert_eq!(e.code(), 1);
        assert!(e.render().starts_with("error: a worker panicked: boom\n"));
    }

    /// What a build without the `local` feature prints for `--teacher local` (the error is
    /// built here directly: in this, the default build, the teacher never returns it).
    #[test]
    fn a_build_without_the_embedded_model_says_how_to_get_one() {
        let e: CliError = TeacherSetupError::local_not_built("local").into();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.render(),
            "error: this trajforge was built without the embedded model (cargo feature `local`), so \
             `--teacher local` is not available\n\
             hint: build trajforge with its default features (needs cmake and clang: scripts/setup.sh \
             installs them): cargo build --release -p trajforge; or serve a model and pass --teacher \
             http://HOST:PORT/v1\n"
        );
    }
}
