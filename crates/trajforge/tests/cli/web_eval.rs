//! `trajforge web tasks` and `trajforge web eval` end to end: the real bidict documentation
//! site crawled with the real browser and replayed offline, a scripted phrasing teacher (it
//! gives the address away first, then phrases cleanly), and two scripted models under test:
//! one goes to each task's target and answers, one answers at once from the start page.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use trajforge_eval::{Task, TaskKind, TaskResult, WebIntent, read_jsonl};
use trajforge_testkit::{FakeServer, Script, Step, between, first_user_text};

use crate::site::bidict_docs;
use crate::web::crawl_site;
use crate::{assert_success, input_error, stderr, stdout};

/// The phrasing teacher: first a request naming a file (refused as a leak), then, told why,
/// a request that names the page by a tag of the prompt; for answer tasks the answer is
/// the page's first heading, as its snapshot writes it.
fn phrasing(req: &Value) -> Step {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let prompt = first_user_text(req);
    if !messages.iter().any(|m| m["role"] == "assistant") {
        return Step::text(r#"{"request": "Please open intro.html for me."}"#);
    }
    let tag = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        prompt.hash(&mut h);
        format!("{:08x}", h.finish() & 0xffff_ffff)
    };
    let reply = if prompt.contains("\"answer\"") {
        let heading = between(prompt, "- heading \"", "\"").unwrap_or("nothing");
        json!({"request": format!("What is the first heading of the page I call {tag}?"), "answer": heading})
    } else {
        json!({"request": format!("Take me to the page I call {tag}, please.")})
    };
    Step::text(reply.to_string())
}

/// A model under test that knows the tasks: it goes to the task's target, then answers with
/// the task's answer (or the page's title); or, when `reaches` is false, answers at once.
fn student(tasks: Vec<Task>, reaches: bool) -> Script {
    Script::handler(move |req: &Value| {
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let first = first_user_text(req);
        let Some(web) = tasks
            .iter()
            .find(|t| first.contains(&t.problem_statement))
            .and_then(|t| t.web.clone())
        else {
            return Step::tool_call("report_infeasible", json!({"reason": "unknown task"}));
        };
        let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
        match (reaches, turn) {
            (true, 0) => Step::tool_call("goto", json!({"url": web.target_url})),
            (true, _) => Step::tool_call(
                "answer",
                json!({"text": web.answer.unwrap_or(web.target_title)}),
            ),
            (false, _) => Step::tool_call("answer", json!({"text": "I could not tell."})),
        }
    })
}

fn run_blocking(mut cmd: Command) -> tokio::task::JoinHandle<Output> {
    cmd.env_remove("OPENAI_API_KEY")
        .env_remove("TRAJFORGE_API_KEY");
    tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
}

fn web_tasks(site: &Path, server: &FakeServer, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["web", "tasks", "--site"])
        .arg(site)
        .args(["--teacher", &server.url(), "--model", "phraser", "--out"])
        .arg(out)
        .args(["-n", "5", "--seed", "3", "--backoff", "0.01"]);
    cmd
}

fn web_eval(site: &Path, tasks: &Path, server: &FakeServer, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["web", "eval", "--site"])
        .arg(site)
        .arg("--tasks")
        .arg(tasks)
        .args(["--teacher", &server.url(), "--model", "student", "--out"])
        .arg(out)
        .args(["--seeds", "2", "--max-steps", "6", "--concurrency", "2"])
        .args(["--backoff", "0.01"]);
    cmd
}

