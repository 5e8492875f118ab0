//! Hostile trajectory content: a run whose reasoning, observations, patches, PR text, bug
//! types and function names hold markup, scripts, event handlers, `javascript:` links, a
//! closing `</textarea>` and template syntax. In real Chromium nothing of it runs or turns
//! into markup on any page; the server sends the CSP, refuses other methods and other hosts.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trajforge_view::synthetic::{self, Spec};
use trajforge_view::{Viewer, server};

use crate::chromium;

/// Each line would set `window.__pwned` (and the title) if it ever ran.
pub const HOSTILE: &str = "<script>window.__pwned=1;document.title='pwned'</script>\n\
<img src=x onerror=\"window.__pwned=2;document.title='pwned'\">\n\
<a href=\"javascript:window.__pwned=3\" id=\"evil\">click me</a>\n\
</textarea></pre></details><svg onload=\"window.__pwned=4\"></svg>\n\
\"><script>window.__pwned=5</script><b x='\n\
{{ 7*7 }} ${7*7} <%= 7*7 %> {% raw %}";

fn hostile(i: usize) -> String {
    format!("{HOSTILE}\nmarker{i}")
}

async fn start(dir: &std::path::Path) -> String {
    serve(Viewer::open(dir).expect("viewer")).await
}

/// Serve `viewer` (its index built first) on a free port; its base URL.
pub async fn serve(viewer: Viewer) -> String {
    let viewer = Arc::new(viewer);
    viewer.index_all().expect("index");
    let listener = server::bind("127.0.0.1", 0).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(viewer, listener, std::future::pending()));
    format!("http://{addr}/")
}

/// One raw HTTP/1.1 request; the response head and body as text.
async fn raw(base: &str, request: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Wait for a stray handler to fire, then check that nothing hostile ran or became an
/// element on the page open in `tab`; the page's facts (its text included) for more checks.
pub async fn assert_inert(tab: &trajforge_browser::Tab, name: &str) -> Value {
    // Give a stray handler (onerror, onload) its chance to fire.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let check = chromium::eval(
        tab,
        "JSON.stringify({
            pwned: typeof window.__pwned,
            title: document.title,
            scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
            imgs: document.images.length,
            svgs: document.querySelectorAll('svg[onload]').length,
            handlers: Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
            js_links: Array.from(document.querySelectorAll('[href]')).filter(a => /^\\s*javascript:/i.test(a.getAttribute('href'))).length,
            evil: !!document.getElementById('evil'),
            text: document.body.innerText
        })",
    )
    .await;
    let v: Value = serde_json::from_str(check.as_str().unwrap_or("{}")).expect("json");
    assert_eq!(v["pwned"], "undefined", "{name}: a hostile script ran");
    assert!(
        !v["title"].as_str().unwrap_or("").contains("pwned"),
        "{name}: {}",
        v["title"]
    );
    assert_eq!(
        v["scripts"],
        serde_json::json!(["/static/app.js"]),
        "{name}"
    );
    assert_eq!(
        (
            v["imgs"].as_u64(),
            v["svgs"].as_u64(),
            v["handlers"].as_u64(),
            v["js_links"].as_u64(),
            v["evil"].as_bool()
        ),
        (Some(0), Some(0), Some(0), Some(0), Some(false)),
        "{name}: hostile markup became elements"
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_read_only_sends_the_csp_and_answers_only_its_own_host() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    synthetic::build(
        &dir,
        &Spec {
            jobs: 3,
            steps: 2,
            long_steps: 2,
            text: &hostile,
        },
    )
    .expect("run");
    let base = start(&dir).await;
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let get = raw(
        &base,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    let head = get
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        head.contains(
            &format!("content-security-policy: {}", trajforge_view::CSP).to_ascii_lowercase()
        ),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"));
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = raw(&base, &format!("{method} / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).await;
        assert!(r.starts_with("HTTP/1.1 405"), "{method}: {r}");
        assert!(r.to_ascii_lowercase().contains("allow: get"), "{r}");
    }
    // A page on another site reaching the viewer through a name rebound to 127.0.0.1.
    let rebound = raw(
        &base,
        "GET / HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    // The store was only read: no table or row was added.
    let store = trajforge_store::Store::open_read_only(&dir)
        .expect("open")
        .expect("run");
    assert_eq!(store.trajectory_count().expect("count"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_content_never_runs_or_becomes_markup_in_chromium() {
    let Some(browser) = chromium::launch().await else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    synthetic::build(
        &dir,
        &Spec {
            jobs: 8,
            steps: 2,
            long_steps: 3,
            text: &hostile,
        },
    )
    .expect("run");
    let base = start(&dir).await;
    let tab = chromium::tab(&browser, &base).await;
    let entry = url::form_urlencoded::byte_serialize(HOSTILE.as_bytes()).collect::<String>();
    let pages = [
        ("overview", String::new()),
        ("list", "list".to_string()),
        (
            "list-hostile-filter",
            format!("list?entry={entry}&reason={entry}"),
        ),
        ("job", "job/0".to_string()),
        ("job-rejected", "job/2".to_string()),
        ("sample-hermes", "sample/1?format=hermes".to_string()),
        ("sample-openai", "sample/1?format=openai".to_string()),
        ("sample-sharegpt", "sample/1?format=sharegpt".to_string()),
        ("search", "search?q=script+pwned".to_string()),
        ("search-hostile-query", format!("search?q={entry}")),
    ];
    for (name, path) in pages {
        let url = format!("{base}{path}");
        chromium::open(&tab, &url).await;
        let v = assert_inert(&tab, name).await;
        // Pages that show trajectory text show it as text.
        if matches!(
            name,
            "job" | "sample-hermes" | "search" | "list-hostile-filter"
        ) {
            let text = v["text"].as_str().unwrap_or("");
            assert!(
                text.contains("<script>window.__pwned=1") || text.contains("&lt;script"),
                "{name}: hostile text not shown as text"
            );
        }
        chromium::screenshot(&tab, &format!("hostile-{name}")).await;
    }
    // Nothing tried to reach another origin (an <img src> would have).
    assert!(
        tab.policy().blocked().is_empty(),
        "{:?}",
        tab.policy().blocked()
    );
    tab.close().await;
}
