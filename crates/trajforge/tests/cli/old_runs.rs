//! Run folders written by trajforge 0.1 (before stage records were typed) still open, report,
//! export and resume: the stores under tests/fixtures/runs-0.1 were made by the release binary
//! with `make_fixtures` below, and what that binary printed for them is pinned next to them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use trajforge_testkit::code::{CodeTeacher, expected_result};
use trajforge_testkit::web::WebTeacher;
use trajforge_testkit::{FakeServer, Script, run_ok, runtime};

use crate::run::work_dir;
use crate::site::bidict_docs;
use crate::web::crawl_site;
use crate::{repo_root, stderr, stdout, taught, trajforge};

/// The three run kinds pinned.
const KINDS: [&str; 3] = ["code", "web", "imported"];

/// The committed fixtures.
fn fixtures() -> PathBuf {
    repo_root().join("crates/trajforge/tests/fixtures/runs-0.1")
}

/// The sample repository as a git repository whose base commit id is the same on every machine
/// and every day (fixed dates), so the code fixture's settings check passes on resume.
fn stable_sample_repo(dir: &Path) -> PathBuf {
    crate::run::sample_git_repo_with_env(
        dir,
        &[
            ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
            ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
        ],
    )
}

/// `generate` on the code fixture's settings (seed 3, one function at a time).
fn generate(
    repo: &Path,
    work: &Path,
    server: &FakeServer,
    run: &Path,
    n: usize,
    extra: &[&str],
) -> Output {
    taught(&["generate"], &server.url())
        .arg("--repo")
        .arg(repo)
        .arg("--out")
        .arg(run)
        .args(["-n", &n.to_string(), "--seed", "3", "--work-dir"])
        .arg(work)
        .args(["--backoff", "0.01", "--concurrency", "1"])
        .args(extra)
        .output()
        .expect("trajforge runs")
}

fn code_server(rt: &tokio::runtime::Runtime) -> FakeServer {
    let teacher = Arc::new(CodeTeacher::new(0));
    rt.block_on(FakeServer::start(Script::handler(move |req| {
        teacher.answer(req)
    })))
}

/// What the pins hold for one run folder: `status`, `status --json --jobs` and a raw export
/// (rows and summary), with the folder's path replaced by `RUN`.
fn observe(run: &Path, scratch: &Path) -> Vec<(&'static str, String)> {
    let path = run.display().to_string();
    let scratch_path = scratch.display().to_string();
    let clean = |text: String| text.replace(&path, "RUN").replace(&scratch_path, "SCRATCH");
    let ok = |out: &Output, what: &str| {
        assert!(out.status.success(), "{what}: {}", stderr(out));
    };
    let text = trajforge(&["status", &path], scratch);
    ok(&text, "status");
    let json = trajforge(&["status", &path, "--json", "--jobs"], scratch);
    ok(&json, "status --json");
    let data = scratch.join("export").join("raw.jsonl");
    let export = trajforge(
        &[
            "export",
            &path,
            "--format",
            "raw",
            "--out",
            data.to_str().expect("utf-8"),
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
            "--json",
        ],
        scratch,
    );
    ok(&export, "export");
    let rows = std::fs::read_to_string(&data).unwrap_or_default();
    vec![
        ("status.txt", clean(stdout(&text))),
        ("status.json", clean(stdout(&json))),
        ("export.json", clean(stdout(&export))),
        ("export.jsonl", clean(rows)),
    ]
}

/// A copy of fixture `kind` in `dir/kind`.
fn copy_fixture(kind: &str, dir: &Path) -> PathBuf {
    let run = dir.join(kind);
    std::fs::create_dir_all(&run).expect("mkdir");
    std::fs::copy(
        fixtures().join(kind).join("trajforge.db"),
        run.join("trajforge.db"),
    )
    .expect("copy fixture");
    run
}

/// Checkpoint a run's database into its one file (no -wal/-shm beside it).
fn checkpoint(db: &Path) {
    run_ok(
        Command::new("sqlite3")
            .arg(db)
            .arg("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;"),
        "sqlite3",
    );
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", db.display()));
        if side.exists() {
            std::fs::remove_file(side).expect("rm");
        }
    }
}

/// Writes the fixtures and their pins into $TRAJFORGE_FIXTURES_OUT with the binary under test;
/// run once with the release that wrote them (see the fixtures' README.md).
/// A file of the import crate's fixtures, as an argument.
fn import_fixture(p: &str) -> String {
    repo_root()
        .join("crates/trajforge-import/fixtures")
        .join(p)
        .display()
        .to_string()
}