fn rows(dir: &Path) -> Vec<TaskResult> {
    read_jsonl(&dir.join("results.jsonl")).expect("results")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_tasks_are_drawn_without_urls_and_scored_on_the_replayed_site() {
    let Some(html) = bidict_docs() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (site, pages) = crawl_site(&html, tmp.path(), 12);
    let phraser = FakeServer::start(Script::handler(phrasing)).await;

    // Drawn, each phrasing sent back once for naming a file, then accepted.
    let tasks_file = tmp.path().join("tasks.jsonl");
    let out = run_blocking(web_tasks(&site, &phraser, &tasks_file))
        .await
        .expect("join");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wrote 5 tasks"), "{err}");
    assert!(err.contains("phrasings sent back: leaks_url 5"), "{err}");
    let tasks: Vec<Task> = read_jsonl(&tasks_file).expect("tasks");
    assert_eq!(tasks.len(), 5);
    let mut intents = std::collections::BTreeSet::new();
    for t in &tasks {
        assert_eq!(t.kind(), TaskKind::Web);
        let web = t.web.as_ref().expect("web target");
        for leak in ["http", ".html", "/", "www."] {
            assert!(!t.problem_statement.contains(leak), "{t:?}");
        }
        let target = pages
            .iter()
            .find(|p| p.url == web.target_url)
            .expect("the target is a crawled page");
        assert_ne!(web.target_url, web.start_url);
        assert_eq!(web.route.last(), Some(&web.target_url));
        intents.insert(web.intent);
        if web.intent == WebIntent::Answer {
            let answer = web.answer.as_deref().expect("an answer");
            let snapshot = std::fs::read_to_string(site.join("pages.jsonl")).expect("pages");
            let page: Value = snapshot
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("page"))
                .find(|p| p["url"] == target.url.as_str())
                .expect("page");
            assert!(
                page["snapshot"].as_str().unwrap_or("").contains(answer),
                "{answer:?} is on the page"
            );
        }
    }
    assert_eq!(intents.len(), 2, "both intents drawn: {tasks:?}");
    // The same seed draws the same tasks; an existing file is never overwritten.
    let again = tmp.path().join("again.jsonl");
    assert_success(
        &run_blocking(web_tasks(&site, &phraser, &again))
            .await
            .expect("join"),
    );
    assert_eq!(
        std::fs::read_to_string(&again).expect("again"),
        std::fs::read_to_string(&tasks_file).expect("tasks")
    );
    let refused = run_blocking(web_tasks(&site, &phraser, &tasks_file))
        .await
        .expect("join");
    assert!(input_error(&refused).contains("would be overwritten"));

    // A model that reaches every target succeeds on every row; one that stays put fails.
    let reach = FakeServer::start(student(tasks.clone(), true)).await;
    let stay = FakeServer::start(student(tasks.clone(), false)).await;
    let (eval_a, eval_b) = (tmp.path().join("reach"), tmp.path().join("stay"));
    for (server, dir) in [(&reach, &eval_a), (&stay, &eval_b)] {
        let out = run_blocking(web_eval(&site, &tasks_file, server, dir))
            .await
            .expect("join");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !dir.join("predictions.jsonl").exists(),
            "no patches, no predictions"
        );
    }
    let (a, b) = (rows(&eval_a), rows(&eval_b));
    assert_eq!((a.len(), b.len()), (10, 10));
    for r in &a {
        assert_eq!((r.kind, r.resolved), (TaskKind::Web, Some(true)), "{r:?}");
        assert_eq!(r.exit_status, "submitted");
        assert!(r.recall > 0.0, "{r:?}");
    }
    for r in &b {
        assert_eq!(
            (r.kind, r.resolved, r.recall),
            (TaskKind::Web, Some(false), 0.0),
            "{r:?}"
        );
    }
    let status = crate::trajforge(
        &["status", "--json", eval_a.to_str().expect("utf-8")],
        tmp.path(),
    );
    assert_success(&status);
    let s: Value = serde_json::from_str(&stdout(&status)).expect("status json");
    assert_eq!(
        (s["kind"].as_str(), s["eval"]["resolved"].as_u64()),
        (Some("eval"), Some(10))
    );
    assert_eq!(s["eval"]["web_rows"], 10);

    // Resumed: nothing is run again.
    let before = reach.chat_request_count();
    let out = run_blocking(web_eval(&site, &tasks_file, &reach, &eval_a))
        .await
        .expect("join");
    assert!(stderr(&out).contains("10 already done"), "{}", stderr(&out));
    assert_eq!(reach.chat_request_count(), before);

    // The two web evaluations compare like code ones: B reaches every target A missed.
    let cmp = crate::trajforge(
        &[
            "eval",
            "compare",
            eval_b.to_str().expect("utf-8"),
            eval_a.to_str().expect("utf-8"),
            "--json",
        ],
        tmp.path(),
    );
    assert_success(&cmp);
    let c: Value = serde_json::from_str(&stdout(&cmp)).expect("compare json");
    assert_eq!(
        (c["paired_rows"].as_u64(), c["hard_rows"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(c["resolved"]["estimate"], 1.0);
    assert_eq!(c["verdict"]["outcome"], "better", "{c}");
    assert_eq!(c["changes"][0]["kind"], "web");
}
