//! Every real fixture (see fixtures/README.md) imports with its steps, tool calls,
//! observations and final patch intact. What each file holds is read here from the source
//! JSON itself, independently of the importer: the actions the agent took (its command lines,
//! fenced commands or function calls), what each returned, and what it submitted.

use serde_json::Value;
use trajforge_agent::Trajectory;
use trajforge_import::{Format, read_file};

use crate::fixture;

/// The real files: format and path under fixtures/.
pub const REAL: &[(Format, &str)] = &[
    (Format::SweAgent, "swe-agent/v0.4.0-missing-colon.traj"),
    (Format::SweAgent, "swe-agent/v0.7.0-humanevalfix-demo.traj"),
    (
        Format::SweAgent,
        "swe-agent/v0.7.0-ctf-networking-demo.traj",
    ),
    (Format::SweAgent, "swe-agent/v1-missing-colon.traj"),
    (Format::SweAgent, "swe-agent/v1-function-calling-demo.traj"),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/v1.9.1-local.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/v1.9.1-github_issue.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/v2.4.6-local.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/made-v1-text.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/made-v2-text.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/made-v2-toolcall.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/made-v2-responses.traj.json",
    ),
    (
        Format::MiniSweAgent,
        "mini-swe-agent/chunked_even.traj.json",
    ),
    (Format::Sera, "sera/Sera-4.6-Lite-T2-sample_raw-cut.json"),
];

/// The record of a source file: the file itself, or the one record of a JSON array of records
/// (a dataset's sample file).
fn record_of(source: &Value) -> &Value {
    match source.as_array().map(Vec::as_slice) {
        Some([record]) if record.get("messages").is_some_and(Value::is_string) => record,
        _ => source,
    }
}

/// One action of the source: the text it was given as, and what came back.
#[derive(Debug)]
struct Action {
    /// A SWE-agent command line, or a shell command.
    text: String,
    /// The function call the source records for it (name and arguments), if any.
    call: Option<(String, Value)>,
    /// The observation, when the source records one.
    observation: Option<String>,
}

/// A recorded OpenAI-style tool call as its name and parsed arguments.
fn recorded_call(c: &Value) -> Option<(String, Value)> {
    let f = &c["function"];
    let args = match &f["arguments"] {
        Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    Some((f["name"].as_str()?.to_string(), args))
}

/// What a source file says happened.
#[derive(Debug)]
struct Expected {
    /// Assistant turns, each with the actions it took.
    turns: Vec<Vec<Action>>,
    /// The submitted patch.
    patch: Option<String>,
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// SWE-agent: the steps of `trajectory[]`, or for a demonstration without steps, the
/// actions of the history and the message after each.
fn swe_agent(v: &Value) -> Expected {
    let steps = v["trajectory"].as_array().cloned().unwrap_or_default();
    // The function calls of the history's turns, in order (1.x, SERA).
    let calls: Vec<Option<(String, Value)>> = v["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|m| m["role"] == "assistant")
                .map(|m| m["tool_calls"].get(0).and_then(recorded_call))
                .collect()
        })
        .unwrap_or_default();
    let turns = if steps.is_empty() {
        let history = v["history"].as_array().cloned().unwrap_or_default();
        history
            .iter()
            .enumerate()
            .filter(|(_, m)| m["role"] == "assistant")
            .map(|(i, m)| {
                vec![Action {
                    text: m["action"].as_str().unwrap_or_default().trim().to_string(),
                    call: m["tool_calls"].get(0).and_then(recorded_call),
                    observation: history
                        .get(i + 1)
                        .filter(|n| n["role"] != "assistant")
                        .and_then(|n| text_of(n.get("content"))),
                }]
            })
            .collect()
    } else {
        steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                vec![Action {
                    text: s["action"].as_str().unwrap_or_default().trim().to_string(),
                    call: calls.get(k).cloned().flatten(),
                    observation: s["observation"].as_str().map(str::to_string),
                }]
            })
            .collect()
    };
    Expected {
        turns,
        patch: nonempty(v["info"]["submission"].as_str().map(str::to_string)),
    }
}

