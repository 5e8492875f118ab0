//! Import trajectories recorded by SERA, SWE-agent and mini-swe-agent (SPEC.md section 5) into
//! a run's store, so they can be filtered and exported like generated ones.
//!
//! Each source record becomes a [`Trajectory`] (messages, steps with their tool calls and
//! observations, exit status, patch, usage) plus a `raw` JSON object holding every source
//! field the trajectory has no place for, so nothing is lost. Text actions become tool calls
//! and sources without tool schemas get those of their tool set, so every import has tool
//! use the exports can show. [`parse_bytes`] never fails
//! as a whole: a corrupt or unrecognised record is reported as [`Skipped`] with its line
//! number and reason (and the format it looks like), and the others are kept. [`write`]
//! stores one file's records in one transaction, one finished job per record, keyed by format
//! and a hash of the record's canonical JSON, so importing the same data twice, in any layout,
//! adds nothing. [`import_files`] is one import as a whole: files read record by
//! record ([`each_record`]) and written as they are read ([`Writer`]), and a report of each.

mod actions;
mod convert;
mod formats;
pub mod session;
mod tools;
mod write;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use trajforge_agent::Trajectory;

pub use session::{FileReport, FileSummary, ImportReport, ImportRunError, Summary, import_files};
pub use write::{BATCH_BYTES, Writer, job_for, write};

/// A source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// SERA's released records: one JSON object per line, `messages` a JSON string of the
    /// SWE-agent history, with `rollout_patch` (P2) and `target_patch` (P1).
    Sera,
    /// SWE-agent's `.traj` document: `history`, `trajectory[]` steps and `info` (0.x text
    /// actions and 1.x function calling, runs and demonstrations).
    SweAgent,
    /// mini-swe-agent's trajectory document: `messages[]` and `info` (1.x and 2.x; text
    /// actions, tool calls, Responses-API items), or a bare list of messages.
    MiniSweAgent,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Sera, Format::SweAgent, Format::MiniSweAgent];

    /// The name used on the command line and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Format::Sera => "sera",
            Format::SweAgent => "swe-agent",
            Format::MiniSweAgent => "mini-swe-agent",
        }
    }

    /// What its records are, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Format::Sera => "a SERA record",
            Format::SweAgent => "a SWE-agent .traj",
            Format::MiniSweAgent => "a mini-swe-agent trajectory",
        }
    }

    /// The format with this name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// How a file holds its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON object per line (JSON Lines); blank lines are ignored.
    Lines,
    /// The whole file is one JSON object (a `.traj` file).
    Document,
}

impl Layout {
    /// A `.traj` or `.json` file, or one whose first non-blank line is a lone `{` (pretty-printed),
    /// is one document; anything else is read as JSON Lines.
    pub fn of(path: &Path, bytes: &[u8]) -> Layout {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("traj" | "json")) {
            return Layout::Document;
        }
        if starts_with_lone_brace(bytes.iter().copied()) {
            Layout::Document
        } else {
            Layout::Lines
        }
    }

    /// [`Layout::of`] a file, reading no more of it than the first non-blank line's start.
    fn of_file(path: &Path) -> std::io::Result<Layout> {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        let bytes = std::io::Read::bytes(file).map_while(Result::ok);
        Ok(Layout::of_start(path, bytes))
    }

    fn of_start(path: &Path, bytes: impl Iterator<Item = u8>) -> Layout {
        if Layout::of(path, b"") == Layout::Document || starts_with_lone_brace(bytes) {
            Layout::Document
        } else {
            Layout::Lines
        }
    }
}

/// Whether the first non-blank line is a lone `{` (blanks around it allowed).
fn starts_with_lone_brace(mut bytes: impl Iterator<Item = u8>) -> bool {
    if bytes.find(|b| !b.is_ascii_whitespace()) != Some(b'{') {
        return false;
    }
    for b in bytes {
        if b == b'\n' {
            return true;
        }
        if !b.is_ascii_whitespace() {
            return false;
        }
    }
    true
}

