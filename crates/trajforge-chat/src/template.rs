//! Chat templates rendered the way Hugging Face transformers renders them
//! (`apply_chat_template`): Jinja with `trim_blocks` and `lstrip_blocks`, Python string and
//! dict methods, `raise_exception`, and a `tojson` filter that writes what Python's
//! `json.dumps` writes (`", "` and `": "` separators, non-ASCII kept, optional indent).
//! One environment for every user, so the embedded teacher's prompt and an export's token
//! counts come from the same text.
//!
//! Templates that know about tools (they mention `tools` or `tool_calls`) are given the
//! OpenAI form of the conversation and the tool schemas; the others, SmolLM2's plain ChatML
//! among them, the hermes form ([`crate::hermes::turns`]).

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Value, json};

use crate::hermes::{self, tool_json};
use crate::types::{ChatMessage, Role, ToolSpec};

/// Why a chat template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The source is not a template minijinja understands.
    #[error(transparent)]
    Compile(minijinja::Error),
    /// Rendering failed (an undefined method, `raise_exception`, a type error).
    #[error(transparent)]
    Render(minijinja::Error),
}

/// A compiled chat template with the special-token texts it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
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
    /// Compile `source`; `bos`/`eos` are passed as `bos_token`/`eos_token`.
    pub fn new(source: &str, bos: Option<&str>, eos: Option<&str>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Jinja2 keeps a trailing newline only with keep_trailing_newline, HF sets neither.
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<JValue, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(TemplateError::Compile)?;
        Ok(Self {
            env,
            source: source.to_string(),
            native_tools: source.contains("tools") || source.contains("tool_calls"),
            bos_token: bos.unwrap_or_default().to_string(),
            eos_token: eos.unwrap_or_default().to_string(),
        })
    }

    /// True when the template renders tool schemas and calls itself; otherwise the
    /// conversation is given in hermes text (schemas in the system prompt).
    pub fn native_tools(&self) -> bool {
        self.native_tools
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BOS token text given to the template.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The EOS token text given to the template.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The variables the template is rendered with (also what a Python reference renders).
    pub fn context(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> Value {
        json!({
            "messages": messages,
            "tools": tools,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        })
    }

    /// Render messages already in the form the template expects.
    pub fn render(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_context(&self.context(messages, tools, add_generation_prompt))
    }

    /// Render with an explicit context.
    pub fn render_context(&self, ctx: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(TemplateError::Render)?;
        template
            .render(JValue::from_serialize(ctx))
            .map_err(TemplateError::Render)
    }

    /// The messages and tools this template is given for a conversation: the OpenAI form
    /// when it handles tools, hermes turns otherwise. `assistant` gives the text of an
    /// assistant turn (its content, or for training data a think block and the content).
    pub fn conversation(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        assistant: &dyn Fn(&ChatMessage) -> String,
    ) -> (Vec<Value>, Option<Vec<Value>>) {
        if self.native_tools {
            let tools = (!tools.is_empty()).then(|| tools.iter().map(tool_json).collect());
            (openai_messages(messages, assistant), tools)
        } else {
            let turns = hermes::turns(messages, tools, assistant)
                .into_iter()
                .map(|t| json!({"role": t.role.as_str(), "content": t.content}))
                .collect();
            (turns, None)
        }
    }

    /// True when the template refuses two user turns in a row (Gemma's and Mistral's raise
    /// "roles must alternate"): a probe of two user turns fails to render where one renders.
    /// Such students need consecutive same-role turns merged.
    pub fn requires_alternation(&self) -> bool {
        let user = |text: &str| json!({"role": "user", "content": text});
        let system = json!({"role": "system", "content": "s"});
        // Some templates want a system turn first; the probe tries both openings.
        [vec![], vec![system]].into_iter().any(|head| {
            let mut one = head.clone();
            one.push(user("a"));
            let mut two = one.clone();
            two.push(user("b"));
            self.render(&one, None, true).is_ok() && self.render(&two, None, true).is_err()
        })
    }

    /// Render a conversation as the model sees it; with `add_generation_prompt` the text
    /// ends with the opening of the next assistant turn.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let (messages, tools) = self.conversation(messages, tools, &hermes::plain_content);
        self.render(&messages, tools.as_deref(), add_generation_prompt)
    }
}

