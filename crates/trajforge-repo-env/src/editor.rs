//! The `str_replace_editor` tool, as SWE-agent offers it to the model.
//!
//! The editing logic runs here, on the host, on file contents it reads and writes through
//! a [`Files`] implementation. For a repository workspace that implementation goes through
//! the sandbox, so the host never follows a path or a symbolic link the model controls.
//! The logic itself needs no sandbox (its tests use files in memory); it lives next to the
//! repository environment because that is the only place it is offered.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;

/// Longest observation the editor returns; longer output is clipped with a visible note.
pub const MAX_OUTPUT_CHARS: usize = 16_000;

/// How the editor reaches the files of a workspace.
pub trait Files {
    /// Why an access failed; its text is shown to the model after what the editor tried.
    type Error: std::fmt::Display;
    /// The file's bytes, or `Ok(None)` when nothing exists at `path`.
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Create or replace the file (creating parent folders).
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Whether `path` is a directory.
    fn is_dir(&mut self, path: &str) -> Result<bool, Self::Error>;
    /// Files and folders under `path`, at most `depth` levels deep, hidden entries left out,
    /// one relative path per entry, folders ending in `/`.
    fn list(&mut self, path: &str, depth: usize) -> Result<Vec<String>, Self::Error>;
}

/// The JSON Schema of the tool's arguments, as the model sees it.
pub fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                "description": "The operation: view a file or folder, create a new file, replace a unique string, insert text after a line, or undo the last edit of a file."
            },
            "path": {"type": "string", "description": "Absolute path of the file or folder, e.g. /workspace/pkg/mod.py."},
            "file_text": {"type": "string", "description": "create: the content of the new file."},
            "old_str": {"type": "string", "description": "str_replace: the exact text to replace; it must occur exactly once in the file."},
            "new_str": {"type": "string", "description": "str_replace: the replacement (empty to delete). insert: the text to insert."},
            "insert_line": {"type": "integer", "description": "insert: the new text goes after this line (0 inserts at the top)."},
            "view_range": {
                "type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                "description": "view: [first, last] lines to show, 1-based; last = -1 shows to the end."
            }
        },
        "required": ["command", "path"]
    })
}

/// The description shown to the model next to the schema.
pub const DESCRIPTION: &str = "View, create and edit files. `view` shows a file with line numbers \
(or a folder two levels deep); `create` writes a new file; `str_replace` replaces one exact, unique \
occurrence of old_str with new_str; `insert` adds new_str after line insert_line; `undo_edit` reverts \
the last change made to a file with this tool. Long output is clipped.";

#[derive(Debug, Deserialize)]
struct Args {
    command: String,
    path: String,
    file_text: Option<String>,
    old_str: Option<String>,
    new_str: Option<String>,
    insert_line: Option<i64>,
    view_range: Option<Vec<i64>>,
}

/// The editor's state over one episode: the workspace root and the undo history.
#[derive(Debug)]
pub struct Editor {
    root: String,
    history: HashMap<String, Vec<Undo>>,
}

/// How to take one edit back: the bytes it replaced at `at`, and how many it wrote there.
/// Only the changed span is kept, never a copy of the file, so the history of many edits
/// of a large file stays as small as the edits.
#[derive(Debug)]
struct Undo {
    at: usize,
    removed: Vec<u8>,
    inserted: usize,
    /// FNV-1a of the whole file as the edit left it: undo applies only to that content.
    written: u64,
}

impl Undo {
    /// The record that turns `new` back into `old`.
    fn between(old: &[u8], new: &[u8]) -> Undo {
        let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let room = old.len().min(new.len()) - prefix;
        let suffix = old
            .iter()
            .rev()
            .zip(new.iter().rev())
            .take(room)
            .take_while(|(a, b)| a == b)
            .count();
        Undo {
            at: prefix,
            removed: old[prefix..old.len() - suffix].to_vec(),
            inserted: new.len() - suffix - prefix,
            written: trajforge_hash::fnv1a64(new),
        }
    }

