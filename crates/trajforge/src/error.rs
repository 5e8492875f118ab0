//! The one user-facing error type: a message, a hint of what to do, and an exit code.

use std::fmt;

/// Exit code for bad input: a wrong path, a malformed file, a bad option value.
pub const EXIT_INPUT: i32 = 2;
/// Exit code for a failure while doing the work.
pub const EXIT_FAILURE: i32 = 1;

/// An error as the user sees it.
#[derive(Debug)]
pub struct CliError {
    /// One line saying what went wrong, with the path, line or id involved.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Process exit code.
    pub code: i32,
}

impl CliError {
    /// Bad input (exit code 2).
    pub fn input(message: impl fmt::Display) -> Self {
        CliError {
            message: message.to_string(),
            hint: None,
            code: EXIT_INPUT,
        }
    }

    /// A failure while working (exit code 1).
    pub fn failure(message: impl fmt::Display) -> Self {
        CliError {
            message: message.to_string(),
            hint: None,
            code: EXIT_FAILURE,
        }
    }

    /// Attach a hint.
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.hint = Some(hint.to_string());
        self
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
        CliError::input(err).hint(hint)
    }
}

impl From<trajforge_menu::MenuError> for CliError {
    fn from(err: trajforge_menu::MenuError) -> Self {
        CliError::input(err).hint("fix the menu file (see `trajforge menu --help` for its format)")
    }
}

/// Writing to stdout failed; a closed pipe (`| head`) is not an error worth reporting.
pub fn output(err: std::io::Error) -> CliError {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        CliError {
            message: String::new(),
            hint: None,
            code: 0,
        }
    } else {
        CliError::failure(format!("cannot write output: {err}"))
    }
}
