//! Crawl the real site live, then replay it with the server gone.

use std::time::Duration;

use serde_json::json;
use trajforge_browser::{
    BrowserEnvironment, CrawlConfig, EnvConfig, NetMode, Recording, StaticServer, crawl, site_mode,
};

use crate::common::{ActOk, close_all, pool, refs_of, site_dir, without_refs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_then_replay_offline() {
    let Some(dir) = site_dir() else { return };
    let out = tempfile::tempdir().expect("tempdir");
    let server = StaticServer::start(&dir, 0).await.expect("server");
    let start = format!("{}index.html", server.url());
    let pool = pool(Duration::from_secs(20));
    let summary = crawl(
        &pool,
        &CrawlConfig {
            start_url: start.clone(),
            out: out.path().to_path_buf(),
            max_pages: 200,
            time_limit: Some(Duration::from_secs(120)),
            max_snapshot_chars: 40_000,
            static_site: true,
        },
    )
    .await
    .expect("crawl");
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert!(!summary.timed_out);
    // 44 HTML files ship; the crawl reaches every linked one (changelog.html.gz is a download).
    assert!(
        summary.pages >= 40,
        "only {} pages: {summary:?}\n{}",
        summary.pages,
        std::fs::read_to_string(out.path().join("pages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.chars().take(150).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(summary.left, 0);
    let origin = server.url().trim_end_matches('/').to_string();
    let rec = Recording::open(out.path()).expect("open recording");
    assert_eq!(rec.meta().origin, origin);
    assert_eq!(rec.pages().len(), summary.pages);
    let index = rec
        .pages()
        .iter()
        .find(|p| p.url == start)
        .expect("index page recorded")
        .clone();
    assert!(index.title.contains("bidict"), "{}", index.title);
    assert!(index.snapshot.contains("[ref=e"), "{}", index.snapshot);
    assert!(
        index.snapshot.contains("textbox \"Search\" [ref=e"),
        "{}",
        index.snapshot
    );
    assert!(index.links.iter().any(|l| l.ends_with("/intro.html")));
    for p in rec.pages() {
        assert!(p.url.starts_with(&origin), "{}", p.url);
        assert!(
            p.links
                .iter()
                .all(|l| l.starts_with(&origin) && !l.contains('#'))
        );
    }
    // Scripts and stylesheets were recorded too.
    assert!(
        rec.lookup("GET", &format!("{origin}/searchindex.js"))
            .is_some()
    );
    assert!(
        rec.lookup("GET", &format!("{origin}/_static/searchtools.js"))
            .is_some()
    );

    // Replay with the server gone: the pages still load, identically.
    drop(server);
    let (mode, meta) = site_mode(out.path(), false).expect("site mode");
    assert!(matches!(mode, NetMode::Replay(_)));
    assert_eq!(meta.start_url, start);
    let mut env = BrowserEnvironment::start(
        &pool,
        &meta.start_url,
        mode,
        EnvConfig {
            max_snapshot_chars: 40_000,
            ..EnvConfig::default()
        },
    )
    .await
    .expect("replayed start page");
    assert_eq!(
        without_refs(&env.snapshot().text),
        without_refs(&index.snapshot)
    );
    // Two links lead there: one in the side bar, and one in the page body whose middle is
    // just below the fold (a click there must scroll it into view first).
    let mut intros = refs_of(&env, "link", "Introduction");
    assert_eq!(intros.len(), 2, "{}", env.snapshot().text);
    let recorded = rec
        .pages()
        .iter()
        .find(|p| p.url.ends_with("/intro.html"))
        .expect("intro");
    for i in 0..2 {
        env.act_ok("click", json!({"ref": intros[i]})).await;
        assert!(
            env.current_url().ends_with("/intro.html"),
            "link {i} led to {}",
            env.current_url()
        );
        assert_eq!(
            without_refs(&env.snapshot().text),
            without_refs(&recorded.snapshot)
        );
        env.act_ok("go_back", json!({})).await;
        assert!(
            env.current_url().ends_with("/index.html"),
            "{}",
            env.current_url()
        );
        // Refs of the start page live on after going back only if the page was kept in
        // the back/forward cache; take them from the new snapshot either way.
        intros = refs_of(&env, "link", "Introduction");
    }
    // A page that was never recorded is refused, not fetched.
    let obs = env.act("goto", &json!({"url": "/not-recorded.html"})).await;
    assert!(obs.error, "{}", obs.text);
    assert!(
        env.policy()
            .misses()
            .iter()
            .any(|u| u.ends_with("/not-recorded.html"))
    );
    close_all(env, pool).await;
}