    /// The file before the edit, when `current` is still what the edit wrote.
    fn apply(&self, current: &[u8]) -> Option<Vec<u8>> {
        if trajforge_hash::fnv1a64(current) != self.written
            || current.len() < self.at + self.inserted
        {
            return None;
        }
        let mut previous = Vec::with_capacity(current.len() - self.inserted + self.removed.len());
        previous.extend_from_slice(&current[..self.at]);
        previous.extend_from_slice(&self.removed);
        previous.extend_from_slice(&current[self.at + self.inserted..]);
        Some(previous)
    }
}

/// What one editor call produced: the observation text, and whether it was an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditResult {
    /// Text shown to the model.
    pub output: String,
    /// True when the call failed (bad arguments, missing file, non-unique match, ...).
    pub error: bool,
}

impl EditResult {
    fn ok(output: String) -> Self {
        EditResult {
            output: clip(output),
            error: false,
        }
    }

    fn err(output: impl Into<String>) -> Self {
        EditResult {
            output: clip(output.into()),
            error: true,
        }
    }
}

impl Editor {
    /// An editor whose paths live under `root` (e.g. `/workspace`).
    pub fn new(root: impl Into<String>) -> Self {
        let mut root = root.into();
        while root.len() > 1 && root.ends_with('/') {
            root.pop();
        }
        Editor {
            root,
            history: HashMap::new(),
        }
    }

    /// Run one call with the model's raw JSON arguments.
    pub fn call<F: Files + ?Sized>(&mut self, files: &mut F, arguments: &str) -> EditResult {
        let args: Args = match serde_json::from_str(arguments) {
            Ok(args) => args,
            Err(e) => {
                return EditResult::err(format!("Invalid arguments for str_replace_editor: {e}"));
            }
        };
        let path = match self.resolve(&args.path) {
            Ok(p) => p,
            Err(e) => return e,
        };
        match args.command.as_str() {
            "view" => self.view(files, &path, args.view_range.as_deref()),
            "create" => match args.file_text {
                Some(text) => self.create(files, &path, &text),
                None => EditResult::err("Parameter `file_text` is required for command: create"),
            },
            "str_replace" => match args.old_str {
                Some(old) => {
                    self.replace(files, &path, &old, args.new_str.as_deref().unwrap_or(""))
                }
                None => EditResult::err("Parameter `old_str` is required for command: str_replace"),
            },
            "insert" => match (args.insert_line, args.new_str) {
                (Some(line), Some(text)) => self.insert(files, &path, line, &text),
                (None, _) => {
                    EditResult::err("Parameter `insert_line` is required for command: insert")
                }
                (_, None) => EditResult::err("Parameter `new_str` is required for command: insert"),
            },
            "undo_edit" => self.undo(files, &path),
            other => EditResult::err(format!(
                "Unknown command {other:?}. Allowed commands: view, create, str_replace, insert, undo_edit"
            )),
        }
    }

