//! The snapshot's guarantees on a page built to exercise them: hidden and ignored nodes
//! dropped, roles, names and states, iframes merged (and actionable), stable refs, the
//! walker invisible to the page, and the cut marker.

use serde_json::json;
use trajforge_browser::EnvConfig;

use crate::common::{ActOk, close_all, crafted_site, live_env, ref_of, served_env, site_dir};

const PAGE: &str = r##"<!doctype html><html><head><title>Snap</title>
<style>.sr { position: absolute; clip: rect(0 0 0 0); width: 1px; height: 1px; overflow: hidden; }
.up { text-transform: uppercase; } .cap { text-transform: capitalize; }
.note::before { content: "Note: "; } .ico::before { content: "\f101"; } li.step::after { content: " (" counter(list-item) ")"; }
@media screen { .more::after { content: " \2192"; } }</style>
</head><body>
<nav aria-label="Main"><a href="a.html">Alpha</a> <a href="b.html" style="display:none">Hidden link</a>
<span class="sr">Skip text</span></nav>
<div hidden><button>Hidden attribute</button></div>
<div aria-hidden="true"><button>Aria hidden</button></div>
<div style="visibility:hidden"><button>Invisible</button>
  <span style="visibility:visible"><a href="c.html">Shown inside invisible</a></span></div>
<details><summary>More</summary><p>Folded text</p></details>
<h2>Order <em>form</em></h2>
<h3 class="up">Quiet title</h3>
<p class="cap">hello wide world</p>
<p class="note">Mind the gap</p>
<p><span class="ico">Icon text</span> <span class="more">Read on</span></p>
<ol><li class="step">First step</li></ol>
<p>Some <b>bold</b>text and <code>code</code>.</p>
<label>Name <input id="name" value="Ada"></label>
<label><input type="checkbox" checked> Agree</label>
<input type="password" aria-label="Secret" value="hunter2">
<select aria-label="Size"><option>S</option><option selected>M</option></select>
<button disabled>Off</button>
<div role="button" tabindex="0" id="custom" onclick="document.getElementById('log').textContent = 'custom clicked, page global: ' + window.__trajforge">Custom</div>
<p id="log">nothing yet</p>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A pixel">
<svg style="display:none"><symbol id="i-star" viewBox="0 0 1 1"><title>Star</title><rect width="1" height="1"/></symbol></svg>
<svg width="10" height="10"><use href="#i-star"/></svg>
<iframe src="inner.html" style="margin-top: 40px; border: 5px solid black; padding: 7px"></iframe>
<iframe src="boxed.html" sandbox="allow-scripts" style="border: 3px solid black; padding: 4px"></iframe>
<script>window.__trajforge = 'page value';</script>
</body></html>"##;

const INNER: &str = r#"<!doctype html><title>Inner</title><body style="margin: 30px">
<p id="state">frame idle</p>
<button onclick="document.getElementById('state').textContent = 'frame clicked'">Inside frame</button>
<a href="a.html" style="display:none">Hidden in frame</a>
</body>"#;

