//! Text actions as tool calls: SWE-agent's command lines (0.x, and the `action` its 1.x
//! trajectory steps record) and mini-swe-agent's fenced command blocks.

use serde_json::Value;

/// A tool name and its arguments, in the order the tool lists them.
pub(crate) type Call = (String, Args);

/// Named arguments in order (a JSON object keeps them sorted).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Args(pub Vec<(String, Value)>);

impl Args {
    fn insert(&mut self, key: &str, value: Value) {
        self.0.push((key.to_string(), value));
    }

    /// The arguments as a JSON object text, keys in their order.
    pub(crate) fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// A SWE-agent action line as the tool call it stands for: its file-viewer and search
/// commands with their arguments named as the tools name them, `submit`, and `bash` for
/// anything else (the whole action as the command).
pub(crate) fn swe_agent(action: &str) -> Call {
    let action = action.trim_matches(|c: char| c == '\n' || c == '\r' || c == ' ');
    let (first_line, rest) = action.split_once('\n').unwrap_or((action, ""));
    let words = shell_words(first_line);
    let word = |i: usize| words.get(i).cloned();
    let mut args = Args::default();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            args.insert(k, Value::String(v));
        }
    };
    let n = words.len();
    let name = match (words.first().map(String::as_str), n) {
        (Some("submit"), 1) => "submit",
        // SWE-agent's CTF mode submits the flag found.
        (Some("submit"), 2) if rest.is_empty() => {
            put("flag", word(1));
            "submit"
        }
        (Some("scroll_up"), 1) => "scroll_up",
        (Some("scroll_down"), 1) => "scroll_down",
        (Some("goto"), 2) if rest.is_empty() => match word(1).and_then(|w| w.parse::<u64>().ok()) {
            Some(line) => {
                args.insert("line_number", line.into());
                "goto"
            }
            None => "bash",
        },
        (Some("open"), 2 | 3) if rest.is_empty() => {
            put("path", word(1));
            if let Some(line) = word(2) {
                match line.parse::<u64>() {
                    Ok(l) => {
                        args.insert("line_number", l.into());
                    }
                    Err(_) => put("line_number", Some(line)),
                }
            }
            "open"
        }
        (Some("create"), 2) if rest.is_empty() => {
            put("filename", word(1));
            "create"
        }
        (Some(cmd @ ("search_dir" | "search_file" | "find_file")), 2 | 3) if rest.is_empty() => {
            let (first, second) = match cmd {
                "search_dir" => ("search_term", "dir"),
                "search_file" => ("search_term", "file"),
                _ => ("file_name", "dir"),
            };
            put(first, word(1));
            put(second, word(2));
            cmd
        }
        (Some("str_replace_editor"), _) => match str_replace_editor(&shell_words(action)) {
            Some(a) => {
                args = a;
                "str_replace_editor"
            }
            None => "bash",
        },
        (Some("edit"), _) => match edit(&words, rest) {
            Some(a) => {
                args = a;
                "edit"
            }
            None => "bash",
        },
        _ => "bash",
    };
    if name == "bash" {
        args = Args::default();
        args.insert("command", Value::String(action.to_string()));
    }
    (name.to_string(), args)
}

/// `edit N:M` followed by the replacement and `end_of_edit`, or the search/replace form
/// `edit 'search' 'replace' [True|False]`.
fn edit(words: &[String], rest: &str) -> Option<Args> {
    let mut args = Args::default();
    if words.len() == 2
        && let Some((a, b)) = words[1].split_once(':')
        && let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>())
    {
        let body = rest.strip_suffix("end_of_edit")?;
        let body = body.strip_suffix('\n').unwrap_or(body);
        args.insert("start_line", start.into());
        args.insert("end_line", end.into());
        args.insert("replacement_text", Value::String(body.to_string()));
        return Some(args);
    }
    if rest.is_empty() && (3..=4).contains(&words.len()) {
        args.insert("search", Value::String(words[1].clone()));
        args.insert("replace", Value::String(words[2].clone()));
        if let Some(all) = words.get(3) {
            args.insert("replace-all", Value::Bool(all == "True" || all == "true"));
        }
        return Some(args);
    }
    None
}

/// SWE-agent 1.x's editor as its action line writes it:
/// `str_replace_editor COMMAND PATH [--file_text T] [--old_str O] [--new_str N]
/// [--insert_line L] [--view_range A B]`.
fn str_replace_editor(words: &[String]) -> Option<Args> {
    let mut args = Args::default();
    let [_, command, path, flags @ ..] = words else {
        return None;
    };
    args.insert("command", Value::String(command.clone()));
    args.insert("path", Value::String(path.clone()));
    let mut rest = flags.iter();
    while let Some(flag) = rest.next() {
        let key = flag.strip_prefix("--")?;
        match key {
            "view_range" => {
                let a: i64 = rest.next()?.parse().ok()?;
                let b: i64 = rest.next()?.parse().ok()?;
                args.insert(key, Value::Array(vec![a.into(), b.into()]));
            }
            "insert_line" => args.insert(key, rest.next()?.parse::<i64>().ok()?.into()),
            "file_text" | "old_str" | "new_str" => {
                args.insert(key, Value::String(rest.next()?.clone()));
            }
            _ => return None,
        }
    }
    Some(args)
}

