//! The three source formats, field by field.
//!
//! - SERA: `messages` (a JSON string, or a list, of SWE-agent history messages),
//!   `instance_id`, `rollout_patch`, `func_name`, `func_path`, `problem_statement`,
//!   `target_patch`, `docker_image`. Tools: SWE-agent's defaults (see [`crate::tools`]).
//! - SWE-agent `.traj`: `history` (role, content, thought, action, tool_calls,
//!   tool_call_ids, message_type, ...), `trajectory[]` (response, thought, action,
//!   observation, execution_time, ...), `info` (submission, exit_status, model_stats, ...).
//!   0.x text actions (the history's `action`) become tool calls ([`crate::actions`]); steps
//!   only `trajectory[]` holds are added in order and stay whole in `raw`.
//! - mini-swe-agent: `messages[]` in OpenAI form, each with an optional `extra`, a final
//!   `exit` message in version 2, `info` (exit_status, submission, model_stats, config),
//!   `trajectory_format` ("mini-swe-agent-1", "mini-swe-agent-1.1"). Text actions (a fenced
//!   command) become `bash` calls; Responses-API items and a bare list of messages read too.
//!   A line holding only `messages` (and optionally `tools`), as OpenAI-messages training
//!   files do, reads too.

use serde_json::{Map, Value};
use trajforge_agent::{ExitStatus, Trajectory};
use trajforge_teacher::{ChatMessage, Role, TeacherInfo, ToolMode, ToolSpec, Usage};

use crate::convert::{self, StepInfo};
use crate::tools::{self, ToolSet};
use crate::{Format, actions, kind_of};

/// A parsed record before it gets its place in the file.
pub(crate) struct Parts {
    pub trajectory: Trajectory,
    pub raw: Map<String, Value>,
    pub reference_patch: Option<String>,
    pub subject: Map<String, Value>,
}

/// Why a record is not a trajectory of its format, as the user is told in its skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unrecognised(pub String);

impl From<&str> for Unrecognised {
    fn from(reason: &str) -> Self {
        Unrecognised(reason.to_string())
    }
}

pub(crate) fn parse(format: Format, object: Map<String, Value>) -> Result<Parts, Unrecognised> {
    match format {
        Format::Sera => sera(object),
        Format::SweAgent => swe_agent(object),
        Format::MiniSweAgent => mini(object),
    }
}

/// An exit status as SWE-agent or mini-swe-agent label it, in trajforge's terms. Labels
/// with no counterpart become `TeacherError(label)`; the original is kept in `raw` as well.
pub(crate) fn exit_status(label: &str) -> ExitStatus {
    let l = label.trim();
    let lower = l.to_ascii_lowercase();
    if lower.starts_with("submitted") {
        // SWE-agent writes "submitted (exit_cost)" when it auto-submitted at a limit.
        ExitStatus::Submitted
    } else if matches!(
        lower.as_str(),
        "exit_cost"
            | "exit_step_limit"
            | "limitsexceeded"
            | "timeexceeded"
            | "exit_total_execution_time"
            | "step_limit"
    ) {
        ExitStatus::StepLimit
    } else if lower == "exit_context"
        || lower.contains("contextwindow")
        || lower == "context_overflow"
    {
        ExitStatus::ContextOverflow
    } else if matches!(
        lower.as_str(),
        "exit_format" | "formaterror" | "repeatedformaterror" | "malformed_calls"
    ) {
        ExitStatus::MalformedCalls
    } else if matches!(
        lower.as_str(),
        "cancelled" | "keyboardinterrupt" | "interrupted"
    ) {
        ExitStatus::Cancelled
    } else if lower == "stuck" {
        ExitStatus::Stuck
    } else {
        ExitStatus::TeacherError(l.to_string())
    }
}

/// Take an object field out of `obj` (empty when absent); another value is an error.
fn take_object(
    obj: &mut Map<String, Value>,
    key: &str,
) -> Result<Map<String, Value>, Unrecognised> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(Unrecognised(format!(
            "`{key}` is {}, not an object",
            kind_of(&other)
        ))),
    }
}

