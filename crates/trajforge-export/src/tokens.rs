//! Exact token counts with the student's tokenizer and chat template, and truncation of
//! too-long trajectories after the last assistant turn that still fits (SPEC.md section 5).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use tokenizers::{
    Model, NormalizedString, Normalizer, NormalizerWrapper, OffsetReferential, OffsetType,
    PreTokenizedString, PreTokenizer, PreTokenizerWrapper, Tokenizer,
};
use trajforge_agent::Trajectory;
use trajforge_teacher::Role;
use xxhash_rust::xxh3::{Xxh3Builder, xxh3_128};

use trajforge_chat::{ChatMessage, ChatTemplate, ToolSpec};

use crate::convert::think_text;
use crate::error::{ExportError, Result};

/// A tokenizer with its chat template.
pub struct StudentTokenizer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// The counting path without `Encoding`s, when the tokenizer's added tokens allow it.
    fast: Option<FastCount>,
}

/// What counting by pieces needs: the added tokens, which split the text before anything
/// else and so cut it into pieces that tokenize independently.
struct FastCount {
    /// Every added token's text, matched leftmost-longest as `tokenizers` matches them.
    added: AhoCorasick,
    /// The normalizer is exactly NFC, which leaves ASCII text unchanged.
    nfc_only: bool,
    /// Tells the per-thread caches of different tokenizers apart.
    id: u64,
}

/// Token counts of pre-tokens (words after the pre-tokenizer) of one tokenizer, per thread.
#[derive(Default)]
struct WordCache {
    owner: u64,
    counts: HashMap<Box<str>, u32, Xxh3Builder>,
    /// This thread's copy of the pre-tokenizer: a regex shared by threads makes them queue
    /// for its scratch space.
    pre: Option<PreTokenizerWrapper>,
    /// Counts of whole long pieces by content hash: the system prompt with the tool schemas
    /// comes back in every trajectory.
    pieces: HashMap<u128, u32, Xxh3Builder>,
}

/// Pieces shorter than this are not worth a hash of their own.
const PIECE_CACHE_MIN: usize = 256;

/// Distinct pre-tokens kept before the cache starts over, so memory stays flat.
const WORD_CACHE_MAX: usize = 1 << 18;

/// Longest pre-token (bytes) whose count is cached.
const WORD_CACHE_MAX_LEN: usize = 64;

thread_local! {
    static WORDS: RefCell<WordCache> = RefCell::default();
}

