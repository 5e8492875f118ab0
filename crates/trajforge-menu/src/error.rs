//! Errors raised while reading a menu file, each pointing at a line.

use std::path::PathBuf;

/// Why a menu file could not be used.
///
/// Every variant except [`MenuError::Read`] names the origin (usually the file
/// path) and a 1-based line, so the CLI can print `file:line: message` and the
/// user can jump straight to the mistake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MenuError {
    /// The file could not be read at all.
    #[error("cannot read menu file {}: {source}", path.display())]
    Read {
        /// The path that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// The TOML parser's description.
        message: String,
    },
    /// The TOML is well formed but does not describe a valid menu.
    #[error("{origin}:{line}: {problem}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// 1-based line the problem is reported at.
        line: usize,
        /// What is wrong.
        problem: MenuProblem,
    },
}

impl MenuError {
    /// The 1-based line of the problem, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            MenuError::Read { .. } => None,
            MenuError::Syntax { line, .. } | MenuError::Invalid { line, .. } => Some(*line),
        }
    }
}

/// A semantic mistake in a menu file (the TOML itself parsed fine).
///
/// `entry` fields hold a label such as `bug entry "orm-query"` or, when the
/// entry has no usable id yet, `task entry #3` (1-based position in the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MenuProblem {
    /// A top-level key other than `mode`, `bug` or `task`.
    #[error("unknown top-level key `{key}`; allowed: mode, bug, task")]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A field an entry of this kind does not have.
    #[error("{entry}: unknown field `{field}`; allowed: {allowed}")]
    UnknownField {
        /// Which entry.
        entry: String,
        /// The field as written.
        field: String,
        /// The fields this kind of entry accepts.
        allowed: &'static str,
    },
    /// A value of the wrong TOML type.
    #[error("{what} must be {expected}, found {found}")]
    WrongType {
        /// What was being read, e.g. ``bug entry "x": field `prompt` ``.
        what: String,
        /// The expected type, e.g. `a string`.
        expected: &'static str,
        /// The TOML type that was found.
        found: &'static str,
    },
    /// A required field is absent (reported at the entry's header line).
    #[error("{entry}: missing required field `{field}`")]
    MissingField {
        /// Which entry.
        entry: String,
        /// The missing field.
        field: &'static str,
    },
    /// `mode` is neither `extend` nor `replace`.
    #[error("unknown mode \"{mode}\"; expected \"extend\" or \"replace\"")]
    UnknownMode {
        /// The mode as written.
        mode: String,
    },
    /// Two entries of the same kind in one file share an id.
    #[error("{entry}: duplicate id, already used on line {first_line}")]
    DuplicateId {
        /// Which entry (the later one).
        entry: String,
        /// Line of the earlier entry's id.
        first_line: usize,
    },
    /// An id that is not a slug.
    #[error(
        "{entry}: id \"{id}\" is not a slug; use lowercase ASCII letters, digits, '-' and '_', starting with a letter or digit"
    )]
    InvalidId {
        /// Which entry.
        entry: String,
        /// The id as written.
        id: String,
    },
    /// A text field that is empty or only whitespace.
    #[error("{entry}: {field} is empty")]
    EmptyField {
        /// Which entry.
        entry: String,
        /// The empty field.
        field: &'static str,
    },
    /// A prompt lacks a placeholder it must contain.
    #[error("{entry}: prompt must contain {required}")]
    MissingPlaceholder {
        /// Which entry.
        entry: String,
        /// The required placeholder(s), e.g. `{function}`.
        required: String,
    },
    /// A prompt uses a placeholder this kind of entry does not offer.
    #[error("{entry}: prompt uses unknown placeholder {{{name}}}; allowed: {allowed}")]
    UnknownPlaceholder {
        /// Which entry.
        entry: String,
        /// The placeholder name, without braces.
        name: String,
        /// The placeholders this kind of entry offers.
        allowed: &'static str,
    },
    /// A `{` or `}` that is neither an escape nor part of a placeholder.
    #[error("{entry}: prompt has an unmatched '{brace}'; write {{{{ or }}}} for a literal brace")]
    StrayBrace {
        /// Which entry.
        entry: String,
        /// The brace character.
        brace: char,
    },
    /// `mode = "replace"` with an empty list would leave a kind with no entries.
    #[error("mode = \"replace\" with an empty `{kind}` list would leave no {kind} entries")]
    EmptyReplacement {
        /// `bug` or `task`.
        kind: &'static str,
    },
}
