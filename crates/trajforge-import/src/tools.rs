//! The tool schemas an import attaches when its source records none, so an exported sample
//! always shows the model the tools it calls.
//!
//! - mini-swe-agent (every version and form): `bash` (`command`).
//! - SWE-agent 1.x default tools, and SERA (which runs them): `bash` (`command`),
//!   `str_replace_editor` (`command`, `path`, `file_text`, `old_str`, `new_str`,
//!   `insert_line`, `view_range`) and `submit`.
//! - SWE-agent 0.x commands (text actions) and 1.x "windowed" tools: `open`, `goto`,
//!   `scroll_up`, `scroll_down`, `create`, `search_dir`, `search_file`, `find_file`, `edit`
//!   (a line range and its replacement, or in the search/replace bundle `search`, `replace`,
//!   `replace-all`), `submit`, and `bash` for any other command line.
//!
//! A tool the record calls that none of these describes gets a schema listing the argument
//! names its calls use (typed as the calls typed them), so no call is left unexplained.

use serde_json::{Map, Value, json};
use trajforge_teacher::{ToolCall, ToolSpec};

/// The tool set a source used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolSet {
    /// mini-swe-agent's single `bash` tool.
    Mini,
    /// SWE-agent 1.x's default tools (bash, str_replace_editor, submit); SERA's too.
    SweAgentDefault,
    /// SWE-agent's command set (0.x text actions, 1.x windowed tools).
    SweAgentCommands,
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters,
    }
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn bash() -> ToolSpec {
    spec(
        "bash",
        "Run a bash command in the repository and return its output.",
        object(
            json!({"command": {"type": "string", "description": "The command line to run."}}),
            &["command"],
        ),
    )
}

fn submit() -> ToolSpec {
    spec(
        "submit",
        "Submit the current changes as the solution and end the episode.",
        object(json!({}), &[]),
    )
}

