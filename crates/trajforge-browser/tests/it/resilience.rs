//! A browser killed or frozen mid-episode is replaced; the pool reuses healthy browsers.

use std::time::Duration;

use serde_json::json;
use trajforge_browser::{CrawlConfig, EnvConfig, StaticServer, crawl};

use crate::common::{ActOk, assert_group_gone, live_env, pool, ref_of, site_dir};

fn signal(sig: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_and_hung_browsers_are_replaced() {
    let Some(dir) = site_dir() else { return };
    let server = StaticServer::start(&dir, 0).await.expect("server");
    // A short call timeout so a frozen browser is noticed quickly.
    let pool = pool(Duration::from_secs(3));
    let start = format!("{}intro.html", server.url());
    let mut env = live_env(&pool, &start, EnvConfig::default()).await;

    // Crash: kill the browser process itself mid-episode.
    let first = env.browser_pid();
    signal("-KILL", first);
    let obs = env
        .act(
            "click",
            &json!({"ref": ref_of(&env, "link", "Basic Usage")}),
        )
        .await;
    assert!(obs.error && !obs.done, "{}", obs.text);
    assert!(obs.text.contains("restarted"), "{}", obs.text);
    assert_eq!(env.restarts(), 1);
    assert!(
        env.current_url().ends_with("/intro.html"),
        "{}",
        env.current_url()
    );
    assert_group_gone(first).await;
    env.click_ok("link", "Basic Usage").await;
    assert!(env.current_url().ends_with("/basic-usage.html"));

    // Hang: freeze the browser; the call times out and the browser is replaced.
    let second = env.browser_pid();
    assert_ne!(first, second);
    signal("-STOP", second);
    let obs = env.act("goto", &json!({"url": "api.html"})).await;
    assert!(obs.error, "{}", obs.text);
    assert!(obs.text.contains("restarted"), "{}", obs.text);
    assert_eq!(env.restarts(), 2);
    assert_group_gone(second).await;
    env.act_ok("goto", json!({"url": "api.html"})).await;
    assert!(pool.replaced() >= 2);

    // The next episode reuses the (replacement) browser instead of launching one.
    let third = env.browser_pid();
    env.close().await;
    let launched = pool.launched();
    let mut again = live_env(&pool, &start, EnvConfig::default()).await;
    assert_eq!(again.browser_pid(), third);
    assert_eq!(pool.launched(), launched);
    again.close().await;
    pool.shutdown().await;
    assert_group_gone(third).await;
}

fn recorded_urls(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("pages.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["url"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The crawl replaces a browser killed under it and finishes: the pages recorded before the
/// crash stay, none is recorded twice, and the result is the same page set as without a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_killed_mid_crawl_is_replaced_and_the_crawl_finishes() {
    let Some(dir) = site_dir() else { return };
    let server = StaticServer::start(&dir, 0).await.expect("server");
    let pool = pool(Duration::from_secs(20));
    let config = |out: &std::path::Path| CrawlConfig {
        start_url: format!("{}index.html", server.url()),
        out: out.to_path_buf(),
        max_pages: 200,
        time_limit: Some(Duration::from_secs(120)),
        max_snapshot_chars: 40_000,
        static_site: true,
    };
    let reference = tempfile::tempdir().expect("tempdir");
    let summary = crawl(&pool, &config(reference.path()))
        .await
        .expect("crawl");
    let mut expected = recorded_urls(reference.path());
    expected.sort();
    assert_eq!(expected.len(), summary.pages);

    // The pool hands the crawl this browser (it is the only one).
    let victim = pool.acquire().await.expect("browser").browser().pid();
    let replaced = pool.replaced();
    let out = tempfile::tempdir().expect("tempdir");
    let killer = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let urls = recorded_urls(out.path());
            if urls.len() >= 5 || std::time::Instant::now() > deadline {
                signal("-KILL", victim);
                return urls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let killed_config = config(out.path());
    let (summary, before_kill) = tokio::join!(crawl(&pool, &killed_config), killer);
    let summary = summary.expect("the crawl survives the crash");
    assert!(
        before_kill.len() < expected.len(),
        "the kill came after the crawl: {before_kill:?}"
    );
    assert!(pool.replaced() > replaced, "the browser was not replaced");
    assert_group_gone(victim).await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let urls = recorded_urls(out.path());
    assert_eq!(
        &urls[..before_kill.len()],
        &before_kill[..],
        "pages before the crash kept"
    );
    let mut sorted = urls.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), urls.len(), "a page recorded twice: {urls:?}");
    assert_eq!(sorted, expected);
    assert_eq!(summary.pages, expected.len());
    pool.shutdown().await;
}