/// Take a string field out of `obj`; a non-string value is an error.
fn take_str(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, Unrecognised> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Unrecognised(format!(
            "`{key}` is {}, not a string",
            kind_of(&other)
        ))),
    }
}

/// Messages, the fields of each that have no place in them, and the messages left out.
type Converted = (Vec<ChatMessage>, Vec<Map<String, Value>>, Vec<Value>);

/// Convert a list of history messages; `skip` drops (and returns) messages with no chat form.
fn convert_messages(
    list: &[Value],
    skip: &dyn Fn(&Value) -> bool,
) -> Result<Converted, Unrecognised> {
    let mut messages = Vec::with_capacity(list.len());
    let mut extras = Vec::with_capacity(list.len());
    let mut dropped = Vec::new();
    for (i, m) in list.iter().enumerate() {
        if skip(m) {
            dropped.push(m.clone());
            continue;
        }
        let (msg, extra) = convert::message(i, m)?;
        messages.push(msg);
        extras.push(extra);
    }
    if messages.is_empty() {
        return Err("no messages".into());
    }
    Ok((messages, extras, dropped))
}

/// Per-message extras as a list aligned with the messages, or nothing when all are empty.
fn extras_value(extras: &[Map<String, Value>]) -> Option<Value> {
    if extras.iter().all(Map::is_empty) {
        return None;
    }
    Some(Value::Array(
        extras
            .iter()
            .map(|e| {
                if e.is_empty() {
                    Value::Null
                } else {
                    Value::Object(e.clone())
                }
            })
            .collect(),
    ))
}

/// The first user message's text: the task as the agent saw it.
fn first_user_text(messages: &[ChatMessage], extras: &[Map<String, Value>]) -> String {
    messages
        .iter()
        .zip(extras)
        .find(|(m, e)| {
            m.role == Role::User
                && e.get("is_demo") != Some(&Value::Bool(true))
                && e.get("message_type").and_then(Value::as_str) != Some("demonstration")
        })
        .and_then(|(m, _)| m.content.clone())
        .unwrap_or_default()
}

fn teacher(format: Format, model: Option<String>) -> TeacherInfo {
    TeacherInfo {
        base_url: format!("import:{}", format.name()),
        model: model.unwrap_or_else(|| "unknown".into()),
        mode: ToolMode::Native,
    }
}

/// A trajectory read from a record: usage summed over its steps, no start time or duration
/// (the readers that know them set them).
fn imported(
    teacher: TeacherInfo,
    task: String,
    tools: Vec<ToolSpec>,
    messages: Vec<ChatMessage>,
    steps: Vec<trajforge_agent::Step>,
    exit: ExitStatus,
    patch: Option<String>,
) -> Trajectory {
    Trajectory {
        usage: total_usage(&steps),
        steps,
        exit,
        ..Trajectory::conversation(teacher, task, tools, messages, patch)
    }
}

/// The record's fields left after reading, with the `kept` entries that hold something and,
/// last, the per-message extras under `message_fields`.
fn rest_of<const N: usize>(
    mut raw: Map<String, Value>,
    kept: [(&str, Option<Value>); N],
    extras: &[Map<String, Value>],
) -> Map<String, Value> {
    let kept = kept
        .into_iter()
        .chain([("message_fields", extras_value(extras))]);
    for (key, value) in kept {
        if let Some(value) = value {
            raw.insert(key.into(), value);
        }
    }
    raw
}

fn total_usage(steps: &[trajforge_agent::Step]) -> Usage {
    steps.iter().fold(Usage::default(), |mut u, s| {
        u.prompt_tokens += s.usage.prompt_tokens;
        u.completion_tokens += s.usage.completion_tokens;
        u
    })
}