/// The one command of a fenced ```bash / ```mswea_bash_command block.
fn fenced(text: &str) -> Option<String> {
    ["```bash\n", "```mswea_bash_command\n"]
        .iter()
        .find_map(|open| {
            let start = text.find(open)? + open.len();
            let end = text[start..].find("```")? + start;
            Some(text[start..end].trim().to_string())
        })
}

fn command_of(arguments: &Value) -> Option<String> {
    let args: Value = serde_json::from_str(arguments.as_str()?).ok()?;
    args["command"].as_str().map(str::to_string)
}

/// mini-swe-agent: every assistant turn (a message or a Responses-API response) with its
/// commands, the observation messages after it, and the submission.
fn mini(v: &Value) -> Expected {
    let list = v
        .get("messages")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut turns: Vec<Vec<Action>> = Vec::new();
    let mut pending: Vec<Action> = Vec::new();
    let mut answered = 0;
    let flush = |turns: &mut Vec<Vec<Action>>, pending: &mut Vec<Action>| {
        if !pending.is_empty() {
            turns.push(std::mem::take(pending));
        }
    };
    let mut exit: Option<&Value> = None;
    for m in &list {
        let assistant = m["role"] == "assistant" || m["object"] == "response";
        if assistant {
            flush(&mut turns, &mut pending);
            answered = 0;
            // The commands of a list, each read by `pick`.
            let listed = |list: &Value, pick: &dyn Fn(&Value) -> Option<String>| -> Vec<String> {
                let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
                items.iter().filter_map(pick).collect()
            };
            let mut commands = listed(&m["extra"]["actions"], &|x| {
                x["command"].as_str().map(str::to_string)
            });
            if commands.is_empty() {
                commands = listed(&m["tool_calls"], &|c| {
                    command_of(&c["function"]["arguments"])
                });
            }
            if commands.is_empty() {
                commands = listed(&m["output"], &|i| {
                    let call = i["type"] == "function_call";
                    call.then(|| command_of(&i["arguments"])).flatten()
                });
            }
            if commands.is_empty()
                && let Some(c) = m["content"].as_str().and_then(fenced)
            {
                commands.push(c);
            }
            pending = commands
                .into_iter()
                .map(|text| Action {
                    text,
                    call: None,
                    observation: None,
                })
                .collect();
        } else if m["role"] == "exit" {
            exit = Some(m);
            if let Some(a) = pending.get_mut(answered) {
                a.observation = text_of(m.get("content"));
            }
        } else if answered < pending.len() && m["role"] != "system" {
            let text = text_of(m.get("output")).or_else(|| text_of(m.get("content")));
            pending[answered].observation = text;
            answered += 1;
        }
    }
    flush(&mut turns, &mut pending);
    let last = turns.last().and_then(|t| t.last());
    let submitted_by_command = last.is_some_and(|a| {
        a.text.starts_with("echo MINI_SWE_AGENT_FINAL_OUTPUT")
            || a.text
                .starts_with("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    });
    let patch = v["info"]["submission"]
        .as_str()
        .map(str::to_string)
        .or_else(|| exit.and_then(|e| e["extra"]["submission"].as_str().map(str::to_string)))
        .or_else(|| {
            submitted_by_command
                .then(|| last.and_then(|a| a.observation.clone()))
                .flatten()
        });
    Expected {
        turns,
        patch: nonempty(patch),
    }
}

/// The argument values of a call, as text, to find in the source's command line.
fn argument_texts(arguments: &str) -> Vec<String> {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    args.as_object()
        .map(|o| {
            o.values()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Differences between what the source holds and what was imported (empty when intact).
fn compare(t: &Trajectory, e: &Expected) -> Vec<String> {
    let mut problems = Vec::new();
    let acting: Vec<_> = t.steps.iter().filter(|s| !s.tools.is_empty()).collect();
    if acting.len() != e.turns.len() {
        problems.push(format!(
            "{} acting steps imported, the source has {} turns with actions",
            acting.len(),
            e.turns.len()
        ));
    }
    for (i, (step, turn)) in acting.iter().zip(&e.turns).enumerate() {
        if step.tools.len() != turn.len() {
            problems.push(format!(
                "step {i}: {} calls, source {}",
                step.tools.len(),
                turn.len()
            ));
            continue;
        }
        for (call, action) in step.tools.iter().zip(turn) {
            let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            let ok = match (&action.call, call.tool.as_str()) {
                (Some((name, source_args)), _) => *name == call.tool && *source_args == args,
                (None, tool) => match tool {
                    "bash" => args["command"].as_str() == Some(action.text.trim()),
                    // A command's arguments are words of its line (an edit's text is its body).
                    _ => {
                        action.text.split_whitespace().next() == Some(call.tool.as_str())
                            && argument_texts(&call.arguments)
                                .iter()
                                .all(|a| action.text.contains(a.as_str()))
                    }
                },
            };
            if !ok {
                problems.push(format!(
                    "step {i}: call {} {} does not match the action {:?}",
                    call.tool, call.arguments, action.text
                ));
            }
            if !t.tools.iter().any(|s| s.name == call.tool) {
                problems.push(format!("step {i}: no schema for tool {}", call.tool));
            }
            if let Some(obs) = &action.observation
                && !call.observation.text.contains(obs.trim())
            {
                problems.push(format!(
                    "step {i}: observation {:?} lost (imported {:?})",
                    obs.chars().take(60).collect::<String>(),
                    call.observation.text.chars().take(60).collect::<String>()
                ));
            }
        }
    }
    let patch = t.outcome.patch.clone().filter(|p| !p.trim().is_empty());
    if patch != e.patch {
        problems.push(format!(
            "patch {:?}, source {:?}",
            patch.map(|p| p.chars().take(40).collect::<String>()),
            e.patch
                .as_ref()
                .map(|p| p.chars().take(40).collect::<String>())
        ));
    }
    problems
}

/// What the source file holds, read independently of the importer.
fn expected(format: Format, v: &Value) -> Expected {
    match format {
        Format::SweAgent => swe_agent(v),
        Format::MiniSweAgent => mini(v),
        Format::Sera => {
            let history: Value =
                serde_json::from_str(v["messages"].as_str().unwrap_or("[]")).unwrap_or_default();
            let mut e = swe_agent(&serde_json::json!({"history": history}));
            e.patch = nonempty(v["rollout_patch"].as_str().map(str::to_string));
            e
        }
    }
}

#[test]
fn every_real_file_imports_with_steps_calls_observations_and_patch_intact() {
    let mut failures = Vec::new();
    for &(format, name) in REAL {
        let path = fixture(name);
        let source: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
        let parsed = read_file(format, &path).expect("reads");
        let [record] = parsed.records.as_slice() else {
            failures.push(format!(
                "{name}: {} records, skipped {:?}",
                parsed.records.len(),
                parsed.skipped
            ));
            continue;
        };
        let e = expected(format, record_of(&source));
        assert!(!e.turns.is_empty(), "{name}: the source has actions");
        let problems = compare(&record.trajectory, &e);
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} real files lose something:\n{}",
        failures.len(),
        REAL.len(),
        failures.join("\n")
    );
}

#[test]
fn sera_records_keep_their_steps_calls_observations_and_patch() {
    let path = fixture("sera/sera.jsonl");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let parsed = read_file(Format::Sera, &path).expect("reads");
    assert_eq!(parsed.records.len(), text.lines().count());
    for (line, record) in text.lines().zip(&parsed.records) {
        let source: Value = serde_json::from_str(line).expect("JSON");
        let problems = compare(&record.trajectory, &expected(Format::Sera, &source));
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn the_same_record_in_another_layout_has_the_same_key() {
    let pretty = fixture("swe-agent/v1-missing-colon.traj");
    let value: Value =
        serde_json::from_slice(&std::fs::read(&pretty).expect("fixture")).expect("JSON");
    let compact = format!("{}\n", serde_json::to_string(&value).expect("JSON"));
    let a = read_file(Format::SweAgent, &pretty).expect("reads");
    let b = trajforge_import::parse_bytes(
        Format::SweAgent,
        compact.as_bytes(),
        trajforge_import::Layout::Lines,
    );
    assert_eq!(b.records.len(), 1, "{:?}", b.skipped);
    assert_eq!(a.records[0].key, b.records[0].key);
    // Another record has another key.
    let other = read_file(
        Format::SweAgent,
        &fixture("swe-agent/v0.4.0-missing-colon.traj"),
    )
    .expect("reads");
    assert_ne!(a.records[0].key, other.records[0].key);
}

#[test]
fn a_step_only_in_trajectory_is_imported_in_order_and_kept_whole_in_raw() {
    let path = fixture("swe-agent/v1-missing-colon.traj");
    let source: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
    let r = &read_file(Format::SweAgent, &path).expect("reads").records[0];
    let t = &r.trajectory;
    // The history stops before the final submit; trajectory[] has it.
    assert_eq!(source["history"].as_array().map(Vec::len), Some(10));
    assert_eq!(source["trajectory"][4]["action"], "submit");
    let last = t.steps.last().expect("steps");
    assert_eq!(last.tools[0].tool, "submit");
    assert_eq!(
        Some(last.tools[0].observation.text.as_str()),
        source["trajectory"][4]["observation"].as_str()
    );
    assert!(last.tools[0].observation.done, "it submitted");
    // The conversation ends on the submit and its result, as the agent lived it.
    let n = t.messages.len();
    assert_eq!(t.messages[n - 2].tool_calls[0].name, "submit");
    assert_eq!(
        t.messages[n - 1].tool_call_id.as_deref(),
        Some(last.tools[0].id.as_str())
    );
    // The step stays whole in raw; steps the history holds keep only what it lacks.
    assert_eq!(r.raw["trajectory"][4], source["trajectory"][4]);
    assert!(r.raw["trajectory"][0].get("observation").is_none());
    assert_eq!(
        r.raw["trajectory"][0]["state"],
        source["trajectory"][0]["state"]
    );
}

#[test]
fn text_actions_keep_the_original_text_and_role_in_raw() {
    let path = fixture("mini-swe-agent/made-v2-text.traj.json");
    let source: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
    let r = &read_file(Format::MiniSweAgent, &path)
        .expect("reads")
        .records[0];
    let t = &r.trajectory;
    let original = source["messages"][2]["content"].as_str().expect("text");
    assert!(original.contains("```mswea_bash_command\ncat calc.py\n```"));
    assert_eq!(
        t.messages[2].content.as_deref(),
        Some("THOUGHT: Let me look at the file first.")
    );
    assert_eq!(t.messages[2].tool_calls[0].name, "bash");
    assert_eq!(
        t.messages[2].tool_calls[0].arguments,
        r#"{"command":"cat calc.py"}"#
    );
    assert_eq!(r.raw["message_fields"][2]["content"], original);
    assert_eq!(r.raw["message_fields"][3]["role"], "user");
    assert_eq!(t.messages[3].role, trajforge_teacher::Role::Tool);
    assert_eq!(t.steps[0].tools[0].observation.exit_code, Some(0));
    assert_eq!(
        t.tools.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["bash"]
    );
}

#[test]
fn exit_codes_come_from_the_observation_when_nothing_else_records_them() {
    let r = &read_file(
        Format::MiniSweAgent,
        &fixture("mini-swe-agent/made-v1-text.traj.json"),
    )
    .expect("reads")
    .records[0];
    let codes: Vec<Option<i32>> = r
        .trajectory
        .steps
        .iter()
        .map(|s| s.tools[0].observation.exit_code)
        .collect();
    // cat, the crash, the fix, the check; the submission carries no code.
    assert_eq!(codes, [Some(0), Some(1), Some(0), Some(0), None]);
}

#[test]
fn sources_without_schemas_get_their_tool_sets() {
    let names = |format, name: &str| -> Vec<String> {
        let r = &read_file(format, &fixture(name)).expect("reads").records[0];
        r.trajectory.tools.iter().map(|s| s.name.clone()).collect()
    };
    for sera in [
        "sera/sera.jsonl",
        "sera/Sera-4.6-Lite-T2-sample_raw-cut.json",
    ] {
        assert_eq!(
            names(Format::Sera, sera),
            ["bash", "str_replace_editor", "submit"]
        );
    }
    let old = names(Format::SweAgent, "swe-agent/v0.4.0-missing-colon.traj");
    for tool in [
        "open",
        "goto",
        "edit",
        "search_dir",
        "find_file",
        "submit",
        "bash",
    ] {
        assert!(old.iter().any(|n| n == tool), "{tool} in {old:?}");
    }
    assert_eq!(
        names(
            Format::MiniSweAgent,
            "mini-swe-agent/v1.9.1-local.traj.json"
        ),
        ["bash"]
    );
}

#[test]
fn records_that_are_not_trajectories_are_refused_with_what_they_look_like() {
    let chat = br#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#;
    let p =
        trajforge_import::parse_bytes(Format::MiniSweAgent, chat, trajforge_import::Layout::Lines);
    assert!(p.records.is_empty());
    assert!(
        p.skipped[0].reason.contains("not a trajectory"),
        "{:?}",
        p.skipped
    );
    let sera_row = br#"{"instance_id": "x", "messages": "[]", "rollout_patch": ""}"#;
    let p =
        trajforge_import::parse_bytes(Format::SweAgent, sera_row, trajforge_import::Layout::Lines);
    assert_eq!(
        p.skipped[0].looks_like,
        Some(Format::Sera),
        "{:?}",
        p.skipped
    );
    // SWE-agent steps with no action are no trajectory either.
    let rows = br#"{"trajectory": [{"response": "hi"}], "info": {}}"#;
    let p = trajforge_import::parse_bytes(Format::SweAgent, rows, trajforge_import::Layout::Lines);
    assert!(p.records.is_empty(), "{:?}", p.records.len());
    assert!(
        p.skipped[0].reason.contains("not a trajectory"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn every_source_field_without_a_place_stays_in_raw_untouched() {
    // Keys that become the message itself (role, text, calls) or the trajectory's own fields.
    const MESSAGE: &[&str] = &[
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "tool_call_ids",
        "name",
        "reasoning_content",
        "output",
        "call_id",
        "arguments",
        "type",
    ];
    const TOP: &[&str] = &["messages", "history", "trajectory", "info", "tools"];
    const INFO: &[&str] = &["submission", "exit_status"];
    for &(format, name) in REAL {
        let path = fixture(name);
        let whole: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
        let source = record_of(&whole);
        let r = &read_file(format, &path).expect("reads").records[0];
        let list = match source.get("history").or_else(|| source.get("messages")) {
            // SERA: the history as a JSON string.
            Some(Value::String(text)) => serde_json::from_str(text).expect("messages JSON"),
            Some(list) => list.as_array().cloned().unwrap_or_default(),
            None => source.as_array().cloned().unwrap_or_default(),
        };
        let fields = &r.raw["message_fields"];
        for (i, m) in list.iter().enumerate().filter(|(_, m)| m["role"] != "exit") {
            for (k, v) in m.as_object().expect("message") {
                if !MESSAGE.contains(&k.as_str()) {
                    assert_eq!(&fields[i][k], v, "{name}: message {i} field {k}");
                }
            }
        }
        if let Some(top) = source.as_object() {
            for (k, v) in top {
                // SERA's fields with a place: the task, both patches, and the subject.
                let placed = match k.as_str() {
                    "problem_statement" => Some(Value::from(r.trajectory.task.clone())),
                    "rollout_patch" => r.trajectory.outcome.patch.clone().map(Value::from),
                    "target_patch" => r.reference_patch.clone().map(Value::from),
                    "func_name" => r.subject.get("name").cloned(),
                    "func_path" => r.subject.get("path").cloned(),
                    "instance_id" | "docker_image" | "repo" => r.subject.get(k).cloned(),
                    _ => None,
                };
                if format == Format::Sera && placed.is_some() {
                    assert_eq!(placed.as_ref(), Some(v), "{name}: field {k}");
                } else if !TOP.contains(&k.as_str()) {
                    assert_eq!(r.raw.get(k), Some(v), "{name}: field {k}");
                }
            }
        }
        if let Some(info) = source["info"].as_object() {
            for (k, v) in info {
                if !INFO.contains(&k.as_str()) {
                    assert_eq!(&r.raw["info"][k], v, "{name}: info.{k}");
                }
            }
        }
        if let Some(steps) = source["trajectory"].as_array() {
            assert_eq!(
                r.raw["trajectory"].as_array().map(Vec::len),
                Some(steps.len()),
                "{name}"
            );
        }
    }
}
