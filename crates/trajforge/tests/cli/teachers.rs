//! `generate --teacher URL1,URL2`: two scripted servers share a run, each episode stays on
//! one server, and a server that keeps failing does not stop the run; `status` shows
//! requests, errors and latency per server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use trajforge_testkit::code::expected_result;
use trajforge_testkit::{FakeServer, Script, Step};

use crate::generate::{generate_cmd_to, job_results, output, scene, server};
use crate::status_json;

/// The episode a request belongs to: its system prompt and first user message.
fn episode_of(request: &Value) -> String {
    format!(
        "{}\n{}",
        request["messages"][0]["content"], request["messages"][1]["content"]
    )
}

/// The per-server figures of `status --json`, by URL.
fn figures(run_dir: &std::path::Path) -> BTreeMap<String, Value> {
    let status = status_json(run_dir, &[]);
    status["teacher_servers"]
        .as_array()
        .expect("teacher_servers in status")
        .iter()
        .map(|s| (s["url"].as_str().unwrap_or("").to_string(), s.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_run_and_each_episode_stays_on_one() {
    let scene = scene();
    // A little latency so several requests are in flight at once and both servers are used.
    let (a, b) = (server(0, 30).await, server(0, 30).await);
    let run_dir = scene.dir.path().join("run");
    let teachers = format!("{},{}", a.url(), b.url());
    let out = output(generate_cmd_to(&scene, &teachers, &run_dir, 8, &[])).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    for (function, result) in job_results(&run_dir) {
        assert_eq!(result, expected_result(&function), "{function}");
    }

    let (on_a, on_b) = (a.requests(), b.requests());
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a: {} b: {}",
        on_a.len(),
        on_b.len()
    );
    let episodes_a: BTreeSet<String> = on_a.iter().map(episode_of).collect();
    let episodes_b: BTreeSet<String> = on_b.iter().map(episode_of).collect();
    let shared: Vec<&String> = episodes_a.intersection(&episodes_b).collect();
    assert!(shared.is_empty(), "episodes on both servers: {shared:?}");
    // Multi-step episodes (rollouts) made several requests, all to their one server.
    let per_episode = |reqs: &[Value]| {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for r in reqs {
            *n.entry(episode_of(r)).or_default() += 1;
        }
        n.into_values().max().unwrap_or(0)
    };
    assert!(per_episode(&on_a) >= 3 && per_episode(&on_b) >= 3);

    let f = figures(&run_dir);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[&a.url()]["requests"], on_a.len());
    assert_eq!(f[&b.url()]["requests"], on_b.len());
    for s in f.values() {
        assert_eq!(s["errors"], 0, "{s}");
        assert!(s["latency_seconds"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    }
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .arg("status")
        .arg(&run_dir)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("teacher servers:"), "{text}");
    assert!(
        text.contains(&format!("{}: {} requests, 0 errors", a.url(), on_a.len())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_is_taken_out_and_the_run_finishes_on_the_other() {
    let scene = scene();
    let broken = FakeServer::start(Script::repeat(Step::status(502, "bad gateway"))).await;
    let good = server(0, 0).await;
    let run_dir = scene.dir.path().join("run");
    let teachers = format!("{},{}", broken.url(), good.url());
    let out = output(generate_cmd_to(&scene, &teachers, &run_dir, 6, &[])).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let jobs = job_results(&run_dir);
    assert_eq!(jobs.len(), 6);
    for (function, result) in jobs {
        assert_eq!(result, expected_result(&function), "{function}: {stderr}");
    }
    let f = figures(&run_dir);
    let (bad, ok) = (&f[&broken.url()], &f[&good.url()]);
    assert!(bad["ejections"].as_u64().unwrap_or(0) >= 1, "{bad}");
    assert_eq!(bad["errors"], bad["requests"], "{bad}");
    assert!(bad["requests"].as_u64().unwrap_or(0) >= 3, "{bad}");
    assert_eq!(ok["errors"], 0, "{ok}");
    assert_eq!(ok["requests"], good.requests().len());
}
