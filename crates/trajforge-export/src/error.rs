//! Errors of an export, each naming the file, record or option involved.

use std::path::PathBuf;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] trajforge_store::StoreError),
    /// A stored record cannot be read.
    #[error("trajectory {id}: {message}")]
    Record {
        /// Trajectory row id.
        id: i64,
        /// What was wrong.
        message: String,
    },
    /// The tokenizer or its chat template cannot be loaded.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The chat template failed to render a conversation.
    #[error("chat template: {0}")]
    Template(#[source] trajforge_chat::TemplateError),
    /// Tokenizing failed.
    #[error("tokenizer: {0}")]
    Encode(String),
    /// Writing an output file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O or encoding error.
        message: String,
    },
    /// A companion file (dataset card, trainer config, dataset_info.json) would replace a file
    /// that trajforge did not write; nothing was written.
    #[error("{}: exists and was not written by trajforge; the export would replace it", path.display())]
    WouldOverwrite {
        /// The file in the way.
        path: PathBuf,
    },
    /// The data file exists and replacing it was not asked for; nothing was written.
    #[error("{}: exists; the export would replace it", path.display())]
    DataExists {
        /// The file.
        path: PathBuf,
    },
    /// The options contradict each other or a value is malformed.
    #[error("{0}")]
    Options(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ExportError>;
