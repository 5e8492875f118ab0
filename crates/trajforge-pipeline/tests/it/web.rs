//! The web pipeline end to end on a simulated site (no browser): the scripted web teacher
//! behind the fake OpenAI-compatible server, a page-graph environment, the real store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use trajforge_agent::{BoxFuture, EnvOutcome, Environment, LoopConfig, Observation};
use trajforge_menu::Menu;
use trajforge_pipeline::envs::{EnvError, WebEnvFactory, WebSession};
use trajforge_pipeline::prompts::WebPrompts;
use trajforge_pipeline::runner::Control;
use trajforge_pipeline::web::{self, StartPage, WebConfig, WebWorker};
use trajforge_store::Store;
use trajforge_teacher::{OpenAiTeacher, TeacherConfig, ToolCall, ToolSpec};
use trajforge_testkit::web::{GraphPage, WebFate, WebTeacher, web_fate};
use trajforge_testkit::{FakeServer, Script};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreeing_partly_agreeing_disagreeing_and_infeasible_tasks() {
    let pages = graph();
    let fake = Arc::new(WebTeacher::new(pages.clone()));
    let server = FakeServer::start(Script::handler(move |req| fake.answer(req))).await;
    let mut tc = TeacherConfig::new(server.url(), "fake-model");
    tc.api_key = None;
    tc.backoff_base = Duration::from_millis(5);
    let teacher = Arc::new(OpenAiTeacher::new(tc).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let menu = Menu::builtin();
    let starts: Vec<StartPage> = pages
        .iter()
        .filter(|p| p.url.ends_with('/'))
        .map(|p| StartPage {
            url: p.url.clone(),
            title: p.title.clone(),
        })
        .collect();
    let jobs = web::plan(&menu.tasks, &starts, 40, 11, web::TaskDraw::SitePaths);
    assert_eq!(jobs.len(), 40);
    store.add_jobs(&jobs).unwrap();

    let mut loop_config = LoopConfig {
        max_steps: 8,
        ..LoopConfig::default()
    };
    loop_config.system_prompt = web::SYSTEM_PROMPT.into();
    let worker = Arc::new(WebWorker {
        store: Arc::clone(&store),
        teacher,
        envs: Arc::new(GraphEnvs {
            pages: Arc::new(pages),
            opened: Mutex::new(0),
        }),
        config: Arc::new(WebConfig {
            tasks: menu.tasks.clone(),
            prompts: WebPrompts::default(),
            loop_config,
            threshold: 0.5,
            keep_different_final: false,
        }),
        control: Arc::new(Control::default()),
        owner: "test".into(),
    });
    web::run(Arc::clone(&worker), 4).await.unwrap();

    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for job in store.jobs().unwrap() {
        assert_eq!(job.status, "done", "{job:?}");
        let result = job.result.clone().unwrap().to_string();
        *seen.entry(result.clone()).or_default() += 1;
        let stages = store.stages(job.id).unwrap();
        let get = |name: &str| {
            stages
                .iter()
                .find(|s| s.stage.name() == name)
                .map(|s| s.stage.to_json().unwrap())
        };
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
    let tried: u64 = status
        .coverage
        .values()
        .flat_map(|m| m.values())
        .map(|c| c.tried)
        .sum();
    assert_eq!(tried, 40);
    let infeasible: u64 = status
        .coverage
        .values()
        .flat_map(|m| m.values())
        .map(|c| c.infeasible)
        .sum();
    assert_eq!(infeasible as u32, seen["t1_infeasible"]);
    assert!(status::render_has_grid(&status));
}

mod status {
    pub fn render_has_grid(s: &trajforge_pipeline::status::Status) -> bool {
        let text = trajforge_pipeline::status::render(s, Some(0.5));
        text.starts_with("tasks: 40") && text.contains("coverage, intent x start page")
    }
}
