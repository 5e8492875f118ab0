//! The web pipeline end to end on a simulated site (no browser): the scripted web teacher
//! behind the fake OpenAI-compatible server, a page-graph environment, the real store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use trajforge_agent::{BoxFuture, EnvOutcome, Environment, LoopConfig, Observation};
use trajforge_menu::Menu;
use trajforge_pipeline::decontaminate::HeldOutPages;
use trajforge_pipeline::envs::{EnvError, WebEnvFactory, WebSession};
use trajforge_pipeline::prompts::WebPrompts;
use trajforge_pipeline::runner::Control;
use trajforge_pipeline::web::{self, StartPage, WebConfig, WebWorker};
use trajforge_store::model::{Stage, VerifyStage};
use trajforge_store::{Outcome, Store};
use trajforge_teacher::{OpenAiTeacher, TeacherConfig, ToolCall, ToolSpec};
use trajforge_testkit::web::{GraphPage, WebFate, WebTeacher, web_fate};
use trajforge_testkit::{FakeServer, Script, Step};

/// A small documentation-like site: a home page, four sections, pages under each.
fn graph() -> Vec<GraphPage> {
    let mut pages = vec![GraphPage {
        url: "http://site.test/".into(),
        title: "Home".into(),
        links: (0..5).map(|s| format!("http://site.test/s{s}/")).collect(),
    }];
    for s in 0..5 {
        let mut links = vec!["http://site.test/".to_string()];
        links.extend((0..4).map(|p| format!("http://site.test/s{s}/p{p}.html")));
        pages.push(GraphPage {
            url: format!("http://site.test/s{s}/"),
            title: format!("Section {s}"),
            links,
        });
        for p in 0..4 {
            pages.push(GraphPage {
                url: format!("http://site.test/s{s}/p{p}.html"),
                title: format!("Topic {s}.{p}"),
                links: vec![
                    format!("http://site.test/s{s}/"),
                    "http://site.test/".into(),
                ],
            });
        }
    }
    pages
}

/// Browses the page graph: `goto`, `answer`, `report_infeasible`.
struct GraphEnv {
    pages: Arc<Vec<GraphPage>>,
    url: String,
    visited: Vec<String>,
    answer: Option<String>,
    infeasible: Option<String>,
}

fn tool(name: &str, arg: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("{name} the {arg}"),
        parameters: json!({"type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]}),
    }
}

impl Environment for GraphEnv {
    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            tool("goto", "url"),
            tool("answer", "text"),
            tool("report_infeasible", "reason"),
        ]
    }

    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            match call.name.as_str() {
                "goto" => {
                    let url = args["url"].as_str().unwrap_or("").to_string();
                    match self.pages.iter().find(|p| p.url == url) {
                        Some(p) => {
                            self.url = url.clone();
                            self.visited.push(url);
                            Observation::ok(format!("URL: {}\nTitle: {}", p.url, p.title))
                        }
                        None => Observation::error(format!("no page {url}")),
                    }
                }
                "answer" => {
                    self.answer = args["text"].as_str().map(str::to_string);
                    Observation {
                        done: true,
                        ..Observation::ok("answered")
                    }
                }
                _ => {
                    self.infeasible = Some(args["reason"].as_str().unwrap_or("").to_string());
                    Observation {
                        done: true,
                        ..Observation::ok("reported")
                    }
                }
            }
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome> {
        Box::pin(async move {
            let title = self
                .pages
                .iter()
                .find(|p| p.url == self.url)
                .map(|p| p.title.clone());
            EnvOutcome {
                final_url: Some(self.url.clone()),
                title,
                visited: self.visited.clone(),
                answer: self.answer.clone(),
                infeasible: self.infeasible.clone(),
                ..EnvOutcome::default()
            }
        })
    }
}

struct GraphEnvs {
    pages: Arc<Vec<GraphPage>>,
    opened: Mutex<usize>,
}

impl WebEnvFactory for GraphEnvs {
    fn open<'a>(&'a self, start_url: &'a str) -> BoxFuture<'a, Result<WebSession, EnvError>> {
        Box::pin(async move {
            *self.opened.lock().unwrap() += 1;
            let title = self
                .pages
                .iter()
                .find(|p| p.url == start_url)
                .map_or("", |p| p.title.as_str());
            Ok(WebSession {
                observation: format!("URL: {start_url}\nTitle: {title}\n\n{}", snapshot(title)),
                env: Box::new(GraphEnv {
                    pages: Arc::clone(&self.pages),
                    url: start_url.to_string(),
                    visited: vec![start_url.to_string()],
                    answer: None,
                    infeasible: None,
                }),
            })
        })
    }
}

/// The snapshot line the graph site shows for a page titled `title`.
fn snapshot(title: &str) -> String {
    format!("- heading \"{title}\" [ref=e1]")
}

