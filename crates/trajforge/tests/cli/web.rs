//! `trajforge web generate` end to end: the real bidict documentation site crawled with the
//! real browser and replayed offline, and the scripted web teacher (which knows the crawled
//! page graph) behind the fake OpenAI-compatible server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trajforge_store::Location;
use trajforge_testkit::postgres::cluster;
use trajforge_testkit::web::{GraphPage, WebTeacher};
use trajforge_testkit::{FakeServer, Script};

use crate::site::bidict_docs;
use crate::{assert_success, kill_once_stored, status_json, stderr, taught, trajforge};

fn status(run: &Path) -> Value {
    status_json(run, &[])
}

/// Crawl `max_pages` pages of the bidict docs into `dir/site`, breadth first; returns the
/// folder and the page graph the scripted teacher navigates by.
pub(crate) fn crawl_site(html: &Path, dir: &Path, max_pages: usize) -> (PathBuf, Vec<GraphPage>) {
    let site = dir.join("site");
    // One tab: the pages (and so the start pages and tasks) are the same on every run; with
    // several tabs the first N pages recorded depend on which loads finish first.
    crate::site::crawl_dir(
        html,
        &site,
        &["--max-pages", &max_pages.to_string(), "--concurrency", "1"],
        dir,
    );
    let pages = crawl_graph(&site);
    (site, pages)
}

