//! The GGUF header reader (crate `trajforge-gguf`), with its errors turned into
//! [`LocalError`]s that say how to install the default model.

use std::path::Path;

use trajforge_gguf::GgufError;
pub use trajforge_gguf::GgufInfo;

use crate::error::LocalError;

/// Read and check the header of the GGUF file at `path`.
pub fn read_gguf(path: &Path) -> Result<GgufInfo, LocalError> {
    trajforge_gguf::read_gguf(path).map_err(local_error)
}

fn local_error(err: GgufError) -> LocalError {
    match err {
        GgufError::Missing { path } => LocalError::Missing { path },
        GgufError::Unreadable { path, message } => LocalError::Unreadable { path, message },
        GgufError::NotGguf { path, found } => LocalError::NotGguf { path, found },
        GgufError::Truncated { path, detail } => LocalError::Truncated { path, detail },
        GgufError::Corrupt { path, detail } => LocalError::Corrupt { path, detail },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A GGUF v3 file with the given string metadata and no tensors.
    fn tiny(meta: &[(&str, &str)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        for (k, v) in meta {
            put_str(&mut out, k);
            out.extend_from_slice(&8u32.to_le_bytes());
            put_str(&mut out, v);
        }
        out
    }

    #[test]
    fn reads_string_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(
            &path,
            tiny(&[
                ("general.name", "x"),
                ("tokenizer.chat_template", "{{ 1 }}"),
            ]),
        )
        .unwrap();
        let info = read_gguf(&path).unwrap();
        assert_eq!(info.name.as_deref(), Some("x"));
        assert_eq!(info.chat_template.as_deref(), Some("{{ 1 }}"));
    }

    #[test]
    fn header_cut_short_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let bytes = tiny(&[("general.name", "a long enough name")]);
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert!(matches!(
            read_gguf(&path),
            Err(LocalError::Truncated { .. })
        ));
    }

    #[test]
    fn short_and_foreign_files_are_not_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GG").unwrap();
        assert!(matches!(read_gguf(&path), Err(LocalError::NotGguf { .. })));
        std::fs::write(&path, b"PK\x03\x04 zip").unwrap();
        let err = read_gguf(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a GGUF") && err.contains("scripts/install-model.sh"),
            "{err}"
        );
    }
}
