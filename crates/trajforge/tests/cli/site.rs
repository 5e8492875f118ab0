//! `trajforge site crawl` / `site show` on the real bidict documentation site (Debian's
//! python-bidict-doc, fetched by scripts/fetch-test-data.sh), with the real browser.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::{assert_success, input_error, repo_root, stderr, stdout, trajforge};

/// The site folder, or None (skip) when it or Chromium is missing; under CI that fails.
pub fn bidict_docs() -> Option<PathBuf> {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/test-data"));
    let dir = data.join("sites/bidict-doc/usr/share/doc/python-bidict-doc/html");
    let browser = std::env::var_os("TRAJFORGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/chromium/chromium"));
    if dir.join("index.html").exists() && browser.exists() {
        return Some(dir);
    }
    trajforge_testkit::skip_missing(
        "web test site or chromium missing: run scripts/setup.sh and scripts/fetch-test-data.sh",
    );
    None
}

/// `site crawl --dir SITE --out OUT` with `extra` options; its output.
fn crawl_dir_output(site: &Path, out: &Path, extra: &[&str], cache: &Path) -> Output {
    let mut args = vec![
        "site",
        "crawl",
        "--dir",
        site.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    trajforge(&args, cache)
}

/// `site crawl --dir SITE --out OUT --json` with `extra` options, succeeded; its summary.
pub fn crawl_dir(site: &Path, out: &Path, extra: &[&str], cache: &Path) -> serde_json::Value {
    let out = crawl_dir_output(site, out, &[&["--json"], extra].concat(), cache);
    assert_success(&out);
    serde_json::from_str(&stdout(&out)).expect("json")
}

#[test]
fn crawl_a_local_folder_then_show_it() {
    let Some(site) = bidict_docs() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("site");
    let summary = crawl_dir(&site, &out_dir, &["--max-pages", "12"], tmp.path());
    assert_eq!(summary["pages"], 12, "{summary}");
    assert!(
        summary["not_visited"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert!(summary["blocked_requests"].as_u64().is_some());
    assert!(summary["pages_per_second"].as_f64().unwrap_or(0.0) > 0.0);
    let origin = summary["origin"].as_str().expect("origin").to_string();
    assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
    for f in ["site.json", "pages.jsonl", "responses.jsonl", "bodies"] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    let pages = std::fs::read_to_string(out_dir.join("pages.jsonl")).expect("pages");
    assert_eq!(pages.lines().count(), 12);
    let first: serde_json::Value =
        serde_json::from_str(pages.lines().next().expect("line")).expect("page");
    assert_eq!(first["url"], format!("{origin}/index.html"));
    assert_eq!(first["title"], "bidict");
    assert!(
        first["snapshot"]
            .as_str()
            .expect("snapshot")
            .contains("- link \"Introduction\" [ref=e")
    );

    let show = trajforge(
        &["site", "show", out_dir.to_str().expect("utf-8")],
        tmp.path(),
    );
    assert_success(&show);
    let text = stdout(&show);
    assert!(
        text.contains(&format!("site {origin} (start /index.html)")),
        "{text}"
    );
    assert!(text.contains("12 pages,"), "{text}");
    assert!(
        text.contains("/intro.html  \"Introduction - bidict\""),
        "{text}"
    );
    // changelog.html is linked everywhere but ships only gzipped: a dead link.
    assert!(text.contains("/changelog.html  (from"), "{text}");

    // The time limit stops the crawl before the next page; a crawl that recorded no page
    // fails (exit 1) with a hint, its summary still printed.
    let limited = tmp.path().join("limited");
    let out = crawl_dir_output(
        &site,
        &limited,
        &["--json", "--time-limit", "0s"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the crawl recorded no pages") && err.contains("hint: raise --time-limit"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(summary["pages"], 0, "{summary}");
    assert_eq!(summary["timed_out"], true, "{summary}");
    assert_eq!(summary["not_visited"], 1, "{summary}");

    let json = trajforge(
        &["site", "show", "--json", out_dir.to_str().expect("utf-8")],
        tmp.path(),
    );
    let graph: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(graph["pages"].as_array().map(Vec::len), Some(12));
    assert!(graph["edges"].as_u64().unwrap_or(0) > 12);
}

#[test]
fn bad_input_is_reported_with_a_hint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("o");
    let o = out_dir.to_str().expect("utf-8");
    let out = trajforge(
        &["site", "crawl", "file:///etc/passwd", "--out", o],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("scheme \"file\" is not allowed"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"));
    let out = trajforge(&["site", "crawl", "--out", o], tmp.path());
    input_error(&out);
    let missing = tmp.path().join("nope");
    let out = crawl_dir_output(&missing, &out_dir, &[], tmp.path());
    let err = input_error(&out);
    assert!(err.contains("not a folder"), "{err}");
    let out = trajforge(
        &["site", "show", missing.to_str().expect("utf-8")],
        tmp.path(),
    );
    let err = input_error(&out);
    assert!(err.contains("site crawl --out"), "{err}");
    let out = trajforge(
        &[
            "site",
            "crawl",
            "http://127.0.0.1:1/",
            "--out",
            o,
            "--time-limit",
            "soon",
        ],
        tmp.path(),
    );
    input_error(&out);
}

#[test]
fn the_time_limit_cuts_a_hanging_page_short() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The start page links to a page that never answers.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                if request.starts_with("GET /slow") {
                    std::thread::sleep(std::time::Duration::from_secs(120));
                    return;
                }
                let body = "<html><head><title>start</title></head><body><a href=\"/slow\">slow</a></body></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("site");
    let started = std::time::Instant::now();
    let out = trajforge(
        &[
            "site",
            "crawl",
            &format!("http://127.0.0.1:{port}/"),
            "--out",
            out_dir.to_str().expect("utf-8"),
            "--json",
            "--time-limit",
            "12s",
        ],
        tmp.path(),
    );
    let took = started.elapsed();
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(summary["pages"], 1, "{summary}");
    assert_eq!(summary["timed_out"], true, "{summary}");
    assert_eq!(summary["not_visited"], 1, "{summary}");
    // Without the cut, the hanging page holds the crawl for the 20 s page-load timeout.
    let seconds = summary["seconds"].as_f64().expect("seconds");
    assert!(seconds < 14.0, "the 12 s crawl took {seconds} s");
    assert!(took.as_secs() < 40, "the command took {took:?}");
}
