//! `trajforge view` end to end: a run generated with the scripted teacher on the sample
//! repository (and a web run on the crawled bidict docs), served by the real binary and read
//! in real headless Chromium: the DOM shows the store's numbers, the marks of known pairs and
//! search hits, the keyboard moves through rows, jobs and steps, and the pages follow the run
//! as it grows. Screenshots of every page are kept (`$TRAJFORGE_VIEW_SCREENSHOTS`, else
//! `view-screenshots` in the target folder's temporary folder).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trajforge_browser::{Browser, LaunchConfig, NetMode, NetPolicy, Tab};
use trajforge_store::Store;
use trajforge_testkit::code::{Fate, fate};
use trajforge_testkit::web::WebTeacher;
use trajforge_testkit::{FakeServer, Script};

use crate::generate::{generate_cmd, output, scene, server};
use crate::site::bidict_docs;
use crate::status_json;
use crate::web::crawl_site;

/// A running `trajforge view`, stopped when dropped (also when a test fails).
struct Viewing(Child);

impl Drop for Viewing {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `trajforge view RUN` on a free port; the child and the URL it printed first.
fn view(run: &Path) -> (Viewing, String) {
    view_with(run, |_| {})
}

/// [`view`] with the command set up further by `setup` first (its environment).
fn view_with(run: &Path, setup: impl FnOnce(&mut Command)) -> (Viewing, String) {
    view_args(&[run.as_os_str()], setup)
}

/// `trajforge view ARGS…` set up further by `setup`; the child and the URL it printed first.
fn view_args(args: &[&std::ffi::OsStr], setup: impl FnOnce(&mut Command)) -> (Viewing, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    setup(&mut cmd);
    let mut child = cmd
        .arg("view")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("trajforge view");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let child = Viewing(child);
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("url line");
    let url = line.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    (child, url)
}

struct Page {
    tab: Tab,
    base: String,
}

impl Page {
    async fn new(browser: &Browser, base: &str) -> Page {
        let policy = NetPolicy::new(base, NetMode::Live { record: None }).expect("policy");
        let tab = Tab::open(browser.cdp(), Arc::new(policy))
            .await
            .expect("tab");
        Page {
            tab,
            base: base.to_string(),
        }
    }