/// The home page and the section pages: the start pages of these tests.
fn section_starts(pages: &[GraphPage]) -> Vec<StartPage> {
    pages
        .iter()
        .filter(|p| p.url.ends_with('/'))
        .map(|p| StartPage {
            url: p.url.clone(),
            title: p.title.clone(),
        })
        .collect()
}

/// A job's stages as JSON, by stage name (web jobs make one attempt).
fn stages_by_name(store: &Store, job: i64) -> std::collections::BTreeMap<String, Value> {
    let stages = store.stages(job).unwrap().into_iter();
    stages
        .map(|s| (s.stage.name().to_string(), s.stage.to_json().unwrap()))
        .collect()
}

/// A teacher client of the fake server at `url`.
fn teacher(url: String) -> Arc<OpenAiTeacher> {
    let mut tc = TeacherConfig::new(url, "fake-model");
    tc.api_key = None;
    tc.backoff_base = Duration::from_millis(5);
    Arc::new(OpenAiTeacher::new(tc).unwrap())
}

/// A worker of a web run in `store` on the graph site, at threshold 0.5.
fn worker(
    store: &Arc<Store>,
    teacher: Arc<OpenAiTeacher>,
    tasks: &Menu,
    keep_different_final: bool,
) -> Arc<WebWorker> {
    let mut loop_config = LoopConfig {
        max_steps: 8,
        ..LoopConfig::default()
    };
    loop_config.system_prompt = web::SYSTEM_PROMPT.into();
    Arc::new(WebWorker {
        store: Arc::clone(store),
        teacher,
        envs: Arc::new(GraphEnvs {
            pages: Arc::new(graph()),
            opened: Mutex::new(0),
        }),
        config: Arc::new(WebConfig {
            tasks: tasks.tasks.clone(),
            prompts: WebPrompts::default(),
            loop_config,
            threshold: 0.5,
            keep_different_final,
            held_out: HeldOutPages::default(),
        }),
        control: Arc::new(Control::default()),
        owner: "test".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreeing_partly_agreeing_disagreeing_and_infeasible_tasks() {
    let pages = graph();
    let fake = Arc::new(WebTeacher::new(pages.clone()));
    let server = FakeServer::start(Script::handler(move |req| fake.answer(req))).await;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let menu = Menu::builtin();
    let starts = section_starts(&pages);
    let jobs = web::plan(&menu.tasks, &starts, 40, 11, web::TaskDraw::SitePaths);
    assert_eq!(jobs.len(), 40);
    store.add_jobs(&jobs).unwrap();
    let worker = worker(&store, teacher(server.url()), &menu, false);
    web::run(Arc::clone(&worker), 4).await.unwrap();

    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for job in store.jobs().unwrap() {
        assert_eq!(job.status, "done", "{job:?}");
        let result = job.result.clone().unwrap().to_string();
        *seen.entry(result.clone()).or_default() += 1;
        let stages = stages_by_name(&store, job.id);
        let get = |name: &str| stages.get(name).cloned();
        if result == "t1_infeasible" {
            assert!(get("request").is_none());
            continue;
        }
        let r1 = get("rollout1").unwrap();
        let verify = get("verify").unwrap_or_else(|| panic!("{result}: {stages:?}"));
        let request = get("request").unwrap();
        assert!(
            !request["text"].as_str().unwrap().contains("http"),
            "{request}"
        );
        // The agreement is stored in the field code runs use for line recall.
        let r = verify["recall"].as_f64().unwrap();
        match web_fate(r1["final_url"].as_str().unwrap()) {
            WebFate::Exact => assert_eq!((result.as_str(), r), ("kept", 1.0), "{verify}"),
            WebFate::Detour => {
                assert_eq!(result, "kept", "{verify}");
                assert!(r > 0.5 && r < 1.0, "{verify}");
                assert_eq!(verify["same_final"], true);
            }
            WebFate::Wrong => {
                assert_eq!(result, "low_agreement", "{verify}");
                assert!(r < 0.5, "{verify}");
            }
        }
    }
    for outcome in ["kept", "low_agreement", "t1_infeasible"] {
        assert!(
            seen.contains_key(outcome),
            "{outcome} never happened: {seen:?}"
        );
    }
    // Every rollout's first call saw its start page: the task message ends with the page's
    // URL, title and snapshot, and the stored trajectory's first user turn is that message.
    let rollouts: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|r| r["tools"].as_array().is_some_and(|t| !t.is_empty()))
        .collect();
    assert!(!rollouts.is_empty());
    for req in &rollouts {
        let task = req["messages"][1]["content"].as_str().unwrap();
        let start = task.split("(").nth(1).unwrap().split(')').next().unwrap();
        let title = pages.iter().find(|p| p.url == start).unwrap().title.clone();
        assert!(
            task.ends_with(&format!(
                "URL: {start}\nTitle: {title}\n\n{}",
                snapshot(&title)
            )),
            "{task}"
        );
    }
    for t in store.trajectories(true).unwrap() {
        let task = t.data["task"].as_str().unwrap();
        assert_eq!(t.data["messages"][1]["content"].as_str(), Some(task));
        assert!(task.contains("\nURL: http://site.test/"), "{task}");
    }
    // Both rollouts of kept pairs are marked kept; the status sees a web run with coverage.
    let status = trajforge_pipeline::status::status(&store, Default::default()).unwrap();
    assert_eq!(status.kind, "web");
    assert!(
        status.yield_by_entry.is_empty(),
        "{:?}",
        status.yield_by_entry
    );
    assert_eq!(status.kept_t2 as u32, seen["kept"]);
    assert_eq!(status.kept_t1, status.kept_t2);
    let total = |count: fn(&trajforge_pipeline::status::CoverageCell) -> u64| -> u64 {
        let cells = status.coverage.values().flat_map(|m| m.values());
        cells.map(count).sum()
    };
    assert_eq!(total(|c| c.tried), 40);
    assert_eq!(total(|c| c.infeasible) as u32, seen["t1_infeasible"]);
    assert!(status::render_has_grid(&status));
}

/// The web task a held-out file would hold for (start, target), drawn on `origin`.
fn web_task(origin: &str, start: &str, target: &str) -> trajforge_eval::Task {
    let at = |url: &str| url.replace("http://site.test", origin);
    serde_json::from_value(json!({
        "instance_id": format!("site-web-{target}"), "repo": origin, "base_commit": "",
        "patch": "", "problem_statement": "Where is it?",
        "web": {"origin": origin, "start_url": at(start), "start_title": "", "target_url": at(target),
                "target_title": "", "intent": "navigate"},
    }))
    .unwrap()
}

/// `web generate --exclude-tasks`: a pair whose rollout goes from a held-out task's start page
/// to its target is rejected as `held_out` before its request is written, even when the tasks
/// were drawn with the site served on another port; every other job ends as it did without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_out_start_and_target_pairs_are_never_kept() {
    let pages = graph();
    let menu = Menu::builtin();
    let starts = section_starts(&pages);
    let jobs = web::plan(&menu.tasks, &starts, 24, 11, web::TaskDraw::SitePaths);
    let menu = &menu;
    let run = |held_out: HeldOutPages| {
        let (jobs, pages) = (jobs.clone(), pages.clone());
        async move {
            let fake = Arc::new(WebTeacher::new(pages));
            let server = FakeServer::start(Script::handler(move |req| fake.answer(req))).await;
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(dir.path()).unwrap());
            store.add_jobs(&jobs).unwrap();
            let mut w = Arc::try_unwrap(worker(&store, teacher(server.url()), menu, false))
                .ok()
                .unwrap();
            let mut config = (*w.config).clone();
            config.held_out = held_out;
            w.config = Arc::new(config);
            let w = Arc::new(w);
            web::run(w, 2).await.unwrap();
            let mut ends = std::collections::BTreeMap::new();
            for job in store.jobs().unwrap() {
                let stages = stages_by_name(&store, job.id);
                let get = |name: &str| stages.get(name).cloned();
                let start = job.payload["start_url"].as_str().unwrap().to_string();
                let end = get("rollout1").and_then(|r| r["final_url"].as_str().map(str::to_string));
                let result = job.result.unwrap().to_string();
                ends.insert(
                    job.key.clone(),
                    (start, end, result, get("request").is_some()),
                );
            }
            ends
        }
    };
    let free = run(HeldOutPages::default()).await;
    // Hold out the first two kept pairs, as tasks drawn with the site on another port.
    let kept: Vec<(String, String)> = free
        .values()
        .filter(|(_, _, result, _)| result == "kept")
        .map(|(start, end, _, _)| (start.clone(), end.clone().unwrap()))
        .take(2)
        .collect();
    assert_eq!(kept.len(), 2, "{free:?}");
    let tasks: Vec<_> = kept
        .iter()
        .map(|(s, t)| web_task("http://127.0.0.1:8123", s, t))
        .collect();
    let held = HeldOutPages::from_tasks(&tasks).unwrap();
    assert!(held.holds(&kept[0].0, &kept[0].1));
    let excluded = run(held).await;
    let mut held_out = 0;
    for (key, (start, end, result, requested)) in &excluded {
        let pair = (start.clone(), end.clone().unwrap_or_default());
        if kept.contains(&pair) {
            assert_eq!(result, "held_out", "{key}");
            assert!(!requested, "{key}: a held-out pair asked for its request");
            held_out += 1;
        } else {
            assert_eq!(
                result, &free[key].2,
                "{key}: ended otherwise than without held-out tasks"
            );
        }
    }
    assert!(held_out >= 2, "{excluded:?}");
    // A code task in the file is refused: it holds no pages.
    let mut code = web_task("http://x", "http://site.test/", "http://site.test/s0/");
    code.web = None;
    assert!(HeldOutPages::from_tasks(&[code]).is_err());
}

