//! Fuzzing teacher responses in both tool modes (`TRAJFORGE_FUZZ_CASES` sets the budget):
//! hostile response bodies, hostile content and arguments inside a well-formed envelope,
//! error bodies and `Retry-After` values. No input panics; a bad body is a `ResponseError`.

use std::time::SystemTime;

use proptest::prelude::*;
use serde_json::{Value, json};
use trajforge_testkit::fuzz;

use crate::ToolMode;
use crate::backoff::parse_retry_after;
use crate::wire::{error_message, mentions_context_overflow, parse_response};

const BODY_SEEDS: &[&str] = &[
    r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"<think>x</think>ok","reasoning_content":"r","tool_calls":[{"id":"call_1","type":"function","function":{"name":"bash","arguments":"{\"command\":\"ls\"}"}},{"function":{"name":"","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
    r#"{"choices":[{"message":{"content":[{"type":"text","text":"<tool_call>{\"name\":\"submit\",\"arguments\":{}}</tool_call>"}]}}]}"#,
    r#"{"choices":[]}"#,
    r#"{"error":{"message":"maximum context length is 8192","code":400}}"#,
];

const CONTENT_SEEDS: &[&str] = &[
    "<think>a</think>b<tool_call>{\"name\":\"bash\",\"arguments\":{\"command\":\"x\"}}</tool_call>",
    "{\"command\": \"ls\", \"timeout\": 10}",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "1.5",
];

/// Parses `body` in both modes with a counter for missing ids.
fn parse_both(body: &Value) {
    for mode in [ToolMode::Native, ToolMode::Hermes] {
        let mut n = 0;
        let _ = parse_response(body, mode, &mut || {
            n += 1;
            format!("call_{n}")
        });
    }
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hostile_bodies_never_panic(bytes in fuzz::inputs(
        BODY_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect(), 1024)
    ) {
        if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
            parse_both(&body);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = error_message(&text);
        let _ = mentions_context_overflow(&text);
    }

    #[test]
    fn hostile_content_and_arguments_never_panic(
        content in fuzz::text_inputs(CONTENT_SEEDS, 512),
        arguments in fuzz::text_inputs(CONTENT_SEEDS, 256),
    ) {
        let body = json!({"choices": [{"message": {
            "content": content,
            "reasoning": arguments,
            "tool_calls": [{"function": {"name": content, "arguments": arguments}}],
        }}]});
        parse_both(&body);
        let body = json!({"choices": [{"message": {"content": content}}]});
        parse_both(&body);
        let _ = parse_retry_after(&content, SystemTime::UNIX_EPOCH);
        let _ = parse_retry_after(&arguments, SystemTime::now());
    }
}