    /// Normalise a path: absolute under the root, or relative to it; `..` may not climb out.
    /// A path that leaves the workspace comes back as the error observation.
    fn resolve(&self, path: &str) -> Result<String, EditResult> {
        let rel = if let Some(rest) = path.strip_prefix(&self.root) {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Err(EditResult::err(format!(
                    "The path {path} is outside the workspace {}.",
                    self.root
                )));
            }
            rest.trim_start_matches('/').to_string()
        } else if path.starts_with('/') {
            return Err(EditResult::err(format!(
                "The path {path} is outside the workspace {}; use a path under it.",
                self.root
            )));
        } else {
            path.to_string()
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in rel.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(EditResult::err(format!(
                            "The path {path} climbs out of the workspace {}.",
                            self.root
                        )));
                    }
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            Ok(self.root.clone())
        } else {
            Ok(format!("{}/{}", self.root, parts.join("/")))
        }
    }

    fn read_text<F: Files + ?Sized>(files: &mut F, path: &str) -> Result<String, EditResult> {
        match files.read(path) {
            Ok(Some(bytes)) => String::from_utf8(bytes).map_err(|_| {
                EditResult::err(format!(
                    "The file {path} is not UTF-8 text; the editor only edits text."
                ))
            }),
            Ok(None) => Err(EditResult::err(format!(
                "The path {path} does not exist. Check the path, or use `create`."
            ))),
            Err(e) => Err(EditResult::err(format!("Cannot read {path}: {e}"))),
        }
    }

    fn view<F: Files + ?Sized>(
        &mut self,
        files: &mut F,
        path: &str,
        range: Option<&[i64]>,
    ) -> EditResult {
        match files.is_dir(path) {
            Ok(true) => {
                if range.is_some() {
                    return EditResult::err("`view_range` applies to files, not folders.");
                }
                return match files.list(path, 2) {
                    Ok(entries) => {
                        let mut out = format!(
                            "Files and folders in {path}, up to 2 levels deep, hidden items left out:\n"
                        );
                        for e in entries {
                            out.push_str(&format!("{path}/{e}\n"));
                        }
                        EditResult::ok(out)
                    }
                    Err(e) => EditResult::err(format!("Cannot list {path}: {e}")),
                };
            }
            Ok(false) => {}
            Err(e) => return EditResult::err(format!("Cannot inspect {path}: {e}")),
        }
        let text = match Self::read_text(files, path) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let lines: Vec<&str> = split_lines(&text);
        let (first, last) = match range {
            None => (1, lines.len()),
            Some([start, end]) => {
                let n = lines.len() as i64;
                if *start < 1 || *start > n.max(1) {
                    return EditResult::err(format!(
                        "Invalid view_range [{start}, {end}]: the first line must be between 1 and {n}."
                    ));
                }
                let end = if *end == -1 { n } else { *end };
                if end < *start || end > n {
                    return EditResult::err(format!(
                        "Invalid view_range [{start}, {end}]: the last line must be -1 or between {start} and {n}."
                    ));
                }
                (*start as usize, end as usize)
            }
            Some(_) => return EditResult::err("`view_range` must be two integers: [first, last]."),
        };
        let mut out = format!("Here is {path} with line numbers:\n");
        out.push_str(&numbered(&lines, first, last));
        EditResult::ok(out)
    }

    fn create<F: Files + ?Sized>(&mut self, files: &mut F, path: &str, text: &str) -> EditResult {
        match files.read(path) {
            Ok(Some(_)) => {
                return EditResult::err(format!(
                    "File already exists at {path}. `create` does not overwrite; edit it with `str_replace`."
                ));
            }
            Ok(None) => {}
            Err(e) => return EditResult::err(format!("Cannot check {path}: {e}")),
        }
        if let Ok(true) = files.is_dir(path) {
            return EditResult::err(format!("{path} is a folder."));
        }
        match files.write(path, text.as_bytes()) {
            Ok(()) => {
                // Undoing a creation is not offered: SWE-agent only undoes edits of files.
                EditResult::ok(format!("File created successfully at: {path}"))
            }
            Err(e) => EditResult::err(format!("Cannot create {path}: {e}")),
        }
    }

    fn replace<F: Files + ?Sized>(
        &mut self,
        files: &mut F,
        path: &str,
        old: &str,
        new: &str,
    ) -> EditResult {
        let text = match Self::read_text(files, path) {
            Ok(t) => t,
            Err(e) => return e,
        };
        if old.is_empty() {
            return EditResult::err("`old_str` is empty; give the exact text to replace.");
        }
        let positions: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
        match positions.len() {
            0 => EditResult::err(format!(
                "No replacement was performed: old_str did not appear verbatim in {path}. Check whitespace and indentation."
            )),
            1 => {
                let at = positions[0];
                let updated = format!("{}{}{}", &text[..at], new, &text[at + old.len()..]);
                if let Err(e) = self.store(files, path, &text, &updated) {
                    return e;
                }
                let first_line = text[..at].matches('\n').count() + 1;
                let changed = new.matches('\n').count() + 1;
                EditResult::ok(format!(
                    "The file {path} has been edited. Here is a snippet of the result:\n{}Review the change and make sure it is what you intended.",
                    snippet(&updated, first_line, changed)
                ))
            }
            n => {
                let lines: Vec<String> = positions
                    .iter()
                    .map(|&i| (text[..i].matches('\n').count() + 1).to_string())
                    .collect();
                EditResult::err(format!(
                    "No replacement was performed: old_str occurs {n} times in {path}, at lines {}. Include more context so it is unique.",
                    lines.join(", ")
                ))
            }
        }
    }

    fn insert<F: Files + ?Sized>(
        &mut self,
        files: &mut F,
        path: &str,
        line: i64,
        new: &str,
    ) -> EditResult {
        let text = match Self::read_text(files, path) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let lines = split_lines(&text);
        if line < 0 || line as usize > lines.len() {
            return EditResult::err(format!(
                "Invalid insert_line {line}: it must be between 0 and {} (the number of lines).",
                lines.len()
            ));
        }
        let at = line as usize;
        // Byte offset of the start of line `at + 1`.
        let offset: usize = lines[..at].iter().map(|l| l.len()).sum();
        let mut insertion = new.to_string();
        if !insertion.ends_with('\n') {
            insertion.push('\n');
        }
        let mut before = text[..offset].to_string();
        if !before.is_empty() && !before.ends_with('\n') {
            before.push('\n');
        }
        let updated = format!("{before}{insertion}{}", &text[offset..]);
        if let Err(e) = self.store(files, path, &text, &updated) {
            return e;
        }
        EditResult::ok(format!(
            "The file {path} has been edited. Here is a snippet of the result:\n{}Review the change and make sure it is what you intended.",
            snippet(&updated, at + 1, new.matches('\n').count() + 1)
        ))
    }

    fn undo<F: Files + ?Sized>(&mut self, files: &mut F, path: &str) -> EditResult {
        let Some(undo) = self.history.get_mut(path).and_then(Vec::pop) else {
            return EditResult::err(format!("No edit to undo for {path}."));
        };
        let current = match files.read(path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return EditResult::err(format!("Cannot undo: {path} no longer exists.")),
            Err(e) => return EditResult::err(format!("Cannot read {path}: {e}")),
        };
        let Some(previous) = undo.apply(&current) else {
            self.history.remove(path);
            return EditResult::err(format!(
                "Cannot undo: {path} was changed since the editor's last edit (by a command?). Edit it back with str_replace instead."
            ));
        };
        drop(current);
        match files.write(path, &previous) {
            Ok(()) => {
                let text = String::from_utf8_lossy(&previous).to_string();
                let lines = split_lines(&text);
                EditResult::ok(format!(
                    "Last edit to {path} undone. Here is the file now:\n{}",
                    numbered(&lines, 1, lines.len())
                ))
            }
            Err(e) => EditResult::err(format!("Cannot write {path}: {e}")),
        }
    }

    fn store<F: Files + ?Sized>(
        &mut self,
        files: &mut F,
        path: &str,
        old: &str,
        new: &str,
    ) -> Result<(), EditResult> {
        files
            .write(path, new.as_bytes())
            .map_err(|e| EditResult::err(format!("Cannot write {path}: {e}")))?;
        self.history
            .entry(path.to_string())
            .or_default()
            .push(Undo::between(old.as_bytes(), new.as_bytes()));
        Ok(())
    }
}

