//! Where clicks land and what actions load: late navigations are waited for, history-API and
//! fragment changes are not waited out, a page re-stating its own URL is not a navigation,
//! navigations scripts ask for are waited for like links, a
//! link whose middle is below the fold is scrolled to, and a press that would land on something
//! the page moved into the way never reaches the page.

use std::time::Duration;

use serde_json::json;
use trajforge_browser::{BrowserEnvironment, EnvConfig};

use crate::common::{ActOk, close_all, crafted_site, ref_of, served_env, site_dir};

/// A navigation grace far longer than any wait these actions should need, so that waiting it
/// out is told apart from settling early without timing anything tightly.
const LONG_GRACE: Duration = Duration::from_secs(20);

const PAGE: &str = r##"<!doctype html><html><head><title>Nav</title></head>
<body style="margin: 0; font: 16px/20px sans-serif">
<p><a id="slow" href="slow.html">Slow link</a></p>
<p><a id="spa" href="/app/inbox">App link</a></p>
<p><a href="#end">Jump to end</a></p>
<form action="found.html"><input aria-label="Query" name="q"></form>
<p><select aria-label="Jump" onchange="location.href = this.value">
  <option value="nav.html">Here</option><option value="found.html?via=menu">Found</option></select>
<button onclick="location.href = 'found.html?via=button'">Go</button></p>
<a href="edge.html" style="position: absolute; top: calc(100vh - 8px); left: 10px">Edge link</a>
<div style="height: 200vh"></div>
<p id="end">The end</p>
<script>
// Like analytics that hold a link back before letting it go.
document.getElementById('slow').addEventListener('click', (e) => {
  e.preventDefault();
  const to = e.currentTarget.href;
  setTimeout(() => { location.href = to; }, 700);
});
// Like a single-page app's router: the URL changes, no document loads.
document.getElementById('spa').addEventListener('click', (e) => {
  e.preventDefault();
  history.pushState({}, '', '/app/inbox');
  document.title = 'Inbox';
});
// Like pages that re-state their own URL once loaded, while the next action is under way.
setTimeout(() => history.replaceState(null, '', location.href), 300);
</script>
</body></html>"##;

