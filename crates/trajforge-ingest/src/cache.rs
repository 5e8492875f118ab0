//! Parse results cached by file content, one cache file per repository.
//!
//! Keys are a 128-bit hash of the file's bytes and its grammar, so a renamed or moved file
//! is still a hit and an edited one is a miss. The whole file is rewritten atomically
//! (temporary file + rename) and only holds entries for files seen in the last scan.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::extract::FileFunctions;

/// Bump when extraction changes what it reports, so stale results are never served.
const EXTRACTOR_REVISION: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheFile {
    revision: String,
    entries: HashMap<String, FileFunctions>,
}

pub(crate) struct Cache {
    path: PathBuf,
    old: HashMap<String, FileFunctions>,
    new: HashMap<String, FileFunctions>,
    changed: bool,
}

fn revision() -> String {
    format!("{}-{}", env!("CARGO_PKG_VERSION"), EXTRACTOR_REVISION)
}

/// The cache key of a file's content parsed with a grammar.
pub(crate) fn key(content: &[u8], grammar_tag: u8) -> String {
    format!(
        "{:032x}",
        xxhash_rust::xxh3::xxh3_128_with_seed(content, u64::from(grammar_tag))
    )
}

impl Cache {
    /// Open the cache of the repository at `root` (canonical path) under `dir`.
    pub(crate) fn open(dir: &Path, root: &Path) -> (Cache, Option<String>) {
        let repo_key = xxhash_rust::xxh3::xxh3_64(root.as_os_str().as_encoded_bytes());
        let path = dir.join("functions").join(format!("{repo_key:016x}.json"));
        let mut warning = None;
        let old = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<CacheFile>(&bytes) {
                Ok(file) if file.revision == revision() => file.entries,
                Ok(_) => HashMap::new(),
                Err(e) => {
                    warning = Some(format!("ignored unreadable cache {}: {e}", path.display()));
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                warning = Some(format!("cannot read cache {}: {e}", path.display()));
                HashMap::new()
            }
        };
        (
            Cache {
                path,
                old,
                new: HashMap::new(),
                changed: false,
            },
            warning,
        )
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<FileFunctions> {
        if let Some(hit) = self.new.get(key) {
            return Some(hit.clone());
        }
        let hit = self.old.remove(key)?;
        self.new.insert(key.to_string(), hit.clone());
        Some(hit)
    }

    pub(crate) fn put(&mut self, key: String, value: FileFunctions) {
        self.changed = true;
        self.new.insert(key, value);
    }

    /// Write the cache back if anything changed; returns a warning on failure.
    pub(crate) fn save(self) -> Option<String> {
        // Entries left in `old` belong to files that are gone or changed.
        if !self.changed && self.old.is_empty() {
            return None;
        }
        let file = CacheFile {
            revision: revision(),
            entries: self.new,
        };
        let write = || -> std::io::Result<()> {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(
                ".{}.{}.tmp",
                self.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("cache"),
                std::process::id()
            ));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            serde_json::to_writer(&mut out, &file)?;
            out.flush()?;
            drop(out);
            std::fs::rename(&tmp, &self.path)
        };
        write()
            .err()
            .map(|e| format!("cannot write cache {}: {e}", self.path.display()))
    }
}
