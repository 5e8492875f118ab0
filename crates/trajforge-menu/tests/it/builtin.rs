//! Checks on the built-in menus: counts, order, ids, wording.

use std::collections::HashSet;

use trajforge_menu::Menu;

/// SPEC.md section 3, entries 1-50, in order.
const SPEC_CATEGORIES: [&str; 50] = [
    "resource cleanup and lifecycle",
    "data validation and type safety",
    "error handling and exceptions",
    "state management and consistency",
    "configuration and initialisation",
    "concurrency and thread safety",
    "api contracts and interface compatibility",
    "performance and efficiency",
    "dependency management and coupling",
    "control flow and logic",
    "data transformation",
    "async operations and callbacks",
    "boundary conditions and edge cases",
    "maintainability and documentation",
    "security and input sanitisation",
    "modularity and reuse",
    "testing and observability",
    "compatibility and platform behaviour",
    "business-logic correctness",
    "robustness and failure recovery",
    "scalability and extensibility",
    "consistency and conventions",
    "clarity and complexity",
    "integration between components",
    "completeness and missing functionality",
    "reliability and determinism",
    "assumptions and preconditions",
    "side effects and purity",
    "abstraction and interface design",
    "duplication",
    "ordering and initialisation sequence",
    "algorithmic correctness",
    "output correctness",
    "coupling between dependencies",
    "naming and semantic clarity",
    "readability",
    "testability",
    "backwards compatibility and migration",
    "invariants and postconditions",
    "ownership and responsibility",
    "flexibility and parameterisation",
    "transactions and atomicity",
    "resource utilisation",
    "context and environment awareness",
    "composability",
    "lifecycle and temporal behaviour",
    "idempotency",
    "null safety and optional values",
    "memory management and object lifetime",
    "input/output and data flow",
];

fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Lowercased words with surrounding punctuation removed.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '{' && c != '}')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every run of `n` consecutive words shared by two different texts.
fn shared_ngrams(texts: &[(&str, &str)], n: usize) -> Vec<String> {
    let mut owner: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let mut shared = Vec::new();
    for (id, text) in texts {
        let w = words(text);
        for gram in w.windows(n) {
            let gram = gram.join(" ");
            match owner.get(&gram) {
                Some(other) if other != id => shared.push(format!("{other} / {id}: {gram}")),
                Some(_) => {}
                None => {
                    owner.insert(gram, id);
                }
            }
        }
    }
    shared
}

fn sentences(text: &str) -> usize {
    text.split(['.', '?', '!'])
        .filter(|s| !s.trim().is_empty())
        .count()
}

/// Asserts that the rendered prompt of entry `id` has no placeholder or brace left.
#[track_caller]
fn assert_no_braces(id: &str, text: &str) {
    assert!(!text.contains('{') && !text.contains('}'), "{id}: {text}");
}

/// Asserts that no two of `texts` (id, prompt) share an 8-word run.
#[track_caller]
fn assert_no_shared_runs(what: &str, texts: &[(&str, &str)]) {
    let shared = shared_ngrams(texts, 8);
    assert!(
        shared.is_empty(),
        "{what} share 8-word runs:\n{}",
        shared.join("\n")
    );
}

#[test]
fn builtin_has_51_bug_entries_indexed_in_order() {
    let menu = Menu::builtin();
    assert_eq!(menu.bugs.len(), 51);
    for (i, bug) in menu.bugs.iter().enumerate() {
        assert_eq!(bug.index, i, "{}", bug.id);
    }
    assert_eq!(menu.bugs[0].id, "generic");
    assert_eq!(menu.bugs[50].index, 50);
}

#[test]
fn builtin_bug_ids_are_unique_slugs() {
    let menu = Menu::builtin();
    let ids: HashSet<&str> = menu.bugs.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids.len(), menu.bugs.len());
    for bug in &menu.bugs {
        assert!(is_slug(&bug.id), "{}", bug.id);
        assert_eq!(menu.bug(&bug.id), Some(bug));
    }
    assert_eq!(menu.bug("no-such-entry"), None);
}

#[test]
fn builtin_categories_follow_the_spec_in_order() {
    let menu = Menu::builtin();
    let categories: Vec<String> = menu.bugs[1..]
        .iter()
        .map(|b| b.category.to_lowercase())
        .collect();
    assert_eq!(categories, SPEC_CATEGORIES);
    assert!(!SPEC_CATEGORIES.contains(&menu.bugs[0].category.to_lowercase().as_str()));
}