fn tools_of(v: Option<&Value>) -> Result<Vec<ToolSpec>, Unrecognised> {
    let Some(Value::Array(list)) = v else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            // OpenAI form {type, function: {...}} or the bare function object.
            let f = t.get("function").unwrap_or(t);
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Unrecognised(format!("tool {i} has no name")))?;
            Ok(ToolSpec {
                name: name.to_string(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

/// Every tool call of the messages, in order.
fn all_calls(messages: &[ChatMessage]) -> impl Iterator<Item = &trajforge_teacher::ToolCall> {
    messages.iter().flat_map(|m| m.tool_calls.iter())
}

/// SWE-agent's default tools when the calls stay within them, else its command set.
fn swe_agent_tool_set(messages: &[ChatMessage]) -> ToolSet {
    if all_calls(messages)
        .all(|c| matches!(c.name.as_str(), "bash" | "str_replace_editor" | "submit"))
    {
        ToolSet::SweAgentDefault
    } else {
        ToolSet::SweAgentCommands
    }
}

/// A trajectory acts: a record whose assistant turns never call a tool nor run a command
/// (a chat or dataset row) is not one.
fn require_actions(messages: &[ChatMessage]) -> Result<(), Unrecognised> {
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        return Err("not a trajectory: no assistant message".into());
    }
    if all_calls(messages).next().is_none() {
        return Err("not a trajectory: no assistant message calls a tool or runs a command".into());
    }
    Ok(())
}

/// The role SWE-agent gives an observation: `tool` answering a function call, else `user`.
fn observation_message(step: usize, observation: &str, call_id: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert(
        "role".into(),
        Value::String(if call_id.is_some() { "tool" } else { "user" }.into()),
    );
    m.insert("content".into(), Value::String(observation.to_string()));
    if let Some(id) = call_id {
        m.insert(
            "tool_call_ids".into(),
            Value::Array(vec![Value::String(id.to_string())]),
        );
    }
    m.insert("trajectory_step".into(), step.into());
    Value::Object(m)
}

/// Bring into the history what only SWE-agent's `trajectory[]` holds: steps after the last
/// one the history has (often the final `submit`), and the observation of a history action
/// that has none (a demonstration's last step). Returns the steps so used, which stay whole
/// in `raw`.
fn merge_steps(history: &mut Vec<Value>, steps: &[Value]) -> Vec<usize> {
    let action_of = |v: &Value| {
        v.get("action")
            .and_then(Value::as_str)
            .map(|a| a.trim().to_string())
    };
    let is_assistant = |v: &Value| v.get("role").and_then(Value::as_str) == Some("assistant");
    let function_calling = history.iter().any(|m| {
        m.get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty())
    });
    let mut whole = Vec::new();
    let mut cursor = 0;
    for (k, step) in steps.iter().enumerate() {
        let Some(action) = action_of(step) else {
            continue;
        };
        let observation = step.get("observation").and_then(Value::as_str);
        let found = (cursor..history.len()).find(|&h| {
            is_assistant(&history[h]) && action_of(&history[h]).as_deref() == Some(action.as_str())
        });
        if let Some(h) = found {
            cursor = h + 1;
            let answered = history.get(h + 1).is_some_and(|n| {
                matches!(n.get("role").and_then(Value::as_str), Some("tool" | "user"))
                    && n.get("is_demo") != Some(&Value::Bool(true))
            });
            if !answered && let Some(text) = observation {
                let id = history[h]
                    .pointer("/tool_calls/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                history.insert(h + 1, observation_message(k, text, id.as_deref()));
                cursor = h + 2;
                whole.push(k);
            }
            continue;
        }
        // Past the end of the history: the step is not in it.
        if (cursor..history.len()).any(|h| is_assistant(&history[h])) {
            continue;
        }
        let thought = step
            .get("thought")
            .or_else(|| step.get("response"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut m = Map::new();
        m.insert("role".into(), Value::String("assistant".into()));
        m.insert("content".into(), thought);
        m.insert("trajectory_step".into(), k.into());
        let id = format!("import-step-{k}");
        if function_calling {
            let (name, args) = actions::swe_agent(&action);
            let mut f = Map::new();
            f.insert("name".into(), Value::String(name));
            f.insert("arguments".into(), Value::String(args.to_json()));
            let mut call = Map::new();
            call.insert("id".into(), Value::String(id.clone()));
            call.insert("type".into(), Value::String("function".into()));
            call.insert("function".into(), Value::Object(f));
            m.insert("tool_calls".into(), Value::Array(vec![Value::Object(call)]));
        } else {
            m.insert("action".into(), Value::String(action.clone()));
        }
        history.push(Value::Object(m));
        if let Some(text) = observation {
            history.push(observation_message(
                k,
                text,
                function_calling.then_some(id.as_str()),
            ));
        }
        cursor = history.len();
        whole.push(k);
    }
    whole
}

fn sera(mut obj: Map<String, Value>) -> Result<Parts, Unrecognised> {
    if !["instance_id", "rollout_patch", "target_patch"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        let hint = if obj.contains_key("history") || obj.contains_key("trajectory") {
            " (this looks like a SWE-agent .traj: use --from swe-agent)"
        } else if obj.contains_key("info") || obj.contains_key("trajectory_format") {
            " (this looks like a mini-swe-agent trajectory: use --from mini-swe-agent)"
        } else {
            ""
        };
        return Err(Unrecognised(format!(
            "no `instance_id`, `rollout_patch` or `target_patch`: not a SERA record{hint}"
        )));
    }
    let history: Vec<Value> = match obj.remove("messages") {
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Array(list)) => list,
            Ok(other) => {
                return Err(Unrecognised(format!(
                    "`messages` holds {}, not a list of messages",
                    kind_of(&other)
                )));
            }
            Err(e) => return Err(Unrecognised(format!("`messages` is not a JSON list: {e}"))),
        },
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(Unrecognised(format!(
                "`messages` is {}, not a JSON string of the history",
                kind_of(&other)
            )));
        }
        None => {
            return Err(
                "not a trajectory: no `messages` (a SERA record holds its history there)".into(),
            );
        }
    };
    let (mut messages, mut extras, _) = convert_messages(&history, &|_| false)?;
    convert::text_actions(&mut messages, &mut extras, &|_, e| {
        let action = e.get("action").and_then(Value::as_str)?;
        Some(convert::TextAction {
            calls: vec![actions::swe_agent(action)],
            thought: e
                .get("thought")
                .and_then(Value::as_str)
                .map(|t| t.trim_end().to_string()),
        })
    });
    require_actions(&messages)?;
    let rollout_patch = take_str(&mut obj, "rollout_patch")?;
    let target_patch = take_str(&mut obj, "target_patch")?;
    let problem = take_str(&mut obj, "problem_statement")?;
    let mut subject = Map::new();
    for (from, to) in [
        ("repo", "repo"),
        ("instance_id", "instance_id"),
        ("func_name", "name"),
        ("func_path", "path"),
        ("docker_image", "docker_image"),
    ] {
        if let Some(v) = take_str(&mut obj, from)? {
            subject.insert(to.into(), Value::String(v));
        }
    }
    // SERA's records carry no exit status: those with a patch were submitted.
    let exit = match take_str(&mut obj, "exit_status")? {
        Some(label) => exit_status(&label),
        None if rollout_patch
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty()) =>
        {
            ExitStatus::Submitted
        }
        None => ExitStatus::TeacherError("no patch recorded".into()),
    };
    let submitted = exit == ExitStatus::Submitted;
    let steps = convert::steps(&messages, &extras, &|_, _| StepInfo::default(), submitted);
    let task = problem.unwrap_or_else(|| first_user_text(&messages, &extras));
    let raw = rest_of(obj, [], &extras);
    let tools = tools::attach(swe_agent_tool_set(&messages), all_calls(&messages));
    Ok(Parts {
        trajectory: imported(
            teacher(Format::Sera, None),
            task,
            tools,
            messages,
            steps,
            exit,
            rollout_patch,
        ),
        raw,
        reference_patch: target_patch.filter(|p| !p.trim().is_empty()),
        subject,
    })
}