/// A sandboxed frame: the page's world cannot reach into its document.
const BOXED: &str = r#"<!doctype html><title>Boxed</title><body style="margin: 20px">
<p id="state">box idle</p>
<button onclick="document.getElementById('state').textContent = 'box clicked'">Boxed button</button>
</body>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_guarantees_on_a_crafted_page() {
    if site_dir().is_none() {
        return;
    }
    let dir = crafted_site(&[
        ("snap.html", PAGE),
        ("inner.html", INNER),
        ("boxed.html", BOXED),
        ("a.html", "<title>A</title><p>A page</p>"),
    ]);
    let (_server, pool, mut env, url) =
        served_env(dir.path(), "snap.html", EnvConfig::default()).await;
    let text = env.snapshot().text.clone();
    assert_eq!(env.snapshot().title, "Snap");
    // Hidden and ignored nodes are dropped; visually clipped text is not hidden.
    for gone in [
        "Hidden link",
        "Hidden attribute",
        "Aria hidden",
        "\"Invisible\"",
        "Folded text",
        "Hidden in frame",
        "page value",
    ] {
        assert!(!text.contains(gone), "{gone} shown:\n{text}");
    }
    for line in [
        "- navigation \"Main\":",
        "- link \"Shown inside invisible\" [ref=e",
        "- text: Skip text",
        "- heading \"Order form\" [level=2]\n",
        "- text: Some boldtext and",
        "- code: code",
        "- textbox \"Name\" [ref=e",
        "]: Ada\n",
        "- checkbox \"Agree\" [checked] [ref=e",
        "- textbox \"Secret\" [ref=e",
        "]: •••••••\n",
        "- combobox \"Size\" [ref=e",
        "- option \"M\" [selected]",
        "- button \"Off\" [disabled] [ref=e",
        "- button \"Custom\" [ref=e",
        "- img \"A pixel\"",
        "- img \"Star\"",
        // What CSS makes the text read as: transformed, and generated strings (not counters
        // or icon-font glyphs).
        "- heading \"QUIET TITLE\" [level=3]\n",
        "- paragraph: Hello Wide World\n",
        "- paragraph: Note: Mind the gap\n",
        "- paragraph: Icon text Read on →\n",
        "- listitem: First step\n",
        // The frame's document is merged where the frame is.
        "- paragraph: frame idle",
        "- button \"Inside frame\" [ref=e",
        "- paragraph: box idle",
        "- button \"Boxed button\" [ref=e",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(
        text.find("button \"Custom\"") < text.find("button \"Inside frame\"")
            && text.find("button \"Inside frame\"") < text.find("button \"Boxed button\""),
        "frames merged out of place:\n{text}"
    );
    // Every interactive element has a ref shown in the text, and only those.
    let refs = env.snapshot().refs.clone();
    assert_eq!(refs.len(), 11, "{refs:?}\n{text}");
    for r in refs.keys() {
        assert!(
            text.contains(&format!("[ref={r}]")),
            "{r} not shown:\n{text}"
        );
    }
    assert!(!text.contains("hunter2"), "{text}");

    // Refs are stable: the same elements keep their refs across snapshots and actions.
    let custom = ref_of(&env, "button", "Custom");
    let before = env.snapshot().refs.clone();
    env.refresh().await.expect("refresh");
    assert_eq!(env.snapshot().refs, before);
    let obs = env.act_ok("click", json!({"ref": custom})).await;
    // The walker's state lives in its own world: the page's global of the same name is intact.
    assert!(
        obs.text.contains("custom clicked, page global: page value"),
        "{}",
        obs.text
    );
    assert_eq!(ref_of(&env, "button", "Custom"), custom);

    // A click inside the frame lands on the frame's element (frame offsets are applied).
    let inside = ref_of(&env, "button", "Inside frame");
    let obs = env.act_ok("click", json!({"ref": inside})).await;
    assert!(obs.text.contains("frame clicked"), "{}", obs.text);
    let boxed = ref_of(&env, "button", "Boxed button");
    let obs = env.act_ok("click", json!({"ref": boxed})).await;
    assert!(obs.text.contains("box clicked"), "{}", obs.text);

    // Refs of a page left behind are never reused for other elements on the next pages.
    let old = env.snapshot().refs.clone();
    env.click_ok("link", "Alpha").await;
    assert!(
        env.current_url().ends_with("/a.html"),
        "{}",
        env.current_url()
    );
    let obs = env.act("click", &json!({"ref": inside})).await;
    assert!(
        obs.error && obs.text.contains("unknown ref"),
        "{}",
        obs.text
    );
    env.act_ok("go_back", json!({})).await;
    assert!(env.current_url().ends_with("/snap.html"));
    for (r, t) in &env.snapshot().refs {
        if let Some(o) = old.get(r) {
            assert_eq!((&o.role, &o.name), (&t.role, &t.name), "{r} reused");
        }
    }

    env.close().await;

    // Past the size limit the text is cut with a visible marker; every ref stays usable.
    let config = EnvConfig {
        max_snapshot_chars: 200,
        ..EnvConfig::default()
    };
    let mut small = live_env(&pool, &url, config).await;
    assert!(small.snapshot().cut);
    assert!(
        small.snapshot().text.contains("[snapshot cut here:"),
        "{}",
        small.snapshot().text
    );
    assert_eq!(small.snapshot().refs.len(), 11);
    let inside = ref_of(&small, "button", "Inside frame");
    small.act_ok("click", json!({"ref": inside})).await;
    close_all(small, pool).await;
}