#[test]
fn builtin_bug_prompts_render_completely() {
    let menu = Menu::builtin();
    for bug in &menu.bugs {
        let text = bug.render("pkg/parser.py::Parser.parse_header", "pkg/parser.py");
        assert_no_braces(&bug.id, &text);
        assert!(
            text.contains("pkg/parser.py::Parser.parse_header"),
            "{}",
            bug.id
        );
        assert!(text.contains("`pkg/parser.py`"), "{}", bug.id);
    }
}

#[test]
fn builtin_bug_prompts_are_short_descriptions() {
    // One sentence naming the suspicion plus 1-3 of symptoms.
    for bug in &Menu::builtin().bugs {
        let n = sentences(&bug.prompt);
        assert!((2..=4).contains(&n), "{} has {n} sentences", bug.id);
    }
}

#[test]
fn builtin_bug_prompts_are_individually_written() {
    let menu = Menu::builtin();
    let texts: Vec<(&str, &str)> = menu
        .bugs
        .iter()
        .map(|b| (b.id.as_str(), b.prompt.as_str()))
        .collect();
    assert_no_shared_runs("prompts", &texts);
    let prompts: HashSet<&str> = texts.iter().map(|(_, p)| *p).collect();
    assert_eq!(prompts.len(), texts.len());
}

#[test]
fn shared_ngram_check_detects_templates() {
    // The check above must be able to fail.
    let texts = [
        (
            "a",
            "There may be a problem of kind alpha involving the function here.",
        ),
        (
            "b",
            "There may be a problem of kind beta involving the function here.",
        ),
        ("c", "one two three four five six seven eight nine"),
        ("d", "zero two three four five six seven eight nine ten"),
    ];
    let shared = shared_ngrams(&texts, 8);
    assert_eq!(
        shared,
        vec!["c / d: two three four five six seven eight nine".to_owned()]
    );
    assert!(!shared_ngrams(&texts, 6).is_empty());
}

#[test]
fn builtin_has_at_least_25_tasks_with_unique_ids() {
    let menu = Menu::builtin();
    assert!(menu.tasks.len() >= 25, "{}", menu.tasks.len());
    let ids: HashSet<&str> = menu.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), menu.tasks.len());
    for (i, task) in menu.tasks.iter().enumerate() {
        assert_eq!(task.index, i);
        assert!(is_slug(&task.id), "{}", task.id);
        assert!(!task.intent.trim().is_empty());
        assert_eq!(menu.task(&task.id), Some(task));
    }
    assert_eq!(menu.task("no-such-task"), None);
}

#[test]
fn builtin_tasks_cover_the_briefed_intents() {
    let menu = Menu::builtin();
    for id in [
        "find-pricing",
        "account-settings",
        "api-docs-topic",
        "contact-form",
        "refund-policy",
        "product-search",
        "changelog",
        "status-page",
        "careers",
        "privacy-policy",
        "installation",
        "sign-up",
        "log-in",
        "tutorial",
        "faq",
        "compare-plans",
        "keyboard-shortcuts",
        "support-email",
        "system-requirements",
        "terms-of-service",
        "blog-post-topic",
        "about-team",
        "security-disclosure",
        "download",
        "community-forum",
    ] {
        assert!(menu.task(id).is_some(), "missing task {id}");
    }
    assert_eq!(menu.task("support-email").map(|t| t.answer), Some(true));
    assert_eq!(menu.task("find-pricing").map(|t| t.answer), Some(false));
}

#[test]
fn builtin_task_prompts_render_completely_and_differ() {
    let menu = Menu::builtin();
    for task in &menu.tasks {
        let text = task.render("https://example.test/docs/", "Example Docs");
        assert_no_braces(&task.id, &text);
        assert!(
            text.contains("https://example.test/docs/") || text.contains("Example Docs"),
            "{} does not mention its start page",
            task.id
        );
    }
    let texts: Vec<(&str, &str)> = menu
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.prompt.as_str()))
        .collect();
    assert_no_shared_runs("task prompts", &texts);
}

#[test]
fn builtin_menu_files_are_what_builtin_returns() {
    // The embedded files are the single source of truth and parse on their own.
    assert!(trajforge_menu::BUILTIN_BUGS_TOML.matches("[[bug]]").count() == 51);
    assert!(!trajforge_menu::BUILTIN_BUGS_TOML.contains("[[task]]"));
    let tasks = trajforge_menu::BUILTIN_TASKS_TOML
        .matches("[[task]]")
        .count();
    assert_eq!(tasks, Menu::builtin().tasks.len());
}