/// Lines with their terminators kept, so offsets add up.
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn numbered(lines: &[&str], first: usize, last: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines
        .iter()
        .enumerate()
        .take(last)
        .skip(first.saturating_sub(1))
    {
        out.push_str(&format!(
            "{:>6}\t{}\n",
            i + 1,
            line.trim_end_matches(['\n', '\r'])
        ));
    }
    out
}

/// Lines around an edit that starts at `first` and spans `count` lines, with 4 lines of context.
fn snippet(text: &str, first: usize, count: usize) -> String {
    let lines = split_lines(text);
    let start = first.saturating_sub(4).max(1);
    let end = (first + count + 3).min(lines.len());
    numbered(&lines, start, end)
}

/// Clip long output with a note the model can act on.
pub fn clip(mut text: String) -> String {
    if text.chars().count() <= MAX_OUTPUT_CHARS {
        return text;
    }
    let cut = text
        .char_indices()
        .nth(MAX_OUTPUT_CHARS)
        .map_or(text.len(), |(i, _)| i);
    text.truncate(cut);
    text.push_str(
        "\n<response clipped><NOTE>The output was clipped at 16,000 characters. View a smaller part with `view_range`, or search with grep -n in bash.</NOTE>\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Mem(BTreeMap<String, Vec<u8>>);

    impl Files for Mem {
        type Error = std::convert::Infallible;
        fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, Self::Error> {
            Ok(self.0.get(path).cloned())
        }
        fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), Self::Error> {
            self.0.insert(path.to_string(), bytes.to_vec());
            Ok(())
        }
        fn is_dir(&mut self, path: &str) -> Result<bool, Self::Error> {
            let prefix = format!("{path}/");
            Ok(self.0.keys().any(|k| k.starts_with(&prefix)))
        }
        fn list(&mut self, path: &str, _depth: usize) -> Result<Vec<String>, Self::Error> {
            let prefix = format!("{path}/");
            Ok(self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix).map(String::from))
                .collect())
        }
    }

    fn setup() -> (Editor, Mem) {
        let mut files = Mem::default();
        files.0.insert(
            "/workspace/a.py".into(),
            b"def f():\n    return 1\n\ndef g():\n    return 1\n".to_vec(),
        );
        (Editor::new("/workspace"), files)
    }

    fn call(ed: &mut Editor, files: &mut Mem, args: serde_json::Value) -> EditResult {
        ed.call(files, &args.to_string())
    }

    #[test]
    fn view_numbers_lines_and_ranges() {
        let (mut ed, mut files) = setup();
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "view", "path": "/workspace/a.py"}),
        );
        assert!(!r.error);
        assert!(
            r.output
                .contains("     1\tdef f():\n     2\t    return 1\n"),
            "{}",
            r.output
        );
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "view", "path": "a.py", "view_range": [4, -1]}),
        );
        assert!(
            r.output.contains("     4\tdef g():") && !r.output.contains("     1\t"),
            "{}",
            r.output
        );
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "view", "path": "a.py", "view_range": [9, 10]}),
        );
        assert!(r.error);
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "view", "path": "/workspace"}),
        );
        assert!(r.output.contains("/workspace/a.py"), "{}", r.output);
    }

    #[test]
    fn str_replace_requires_a_unique_match_and_says_where() {
        let (mut ed, mut files) = setup();
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "str_replace", "path": "a.py", "old_str": "return 1", "new_str": "return 2"}),
        );
        assert!(r.error);
        assert!(
            r.output.contains("occurs 2 times") && r.output.contains("lines 2, 5"),
            "{}",
            r.output
        );
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "str_replace", "path": "a.py", "old_str": "nothing", "new_str": ""}),
        );
        assert!(r.error && r.output.contains("did not appear verbatim"));
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "str_replace", "path": "a.py", "old_str": "def g():\n    return 1", "new_str": "def g():\n    return 2"}),
        );
        assert!(!r.error, "{}", r.output);
        assert!(r.output.contains("     5\t    return 2"), "{}", r.output);
        assert_eq!(
            files.0["/workspace/a.py"],
            b"def f():\n    return 1\n\ndef g():\n    return 2\n"
        );
    }

    #[test]
    fn insert_and_undo() {
        let (mut ed, mut files) = setup();
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "insert", "path": "a.py", "insert_line": 0, "new_str": "import os"}),
        );
        assert!(!r.error, "{}", r.output);
        assert!(files.0["/workspace/a.py"].starts_with(b"import os\ndef f():"));
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "insert", "path": "a.py", "insert_line": 6, "new_str": "x = 1\n"}),
        );
        assert!(!r.error, "{}", r.output);
        assert!(files.0["/workspace/a.py"].ends_with(b"    return 1\nx = 1\n"));
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "insert", "path": "a.py", "insert_line": 99, "new_str": "y"}),
        );
        assert!(r.error);
        call(
            &mut ed,
            &mut files,
            json!({"command": "undo_edit", "path": "a.py"}),
        );
        call(
            &mut ed,
            &mut files,
            json!({"command": "undo_edit", "path": "a.py"}),
        );
        assert_eq!(
            files.0["/workspace/a.py"],
            b"def f():\n    return 1\n\ndef g():\n    return 1\n"
        );
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "undo_edit", "path": "a.py"}),
        );
        assert!(r.error && r.output.contains("No edit to undo"));
    }

    #[test]
    fn undo_keeps_only_the_changed_span_and_refuses_a_file_changed_since() {
        let (mut ed, mut files) = setup();
        let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        files
            .0
            .insert("/workspace/big.txt".into(), big.clone().into_bytes());
        for i in 0..12 {
            let r = call(
                &mut ed,
                &mut files,
                json!({"command": "str_replace", "path": "big.txt", "old_str": format!("line {}\n", i * 1000), "new_str": format!("edited {i}\n")}),
            );
            assert!(!r.error, "{}", r.output);
        }
        let kept: usize = ed.history["/workspace/big.txt"]
            .iter()
            .map(|u| u.removed.len())
            .sum();
        assert!(kept < 200, "the history holds {kept} bytes");
        for _ in 0..12 {
            let r = call(
                &mut ed,
                &mut files,
                json!({"command": "undo_edit", "path": "big.txt"}),
            );
            assert!(!r.error, "{}", r.output);
        }
        assert_eq!(files.0["/workspace/big.txt"], big.as_bytes());
        // A change made outside the editor is never overwritten by an undo.
        call(
            &mut ed,
            &mut files,
            json!({"command": "str_replace", "path": "a.py", "old_str": "return 1\n\ndef", "new_str": "return 3\n\ndef"}),
        );
        files
            .0
            .insert("/workspace/a.py".into(), b"changed by a command\n".to_vec());
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "undo_edit", "path": "a.py"}),
        );
        assert!(
            r.error && r.output.contains("was changed since"),
            "{}",
            r.output
        );
        assert_eq!(files.0["/workspace/a.py"], b"changed by a command\n");
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let (mut ed, mut files) = setup();
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "create", "path": "/workspace/new/b.py", "file_text": "x = 1\n"}),
        );
        assert!(!r.error);
        assert_eq!(files.0["/workspace/new/b.py"], b"x = 1\n");
        let r = call(
            &mut ed,
            &mut files,
            json!({"command": "create", "path": "a.py", "file_text": ""}),
        );
        assert!(r.error && r.output.contains("already exists"));
    }

    #[test]
    fn paths_cannot_leave_the_workspace() {
        let (mut ed, mut files) = setup();
        for path in [
            "/etc/passwd",
            "../etc/passwd",
            "/workspace/../etc/passwd",
            "/workspacex/a",
        ] {
            let r = call(
                &mut ed,
                &mut files,
                json!({"command": "view", "path": path}),
            );
            assert!(r.error, "{path}: {}", r.output);
        }
        assert_eq!(
            ed.resolve("/workspace/x/../a.py"),
            Ok("/workspace/a.py".to_string())
        );
    }

    #[test]
    fn bad_arguments_are_error_observations() {
        let (mut ed, mut files) = setup();
        assert!(ed.call(&mut files, "{not json").error);
        assert!(
            call(
                &mut ed,
                &mut files,
                json!({"command": "explode", "path": "a.py"})
            )
            .error
        );
        assert!(
            call(
                &mut ed,
                &mut files,
                json!({"command": "create", "path": "c.py"})
            )
            .error
        );
    }

    #[test]
    fn long_output_is_clipped_with_a_note() {
        let long = "x".repeat(MAX_OUTPUT_CHARS + 10);
        let clipped = clip(long);
        assert!(clipped.contains("<response clipped>"));
        assert!(clipped.chars().count() < MAX_OUTPUT_CHARS + 300);
        assert_eq!(clip("short".into()), "short");
    }
}
