//! A small pure-Rust GGUF header reader: a bad model file gets a precise error before
//! llama.cpp (which only says "failed to load") sees it, the chat template is known up front,
//! and the tokenizer vocabulary (`tokenizer.ggml.*`) can be turned into a Hugging Face
//! `tokenizer.json` for exact token counts without loading the weights. It also knows where
//! the default model is installed, for builds with and without the embedded teacher.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

mod tokenizer;

pub use tokenizer::{GgufTokenizer, TokenizerError};

/// File name of the default model that `scripts/install-model.sh` installs.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where `scripts/install-model.sh` puts the default model:
/// `$TRAJFORGE_MODEL_DIR`, else `$HOME/.cache/trajforge/models`.
pub fn default_model_path() -> PathBuf {
    let dir = std::env::var_os("TRAJFORGE_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache")
                .join("trajforge")
                .join("models")
        });
    dir.join(DEFAULT_MODEL_FILE)
}

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    Missing {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file could not be read (permissions, I/O error, a directory).
    #[error("{path}: cannot read: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file does not start with the GGUF magic.
    #[error("{path} is not a GGUF file (it starts with {found:?}, not \"GGUF\")")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// The first bytes found, escaped.
        found: String,
    },
    /// The file is shorter than its own header says.
    #[error("{path} is truncated: {detail}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was missing.
        detail: String,
    },
    /// The header is not understood (bad version, absurd counts, bad UTF-8).
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// Metadata of a GGUF file that the teacher needs.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// `general.name`, if present.
    pub name: Option<String>,
    /// `general.architecture`, if present.
    pub architecture: Option<String>,
    /// `<arch>.context_length`, the training context.
    pub context_length: Option<u64>,
    /// `tokenizer.chat_template`, the Jinja template of the conversation format.
    pub chat_template: Option<String>,
    /// BOS and EOS token texts, passed to the template as `bos_token` / `eos_token`.
    pub bos_token: Option<String>,
    /// See `bos_token`.
    pub eos_token: Option<String>,
    /// Bytes the file must have to hold every tensor, when all tensor types are known.
    pub required_len: Option<u64>,
    /// Actual file length.
    pub file_len: u64,
    /// The tokenizer vocabulary, when asked for with [`read_gguf_with_tokenizer`].
    pub tokenizer: Option<GgufTokenizer>,
}

/// A scalar or string metadata value; arrays are skipped except token lists.
#[derive(Debug, Clone)]
enum Meta {
    Int(u64),
    Bool(bool),
    Str(String),
    Other,
}

/// Largest count accepted for one metadata array or string, against corrupt headers that
/// would otherwise allocate gigabytes.
const MAX_COUNT: u64 = 1 << 28;

/// Deepest nesting of metadata arrays accepted (real files use one level).
const MAX_ARRAY_DEPTH: u32 = 8;

struct Reader<R> {
    inner: R,
    pos: u64,
}