mod status {
    pub fn render_has_grid(s: &trajforge_pipeline::status::Status) -> bool {
        let text = trajforge_pipeline::status::render(s, Some(0.5));
        text.starts_with("tasks: 40") && text.contains("coverage, intent x start page")
    }
}

/// The two pairs the agreement must not keep, run through the pipeline with a scripted
/// teacher: rollout 1 never leaves its start page (section 0) and rollout 2 goes to a topic;
/// rollout 1 goes to a topic (section 1) and rollout 2 passes through it and ends on the home
/// page. Under the earlier score both had r = 0.5 and were kept at threshold 0.5.
fn disagreeing_teacher(req: &Value) -> Step {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    if req["tools"].as_array().is_none_or(|t| t.is_empty()) {
        return Step::text("Where can I read about the second topic?");
    }
    let task = messages[1]["content"].as_str().unwrap_or("");
    let step = messages.iter().filter(|m| m["role"] == "assistant").count();
    let rollout2 = task.contains("A visitor asks you:");
    let gotos: &[&str] = match (task.contains("(http://site.test/s0/)"), rollout2) {
        (true, false) => &[],
        (true, true) => &["http://site.test/s0/p1.html"],
        (false, false) => &["http://site.test/s1/p1.html"],
        (false, true) => &["http://site.test/s1/p1.html", "http://site.test/"],
    };
    match gotos.get(step) {
        Some(url) => Step::tool_call("goto", json!({"url": url})),
        None => Step::tool_call("answer", json!({"text": "here"})),
    }
}

