//! JSONL and Parquet writers that write to a temporary file beside the target and rename it
//! when done, so an interrupted export never leaves a truncated dataset behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::Format;
use crate::error::{ExportError, Result};

/// Rows buffered per Parquet record batch.
const BATCH: usize = 256;

/// A file written under a temporary name and renamed into place by [`AtomicFile::commit`];
/// dropped without commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Prepare `target` (its folder is created).
    pub fn new(target: &Path) -> Result<(Self, File)> {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "export".into());
        remove_stale_temporaries(dir, &name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        Ok((
            Self {
                target: target.to_path_buf(),
                tmp,
                committed: false,
            },
            file,
        ))
    }

    /// Move the finished file into place.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| io_err(&self.target, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes `.{name}.tmp-PID` files that exports killed before they could clean up left
/// beside the target; a file whose process still runs is another export's and is kept.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Write `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let (guard, mut file) = AtomicFile::new(path)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, e))?;
    guard.commit()
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl Container {
    /// From the file name's extension.
    pub fn from_path(path: &Path) -> Option<Container> {
        match path.extension()?.to_str()? {
            "jsonl" => Some(Container::Jsonl),
            "parquet" => Some(Container::Parquet),
            _ => None,
        }
    }
}

/// Streams rows into the output file.
pub struct RowWriter {
    path: PathBuf,
    guard: Option<AtomicFile>,
    inner: Inner,
    format: Format,
}

enum Inner {
    Jsonl(BufWriter<File>),
    Parquet {
        writer: Box<ArrowWriter<File>>,
        schema: Arc<Schema>,
        buffer: Vec<Value>,
    },
}

impl std::fmt::Debug for RowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RowWriter {
    /// Start writing `path` in `container`; `web` adds the columns of a web run's task.
    pub fn create(path: &Path, container: Container, format: Format, web: bool) -> Result<Self> {
        let (guard, file) = AtomicFile::new(path)?;
        let inner = match container {
            Container::Jsonl => Inner::Jsonl(BufWriter::with_capacity(1 << 20, file)),
            Container::Parquet => {
                let schema = Arc::new(schema(format, web));
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
                    .map_err(|e| io_err(path, e))?;
                Inner::Parquet {
                    writer: Box::new(writer),
                    schema,
                    buffer: Vec::with_capacity(BATCH),
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            guard: Some(guard),
            inner,
            format,
        })
    }

    /// Write one row (the JSONL form; Parquet gets the same row with free-form parts as JSON text).
    pub fn write(&mut self, row: Value) -> Result<()> {
        match &mut self.inner {
            Inner::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &row).map_err(|e| io_err(&self.path, e))?;
                w.write_all(b"\n").map_err(|e| io_err(&self.path, e))
            }
            Inner::Parquet { buffer, .. } => {
                buffer.push(parquet_row(self.format, row));
                if buffer.len() >= BATCH {
                    self.flush_batch()?;
                }
                Ok(())
            }
        }
    }

    fn flush_batch(&mut self) -> Result<()> {
        let Inner::Parquet {
            writer,
            schema,
            buffer,
        } = &mut self.inner
        else {
            return Ok(());
        };
        if buffer.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let mut decoder = ReaderBuilder::new(Arc::clone(schema))
            .with_batch_size(buffer.len())
            .build_decoder()
            .map_err(|e| io_err(path, e))?;
        decoder.serialize(buffer).map_err(|e| io_err(path, e))?;
        if let Some(batch) = decoder.flush().map_err(|e| io_err(path, e))? {
            writer.write(&batch).map_err(|e| io_err(path, e))?;
        }
        buffer.clear();
        Ok(())
    }

    /// Finish the file and move it into place.
    pub fn finish(mut self) -> Result<()> {
        self.flush_batch()?;
        let path = self.path.clone();
        match self.inner {
            Inner::Jsonl(w) => {
                let file = w.into_inner().map_err(|e| io_err(&path, e.error()))?;
                file.sync_all().map_err(|e| io_err(&path, e))?;
            }
            Inner::Parquet { writer, .. } => {
                let file = writer.into_inner().map_err(|e| io_err(&path, e))?;
                file.sync_all().map_err(|e| io_err(&path, e))?;
            }
        }
        match self.guard.take() {
            Some(g) => g.commit(),
            None => Ok(()),
        }
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn list_of(fields: Vec<Field>) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(Fields::from(fields)),
        true,
    )))
}

/// Columns every format carries, so users can filter without the raw export; `web` adds a
/// web run's task.
fn meta_fields(web: bool) -> Vec<Field> {
    let mut fields = vec![
        utf8("id", false),
        utf8("rollout", false),
        Field::new("recall", DataType::Float64, true),
        utf8("function", true),
        json_field("menu_entry", true),
        utf8("teacher", true),
        Field::new("tokens", DataType::Int64, true),
        Field::new("truncation_ratio", DataType::Float64, false),
    ];
    if web {
        fields.extend([
            utf8("site", false),
            utf8("intent", false),
            utf8("start_url", false),
            utf8("final_url", true),
        ]);
    }
    fields
}

