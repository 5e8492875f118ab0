//! `--tools trained`: Claude Code drives a model through the tool set it was trained on.
//!
//! Each request's conversation is rewritten for the model: the trained system prompt and tools
//! replace Claude Code's, system reminders are removed, every Claude Code call this proxy
//! issued is shown as the model's own call and every result in the observation format of
//! training, with Claude Code's working directory shown as the training root (`/workspace`).
//! The model's answer is translated back: `str_replace_editor view` becomes Read (or a listing
//! through Bash for a folder), `create` Write, `str_replace` and `insert` Edit, `bash` Bash and
//! `submit` the end of the turn. Claude Code edits only files read in the session, so an edit
//! of an unread file is preceded by a Read whose result the model never sees; the edit is
//! issued when that result comes back. What each issued call stands for is remembered by its
//! id (ids are unique, so this is per conversation), and what the model knows of each file is
//! rebuilt from the conversation itself.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use trajforge_chat::anthropic::{ContentBlock, InputRole, MessageContent, MessagesRequest};
use trajforge_chat::wire::{ChatChunk, Delta, WireFunction, WireToolCall};
use trajforge_chat::{ChatMessage, Role, ToolCall, ToolSpec};

use crate::server::ChunkItem;

/// Where the model's paths start in training.
pub const TRAINED_ROOT: &str = "/workspace";

/// Most issued calls remembered before the oldest are forgotten (a forgotten call is still
/// shown to the model, by mapping Claude Code's tool back to the trained one).
const REMEMBERED_CALLS: usize = 20_000;

/// The tool set and system prompt a model was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedTools {
    /// The system prompt of training.
    pub system_prompt: String,
    /// The tools of training (`bash`, `str_replace_editor`, `submit`).
    pub tools: Vec<ToolSpec>,
    /// The root the model's paths start with.
    pub root: String,
}

/// Which tools the model sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ToolsMode {
    /// Claude Code's own tools and system prompt, as sent (minus the per-request billing
    /// line, which would defeat prefix caches).
    #[default]
    Passthrough,
    /// The trained tool set in place of Claude Code's.
    Trained(TrainedTools),
}

/// Why `--trained-on` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrainedError {
    /// The folder or file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What was read.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No record with a system prompt and tools was found.
    #[error("no OpenAI-format record (messages with a system prompt, and tools) in {0}")]
    NoRecord(std::path::PathBuf),
}

impl TrainedTools {
    /// The system prompt and tools of the first record of the first `*.jsonl` file (OpenAI
    /// format, as `trajforge export --format openai` writes it) in `dir`.
    pub fn from_dataset(dir: &std::path::Path) -> Result<Self, TrainedError> {
        let read_err = |path: &std::path::Path, source| TrainedError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| read_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| read_err(&file, e))?;
            for line in text.lines().take(100) {
                if let Some(found) = Self::from_record(line) {
                    return Ok(found);
                }
            }
        }
        Err(TrainedError::NoRecord(dir.to_path_buf()))
    }

    fn from_record(line: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Record {
            messages: Vec<ChatMessage>,
            tools: Vec<trajforge_chat::wire::WireTool>,
        }
        let record: Record = serde_json::from_str(line).ok()?;
        let system = record
            .messages
            .iter()
            .find(|m| m.role == Role::System)?
            .content
            .clone()?;
        let tools: Vec<ToolSpec> = record
            .tools
            .into_iter()
            .map(|t| ToolSpec {
                name: t.function.name,
                description: t.function.description.unwrap_or_default(),
                parameters: t
                    .function
                    .parameters
                    .unwrap_or_else(|| json!({"type": "object"})),
            })
            .collect();
        (!tools.is_empty()).then(|| Self {
            system_prompt: system,
            tools,
            root: TRAINED_ROOT.to_string(),
        })
    }
}

/// What a Claude Code call issued by this proxy stands for.
#[derive(Debug, Clone)]
enum Issued {
    /// It carries out this call of the model.
    Model(ModelCall),
    /// A Read that lets Claude Code edit the file; the model's call follows its result.
    Prep(ModelCall),
}