/// Where an added token ends in a rendered text, and the tokens before it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    end: usize,
    before: usize,
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
            let template = ChatTemplate::new(
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
        let template = ChatTemplate::new(
            &source,
            token_text(config.get("bos_token")).as_deref(),
            token_text(config.get("eos_token")).as_deref(),
        )
        .map_err(|e| tok_err(&config_path, format!("chat template: {e}")))?;
        Ok(Self::new(tokenizer, template, &file))
    }

    fn new(mut tokenizer: Tokenizer, template: ChatTemplate, path: &Path) -> Self {
        // A count is of the whole text: no truncation or padding from tokenizer.json.
        tokenizer.with_padding(None);
        // Only a limit can be refused, and this sets none.
        let _ = tokenizer.with_truncation(None);
        let fast = FastCount::new(&tokenizer);
        Self {
            tokenizer,
            template,
            source: path.to_path_buf(),
            fast,
        }
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The underlying tokenizer (for writing it out, e.g. for a Python reference).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens of `text` without added special tokens (what `apply_chat_template` counts).
    pub fn count(&self, text: &str) -> Result<usize> {
        match &self.fast {
            Some(fast) => fast.count(&self.tokenizer, text, None),
            None => self.encode_len(text),
        }
    }

    /// Tokens of the prompt a server renders with this template for `messages` and `tools`
    /// (generation prompt included), as `trajforge serve` reports them for an upstream.
    pub fn count_prompt(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<usize> {
        let prompt = self
            .template
            .render_chat(messages, tools, true)
            .map_err(ExportError::Template)?;
        self.count(&prompt)
    }

    fn encode_len(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .map_err(|e| ExportError::Encode(e.to_string()))
    }

    /// The messages and tools the template renders for the first `keep` messages:
    /// OpenAI form when the template handles tools, hermes text otherwise.
    /// Assistant turns carry their reasoning in a think block ([`think_text`]).
    pub fn conversation(&self, t: &Trajectory, keep: usize) -> (Vec<Value>, Option<Vec<Value>>) {
        let messages = &t.messages[..keep.min(t.messages.len())];
        self.template.conversation(messages, &t.tools, &think_text)
    }

    /// Render the first `keep` messages with the chat template.
    pub fn render(&self, t: &Trajectory, keep: usize) -> Result<String> {
        let (msgs, tools) = self.conversation(t, keep);
        self.template
            .render(&msgs, tools.as_deref(), false)
            .map_err(ExportError::Template)
    }

    /// Count the whole trajectory and, past `max_tokens`, find the longest prefix ending
    /// with an assistant turn that fits.
    pub fn measure(&self, t: &Trajectory, max_tokens: Option<usize>) -> Result<Measure> {
        let n = t.messages.len();
        let full = self.render(t, n)?;
        let mut marks = Vec::new();
        let total = match &self.fast {
            Some(fast) => fast.count(&self.tokenizer, &full, Some(&mut marks))?,
            None => self.encode_len(&full)?,
        };
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
            let tokens = self.prefix_tokens(t, keep, &full, &marks)?;
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

    /// Tokens of the first `keep` messages. When their rendering is a prefix of the full one,
    /// the added tokens found in the full text up to the cut are the prefix's own (they split
    /// the text before anything else), so only the text after the last of them is counted anew.
    fn prefix_tokens(
        &self,
        t: &Trajectory,
        keep: usize,
        full: &str,
        marks: &[Mark],
    ) -> Result<usize> {
        let prefix = self.render(t, keep)?;
        if self.fast.is_some() && full.starts_with(&prefix) {
            let at = prefix.len();
            let (before, from) = match marks.partition_point(|m| m.end <= at) {
                0 => (0, 0),
                i => (marks[i - 1].before + 1, marks[i - 1].end),
            };
            return Ok(before + self.count(&full[from..at])?);
        }
        self.count(&prefix)
    }
}

impl FastCount {
    /// The fast path, when every added token splits text the plain way: matched anywhere,
    /// before normalization, without eating the whitespace around it or needing word edges.
    fn new(tokenizer: &Tokenizer) -> Option<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let added = tokenizer.get_added_tokens_decoder();
        if added
            .values()
            .any(|t| t.lstrip || t.rstrip || t.single_word || t.normalized || t.content.is_empty())
        {
            return None;
        }
        let texts: Vec<&str> = added.values().map(|t| t.content.as_str()).collect();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&texts)
            .ok()?;
        let nfc_only = matches!(tokenizer.get_normalizer(), Some(NormalizerWrapper::NFC(_)));
        Some(Self {
            added: matcher,
            nfc_only,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Tokens of `text`, the same as `tokenizer.encode(text, false).len()`; with `marks`,
    /// also where each added token sits.
    fn count(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
        mut marks: Option<&mut Vec<Mark>>,
    ) -> Result<usize> {
        WORDS.with_borrow_mut(|words| {
            if words.owner != self.id {
                words.owner = self.id;
                words.counts.clear();
                words.pieces.clear();
                words.pre = tokenizer.get_pre_tokenizer().cloned();
            }
            let mut total = 0usize;
            let mut at = 0usize;
            for m in self.added.find_iter(text) {
                total += self.count_piece(tokenizer, &text[at..m.start()], words)?;
                if let Some(marks) = marks.as_deref_mut() {
                    marks.push(Mark {
                        end: m.end(),
                        before: total,
                    });
                }
                total += 1;
                at = m.end();
            }
            total += self.count_piece(tokenizer, &text[at..], words)?;
            Ok(total)
        })
    }

    /// Tokens of text holding no added token: normalizer, pre-tokenizer, then the model on
    /// each pre-token, whose counts are cached (words repeat far more than texts do).
    fn count_piece(
        &self,
        tokenizer: &Tokenizer,
        piece: &str,
        words: &mut WordCache,
    ) -> Result<usize> {
        if piece.is_empty() {
            return Ok(0);
        }
        let key = (piece.len() >= PIECE_CACHE_MIN).then(|| xxh3_128(piece.as_bytes()));
        if let Some(n) = key.and_then(|k| words.pieces.get(&k)) {
            return Ok(*n as usize);
        }
        let encode = |e: tokenizers::Error| ExportError::Encode(e.to_string());
        let mut normalized = NormalizedString::from(piece);
        if let Some(n) = tokenizer.get_normalizer()
            && !(self.nfc_only && piece.is_ascii())
        {
            n.normalize(&mut normalized).map_err(encode)?;
        }
        let mut pre = PreTokenizedString::from(normalized);
        if let Some(p) = &words.pre {
            p.pre_tokenize(&mut pre).map_err(encode)?;
        }
        if words.counts.len() > WORD_CACHE_MAX {
            words.counts.clear();
        }
        let mut total = 0usize;
        for (word, _, _) in pre.get_splits(OffsetReferential::Normalized, OffsetType::None) {
            if word.is_empty() {
                continue;
            }
            let n = match words.counts.get(word) {
                Some(&n) => n as usize,
                None => {
                    let n = tokenizer.get_model().tokenize(word).map_err(encode)?.len();
                    // Long "words" (a tokenizer without a pre-tokenizer sees whole pieces)
                    // rarely repeat and would make the cache's memory grow with the data.
                    if word.len() <= WORD_CACHE_MAX_LEN {
                        words.counts.insert(word.into(), n as u32);
                    }
                    n
                }
            };
            total += n;
        }
        if let Some(k) = key {
            if words.pieces.len() > WORD_CACHE_MAX {
                words.pieces.clear();
            }
            words.pieces.insert(k, total as u32);
        }
        Ok(total)
    }
}