/// One imported trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line where the record starts.
    pub line: usize,
    /// Bytes of the source text it came from (its line, or its whole document).
    pub bytes: usize,
    /// Stable key: format and a hash of the record's content (not its bytes: the same record
    /// pretty-printed or compact, with its keys in any order, has the same key).
    pub key: String,
    /// The key trajforge 0.1 gave the same record (a hash of its bytes), so a run imported by
    /// 0.1 does not take the record again.
    pub legacy_key: Option<String>,
    /// Its source format.
    pub format: Format,
    /// The trajectory.
    pub trajectory: Trajectory,
    /// Every source field the trajectory has no place for.
    pub raw: Map<String, Value>,
    /// The reference patch it is verified against (SERA's `target_patch`, the T1 patch).
    pub reference_patch: Option<String>,
    /// What the record is about (`instance_id`, function `name` and `path`, `docker_image`).
    pub subject: Map<String, Value>,
}

impl Record {
    /// The trajectory as stored: the [`Trajectory`] JSON with the `raw` fields under `raw`
    /// (readers of [`Trajectory`] ignore it).
    pub fn data(&self) -> Value {
        let mut data = serde_json::to_value(&self.trajectory).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut data
            && !self.raw.is_empty()
        {
            map.insert("raw".into(), Value::Object(self.raw.clone()));
        }
        data
    }
}

/// A record that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// 1-based line where it starts (for a document, the line of the JSON error, else 1).
    pub line: usize,
    /// Why.
    pub reason: String,
    /// The format the record looks like, when it is not the one asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub looks_like: Option<Format>,
}

/// The records of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Records that were understood.
    pub records: Vec<Record>,
    /// Records that were not, in line order.
    pub skipped: Vec<Skipped>,
}

/// Errors that stop an import (a bad record never does).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A source file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store failed; nothing of the file was written.
    #[error(transparent)]
    Store(#[from] trajforge_store::StoreError),
}

/// Largest record read, in bytes: a JSON Lines line, or a document file (read whole). A larger
/// one is skipped with a note and never held in memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A record of a file, or why one was not imported.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A record that was understood.
    Record(Box<Record>),
    /// A record that was not.
    Skipped(Skipped),
}

/// Read and parse one file, keeping every record (see [`each_record`] for large files).
pub fn read_file(format: Format, path: &Path) -> Result<Parsed, ImportError> {
    let mut parsed = Parsed::default();
    each_record(format, path, |item| parsed.push(item))?;
    Ok(parsed)
}

/// Reads `path` one record at a time, handing each (or why it was skipped) to `f`: memory holds
/// one record of at most [`MAX_RECORD_BYTES`], whatever the file's size.
pub fn each_record(
    format: Format,
    path: &Path,
    mut f: impl FnMut(Item),
) -> Result<(), ImportError> {
    let failed = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let layout = Layout::of_file(path).map_err(failed)?;
    let file = std::fs::File::open(path).map_err(failed)?;
    match layout {
        Layout::Document => {
            let size = file.metadata().map_err(failed)?.len();
            if size > MAX_RECORD_BYTES as u64 {
                f(Item::Skipped(too_large(1, size)));
                return Ok(());
            }
            let mut bytes = Vec::with_capacity(size as usize);
            std::io::Read::read_to_end(&mut { file }, &mut bytes).map_err(failed)?;
            document(format, &bytes, &mut f);
        }
        Layout::Lines => {
            let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
            let mut buf = Vec::new();
            let mut number = 0;
            while let Some(size) = read_line(&mut reader, &mut buf).map_err(failed)? {
                number += 1;
                if size > buf.len() {
                    f(Item::Skipped(too_large(number, size as u64)));
                } else if !buf.trim_ascii().is_empty() {
                    one(format, &buf, number, &mut f, false);
                }
            }
        }
    }
    Ok(())
}

