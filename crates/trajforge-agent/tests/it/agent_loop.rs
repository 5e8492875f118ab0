//! Every path of the loop, driven by the scripted fake teacher over a scripted environment.

use std::time::Duration;

use serde_json::json;
use trajforge_agent::{
    BoxFuture, EnvOutcome, Environment, ExitStatus, LoopConfig, Observation, run_episode,
};
use trajforge_teacher::{OpenAiTeacher, TeacherConfig, ToolCall, ToolSpec};
use trajforge_testkit::{FakeServer, Script, Step};

/// An environment with an `echo` tool and a two-phase `submit`, recording the calls.
#[derive(Default)]
struct EchoEnv {
    calls: Vec<String>,
    submits: usize,
}

impl Environment for EchoEnv {
    fn tools(&self) -> Vec<ToolSpec> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
        vec![
            ToolSpec {
                name: "echo".into(),
                description: "Echo text.".into(),
                parameters: schema,
            },
            ToolSpec {
                name: "submit".into(),
                description: "Submit.".into(),
                parameters: json!({"type": "object"}),
            },
        ]
    }

    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            self.calls.push(format!("{}:{}", call.name, call.arguments));
            match call.name.as_str() {
                "echo" => {
                    let args: serde_json::Value =
                        serde_json::from_str(&call.arguments).unwrap_or_default();
                    Observation::ok(format!("echo: {}", args["text"].as_str().unwrap_or("")))
                }
                _ => {
                    self.submits += 1;
                    let mut obs = Observation::ok(if self.submits == 1 {
                        "confirm by submitting again"
                    } else {
                        "submitted"
                    });
                    obs.done = self.submits >= 2;
                    obs
                }
            }
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome> {
        Box::pin(async move {
            EnvOutcome {
                patch: Some(format!("{} calls", self.calls.len())),
                ..EnvOutcome::default()
            }
        })
    }
}

fn teacher(server: &FakeServer) -> OpenAiTeacher {
    let mut config = TeacherConfig::new(server.url(), "fake-model");
    config.api_key = None;
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(20);
    config.request_timeout = Duration::from_secs(5);
    OpenAiTeacher::new(config).expect("teacher")
}

async fn run(
    steps: Vec<Step>,
    config: LoopConfig,
) -> (trajforge_agent::Trajectory, EchoEnv, FakeServer) {
    let server = FakeServer::start(Script::sequence(steps)).await;
    let teacher = teacher(&server);
    let mut env = EchoEnv::default();
    let mut events = 0usize;
    let traj = run_episode(&teacher, &mut env, "do the task", &config, &mut |_| {
        events += 1
    })
    .await;
    assert!(events > 0 || traj.steps.is_empty());
    (traj, env, server)
}

fn submit() -> Step {
    Step::tool_call("submit", json!({}))
}

#[tokio::test]
async fn a_normal_episode_is_recorded_step_by_step() {
    let first = trajforge_testkit::Reply::new()
        .reasoning("Let me look first.")
        .content("I will echo.")
        .tool_call("echo", json!({"text": "hi"}))
        .usage(100, 10);
    let (traj, env, server) = run(
        vec![Step::Reply(first), submit(), submit()],
        LoopConfig::default(),
    )
    .await;
    assert_eq!(traj.exit, ExitStatus::Submitted);
    assert_eq!(traj.steps.len(), 3);
    assert_eq!(
        env.calls,
        vec!["echo:{\"text\":\"hi\"}", "submit:{}", "submit:{}"]
    );
    let step = &traj.steps[0];
    assert_eq!(
        step.assistant.reasoning.as_deref(),
        Some("Let me look first.")
    );
    assert_eq!(step.tools[0].observation.text, "echo: hi");
    assert_eq!(step.usage.prompt_tokens, 100);
    assert!(traj.usage.prompt_tokens >= 100);
    assert_eq!(traj.outcome.patch.as_deref(), Some("3 calls"));
    // system, user, then (assistant, tool) per step
    assert_eq!(traj.messages.len(), 2 + 3 * 2);
    let tool_msg = &traj.messages[3];
    assert_eq!(
        tool_msg.tool_call_id.as_deref(),
        Some(step.tools[0].id.as_str())
    );
    // The second request carried the first observation back to the model.
    let second = &server.requests()[1];
    let sent = second["messages"].to_string();
    assert!(sent.contains("echo: hi"), "{sent}");
    assert_eq!(traj.tools.len(), 2);
}

