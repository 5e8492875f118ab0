//! Chat templates rendered the way Hugging Face transformers renders them
//! (`apply_chat_template`): Jinja with `trim_blocks` and `lstrip_blocks`, Python string and
//! dict methods, `raise_exception`, and a `tojson` filter that writes what Python's
//! `json.dumps` writes (`", "` and `": "` separators, non-ASCII kept, optional indent).

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Value, json};

/// A compiled chat template with the special-token texts it may print.
pub struct HfTemplate {
    env: Environment<'static>,
    source: String,
    native_tools: bool,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for HfTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTemplate")
            .field("native_tools", &self.native_tools)
            .finish_non_exhaustive()
    }
}

impl HfTemplate {
    /// Compile `source`; `bos`/`eos` are passed as `bos_token`/`eos_token`.
    pub fn new(source: &str, bos: Option<&str>, eos: Option<&str>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<JValue, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| describe(&e))?;
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
    pub fn context(&self, messages: &[Value], tools: Option<&[Value]>) -> Value {
        json!({
            "messages": messages,
            "tools": tools,
            "add_generation_prompt": false,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        })
    }

    /// Render a training conversation (no generation prompt).
    pub fn render(&self, messages: &[Value], tools: Option<&[Value]>) -> Result<String, String> {
        self.render_context(&self.context(messages, tools))
    }

    /// Render with an explicit context.
    pub fn render_context(&self, ctx: &Value) -> Result<String, String> {
        let template = self.env.get_template("chat").map_err(|e| describe(&e))?;
        template
            .render(JValue::from_serialize(ctx))
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
        let t = HfTemplate::new(
            "{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}",
            None,
            None,
        )
        .unwrap();
        let tools = vec![json!({"a": [1, 2.0], "b": "é<"})];
        let out = t.render(&[], Some(&tools)).unwrap();
        assert_eq!(
            out,
            "[{\"a\": [1, 2.0], \"b\": \"é<\"}]|{\n  \"a\": [\n    1,\n    2.0\n  ],\n  \"b\": \"é<\"\n}"
        );
    }

    #[test]
    fn blocks_are_trimmed_like_transformers() {
        let src = "{% for m in messages %}\n  {% if m.role == 'user' %}\n{{ m.content.strip() }}\n  {% endif %}\n{% endfor %}";
        let t = HfTemplate::new(src, None, None).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": " hi "})], None)
            .unwrap();
        assert_eq!(out, "hi\n");
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let t = HfTemplate::new("{{ raise_exception('no') }}", None, None).unwrap();
        assert!(t.render(&[], None).unwrap_err().contains("no"));
    }
}
