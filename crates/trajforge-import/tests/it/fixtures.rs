//! Each format's fixture parses into the trajectory it records, with its extra fields in `raw`.

use std::time::Duration;

use trajforge_agent::ExitStatus;
use trajforge_import::{Format, read_file};
use trajforge_teacher::Role;

use crate::fixture;

#[test]
fn real_mini_swe_agent_trajectory() {
    let parsed = read_file(
        Format::MiniSweAgent,
        &fixture("mini-swe-agent/chunked_even.traj.json"),
    )
    .expect("reads");
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    assert_eq!(parsed.records.len(), 1);
    let r = &parsed.records[0];
    let t = &r.trajectory;
    assert_eq!(t.exit, ExitStatus::Submitted);
    assert_eq!(t.teacher.model, "openai/scripted-teacher");
    // system, task, then 7 assistant/tool pairs; the final `exit` message is not a chat turn.
    assert_eq!(t.messages.len(), 16);
    assert_eq!(t.messages[0].role, Role::System);
    assert!(
        t.task
            .starts_with("Please solve this issue: chunked_even(iterable, 0)")
    );
    assert_eq!(t.steps.len(), 7);
    assert!(
        t.steps
            .iter()
            .all(|s| s.tools.len() == 1 && s.tools[0].tool == "bash")
    );
    // Observations and exit codes come from the tool messages, usage from each response.
    let repro = &t.steps[2].tools[0].observation;
    assert!(
        repro
            .text
            .contains("Step for islice() must be a positive integer"),
        "{}",
        repro.text
    );
    assert_eq!(repro.exit_code, Some(1));
    assert_eq!(t.steps[0].usage.prompt_tokens, 2100);
    assert_eq!(
        t.usage.completion_tokens,
        (0..7).map(|i| 40 + 9 * i).sum::<u64>()
    );
    assert!(t.started_at_ms > 0);
    let patch = t.outcome.patch.as_deref().expect("submission");
    assert!(
        patch.contains("+        raise ValueError('n must be at least 1')"),
        "{patch}"
    );
    // Everything else is kept.
    assert_eq!(r.raw["trajectory_format"], "mini-swe-agent-1.1");
    assert_eq!(r.raw["info"]["model_stats"]["api_calls"], 7);
    assert_eq!(r.raw["exit_messages"][0]["role"], "exit");
    let fields = r.raw["message_fields"]
        .as_array()
        .expect("per-message fields");
    assert_eq!(fields.len(), t.messages.len());
    assert_eq!(fields[2]["extra"]["actions"][0]["tool_call_id"], "call_1_0");
    assert!(r.key.starts_with("import:mini-swe-agent:"));
}

#[test]
fn swe_agent_traj() {
    let parsed = read_file(Format::SweAgent, &fixture("swe-agent/split_into.traj")).expect("reads");
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    let r = &parsed.records[0];
    let t = &r.trajectory;
    assert_eq!(t.exit, ExitStatus::Submitted);
    assert_eq!(t.teacher.model, "openai/glm-4.6");
    assert!(
        t.task.starts_with("split_into with a negative size"),
        "{}",
        t.task
    );
    assert_eq!(t.steps.len(), 9);
    let tools: Vec<&str> = t.steps.iter().map(|s| s.tools[0].tool.as_str()).collect();
    assert_eq!(
        tools,
        [
            "bash",
            "str_replace_editor",
            "bash",
            "str_replace_editor",
            "bash",
            "str_replace_editor",
            "bash",
            "submit",
            "submit"
        ]
    );
    // Content given as a list of text parts reads as text.
    assert!(
        t.steps[4].tools[0]
            .observation
            .text
            .contains("FAILED (errors=1)")
    );
    assert!(t.steps[8].tools[0].observation.done);
    assert!(
        t.steps
            .iter()
            .any(|s| s.tools[0].observation.duration > Duration::ZERO)
    );
    assert_eq!(
        t.usage.prompt_tokens,
        2210 + 2590 + 3480 + 3690 + 4020 + 4310 + 4660 + 4390 + 4705
    );
    assert_eq!(
        t.outcome.patch.as_deref(),
        r.raw["trajectory"][8]["state"]["diff"].as_str()
    );
    assert_eq!(r.raw["info"]["swe_agent_version"], "1.1.0");
    assert_eq!(r.raw["environment"], "more-itertools-split_into");
    assert_eq!(r.raw["message_fields"][2]["message_type"], "action");
    assert!(r.raw["message_fields"][2]["thought"].is_string());
    assert!(r.reference_patch.is_none());
}

#[test]
fn sera_records() {
    let parsed = read_file(Format::Sera, &fixture("sera/sera.jsonl")).expect("reads");
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    assert_eq!(parsed.records.len(), 2);
    let names: Vec<_> = parsed
        .records
        .iter()
        .map(|r| r.subject["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["chunked_even", "split_into"]);
    for (i, r) in parsed.records.iter().enumerate() {
        assert_eq!(r.line, i + 1);
        assert_eq!(r.subject["path"], "more_itertools/more.py");
        assert!(r.subject["instance_id"].is_string());
        assert!(
            r.raw.get("docker_image").is_none(),
            "docker_image goes to the subject"
        );
        assert_eq!(r.subject["docker_image"], "more-itertools-11.2.1:sera");
        let t = &r.trajectory;
        assert_eq!(t.exit, ExitStatus::Submitted);
        assert_eq!(t.steps.len(), 7);
        assert!(t.task.contains("islice"));
        assert!(
            r.reference_patch
                .as_deref()
                .is_some_and(|p| p.starts_with("diff --git"))
        );
    }
}

#[test]
fn a_file_of_another_format_is_skipped_with_a_reason_naming_the_right_one() {
    let parsed = read_file(Format::MiniSweAgent, &fixture("sera/sera.jsonl")).expect("reads");
    assert!(parsed.records.is_empty());
    assert_eq!(parsed.skipped.len(), 2);
    assert!(
        parsed.skipped[0].reason.contains("--from sera"),
        "{:?}",
        parsed.skipped
    );
    let parsed =
        read_file(Format::MiniSweAgent, &fixture("swe-agent/split_into.traj")).expect("reads");
    assert!(
        parsed.skipped[0].reason.contains("--from swe-agent"),
        "{:?}",
        parsed.skipped
    );
    let mini = fixture("mini-swe-agent/chunked_even.traj.json");
    let parsed = read_file(Format::SweAgent, &mini).expect("reads");
    assert!(
        parsed.skipped[0].reason.contains("--from mini-swe-agent"),
        "{:?}",
        parsed.skipped
    );
    let parsed = read_file(Format::Sera, &mini).expect("reads");
    assert!(
        parsed.records.is_empty(),
        "a mini trajectory is not a SERA record"
    );
    assert!(
        parsed.skipped[0].reason.contains("--from mini-swe-agent"),
        "{:?}",
        parsed.skipped
    );
}
