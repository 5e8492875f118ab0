//! User menu files: merging, errors with their lines, fingerprints.

use std::path::PathBuf;

use trajforge_menu::{Menu, MenuError, MenuProblem};

/// Writes `text` to `menu.toml` in a fresh temp dir; returns the dir guard and path.
fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("menu.toml");
    std::fs::write(&path, text).expect("write menu file");
    (dir, path)
}

/// Loads `text` from a file, expecting an error; returns it with the path used.
fn load_err(text: &str) -> (MenuError, String) {
    let (_dir, path) = write(text);
    let err = Menu::load(&path).expect_err("menu should be rejected");
    (err, path.display().to_string())
}

/// The problem of an `Invalid` error reported at `line` of the file, failing otherwise.
#[track_caller]
fn invalid_at(text: &str, line: usize) -> MenuProblem {
    match load_err(text) {
        (
            MenuError::Invalid {
                origin,
                line: at,
                problem,
            },
            path,
        ) => {
            assert_eq!(origin, path);
            assert_eq!(at, line, "{problem:?}");
            problem
        }
        (other, _) => panic!("expected an invalid-menu error, got {other:?}"),
    }
}

const GOOD_BUG: &str = r#"
[[bug]]
id = "orm-query"
category = "ORM query construction"
prompt = "Something may be off in how {function} (in {path}) builds database queries."
"#;

#[test]
fn empty_file_is_the_builtin_menu() {
    let (_dir, path) = write("# nothing here\n");
    assert_eq!(Menu::load(&path).expect("loads"), Menu::builtin());
    assert_eq!(
        Menu::from_toml_str("", "x").expect("loads"),
        Menu::builtin()
    );
}

#[test]
fn extend_appends_new_entries_after_builtins() {
    let text = format!(
        "mode = \"extend\"\n{GOOD_BUG}\n[[task]]\nid = \"find-webhooks-docs\"\nintent = \"Find the webhooks documentation\"\nprompt = \"Starting at {{start_title}}, find how events reach other services.\"\n"
    );
    let (_dir, path) = write(&text);
    let menu = Menu::load(&path).expect("loads");
    let builtin = Menu::builtin();
    assert_eq!(menu.bugs.len(), 52);
    assert_eq!(&menu.bugs[..51], &builtin.bugs[..]);
    let bug = menu.bug("orm-query").expect("added");
    assert_eq!(bug.index, 51);
    assert_eq!(bug.category, "ORM query construction");
    assert_eq!(
        bug.render("app/db.py::Repo.find", "app/db.py"),
        "Something may be off in how app/db.py::Repo.find (in app/db.py) builds database queries."
    );
    let task = menu.task("find-webhooks-docs").expect("added");
    assert_eq!(task.index, builtin.tasks.len());
    assert!(!task.answer, "answer defaults to false");
    assert_eq!(
        task.render("https://x.test/", "X Docs"),
        "Starting at X Docs, find how events reach other services."
    );
}

#[test]
fn extend_overrides_builtin_entries_in_place() {
    let text = r#"
[[bug]]
id = "security"
category = "Security (web)"
prompt = "Requests handled by {function} in {path} may trust what the client sends."

[[task]]
id = "find-pricing"
intent = "What does the basic plan cost"
prompt = "From {start_url}, tell me the monthly price of the cheapest plan."
answer = true
"#;
    let menu = Menu::from_toml_str(text, "menu.toml").expect("loads");
    let builtin = Menu::builtin();
    assert_eq!(menu.bugs.len(), 51);
    assert_eq!(menu.tasks.len(), builtin.tasks.len());
    let bug = menu.bug("security").expect("still there");
    assert_eq!(bug.index, builtin.bug("security").expect("built in").index);
    assert_eq!(bug.category, "Security (web)");
    assert!(bug.prompt.starts_with("Requests handled"));
    let task = menu.task("find-pricing").expect("still there");
    assert_eq!(task.index, 0);
    assert!(task.answer);
    assert_eq!(task.intent, "What does the basic plan cost");
    // Everything else is untouched.
    assert_eq!(menu.bugs[0], builtin.bugs[0]);
    assert_eq!(menu.tasks[1], builtin.tasks[1]);
}