/// The page graph of a crawled site folder, as the scripted teacher navigates it.
pub(crate) fn crawl_graph(site: &Path) -> Vec<GraphPage> {
    crate::jsonl(&site.join("pages.jsonl"))
        .into_iter()
        .map(|v| GraphPage {
            url: v["url"].as_str().expect("url").to_string(),
            title: v["title"].as_str().unwrap_or("").to_string(),
            links: v["links"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_generate_keeps_agreeing_pairs_and_rejects_the_rest_reproducibly() {
    let Some(html) = bidict_docs() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (site, pages) = crawl_site(&html, tmp.path(), 30);
    assert_eq!(pages.len(), 30);
    let teacher = Arc::new(WebTeacher::new(pages));
    let server = FakeServer::start(Script::handler(move |req| teacher.answer(req))).await;

    let run_dir = tmp.path().join("run");
    let generate = |n: &str| {
        let mut cmd = taught(&["web", "generate"], &server.url());
        cmd.arg("--site")
            .arg(&site)
            .arg("--out")
            .arg(&run_dir)
            .args([
                "-n",
                n,
                "--start-pages",
                "3",
                "--seed",
                "5",
                "--max-steps",
                "8",
            ])
            .args(["--concurrency", "2", "--backoff", "0.01"]);
        tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
    };
    // A first part of the run, then the same command with a larger -n adds the rest.
    let out = generate("6").await.expect("join");
    assert_success(&out);
    let first = status(&run_dir);
    assert_eq!(
        (first["done"].as_u64(), first["kind"].as_str()),
        (Some(6), Some("web"))
    );
    let out = generate("14").await.expect("join");
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("6 already done"), "{text}");
    assert!(text.contains("coverage, intent x start page"), "{text}");

    let s = status(&run_dir);
    assert_eq!(s["done"].as_u64(), Some(14), "{s}");
    let results = s["results"].as_object().expect("results");
    for outcome in ["kept", "low_agreement", "t1_infeasible"] {
        assert!(results.contains_key(outcome), "{outcome} missing: {s}");
    }
    // Every finished rollout pair was verified from a replayed, offline site: the exits are
    // answers (submitted), and r = 1 happened.
    assert!(s["recall_exactly_one"].as_u64().unwrap_or(0) >= 1, "{s}");
    // ... and a kept pair that agreed only partly (same final page, another way there).
    let histogram: Vec<u64> = s["recall_histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|v| v.as_u64().unwrap_or(0))
        .collect();
    let at_one = s["recall_exactly_one"].as_u64().unwrap_or(0);
    assert!(histogram[5..].iter().sum::<u64>() > at_one, "{s}");
    assert_eq!(s["kept_t1"], s["kept_t2"]);
    let tried: u64 = s["coverage"]
        .as_object()
        .expect("coverage")
        .values()
        .flat_map(|pages| pages.as_object().into_iter().flat_map(|m| m.values()))
        .map(|c| c["tried"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(tried, 14);
    assert_eq!(
        s["exits"]
            .as_object()
            .expect("exits")
            .keys()
            .filter(|k| !k.ends_with("/submitted"))
            .count(),
        0,
        "{s}"
    );

    // Web runs export like code runs: both rollouts of every kept pair.
    let rows = export_openai(&[run_dir.to_str().expect("utf-8")], tmp.path(), "web.jsonl");
    assert_eq!(
        rows.len() as u64,
        2 * s["kept_t2"].as_u64().unwrap_or(0),
        "{s}"
    );
    for row in &rows {
        let tools = row["tools"].to_string();
        assert!(
            tools.contains("\"goto\"") && tools.contains("\"answer\""),
            "{tools}"
        );
        let calls = row["messages"].to_string();
        assert!(calls.contains("tool_calls"), "{calls}");
    }
}

/// A teacher whose rollouts answer at once, and whose request writer writes a plain request.
async fn answering_at_once() -> FakeServer {
    FakeServer::start(Script::handler(|req| {
        if req["tools"].as_array().is_some_and(|t| !t.is_empty()) {
            trajforge_testkit::Step::tool_call("answer", serde_json::json!({"text": "bidict"}))
        } else {
            trajforge_testkit::Step::text("Where do I start with this library?")
        }
    }))
    .await
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_url_is_crawled_into_the_run_folder_once_then_replayed() {
    let Some(html) = bidict_docs() else { return };
    // The site served live by another program (Python's http.server), as a user's site would be.
    let port = free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&html)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let url = format!("http://127.0.0.1:{port}/index.html");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fake = answering_at_once().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["web", "generate", "--site", &url, "--teacher", &fake.url()])
        .args(["--model", "m", "--out"])
        .arg(&run_dir)
        .args(["-n", "2", "--start-pages", "1", "--max-pages", "5"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join");
    let _ = server.kill();
    let _ = server.wait();
    assert_success(&out);
    assert!(stderr(&out).contains("crawled 5 pages"), "{}", stderr(&out));
    assert!(run_dir.join("site/site.json").is_file());
    assert_eq!(status(&run_dir)["results"]["kept"].as_u64(), Some(2));
    // The live server is gone: a resume with more tasks replays the recording. Its stdout is
    // closed from the start (`| head -1`): the run is not disturbed by it.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["web", "generate", "--site", &url, "--teacher", &fake.url()])
        .args(["--model", "m", "--out"])
        .arg(&run_dir)
        .args(["-n", "2", "--start-pages", "1", "--max-pages", "5"]);
    let out = tokio::task::spawn_blocking(move || crate::stdout::with_stdout_closed(&mut cmd))
        .await
        .expect("join");
    assert_success(&out);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("crawling"), "{}", stderr(&out));
    assert_eq!(status(&run_dir)["done"].as_u64(), Some(2));
}

/// The path and query of a URL (what task draws depend on).
fn site_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

/// The same site served on two ports, crawled from each, gives the same tasks for the same
/// seed; every rollout's first message shows its start page as the browser snapshot it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_site_on_another_port_draws_the_same_tasks() {
    let Some(html) = bidict_docs() else { return };
    let fake = answering_at_once().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut drawn = Vec::new();
    for (name, port) in [("a", free_port()), ("b", free_port())] {
        let site = tmp.path().join(format!("site-{name}"));
        let summary = crate::site::crawl_dir(
            &html,
            &site,
            // One tab: pages are recorded in breadth-first order, the same on both ports.
            &[
                "--max-pages",
                "8",
                "--port",
                &port.to_string(),
                "--concurrency",
                "1",
            ],
            tmp.path(),
        );
        assert_eq!(
            summary["origin"],
            format!("http://127.0.0.1:{port}"),
            "{summary}"
        );
        let run_dir = tmp.path().join(format!("run-{name}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
        cmd.args(["web", "generate", "--site"])
            .arg(&site)
            .args(["--teacher", &fake.url(), "--model", "m", "--out"])
            .arg(&run_dir)
            .args(["-n", "8", "--start-pages", "5", "--seed", "9"])
            .args(["--concurrency", "2", "--backoff", "0.01"]);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
            .await
            .expect("join");
        assert_success(&out);
        let store = trajforge_store::Store::open(&run_dir).expect("store");
        let jobs: Vec<(String, String)> = store
            .jobs()
            .expect("jobs")
            .iter()
            .map(|j| {
                let url = j.payload["start_url"].as_str().expect("start url");
                assert!(url.contains(&format!(":{port}/")), "{url}");
                (
                    j.payload["intent"].as_str().expect("intent").to_string(),
                    site_path(url),
                )
            })
            .collect();
        assert_eq!(jobs.len(), 8);
        // The first model call of each rollout saw the start page: URL, title, snapshot refs.
        for t in store.trajectories(true).expect("trajectories") {
            let task = t.data["messages"][1]["content"].as_str().expect("task");
            let job = store
                .jobs()
                .expect("jobs")
                .into_iter()
                .find(|j| j.id == t.meta.job_id)
                .expect("job");
            let start = job.payload["start_url"].as_str().expect("start");
            assert!(
                task.contains(&format!("\n\nURL: {start}\nTitle: ")),
                "{task}"
            );
            assert!(task.contains("[ref=e"), "{task}");
            assert_eq!(t.data["task"].as_str(), Some(task));
        }
        drawn.push(jobs);
    }
    let starts: std::collections::BTreeSet<&String> = drawn[0].iter().map(|(_, p)| p).collect();
    assert!(starts.len() > 1, "one start page only: {:?}", drawn[0]);
    assert_eq!(drawn[0], drawn[1]);
}

#[test]
fn bad_site_input_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let run_str = run.to_str().expect("utf-8");
    let tmp_str = tmp.path().to_str().expect("utf-8");
    // The teacher URL is unreachable: the site check must come first.
    let base = [
        "web",
        "generate",
        "--teacher",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--out",
        run_str,
    ];
    for (site, message) in [
        (tmp_str, "not a site folder (no site.json)"),
        ("nowhere-at-all", "neither a site folder nor an http(s) URL"),
    ] {
        let mut args = base.to_vec();
        args.extend(["--site", site]);
        let out = trajforge(&args, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
        assert!(!run.exists(), "RUN_DIR created for bad input");
    }
}

/// What a run produced, per job: its task, result, and per rollout the exit and final page.
fn run_digest(run: &Path) -> BTreeMap<String, Value> {
    digest_at(&Location::Folder(run.to_path_buf()))
}

/// [`run_digest`] of the run at `location` (a folder or a database's run).
fn digest_at(location: &Location) -> BTreeMap<String, Value> {
    let store = trajforge_store::Store::open_existing_at(location)
        .expect("store")
        .expect("the run exists");
    let jobs = store.jobs().expect("jobs");
    let mut out = BTreeMap::new();
    for t in store.trajectories(true).expect("trajectories") {
        let m = &t.meta;
        let job = jobs
            .iter()
            .find(|j| j.id == m.job_id)
            .expect("job of trajectory");
        let key = format!("{} #{} {}", job.key, m.attempt, m.rollout);
        let entry = serde_json::json!({
            "exit": m.exit_status,
            "kept": m.kept,
            "recall": m.recall,
            "final_url": t.data.pointer("/outcome/final_url").cloned().unwrap_or(Value::Null),
        });
        assert!(
            out.insert(key.clone(), entry).is_none(),
            "{key} stored twice"
        );
    }
    for j in &jobs {
        out.insert(
            format!("{} result", j.key),
            serde_json::json!([j.status, j.result]),
        );
    }
    out
}

/// Trajectories stored so far in a run that another process may be writing.
/// Chromium processes started for a run whose temp folder is `tmp` (their profiles live there).
fn browsers_under(tmp: &Path) -> Vec<u32> {
    let needle = tmp.to_string_lossy().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_web_generate_resumes_with_nothing_duplicated_or_lost_and_postgres_ends_alike() {
    let Some(html) = bidict_docs() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (site, pages) = crawl_site(&html, tmp.path(), 20);
    let teacher = Arc::new(WebTeacher::new(pages));
    // Slow answers, so that kills land in the middle of rollouts.
    let server = FakeServer::start(Script::handler(move |req| {
        teacher.answer(req).after(Duration::from_millis(50))
    }))
    .await;
    let browser_tmp = tmp.path().join("browser-tmp");
    std::fs::create_dir_all(&browser_tmp).expect("mkdir");
    let n = 6;
    let generate = |run_dir: &Path| {
        let mut cmd = taught(&["web", "generate"], &server.url());
        cmd.arg("--site")
            .arg(&site)
            .arg("--out")
            .arg(run_dir)
            .args(["-n", &n.to_string(), "--start-pages", "3", "--seed", "5"])
            .args([
                "--max-steps",
                "8",
                "--concurrency",
                "2",
                "--backoff",
                "0.01",
            ])
            .env("TMPDIR", &browser_tmp);
        cmd
    };
    let reference_dir = tmp.path().join("reference");
    let mut cmd = generate(&reference_dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join");
    assert_success(&out);
    let reference = run_digest(&reference_dir);
    assert_eq!(status(&reference_dir)["done"].as_u64(), Some(n as u64));

    let run_dir = tmp.path().join("killed");
    let mut progress = Vec::new();
    for _ in 0..3 {
        let mut child = generate(&run_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        kill_once_stored(&mut child, &run_dir).await;
        // The browsers of the killed run go too: their DevTools pipe closed with it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !browsers_under(&browser_tmp).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "browsers left behind by the killed run: {:?}",
                browsers_under(&browser_tmp)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if run_dir.join("trajforge.db").is_file() {
            let d = run_digest(&run_dir);
            let trajectories = d.keys().filter(|k| !k.ends_with(" result")).count();
            let done = status(&run_dir)["done"].as_u64().unwrap_or(0);
            progress.push((trajectories, done));
        }
    }
    // The kills landed mid-run: trajectories were stored, yet the run was not finished.
    assert!(
        progress.iter().any(|&(t, done)| t > 0 && done < n as u64),
        "{progress:?}"
    );
    let mut cmd = generate(&run_dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join");
    assert_success(&out);
    assert_eq!(status(&run_dir)["done"].as_u64(), Some(n as u64));
    assert_eq!(run_digest(&run_dir), reference);

    // The same run kept in PostgreSQL ends the same, and its status and export read from there.
    let url = cluster().fresh_database("web");
    let in_db = tmp.path().join("in-db");
    let mut cmd = generate(&in_db);
    cmd.args(["--store", &url, "--run", "w"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join");
    assert_success(&out);
    let location = Location::Postgres {
        url: url.clone(),
        run: "w".into(),
    };
    assert_eq!(digest_at(&location), reference);
    let s = crate::scaleout::pg_status(&url, "w");
    let folder = status(&reference_dir);
    for field in ["kind", "done", "kept_t2", "results", "coverage"] {
        assert_eq!(s[field], folder[field], "{field}: {s}");
    }
    let rows = export_openai(&["--store", &url, "--run", "w"], tmp.path(), "web-db.jsonl");
    assert_eq!(
        rows.len() as u64,
        2 * folder["kept_t2"].as_u64().unwrap_or(0)
    );
}

/// `trajforge export RUN --format openai` of the run `run` names (a folder, or --store and
/// --run) into `dir/name`; its rows.
fn export_openai(run: &[&str], dir: &Path, name: &str) -> Vec<Value> {
    let data = dir.join(name);
    let mut args = vec!["export"];
    args.extend_from_slice(run);
    args.extend(["--format", "openai", "--out", data.to_str().expect("utf-8")]);
    assert_success(&trajforge(&args, dir));
    crate::jsonl(&data)
}