/// A call of the model and how its result is to be shown.
#[derive(Debug, Clone)]
struct ModelCall {
    name: String,
    arguments: String,
    kind: Kind,
    /// The model's path of the file or folder it works on.
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ViewFile,
    ViewDir,
    Create,
    Edit,
    Bash,
    Notice,
}

/// The state of `--tools trained`, shared by requests.
#[derive(Debug)]
pub(crate) struct Trained {
    tools: TrainedTools,
    issued: Mutex<(HashMap<String, Issued>, VecDeque<String>)>,
}

/// What to do with a request.
pub(crate) enum Plan {
    /// Ask the model this conversation, then translate its answer with the turn.
    Ask(Vec<ChatMessage>, Vec<ToolSpec>, Turn),
    /// Answer without the model: these Claude Code calls (a pending edit after its Read).
    Issue(Vec<(String, Value)>),
}

/// What the translation of the model's answer needs to know about the conversation.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    host_root: String,
    model_root: String,
    /// Host paths Claude Code has read in this conversation.
    read: HashSet<String>,
    /// What the conversation shows of each file (host path), after its edits.
    known: HashMap<String, String>,
}

/// The arguments of `str_replace_editor` that decide how a call is carried out.
#[derive(Debug, Default, Deserialize)]
struct EditorArgs {
    #[serde(default)]
    command: String,
    #[serde(default)]
    path: String,
}

/// Text without `<system-reminder>` blocks, trimmed.
fn strip_reminders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<system-reminder>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</system-reminder>") {
            Some(end) => rest = &rest[start + end + "</system-reminder>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// Claude Code's per-request attribution line, which changes every request.
pub(crate) fn strip_billing_line(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("x-anthropic-billing-header"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The working directory Claude Code states in its system prompt (`Primary working
/// directory: PATH` in current versions, `Working directory: PATH` in older ones).
/// Current versions put it in a `system`-role message inside `messages`.
fn working_directory(request: &MessagesRequest) -> Option<String> {
    let system: Vec<String> = request
        .system
        .iter()
        .chain(
            request
                .messages
                .iter()
                .filter(|m| m.role == InputRole::System)
                .map(|m| &m.content),
        )
        .map(|c| c.text("\n"))
        .collect();
    system.iter().flat_map(|s| s.lines()).find_map(|line| {
        let (_, rest) = line.split_once("orking directory:")?;
        let dir = rest.trim().trim_matches('`').trim_end_matches('/');
        dir.starts_with('/').then(|| dir.to_string())
    })
}

impl Turn {
    fn to_host(&self, path: &str) -> String {
        if let Some(rest) = path.strip_prefix(&self.model_root)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{}{rest}", self.host_root);
        }
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.host_root, path.trim_start_matches("./"))
        }
    }

    /// Text with the host root shown as the model's root.
    fn to_model(&self, text: &str) -> String {
        if self.host_root.is_empty() || self.host_root == "/" {
            return text.to_string();
        }
        text.replace(&self.host_root, &self.model_root)
    }

    fn is_dir(&self, host: &str, model: &str) -> bool {
        let p = std::path::Path::new(host);
        if p.exists() {
            return p.is_dir();
        }
        model.ends_with('/')
            || model.trim_end_matches('/') == self.model_root
            || !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains('.'))
    }
}

/// `    12→text` or `    12\ttext` (Claude Code's numbered lines): the number and the text.
fn numbered_line(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start();
    let digits = t.find(|c: char| !c.is_ascii_digit())?;
    let n = t[..digits].parse().ok()?;
    let rest = &t[digits..];
    let text = rest.strip_prefix('→').or_else(|| rest.strip_prefix('\t'))?;
    Some((n, text))
}

/// Claude Code's numbered lines in the editor's training format (`{:>6}\t{text}`).
fn renumber(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if let Some((n, t)) = numbered_line(line) {
            out.push_str(&format!("{n:>6}\t{t}\n"));
        }
    }
    out
}

/// The file text a full Read result shows.
fn read_content(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| numbered_line(l).map(|x| x.1))
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines.join("\n") + "\n")
}

fn tool_result_text(content: Option<&MessageContent>) -> String {
    content.map_or_else(String::new, |c| c.text("\n"))
}

