//! Fuzzing what a model or server sends (`TRAJFORGE_FUZZ_CASES` sets the budget): hermes
//! tool-call text in both syntaxes, think blocks, argument strings, and the OpenAI wire
//! shapes of requests, responses, stream chunks and error bodies. No input panics.

use proptest::prelude::*;
use serde_json::Value;
use trajforge_testkit::fuzz;

use crate::hermes::{self, CallSyntax};
use crate::wire::{ChatChunk, ChatRequest, ChatResponse, ErrorBody, WireMessage};

/// Model output the mutations start from.
const TEXT_SEEDS: &[&str] = &[
    "<think>plan</think>Let me look.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call>",
    "<tool_call>{\"name\":\"str_replace_editor\",\"arguments\":\"{\\\"command\\\":\\\"view\\\",\\\"path\\\":\\\"/w\\\"}\"}</tool_call><tool_call>{\"name\":\"submit\"}",
    "```json\n<tool_call>\n{\"name\": \"x\", \"parameters\": {\"a\": [1, {\"b\": null}]}}\n</tool_call>\n```",
    "<think>unclosed <tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": \"\\ud800\"}}",
];

/// Server bodies the mutations start from.
const BODY_SEEDS: &[&str] = &[
    r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"call_1","type":"function","function":{"name":"bash","arguments":"{\"command\":\"ls\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
    r#"{"choices":[{"delta":{"content":"x","tool_calls":[{"index":0,"function":{"arguments":"{\"a"}}]},"finish_reason":null}]}"#,
    r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"tool","tool_call_id":"1","content":"x"}],"tools":[{"type":"function","function":{"name":"bash","parameters":{}}}],"tool_choice":"auto","stop":["a"],"max_tokens":5,"stream":true}"#,
    r#"{"error":{"message":"context length exceeded","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
];

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hermes_text_never_panics(text in fuzz::text_inputs(TEXT_SEEDS, 1024)) {
        for syntax in [CallSyntax::Free, CallSyntax::Grammar] {
            let mut n = 0;
            let (_, calls) = hermes::parse_calls(&text, syntax, &mut || {
                n += 1;
                format!("call_{n}")
            });
            for call in &calls {
                let _ = hermes::render_call(call);
            }
        }
        let _ = hermes::split_think(&text);
        let _ = hermes::compact_json(&text);
        let _ = hermes::normalise_arguments(Some(&Value::String(text.clone())));
        let _ = ErrorBody::message_in(&text);
    }

    #[test]
    fn wire_bodies_never_panic(bytes in fuzz::inputs(
        BODY_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect(), 1024)
    ) {
        if let Ok(response) = serde_json::from_slice::<ChatResponse>(&bytes) {
            for choice in response.choices.unwrap_or_default() {
                if let Some(message) = choice.message {
                    let _ = message.content.as_ref().and_then(|c| c.joined_text());
                }
            }
        }
        let _ = serde_json::from_slice::<ChatChunk>(&bytes);
        let _ = serde_json::from_slice::<WireMessage>(&bytes);
        if let Ok(request) = serde_json::from_slice::<ChatRequest>(&bytes) {
            for message in &request.messages {
                let _ = message.content.as_ref().and_then(|c| c.joined_text());
            }
        }
    }
}
