//! A browser killed or frozen mid-episode is replaced; the pool reuses healthy browsers.

use std::time::Duration;

use serde_json::json;
use trajforge_browser::{BrowserEnvironment, EnvConfig, NetMode, StaticServer};

use crate::common::{assert_group_gone, pool, site_dir};

fn signal(sig: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn link(env: &BrowserEnvironment, name: &str) -> String {
    env.snapshot()
        .refs
        .iter()
        .find(|(_, t)| t.role == "link" && t.name == name)
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| panic!("no link {name:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_and_hung_browsers_are_replaced() {
    let Some(dir) = site_dir() else { return };
    let server = StaticServer::start(&dir, 0).await.expect("server");
    // A short call timeout so a frozen browser is noticed quickly.
    let pool = pool(Duration::from_secs(3));
    let start = format!("{}intro.html", server.url());
    let mut env = BrowserEnvironment::start(
        &pool,
        &start,
        NetMode::Live { record: None },
        EnvConfig::default(),
    )
    .await
    .expect("start");

    // Crash: kill the browser process itself mid-episode.
    let first = env.browser_pid();
    signal("-KILL", first);
    let obs = env
        .act("click", &json!({"ref": link(&env, "Basic Usage")}))
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
    let obs = env
        .act("click", &json!({"ref": link(&env, "Basic Usage")}))
        .await;
    assert!(!obs.error, "{}", obs.text);
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
    let obs = env.act("goto", &json!({"url": "api.html"})).await;
    assert!(!obs.error, "{}", obs.text);
    assert!(pool.replaced() >= 2);

    // The next episode reuses the (replacement) browser instead of launching one.
    let third = env.browser_pid();
    env.close().await;
    let launched = pool.launched();
    let mut again = BrowserEnvironment::start(
        &pool,
        &start,
        NetMode::Live { record: None },
        EnvConfig::default(),
    )
    .await
    .expect("second episode");
    assert_eq!(again.browser_pid(), third);
    assert_eq!(pool.launched(), launched);
    again.close().await;
    pool.shutdown().await;
    assert_group_gone(third).await;
}