/// Why parsing stopped: the file ended early, or it holds nonsense.
enum Stop {
    Eof(String),
    Bad(String),
    Io(io::Error),
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, Stop> {
        let mut buf = vec![0u8; n];
        match self.inner.read_exact(&mut buf) {
            Ok(()) => {
                self.pos += n as u64;
                Ok(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Stop::Eof(format!(
                "the file ends inside the header ({what} at byte {})",
                self.pos
            ))),
            Err(e) => Err(Stop::Io(e)),
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), Stop> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(Stop::Io)?;
        self.pos += copied;
        if copied < n {
            return Err(Stop::Eof(format!(
                "the file ends inside the header ({what} at byte {})",
                self.pos
            )));
        }
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, Stop> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, Stop> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn count(&mut self, what: &str) -> Result<u64, Stop> {
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(Stop::Bad(format!("{what} count {n} is implausible")));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, Stop> {
        let n = self.count(what)?;
        let b = self.bytes(n as usize, what)?;
        String::from_utf8(b).map_err(|_| Stop::Bad(format!("{what} is not UTF-8")))
    }

    /// Read (or skip) one value of GGUF type `ty`.
    fn value(&mut self, ty: u32, what: &str, keep_array: bool) -> Result<(Meta, Vec<Meta>), Stop> {
        self.value_at(ty, what, keep_array, 0)
    }

    /// [`Self::value`] inside `depth` enclosing arrays (bounded: nested arrays in a hostile
    /// header would otherwise recurse once per 12 bytes of file and overflow the stack).
    fn value_at(
        &mut self,
        ty: u32,
        what: &str,
        keep_array: bool,
        depth: u32,
    ) -> Result<(Meta, Vec<Meta>), Stop> {
        let fixed = |ty: u32| -> Option<u64> {
            match ty {
                0 | 1 | 7 => Some(1),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            }
        };
        match ty {
            8 => Ok((Meta::Str(self.string(what)?), Vec::new())),
            9 if depth >= MAX_ARRAY_DEPTH => Err(Stop::Bad(format!(
                "{what} nests arrays more than {MAX_ARRAY_DEPTH} deep"
            ))),
            9 => {
                let elem = self.u32(what)?;
                let n = self.count(what)?;
                if !keep_array && let Some(size) = fixed(elem) {
                    self.skip(n * size, what)?;
                    return Ok((Meta::Other, Vec::new()));
                }
                let mut items = Vec::new();
                for _ in 0..n {
                    let (item, _) = self.value_at(elem, what, false, depth + 1)?;
                    if keep_array {
                        items.push(item);
                    }
                }
                Ok((Meta::Other, items))
            }
            // u32 and i32 (token types are small positive i32 values).
            4 | 5 => Ok((Meta::Int(u64::from(self.u32(what)?)), Vec::new())),
            7 => Ok((Meta::Bool(self.bytes(1, what)?[0] != 0), Vec::new())),
            10 => Ok((Meta::Int(self.u64(what)?), Vec::new())),
            _ => match fixed(ty) {
                Some(size) => {
                    self.skip(size, what)?;
                    Ok((Meta::Other, Vec::new()))
                }
                None => Err(Stop::Bad(format!("{what} has unknown value type {ty}"))),
            },
        }
    }
}

/// Block size (elements) and bytes per block of the ggml tensor types in common use.
fn type_size(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    })
}

/// Read and check the header of the GGUF file at `path`.
pub fn read_gguf(path: &Path) -> Result<GgufInfo, GgufError> {
    read(path, false)
}

/// Like [`read_gguf`], also keeping the tokenizer vocabulary, merges and token types.
pub fn read_gguf_with_tokenizer(path: &Path) -> Result<GgufInfo, GgufError> {
    read(path, true)
}

fn read(path: &Path, with_tokenizer: bool) -> Result<GgufInfo, GgufError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(GgufError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(GgufError::Unreadable {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let unreadable = |e: io::Error| GgufError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = file.metadata().map_err(unreadable)?;
    if meta.is_dir() {
        return Err(GgufError::Unreadable {
            path: path.to_path_buf(),
            message: "it is a directory".into(),
        });
    }
    let file_len = meta.len();
    let mut reader = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
    };
    let owned = path.to_path_buf();
    let stop = |s: Stop| -> GgufError { stop_error(&owned, s) };

    // The magic decides "not GGUF" even for files shorter than 4 bytes.
    let mut magic = Vec::with_capacity(4);
    (&mut reader.inner)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(unreadable)?;
    reader.pos = magic.len() as u64;
    if magic != b"GGUF" {
        return Err(GgufError::NotGguf {
            path: path.to_path_buf(),
            found: magic.escape_ascii().to_string(),
        });
    }
    let version = reader.u32("version").map_err(stop)?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("unsupported GGUF version {version}"),
        });
    }
    let n_tensors = reader.count("tensor").map_err(stop)?;
    let n_kv = reader.count("metadata").map_err(stop)?;

    let mut kv: HashMap<String, Meta> = HashMap::new();
    let mut tokens: Vec<Meta> = Vec::new();
    let mut merges: Vec<Meta> = Vec::new();
    let mut token_types: Vec<Meta> = Vec::new();
    for _ in 0..n_kv {
        let key = reader.string("metadata key").map_err(stop)?;
        let ty = reader.u32(&key).map_err(stop)?;
        let keep = key == "tokenizer.ggml.tokens"
            || (with_tokenizer
                && (key == "tokenizer.ggml.merges" || key == "tokenizer.ggml.token_type"));
        let (value, items) = reader.value(ty, &key, keep).map_err(stop)?;
        match key.as_str() {
            "tokenizer.ggml.tokens" => tokens = items,
            "tokenizer.ggml.merges" => merges = items,
            "tokenizer.ggml.token_type" => token_types = items,
            _ => {}
        }
        kv.insert(key, value);
    }

    // Tensor infos: the largest offset plus that tensor's size is where the data must end.
    let mut data_end: Option<u64> = Some(0);
    for _ in 0..n_tensors {
        let name = reader.string("tensor name").map_err(stop)?;
        let n_dims = reader.u32(&name).map_err(stop)?;
        if n_dims > 8 {
            return Err(GgufError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("tensor {name} has {n_dims} dimensions"),
            });
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            elements = elements.saturating_mul(reader.u64(&name).map_err(stop)?);
        }
        let ty = reader.u32(&name).map_err(stop)?;
        let offset = reader.u64(&name).map_err(stop)?;
        data_end = match (data_end, type_size(ty)) {
            (Some(end), Some((block, bytes))) => {
                Some(end.max(offset.saturating_add(elements.div_ceil(block).saturating_mul(bytes))))
            }
            _ => None,
        };
    }
    let alignment = match kv.get("general.alignment") {
        Some(Meta::Int(a)) if *a > 0 => *a,
        _ => 32,
    };
    let data_start = reader.pos.div_ceil(alignment) * alignment;
    let required_len = data_end.map(|end| data_start.saturating_add(end));
    if let Some(required) = required_len
        && n_tensors > 0
        && file_len < required
    {
        return Err(GgufError::Truncated {
            path: path.to_path_buf(),
            detail: format!("its tensors need {required} bytes, the file has {file_len}"),
        });
    }

    let text = |key: &str| match kv.get(key) {
        Some(Meta::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let int = |key: &str| match kv.get(key) {
        Some(Meta::Int(i)) => Some(*i),
        _ => None,
    };
    let token_text = |key: &str| {
        int(key)
            .and_then(|id| tokens.get(usize::try_from(id).ok()?))
            .and_then(|m| match m {
                Meta::Str(s) => Some(s.clone()),
                _ => None,
            })
    };
    let flag = |key: &str| match kv.get(key) {
        Some(Meta::Bool(b)) => Some(*b),
        _ => None,
    };
    let strings = |items: Vec<Meta>| -> Vec<String> {
        items
            .into_iter()
            .map(|m| match m {
                Meta::Str(s) => s,
                _ => String::new(),
            })
            .collect()
    };
    let tokenizer = if with_tokenizer {
        let types = token_types
            .iter()
            .map(|m| match m {
                Meta::Int(i) => *i as i32,
                _ => 1,
            })
            .collect();
        let id = |key: &str| int(key).and_then(|i| u32::try_from(i).ok());
        Some(GgufTokenizer {
            model: text("tokenizer.ggml.model").unwrap_or_default(),
            pre: text("tokenizer.ggml.pre"),
            tokens: strings(tokens.clone()),
            merges: strings(merges),
            token_types: types,
            bos_id: id("tokenizer.ggml.bos_token_id"),
            eos_id: id("tokenizer.ggml.eos_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
            add_eos: flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
        })
    } else {
        None
    };
    let architecture = text("general.architecture");
    let context_length = architecture
        .as_deref()
        .and_then(|arch| int(&format!("{arch}.context_length")));
    Ok(GgufInfo {
        name: text("general.name"),
        context_length,
        chat_template: text("tokenizer.chat_template"),
        bos_token: token_text("tokenizer.ggml.bos_token_id"),
        eos_token: token_text("tokenizer.ggml.eos_token_id"),
        architecture,
        required_len,
        file_len,
        tokenizer,
    })
}

fn stop_error(path: &Path, stop: Stop) -> GgufError {
    let path: PathBuf = path.to_path_buf();
    match stop {
        Stop::Eof(detail) => GgufError::Truncated { path, detail },
        Stop::Bad(detail) => GgufError::Corrupt { path, detail },
        Stop::Io(e) => GgufError::Unreadable {
            path,
            message: e.to_string(),
        },
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

    /// A GGUF file with a token list, merges, token types, ids, flags and one tensor.
    fn with_tokenizer() -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&7u64.to_le_bytes());
        put_str(&mut out, "general.architecture");
        out.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut out, "llama");
        put_str(&mut out, "llama.context_length");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&2048u32.to_le_bytes());
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
            put_str(&mut out, key);
            out.extend_from_slice(&9u32.to_le_bytes());
            out.extend_from_slice(&8u32.to_le_bytes());
            out.extend_from_slice(&3u64.to_le_bytes());
            for t in ["a", "b", "a b"] {
                put_str(&mut out, t);
            }
        }
        put_str(&mut out, "tokenizer.ggml.token_type");
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&5u32.to_le_bytes());
        out.extend_from_slice(&3u64.to_le_bytes());
        for t in [1i32, 3, 1] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        put_str(&mut out, "tokenizer.ggml.bos_token_id");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut out, "tokenizer.ggml.add_bos_token");
        out.extend_from_slice(&7u32.to_le_bytes());
        out.push(1);
        put_str(&mut out, "t.weight");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&4u64.to_le_bytes());
        out.extend_from_slice(&4u64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.resize(out.len().div_ceil(32) * 32 + 64, 0);
        out
    }

    mod fuzz {
        use proptest::prelude::*;
        use trajforge_testkit::fuzz;

        proptest! {
            #![proptest_config(fuzz::config())]

            /// Hostile headers (`TRAJFORGE_FUZZ_CASES` sets the budget): never a panic, every
            /// failure a typed `GgufError`, and a tokenizer read from them converts or errs.
            #[test]
            fn hostile_headers_never_panic(bytes in fuzz::inputs(
                vec![super::tiny(&[("general.name", "x")]), super::with_tokenizer()], 512)
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("f.gguf");
                std::fs::write(&path, &bytes).unwrap();
                let _ = super::read_gguf(&path);
                if let Ok(info) = super::read_gguf_with_tokenizer(&path)
                    && let Some(tok) = info.tokenizer
                {
                    let _ = tok.to_tokenizer_json();
                }
            }
        }
    }

    #[test]
    fn nested_arrays_are_bounded_not_a_stack_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.gguf");
        let mut out = tiny(&[]);
        out[16..24].copy_from_slice(&1u64.to_le_bytes());
        put_str(&mut out, "deep");
        out.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..200_000 {
            out.extend_from_slice(&9u32.to_le_bytes());
            out.extend_from_slice(&1u64.to_le_bytes());
        }
        std::fs::write(&path, out).unwrap();
        let err = read_gguf(&path).unwrap_err();
        assert!(err.to_string().contains("nests arrays"), "{err}");
    }

    #[test]
    fn the_tokenizer_seed_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        std::fs::write(&path, with_tokenizer()).unwrap();
        let info = read_gguf_with_tokenizer(&path).unwrap();
        assert_eq!(info.context_length, Some(2048));
        assert_eq!(info.bos_token.as_deref(), Some("b"));
        assert_eq!(info.tokenizer.unwrap().merges.len(), 3);
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
        assert!(matches!(read_gguf(&path), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn short_and_foreign_files_are_not_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GG").unwrap();
        assert!(matches!(read_gguf(&path), Err(GgufError::NotGguf { .. })));
        std::fs::write(&path, b"PK\x03\x04 zip").unwrap();
        let err = read_gguf(&path).unwrap_err().to_string();
        assert!(err.contains("not a GGUF"), "{err}");
    }
}