/// A string column holding JSON, marked with Arrow's canonical `arrow.json` extension type so
/// readers that know it (pyarrow, `datasets`' `Json` feature) give back the nested value.
fn json_field(name: &str, nullable: bool) -> Field {
    utf8(name, nullable).with_metadata(
        [
            ("ARROW:extension:name".to_string(), "arrow.json".to_string()),
            ("ARROW:extension:metadata".to_string(), String::new()),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<String, String>>(),
    )
}

/// The Arrow schema of a format's Parquet file.
pub fn schema(format: Format, web: bool) -> Schema {
    let mut fields = match format {
        Format::Openai => vec![
            Field::new(
                "messages",
                list_of(vec![
                    utf8("role", false),
                    utf8("content", true),
                    Field::new(
                        "tool_calls",
                        list_of(vec![
                            utf8("id", true),
                            utf8("type", true),
                            Field::new(
                                "function",
                                DataType::Struct(Fields::from(vec![
                                    utf8("name", true),
                                    json_field("arguments", true),
                                ])),
                                true,
                            ),
                        ]),
                        true,
                    ),
                    utf8("tool_call_id", true),
                    utf8("name", true),
                ]),
                false,
            ),
            // Tool schemas are free-form JSON; each is one JSON value, so the column loads as
            // the list of dicts `apply_chat_template(messages, tools=...)` takes.
            Field::new(
                "tools",
                DataType::List(Arc::new(json_field("item", false))),
                false,
            ),
        ],
        Format::Hermes => vec![Field::new(
            "messages",
            list_of(vec![
                utf8("role", false),
                utf8("content", false),
                Field::new("train", DataType::Boolean, false),
            ]),
            false,
        )],
        Format::Sharegpt => vec![
            Field::new(
                "conversations",
                list_of(vec![utf8("from", false), utf8("value", false)]),
                false,
            ),
            utf8("system", false),
            utf8("tools", false),
        ],
        Format::Raw => vec![
            Field::new("job_id", DataType::Int64, false),
            Field::new("attempt", DataType::Int64, false),
            utf8("exit_status", false),
            Field::new("kept", DataType::Boolean, false),
            utf8("patch", true),
            Field::new("patch_lines", DataType::Int64, true),
            Field::new("tool_tokens_mean", DataType::Float64, true),
            Field::new("total_tokens", DataType::Int64, true),
            utf8("job_key", true),
            json_field("job", true),
            json_field("stages", true),
            json_field("run", true),
            json_field("trajectory", false),
        ],
    };
    fields.extend(meta_fields(web));
    Schema::new(fields)
}

/// Free-form values (tool schemas, raw records) become JSON text in Parquet, where a column
/// needs one fixed type; their fields carry the `arrow.json` extension type ([`json_field`]).
fn parquet_row(format: Format, mut row: Value) -> Value {
    let keys: &[&str] = match format {
        Format::Raw => &["job", "stages", "run", "trajectory", "menu_entry"],
        _ => &[],
    };
    if let Some(obj) = row.as_object_mut() {
        if format == Format::Openai {
            if let Some(Value::Array(tools)) = obj.get_mut("tools") {
                for t in tools.iter_mut() {
                    *t = Value::String(t.to_string());
                }
            }
            if let Some(Value::Array(messages)) = obj.get_mut("messages") {
                messages.iter_mut().for_each(arguments_as_json_values);
            }
        }
        let mut stringify = |k: &str| {
            if let Some(v) = obj.get_mut(k)
                && !v.is_string()
                && !v.is_null()
            {
                *v = Value::String(v.to_string());
            }
        };
        for k in keys {
            stringify(k);
        }
        if format != Format::Raw {
            stringify("menu_entry");
        }
    }
    row
}

/// A call's `arguments` column is `arrow.json`, so readers give back the object the model
/// wrote (key order kept: its own text is stored); text that is not JSON is stored as a JSON
/// string, so it still loads (as that text) instead of making the file unreadable.
fn arguments_as_json_values(message: &mut Value) {
    let Some(Value::Array(calls)) = message.get_mut("tool_calls") else {
        return;
    };
    for call in calls {
        if let Some(args) = call.pointer_mut("/function/arguments")
            && let Some(text) = args.as_str()
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
        {
            *args = Value::String(args.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn call_arguments_keep_the_model_s_text_and_text_that_is_not_json_stays_loadable() {
        let call = |args: &str| json!({"function": {"name": "bash", "arguments": args}});
        let row = json!({"messages": [
            {"role": "assistant", "tool_calls": [call(r#"{"z": 1, "a": [2]}"#), call("ls -la")]},
            {"role": "tool", "content": "ok"},
        ], "tools": [{"type": "function"}]});
        let out = parquet_row(Format::Openai, row);
        let calls = &out["messages"][0]["tool_calls"];
        // The model's own text (its key order), which the `arrow.json` column loads as the object.
        assert_eq!(calls[0]["function"]["arguments"], r#"{"z": 1, "a": [2]}"#);
        // Not JSON: stored as a JSON string, so readers load the text instead of failing.
        assert_eq!(calls[1]["function"]["arguments"], r#""ls -la""#);
        assert_eq!(out["tools"][0], r#"{"type":"function"}"#);
    }
}
