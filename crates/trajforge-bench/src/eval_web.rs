//! The web case of `trajforge-bench eval`: `web eval`'s overhead per (task, seed) row on the
//! bidict documentation site, crawled and replayed offline, against an instant fake teacher
//! that goes to each task's target and answers. The baseline, measured in the same run on
//! the same recording and Chromium, is the browser work such an episode cannot avoid: open a
//! tab on the start page (with its snapshot), go to the target (with its snapshot), close.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_browser::{
    BrowserEnvironment, BrowserPool, CrawlConfig, EnvConfig, LaunchConfig, NetMode, Recording,
    StaticServer, crawl,
};
use trajforge_eval::{Task, WebIntent, write_jsonl};
use trajforge_pipeline::prepare::Budget;
use trajforge_pipeline::teacher::BuiltTeacher;
use trajforge_pipeline::webeval::{WebEvalSpec, draw, web_task};
use trajforge_testkit::{FakeServer, Script, ServerOptions, Step};

use crate::eval::{EvalArgs, conversation, cpu_seconds, drive_measured, instant_teacher};

/// The bidict docs of the test data (scripts/fetch-test-data.sh).
fn default_site() -> PathBuf {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/test-data"));
    data.join("sites/bidict-doc/usr/share/doc/python-bidict-doc/html")
}

/// Navigation tasks to the first `n` drawn targets of the recording in `dir`.
fn tasks(rec: &Recording, n: usize) -> Result<Vec<Task>, String> {
    let pages = rec.pages();
    let start = draw::start_page(pages, &rec.meta().start_url).ok_or("no pages recorded")?;
    Ok(draw::candidates(pages, start, 1)
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, mut c)| {
            c.intent = WebIntent::Navigate;
            let request = format!("Task {i}: take me to the page I have in mind.");
            let origin = &rec.meta().origin;
            web_task(origin, &pages[start], &pages[c.page], &c, request, None)
        })
        .collect())
}

/// An instant teacher that goes to the task's target, then answers.
async fn goto_teacher(tasks: &[Task]) -> FakeServer {
    let tasks = Arc::new(tasks.to_vec());
    let script = Script::handler(move |req: &Value| {
        let (all, turn) = conversation(req);
        match tasks
            .iter()
            .find(|t| all.contains(&t.problem_statement))
            .and_then(|t| t.web.clone())
        {
            Some(w) if turn == 0 => Step::tool_call("goto", json!({"url": w.target_url})),
            Some(w) => Step::tool_call("answer", json!({"text": w.target_title})),
            None => Step::tool_call("report_infeasible", json!({"reason": "unknown"})),
        }
    });
    FakeServer::start_with(script, ServerOptions::instant(Duration::ZERO, 64)).await
}

/// Run the web case and print its figures.
pub async fn run(args: &EvalArgs, base: &Path) -> Result<(), String> {
    let html = args.site.clone().unwrap_or_else(default_site);
    if !html.join("index.html").exists() {
        return Err(format!(
            "{}: no index.html; run scripts/fetch-test-data.sh (or pass --site)",
            html.display()
        ));
    }
    let site = base.join("site");
    let pool = BrowserPool::new(LaunchConfig::default(), 1);
    {
        let server = StaticServer::start(&html, 0)
            .await
            .map_err(|e| e.to_string())?;
        crawl(
            &pool,
            &CrawlConfig {
                start_url: format!("{}index.html", server.url()),
                out: site.clone(),
                max_pages: 40,
                time_limit: Some(Duration::from_secs(300)),
                max_snapshot_chars: EnvConfig::default().max_snapshot_chars,
                static_site: true,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let rec = Arc::new(Recording::open(&site).map_err(|e| e.to_string())?);
    let tasks = tasks(&rec, args.web_tasks)?;
    let tasks_file = base.join("web-tasks.jsonl");
    write_jsonl(&tasks_file, &tasks).map_err(|e| e.to_string())?;

    let server = goto_teacher(&tasks).await;
    let teacher: BuiltTeacher = instant_teacher(&server)?;
    let out = base.join("web-eval");
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let prepared = WebEvalSpec {
        out: out.clone(),
        store: None,
        site: site.clone(),
        tasks: tasks_file,
        seeds: args.seeds,
        prompts: None,
        max_steps: 6,
        browsers: args.concurrency.max(1),
        budget: Budget::default(),
    }
    .load()
    .and_then(|run| run.prepare(&teacher))
    .map_err(|e| e.to_string())?;
    let (wall, cpu, summary) =
        drive_measured(prepared, args.concurrency, &out, started, cpu0).await?;
    let rows = summary.all.rows.max(1) as f64;

    // The floor: the same pages through the same browser code, no model, store or scoring.
    let floor_started = Instant::now();
    let floor_pool = BrowserPool::new(LaunchConfig::default(), 1);
    let mut floor_rows = 0usize;
    for _ in 0..args.seeds {
        for t in &tasks {
            let Some(w) = &t.web else { continue };
            let mut env = BrowserEnvironment::start(
                &floor_pool,
                &w.start_url,
                NetMode::Replay(Arc::clone(&rec)),
                EnvConfig::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let obs = env.act("goto", &json!({"url": w.target_url})).await;
            if obs.error {
                return Err(format!(
                    "baseline: goto {} failed: {}",
                    w.target_url, obs.text
                ));
            }
            env.close().await;
            floor_rows += 1;
        }
    }
    let floor = floor_started.elapsed().as_secs_f64();
    floor_pool.shutdown().await;
    pool.shutdown().await;
    let floor_per = floor * 1000.0 / floor_rows.max(1) as f64;
    let per = wall * 1000.0 / rows;

    println!(
        "web eval benchmark: {} navigation tasks on the bidict docs ({} pages replayed) x {} seeds, instant fake teacher (goto the target, answer), {} in flight ({} teacher requests)",
        tasks.len(),
        rec.pages().len(),
        args.seeds,
        args.concurrency,
        server.chat_request_count()
    );
    println!(
        "  web eval: {} rows, {} succeeded; wall {wall:.2}s = {per:.0} ms per row (browser launch included); our CPU {:.0} ms per row",
        summary.all.rows,
        summary.all.resolved,
        cpu * 1000.0 / rows,
    );
    println!(
        "  baseline (the browser alone: tab on the start page, goto the target, snapshots, close; sequential, launch included): {floor_rows} rows, wall {floor:.2}s = {floor_per:.0} ms per row"
    );
    println!(
        "  overhead per row over the baseline (agent loop, teacher round trips, store, scoring): {:.0} ms wall at {} in flight",
        per - floor_per,
        args.concurrency
    );
    Ok(())
}