#[tokio::test]
async fn three_malformed_calls_in_a_row_end_the_episode_after_error_observations() {
    let bad = || Step::Reply(trajforge_testkit::Reply::new().raw_tool_call("echo", "{not json"));
    let (traj, env, _server) =
        run(vec![bad(), bad(), bad(), submit()], LoopConfig::default()).await;
    assert_eq!(traj.exit, ExitStatus::MalformedCalls);
    assert_eq!(traj.steps.len(), 3);
    assert!(env.calls.is_empty(), "malformed calls are never run");
    assert!(traj.steps[0].tools[0].observation.error);
    assert!(
        traj.steps[0].tools[0]
            .observation
            .text
            .contains("could not be parsed")
    );
}

#[tokio::test]
async fn a_good_call_resets_the_malformed_count_and_text_only_answers_count() {
    let bad = || Step::Reply(trajforge_testkit::Reply::new().raw_tool_call("echo", "{"));
    let steps = vec![
        bad(),
        Step::text("I think I am done."),
        Step::tool_call("echo", json!({"text": "x"})),
        bad(),
        Step::tool_call("nope", json!({})),
        submit(),
        submit(),
    ];
    let (traj, _env, _server) = run(steps, LoopConfig::default()).await;
    assert_eq!(traj.exit, ExitStatus::Submitted);
    // The text-only answer was told to call a tool.
    assert!(traj.messages.iter().any(|m| {
        m.content
            .as_deref()
            .is_some_and(|c| c.contains("did not call a tool"))
    }));
    // An unknown tool is an error observation naming the real tools.
    let unknown = &traj.steps[4].tools[0].observation;
    assert!(
        unknown.error && unknown.text.contains("echo, submit"),
        "{}",
        unknown.text
    );
}

#[tokio::test]
async fn step_limit() {
    let steps = (0..5)
        .map(|i| Step::tool_call("echo", json!({"text": i.to_string()})))
        .collect();
    let config = LoopConfig {
        max_steps: 3,
        ..LoopConfig::default()
    };
    let (traj, env, server) = run(steps, config).await;
    assert_eq!(traj.exit, ExitStatus::StepLimit);
    assert_eq!(env.calls.len(), 3);
    assert_eq!(server.chat_request_count(), 3);
}

#[tokio::test]
async fn context_overflow_from_the_server_or_the_estimate() {
    let (traj, _env, server) = run(
        vec![
            Step::tool_call("echo", json!({"text": "a"})),
            Step::context_overflow(),
        ],
        LoopConfig::default(),
    )
    .await;
    assert_eq!(traj.exit, ExitStatus::ContextOverflow);
    assert_eq!(
        server.chat_request_count(),
        2,
        "context overflow is not retried"
    );

    let big = trajforge_testkit::Reply::new()
        .tool_call("echo", json!({"text": "x".repeat(4000)}))
        .usage(900, 10);
    let config = LoopConfig {
        max_context_tokens: Some(1000),
        ..LoopConfig::default()
    };
    let (traj, _env, server) = run(vec![Step::Reply(big), submit()], config).await;
    assert_eq!(traj.exit, ExitStatus::ContextOverflow);
    assert_eq!(
        server.chat_request_count(),
        1,
        "the second prompt was never sent"
    );
}

#[tokio::test]
async fn teacher_failure_after_retries_ends_the_episode_with_its_reason() {
    let steps = vec![
        Step::tool_call("echo", json!({"text": "a"})),
        Step::status(500, "boom"),
        Step::status(500, "boom"),
        Step::status(500, "boom"),
    ];
    let (traj, _env, server) = run(steps, LoopConfig::default()).await;
    match &traj.exit {
        ExitStatus::TeacherError(reason) => assert!(reason.contains("500"), "{reason}"),
        other => panic!("expected a teacher error, got {other:?}"),
    }
    assert_eq!(traj.steps.len(), 1);
    assert_eq!(server.chat_request_count(), 4);
}

#[tokio::test]
async fn transient_errors_are_retried_inside_a_step() {
    let steps = vec![
        Step::status(500, "flaky"),
        Step::DropConnection,
        submit(),
        submit(),
    ];
    let (traj, _env, _server) = run(steps, LoopConfig::default()).await;
    assert_eq!(traj.exit, ExitStatus::Submitted);
    assert_eq!(traj.steps[0].attempts, 3);
}

#[tokio::test]
async fn trajectory_round_trips_through_json() {
    let (traj, _env, _server) = run(vec![submit(), submit()], LoopConfig::default()).await;
    let text = serde_json::to_string(&traj).expect("serialise");
    let back: trajforge_agent::Trajectory = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(back.exit, traj.exit);
    assert_eq!(back.steps.len(), 2);
    assert!(text.contains("\"status\":\"submitted\""), "{text}");
}