#[test]
fn replace_drops_only_the_kinds_the_file_defines() {
    let text = format!("mode = \"replace\"\n{GOOD_BUG}");
    let menu = Menu::from_toml_str(&text, "menu.toml").expect("loads");
    assert_eq!(menu.bugs.len(), 1);
    assert_eq!(menu.bugs[0].id, "orm-query");
    assert_eq!(menu.bugs[0].index, 0);
    assert_eq!(menu.tasks, Menu::builtin().tasks);

    let text = r#"
mode = "replace"
[[task]]
id = "a"
intent = "A"
prompt = "Go from {start_url} to A."
[[task]]
id = "b"
intent = "B"
prompt = "What is B on {start_title}?"
answer = true
"#;
    let menu = Menu::from_toml_str(text, "menu.toml").expect("loads");
    assert_eq!(menu.bugs, Menu::builtin().bugs);
    let ids: Vec<(&str, usize, bool)> = menu
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.index, t.answer))
        .collect();
    assert_eq!(ids, vec![("a", 0, false), ("b", 1, true)]);
}

#[test]
fn literal_braces_are_escaped_by_doubling() {
    let text = r#"
[[bug]]
id = "json-shape"
category = "JSON shape"
prompt = "Output of {function} in {path} may not be a {{ \"key\": value }} object."
"#;
    let menu = Menu::from_toml_str(text, "m").expect("loads");
    let bug = menu.bug("json-shape").expect("added");
    assert_eq!(
        bug.render("f", "p"),
        "Output of f in p may not be a { \"key\": value } object."
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.toml");
    let err = Menu::load(&path).expect_err("missing file");
    assert!(
        matches!(&err, MenuError::Read { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(err.line(), None);
}

#[test]
fn syntax_error_has_line_and_column() {
    let (err, path) = load_err("mode = \"extend\"\n\n[[bug]]\nid = \"x\"\ncategory = oops\n");
    match &err {
        MenuError::Syntax {
            origin,
            line,
            column,
            message,
        } => {
            assert_eq!(origin, &path);
            assert_eq!((*line, *column), (5, 12), "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{path}:5:12: invalid TOML: ")),
        "{err}"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error_at_the_second_key() {
    let (err, _) = load_err("[[bug]]\nid = \"x\"\nid = \"y\"\n");
    assert!(
        matches!(
            err,
            MenuError::Syntax {
                line: 3,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        invalid_at("mode = \"extend\"\nmodes = \"replace\"\n", 2),
        MenuProblem::UnknownKey {
            key: "modes".into()
        }
    );
    assert_eq!(
        invalid_at(&format!("{GOOD_BUG}\n[[bugs]]\nid = \"y\"\n"), 7),
        MenuProblem::UnknownKey { key: "bugs".into() }
    );
}

#[test]
fn unknown_field_in_entry() {
    let text =
        "[[bug]]\nid = \"x\"\ncategory = \"X\"\nprompt = \"{function} {path}\"\nseverity = 3\n";
    assert_eq!(
        invalid_at(text, 5),
        MenuProblem::UnknownField {
            entry: "bug entry \"x\"".into(),
            field: "severity".into(),
            allowed: "id, category, prompt"
        }
    );
    let (err, path) = load_err(text);
    assert_eq!(
        err.to_string(),
        format!(
            "{path}:5: bug entry \"x\": unknown field `severity`; allowed: id, category, prompt"
        )
    );
    // `index` is assigned, never written.
    let problem = invalid_at("[[task]]\nid = \"t\"\nindex = 4\n", 3);
    assert!(
        matches!(problem, MenuProblem::UnknownField { ref field, .. } if field == "index"),
        "{problem:?}"
    );
}

#[test]
fn wrong_types() {
    let text =
        "[[task]]\nid = \"t\"\nintent = \"T\"\nprompt = \"At {start_url}\"\nanswer = \"yes\"\n";
    assert_eq!(
        invalid_at(text, 5),
        MenuProblem::WrongType {
            what: "task entry \"t\": field `answer`".into(),
            expected: "a boolean",
            found: "string"
        }
    );

    // (file, line, expected type when pinned, found type)
    for (text, line, expected, found) in [
        ("\n[[bug]]\nid = 7\n", 3, Some("a string"), "integer"),
        (
            "mode = \"extend\"\nbug = \"everything\"\n",
            2,
            None,
            "string",
        ),
        ("\n\n[bug]\nid = \"x\"\n", 3, None, "table"),
        ("mode = true\n", 1, None, "boolean"),
        ("\nbug = [1]\n", 2, Some("a table"), "integer"),
    ] {
        match invalid_at(text, line) {
            MenuProblem::WrongType {
                expected: e,
                found: f,
                ..
            } => {
                assert_eq!(f, found, "{text:?}");
                if let Some(expected) = expected {
                    assert_eq!(e, expected, "{text:?}");
                }
            }
            other => panic!("{text:?}: expected a wrong-type problem, got {other:?}"),
        }
    }
}

#[test]
fn missing_field_points_at_the_entry_header() {
    let text = format!(
        "{GOOD_BUG}\n# a second entry\n[[bug]]\nid = \"no-category\"\nprompt = \"{{function}} in {{path}}\"\n"
    );
    assert_eq!(
        invalid_at(&text, 8),
        MenuProblem::MissingField {
            entry: "bug entry \"no-category\"".into(),
            field: "category"
        }
    );

    // The first entry lacks its prompt; it is reported first.
    assert_eq!(
        invalid_at(
            "[[task]]\nid = \"t\"\nintent = \"T\"\n\n[[task]]\nintent = \"no id\"\nprompt = \"{start_url}\"\n",
            1
        ),
        MenuProblem::MissingField {
            entry: "task entry \"t\"".into(),
            field: "prompt"
        }
    );
    assert_eq!(
        invalid_at(
            "[[task]]\nintent = \"no id\"\nprompt = \"{start_url}\"\n",
            1
        ),
        MenuProblem::MissingField {
            entry: "task entry #1".into(),
            field: "id"
        }
    );
}

#[test]
fn unknown_mode() {
    assert_eq!(
        invalid_at("# comment\nmode = \"merge\"\n", 2),
        MenuProblem::UnknownMode {
            mode: "merge".into()
        }
    );
    let (err, path) = load_err("# comment\nmode = \"merge\"\n");
    assert_eq!(
        err.to_string(),
        format!("{path}:2: unknown mode \"merge\"; expected \"extend\" or \"replace\"")
    );
}

#[test]
fn duplicate_ids_within_a_file() {
    let text = format!("{GOOD_BUG}{GOOD_BUG}");
    assert_eq!(
        invalid_at(&text, 8),
        MenuProblem::DuplicateId {
            entry: "bug entry \"orm-query\"".into(),
            first_line: 3
        }
    );
    // The same id in different kinds is fine.
    let text = "[[bug]]\nid = \"same\"\ncategory = \"C\"\nprompt = \"{function} {path}\"\n[[task]]\nid = \"same\"\nintent = \"I\"\nprompt = \"{start_url}\"\n";
    assert!(Menu::from_toml_str(text, "m").is_ok());
}

#[test]
fn empty_prompt_and_other_empty_text() {
    assert_eq!(
        invalid_at(
            "[[bug]]\nid = \"x\"\ncategory = \"X\"\nprompt = \"\"\"\n   \n\"\"\"\n",
            4
        ),
        MenuProblem::EmptyField {
            entry: "bug entry \"x\"".into(),
            field: "prompt"
        }
    );
    assert_eq!(
        invalid_at(
            "[[task]]\nid = \"t\"\nintent = \" \"\nprompt = \"{start_url}\"\n",
            3
        ),
        MenuProblem::EmptyField {
            entry: "task entry \"t\"".into(),
            field: "intent"
        }
    );
}

#[test]
fn invalid_id() {
    assert_eq!(
        invalid_at(
            "[[bug]]\ncategory = \"X\"\nid = \"ORM Query\"\nprompt = \"{function} {path}\"\n",
            3
        ),
        MenuProblem::InvalidId {
            entry: "bug entry #1".into(),
            id: "ORM Query".into()
        }
    );
}

#[test]
fn bug_prompt_must_name_function_and_path() {
    assert_eq!(
        invalid_at(
            "[[bug]]\nid = \"x\"\ncategory = \"X\"\n\nprompt = \"Something is wrong in {path}.\"\n",
            5
        ),
        MenuProblem::MissingPlaceholder {
            entry: "bug entry \"x\"".into(),
            required: "{function}".into()
        }
    );
    assert_eq!(
        invalid_at(
            "[[bug]]\nid = \"x\"\nprompt = \"Something is wrong in {function}.\"\ncategory = \"X\"\n",
            3
        ),
        MenuProblem::MissingPlaceholder {
            entry: "bug entry \"x\"".into(),
            required: "{path}".into()
        }
    );
}

#[test]
fn task_prompt_must_name_the_start_page() {
    assert_eq!(
        invalid_at(
            "[[task]]\nid = \"t\"\nintent = \"T\"\nprompt = \"Find the pricing.\"\n",
            4
        ),
        MenuProblem::MissingPlaceholder {
            entry: "task entry \"t\"".into(),
            required: "{start_url} or {start_title}".into()
        }
    );
}

#[test]
fn unknown_placeholder_matches_the_documented_message() {
    let text = r#"mode = "extend"

[[bug]]
id = "orm-query"
category = "ORM query construction"

prompt = "Something may be off in how {func} (in {path}) builds database queries."
"#;
    let (err, path) = load_err(text);
    assert_eq!(
        err.to_string(),
        format!(
            "{path}:7: bug entry \"orm-query\": prompt uses unknown placeholder {{func}}; allowed: {{function}}, {{path}}"
        )
    );
    let (err, _) = load_err(&text.replace(r#"id = "orm-query""#, r#"id = "q""#));
    assert_eq!(err.line(), Some(7));
}

#[test]
fn unknown_placeholder_in_multiline_prompt_points_at_its_line() {
    let text = "[[task]]\nid = \"t\"\nintent = \"T\"\nprompt = \"\"\"\nStart at {start_url}.\nThen look for {product}.\n\"\"\"\n";
    assert_eq!(
        invalid_at(text, 6),
        MenuProblem::UnknownPlaceholder {
            entry: "task entry \"t\"".into(),
            name: "product".into(),
            allowed: "{start_url}, {start_title}"
        }
    );
}

#[test]
fn stray_brace_is_rejected_with_its_line() {
    let text = "[[bug]]\nid = \"x\"\ncategory = \"X\"\nprompt = '''\n{function} in {path}\nreturns {\"a\": 1}\n'''\n";
    assert_eq!(
        invalid_at(text, 6),
        MenuProblem::StrayBrace {
            entry: "bug entry \"x\"".into(),
            brace: '{'
        }
    );
}

#[test]
fn replace_with_an_empty_list_is_rejected() {
    assert_eq!(
        invalid_at("mode = \"replace\"\n\nbug = []\n", 3),
        MenuProblem::EmptyReplacement { kind: "bug" }
    );
    // Under extend an empty list is harmless.
    assert_eq!(
        Menu::from_toml_str("task = []\n", "m").expect("loads"),
        Menu::builtin()
    );
}

#[test]
fn fingerprint_is_stable_and_sensitive() {
    let base = Menu::builtin();
    let fp = base.fingerprint();
    assert_eq!(fp.len(), 16);
    assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    // Recorded from the release that wrote today's run folders: a different value makes
    // every existing run refuse to resume.
    assert_eq!(fp, "c4b9794dc352e71b");
    assert_eq!(fp, Menu::builtin().fingerprint());
    assert_eq!(
        fp,
        Menu::from_toml_str("", "m").expect("loads").fingerprint()
    );

    let mut changes: Vec<Menu> = Vec::new();
    let mut m = base.clone();
    m.bugs[7].prompt.push(' ');
    changes.push(m);
    let mut m = base.clone();
    m.bugs[0].category = "generic".into();
    changes.push(m);
    let mut m = base.clone();
    m.bugs[3].id = "error-handling-2".into();
    changes.push(m);
    let mut m = base.clone();
    m.tasks[2].answer = !m.tasks[2].answer;
    changes.push(m);
    let mut m = base.clone();
    m.tasks[0].intent.push('!');
    changes.push(m);
    let mut m = base.clone();
    m.bugs.swap(1, 2);
    changes.push(m);
    let mut m = base.clone();
    m.tasks.pop();
    changes.push(m);
    // Moving text across a field boundary must also change the digest.
    let mut m = base.clone();
    let moved = m.bugs[5].category.pop().expect("non-empty");
    m.bugs[5].prompt.insert(0, moved);
    changes.push(m);
    changes.push(Menu::from_toml_str(GOOD_BUG, "m").expect("loads"));

    let mut seen = std::collections::HashSet::new();
    seen.insert(fp.clone());
    for changed in &changes {
        assert!(
            seen.insert(changed.fingerprint()),
            "collision for a changed menu"
        );
    }
}

#[test]
fn load_and_from_toml_str_agree() {
    let (_dir, path) = write(GOOD_BUG);
    let loaded = Menu::load(&path).expect("loads");
    assert_eq!(
        loaded,
        Menu::from_toml_str(GOOD_BUG, "elsewhere").expect("loads")
    );
}
