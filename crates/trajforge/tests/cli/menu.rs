//! `trajforge menu`: the built-in menus and user menu files.

use crate::{assert_success, input_error, stdout, trajforge, write_file};

#[test]
fn text_output_snapshot_of_both_menus() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = trajforge(&["menu"], cache.path());
    assert!(out.status.success());
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn json_by_kind() {
    let cache = tempfile::tempdir().expect("tempdir");
    let bugs: serde_json::Value = serde_json::from_str(&stdout(&trajforge(
        &["menu", "--kind", "bug", "--json"],
        cache.path(),
    )))
    .expect("json");
    let entries = bugs["bugs"].as_array().expect("bugs");
    assert_eq!(entries.len(), 51);
    assert!(bugs.get("tasks").is_none());
    assert_eq!(entries[0]["index"], 0);
    assert!(entries.iter().all(|e| {
        e["prompt"]
            .as_str()
            .is_some_and(|p| p.contains("{function}") && p.contains("{path}"))
    }));
    let tasks: serde_json::Value = serde_json::from_str(&stdout(&trajforge(
        &["menu", "--kind", "task", "--json"],
        cache.path(),
    )))
    .expect("json");
    assert!(tasks["tasks"].as_array().expect("tasks").len() >= 25);
}

#[test]
fn user_menu_extends_and_errors_name_the_line() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_file(
        dir.path(),
        "menu.toml",
        "[[bug]]\nid = \"orm-query\"\ncategory = \"ORM query construction\"\nprompt = \"Queries built by {function} in {path} may be wrong.\"\n",
    );
    let out = trajforge(&["menu", "--kind", "bug", "--menu", &good], cache.path());
    assert_success(&out);
    assert!(
        stdout(&out).contains(" 51  orm-query  (ORM query construction)"),
        "{}",
        stdout(&out)
    );

    let bad = write_file(
        dir.path(),
        "bad.toml",
        "[[bug]]\nid = \"x\"\ncategory = \"X\"\n\nprompt = \"{func} in {path}\"\n",
    );
    let out = trajforge(&["menu", "--menu", &bad], cache.path());
    let err = input_error(&out);
    assert!(
        err.contains("bad.toml:5:") && err.contains("{func}"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}