async fn reopen(env: &mut BrowserEnvironment, url: &str) {
    env.act_ok("goto", json!({"url": url})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigations_started_by_actions() {
    if site_dir().is_none() {
        return;
    }
    let page = |title: &str| format!("<title>{title}</title><p>{title} page</p>");
    let (slow, edge, found) = (page("Slow"), page("Edge"), page("Found"));
    let dir = crafted_site(&[
        ("nav.html", PAGE),
        ("slow.html", &slow),
        ("edge.html", &edge),
        ("found.html", &found),
    ]);
    let config = EnvConfig {
        navigation_grace: LONG_GRACE,
        ..EnvConfig::default()
    };
    let (_server, pool, mut env, start) = served_env(dir.path(), "nav.html", config).await;

    // A link whose page loads 0.7 s after the click (a 30 ms grace used to miss it), while
    // the start page re-states its URL: the observation is of the new page.
    let obs = env.click_ok("link", "Slow link").await;
    assert!(env.current_url().ends_with("/slow.html"), "{}", obs.text);
    assert_eq!(env.snapshot().title, "Slow");
    assert!(obs.text.contains("Slow page"), "{}", obs.text);

    // A router's pushState ends the wait: no page load is coming.
    reopen(&mut env, &start).await;
    let obs = env.click_ok("link", "App link").await;
    assert!(env.current_url().ends_with("/app/inbox"), "{}", obs.text);
    assert_eq!(env.snapshot().title, "Inbox");
    assert!(
        obs.duration < LONG_GRACE / 2,
        "a history-API navigation waited {:?}",
        obs.duration
    );

    // A link to a fragment of the same page is not waited for either.
    reopen(&mut env, &start).await;
    let obs = env.click_ok("link", "Jump to end").await;
    assert!(env.current_url().ends_with("/nav.html#end"), "{}", obs.text);
    assert!(
        obs.duration < LONG_GRACE / 2,
        "a fragment link waited {:?}",
        obs.duration
    );

    // Enter in a form field submits it, and the result page is what is observed.
    reopen(&mut env, &start).await;
    env.act_ok(
        "fill",
        json!({"ref": ref_of(&env, "textbox", "Query"), "text": "bidict"}),
    )
    .await;
    let obs = env.act_ok("press", json!({"key": "Enter"})).await;
    assert!(
        env.current_url().ends_with("/found.html?q=bidict"),
        "{}",
        obs.text
    );
    assert_eq!(env.snapshot().title, "Found");

    // A jump menu and a button whose handlers set `location`: the page asks for the
    // navigation, so the wait is as long as for a link.
    reopen(&mut env, &start).await;
    let obs = env
        .act_ok(
            "select_option",
            json!({"ref": ref_of(&env, "combobox", "Jump"), "value": "Found"}),
        )
        .await;
    assert!(env.current_url().ends_with("?via=menu"), "{}", obs.text);
    reopen(&mut env, &start).await;
    let obs = env.click_ok("button", "Go").await;
    assert!(env.current_url().ends_with("?via=button"), "{}", obs.text);

    // A link whose top is on screen but whose middle (where a click lands) is below it.
    reopen(&mut env, &start).await;
    let obs = env.click_ok("link", "Edge link").await;
    assert!(env.current_url().ends_with("/edge.html"), "{}", obs.text);

    close_all(env, pool).await;
}

/// Content slides in above the button as the pointer arrives (like results still being
/// added), so the press lands on the new banner instead.
const SHIFTING: &str = r#"<!doctype html><html><head><title>Shift</title></head>
<body style="margin: 0; font: 16px/20px sans-serif">
<div id="top"></div>
<p><button onclick="document.getElementById('log').textContent += ' button'">Shifty</button></p>
<p id="log">log:</p>
<p><button onclick="document.getElementById('log').textContent += ' cover'">Covered</button></p>
<p><button onclick="document.getElementById('veil').style.display = 'block'">Show veil</button></p>
<p><label style="position: relative; display: inline-block">
  <input type="checkbox" style="position: absolute; left: 0; top: 0; margin: 0; opacity: 0">
  <span style="position: relative; display: inline-block; width: 120px; background: #ccc">Dark mode</span>
</label></p>
<div id="veil" style="position: fixed; inset: 0; display: none"
  onclick="document.getElementById('log').textContent += ' veil'"></div>
<script>
document.addEventListener('mousemove', () => {
  const b = document.createElement('div');
  b.style.height = '200px';
  b.textContent = 'Banner';
  b.onclick = () => { document.getElementById('log').textContent += ' banner'; };
  document.getElementById('top').append(b);
}, {once: true});
</script>
</body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_that_would_miss_is_kept_from_the_page() {
    if site_dir().is_none() {
        return;
    }
    let dir = crafted_site(&[("shift.html", SHIFTING)]);
    let (_server, pool, mut env, _) =
        served_env(dir.path(), "shift.html", EnvConfig::default()).await;
    // The first press lands on the banner: the page never sees it, and the click is taken
    // again where the button now is.
    let obs = env.click_ok("button", "Shifty").await;
    assert!(
        obs.text.contains("paragraph: log: button\n"),
        "{}",
        obs.text
    );

    // A styled check box: the real one hides under its label, and a press on the label
    // reaches it.
    let obs = env.click_ok("checkbox", "Dark mode").await;
    assert!(
        obs.text.contains("checkbox \"Dark mode\" [checked]"),
        "{}",
        obs.text
    );

    // Something covering the element for good: an error observation naming it, and no
    // click reaches the page.
    let covered = ref_of(&env, "button", "Covered");
    env.click_ok("button", "Show veil").await;
    let obs = env.act("click", &json!({"ref": covered})).await;
    assert!(obs.error && !obs.done, "{}", obs.text);
    assert!(obs.text.contains("covers the element"), "{}", obs.text);
    assert!(obs.text.contains("<div id=\"veil\">"), "{}", obs.text);
    let log = env.refresh().await.expect("refresh").text.clone();
    assert!(log.contains("paragraph: log: button\n"), "{log}");

    close_all(env, pool).await;
}
