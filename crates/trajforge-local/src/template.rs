//! Rendering a conversation with the model's own chat template (from the GGUF metadata).
//!
//! The template is Jinja; minijinja renders it as Hugging Face's `apply_chat_template` does
//! (`messages`, `tools`, `add_generation_prompt`, `bos_token`, `eos_token`). Templates that
//! know about tools (they mention `tools` or `tool_calls`) get the native fields; the others,
//! SmolLM2's plain ChatML among them, get the hermes convention written into the messages:
//! tool schemas in the system prompt, calls as `<tool_call>` text, results as user turns
//! wrapped in `<tool_response>`.

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::{Value, json};
use trajforge_teacher::{ChatMessage, Role, ToolSpec, hermes_tools_prompt};

/// Opening tag of a hermes tool call.
pub const CALL_OPEN: &str = "<tool_call>";
/// Closing tag of a hermes tool call.
pub const CALL_CLOSE: &str = "</tool_call>";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    native_tools: bool,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("native_tools", &self.native_tools)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile `source`; `bos`/`eos` are the token texts templates may print.
    pub fn new(source: &str, bos: Option<&str>, eos: Option<&str>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(python_methods);
        env.add_function("raise_exception", |msg: String| -> Result<JValue, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        // Jinja2 keeps a trailing newline only with keep_trailing_newline, HF sets neither.
        env.set_keep_trailing_newline(false);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| describe(&e))?;
        Ok(Self {
            env,
            native_tools: source.contains("tools") || source.contains("tool_calls"),
            bos_token: bos.unwrap_or_default().to_string(),
            eos_token: eos.unwrap_or_default().to_string(),
        })
    }

    /// True when the template renders tools itself (otherwise hermes text is used).
    pub fn native_tools(&self) -> bool {
        self.native_tools
    }

    /// The prompt for `messages`, ending with the opening of an assistant turn.
    pub fn render(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<String, String> {
        let (msgs, tools_value) = if self.native_tools {
            native_messages(messages, tools)
        } else {
            (hermes_messages(messages, tools), Value::Null)
        };
        let ctx = json!({
            "messages": msgs,
            "tools": tools_value,
            "add_generation_prompt": true,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        });
        let template = self.env.get_template("chat").map_err(|e| describe(&e))?;
        template
            .render(JValue::from_serialize(&ctx))
            .map_err(|e| describe(&e))
    }
}

fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `{"type": "function", "function": {...}}` for one tool.
pub fn tool_json(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
    })
}

/// Messages in the OpenAI form for templates that handle tools themselves; arguments are
/// objects there because that is what HF templates expect (`tool_call.arguments | tojson`).
fn native_messages(messages: &[ChatMessage], tools: &[ToolSpec]) -> (Vec<Value>, Value) {
    let out = messages
        .iter()
        .map(|m| {
            let mut v =
                json!({"role": m.role.as_str(), "content": m.content.clone().unwrap_or_default()});
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let args: Value = serde_json::from_str(&c.arguments)
                            .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": args}})
                    })
                    .collect();
                v["tool_calls"] = Value::Array(calls);
            }
            if let Some(id) = &m.tool_call_id {
                v["tool_call_id"] = json!(id);
            }
            if let Some(name) = &m.name {
                v["name"] = json!(name);
            }
            v
        })
        .collect();
    let tools = if tools.is_empty() {
        Value::Null
    } else {
        Value::Array(tools.iter().map(tool_json).collect())
    };
    (out, tools)
}

/// Hermes rendering for templates without tool support (same shape as the HTTP client's
/// hermes mode, so a model sees the same text in-process and behind a server).
fn hermes_messages(messages: &[ChatMessage], tools: &[ToolSpec]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    let tools_prompt = (!tools.is_empty()).then(|| hermes_tools_prompt(tools));
    let has_system = messages.first().is_some_and(|m| m.role == Role::System);
    if !has_system && let Some(prompt) = &tools_prompt {
        out.push(json!({"role": "system", "content": prompt}));
    }
    // Consecutive tool results form one user turn, as Qwen-style templates do.
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut Vec<Value>| {
        if !pending.is_empty() {
            out.push(json!({"role": "user", "content": pending.join("\n")}));
            pending.clear();
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        if msg.role == Role::Tool {
            let content = msg.content.as_deref().unwrap_or("");
            pending.push(format!("<tool_response>\n{content}\n</tool_response>"));
            continue;
        }
        flush(&mut pending, &mut out);
        let content = match msg.role {
            Role::System if i == 0 => {
                let base = msg.content.as_deref().unwrap_or("");
                match &tools_prompt {
                    Some(prompt) if base.is_empty() => prompt.clone(),
                    Some(prompt) => format!("{base}\n\n{prompt}"),
                    None => base.to_string(),
                }
            }
            Role::Assistant => assistant_text(msg),
            _ => msg.content.clone().unwrap_or_default(),
        };
        out.push(json!({"role": msg.role.as_str(), "content": content}));
    }
    flush(&mut pending, &mut out);
    out
}

/// An assistant turn as the text the model produced: content, then `<tool_call>` blocks in
/// exactly the form the grammar makes it write, so the KV cache prefix stays reusable.
fn assistant_text(msg: &ChatMessage) -> String {
    let mut text = msg.content.clone().unwrap_or_default();
    for call in &msg.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format_call(
            &call.name,
            &call.arguments,
            call.is_malformed(),
        ));
    }
    text
}

