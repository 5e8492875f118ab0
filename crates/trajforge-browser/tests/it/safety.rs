//! Service workers cannot carry requests past the guard, and replay tells form posts apart
//! by their bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use trajforge_browser::{BrowserEnvironment, BrowserPool, EnvConfig, NetMode, Recorder, Recording};

use crate::common::{ActOk, LogServer, close_all, pool, ref_of, site_dir, start_env};

/// A recorder in a fresh folder, and a live episode on `start` recording into it.
async fn recording_env(
    pool: &BrowserPool,
    start: &str,
) -> (tempfile::TempDir, Arc<Recorder>, BrowserEnvironment) {
    let rec_dir = tempfile::tempdir().expect("tempdir");
    let recorder = Arc::new(Recorder::create(rec_dir.path()).expect("recorder"));
    let live = NetMode::Live {
        record: Some(Arc::clone(&recorder)),
    };
    let env = start_env(pool, start, live, EnvConfig::default()).await;
    (rec_dir, recorder, env)
}

const SW_PAGE: &str = r#"<!doctype html><title>SW</title>
<p id="status">starting</p><p id="data">no data</p>
<script>
const show = (id, t) => { document.getElementById(id).textContent = t; };
if (!('serviceWorker' in navigator)) show('status', 'no service workers');
else navigator.serviceWorker.register('sw.js')
  .then(() => navigator.serviceWorker.ready)
  .then(() => show('status', 'sw active'))
  .catch((e) => show('status', 'sw refused: ' + e.name));
// Once a worker could have taken control, the page fetches its data.
setTimeout(() => fetch('data.txt').then((r) => r.text())
  .then((t) => show('data', 'data: ' + t)).catch(() => show('data', 'data failed')), 1500);
</script>"#;

/// A worker that phones another origin on start, install and every fetch it intercepts.
fn sw_script(other: &str) -> String {
    format!(
        r#"fetch('{other}startup').catch(() => null);
self.addEventListener('install', (e) => {{ self.skipWaiting(); e.waitUntil(fetch('{other}install').catch(() => null)); }});
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => e.respondWith(fetch('{other}escape').then(() => new Response('via service worker')).catch(() => new Response('via service worker, blocked'))));"#
    )
}

async fn settle(env: &mut BrowserEnvironment) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = env.refresh().await.expect("refresh").text.clone();
        if text.contains("data:") || text.contains("data failed") || Instant::now() > deadline {
            // Leave a worker time to phone home before the verdict.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            return env.refresh().await.expect("refresh").text.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_worker_cannot_escape_live_or_replayed() {
    if site_dir().is_none() {
        return;
    }
    let other = LogServer::start(vec![("/beacon", "text/plain", "hi".into())]).await;
    let site = LogServer::start(vec![
        ("/sw.html", "text/html", SW_PAGE.to_string()),
        ("/sw.js", "application/javascript", sw_script(&other.url())),
        ("/data.txt", "text/plain", "from the site".to_string()),
    ])
    .await;
    let start = format!("{}sw.html", site.url());
    let pool = pool(Duration::from_secs(20));

    // Live, recording.
    let (rec_dir, recorder, mut env) = recording_env(&pool, &start).await;
    let text = settle(&mut env).await;
    assert!(text.contains("data: from the site"), "{text}");
    assert!(
        !text.contains("sw active"),
        "a service worker was registered:\n{text}"
    );
    assert!(text.contains("sw refused"), "{text}");
    assert!(
        !site.seen().iter().any(|r| r.path == "/sw.js"),
        "the worker script was fetched: {:?}",
        site.seen()
    );
    env.close().await;
    recorder
        .write_meta(site.url().trim_end_matches('/'), &start, false)
        .expect("meta");

    // Replayed: nothing reaches the site or the other origin.
    let before = site.seen().len();
    let rec = Arc::new(Recording::open(rec_dir.path()).expect("recording"));
    let mut env = start_env(&pool, &start, NetMode::Replay(rec), EnvConfig::default()).await;
    let text = settle(&mut env).await;
    assert!(text.contains("data: from the site"), "{text}");
    assert!(!text.contains("sw active"), "{text}");
    assert_eq!(
        site.seen().len(),
        before,
        "replay reached the site: {:?}",
        site.seen()
    );
    assert!(
        other.seen().is_empty(),
        "the other origin was reached: {:?}",
        other.seen()
    );
    close_all(env, pool).await;
}

const FORM: &str = r#"<!doctype html><title>Form</title>
<form method="post" action="/echo"><label>Word <input name="w"></label><button>Send</button></form>"#;

async fn post(env: &mut BrowserEnvironment, start: &str, word: &str) -> String {
    env.act_ok("goto", json!({"url": start})).await;
    let field = ref_of(env, "textbox", "Word");
    env.act_ok("fill", json!({"ref": field, "text": word}))
        .await;
    env.act_ok("press", json!({"key": "Enter"})).await;
    assert!(
        env.current_url().ends_with("/echo"),
        "{}",
        env.current_url()
    );
    env.snapshot().text.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_tells_posts_apart_by_their_bodies() {
    if site_dir().is_none() {
        return;
    }
    let site = LogServer::start(vec![("/form.html", "text/html", FORM.to_string())]).await;
    let start = format!("{}form.html", site.url());
    let pool = pool(Duration::from_secs(20));
    let (rec_dir, recorder, mut env) = recording_env(&pool, &start).await;
    for word in ["one", "two"] {
        let page = post(&mut env, &start, word).await;
        assert!(page.contains(&format!("You sent w={word}")), "{page}");
    }
    env.close().await;
    recorder
        .write_meta(site.url().trim_end_matches('/'), &start, false)
        .expect("meta");
    let posts: Vec<_> = site
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let bodies: Vec<&str> = posts.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["w=one", "w=two"], "{posts:?}");

    let rec = Arc::new(Recording::open(rec_dir.path()).expect("recording"));
    let echo = format!("{}echo", site.url());
    let one = rec
        .lookup_request("POST", &echo, Some(b"w=one"))
        .expect("one");
    let two = rec
        .lookup_request("POST", &echo, Some(b"w=two"))
        .expect("two");
    assert_ne!(one.body, two.body);
    let before = site.seen().len();
    let mut env = start_env(&pool, &start, NetMode::Replay(rec), EnvConfig::default()).await;
    // Each body gets its own recorded answer, in any order; a body never recorded falls back
    // to the first answer recorded for the URL.
    for (word, answer) in [("two", "w=two"), ("one", "w=one"), ("three", "w=one")] {
        let page = post(&mut env, &start, word).await;
        assert!(
            page.contains(&format!("You sent {answer}")),
            "{word}: {page}"
        );
    }
    assert_eq!(site.seen().len(), before, "replay reached the site");
    close_all(env, pool).await;
}
