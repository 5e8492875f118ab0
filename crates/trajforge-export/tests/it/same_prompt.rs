//! The embedded teacher and the export render a conversation with the same chat template
//! module: the prompt the teacher evaluates at each step is, text for text and token for token,
//! the export's rendering of the same conversation up to that step. Checked for the default
//! GGUF (SmolLM2's ChatML, hermes text, through a loaded `LocalTeacher` and llama.cpp's token
//! count) and for Qwen3's template (native tools).

use serde_json::json;
use trajforge_export::StudentTokenizer;
use trajforge_local::{ChatTemplate, LocalOptions, LocalTeacher, ToolChoice};
use trajforge_teacher::{ChatMessage, Role, Sampling, ToolCall, ToolSpec};

use crate::{qwen3_dir, smollm2_gguf, tools, trajectories};

/// The opening of an assistant turn both templates end a prompt with.
const GENERATION_PROMPT: &str = "<|im_start|>assistant\n";

/// System, user, an assistant turn with reasoning and two tool calls, their results, and a
/// final answer. Assistant turns carry their reasoning in a think block, the form the export
/// writes them in, so the export renders them as they are.
fn conversation() -> Vec<ChatMessage> {
    let ls = ToolCall::new("call_1", "bash", json!({"command": "ls -la"}).to_string());
    let view = ToolCall::new(
        "call_2",
        "str_replace_editor",
        json!({"command": "view", "path": "/workspace/pkg/mod.py", "view_range": [1, 40]})
            .to_string(),
    );
    vec![
        ChatMessage::system("You are a careful software engineer. Work in /workspace."),
        ChatMessage::user("The test `test_parse` fails in pkg/mod.py. Investigate and fix it."),
        ChatMessage::assistant(
            Some("<think>\nI should look at the files first.\n</think>".into()),
            vec![ls.clone(), view.clone()],
        ),
        ChatMessage::tool_result(&ls, "total 8\n-rw-r--r-- 1 u u 120 mod.py\n"),
        ChatMessage::tool_result(&view, "1\tdef parse(s):\n2\t    return s.split(',')\n"),
        ChatMessage::assistant(
            Some("<think>\n\n</think>\n\nThe parser splits on commas; fixed.".into()),
            vec![],
        ),
    ]
}

/// Where the teacher is asked for the next turn: after the user's message and after the tool
/// results (every index of an assistant message).
fn steps(messages: &[ChatMessage]) -> Vec<usize> {
    (0..messages.len())
        .filter(|&k| messages[k].role == Role::Assistant)
        .collect()
}

/// What both sides must agree on, given the teacher's prompt for the first `k` messages.
fn check(
    tok: &StudentTokenizer,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    prompt: &dyn Fn(&[ChatMessage]) -> String,
) -> Vec<(usize, String)> {
    let mut t = trajectories(1).remove(0);
    t.messages = messages.to_vec();
    t.tools = tools.to_vec();
    let exported = tok.render(&t, messages.len()).expect("export renders");
    let mut prompts = Vec::new();
    for k in steps(messages) {
        let p = prompt(&messages[..k]);
        assert!(
            exported.starts_with(&p),
            "step {k}: the teacher's prompt is not the export's text up to there\n--- prompt\n{p}\n--- export\n{exported}"
        );
        assert!(p.ends_with(GENERATION_PROMPT), "{p}");
        assert_eq!(
            tok.count(&p).expect("count"),
            tok.count(&exported[..p.len()]).expect("count"),
        );
        prompts.push((k, p));
    }
    // After the last prompt the export holds exactly the teacher's final answer.
    let (_, last) = prompts.last().expect("steps");
    let answer = messages
        .last()
        .and_then(|m| m.content.as_deref())
        .unwrap_or_default();
    assert!(
        exported[last.len()..].starts_with(answer),
        "{}",
        &exported[last.len()..]
    );
    // The whole conversation: the teacher's prompt for a next turn is the export's text and
    // the opening of that turn.
    assert_eq!(prompt(messages), format!("{exported}{GENERATION_PROMPT}"));
    assert_eq!(
        tok.measure(&t, None).expect("measure").total_tokens,
        tok.count(&exported).expect("count")
    );
    prompts
}

#[test]
fn smollm2_teacher_prompt_is_the_export_text() {
    let Some(gguf) = smollm2_gguf() else { return };
    let tok = StudentTokenizer::load(&gguf).expect("load gguf");
    assert!(!tok.template().native_tools());
    let teacher = LocalTeacher::load(&gguf, LocalOptions::default()).expect("load model");
    let messages = conversation();
    let tools = tools();
    let prompt = |m: &[ChatMessage]| teacher.render(m, &tools).expect("teacher renders");
    let prompts = check(&tok, &messages, &tools, &prompt);
    assert!(
        prompts[0].1.contains("<tools>"),
        "hermes schemas in the system prompt"
    );

    // The tokens llama.cpp evaluates for each prompt are the export's count of that text.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (k, p) in &prompts {
        let sampling = teacher.sampling_params(&Sampling {
            max_tokens: Some(1),
            seed: Some(1),
            ..Sampling::default()
        });
        let reply = runtime
            .block_on(teacher.generate(&messages[..*k], &tools, &ToolChoice::Auto, sampling))
            .expect("generate");
        assert_eq!(
            reply.generation.prompt_tokens,
            tok.count(p).expect("count"),
            "step {k}: llama.cpp's prompt tokens vs the export's count"
        );
    }
}

#[test]
fn qwen3_teacher_prompt_is_the_export_text() {
    let Some(dir) = qwen3_dir() else { return };
    let tok = StudentTokenizer::load(&dir.join("tokenizer.json")).expect("load qwen3");
    assert!(tok.template().native_tools());
    // The embedded teacher compiles a GGUF's template with its BOS/EOS texts; Qwen3's come
    // from tokenizer_config.json here, as no Qwen3 GGUF is installed.
    let template = ChatTemplate::new(
        tok.template().source(),
        Some(tok.template().bos_token()).filter(|b| !b.is_empty()),
        Some(tok.template().eos_token()).filter(|e| !e.is_empty()),
    )
    .expect("compile");
    let messages = conversation();
    let tools = tools();
    let prompt = |m: &[ChatMessage]| {
        template
            .render_chat(m, &tools, true)
            .expect("teacher renders")
    };
    let prompts = check(&tok, &messages, &tools, &prompt);
    assert!(
        prompts[0].1.contains("<tools>"),
        "Qwen3 writes the schemas itself"
    );
}