#[test]
#[ignore = "writes fixtures; run by hand with TRAJFORGE_FIXTURES_OUT set"]
fn make_fixtures() {
    let out =
        PathBuf::from(std::env::var_os("TRAJFORGE_FIXTURES_OUT").expect("TRAJFORGE_FIXTURES_OUT"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = runtime();

    // Code: four functions finished, then a fifth stopped by a token budget after its first
    // stages, so a resume has work left.
    let repo = stable_sample_repo(tmp.path());
    let work = work_dir(tmp.path());
    let server = code_server(&rt);
    let code = tmp.path().join("code");
    let first = generate(&repo, &work, &server, &code, 4, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let spent = {
        let s = trajforge(
            &["status", code.to_str().expect("utf-8"), "--json"],
            tmp.path(),
        );
        let v: Value = serde_json::from_str(&stdout(&s)).expect("json");
        v["prompt_tokens"].as_u64().unwrap_or(0) + v["completion_tokens"].as_u64().unwrap_or(0)
    };
    let budget = (spent + 1).to_string();
    let second = generate(&repo, &work, &server, &code, 5, &["--max-tokens", &budget]);
    assert!(second.status.success(), "{}", stderr(&second));
    drop(server);

    // Web: a small crawl, eight tasks.
    let web = tmp.path().join("web");
    if let Some(html) = bidict_docs() {
        let (site, pages) = crawl_site(&html, tmp.path(), 8);
        let teacher = Arc::new(WebTeacher::new(pages));
        let server = rt.block_on(FakeServer::start(Script::handler(move |req| {
            teacher.answer(req)
        })));
        run_ok(
            taught(&["web", "generate"], &server.url())
                .arg("--site")
                .arg(&site)
                .arg("--out")
                .arg(&web)
                .args([
                    "-n",
                    "8",
                    "--start-pages",
                    "2",
                    "--seed",
                    "5",
                    "--max-steps",
                    "8",
                ])
                .args(["--concurrency", "1", "--backoff", "0.01"]),
            "web generate",
        );
    }

    // Imported: SERA and mini-swe-agent records.
    let imported = tmp.path().join("imported");
    for (from, file) in [
        ("sera", import_fixture("sera/sera.jsonl")),
        (
            "mini-swe-agent",
            import_fixture("mini-swe-agent/chunked_even.traj.json"),
        ),
    ] {
        let o = trajforge(
            &[
                "import",
                "--from",
                from,
                &file,
                "--into",
                imported.to_str().expect("utf-8"),
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }

    for kind in KINDS {
        let run = tmp.path().join(kind);
        if !run.join("trajforge.db").is_file() {
            continue;
        }
        checkpoint(&run.join("trajforge.db"));
        let dest = out.join(kind);
        std::fs::create_dir_all(&dest).expect("mkdir");
        std::fs::copy(run.join("trajforge.db"), dest.join("trajforge.db")).expect("copy");
        // Pins are taken on a copy, as the test does, so the committed file is what they describe.
        let scratch = tempfile::tempdir().expect("tempdir");
        let copy = scratch.path().join(kind);
        std::fs::create_dir_all(&copy).expect("mkdir");
        std::fs::copy(dest.join("trajforge.db"), copy.join("trajforge.db")).expect("copy");
        for (name, text) in observe(&copy, scratch.path()) {
            std::fs::write(dest.join(name), text).expect("write pin");
        }
    }
}

/// Export fields added after 0.1, each named: the summary's filter notes and a web run's
/// intents and start pages, a web row's task (issue 14). Every field 0.1 printed must still be
/// printed unchanged; only these may be new, and only where the pin lacks them.
const LATER_EXPORT_FIELDS: [&str; 7] = [
    "notes",
    "intents",
    "start_pages",
    "site",
    "intent",
    "start_url",
    "final_url",
];

/// Remove from `now` the [`LATER_EXPORT_FIELDS`] that `pinned` (a summary, or the rows) lacks.
fn without_later_additions(now: &mut Value, pinned: &Value) {
    match (now, pinned) {
        (Value::Object(map), Value::Object(old)) => {
            map.retain(|k, _| old.contains_key(k) || !LATER_EXPORT_FIELDS.contains(&k.as_str()));
        }
        (Value::Array(rows), Value::Array(old)) => {
            for (row, was) in rows.iter_mut().zip(old) {
                without_later_additions(row, was);
            }
        }
        _ => {}
    }
}

/// Compare what this binary prints for each fixture with the pins of the release that wrote it.
#[test]
fn old_runs_report_and_export_as_the_release_that_wrote_them() {
    for kind in KINDS {
        let dir = fixtures().join(kind);
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = copy_fixture(kind, tmp.path());
        for (name, text) in observe(&run, tmp.path()) {
            let pinned = std::fs::read_to_string(dir.join(name)).expect("pin");
            if name.ends_with(".json") || name.ends_with(".jsonl") {
                let parse = |t: &str| -> Vec<Value> {
                    t.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| serde_json::from_str(l).expect("json"))
                        .collect()
                };
                let whole = |t: &str| -> Value {
                    serde_json::from_str(t).unwrap_or_else(|_| Value::Array(parse(t)))
                };
                let mut now = whole(&text);
                if name.starts_with("export") {
                    without_later_additions(&mut now, &whole(&pinned));
                }
                assert_eq!(now, whole(&pinned), "{kind}/{name}");
            } else {
                assert_eq!(text, pinned, "{kind}/{name}");
            }
        }
    }
}

/// The code fixture's unfinished function is finished by a resume, and every function ends as
/// the scripted teacher decides.
#[test]
fn an_old_code_run_resumes_and_finishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = copy_fixture("code", tmp.path());
    let before: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("code/status.json")).expect("pin"),
    )
    .expect("json");
    assert!(before["pending"].as_u64().unwrap_or(0) >= 1, "{before}");
    let repo = stable_sample_repo(tmp.path());
    let work = work_dir(tmp.path());
    let rt = runtime();
    let server = code_server(&rt);
    let out = generate(&repo, &work, &server, &run, 5, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 already done"), "{}", stderr(&out));
    let s = trajforge(
        &["status", run.to_str().expect("utf-8"), "--json", "--jobs"],
        tmp.path(),
    );
    assert!(s.status.success(), "{}", stderr(&s));
    let v: Value = serde_json::from_str(&stdout(&s)).expect("json");
    assert_eq!(
        (v["done"].as_u64(), v["functions"].as_u64()),
        (Some(5), Some(5)),
        "{v}"
    );
    for job in v["jobs"].as_array().expect("jobs") {
        let function = job["function"]["name"].as_str().unwrap_or("");
        assert_eq!(
            job["result"].as_str(),
            Some(expected_result(function)),
            "{job}"
        );
    }
    // The finished jobs are untouched by the resume.
    for (old, new) in before["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .zip(v["jobs"].as_array().expect("jobs"))
    {
        if old["status"] == "done" {
            assert_eq!(old, new);
        }
    }
}

/// The web fixture's jobs are what the 0.1 draw (by full start URL) plans for its settings
/// (seed 5, two start pages, 8 tasks), which is the order `web generate` keeps for a run that
/// has no `task_draw` meta: a resume of it plans the jobs it already holds, under the same
/// keys, and adds only new ones.
#[test]
fn an_old_web_run_plans_the_jobs_it_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = trajforge_store::Store::open(&copy_fixture("web", tmp.path())).expect("store");
    let stored: Vec<(String, Value)> = store
        .jobs()
        .expect("jobs")
        .into_iter()
        .map(|j| (j.key, j.payload))
        .collect();
    assert_eq!(store.meta("task_draw").expect("meta"), None);
    let mut starts: Vec<trajforge_pipeline::web::StartPage> = Vec::new();
    for (_, p) in &stored {
        let page = trajforge_pipeline::web::StartPage {
            url: p["start_url"].as_str().expect("url").to_string(),
            title: p["start_title"].as_str().expect("title").to_string(),
        };
        if !starts.contains(&page) {
            starts.push(page);
        }
    }
    assert_eq!(starts.len(), 2);
    let menu = trajforge_menu::Menu::builtin();
    let order = trajforge_pipeline::web::TaskDraw::from_meta(None);
    let planned = trajforge_pipeline::web::plan(&menu.tasks, &starts, 8, 5, order);
    assert_eq!(planned, stored);
    // A larger -n extends that list: the stored jobs come first, unchanged.
    let more = trajforge_pipeline::web::plan(&menu.tasks, &starts, 12, 5, order);
    assert_eq!(&more[..8], &stored[..]);
}

#[test]
fn an_old_import_run_does_not_take_the_same_records_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = copy_fixture("imported", tmp.path());
    // The files 0.1 imported into the fixture, keyed then by their bytes.
    for (from, file, records) in [
        ("sera", import_fixture("sera/sera.jsonl"), 2),
        (
            "mini-swe-agent",
            import_fixture("mini-swe-agent/chunked_even.traj.json"),
            1,
        ),
    ] {
        let out = trajforge(
            &[
                "import",
                "--from",
                from,
                &file,
                "--into",
                run.to_str().expect("utf-8"),
                "--json",
            ],
            tmp.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: Value = serde_json::from_str(&stdout(&out)).expect("json summary");
        assert_eq!(summary["added"], 0, "{from}: {summary}");
        assert_eq!(summary["duplicates"], records, "{from}: {summary}");
    }
}
