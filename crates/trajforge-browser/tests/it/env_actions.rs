//! Every action on real elements of the real site, plus a stale ref and the network guard.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_agent::Environment;
use trajforge_browser::{BrowserEnvironment, Ending, EnvConfig};
use trajforge_teacher::ToolCall;

use crate::common::{close_all, crafted_site, ref_of, refs_of, served_env, site_dir};

async fn act(
    env: &mut BrowserEnvironment,
    name: &str,
    args: Value,
) -> trajforge_agent::Observation {
    let obs = env.act(name, &args).await;
    assert!(!obs.done || matches!(name, "answer" | "report_infeasible"));
    obs
}

/// [`act`], failing the test when the observation is an error.
async fn act_ok(
    env: &mut BrowserEnvironment,
    name: &str,
    args: Value,
) -> trajforge_agent::Observation {
    let obs = act(env, name, args).await;
    assert!(!obs.error, "{}", obs.text);
    obs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_on_the_real_site() {
    let Some(dir) = site_dir() else { return };
    let (server, pool, mut env, start) = served_env(&dir, "index.html", EnvConfig::default()).await;
    assert_eq!(env.snapshot().title, "bidict");
    let stale = ref_of(&env, "link", "Introduction");

    // fill + press: the Sphinx search form, whose results are rendered by the page's JS.
    let search = ref_of(&env, "textbox", "Search");
    let obs = act_ok(&mut env, "fill", json!({"ref": search, "text": "inverse"})).await;
    assert!(obs.text.contains("textbox \"Search\""), "{}", obs.text);
    act_ok(&mut env, "press", json!({"key": "Enter"})).await;
    assert!(
        env.current_url().contains("search.html?q=inverse"),
        "{}",
        env.current_url()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.snapshot().text.contains("Basic Usage")
        || !env.snapshot().text.contains("Search Results")
    {
        assert!(
            Instant::now() < deadline,
            "no search results:\n{}",
            env.snapshot().text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.refresh().await.expect("refresh");
    }

    // A ref of the previous page is stale: an error observation, and the episode goes on.
    let obs = act(&mut env, "click", json!({"ref": stale})).await;
    assert!(obs.error && !obs.done, "{}", obs.text);
    assert!(obs.text.contains("stale"), "{}", obs.text);
    let obs = act(&mut env, "click", json!({"ref": "e999999999"})).await;
    assert!(obs.error, "{}", obs.text);

    // click: a search result (a real link in JS-built content).
    let result = refs_of(&env, "link", "Other Functionality")
        .pop()
        .expect("a result link");
    act_ok(&mut env, "click", json!({"ref": result})).await;
    assert!(
        env.current_url().contains("other-functionality.html"),
        "{}",
        env.current_url()
    );

    // scroll
    let obs = act(&mut env, "scroll", json!({"direction": "down"})).await;
    assert!(
        !obs.error && obs.text.contains("Scrolled down: showing"),
        "{}",
        obs.text
    );
    assert!(!obs.text.contains("showing 0-"), "{}", obs.text);

    // go_back returns to the search page.
    act_ok(&mut env, "go_back", json!({})).await;
    assert!(
        env.current_url().contains("search.html"),
        "{}",
        env.current_url()
    );

    // goto: relative same-origin works; other origins and file:// are refused.
    act_ok(&mut env, "goto", json!({"url": "api.html"})).await;
    assert!(env.current_url().ends_with("/api.html"));
    for url in [
        "https://github.com/jab/bidict",
        "file:///etc/passwd",
        "http://127.0.0.1:1/",
    ] {
        let obs = act(&mut env, "goto", json!({"url": url})).await;
        assert!(obs.error, "{url}: {}", obs.text);
        assert!(
            env.current_url().ends_with("/api.html"),
            "{url} moved us to {}",
            env.current_url()
        );
    }
    // Bad arguments and unknown tools are error observations too.
    let search = ref_of(&env, "textbox", "Search");
    let obs = act(&mut env, "fill", json!({"ref": search})).await;
    assert!(obs.error, "{}", obs.text);
    let obs = act(&mut env, "press", json!({"key": "NoSuchKey"})).await;
    assert!(obs.error, "{}", obs.text);

    // Through the Environment trait, as run_episode calls it.
    let call = ToolCall {
        id: "1".into(),
        name: "answer".into(),
        arguments: r#"{"text": "The API page"}"#.into(),
        parse_error: None,
    };
    let obs = env.call(&call).await;
    assert!(obs.done, "{}", obs.text);
    assert_eq!(env.ending(), Some(&Ending::Answer("The API page".into())));
    let outcome = env.finish().await;
    assert!(
        outcome
            .final_url
            .as_deref()
            .is_some_and(|u| u.ends_with("/api.html"))
    );
    assert_eq!(outcome.answer.as_deref(), Some("The API page"));
    assert_eq!(outcome.visited.first(), Some(&start));
    assert!(
        outcome
            .visited
            .iter()
            .any(|u| u.contains("other-functionality.html"))
    );
    assert!(
        env.policy().blocked().is_empty()
            || env
                .policy()
                .blocked()
                .iter()
                .all(|u| !u.starts_with(&server.url()))
    );
    close_all(env, pool).await;
}

/// The real site has no drop-down list and no off-site embeds: one extra page exercises
/// select_option, a node removed after the snapshot, pop-ups and off-origin requests.
const FIXTURE: &str = r#"<!doctype html><html><head><title>Form</title></head><body>
<h1>Order</h1>
<label>Colour <select id="c"><option value="r">Red</option><option value="b">Blue</option></select></label>
<button id="gone">Vanishing</button>
<button onclick="window.open('/popup.html')">Pop</button>
<a href="http://127.0.0.2:9/elsewhere" target="_blank">Elsewhere</a>
<img src="http://other.invalid/pixel.png" alt="">
<label>Note <input id="note" oninput="setTimeout(() => document.getElementById('gone').remove(), 1000)"></label>
</body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_stale_node_popup_and_guard() {
    if site_dir().is_none() {
        return;
    }
    let dir = crafted_site(&[
        ("form.html", FIXTURE),
        ("popup.html", "<title>Popup</title>"),
    ]);
    let (_server, pool, mut env, _) =
        served_env(dir.path(), "form.html", EnvConfig::default()).await;
    let select = ref_of(&env, "combobox", "Colour");
    // Typing in the note removes the button a second later, behind the snapshot's back.
    let note = ref_of(&env, "textbox", "Note");
    let obs = act(&mut env, "fill", json!({"ref": note, "text": "hello"})).await;
    assert!(!obs.error && obs.text.contains(": hello"), "{}", obs.text);
    let gone = ref_of(&env, "button", "Vanishing");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let obs = act_ok(
        &mut env,
        "select_option",
        json!({"ref": select, "value": "Blue"}),
    )
    .await;
    assert!(obs.text.contains("combobox \"Colour\""), "{}", obs.text);
    assert!(obs.text.contains(": Blue"), "{}", obs.text);
    let obs = act(
        &mut env,
        "select_option",
        json!({"ref": select, "value": "Green"}),
    )
    .await;
    assert!(obs.error && obs.text.contains("no option"), "{}", obs.text);

    // The ref came from a snapshot taken before the page removed the element.
    let obs = env.act("click", &json!({"ref": gone})).await;
    assert!(obs.error && obs.text.contains("stale"), "{}", obs.text);
    assert!(!obs.done);

    // A pop-up is closed before it loads; the episode stays on its page.
    let pop = ref_of(&env, "button", "Pop");
    act_ok(&mut env, "click", json!({"ref": pop})).await;
    assert!(env.current_url().ends_with("/form.html"));
    // A link to another origin is blocked and the agent stays on the site.
    let elsewhere = ref_of(&env, "link", "Elsewhere");
    let obs = act(&mut env, "click", json!({"ref": elsewhere})).await;
    assert!(obs.error, "{}", obs.text);
    assert!(
        env.current_url().ends_with("/form.html"),
        "{}\n{}",
        env.current_url(),
        obs.text
    );
    let blocked = env.policy().blocked();
    assert!(
        blocked
            .iter()
            .any(|u| u.starts_with("http://other.invalid/")),
        "{blocked:?}"
    );
    assert!(
        blocked.iter().any(|u| u.starts_with("http://127.0.0.2:9/")),
        "{blocked:?}"
    );

    let obs = act(
        &mut env,
        "report_infeasible",
        json!({"reason": "no checkout"}),
    )
    .await;
    assert!(obs.done);
    let outcome = env.finish().await;
    assert_eq!(outcome.infeasible.as_deref(), Some("no checkout"));
    assert_eq!(outcome.answer, None);
    close_all(env, pool).await;
}
