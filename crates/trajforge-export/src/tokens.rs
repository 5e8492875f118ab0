//! Exact token counts with the student's tokenizer and chat template, and truncation of
//! too-long trajectories after the last assistant turn that still fits (SPEC.md section 5).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;
use trajforge_agent::Trajectory;
use trajforge_teacher::Role;

use crate::convert::{hermes_messages, openai_messages, tools_json};
use crate::error::{ExportError, Result};
use crate::template::HfTemplate;

/// A tokenizer with its chat template.
pub struct StudentTokenizer {
    tokenizer: Tokenizer,
    template: HfTemplate,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// Added tokens that may start a segment without eating the whitespace before them.
    starts: HashSet<u32>,
    /// Added tokens that may end a segment without eating the whitespace after them.
    ends: HashSet<u32>,
}

impl std::fmt::Debug for StudentTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudentTokenizer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Token figures of one trajectory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// Tokens of the whole rendered conversation.
    pub total_tokens: usize,
    /// Tokens of the part kept (equal to `total_tokens` when it fits).
    pub tokens: usize,
    /// Messages of the trajectory kept (all of them when it fits; 0 when no assistant turn fits).
    pub keep: usize,
    /// Messages of the trajectory.
    pub messages: usize,
    /// Mean tokens per tool response (0 without tool responses).
    pub tool_tokens_mean: f64,
}

impl Measure {
    /// Kept messages / all messages.
    pub fn ratio(&self) -> f64 {
        if self.messages == 0 {
            1.0
        } else {
            self.keep as f64 / self.messages as f64
        }
    }
}

