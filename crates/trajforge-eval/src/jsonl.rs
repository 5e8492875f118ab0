//! JSON Lines files of tasks, results and predictions: read with the line of every bad
//! record, written whole or not at all.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reading or writing a JSON Lines file failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line is not a record of the expected shape.
    #[error("{path}:{line}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What did not fit.
        source: serde_json::Error,
    },
}

/// Reads every non-blank line of `path` as one `T`.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JsonlError> {
    let text = fs::read_to_string(path).map_err(|source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| JsonlError::Record {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Writes `items` one per line through a temporary file renamed into place, so a crash
/// leaves either the old file or the new one, never half of it.
pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> Result<(), JsonlError> {
    let io_err = |source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut out = io::BufWriter::new(fs::File::create(&tmp).map_err(io_err)?);
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(|e| io_err(e.into()))?;
        out.write_all(b"\n").map_err(io_err)?;
    }
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Prediction;

    #[test]
    fn writes_then_reads_back_and_names_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("trajforge-eval-jsonl-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("preds.jsonl");
        let preds = vec![
            Prediction {
                instance_id: "a".into(),
                model_name_or_path: "m".into(),
                model_patch: String::new(),
            },
            Prediction {
                instance_id: "b".into(),
                model_name_or_path: "m".into(),
                model_patch: "diff\n".into(),
            },
        ];
        write_jsonl(&path, &preds).expect("write");
        assert_eq!(read_jsonl::<Prediction>(&path).expect("read"), preds);
        fs::write(&path, "{\"instance_id\":\"a\",\"model_name_or_path\":\"m\",\"model_patch\":\"\"}\n\n{\"x\":1}\n")
            .expect("write bad");
        match read_jsonl::<Prediction>(&path) {
            Err(JsonlError::Record { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a record error on line 3, got {other:?}"),
        }
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
