//! Fuzzing `serve` request bodies (`TRAJFORGE_FUZZ_CASES` sets the budget): hostile bytes
//! and damaged real requests through JSON, `parse_request` and the tool grammar built from
//! the request's tool schemas. No input panics; a bad body is a `RequestError` (a 400).

use proptest::prelude::*;
use serde_json::Value;
use trajforge_testkit::fuzz;

use super::parse_request;
use crate::grammar::tool_grammar;
use trajforge_chat::Sampling;

const SEEDS: &[&str] = &[
    r#"{"model":"x","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"bash","arguments":"{\"command\":\"ls\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"a.py"}],"tools":[{"type":"function","function":{"name":"bash","parameters":{"type":"object","properties":{"command":{"type":"string"},"n":{"type":"integer","enum":[1,2]},"xs":{"type":"array","items":{"type":"number"}}},"required":["command"]}}}],"tool_choice":"required","temperature":0.2,"max_tokens":7,"seed":3,"stop":"END","stream":true,"stream_options":{"include_usage":true}}"#,
    r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":{"anyOf":[{"type":"string"},{"$ref":"/x"}]}}}],"tool_choice":{"type":"function","function":{"name":"a"}},"parallel_tool_calls":false,"top_p":1e308,"n":1}"#,
];

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hostile_request_bodies_never_panic(bytes in fuzz::inputs(
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect(), 1024)
    ) {
        let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(());
        };
        if let Ok(request) = parse_request(&body, &Sampling::default()) {
            let _ = tool_grammar(&request.tools, &request.tool_choice, request.parallel_tool_calls);
        }
    }
}
