//! `trajforge-bench teachers`: several teacher servers behind one client (issue 16).
//!
//! Scripted servers answer after a fixed latency and serve at most C requests at once (the
//! rest queue, like a saturated inference server). The same workload of concurrent multi-step
//! episodes runs against one such server (the baseline) and then against two: the figures are
//! the throughput of each, their ratio (target at least 1.8x) and, per episode, the share of
//! its requests that went to one server (target at least 95%).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use trajforge_teacher::{
    ChatMessage, OpenAiTeacher, RequestLimiter, Teacher, TeacherConfig, ToolSpec,
};
use trajforge_testkit::{FakeServer, Script, ServerOptions, Step};

/// Options of the several-servers benchmark.
#[derive(Debug, clap::Args)]
pub struct TeachersArgs {
    /// Requests each server serves at once (C).
    #[arg(long, default_value_t = 8)]
    pub slots: usize,
    /// Fixed latency of every answer, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Episodes running at once.
    #[arg(long, default_value_t = 64)]
    pub episodes: usize,
    /// Requests per episode.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
}

/// What one configuration did.
struct Outcome {
    requests: usize,
    wall: f64,
    /// Per server, the requests it answered.
    per_server: Vec<usize>,
    /// Per episode, the share of its requests on the server that got most of them.
    shares: Vec<f64>,
}

impl Outcome {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.wall
    }
}

/// Run the benchmark and print its figures.
pub fn run(args: TeachersArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        println!(
            "teachers: {} episodes x {} requests, servers answering in {} ms with {} slots each",
            args.episodes, args.steps, args.latency_ms, args.slots
        );
        let one = workload(&args, 1).await?;
        let two = workload(&args, 2).await?;
        for (name, o) in [("1 server ", &one), ("2 servers", &two)] {
            let min_share = o.shares.iter().copied().fold(1.0, f64::min);
            let mean_share = o.shares.iter().sum::<f64>() / o.shares.len().max(1) as f64;
            println!(
                "  {name}: {:>5} requests in {:>6.2} s = {:>7.1} requests/s; per server {:?}; \
                 episode share on one server: min {:.1}%, mean {:.1}%",
                o.requests,
                o.wall,
                o.throughput(),
                o.per_server,
                min_share * 100.0,
                mean_share * 100.0
            );
        }
        let ceiling = args.slots as f64 * 1000.0 / args.latency_ms as f64;
        println!("  ideal: {ceiling:.1} requests/s per server");
        let ratio = two.throughput() / one.throughput();
        let share = two.shares.iter().copied().fold(1.0, f64::min);
        println!(
            "  throughput ratio, 2 servers vs 1: {ratio:.2}x (target >= 1.8x): {}",
            verdict(ratio >= 1.8)
        );
        println!(
            "  smallest share of an episode's requests on one server: {:.1}% (target >= 95%): {}",
            share * 100.0,
            verdict(share >= 0.95)
        );
        Ok(())
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// The workload against `servers` scripted servers.
async fn workload(args: &TeachersArgs, servers: usize) -> Result<Outcome, String> {
    let mut fakes = Vec::new();
    for _ in 0..servers {
        let options = ServerOptions {
            latency: Duration::from_millis(args.latency_ms),
            max_concurrent: Some(args.slots),
            // Kept: the per-episode shares are read from what each server received.
            record: true,
            ..ServerOptions::default()
        };
        let script = Script::repeat(Step::tool_call(
            "bash",
            serde_json::json!({"command": "ls"}),
        ));
        fakes.push(FakeServer::start_with(script, options).await);
    }
    let mut config = TeacherConfig::new(fakes[0].url(), "fake-model");
    config.more_servers = fakes[1..].iter().map(FakeServer::url).collect();
    config.api_key = None;
    // The client's own cap is not the bottleneck: the servers' slots are.
    config.limiter = Arc::new(RequestLimiter::new(args.episodes));
    let teacher = Arc::new(OpenAiTeacher::new(config).map_err(|e| e.to_string())?);
    let tools = vec![ToolSpec {
        name: "bash".into(),
        description: "Run a command".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"command": {"type": "string"}}}),
    }];

    let started = Instant::now();
    let mut tasks = Vec::new();
    for episode in 0..args.episodes {
        let (teacher, tools, steps) = (Arc::clone(&teacher), tools.clone(), args.steps);
        tasks.push(tokio::spawn(async move {
            let mut messages = vec![
                ChatMessage::system("You are a careful engineer."),
                ChatMessage::user(format!("Episode {episode}: fix the bug.")),
            ];
            for step in 0..steps {
                let c = teacher
                    .complete(&messages, &tools)
                    .await
                    .map_err(|e| e.to_string())?;
                messages.push(c.message.clone());
                for call in &c.message.tool_calls {
                    messages.push(ChatMessage::tool_result(
                        call,
                        format!("output of step {step}"),
                    ));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let wall = started.elapsed().as_secs_f64();

    // Per episode, the requests each server received.
    let mut by_episode: HashMap<String, Vec<usize>> = HashMap::new();
    let mut per_server = Vec::new();
    for (i, fake) in fakes.iter().enumerate() {
        let requests = fake.requests();
        per_server.push(requests.len());
        for r in &requests {
            let key = r["messages"][1]["content"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| Value::Null.to_string());
            by_episode.entry(key).or_insert_with(|| vec![0; servers])[i] += 1;
        }
    }
    let shares = by_episode
        .values()
        .map(|counts| {
            let total: usize = counts.iter().sum();
            *counts.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64
        })
        .collect();
    Ok(Outcome {
        requests: per_server.iter().sum(),
        wall,
        per_server,
        shares,
    })
}