/// Chat messages in the OpenAI form (TRL, and templates that handle tools): `tool_calls` on
/// assistant turns with the arguments as the JSON text the model wrote, `role: tool` results
/// with their call id and tool name. `assistant` gives an assistant turn's content.
pub fn openai_messages(
    messages: &[ChatMessage],
    assistant: &dyn Fn(&ChatMessage) -> String,
) -> Vec<Value> {
    messages
        .iter()
        .map(|m| match m.role {
            Role::Assistant => {
                let mut v = json!({"role": "assistant", "content": assistant(m)});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                }
                v
            }
            Role::Tool => json!({
                "role": "tool",
                "content": m.content.clone().unwrap_or_default(),
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "name": m.name.clone().unwrap_or_default(),
            }),
            role => {
                json!({"role": role.as_str(), "content": m.content.clone().unwrap_or_default()})
            }
        })
        .collect()
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(value: &JValue, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let v = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let (item, key) = match separators.as_deref() {
        Some([a, b]) => (a.clone(), b.clone()),
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let mut out = String::new();
    let style = Style {
        indent,
        item,
        key,
        sort: sort_keys.unwrap_or(false),
        ascii: ensure_ascii.unwrap_or(false),
    };
    write_json(&v, &style, 0, &mut out);
    Ok(out)
}

struct Style {
    indent: Option<usize>,
    item: String,
    key: String,
    sort: bool,
    ascii: bool,
}

fn write_str(s: &str, ascii: bool, out: &mut String) {
    let quoted = Value::String(s.to_string()).to_string();
    if !ascii {
        out.push_str(&quoted);
        return;
    }
    for c in quoted.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

fn write_json(v: &Value, s: &Style, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = s.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(text) => write_str(text, s.ascii, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item);
                }
                newline(out, depth + 1);
                write_json(item, s, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if s.sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item);
                }
                newline(out, depth + 1);
                write_str(k, s.ascii, out);
                out.push_str(&s.key);
                write_json(val, s, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// Numbers as Python prints them: floats keep a fractional part or use Python's exponent form.
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let text = n.to_string();
    // Rust writes 1e-5, Python 1e-05.
    match text.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e.trim_start_matches('+')),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = ChatTemplate::new(
            "{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}",
            None,
            None,
        )
        .unwrap();
        let tools = vec![json!({"a": [1, 2.0], "b": "é<"})];
        let out = t.render(&[], Some(&tools), false).unwrap();
        assert_eq!(
            out,
            "[{\"a\": [1, 2.0], \"b\": \"é<\"}]|{\n  \"a\": [\n    1,\n    2.0\n  ],\n  \"b\": \"é<\"\n}"
        );
    }

    #[test]
    fn blocks_are_trimmed_like_transformers() {
        let src = "{% for m in messages %}\n  {% if m.role == 'user' %}\n{{ m.content.strip() }}\n  {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": " hi "})], None, false)
            .unwrap();
        assert_eq!(out, "hi\n");
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let t = ChatTemplate::new("{{ raise_exception('no') }}", None, None).unwrap();
        assert!(
            t.render(&[], None, false)
                .unwrap_err()
                .to_string()
                .contains("no")
        );
    }

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
        let out = t
            .render_chat(&[ChatMessage::user("hi")], &[], true)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn hermes_conversation_with_tool_results() {
        let t = ChatTemplate::new(CHATML, None, None).unwrap();
        let call = crate::ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let msgs = vec![
            ChatMessage::system("Be brief."),
            ChatMessage::user("list"),
            ChatMessage::assistant(None, vec![call.clone()]),
            ChatMessage::tool_result(&call, "a.py"),
        ];
        let out = t.render_chat(&msgs, &[tool()], true).unwrap();
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
    fn alternation_is_detected_by_a_probe() {
        // Gemma's rule, as its template states it.
        let gemma = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
        assert!(
            ChatTemplate::new(gemma, None, None)
                .unwrap()
                .requires_alternation()
        );
        assert!(
            !ChatTemplate::new(CHATML, None, None)
                .unwrap()
                .requires_alternation()
        );
        // A template that fails on everything demands nothing in particular.
        let broken = "{{ raise_exception('no') }}";
        assert!(
            !ChatTemplate::new(broken, None, None)
                .unwrap()
                .requires_alternation()
        );
    }

    #[test]
    fn python_methods_and_raise_exception() {
        let src = "{{ messages[0].content.strip().upper() }}{% for k, v in tools[0].function.items() %}{{ k }};{% endfor %}{% if messages|length > 1 %}{{ raise_exception('too many') }}{% endif %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert!(t.native_tools());
        let out = t
            .render_chat(&[ChatMessage::user("  hi ")], &[tool()], true)
            .unwrap();
        assert!(out.starts_with("HI"), "{out}");
        let err = t
            .render_chat(
                &[ChatMessage::user("a"), ChatMessage::user("b")],
                &[tool()],
                true,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("too many"), "{err}");
    }
}