/// Words of a command line as a POSIX shell splits them (quotes and backslashes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => cur.push('\\'),
                        },
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The languages of the fenced blocks mini-swe-agent runs: `bash` (1.x and the 2.x
/// backticks configs) and `mswea_bash_command` (2.x text-based default).
const MINI_FENCES: &[&str] = &["bash", "mswea_bash_command"];

/// The one command of a mini-swe-agent text action and the text around it, or `None` when
/// the text holds no such block or several (mini-swe-agent runs exactly one).
pub(crate) fn mini_block(text: &str) -> Option<(String, String)> {
    let mut found: Option<(usize, usize, String)> = None;
    let mut count = 0;
    let mut offset = 0;
    while let Some(start) = text[offset..].find("```").map(|i| i + offset) {
        let after = &text[start + 3..];
        let line_end = after.find('\n')?;
        let lang = after[..line_end].trim();
        let body_start = start + 3 + line_end + 1;
        let Some(close) = text[body_start..].find("```").map(|i| i + body_start) else {
            break;
        };
        if MINI_FENCES.contains(&lang) {
            count += 1;
            found = Some((start, close + 3, text[body_start..close].trim().to_string()));
        }
        offset = close + 3;
    }
    let (start, end, command) = found.filter(|_| count == 1)?;
    let around = format!("{}{}", text[..start].trim_end(), text[end..].trim_end());
    Some((command, around.trim().to_string()))
}

/// Whether a command is mini-swe-agent's submit command (its first line echoes the marker:
/// `MINI_SWE_AGENT_FINAL_OUTPUT` in 1.x, `COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT` in later ones).
pub(crate) fn mini_submits(command: &str) -> bool {
    let first = command.trim_start();
    [
        "MINI_SWE_AGENT_FINAL_OUTPUT",
        "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
    ]
    .iter()
    .any(|m| first.starts_with(&format!("echo {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(action: &str) -> (String, Value) {
        let (n, a) = swe_agent(action);
        (n, serde_json::from_str(&a.to_json()).expect("JSON"))
    }

    #[test]
    fn arguments_keep_the_order_of_the_command_line() {
        let (_, a) = swe_agent("edit 3:4\nx\nend_of_edit");
        assert_eq!(
            a.to_json(),
            r#"{"start_line":3,"end_line":4,"replacement_text":"x"}"#
        );
    }

    #[test]
    fn swe_agent_commands_become_their_tools() {
        // (command line, tool, arguments)
        let cases = [
            (
                "edit 15:15\n    distance = abs(a - b)\nend_of_edit\n",
                "edit",
                json!({"start_line": 15, "end_line": 15, "replacement_text": "    distance = abs(a - b)"}),
            ),
            (
                "open \"tests/missing_colon.py\"",
                "open",
                json!({"path": "tests/missing_colon.py"}),
            ),
            (
                "open main.py 40",
                "open",
                json!({"path": "main.py", "line_number": 40}),
            ),
            (
                "search_dir \"def foo\" src",
                "search_dir",
                json!({"search_term": "def foo", "dir": "src"}),
            ),
            (
                "find_file missing_colon.py",
                "find_file",
                json!({"file_name": "missing_colon.py"}),
            ),
            ("submit\n", "submit", json!({})),
            (
                "submit 'flag{d31}'\n",
                "submit",
                json!({"flag": "flag{d31}"}),
            ),
            (
                "edit 'a: float' 'a: float:'",
                "edit",
                json!({"search": "a: float", "replace": "a: float:"}),
            ),
            (
                "python main.py\n",
                "bash",
                json!({"command": "python main.py"}),
            ),
            (
                "str_replace_editor view /testbed/a.py --view_range 3 9",
                "str_replace_editor",
                json!({"command": "view", "path": "/testbed/a.py", "view_range": [3, 9]}),
            ),
            (
                "str_replace_editor str_replace /t/a.py --old_str 'x = 1\ny = 2' --new_str 'x = 3'",
                "str_replace_editor",
                json!({"command": "str_replace", "path": "/t/a.py", "old_str": "x = 1\ny = 2", "new_str": "x = 3"}),
            ),
        ];
        for (line, tool, args) in cases {
            assert_eq!(call(line), (tool.to_string(), args), "{line:?}");
        }
        assert_eq!(call("str_replace_editor view").0, "bash");
        // An edit without its terminator is not an edit the tool would run.
        assert_eq!(call("edit 1:2\nx").0, "bash");
        assert_eq!(call("goto x").0, "bash");
    }

    #[test]
    fn mini_blocks() {
        let (cmd, rest) = mini_block("THOUGHT: look.\n\n```bash\nls -la\n```").expect("one block");
        assert_eq!((cmd.as_str(), rest.as_str()), ("ls -la", "THOUGHT: look."));
        let (cmd, _) = mini_block("x\n```mswea_bash_command\necho hi\n```\n").expect("2.x block");
        assert_eq!(cmd, "echo hi");
        assert!(mini_block("```bash\na\n```\n```bash\nb\n```").is_none());
        assert!(mini_block("```python\nprint(1)\n```").is_none());
        assert!(mini_submits(
            "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"
        ));
        assert!(!mini_submits("ls"));
    }
}