impl Trained {
    pub(crate) fn new(tools: TrainedTools) -> Self {
        Self {
            tools,
            issued: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn remember(&self, id: &str, issued: Issued) {
        let Ok(mut guard) = self.issued.lock() else {
            return;
        };
        let (map, order) = &mut *guard;
        map.insert(id.to_string(), issued);
        order.push_back(id.to_string());
        while order.len() > REMEMBERED_CALLS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn recall(&self, id: &str) -> Option<Issued> {
        self.issued.lock().ok()?.0.get(id).cloned()
    }

    /// Rewrite a Claude Code request for the model, or answer a pending edit.
    pub(crate) fn plan(&self, request: &MessagesRequest) -> Plan {
        let host_root = working_directory(request).unwrap_or_else(|| {
            std::env::current_dir()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/".into())
        });
        let mut turn = Turn {
            host_root,
            model_root: self.tools.root.clone(),
            read: HashSet::new(),
            known: HashMap::new(),
        };
        let mut messages = vec![ChatMessage::system(self.tools.system_prompt.clone())];
        // Claude Code calls by id: (name, input), to read their results.
        let mut cc_calls: HashMap<String, (String, Value)> = HashMap::new();
        let mut pending: Vec<ModelCall> = Vec::new();
        for m in &request.messages {
            let blocks = match &m.content {
                MessageContent::Text(t) => vec![ContentBlock::text(t.clone())],
                MessageContent::Blocks(b) => b.clone(),
            };
            match m.role {
                InputRole::System => {}
                InputRole::Assistant => {
                    pending.clear();
                    let mut msg = ChatMessage::assistant(None, Vec::new());
                    let mut text = String::new();
                    for block in blocks {
                        match block {
                            ContentBlock::Text { text: t } => text.push_str(&t),
                            ContentBlock::Thinking { thinking, .. } => {
                                msg.reasoning
                                    .get_or_insert_with(String::new)
                                    .push_str(&thinking);
                            }
                            ContentBlock::ToolUse { id, name, input } => {
                                self.note_call(&mut turn, &name, &input);
                                cc_calls.insert(id.clone(), (name.clone(), input.clone()));
                                match self.recall(&id) {
                                    Some(Issued::Model(call)) => msg
                                        .tool_calls
                                        .push(ToolCall::new(id, call.name, call.arguments)),
                                    Some(Issued::Prep(_)) => {}
                                    None => {
                                        let (name, args) = unmap_call(&turn, &name, &input);
                                        msg.tool_calls.push(ToolCall::new(id, name, args));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    msg.content = (!text.is_empty()).then_some(text);
                    push_merged(&mut messages, msg);
                }
                InputRole::User => {
                    let mut text = Vec::new();
                    for block in blocks {
                        match block {
                            ContentBlock::ToolResult {
                                tool_use_id,
                                content,
                                is_error,
                            } => {
                                let raw = tool_result_text(content.as_ref());
                                let failed = is_error.unwrap_or(false);
                                if let Some((name, input)) = cc_calls.get(&tool_use_id) {
                                    self.note_result(&mut turn, name, input, &raw, failed);
                                }
                                let observation = match self.recall(&tool_use_id) {
                                    Some(Issued::Prep(call)) => {
                                        pending.push(call);
                                        continue;
                                    }
                                    Some(Issued::Model(call)) => {
                                        observation(&turn, &call, &raw, failed)
                                    }
                                    None => {
                                        let (name, input) =
                                            cc_calls.get(&tool_use_id).cloned().unwrap_or_default();
                                        let (mname, args) = unmap_call(&turn, &name, &input);
                                        let call = model_call(&turn, &mname, &args);
                                        observation(&turn, &call, &raw, failed)
                                    }
                                };
                                let mut result = ChatMessage::tool_result(
                                    &ToolCall::new(tool_use_id, "", ""),
                                    observation,
                                );
                                result.name = messages
                                    .iter()
                                    .flat_map(|m| &m.tool_calls)
                                    .find(|c| Some(&c.id) == result.tool_call_id.as_ref())
                                    .map(|c| c.name.clone());
                                messages.push(result);
                            }
                            other => {
                                let t =
                                    strip_reminders(&MessageContent::Blocks(vec![other]).text(""));
                                if !t.is_empty() {
                                    text.push(t);
                                }
                            }
                        }
                    }
                    if !text.is_empty() {
                        messages.push(ChatMessage::user(turn.to_model(&text.join("\n"))));
                    }
                }
            }
        }
        if !pending.is_empty() {
            let calls = pending
                .iter()
                .flat_map(|call| self.translate(&turn, call, true))
                .collect();
            return Plan::Issue(calls);
        }
        Plan::Ask(messages, self.tools.tools.clone(), turn)
    }

    /// What a Claude Code call tells about the files (read, written).
    fn note_call(&self, turn: &mut Turn, name: &str, input: &Value) {
        let path = input["file_path"].as_str().unwrap_or("").to_string();
        match name {
            "Write" => {
                if let Some(content) = input["content"].as_str() {
                    turn.known.insert(path.clone(), content.to_string());
                }
                turn.read.insert(path);
            }
            "Edit" => {
                if let (Some(old), Some(new), Some(text)) = (
                    input["old_string"].as_str(),
                    input["new_string"].as_str(),
                    turn.known.get_mut(&path),
                ) {
                    *text = text.replacen(old, new, 1);
                }
            }
            _ => {}
        }
    }

    /// What a Claude Code result tells about the files.
    fn note_result(&self, turn: &mut Turn, name: &str, input: &Value, raw: &str, failed: bool) {
        if name == "Read" && !failed {
            let path = input["file_path"].as_str().unwrap_or("").to_string();
            let whole = input.get("offset").is_none() && input.get("limit").is_none();
            if whole && let Some(content) = read_content(&strip_reminders(raw)) {
                turn.known.insert(path.clone(), content);
            }
            turn.read.insert(path);
        }
    }

    /// The Claude Code calls carrying out `call`; `ready` when the file was just read.
    fn translate(&self, turn: &Turn, call: &ModelCall, ready: bool) -> Vec<(String, Value)> {
        let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
        let issue = |issued: Issued, name: &str, input: Value| {
            let id = new_tool_id();
            self.remember(&id, issued);
            (id, json!({"name": name, "input": input}))
        };
        match call.kind {
            Kind::Bash => {
                let command = args["command"].as_str().unwrap_or("");
                let command = command.replace(&turn.model_root, &turn.host_root);
                vec![issue(
                    Issued::Model(call.clone()),
                    "Bash",
                    json!({"command": command, "description": "Run the model's command"}),
                )]
            }
            Kind::Notice => {
                let text = format!(
                    "{} is not available through Claude Code; use the other commands.",
                    call.name
                );
                vec![issue(
                    Issued::Model(call.clone()),
                    "Bash",
                    json!({"command": format!("echo {}", shell_quote(&text)), "description": "Tell the model"}),
                )]
            }
            Kind::ViewDir => {
                let host = turn.to_host(&call.path);
                let command = format!(
                    "find {} -mindepth 1 -maxdepth 2 -not -path '*/.*' \\( -type d -printf '%p/\\n' -o -printf '%p\\n' \\) | sort",
                    shell_quote(host.trim_end_matches('/'))
                );
                vec![issue(
                    Issued::Model(call.clone()),
                    "Bash",
                    json!({"command": command, "description": "List the folder"}),
                )]
            }
            Kind::ViewFile => {
                let mut input = json!({"file_path": turn.to_host(&call.path)});
                if let Some([first, last]) = args["view_range"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_i64).collect::<Vec<_>>())
                    .as_deref()
                {
                    input["offset"] = json!(first);
                    if *last >= *first {
                        input["limit"] = json!(last - first + 1);
                    }
                }
                vec![issue(Issued::Model(call.clone()), "Read", input)]
            }
            Kind::Create => vec![issue(
                Issued::Model(call.clone()),
                "Write",
                json!({"file_path": turn.to_host(&call.path),
                       "content": args["file_text"].as_str().unwrap_or("")}),
            )],
            Kind::Edit => {
                let host = turn.to_host(&call.path);
                let command = args["command"].as_str().unwrap_or("");
                let needs_text = command == "insert" && !turn.known.contains_key(&host);
                if !ready && (!turn.read.contains(&host) || needs_text) {
                    return vec![issue(
                        Issued::Prep(call.clone()),
                        "Read",
                        json!({"file_path": host}),
                    )];
                }
                let (old, new) = if command == "insert" {
                    let text = turn.known.get(&host).map_or("", String::as_str);
                    insertion(
                        text,
                        args["insert_line"].as_i64().unwrap_or(0),
                        args["new_str"].as_str().unwrap_or(""),
                    )
                } else {
                    (
                        args["old_str"].as_str().unwrap_or("").to_string(),
                        args["new_str"].as_str().unwrap_or("").to_string(),
                    )
                };
                vec![issue(
                    Issued::Model(call.clone()),
                    "Edit",
                    json!({"file_path": host, "old_string": old, "new_string": new}),
                )]
            }
        }
    }

    /// The model's calls as Claude Code calls, and whether the model submitted.
    pub(crate) fn answer(&self, turn: &Turn, calls: &[ToolCall]) -> (Vec<(String, Value)>, bool) {
        let mut out = Vec::new();
        let mut submitted = false;
        for call in calls {
            if call.name == "submit" {
                submitted = true;
                continue;
            }
            let model = model_call(turn, &call.name, &call.arguments);
            out.extend(self.translate(turn, &model, false));
        }
        (out, submitted)
    }
}

/// A fresh Claude Code tool id.
fn new_tool_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "toolu_tf{:x}{:06x}",
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Edit that inserts `new` after line `line` of `text`: a unique anchor and its
/// replacement.
fn insertion(text: &str, line: i64, new: &str) -> (String, String) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut new = new.to_string();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    let at = (line.max(0) as usize).min(lines.len());
    if at == 0 {
        // Before the first line: the anchor is the file's start, grown until unique.
        let mut end = 1.min(lines.len());
        while end < lines.len() && text.matches(&lines[..end].concat()).count() > 1 {
            end += 1;
        }
        let anchor = lines[..end].concat();
        return (anchor.clone(), format!("{new}{anchor}"));
    }
    let mut start = at - 1;
    while start > 0 && text.matches(&lines[start..at].concat()).count() > 1 {
        start -= 1;
    }
    let mut anchor = lines[start..at].concat();
    if !anchor.ends_with('\n') {
        anchor.push('\n');
        return (
            anchor.trim_end().to_string(),
            format!("{anchor}{}", new.trim_end()),
        );
    }
    (anchor.clone(), format!("{anchor}{new}"))
}

/// A call of the model, classified.
fn model_call(turn: &Turn, name: &str, arguments: &str) -> ModelCall {
    let (kind, path) = if name == "bash" {
        (Kind::Bash, String::new())
    } else if name == "str_replace_editor" {
        let args: EditorArgs = serde_json::from_str(arguments).unwrap_or_default();
        let kind = match args.command.as_str() {
            "view" if turn.is_dir(&turn.to_host(&args.path), &args.path) => Kind::ViewDir,
            "view" => Kind::ViewFile,
            "create" => Kind::Create,
            "str_replace" | "insert" => Kind::Edit,
            _ => Kind::Notice,
        };
        (kind, args.path)
    } else {
        (Kind::Notice, String::new())
    };
    ModelCall {
        name: name.to_string(),
        arguments: arguments.to_string(),
        kind,
        path,
    }
}

/// A Claude Code call as the trained call doing the same (for calls this proxy did not issue
/// or has forgotten).
fn unmap_call(turn: &Turn, name: &str, input: &Value) -> (String, String) {
    let path = |key: &str| turn.to_model(input[key].as_str().unwrap_or(""));
    let editor = |args: Value| ("str_replace_editor".to_string(), args.to_string());
    match name {
        "Bash" => (
            "bash".into(),
            json!({"command": turn.to_model(input["command"].as_str().unwrap_or(""))}).to_string(),
        ),
        "Read" => editor(json!({"command": "view", "path": path("file_path")})),
        "Write" => editor(json!({"command": "create", "path": path("file_path"),
                                 "file_text": input["content"]})),
        "Edit" => editor(json!({"command": "str_replace", "path": path("file_path"),
                                "old_str": input["old_string"], "new_str": input["new_string"]})),
        other => (other.to_string(), input.to_string()),
    }
}

/// A result in the observation format of training.
fn observation(turn: &Turn, call: &ModelCall, raw: &str, failed: bool) -> String {
    let text = strip_reminders(raw);
    let text = text
        .trim_start_matches("<tool_use_error>")
        .trim_end_matches("</tool_use_error>")
        .to_string();
    let path = &call.path;
    if failed {
        if call.kind == Kind::Bash {
            // Claude Code reports a failing command as "Exit code N" and its output.
            if let Some(rest) = text.strip_prefix("Exit code ") {
                let (code, output) = rest.split_once('\n').unwrap_or((rest, ""));
                let output = if output.trim().is_empty() {
                    "(no output)"
                } else {
                    output
                };
                return format!("{}\n[exit code {}]", turn.to_model(output), code.trim());
            }
        }
        return turn.to_model(&text);
    }
    match call.kind {
        Kind::Bash | Kind::Notice => {
            if text.trim().is_empty() {
                "(no output)".into()
            } else {
                turn.to_model(&text)
            }
        }
        Kind::ViewDir => {
            let mut out = format!(
                "Files and folders in {}, up to 2 levels deep, hidden items left out:\n",
                path.trim_end_matches('/')
            );
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                out.push_str(&turn.to_model(line));
                out.push('\n');
            }
            out
        }
        Kind::ViewFile => format!("Here is {path} with line numbers:\n{}", renumber(&text)),
        Kind::Create => format!("File created successfully at: {path}"),
        Kind::Edit => {
            // Claude Code's answer may carry no numbered lines: the snippet then comes from
            // the file as the conversation knows it.
            let mut lines = renumber(&text);
            if lines.is_empty() {
                let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                let new = args["new_str"].as_str().unwrap_or("");
                if let Some(file) = turn.known.get(&turn.to_host(path)) {
                    lines = snippet(file, new);
                }
            }
            format!(
                "The file {path} has been edited. Here is a snippet of the result:\n{lines}Review the change and make sure it is what you intended."
            )
        }
    }
}

/// The lines around the first occurrence of `new` in `file` (4 of context each side),
/// numbered as the editor numbers them.
fn snippet(file: &str, new: &str) -> String {
    let Some(at) = file.find(new) else {
        return String::new();
    };
    let lines: Vec<&str> = file.lines().collect();
    let first = file[..at].matches('\n').count() + 1;
    let count = new.matches('\n').count() + 1;
    let start = first.saturating_sub(4).max(1);
    let end = (first + count + 3).min(lines.len());
    (start..=end)
        .filter_map(|n| lines.get(n - 1).map(|l| format!("{n:>6}\t{l}\n")))
        .collect()
}

/// Append `msg`, merged into the previous message when both are the assistant's.
fn push_merged(messages: &mut Vec<ChatMessage>, msg: ChatMessage) {
    if msg.content.is_none() && msg.tool_calls.is_empty() && msg.reasoning.is_none() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last.role == Role::Assistant
        && last.tool_calls.is_empty()
    {
        if let Some(text) = msg.content {
            let joined = match last.content.take() {
                Some(prev) => format!("{prev}\n{text}"),
                None => text,
            };
            last.content = Some(joined);
        }
        last.tool_calls = msg.tool_calls;
        return;
    }
    messages.push(msg);
}

/// The model's streamed answer with its calls replaced by Claude Code's: text and reasoning
/// pass as they come; calls are held until complete, then translated.
pub(crate) fn translate_stream(
    mut rx: mpsc::Receiver<ChunkItem>,
    trained: Arc<Trained>,
    turn: Turn,
) -> mpsc::Receiver<ChunkItem> {
    let (tx, out) = mpsc::channel::<ChunkItem>(64);
    tokio::spawn(async move {
        let mut calls: BTreeMap<usize, (String, String, String)> = BTreeMap::new();
        let mut template: Option<ChatChunk> = None;
        while let Some(next) = crate::server::unless_gone(&tx, rx.recv()).await {
            let Some(item) = next else { break };
            let mut chunk = match item {
                Ok(c) => c,
                Err(f) => {
                    let _ = tx.send(Err(f)).await;
                    return;
                }
            };
            for choice in &mut chunk.choices {
                for (i, call) in choice.delta.tool_calls.drain(..).enumerate() {
                    let entry = calls.entry(call.index.unwrap_or(i)).or_default();
                    if let Some(id) = call.id {
                        entry.0 = id;
                    }
                    if let Some(f) = call.function {
                        if let Some(name) = f.name {
                            entry.1.push_str(&name);
                        }
                        match f.arguments {
                            Some(Value::String(a)) => entry.2.push_str(&a),
                            Some(Value::Null) | None => {}
                            Some(other) => entry.2.push_str(&other.to_string()),
                        }
                    }
                }
                // The finish reason follows the translated calls.
                choice.finish_reason = None;
            }
            template.get_or_insert_with(|| chunk.clone());
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        let model_calls: Vec<ToolCall> = calls
            .into_values()
            .map(|(id, name, args)| ToolCall::new(id, name, args))
            .collect();
        let (issued, _submitted) = trained.answer(&turn, &model_calls);
        for chunk in issued_chunks(template, &issued) {
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    out
}

/// Chunks carrying Claude Code calls and the finish reason (`tool_calls`, or `stop` when
/// there are none).
pub(crate) fn issued_chunks(
    template: Option<ChatChunk>,
    issued: &[(String, Value)],
) -> Vec<ChatChunk> {
    let (id, model, created) =
        template.map_or_else(Default::default, |t| (t.id, t.model, t.created));
    let chunk =
        |delta: Delta, finish: Option<&str>| ChatChunk::single(&id, &model, created, delta, finish);
    let tool_calls = issued
        .iter()
        .enumerate()
        .map(|(i, (id, call))| WireToolCall {
            index: Some(i),
            id: Some(id.clone()),
            kind: Some("function".into()),
            function: Some(WireFunction {
                name: call["name"].as_str().map(str::to_string),
                arguments: Some(Value::String(call["input"].to_string())),
            }),
        })
        .collect();
    let finish = if issued.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    vec![
        chunk(
            Delta {
                tool_calls,
                ..Delta::default()
            },
            None,
        ),
        chunk(Delta::default(), Some(finish)),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tools() -> TrainedTools {
        TrainedTools {
            system_prompt: "Trained prompt at /workspace.".into(),
            tools: vec![ToolSpec {
                name: "bash".into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            }],
            root: TRAINED_ROOT.into(),
        }
    }

    fn request(messages: Value) -> MessagesRequest {
        serde_json::from_value(json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=abc"},
                       {"type": "text", "text": "You are Claude Code.\n# Environment\n - Primary working directory: /tmp/nowhere-proj\n - Is a git repository: true"}],
            "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
            "messages": messages,
        }))
        .unwrap()
    }

    #[test]
    fn the_model_sees_its_training_format_and_claude_code_gets_its_tools() {
        let t = Trained::new(tools());
        let first = request(json!([{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "Fix /tmp/nowhere-proj/a.py"}]}]));
        let Plan::Ask(messages, offered, turn) = t.plan(&first) else {
            panic!("expected a model call")
        };
        assert_eq!(
            messages[0].content.as_deref(),
            Some("Trained prompt at /workspace.")
        );
        assert_eq!(messages[1].content.as_deref(), Some("Fix /workspace/a.py"));
        assert_eq!(offered[0].name, "bash");
        // The model edits a file it has not viewed: a Read comes first.
        let edit = ToolCall::new(
            "c1",
            "str_replace_editor",
            r#"{"command":"str_replace","path":"/workspace/a.py","old_str":"x = 1","new_str":"x = 2"}"#,
        );
        let (calls, submitted) = t.answer(&turn, std::slice::from_ref(&edit));
        assert!(!submitted);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].1,
            json!({"name": "Read", "input": {"file_path": "/tmp/nowhere-proj/a.py"}})
        );
        let prep_id = calls[0].0.clone();
        // Its result comes back: the edit is issued without asking the model.
        let second = request(json!([
            {"role": "user", "content": "Fix /tmp/nowhere-proj/a.py"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": prep_id, "name": "Read",
                "input": {"file_path": "/tmp/nowhere-proj/a.py"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": prep_id,
                "content": "     1→x = 1\n     2→print(x)\n"}]}]));
        let Plan::Issue(issued) = t.plan(&second) else {
            panic!("expected the pending edit")
        };
        assert_eq!(issued[0].1["name"], "Edit");
        assert_eq!(issued[0].1["input"]["old_string"], "x = 1");
        let edit_id = issued[0].0.clone();
        // The edit's result reaches the model as its own call with a training observation,
        // and the Read it never asked for is not shown.
        let third = request(json!([
            {"role": "user", "content": "Fix /tmp/nowhere-proj/a.py"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": prep_id, "name": "Read",
                "input": {"file_path": "/tmp/nowhere-proj/a.py"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": prep_id,
                "content": "     1→x = 1\n     2→print(x)\n"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": edit_id, "name": "Edit",
                "input": issued[0].1["input"]}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": edit_id,
                "content": "The file /tmp/nowhere-proj/a.py has been updated. Here's the result of running `cat -n` on a snippet of the edited file:\n     1→x = 2\n     2→print(x)"}]}]));
        let Plan::Ask(messages, _, turn) = t.plan(&third) else {
            panic!("expected a model call")
        };
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        assert_eq!(messages[2].tool_calls[0].name, "str_replace_editor");
        assert_eq!(messages[2].tool_calls[0].arguments, edit.arguments);
        assert_eq!(
            messages[3].content.as_deref(),
            Some(
                "The file /workspace/a.py has been edited. Here is a snippet of the result:\n     1\tx = 2\n     2\tprint(x)\nReview the change and make sure it is what you intended."
            )
        );
        assert_eq!(turn.known["/tmp/nowhere-proj/a.py"], "x = 2\nprint(x)\n");
        // An insert into the known file is an Edit with a unique anchor.
        let insert = ToolCall::new(
            "c2",
            "str_replace_editor",
            r#"{"command":"insert","path":"/workspace/a.py","insert_line":1,"new_str":"y = 3"}"#,
        );
        let (calls, _) = t.answer(&turn, &[insert, ToolCall::new("c3", "submit", "{}")]);
        assert_eq!(calls[0].1["input"]["old_string"], "x = 2\n");
        assert_eq!(calls[0].1["input"]["new_string"], "x = 2\ny = 3\n");
        let (calls, submitted) = t.answer(&turn, &[ToolCall::new("c3", "submit", "{}")]);
        assert!(calls.is_empty() && submitted);
    }