/// Runs the two disagreeing jobs; their agreement records by start page.
async fn run_disagreeing(keep_different_final: bool) -> Vec<(String, Outcome, AgreementView)> {
    let server = FakeServer::start(Script::handler(disagreeing_teacher)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let menu = Menu::builtin();
    let intent = menu.tasks.iter().find(|t| !t.answer).unwrap();
    let jobs: Vec<(String, Value)> = ["http://site.test/s0/", "http://site.test/s1/"]
        .iter()
        .map(|url| {
            let job = json!({"intent": intent.id, "answer": false, "start_url": url, "start_title": "Section"});
            (format!("{}@{url}", intent.id), job)
        })
        .collect();
    store.add_jobs(&jobs).unwrap();
    let w = worker(&store, teacher(server.url()), &menu, keep_different_final);
    web::run(w, 2).await.unwrap();
    let mut out = Vec::new();
    for job in store.jobs().unwrap() {
        let verify = store
            .stages(job.id)
            .unwrap()
            .into_iter()
            .find_map(|s| match s.stage {
                Stage::Verify(VerifyStage::Agreement(v)) => Some(v),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no agreement record: {job:?}"));
        assert_eq!(job.result.as_ref(), Some(&verify.result));
        // Both rollouts carry the pair's verdict.
        for t in store.trajectories(false).unwrap() {
            if t.meta.job_id == job.id {
                assert_eq!(t.meta.kept, verify.kept, "{:?}", t.meta);
            }
        }
        let start = job.key.split_once('@').unwrap().1.to_string();
        out.push((
            start,
            verify.result.clone(),
            (
                verify.recall,
                verify.same_final,
                verify.visited_recall,
                verify.kept,
            ),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What a test reads of an agreement record: r, same final, route recall, kept.
type AgreementView = (f64, bool, Option<f64>, bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_that_end_on_different_pages_are_rejected_with_their_reason() {
    let got = run_disagreeing(false).await;
    assert_eq!(
        got,
        vec![
            // Rollout 1 stayed on the start page: no route to recall, no free credit.
            (
                "http://site.test/s0/".to_string(),
                Outcome::LowAgreement,
                (0.0, false, None, false)
            ),
            // Rollout 2 passed rollout 1's final page and went on: r reaches 0.5, but the
            // final pages differ.
            (
                "http://site.test/s1/".to_string(),
                Outcome::DifferentFinal,
                (0.5, false, Some(1.0), false)
            ),
        ]
    );
    // Asked for, the pair that reached the threshold is kept; the other is not.
    let got = run_disagreeing(true).await;
    assert_eq!(got[0].1, Outcome::LowAgreement);
    assert_eq!(
        (got[1].1.clone(), got[1].2),
        (Outcome::Kept, (0.5, false, Some(1.0), true))
    );
}
