//! Fuzzing menu files (`TRAJFORGE_FUZZ_CASES` sets the budget): hostile and damaged TOML
//! through the parser, and prompt templates through rendering. No input panics; a bad
//! file is a `MenuError` with its problems.

use proptest::prelude::*;
use trajforge_menu::{Menu, template};
use trajforge_testkit::fuzz;

const SEEDS: &[&str] = &[
    "mode = \"extend\"\n[[bug]]\nid = \"orm-query\"\ncategory = \"ORM query construction\"\nprompt = \"Something may be off in how {function} (in {path}) builds database queries.\"\n\n[[task]]\nid = \"find-webhooks-docs\"\nintent = \"Find the webhooks documentation\"\nprompt = \"Starting at {start_title}, find how events reach other services.\"\nanswer = true\n",
    "mode = \"replace\"\n[[task]]\nid = \"a\"\nintent = \"A\"\nprompt = \"Go from {start_url} to A {{literal}} {unknown}.\"\n[[bug]]\nid = 'x'\ncategory = '''multi\nline'''\nprompt = \"\"\"\n{function}\"\"\"\n",
];

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hostile_menu_files_never_panic(text in fuzz::text_inputs(SEEDS, 1024)) {
        if let Ok(menu) = Menu::from_toml_str(&text, "fuzz.toml") {
            let _ = menu.fingerprint();
            for bug in &menu.bugs {
                let _ = bug.render("f", "p.py");
            }
            for task in &menu.tasks {
                let _ = task.render("https://x", "X");
            }
        }
        let _ = template::scan(&text);
        let _ = template::render(&text, &[("function", "{path}"), ("path", "{function}")]);
    }
}
