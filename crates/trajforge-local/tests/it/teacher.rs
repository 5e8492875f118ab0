//! The in-process teacher: grammar-constrained tool calls, plain messages, sampling
//! parameters and prefix reuse.

use trajforge_local::{LocalOptions, LocalTeacher, ToolChoice};
use trajforge_teacher::{ChatMessage, Sampling, Teacher, TeacherError, ToolMode};

use crate::{model_path, shared_teacher, test_options, tool_names, tools};

fn task() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You are a coding agent. Use the tools to inspect and fix the repository.",
        ),
        ChatMessage::user(
            "The function parse_date in utils.py crashes on empty strings. Find and fix it.",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_offered_always_yield_a_valid_call() {
    let teacher = shared_teacher();
    let names = tool_names();
    for seed in [1u64, 2, 3, 4] {
        let sampling = teacher.sampling_params(&Sampling {
            seed: Some(seed),
            ..Sampling::default()
        });
        let reply = teacher
            .generate(&task(), &tools(), &ToolChoice::Required, sampling)
            .await
            .unwrap();
        let calls = &reply.message.tool_calls;
        assert!(
            !calls.is_empty(),
            "seed {seed}: no call in {:?}",
            reply.generation.text
        );
        for call in calls {
            assert!(!call.is_malformed(), "seed {seed}: {call:?}");
            assert!(
                names.contains(&call.name),
                "seed {seed}: unknown tool {:?}",
                call.name
            );
            let args = call.arguments_json().unwrap();
            assert!(args.is_object(), "seed {seed}: {args}");
            if call.name == "bash" {
                assert!(args["command"].is_string(), "seed {seed}: {args}");
            }
        }
        assert_eq!(reply.finish_reason, "tool_calls");
        assert_eq!(reply.message.content, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teacher_trait_returns_calls_and_usage() {
    let teacher = shared_teacher();
    let completion = teacher.complete(&task(), &tools()).await.unwrap();
    assert!(!completion.message.tool_calls.is_empty());
    assert!(
        completion.usage.prompt_tokens > 100,
        "{:?}",
        completion.usage
    );
    assert!(
        completion.usage.completion_tokens > 5,
        "{:?}",
        completion.usage
    );
    assert_eq!(completion.attempts, 1);
    let info = teacher.describe();
    assert!(info.base_url.starts_with("local:"), "{info:?}");
    assert!(info.base_url.ends_with(".gguf"), "{info:?}");
    assert_eq!(info.model, "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(info.mode, ToolMode::Hermes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_choice_gives_a_call_or_a_message() {
    let teacher = shared_teacher();
    for seed in [5u64, 6, 7] {
        let sampling = teacher.sampling_params(&Sampling {
            seed: Some(seed),
            max_tokens: Some(96),
            ..Sampling::default()
        });
        let reply = teacher
            .generate(&task(), &tools(), &ToolChoice::Auto, sampling)
            .await
            .unwrap();
        let m = &reply.message;
        if m.tool_calls.is_empty() {
            let text = m.content.as_deref().unwrap_or_default();
            assert!(
                !text.trim().is_empty() && !text.starts_with('<'),
                "seed {seed}: {text:?}"
            );
        } else if reply.finish_reason != "length" {
            assert!(
                m.tool_calls.iter().all(|c| !c.is_malformed()),
                "seed {seed}: {m:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tools_a_plain_message() {
    let teacher = shared_teacher();
    let sampling = teacher.sampling_params(&Sampling {
        seed: Some(11),
        max_tokens: Some(48),
        ..Sampling::default()
    });
    let reply = teacher
        .generate(
            &[ChatMessage::user(
                "What is the capital of France? Answer in one sentence.",
            )],
            &[],
            &ToolChoice::Required,
            sampling,
        )
        .await
        .unwrap();
    let text = reply.message.content.unwrap_or_default();
    assert!(!text.trim().is_empty());
    assert!(reply.message.tool_calls.is_empty());
    assert!(["stop", "length"].contains(&reply.finish_reason));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_max_tokens_and_stop_are_honoured() {
    // Without prefix reuse every run computes exactly the same thing: identical seeds must
    // give identical text (with reuse, a differently batched KV cache may flip a near-tie).
    let teacher = std::sync::Arc::new(
        LocalTeacher::load(
            &model_path(),
            LocalOptions {
                prefix_reuse: false,
                ..test_options()
            },
        )
        .unwrap(),
    );
    let ask = [ChatMessage::user("Write a short poem about the sea.")];
    let run = |seed: u64, max: u32, stop: Vec<String>| {
        let teacher = teacher.clone();
        let ask = ask.clone();
        async move {
            let sampling = teacher.sampling_params(&Sampling {
                temperature: 0.9,
                seed: Some(seed),
                max_tokens: Some(max),
                stop,
                ..Sampling::default()
            });
            teacher
                .generate(&ask, &[], &ToolChoice::Auto, sampling)
                .await
                .unwrap()
        }
    };
    let a = run(42, 24, vec![]).await;
    let b = run(42, 24, vec![]).await;
    assert_eq!(a.generation.text, b.generation.text, "same seed, same text");
    assert!(a.generation.completion_tokens <= 24);
    let short = run(42, 5, vec![]).await;
    assert_eq!(short.generation.completion_tokens, 5);
    assert_eq!(short.finish_reason, "length");
    // Stop at the first space: the reply is the first word only.
    let stopped = run(42, 24, vec![" ".into()]).await;
    assert!(
        !stopped.generation.text.contains(' '),
        "{:?}",
        stopped.generation.text
    );
    assert_eq!(stopped.finish_reason, "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_conversation_reuses_the_prompt_prefix() {
    // Its own teacher: the shared one's cache is disturbed by the other tests.
    let short = LocalOptions {
        max_tokens: 64,
        ..test_options()
    };
    let teacher = LocalTeacher::load(&model_path(), short.clone()).unwrap();
    let mut messages = task();
    let first = teacher.complete(&messages, &tools()).await.unwrap();
    let stats1 = teacher.stats();
    assert_eq!(stats1.prompt_reused, 0);
    let assistant = first.message.clone();
    messages.push(assistant.clone());
    for call in &assistant.tool_calls {
        messages.push(ChatMessage::tool_result(
            call,
            "utils.py\nREADME.md\ntests/",
        ));
    }
    let second = teacher.complete(&messages, &tools()).await.unwrap();
    let stats2 = teacher.stats();
    let evaluated = stats2.prompt_evaluated - stats1.prompt_evaluated;
    let reused = stats2.prompt_reused - stats1.prompt_reused;
    let full = second.usage.prompt_tokens;
    assert!(full > first.usage.prompt_tokens);
    assert!(evaluated < full / 2, "evaluated {evaluated} of {full}");
    // The whole first prompt and the replayed assistant turn come from the cache.
    assert!(
        reused >= first.usage.prompt_tokens,
        "reused {reused}, first prompt {}",
        first.usage.prompt_tokens
    );
    assert_eq!(evaluated + reused, full);

    // Without reuse, everything is evaluated again.
    let cold = LocalTeacher::load(
        &model_path(),
        LocalOptions {
            prefix_reuse: false,
            ..short
        },
    )
    .unwrap();
    cold.complete(&task(), &tools()).await.unwrap();
    cold.complete(&messages, &tools()).await.unwrap();
    let s = cold.stats();
    assert_eq!(s.prompt_reused, 0);
    assert_eq!(s.prompt_evaluated, s.prompt_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_prompt_is_a_context_overflow() {
    let teacher = LocalTeacher::load(
        &model_path(),
        LocalOptions {
            n_ctx: Some(256),
            ..test_options()
        },
    )
    .unwrap();
    let long = "word ".repeat(600);
    let err = teacher
        .complete(&[ChatMessage::user(long)], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, TeacherError::ContextOverflow { .. }), "{err}");
    // The worker survives the error.
    let ok = teacher.complete(&[ChatMessage::user("hi")], &[]).await;
    assert!(ok.is_ok(), "{ok:?}");
}
