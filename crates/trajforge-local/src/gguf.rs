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

    // The reader itself is tested in trajforge-gguf; here, that its errors become
    // LocalErrors that say how to install the default model.
    #[test]
    fn reader_errors_become_local_errors_with_the_install_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        assert!(matches!(read_gguf(&path), Err(LocalError::Missing { .. })));
        std::fs::write(&path, b"GG").unwrap();
        assert!(matches!(read_gguf(&path), Err(LocalError::NotGguf { .. })));
        std::fs::write(&path, b"PK\x03\x04 zip").unwrap();
        let err = read_gguf(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a GGUF") && err.contains("scripts/install-model.sh"),
            "{err}"
        );
        let mut truncated = b"GGUF".to_vec();
        truncated.extend_from_slice(&3u32.to_le_bytes());
        std::fs::write(&path, &truncated).unwrap();
        assert!(matches!(
            read_gguf(&path),
            Err(LocalError::Truncated { .. })
        ));
    }
}
