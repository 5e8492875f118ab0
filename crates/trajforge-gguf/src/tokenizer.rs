//! A GGUF tokenizer vocabulary as a Hugging Face `tokenizer.json`, so the Rust `tokenizers`
//! crate and Python's `tokenizers` load the very same tokenizer a GGUF model uses.

use serde_json::{Map, Value, json};

/// The `tokenizer.ggml.*` keys of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model` (`gpt2` for byte-level BPE, `llama` for SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer family (`smollm`, `qwen2`, `llama-bpe`, ...).
    pub pre: Option<String>,
    /// Token texts, by id.
    pub tokens: Vec<String>,
    /// BPE merges, `"left right"`.
    pub merges: Vec<String>,
    /// Token types by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// Id of the beginning-of-sequence token.
    pub bos_id: Option<u32>,
    /// Id of the end-of-sequence token.
    pub eos_id: Option<u32>,
    /// Whether a BOS token is added when encoding with special tokens.
    pub add_bos: bool,
    /// Whether an EOS token is added when encoding with special tokens.
    pub add_eos: bool,
}

/// Why a GGUF vocabulary cannot become a `tokenizer.json`.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file holds no vocabulary.
    #[error("the GGUF file has no tokenizer.ggml.tokens")]
    NoVocabulary,
    /// Only byte-level BPE (`gpt2`) vocabularies are converted.
    #[error(
        "tokenizer model {0:?} is not supported (only byte-level BPE, tokenizer.ggml.model = \"gpt2\")"
    )]
    Unsupported(String),
}

/// The regular expression llama.cpp applies before byte-level BPE, per `tokenizer.ggml.pre`.
fn split_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "qwen2" | "deepseek-r1-qwen" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        _ => return None,
    })
}

impl GgufTokenizer {
    /// The vocabulary as a Hugging Face `tokenizer.json` document.
    pub fn to_tokenizer_json(&self) -> Result<Value, TokenizerError> {
        if self.tokens.is_empty() {
            return Err(TokenizerError::NoVocabulary);
        }
        if self.model != "gpt2" {
            return Err(TokenizerError::Unsupported(self.model.clone()));
        }
        let mut vocab = Map::with_capacity(self.tokens.len());
        let mut added = Vec::new();
        for (id, token) in self.tokens.iter().enumerate() {
            vocab.insert(token.clone(), json!(id));
            let ty = self.token_types.get(id).copied().unwrap_or(1);
            // Control and user-defined tokens are matched whole before BPE, as llama.cpp does.
            if ty == 3 || ty == 4 {
                added.push(json!({
                    "id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": ty == 3,
                }));
            }
        }
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let pre = self.pre.as_deref().unwrap_or("gpt2");
        let pre_tokenizer = match (pre, split_regex(pre)) {
            (_, Some(regex)) => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                byte_level(false),
            ]}),
            // SmolLM and StarCoder split every digit, then apply GPT-2's expression.
            ("smollm" | "starcoder" | "refact", None) => {
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Digits", "individual_digits": true},
                    byte_level(true),
                ]})
            }
            _ => byte_level(true),
        };
        let post_processor = match (self.add_bos, self.bos_id.and_then(|i| self.token(i))) {
            (true, Some(bos)) => json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [self.bos_id], "tokens": [bos]}},
            }),
            _ => Value::Null,
        };
        Ok(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": self.merges,
            },
        }))
    }

    fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny() -> GgufTokenizer {
        GgufTokenizer {
            model: "gpt2".into(),
            pre: Some("smollm".into()),
            tokens: vec!["<|im_end|>".into(), "a".into(), "b".into(), "ab".into()],
            merges: vec!["a b".into()],
            token_types: vec![3, 1, 1, 1],
            bos_id: Some(0),
            eos_id: Some(0),
            add_bos: false,
            add_eos: false,
        }
    }

    #[test]
    fn control_tokens_become_added_tokens() {
        let j = tiny().to_tokenizer_json().unwrap();
        assert_eq!(j["added_tokens"][0]["content"], "<|im_end|>");
        assert_eq!(j["added_tokens"].as_array().unwrap().len(), 1);
        assert_eq!(j["model"]["vocab"]["ab"], 3);
        assert_eq!(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
    }

    #[test]
    fn sentencepiece_is_refused() {
        let mut t = tiny();
        t.model = "llama".into();
        assert!(matches!(
            t.to_tokenizer_json(),
            Err(TokenizerError::Unsupported(_))
        ));
    }
}