fn str_replace_editor() -> ToolSpec {
    spec(
        "str_replace_editor",
        "View, create and edit files: `view` a file or folder, `create` a file, \
         `str_replace` a unique old string with a new one, `insert` text after a line, \
         `undo_edit` the last edit of a file.",
        object(
            json!({
                "command": {"type": "string",
                            "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                            "description": "The operation."},
                "path": {"type": "string", "description": "Absolute path of the file or folder."},
                "file_text": {"type": "string", "description": "Content of the file to create."},
                "old_str": {"type": "string", "description": "The exact text to replace."},
                "new_str": {"type": "string", "description": "The replacement, or the text to insert."},
                "insert_line": {"type": "integer", "description": "Insert after this line."},
                "view_range": {"type": "array", "items": {"type": "integer"},
                               "description": "First and last line to view."}
            }),
            &["command", "path"],
        ),
    )
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn integer(description: &str) -> Value {
    json!({"type": "integer", "description": description})
}

/// SWE-agent's file-viewer and search commands (the 0.x command set and the 1.x windowed tools).
fn commands(line_edit: bool) -> Vec<ToolSpec> {
    let edit = if line_edit {
        spec(
            "edit",
            "Replace lines start_line to end_line (inclusive) of the open file with the given text.",
            object(
                json!({"start_line": integer("First line to replace."),
                       "end_line": integer("Last line to replace."),
                       "replacement_text": string("The new text of those lines.")}),
                &["start_line", "end_line", "replacement_text"],
            ),
        )
    } else {
        spec(
            "edit",
            "Replace the first occurrence (or every one) of a text in the open file.",
            object(
                json!({"search": string("The text to find."),
                       "replace": string("Its replacement."),
                       "replace-all": {"type": "boolean", "description": "Replace every occurrence."}}),
                &["search", "replace"],
            ),
        )
    };
    vec![
        spec(
            "open",
            "Open a file in the viewer, optionally at a line.",
            object(
                json!({"path": string("The file to open."),
                       "line_number": integer("The line to show.")}),
                &["path"],
            ),
        ),
        spec(
            "goto",
            "Move the viewer to a line of the open file.",
            object(
                json!({"line_number": integer("The line to show.")}),
                &["line_number"],
            ),
        ),
        spec(
            "scroll_up",
            "Scroll the viewer up one window.",
            object(json!({}), &[]),
        ),
        spec(
            "scroll_down",
            "Scroll the viewer down one window.",
            object(json!({}), &[]),
        ),
        spec(
            "create",
            "Create a new empty file and open it.",
            object(
                json!({"filename": string("The file to create.")}),
                &["filename"],
            ),
        ),
        spec(
            "search_dir",
            "Search for a term in the files of a folder (default: the current one).",
            object(
                json!({"search_term": string("The text to find."),
                       "dir": string("The folder to search.")}),
                &["search_term"],
            ),
        ),
        spec(
            "search_file",
            "Search for a term in a file (default: the open one).",
            object(
                json!({"search_term": string("The text to find."),
                       "file": string("The file to search.")}),
                &["search_term"],
            ),
        ),
        spec(
            "find_file",
            "Find files by name in a folder (default: the current one).",
            object(
                json!({"file_name": string("The name (or glob) to find."),
                       "dir": string("The folder to search.")}),
                &["file_name"],
            ),
        ),
        edit,
        submit(),
        bash(),
    ]
}

/// The schemas of `set`, then one for each other tool the `calls` use.
pub(crate) fn attach<'a>(set: ToolSet, calls: impl Iterator<Item = &'a ToolCall>) -> Vec<ToolSpec> {
    let calls: Vec<&ToolCall> = calls.collect();
    let mut specs = match set {
        ToolSet::Mini => vec![bash()],
        ToolSet::SweAgentDefault => vec![bash(), str_replace_editor(), submit()],
        ToolSet::SweAgentCommands => {
            // The search/replace `edit` bundle names its arguments `search` and `replace`.
            let replace = calls.iter().any(|c| {
                c.name == "edit"
                    && c.arguments_json()
                        .is_ok_and(|a| a.get("search").is_some() || a.get("replace").is_some())
            });
            commands(!replace)
        }
    };
    for call in calls {
        if call.name.is_empty() {
            continue;
        }
        match specs.iter_mut().position(|s| s.name == call.name) {
            Some(_) => {}
            None => specs.push(inferred(&call.name)),
        }
        // Arguments an attached schema does not list are added to it, typed as given.
        if let (Some(s), Ok(Value::Object(args))) = (
            specs.iter_mut().find(|s| s.name == call.name),
            call.arguments_json(),
        ) {
            add_properties(s, &args);
        }
    }
    specs
}

fn inferred(name: &str) -> ToolSpec {
    spec(
        name,
        "(schema inferred from the recorded calls)",
        object(json!({}), &[]),
    )
}

fn add_properties(spec: &mut ToolSpec, args: &Map<String, Value>) {
    let Some(Value::Object(props)) = spec.parameters.get_mut("properties") else {
        return;
    };
    for (k, v) in args {
        if !props.contains_key(k) {
            let ty = match v {
                Value::String(_) => "string",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
            };
            props.insert(k.clone(), json!({"type": ty}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_called_tool_gets_a_schema_with_its_arguments() {
        let calls = [
            ToolCall::new("a", "bash", r#"{"command": "ls"}"#),
            ToolCall::new(
                "b",
                "decompile",
                r#"{"binary_path": "x", "function": "main"}"#,
            ),
        ];
        let specs = attach(ToolSet::Mini, calls.iter());
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bash", "decompile"]);
        assert_eq!(
            specs[1].parameters["properties"]["binary_path"]["type"],
            "string"
        );
    }

    #[test]
    fn the_edit_schema_follows_the_bundle_the_calls_used() {
        let line = [ToolCall::new(
            "a",
            "edit",
            r#"{"start_line": 1, "end_line": 2, "replacement_text": "x"}"#,
        )];
        let specs = attach(ToolSet::SweAgentCommands, line.iter());
        let edit = specs.iter().find(|s| s.name == "edit").expect("edit");
        assert!(edit.parameters["properties"]["start_line"].is_object());
        let replace = [ToolCall::new(
            "a",
            "edit",
            r#"{"search": "a", "replace": "b"}"#,
        )];
        let specs = attach(ToolSet::SweAgentCommands, replace.iter());
        let edit = specs.iter().find(|s| s.name == "edit").expect("edit");
        assert!(edit.parameters["properties"]["start_line"].is_null());
        assert!(edit.parameters["properties"]["search"].is_object());
    }
}