/// A JSON value that may be stored as a JSON string of itself (SWE-agent's `replay_config`).
fn maybe_json_string(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

fn swe_agent(mut obj: Map<String, Value>) -> Result<Parts, Unrecognised> {
    let trajectory_steps = match obj.remove("trajectory") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(Unrecognised(format!(
                "`trajectory` is {}, not a list",
                kind_of(&other)
            )));
        }
    };
    let history: Vec<Value> = match obj.remove("history") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(Unrecognised(format!(
                "`history` is {}, not a list",
                kind_of(&other)
            )));
        }
        // Without a history, rebuild the conversation from the steps.
        None if !trajectory_steps.is_empty() => trajectory_steps
            .iter()
            .flat_map(|s| {
                let text = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
                [
                    serde_json::json!({"role": "assistant", "content": text("thought"),
                                       "action": text("action")}),
                    serde_json::json!({"role": "user", "content": text("observation")}),
                ]
            })
            .collect(),
        None if obj.contains_key("messages") => {
            let hint = if obj.get("messages").is_some_and(Value::is_string) {
                "a SERA record (use --from sera)"
            } else {
                "a mini-swe-agent trajectory (use --from mini-swe-agent)"
            };
            return Err(Unrecognised(format!(
                "no `history` and no `trajectory` but `messages`: this looks like {hint}"
            )));
        }
        None => return Err("not a trajectory: no `history` and no `trajectory` (a SWE-agent .traj holds its turns there)".into()),
    };
    let mut history = history;
    let whole = merge_steps(&mut history, &trajectory_steps);
    let (mut messages, mut extras, _) = convert_messages(&history, &|_| false)?;
    convert::text_actions(&mut messages, &mut extras, &|m, e| {
        let action = e.get("action").and_then(Value::as_str)?;
        let thought = match e.get("thought").and_then(Value::as_str) {
            Some(t) => Some(t.trim_end().to_string()),
            None => m.content.clone(),
        };
        Some(convert::TextAction {
            calls: vec![actions::swe_agent(action)],
            thought,
        })
    });
    require_actions(&messages)?;
    let mut info = take_object(&mut obj, "info")?;
    let submission = take_str(&mut info, "submission")?;
    let exit = match take_str(&mut info, "exit_status")? {
        Some(label) => {
            info.insert("exit_status".into(), Value::String(label.clone()));
            exit_status(&label)
        }
        None if submission.as_deref().is_some_and(|p| !p.trim().is_empty()) => {
            ExitStatus::Submitted
        }
        None => ExitStatus::TeacherError("no exit status recorded".into()),
    };
    let submitted = exit == ExitStatus::Submitted;
    let replay = maybe_json_string(obj.get("replay_config"));
    let model = replay
        .as_ref()
        .and_then(|r| r.pointer("/agent/model/name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let problem = replay
        .as_ref()
        .and_then(|r| r.pointer("/problem_statement/text"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // The repository, for an export's decontamination filter.
    let mut subject = Map::new();
    if let Some(repo) = replay.as_ref().and_then(|r| {
        ["/env/repo/github_url", "/env/repo/repo_name"]
            .iter()
            .find_map(|p| r.pointer(p).and_then(Value::as_str))
    }) {
        subject.insert("repo".into(), Value::String(repo.to_string()));
    }
    let tool_times: Vec<std::time::Duration> = trajectory_steps
        .iter()
        .map(|s| convert::seconds(s.get("execution_time")))
        .collect();
    let steps = convert::steps(
        &messages,
        &extras,
        &|k, _| StepInfo {
            tool_time: tool_times.get(k).copied().unwrap_or_default(),
            ..StepInfo::default()
        },
        submitted,
    );
    let mut usage = total_usage(&steps);
    if usage == Usage::default() {
        let stats = info.get("model_stats");
        let n = |k: &str| {
            stats
                .and_then(|s| s.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        usage = Usage {
            prompt_tokens: n("tokens_sent"),
            completion_tokens: n("tokens_received"),
        };
    }
    let duration = tool_times.iter().sum();
    let task = problem.unwrap_or_else(|| first_user_text(&messages, &extras));
    // What the steps hold beyond what the history and the durations already give.
    // Steps whose turn or observation the history lacked stay whole.
    let step_rest: Vec<Value> = trajectory_steps
        .into_iter()
        .enumerate()
        .map(|(k, s)| match s {
            Value::Object(m) if whole.contains(&k) => Value::Object(m),
            Value::Object(mut m) => {
                for k in [
                    "response",
                    "thought",
                    "action",
                    "observation",
                    "execution_time",
                ] {
                    m.remove(k);
                }
                Value::Object(m)
            }
            other => other,
        })
        .collect();
    let rest_steps = step_rest
        .iter()
        .any(|s| s.as_object().is_none_or(|m| !m.is_empty()));
    let raw = rest_of(
        obj,
        [
            ("trajectory", rest_steps.then_some(Value::Array(step_rest))),
            ("info", (!info.is_empty()).then_some(Value::Object(info))),
        ],
        &extras,
    );
    let tools = tools::attach(swe_agent_tool_set(&messages), all_calls(&messages));
    let trajectory = imported(
        teacher(Format::SweAgent, model),
        task,
        tools,
        messages,
        steps,
        exit,
        submission,
    );
    Ok(Parts {
        trajectory: Trajectory {
            usage,
            duration,
            ..trajectory
        },
        raw,
        reference_patch: None,
        subject,
    })
}

fn mini(mut obj: Map<String, Value>) -> Result<Parts, Unrecognised> {
    if let Some(Value::String(f)) = obj.get("trajectory_format")
        && !f.starts_with("mini-swe-agent")
    {
        return Err(Unrecognised(format!(
            "trajectory_format {f:?} is not mini-swe-agent's"
        )));
    }
    let list = match obj.remove("messages") {
        Some(Value::Array(list)) => list,
        Some(Value::String(_)) => {
            return Err(
                "`messages` is a JSON string: this looks like a SERA record (use --from sera)"
                    .into(),
            );
        }
        Some(other) => {
            return Err(Unrecognised(format!(
                "`messages` is {}, not a list",
                kind_of(&other)
            )));
        }
        None if obj.contains_key("history") => {
            return Err("no `messages` but a `history`: this looks like a SWE-agent .traj (use --from swe-agent)".into());
        }
        None => return Err(
            "not a trajectory: no `messages` (a mini-swe-agent trajectory holds its turns there)"
                .into(),
        ),
    };
    // Version 2 ends with an `exit` message holding the exit status and submission.
    let (mut messages, mut extras, dropped) = convert_messages(&list, &|m| {
        m.get("role").and_then(Value::as_str) == Some("exit")
    })?;
    // Text-based actions: 2.x records the parsed command in `extra.actions`; 1.x only has the
    // fenced block in the text.
    convert::text_actions(&mut messages, &mut extras, &|m, e| {
        let text = m.content.as_deref().unwrap_or_default();
        let block = actions::mini_block(text);
        let recorded: Vec<String> = e
            .get("extra")
            .and_then(|x| x.get("actions"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("command").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let commands = if recorded.is_empty() {
            vec![block.as_ref()?.0.clone()]
        } else {
            recorded
        };
        Some(convert::TextAction {
            calls: commands
                .into_iter()
                .map(|c| {
                    let args = actions::Args(vec![("command".to_string(), Value::String(c))]);
                    ("bash".to_string(), args)
                })
                .collect(),
            thought: block.map_or_else(|| m.content.clone(), |(_, around)| Some(around)),
        })
    });
    require_actions(&messages)?;
    let exit_extra = dropped
        .last()
        .and_then(|m| m.get("extra"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut info = take_object(&mut obj, "info")?;
    let submission = take_str(&mut info, "submission")?.or_else(|| {
        exit_extra
            .get("submission")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let label = take_str(&mut info, "exit_status")?.or_else(|| {
        exit_extra
            .get("exit_status")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    // A bare list of messages records no exit: it submitted when its last command is the
    // submit command, and that command's output is the submission.
    let last_call = messages.iter().rev().find_map(|m| m.tool_calls.last());
    let submit_command = last_call
        .and_then(|c| c.arguments_json().ok())
        .and_then(|a| {
            a.get("command")
                .and_then(Value::as_str)
                .map(actions::mini_submits)
        })
        .unwrap_or(false);
    let listed_submission = || {
        let id = last_call.map(|c| c.id.as_str())?;
        messages
            .iter()
            .find(|m| m.role == Role::Tool && m.tool_call_id.as_deref() == Some(id))
            .and_then(|m| m.content.clone())
    };
    let (label, submission) = match (label, submission) {
        (None, None) if submit_command => (Some("Submitted".to_string()), listed_submission()),
        other => other,
    };
    let exit = match &label {
        Some(l) => {
            info.insert("exit_status".into(), Value::String(l.clone()));
            exit_status(l)
        }
        None => ExitStatus::TeacherError("no exit status recorded".into()),
    };
    let submitted = exit == ExitStatus::Submitted;
    let model = info
        .get("config")
        .and_then(|c| c.pointer("/model/model_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut tools = tools_of(obj.get("tools"))?;
    if tools.is_empty() {
        tools = tools::attach(ToolSet::Mini, all_calls(&messages));
    } else {
        obj.remove("tools");
    }
    let mut steps = convert::steps(
        &messages,
        &extras,
        &|_, e| {
            let extra = e.get("extra");
            StepInfo {
                started_at_ms: convert::epoch_ms(extra.and_then(|x| x.get("timestamp"))),
                usage: convert::usage_of(
                    extra
                        .and_then(|x| x.pointer("/response/usage"))
                        .or_else(|| e.get("usage")),
                ),
                tool_time: std::time::Duration::ZERO,
            }
        },
        submitted,
    );
    // 2.x answers the submit command with its `exit` message, not a tool message: what it
    // submitted is that command's output.
    if let Some(out) = dropped
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        && let Some(last) = steps.last_mut().and_then(|s| s.tools.last_mut())
        && last.observation.error
        && submit_command
    {
        last.observation = trajforge_agent::Observation {
            text: out.to_string(),
            exit_code: None,
            error: false,
            done: submitted,
            duration: std::time::Duration::ZERO,
        };
    }
    let started_at_ms = steps
        .iter()
        .map(|s| s.started_at_ms)
        .find(|&t| t > 0)
        .unwrap_or(0);
    let task = first_user_text(&messages, &extras);
    let raw = rest_of(
        obj,
        [
            ("info", (!info.is_empty()).then_some(Value::Object(info))),
            (
                "exit_messages",
                (!dropped.is_empty()).then_some(Value::Array(dropped)),
            ),
        ],
        &extras,
    );
    let trajectory = imported(
        teacher(Format::MiniSweAgent, model),
        task,
        tools,
        messages,
        steps,
        exit,
        submission.filter(|s| !s.is_empty()),
    );
    Ok(Parts {
        trajectory: Trajectory {
            started_at_ms,
            ..trajectory
        },
        raw,
        reference_patch: None,
        subject: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_labels_of_both_tools_map() {
        assert_eq!(exit_status("submitted"), ExitStatus::Submitted);
        assert_eq!(exit_status("submitted (exit_cost)"), ExitStatus::Submitted);
        assert_eq!(exit_status("Submitted"), ExitStatus::Submitted);
        assert_eq!(exit_status("LimitsExceeded"), ExitStatus::StepLimit);
        assert_eq!(exit_status("exit_context"), ExitStatus::ContextOverflow);
        assert_eq!(exit_status("FormatError"), ExitStatus::MalformedCalls);
        assert_eq!(
            exit_status("exit_environment_error"),
            ExitStatus::TeacherError("exit_environment_error".into())
        );
    }

    #[test]
    fn wrong_format_is_named() {
        let sera_line = serde_json::json!({"messages": "[]", "instance_id": "x"});
        let o = sera_line.as_object().cloned().expect("object");
        let err = mini(o).err().expect("rejected").0;
        assert!(err.contains("--from sera"), "{err}");
    }
}