/// The note for a record over [`MAX_RECORD_BYTES`].
fn too_large(line: usize, size: u64) -> Skipped {
    Skipped {
        line,
        reason: format!(
            "record of {size} bytes is over the {} MiB limit: not read (split it, or write it as JSON Lines)",
            MAX_RECORD_BYTES >> 20
        ),
        looks_like: None,
    }
}

/// Reads the next line into `buf` (its `\n` left out), keeping at most [`MAX_RECORD_BYTES`]:
/// the line's size, which is more than `buf.len()` when it was cut; `None` at the end.
fn read_line(
    reader: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut size = 0;
    let mut over = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((size > 0).then_some(size));
        }
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !over && buf.len() + take > MAX_RECORD_BYTES {
            over = true;
            *buf = Vec::new();
        }
        if !over {
            buf.extend_from_slice(&chunk[..take]);
        }
        size += take;
        reader.consume(take + usize::from(end));
        if end {
            // An empty line still counts as a line.
            return Ok(Some(size));
        }
    }
}

/// Parse a file's bytes; never panics and never fails as a whole.
pub fn parse_bytes(format: Format, bytes: &[u8], layout: Layout) -> Parsed {
    let mut parsed = Parsed::default();
    let mut f = |item| parsed.push(item);
    match layout {
        Layout::Document => document(format, bytes, &mut f),
        Layout::Lines => {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                one(format, line, i + 1, &mut f, false);
            }
        }
    }
    parsed
}

/// The records of a whole document.
fn document(format: Format, bytes: &[u8], f: &mut impl FnMut(Item)) {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(1, |i| {
            1 + bytes[..i].iter().filter(|&&b| b == b'\n').count()
        });
    if bytes.trim_ascii().is_empty() {
        f(Item::Skipped(Skipped {
            line: 1,
            reason: "empty file".into(),
            looks_like: None,
        }));
    } else {
        one(format, bytes, start, f, true);
    }
}

impl Parsed {
    fn push(&mut self, item: Item) {
        match item {
            Item::Record(r) => self.records.push(*r),
            Item::Skipped(s) => self.skipped.push(s),
        }
    }
}

fn one(format: Format, bytes: &[u8], line: usize, f: &mut impl FnMut(Item), document: bool) {
    let size = bytes.len();
    let bytes = bytes.trim_ascii();
    let mut skip = |line: usize, reason: String| {
        f(Item::Skipped(Skipped {
            line,
            reason,
            looks_like: None,
        }))
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            // serde_json counts lines from the start of what it was given.
            let at = if document && e.line() > 0 {
                line + e.line() - 1
            } else {
                line
            };
            let what = if e.is_eof() {
                "truncated JSON"
            } else if std::str::from_utf8(bytes).is_err() {
                "not UTF-8 JSON"
            } else {
                "not valid JSON"
            };
            skip(at, format!("{what}: {e}"));
            return;
        }
    };
    match value {
        Value::Object(object) => {
            // 0.1 keyed a record by its bytes; a store it wrote knows the record by that key.
            let legacy = format!(
                "import:{}:{:032x}",
                format.name(),
                xxhash_rust::xxh3::xxh3_128(bytes)
            );
            record(format, object, (line, size), f, Some(legacy))
        }
        // mini-swe-agent's list of messages (its test data, `messages` saved alone).
        Value::Array(items)
            if format == Format::MiniSweAgent && items.first().is_some_and(is_message) =>
        {
            let mut object = Map::new();
            object.insert("messages".into(), Value::Array(items));
            record(format, object, (line, size), f, None);
        }
        // A JSON array of records (a dataset's sample file).
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for item in items {
                if let Value::Object(object) = item {
                    record(format, object, (line, size), f, None);
                }
            }
        }
        other => skip(
            line,
            format!(
                "expected a JSON object per record, found {}",
                kind_of(&other)
            ),
        ),
    }
}

/// An element of a list of messages (chat messages or Responses-API items), not a record.
fn is_message(v: &Value) -> bool {
    let has = |k: &str| v.get(k).is_some();
    (has("role") || has("type") || has("object"))
        && !has("messages")
        && !has("history")
        && !has("trajectory")
}

