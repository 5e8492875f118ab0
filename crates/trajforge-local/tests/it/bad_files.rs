//! Bad model files give precise errors that name the install command.

use std::io::{Read, Write};

use trajforge_local::{INSTALL_HINT, LocalError, LocalOptions, LocalTeacher};

use crate::model_path;

fn load(path: &std::path::Path) -> LocalError {
    LocalTeacher::load(path, LocalOptions::default()).expect_err("must not load")
}

fn assert_hint(err: &LocalError) {
    assert!(err.to_string().contains(INSTALL_HINT), "{err}");
}

#[test]
fn missing_file() {
    let err = load(std::path::Path::new("/nonexistent/model.gguf"));
    assert!(matches!(err, LocalError::Missing { .. }), "{err}");
    assert_hint(&err);
}

#[test]
fn not_a_gguf_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.gguf");
    std::fs::write(&path, "<html>404 not found</html>").unwrap();
    let err = load(&path);
    assert!(matches!(err, LocalError::NotGguf { .. }), "{err}");
    assert_hint(&err);
    let err = load(dir.path());
    assert!(matches!(err, LocalError::Unreadable { .. }), "{err}");
}

fn truncated_copy(len: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    let mut src = std::fs::File::open(model_path()).unwrap().take(len);
    let mut buf = Vec::new();
    src.read_to_end(&mut buf).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&buf)
        .unwrap();
    (dir, path)
}

#[test]
fn truncated_in_the_tensor_data() {
    let (_dir, path) = truncated_copy(20 << 20);
    let err = load(&path);
    assert!(matches!(err, LocalError::Truncated { .. }), "{err}");
    assert!(
        err.to_string().contains("98362432") || err.to_string().contains("bytes"),
        "{err}"
    );
    assert_hint(&err);
}

#[test]
fn truncated_in_the_header() {
    let (_dir, path) = truncated_copy(100_000);
    let err = load(&path);
    assert!(matches!(err, LocalError::Truncated { .. }), "{err}");
    assert_hint(&err);
}

#[test]
fn a_model_without_chat_template() {
    // A valid GGUF header with metadata but no tokenizer.chat_template.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let key = b"general.architecture";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&5u64.to_le_bytes());
    bytes.extend_from_slice(b"llama");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = load(&path);
    assert!(matches!(err, LocalError::NoChatTemplate { .. }), "{err}");
    assert_hint(&err);
}