fn tok_err(path: &Path, message: impl std::fmt::Display) -> ExportError {
    ExportError::Tokenizer {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// A special-token field of `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `chat_template` of a config: a string, or a list of named templates (the `default` one).
fn chat_template(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .or_else(|| list.first())
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
}

impl StudentTokenizer {
    /// Load a `tokenizer.json` (with `tokenizer_config.json` beside it, or a
    /// `chat_template.jinja`), a folder holding them, or a GGUF file.
    pub fn load(path: &Path) -> Result<Self> {
        let is_gguf = path.extension().is_some_and(|e| e == "gguf");
        if is_gguf {
            let info =
                trajforge_gguf::read_gguf_with_tokenizer(path).map_err(|e| tok_err(path, e))?;
            let vocab = info
                .tokenizer
                .as_ref()
                .ok_or_else(|| tok_err(path, "no tokenizer in the file"))?;
            let json = vocab.to_tokenizer_json().map_err(|e| tok_err(path, e))?;
            let tokenizer: Tokenizer = json
                .to_string()
                .parse()
                .map_err(|e| tok_err(path, format!("rebuilt tokenizer: {e}")))?;
            let source = info
                .chat_template
                .ok_or_else(|| tok_err(path, "no tokenizer.chat_template in the file"))?;
            let template = HfTemplate::new(
                &source,
                info.bos_token.as_deref(),
                info.eos_token.as_deref(),
            )
            .map_err(|e| tok_err(path, format!("chat template: {e}")))?;
            return Ok(Self::new(tokenizer, template, path));
        }
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        let tokenizer = Tokenizer::from_file(&file).map_err(|e| tok_err(&file, e))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| tok_err(&config_path, e))?,
            Err(_) => Value::Null,
        };
        let source = chat_template(config.get("chat_template"))
            .or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok())
            .ok_or_else(|| {
                tok_err(
                    &file,
                    "no chat template (tokenizer_config.json \"chat_template\" or chat_template.jinja beside it)",
                )
            })?;
        let template = HfTemplate::new(
            &source,
            token_text(config.get("bos_token")).as_deref(),
            token_text(config.get("eos_token")).as_deref(),
        )
        .map_err(|e| tok_err(&config_path, format!("chat template: {e}")))?;
        Ok(Self::new(tokenizer, template, &file))
    }

    fn new(tokenizer: Tokenizer, template: HfTemplate, path: &Path) -> Self {
        let added = tokenizer.get_added_tokens_decoder();
        let starts = added
            .iter()
            .filter(|(_, t)| !t.lstrip)
            .map(|(id, _)| *id)
            .collect();
        let ends = added
            .iter()
            .filter(|(_, t)| !t.rstrip)
            .map(|(id, _)| *id)
            .collect();
        Self {
            tokenizer,
            template,
            source: path.to_path_buf(),
            starts,
            ends,
        }
    }

    /// The chat template.
    pub fn template(&self) -> &HfTemplate {
        &self.template
    }

    /// The underlying tokenizer (for writing it out, e.g. for a Python reference).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens of `text` without added special tokens (what `apply_chat_template` counts).
    pub fn count(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .map_err(|e| ExportError::Encode(e.to_string()))
    }

    /// The messages and tools the template renders for the first `keep` messages:
    /// OpenAI form when the template handles tools, hermes text otherwise.
    pub fn conversation(&self, t: &Trajectory, keep: usize) -> (Vec<Value>, Option<Vec<Value>>) {
        if self.template.native_tools() {
            let tools = (!t.tools.is_empty()).then(|| tools_json(t));
            (openai_messages(t, keep), tools)
        } else {
            let msgs = hermes_messages(t, keep)
                .into_iter()
                .map(|mut m| {
                    if let Some(o) = m.as_object_mut() {
                        o.remove("train");
                    }
                    m
                })
                .collect();
            (msgs, None)
        }
    }

    /// Render the first `keep` messages with the chat template.
    pub fn render(&self, t: &Trajectory, keep: usize) -> Result<String> {
        let (msgs, tools) = self.conversation(t, keep);
        self.template
            .render(&msgs, tools.as_deref())
            .map_err(ExportError::Template)
    }

    /// Count the whole trajectory and, past `max_tokens`, find the longest prefix ending
    /// with an assistant turn that fits.
    pub fn measure(&self, t: &Trajectory, max_tokens: Option<usize>) -> Result<Measure> {
        let n = t.messages.len();
        let full = self.render(t, n)?;
        let enc = self
            .tokenizer
            .encode(full.as_str(), false)
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let total = enc.len();
        let mut tool_tokens = 0usize;
        let mut tools = 0usize;
        for m in t.messages.iter().filter(|m| m.role == Role::Tool) {
            tool_tokens += self.count(m.content.as_deref().unwrap_or(""))?;
            tools += 1;
        }
        let tool_tokens_mean = if tools == 0 {
            0.0
        } else {
            tool_tokens as f64 / tools as f64
        };
        let fits = |tokens: usize| max_tokens.is_none_or(|m| tokens <= m);
        if fits(total) {
            return Ok(Measure {
                total_tokens: total,
                tokens: total,
                keep: n,
                messages: n,
                tool_tokens_mean,
            });
        }
        // Cut points: right after each assistant turn. Token counts grow with the prefix,
        // so a binary search finds the last one that fits.
        let cuts: Vec<usize> = t
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == Role::Assistant)
            .map(|(i, _)| i + 1)
            .filter(|&k| k < n)
            .collect();
        let (mut lo, mut hi) = (0usize, cuts.len());
        let mut best: Option<(usize, usize)> = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let keep = cuts[mid];
            let tokens = self.prefix_tokens(t, keep, &full, &enc)?;
            if fits(tokens) {
                best = Some((keep, tokens));
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (keep, tokens) = best.unwrap_or((0, 0));
        Ok(Measure {
            total_tokens: total,
            tokens,
            keep,
            messages: n,
            tool_tokens_mean,
        })
    }

    /// Tokens of the first `keep` messages. When their rendering is a prefix of the full one
    /// that ends where an added (special) token begins or ends, tokenizers splits the text at
    /// that token before anything else, so the full encoding's tokens before it are exactly
    /// the prefix's tokens; otherwise the prefix is encoded on its own.
    fn prefix_tokens(
        &self,
        t: &Trajectory,
        keep: usize,
        full: &str,
        enc: &tokenizers::Encoding,
    ) -> Result<usize> {
        let prefix = self.render(t, keep)?;
        if full.starts_with(&prefix) {
            let at = prefix.len();
            let ids = enc.get_ids();
            let offsets = enc.get_offsets();
            // The first token reaching past the cut.
            let j = offsets.partition_point(|o| o.1 <= at);
            if j < ids.len() && offsets[j].0 == at && self.starts.contains(&ids[j]) {
                return Ok(j);
            }
            if j > 0 && offsets[j - 1].1 == at && self.ends.contains(&ids[j - 1]) {
                return Ok(j);
            }
        }
        self.count(&prefix)
    }
}