    /// Load `path`, wait for the page's script, and keep a screenshot named `shot`.
    async fn open(&self, path: &str, shot: &str) {
        self.tab
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("loads");
        self.wait("document.body.getAttribute('data-app') === 'ready'")
            .await;
        let png = self.tab.screenshot_png().await.expect("screenshot");
        let dir = std::env::var_os("TRAJFORGE_VIEW_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("view-screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{shot}.png")), png).expect("screenshot");
    }

    /// Like [`Page::open`], reloading until the side index has caught up with the store.
    async fn open_indexed(&self, path: &str, shot: &str) {
        for _ in 0..100 {
            self.open(path, shot).await;
            if self.count("#index-progress").await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{path}: the index never caught up");
    }

    async fn wait(&self, condition: &str) {
        let ok = self
            .tab
            .wait_for(
                &format!("!!document.body && ({condition})"),
                Duration::from_secs(10),
            )
            .await
            .expect("evaluate");
        assert!(ok, "never true: {condition}");
    }

    async fn text(&self, selector: &str) -> String {
        let v = self
            .tab
            .evaluate(&format!(
                "(document.querySelector({}) || {{}}).textContent || ''",
                Value::from(selector)
            ))
            .await
            .expect("evaluate");
        v.as_str().unwrap_or("").to_string()
    }

    async fn count(&self, selector: &str) -> u64 {
        let v = self
            .tab
            .evaluate(&format!(
                "document.querySelectorAll({}).length",
                Value::from(selector)
            ))
            .await
            .expect("evaluate");
        v.as_u64().unwrap_or(0)
    }

    async fn press(&self, key: &str) {
        self.tab.press(key).await.expect("key");
    }
}

async fn browser() -> Browser {
    Browser::launch(&LaunchConfig::default())
        .await
        .expect("chromium starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_run_reads_the_same_in_the_browser_as_in_the_store_and_follows_it_live() {
    if bidict_docs().is_none() {
        return; // no Chromium (the same check as the web tests)
    }
    let scene = scene();
    let server = server(0, 0).await;
    let run = scene.dir.path().join("run");
    let out = output(generate_cmd(&scene, &server, &run, 10, &[])).await;
    crate::assert_success(&out);
    let (_viewing, base) = view(&run);
    let browser = browser().await;
    let page = Page::new(&browser, &base).await;

    // The overview shows what `status` says.
    let status = status_json(&run, &[]);
    page.open("", "code-overview").await;
    for (id, key) in [
        ("#n-functions", "functions"),
        ("#n-done", "done"),
        ("#n-kept-t2", "kept_t2"),
        ("#n-kept-t1", "kept_t1"),
    ] {
        assert_eq!(page.text(id).await, status[key].to_string(), "{id}");
    }
    assert_eq!(page.count("#plot-recall rect").await, 10);

    // The list holds every trajectory; the kept filter the kept ones.
    let store = Store::open_read_only(&run).expect("store").expect("run");
    let stored = store.trajectory_count().expect("count");
    page.open_indexed("list", "code-list").await;
    assert_eq!(page.text("#list-total").await, stored.to_string());
    page.open_indexed("list?kept=kept", "code-list-kept").await;
    let kept = status["kept_t1"].as_u64().unwrap_or(0) + status["kept_t2"].as_u64().unwrap_or(0);
    assert_eq!(page.text("#list-total").await, kept.to_string());

    // Known pairs: a partial one (r = 0.5) has matched and unmatched P1 lines, a wrong one
    // (r = 0) none matched.
    let jobs = store.jobs().expect("jobs");
    let job_of = |want: Fate| {
        jobs.iter()
            .find(|j| {
                j.payload["name"].as_str().is_some_and(|n| fate(n) == want)
                    && j.result.as_ref().is_some_and(|r| r != "t2_not_submitted")
            })
            .map(|j| j.id)
    };
    let partial = job_of(Fate::Partial).expect("a partial pair in the first 10 jobs");
    page.open(&format!("job/{partial}"), "code-job-partial")
        .await;
    assert!(page.count("pre.p1 .ln.matched").await > 0);
    assert!(page.count("pre.p1 .ln.unmatched").await > 0);
    assert_eq!(page.text("#recall-1").await, "0.500");
    assert_eq!(page.text("#verdict-1").await, "kept");
    if let Some(wrong) = job_of(Fate::Wrong) {
        page.open(&format!("job/{wrong}"), "code-job-wrong").await;
        assert_eq!(page.count("pre.p1 .ln.matched").await, 0);
        assert!(page.count("pre.p1 .ln.unmatched").await > 0);
        assert_eq!(page.text("#recall-1").await, "0.000");
    }

    // Keyboard: n walks the steps; j goes to the next job.
    page.press("n").await;
    page.wait("(document.body.getAttribute('data-step') || '').endsWith('-s0')")
        .await;
    page.press("n").await;
    page.wait("(document.body.getAttribute('data-step') || '').endsWith('-s1')")
        .await;
    let here = page.tab.location().await.expect("location").0;
    page.press("j").await;
    page.wait(&format!("location.href !== {}", Value::from(here)))
        .await;
    // On the list, j/k select rows and Enter opens the selected one.
    page.open_indexed("list", "code-list-keys").await;
    page.press("j").await;
    page.press("j").await;
    page.press("k").await;
    page.press("j").await;
    let second: String = page
        .tab
        .evaluate("document.querySelectorAll('tr.row')[1].getAttribute('data-id')")
        .await
        .expect("evaluate")
        .as_str()
        .unwrap_or("")
        .to_string();
    page.wait(&format!(
        "document.body.getAttribute('data-selected') === {}",
        Value::from(second.as_str())
    ))
    .await;
    page.press("Enter").await;
    page.wait(&format!("location.hash === '#t{second}'")).await;

    // Search: a function's name appears in its trajectories.
    let name = jobs[0].payload["name"].as_str().expect("name").to_string();
    let word = name.rsplit('.').next().unwrap_or(&name).to_string();
    page.open_indexed(&format!("search?q={word}"), "code-search")
        .await;
    assert!(page.count("ol.hits li").await > 0, "no hit for {word}");
    assert!(page.count("ol.hits mark").await > 0);

    // The training sample, with its loss mask.
    page.open("sample/1?format=hermes", "code-sample").await;
    assert!(page.count("li.turn.train").await > 0);

    // Live: the run grows while the viewer runs; a reload shows it.
    let out = output(generate_cmd(&scene, &server, &run, 12, &[])).await;
    crate::assert_success(&out);
    let status = status_json(&run, &[]);
    page.open("", "code-overview-later").await;
    assert_eq!(page.text("#n-done").await, status["done"].to_string());
    let stored = store.trajectory_count().expect("count");
    page.open_indexed("list", "code-list-later").await;
    assert_eq!(page.text("#list-total").await, stored.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_run_shows_its_coverage_and_each_rollouts_pages() {
    let Some(html) = bidict_docs() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (site, pages) = crawl_site(&html, tmp.path(), 10);
    let teacher = Arc::new(WebTeacher::new(pages));
    let fake = FakeServer::start(Script::handler(move |req| teacher.answer(req))).await;
    let run = tmp.path().join("run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["web", "generate", "--site"])
        .arg(&site)
        .args(["--teacher", &fake.url(), "--model", "fake-model", "--out"])
        .arg(&run)
        .args([
            "-n",
            "4",
            "--start-pages",
            "2",
            "--seed",
            "5",
            "--max-steps",
            "6",
        ])
        .args(["--concurrency", "2", "--backoff", "0.01"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRAJFORGE_API_KEY");
    crate::assert_success(&output(cmd).await);
    let status = status_json(&run, &[]);
    let (_viewing, base) = view(&run);
    let browser = browser().await;
    let page = Page::new(&browser, &base).await;
    page.open("", "web-overview").await;
    assert_eq!(page.text("#n-done").await, status["done"].to_string());
    assert!(page.count("#coverage td").await > 0);
    assert!(
        page.text("#plot-yield figcaption")
            .await
            .contains("per intent")
    );
    let store = Store::open_read_only(&run).expect("store").expect("run");
    let paired = store
        .jobs()
        .expect("jobs")
        .into_iter()
        .find(|j| j.result.as_ref().is_some_and(|r| r == "kept"))
        .map(|j| j.id);
    if let Some(id) = paired {
        page.open(&format!("job/{id}"), "web-job").await;
        assert_eq!(page.count(".web .side").await, 2);
        assert!(page.count("ol.visited li").await > 0);
        assert_eq!(page.text("#verdict-1").await, "kept");
    }
    page.open_indexed("list", "web-list").await;
    assert_eq!(
        page.text("#list-total").await,
        store.trajectory_count().expect("count").to_string()
    );
}

/// A viewer killed outright leaves nothing in the temporary folder: its search index is a
/// file removed from there as soon as it is open, still in use through the open descriptor.
#[test]
fn a_killed_viewer_leaves_no_search_index_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = crate::fixture_run_copy("code", tmp.path());
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let (mut viewing, base) = view_with(&run, |cmd| {
        cmd.env("TMPDIR", &scratch);
    });
    // The index is there, in a file of the scratch folder already unlinked.
    let search = crate::http_get(&format!("{base}search?q=the"));
    assert!(search.contains("hit-count"), "{search}");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", viewing.0.id())).expect("fds");
    let open: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with(&scratch.display().to_string()))
        .collect();
    assert!(
        open.iter().any(|p| p.ends_with("search.db (deleted)")),
        "no unlinked index open: {open:?}"
    );
    let left = |dir: &Path| std::fs::read_dir(dir).expect("scratch").count();
    assert_eq!(
        left(&scratch),
        0,
        "the running viewer's index shows in TMPDIR"
    );
    viewing.0.kill().expect("SIGKILL");
    viewing.0.wait().expect("reaped");
    assert_eq!(left(&scratch), 0, "a killed viewer left files in TMPDIR");
}

/// `trajforge store copy RUN` into run `name` of a fresh database `database` of the
/// throwaway cluster; the database's URL.
fn copy_into_postgres(run: &Path, database: &str, name: &str) -> String {
    let url = trajforge_testkit::postgres::cluster().fresh_database(database);
    let copied = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["store", "copy"])
        .arg(run)
        .args([&url, "--run", name])
        .output()
        .expect("store copy");
    crate::assert_success(&copied);
    url
}

/// The body of the viewer's answer to `path` under `base` (headers dropped), once the side
/// index has caught up with the store.
fn page_body(base: &str, path: &str) -> String {
    for _ in 0..150 {
        let response = crate::http_get(&format!("{base}{path}"));
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        if !body.contains("index-progress") {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{path}: the index never caught up");
}

/// A generated run copied into PostgreSQL with `store copy` and viewed with --store/--run
/// serves the pages its folder serves, byte for byte but for the run's name: the overview
/// (the numbers `status --store` gives), list pages with filters and sorts, a pair's page
/// with its matched and unmatched lines, a search hit and a training sample; and a commit
/// to the Postgres run shows on the next load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_copied_into_postgres_is_viewed_as_its_folder_is() {
    let scene = scene();
    let server = server(0, 0).await;
    let run = scene.dir.path().join("run");
    crate::assert_success(&output(generate_cmd(&scene, &server, &run, 10, &[])).await);
    let owner_url = copy_into_postgres(&run, "view", "viewed");
    // Viewed by a user who may only read the run.
    let url = trajforge_testkit::postgres::cluster().reader_url(&owner_url, "viewed");
    let (_folder, folder) = view(&run);
    let (_shared, shared) = view_args(
        &[
            "--store".as_ref(),
            url.as_ref(),
            "--run".as_ref(),
            "viewed".as_ref(),
        ],
        |_| {},
    );

    let store = Store::open_read_only(&run).expect("store").expect("run");
    let jobs = store.jobs().expect("jobs");
    let partial = jobs
        .iter()
        .find(|j| {
            j.payload["name"]
                .as_str()
                .is_some_and(|n| fate(n) == Fate::Partial)
                && j.result.as_ref().is_some_and(|r| r != "t2_not_submitted")
        })
        .map(|j| j.id)
        .expect("a partial pair in the first 10 jobs");
    let name = jobs[0].payload["name"].as_str().expect("name").to_string();
    let word = name.rsplit('.').next().unwrap_or(&name).to_string();
    let folder_name = run.file_name().and_then(|n| n.to_str()).expect("name");
    let paths = [
        String::new(),
        "list".into(),
        "list?kept=kept".into(),
        "list?rollout=t2&sort=recall&dir=desc".into(),
        "list?reason=low_recall&rmin=0.1".into(),
        format!("job/{partial}"),
        format!("search?q={word}"),
        "sample/1?format=hermes".into(),
    ];
    for path in &paths {
        let a = page_body(&folder, path);
        let b = page_body(&shared, path);
        assert_eq!(
            a.replace(&format!(">{folder_name}<"), ">RUN<")
                .replace(&format!("· {folder_name}<"), "· RUN<"),
            b.replace(">viewed<", ">RUN<")
                .replace("· viewed<", "· RUN<"),
            "/{path} differs"
        );
    }

    // What the pages agree on is what the store holds.
    let status = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["status", "--json", "--store", &url, "--run", "viewed"])
        .output()
        .expect("status");
    crate::assert_success(&status);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    let overview = page_body(&shared, "");
    for (id, key) in [
        ("n-done", "done"),
        ("n-kept-t2", "kept_t2"),
        ("n-functions", "functions"),
    ] {
        assert!(
            overview.contains(&format!("id=\"{id}\">{}<", status[key])),
            "{id}: {overview}"
        );
    }
    let list = page_body(&shared, "list");
    let stored = store.trajectory_count().expect("count");
    assert!(
        list.contains(&format!("id=\"list-total\">{stored}<")),
        "{list}"
    );
    let job = page_body(&shared, &format!("job/{partial}"));
    assert!(
        job.contains(" matched\">") && job.contains(" unmatched\">"),
        "no matched and unmatched lines: {job}"
    );
    assert!(job.contains("id=\"recall-1\">0.500<"), "{job}");
    let search = page_body(&shared, &format!("search?q={word}"));
    assert!(search.contains("<mark>"), "no hit for {word}: {search}");

    // Live: a worker's commit to the Postgres run shows on the next load (the synchronous
    // client runs on a thread of its own, off the test's runtime).
    std::thread::scope(|scope| scope.spawn(|| commit_a_late_job(&owner_url)).join())
        .expect("a late job committed");
    let overview = page_body(&shared, "");
    let functions = status["functions"].as_u64().expect("functions") + 1;
    assert!(
        overview.contains(&format!("id=\"n-functions\">{functions}<")),
        "{overview}"
    );
    assert!(overview.contains("id=\"n-running\">1<"), "{overview}");
    let list = page_body(&shared, "list");
    assert!(
        list.contains(&format!("id=\"list-total\">{}<", stored + 1)),
        "{list}"
    );
    let search = page_body(&shared, "search?q=zanzibar");
    assert!(search.contains("<mark>zanzibar</mark>"), "{search}");
}

/// Add a job to run `viewed` at `url` and commit its rollout 1 with a trajectory that
/// mentions "zanzibar", as a worker would.
fn commit_a_late_job(url: &str) {
    let pg = Store::open_at(&trajforge_store::Location::parse(url, Some("viewed")).expect("url"))
        .expect("the Postgres run");
    pg.add_jobs(&[("late".into(), serde_json::json!({"name": "late_arrival"}))])
        .expect("add a job");
    pg.begin_session("late-worker").expect("session");
    let job = pg
        .claim("late-worker", Duration::from_secs(60))
        .expect("claim")
        .expect("the new job");
    let rollout =
        serde_json::json!({"bug": "b", "task": "t", "exit": "submitted", "patch": "p", "steps": 1});
    let record = trajforge_store::TrajectoryRecord {
        rollout: trajforge_store::Rollout::T1,
        exit_status: trajforge_store::ExitLabel::Submitted,
        patch: Some("p".into()),
        data: serde_json::json!({"task": "zanzibar late arrival", "messages": []}),
    };
    let stage = trajforge_store::Stage::from_json(trajforge_store::StageName::Rollout1, rollout)
        .expect("stage");
    pg.record_stage("late-worker", job.id, 1, &stage, Some(&record), None)
        .expect("commit");
}

/// `view` refuses a run named twice, an unknown --run (naming the runs there) and a database
/// it cannot reach, each with a hint.
#[test]
fn view_says_why_it_cannot_open_a_postgres_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = crate::fixture_run_copy("code", tmp.path());
    let url = copy_into_postgres(&run, "viewerr", "present");
    let view = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .arg("view")
            .args(args)
            .env_remove("TRAJFORGE_STORE")
            .output()
            .expect("view")
    };
    let run_s = run.display().to_string();
    let both = crate::input_error(&view(&[&run_s, "--store", &url, "--run", "present"]));
    assert!(
        both.contains("both a run folder") && both.contains("hint:"),
        "{both}"
    );
    let unknown = crate::input_error(&view(&["--store", &url, "--run", "absent"]));
    assert!(
        unknown.contains("no such run")
            && unknown.contains("hint: check --run; this database holds: present"),
        "{unknown}"
    );
    let no_run = crate::input_error(&view(&["--store", &url]));
    assert!(no_run.contains("--run NAME"), "{no_run}");
    // Nothing listens on port 1.
    let unreachable = view(&["--store", "postgres://nobody@127.0.0.1:1/db", "--run", "r"]);
    let err = crate::stderr(&unreachable);
    assert_eq!(unreachable.status.code(), Some(1), "{err}");
    assert!(err.contains("hint: check --store"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
