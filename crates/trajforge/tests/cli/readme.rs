//! The README's command reference stays in step with the real options.

use crate::{repo_root, stdout, trajforge};

#[test]
fn every_option_of_every_command_is_documented() {
    let cache = tempfile::tempdir().expect("tempdir");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for command in [
        "functions",
        "menu",
        "recall",
        "run",
        "generate",
        "eval",
        "status",
        "view",
        "eval compare",
        "export",
        "import",
        "site crawl",
        "site show",
        "web generate",
        "web tasks",
        "web eval",
        "tasks mine",
        "worker",
        "store copy",
    ] {
        assert!(
            readme.contains(&format!("### `trajforge {command}")),
            "README lacks a section for {command}"
        );
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let help = stdout(&trajforge(&args, cache.path()));
        for word in help.split_whitespace() {
            let option = word
                .trim_start_matches(['`', '('])
                .trim_end_matches([',', '.', '`', ':', ')', ';']);
            let option = option.split(['=', '[', '<']).next().unwrap_or(option);
            if option.starts_with("--")
                && option.len() > 2
                && option != "--help"
                && option != "--version"
                && !documented(&readme, option)
            {
                missing.push(format!("{command} {option}"));
            }
        }
    }
    missing.dedup();
    assert!(missing.is_empty(), "options not in README.md: {missing:?}");
}

/// `option` appears in the README as a whole option name (not as the prefix of a longer one).
fn documented(readme: &str, option: &str) -> bool {
    readme.match_indices(option).any(|(i, _)| {
        let next = readme[i + option.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '-')
    })
}