/// One record at `(line, bytes)`: parsed into its trajectory, or skipped with the reason and
/// the format it looks like.
fn record(
    format: Format,
    object: Map<String, Value>,
    (line, bytes): (usize, usize),
    f: &mut impl FnMut(Item),
    legacy_key: Option<String>,
) {
    // The key is the record's content, whatever its layout: pretty or compact, any key order.
    let key = format!(
        "import:{}:{}",
        format.name(),
        trajforge_hash::fingerprint(&canonical(&Value::Object(object.clone())))
    );
    let looks_like = sniff(&object).filter(|&f| f != format);
    match formats::parse(format, object) {
        Ok(mut parts) => f(Item::Record(Box::new(Record {
            line,
            bytes,
            key,
            legacy_key,
            format,
            trajectory: {
                parts.trajectory.name_tool_results();
                parts.trajectory
            },
            raw: parts.raw,
            reference_patch: parts.reference_patch,
            subject: parts.subject,
        }))),
        Err(reason) => {
            let mut reason = reason.0;
            if let Some(f) = looks_like
                && !reason.contains("--from")
            {
                reason.push_str(&format!(
                    " (this looks like {}: use --from {})",
                    f.what(),
                    f.name()
                ));
            }
            f(Item::Skipped(Skipped {
                line,
                reason,
                looks_like,
            }));
        }
    }
}

/// A JSON value with every object's keys in order, so equal content serialises equally.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The format a record looks like, from the fields each one has.
pub(crate) fn sniff(object: &Map<String, Value>) -> Option<Format> {
    let has = |k: &str| object.contains_key(k);
    if has("history") || (has("trajectory") && has("info")) || has("replay_config") {
        Some(Format::SweAgent)
    } else if object.get("messages").is_some_and(Value::is_string)
        || has("rollout_patch")
        || has("target_patch")
        || has("func_name")
    {
        Some(Format::Sera)
    } else if object.get("messages").is_some_and(Value::is_array) || has("trajectory_format") {
        Some(Format::MiniSweAgent)
    } else {
        None
    }
}

/// A JSON value's kind, for messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let p = Path::new("x.jsonl");
        assert_eq!(Layout::of(p, b"{\"a\": 1}\n{\"a\": 2}\n"), Layout::Lines);
        assert_eq!(Layout::of(p, b"\n{\n  \"a\": 1\n}\n"), Layout::Document);
        assert_eq!(
            Layout::of(Path::new("x.traj"), b"{\"a\": 1}"),
            Layout::Document
        );
        assert_eq!(Layout::of(p, b""), Layout::Lines);
    }

    #[test]
    fn a_json_array_is_a_list_of_messages_or_a_list_of_records() {
        let call = r#"{"role": "assistant", "content": "x", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]}"#;
        let messages = format!(r#"[{{"role": "user", "content": "task"}}, {call}]"#);
        let records = format!(r#"[{{"messages": {messages}}}, {{"messages": [{call}]}}]"#);
        for (text, n) in [(&messages, 1), (&records, 2)] {
            let p = parse_bytes(Format::MiniSweAgent, text.as_bytes(), Layout::Document);
            assert_eq!(
                (p.records.len(), p.skipped.len()),
                (n, 0),
                "{:?}",
                p.skipped
            );
            assert!(p.records.windows(2).all(|w| w[0].key != w[1].key));
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Format::from_name("sweagent"), None);
    }

    #[test]
    fn document_errors_carry_the_line_of_the_json_error() {
        let text = b"\n{\n  \"messages\": [\n    {\"role\": \"user\",\n";
        let p = parse_bytes(Format::MiniSweAgent, text, Layout::Document);
        assert!(p.records.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert!(
            p.skipped[0].reason.starts_with("truncated JSON"),
            "{:?}",
            p.skipped
        );
        assert_eq!(p.skipped[0].line, 4);
    }
}