#[tokio::test]
async fn the_same_call_with_the_same_result_five_times_ends_the_episode_as_stuck() {
    let same = || Step::tool_call("echo", json!({"text": "again"}));
    // Four repeats, a different call, then five repeats: only the second run is stuck.
    let mut steps: Vec<Step> = (0..4).map(|_| same()).collect();
    steps.push(Step::tool_call("echo", json!({"text": "other"})));
    steps.extend((0..8).map(|_| same()));
    let (traj, env, server) = run(steps, LoopConfig::default()).await;
    assert_eq!(traj.exit, ExitStatus::Stuck);
    assert_eq!(traj.exit.label(), "stuck");
    assert_eq!(env.calls.len(), 4 + 1 + 5);
    assert_eq!(server.chat_request_count(), 10);

    // The limit is settable, and 0 turns the guard off.
    let steps = (0..6).map(|_| same()).collect();
    let config = LoopConfig {
        max_repeats: 2,
        ..LoopConfig::default()
    };
    let (traj, env, _) = run(steps, config).await;
    assert_eq!((traj.exit, env.calls.len()), (ExitStatus::Stuck, 2));
    let steps = (0..6).map(|_| same()).collect();
    let config = LoopConfig {
        max_repeats: 0,
        max_steps: 6,
        ..LoopConfig::default()
    };
    let (traj, env, _) = run(steps, config).await;
    assert_eq!((traj.exit, env.calls.len()), (ExitStatus::StepLimit, 6));
}

#[tokio::test]
async fn oversized_answers_are_cut_with_a_note_in_the_prompt_and_the_trajectory() {
    use trajforge_agent::agent::{MAX_ARGUMENT_CHARS, MAX_MESSAGE_CHARS};
    let long_text = "t".repeat(MAX_MESSAGE_CHARS + 1000);
    let huge = json!({"text": "a".repeat(MAX_ARGUMENT_CHARS)});
    let first = trajforge_testkit::Reply::new()
        .reasoning(long_text.clone())
        .content(long_text.clone())
        .tool_call("echo", huge);
    let (traj, env, server) = run(
        vec![Step::Reply(first), submit(), submit()],
        LoopConfig::default(),
    )
    .await;
    assert_eq!(traj.exit, ExitStatus::Submitted);
    assert_eq!(
        env.calls,
        vec!["submit:{}", "submit:{}"],
        "the oversized call never ran"
    );
    let step = &traj.steps[0];
    let note =
        format!("[trajforge: 1000 characters cut here, over the limit of {MAX_MESSAGE_CHARS}]");
    for text in [&step.assistant.content, &step.assistant.reasoning] {
        let text = text.as_deref().expect("text");
        assert!(text.contains(&note), "{}", &text[..100]);
        assert!(text.chars().count() < MAX_MESSAGE_CHARS + 100);
    }
    let call = &step.assistant.tool_calls[0];
    assert!(
        call.arguments
            .contains("characters cut here, over the limit of 256000]")
    );
    assert!(call.arguments.len() < MAX_ARGUMENT_CHARS + 100);
    let observation = &step.tools[0].observation;
    assert!(observation.error);
    assert!(
        observation.text.contains(&format!(
            "its arguments are {} characters, over the limit of {MAX_ARGUMENT_CHARS}",
            MAX_ARGUMENT_CHARS + 11
        )),
        "{}",
        observation.text
    );
    // The next request carried the cut answer, not the whole one.
    let sent = server.requests()[1]["messages"].to_string();
    assert!(sent.contains(&note));
    assert!(
        sent.len() < 2 * MAX_MESSAGE_CHARS + MAX_ARGUMENT_CHARS + 20_000,
        "{}",
        sent.len()
    );
}

#[tokio::test]
async fn an_oversized_task_is_cut_with_a_note() {
    use trajforge_agent::agent::MAX_MESSAGE_CHARS;
    let server = FakeServer::start(Script::sequence(vec![submit(), submit()])).await;
    let teacher = teacher(&server);
    let mut env = EchoEnv::default();
    let task = "x".repeat(MAX_MESSAGE_CHARS + 10);
    let traj = run_episode(
        &teacher,
        &mut env,
        &task,
        &LoopConfig::default(),
        &mut |_| {},
    )
    .await;
    let user = traj.messages[1].content.as_deref().expect("task");
    assert!(user.contains(&format!(
        "[trajforge: 10 characters cut here, over the limit of {MAX_MESSAGE_CHARS}]"
    )));
    assert!(server.requests()[0]["messages"].to_string().len() < MAX_MESSAGE_CHARS + 2000);
}