    #[test]
    fn the_trained_set_is_read_from_an_exported_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let record = json!({
            "messages": [{"role": "system", "content": "Work in /workspace."},
                         {"role": "user", "content": "task"}],
            "tools": [{"type": "function", "function": {"name": "bash", "description": "Run.",
                       "parameters": {"type": "object"}}}]});
        std::fs::write(
            dir.path().join("train.jsonl"),
            format!("not json\n{record}\n"),
        )
        .unwrap();
        let t = TrainedTools::from_dataset(dir.path()).unwrap();
        assert_eq!(t.system_prompt, "Work in /workspace.");
        assert_eq!(t.tools[0].name, "bash");
        assert_eq!(t.tools[0].description, "Run.");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            TrainedTools::from_dataset(empty.path()),
            Err(TrainedError::NoRecord(_))
        ));
    }

    #[test]
    fn reminders_and_billing_lines_are_removed() {
        assert_eq!(
            strip_reminders("a<system-reminder>x</system-reminder> b"),
            "a b"
        );
        assert_eq!(
            strip_billing_line("x-anthropic-billing-header: cc=1\nYou are"),
            "You are"
        );
        assert_eq!(numbered_line("    12→  x"), Some((12, "  x")));
        assert_eq!(numbered_line("     3\ty"), Some((3, "y")));
        assert_eq!(insertion("a\nb\n", 0, "z"), ("a\n".into(), "z\na\n".into()));
    }
}