/// One hermes call block. Malformed calls are replayed verbatim.
pub fn format_call(name: &str, arguments: &str, malformed: bool) -> String {
    let body = if malformed {
        arguments.to_string()
    } else {
        // The arguments text is kept byte for byte when it is JSON (it is what the model
        // wrote), so the re-rendered turn tokenizes as generated and the KV cache stays valid.
        let args = match serde_json::from_str::<Value>(arguments) {
            Ok(_) => arguments.trim().to_string(),
            Err(_) => Value::String(arguments.into()).to_string(),
        };
        // By hand so "name" comes first, as the grammar and chat templates write it.
        format!(r#"{{"name": {}, "arguments": {args}}}"#, json!(name))
    };
    format!("{CALL_OPEN}\n{body}\n{CALL_CLOSE}")
}

/// The Python string and dict methods chat templates call (`strip`, `startswith`, `items`...),
/// which minijinja does not provide by itself.
fn python_methods(
    _state: &State,
    value: &JValue,
    method: &str,
    args: &[JValue],
) -> Result<JValue, Error> {
    let arg_str = |i: usize| args.get(i).and_then(|a| a.as_str()).map(str::to_string);
    if let Some(s) = value.as_str() {
        let chars = arg_str(0);
        let trim_set = |c: char| match &chars {
            Some(set) => set.contains(c),
            None => c.is_whitespace(),
        };
        return Ok(match method {
            "strip" => JValue::from(s.trim_matches(trim_set)),
            "lstrip" => JValue::from(s.trim_start_matches(trim_set)),
            "rstrip" => JValue::from(s.trim_end_matches(trim_set)),
            "upper" => JValue::from(s.to_uppercase()),
            "lower" => JValue::from(s.to_lowercase()),
            "startswith" => JValue::from(chars.is_some_and(|p| s.starts_with(&p))),
            "endswith" => JValue::from(chars.is_some_and(|p| s.ends_with(&p))),
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => JValue::from(s.replace(&a, &b)),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)")),
            },
            "split" => {
                let parts: Vec<JValue> = match &chars {
                    Some(sep) => s.split(sep.as_str()).map(JValue::from).collect(),
                    None => s.split_whitespace().map(JValue::from).collect(),
                };
                JValue::from(parts)
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        return match method {
            "items" => {
                let mut pairs = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    pairs.push(JValue::from(vec![key, item]));
                }
                Ok(JValue::from(pairs))
            }
            "keys" => Ok(JValue::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let mut vals = Vec::new();
                for key in value.try_iter()? {
                    vals.push(value.get_item(&key)?);
                }
                Ok(JValue::from(vals))
            }
            "get" => {
                let key = args.first().cloned().unwrap_or(JValue::UNDEFINED);
                let found = value.get_item(&key)?;
                Ok(if found.is_undefined() {
                    args.get(1).cloned().unwrap_or(JValue::from(()))
                } else {
                    found
                })
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        };
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use trajforge_teacher::ToolCall;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn tool() -> ToolSpec {
        ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}}),
        }
    }

    #[test]
    fn chatml_default_system_prompt_and_generation_prompt() {
        let t = ChatTemplate::new(CHATML, None, None).unwrap();
        assert!(!t.native_tools());
        let out = t.render(&[ChatMessage::user("hi")], &[]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn hermes_conversation_with_tool_results() {
        let t = ChatTemplate::new(CHATML, None, None).unwrap();
        let call = ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let msgs = vec![
            ChatMessage::system("Be brief."),
            ChatMessage::user("list"),
            ChatMessage::assistant(None, vec![call.clone()]),
            ChatMessage::tool_result(&call, "a.py"),
        ];
        let out = t.render(&msgs, &[tool()]).unwrap();
        assert!(
            out.starts_with("<|im_start|>system\nBe brief.\n\n# Tools"),
            "{out}"
        );
        assert!(out.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\":\"ls\"}}\n</tool_call><|im_end|>"
        ), "{out}");
        assert!(out.ends_with(
            "<|im_start|>user\n<tool_response>\na.py\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        ), "{out}");
    }

    #[test]
    fn python_methods_and_raise_exception() {
        let src = "{{ messages[0].content.strip().upper() }}{% for k, v in tools[0].function.items() %}{{ k }};{% endfor %}{% if messages|length > 1 %}{{ raise_exception('too many') }}{% endif %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert!(t.native_tools());
        let out = t.render(&[ChatMessage::user("  hi ")], &[tool()]).unwrap();
        assert!(out.starts_with("HI"), "{out}");
        let err = t
            .render(&[ChatMessage::user("a"), ChatMessage::user("b")], &[tool()])
            .unwrap_err();
        assert!(err.contains("too many"), "{err}");
    }
}
