//! `trajforge.toml`: long options of any command, read from a file.
//!
//! The file's settings become command-line options placed before the user's own, and the
//! command is parsed with "later occurrence wins", so the command line always overrides the
//! file. Doing it at the argument level keeps one source of truth (clap's definitions):
//! every option, its validation and its help apply to file settings unchanged.
//!
//! ```toml
//! teacher = "http://127.0.0.1:8000/v1"   # top level: every command that has the option
//! model = "Qwen/Qwen3-32B"
//!
//! [generate]                              # only `trajforge generate`
//! threshold = 1.0
//! test-cmd = "python3 -m pytest -q"
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, ValueHint};
use toml::de::{DeTable, DeValue};

use crate::error::CliError;

/// The file read from the current directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "trajforge.toml";

/// What [`apply`] did, for one line on stderr.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// The file read.
    pub file: PathBuf,
    /// The settings taken from it, by option name.
    pub keys: Vec<String>,
}

/// Rewrite `argv` (program name first) with the settings of the config file, if any.
///
/// `--config FILE` names the file (an error if missing); otherwise `./trajforge.toml` is used
/// when it exists; `--no-config` turns both off. Both flags are removed from the result.
pub fn apply(
    argv: Vec<OsString>,
    root: &Command,
    cwd: &Path,
) -> Result<(Vec<OsString>, Option<Applied>), CliError> {
    let (argv, explicit, disabled) = take_config_flags(argv)?;
    if disabled {
        return Ok((argv, None));
    }
    let file = match explicit {
        Some(f) => {
            let f = cwd.join(f);
            if !f.is_file() {
                return Err(
                    CliError::input(format!("--config {}: no such file", f.display()))
                        .hint("pass the path of a trajforge.toml"),
                );
            }
            f
        }
        None => {
            let f = cwd.join(DEFAULT_FILE);
            if !f.is_file() {
                return Ok((argv, None));
            }
            f
        }
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        CliError::input(format!("cannot read {}: {e}", file.display()))
            .hint("check the file's permissions, or pass --no-config")
    })?;
    let base = file.parent().unwrap_or(cwd).to_path_buf();
    let (path, command) = subcommand_path(&argv, root);
    if path.is_empty() {
        // No subcommand yet (e.g. `trajforge --help`): nothing to apply, clap reports the rest.
        return Ok((argv, None));
    }
    let settings = settings_for(&text, &file, &path, root, command, &base)?;
    if settings.is_empty() {
        return Ok((argv, None));
    }
    let keys = settings.iter().map(|(k, _)| k.clone()).collect();
    // Insert right after the subcommand names, before the user's own arguments.
    let split = 1 + path.len();
    let mut out: Vec<OsString> = argv[..split].to_vec();
    for (_, args) in settings {
        out.extend(args);
    }
    out.extend(argv[split..].iter().cloned());
    Ok((out, Some(Applied { file, keys })))
}

/// Let later occurrences of an option override earlier ones, on every (sub)command.
pub fn overriding(cmd: Command) -> Command {
    cmd.args_override_self(true).mut_subcommands(overriding)
}

/// Remove `--config FILE`, `--config=FILE` and `--no-config` (only before a lone `--`).
fn take_config_flags(
    argv: Vec<OsString>,
) -> Result<(Vec<OsString>, Option<PathBuf>, bool), CliError> {
    let mut out = Vec::with_capacity(argv.len());
    let mut file = None;
    let mut disabled = false;
    let mut it = argv.into_iter();
    let mut rest = false;
    while let Some(arg) = it.next() {
        if rest {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg);
        } else if arg == "--no-config" {
            disabled = true;
        } else if arg == "--config" {
            let value = it.next().ok_or_else(|| {
                CliError::input("--config needs a value").hint("--config path/to/trajforge.toml")
            })?;
            file = Some(PathBuf::from(value));
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            file = Some(PathBuf::from(value));
        } else {
            out.push(arg);
        }
    }
    Ok((out, file, disabled))
}

/// The subcommand names at the start of `argv` (after the program name), and the innermost one.
fn subcommand_path<'c>(argv: &[OsString], root: &'c Command) -> (Vec<String>, &'c Command) {
    let mut path = Vec::new();
    let mut cmd = root;
    for arg in argv.iter().skip(1) {
        let Some(name) = arg.to_str() else { break };
        match cmd.find_subcommand(name) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    (path, cmd)
}

/// One setting: its option name and the arguments it becomes.
type Setting = (String, Vec<OsString>);

/// The settings of the file that apply to the command at `path`.
fn settings_for(
    text: &str,
    file: &Path,
    path: &[String],
    root: &Command,
    command: &Command,
    base: &Path,
) -> Result<Vec<Setting>, CliError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(" line {}", line_of(text, s.start)))
            .unwrap_or_default();
        CliError::input(format!(
            "{}{line}: {}",
            file.display(),
            e.message().trim_end()
        ))
        .hint("fix the TOML syntax, or pass --no-config to ignore the file")
    })?;
    let doc = doc.into_inner();
    let bad = |span: std::ops::Range<usize>, what: String, hint: String| {
        CliError::input(format!(
            "{} line {}: {what}",
            file.display(),
            line_of(text, span.start)
        ))
        .hint(hint)
    };

    let mut out: Vec<Setting> = Vec::new();
    // Top level: settings for every command that has the option.
    for (key, value) in &doc {
        if matches!(value.get_ref(), DeValue::Table(_)) {
            continue;
        }
        let name = normalise(key.get_ref());
        match find_long(command, &name) {
            Some(arg) => out.push((name.clone(), to_args(arg, &name, value, base, &bad)?)),
            None if any_command_has(root, &name) => {}
            None => {
                return Err(bad(
                    key.span(),
                    format!("no command has an option --{name}"),
                    "top-level settings are long option names, e.g. teacher = \"http://127.0.0.1:8000/v1\"".into(),
                ));
            }
        }
    }
    // Tables: [generate], [site.crawl], ... Walk down as deep as the command path goes.
    let mut table = &doc;
    for (depth, name) in path.iter().enumerate() {
        let Some(value) = table.get(name.as_str()) else {
            break;
        };
        let DeValue::Table(inner) = value.get_ref() else {
            return Err(bad(
                value.span(),
                format!("{name} should be a table ([{name}])"),
                "put the command's settings under a [command] header".into(),
            ));
        };
        table = inner;
        let here = depth + 1 == path.len();
        for (key, value) in table {
            if !here && matches!(value.get_ref(), DeValue::Table(_)) {
                continue; // a deeper subcommand's table
            }
            let name = normalise(key.get_ref());
            let Some(arg) = find_long(command, &name) else {
                let known: Vec<String> = command
                    .get_arguments()
                    .filter_map(|a| a.get_long().map(|l| l.to_string()))
                    .filter(|l| l != "help" && l != "version")
                    .collect();
                return Err(bad(
                    key.span(),
                    format!("`trajforge {}` has no option --{name}", path.join(" ")),
                    format!("known options: {}", known.join(", ")),
                ));
            };
            // A command's own table overrides the top level.
            out.retain(|(k, _)| k != &name);
            out.push((name.clone(), to_args(arg, &name, value, base, &bad)?));
        }
    }
    Ok(out)
}

/// `test_cmd` and `test-cmd` both name `--test-cmd`.
fn normalise(key: &str) -> String {
    key.trim().replace('_', "-")
}

fn find_long<'c>(command: &'c Command, name: &str) -> Option<&'c Arg> {
    if name == "help" || name == "version" {
        return None;
    }
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(name) && !a.is_positional())
}

fn any_command_has(cmd: &Command, name: &str) -> bool {
    find_long(cmd, name).is_some() || cmd.get_subcommands().any(|s| any_command_has(s, name))
}

/// The arguments a file value becomes: `--name VALUE`, `--name` for a true flag, several
/// occurrences for an array. Relative paths are taken from the file's folder.
fn to_args(
    arg: &Arg,
    name: &str,
    value: &toml::Spanned<DeValue<'_>>,
    base: &Path,
    bad: &dyn Fn(std::ops::Range<usize>, String, String) -> CliError,
) -> Result<Vec<OsString>, CliError> {
    let flag = format!("--{name}");
    let is_flag = matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    );
    if is_flag {
        return match value.get_ref() {
            DeValue::Boolean(true) => Ok(vec![flag.into()]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            _ => Err(bad(
                value.span(),
                format!("{name} is a switch: write {name} = true or false"),
                format!("see `trajforge ... --help` for --{name}"),
            )),
        };
    }
    let is_path = matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    );
    let scalar = |v: &toml::Spanned<DeValue<'_>>| -> Result<OsString, CliError> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(&digits, i.radix())
                    .map(|n| n.to_string())
                    .unwrap_or(digits)
            }
            DeValue::Float(f) => f.as_str().replace('_', ""),
            DeValue::Boolean(b) => b.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            DeValue::Array(_) | DeValue::Table(_) => {
                return Err(bad(
                    v.span(),
                    format!("{name}: expected a single value"),
                    format!("write {name} = \"...\""),
                ));
            }
        };
        // A URL where a folder may also go (`tasks mine --store`) is not a relative path.
        if is_path && !text.is_empty() && !Path::new(&text).is_absolute() && !text.contains("://") {
            return Ok(base.join(&text).into_os_string());
        }
        Ok(text.into())
    };
    match value.get_ref() {
        DeValue::Array(items) => {
            let mut out = Vec::new();
            if arg.get_value_delimiter().is_some() {
                let parts: Result<Vec<OsString>, CliError> = items.iter().map(scalar).collect();
                let joined = parts?
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(&arg.get_value_delimiter().unwrap_or(',').to_string());
                out.push(OsString::from(&flag));
                out.push(joined.into());
            } else if matches!(arg.get_action(), ArgAction::Append) {
                for item in items {
                    out.push(OsString::from(&flag));
                    out.push(scalar(item)?);
                }
            } else {
                return Err(bad(
                    value.span(),
                    format!("{name} takes one value, not a list"),
                    format!("write {name} = \"...\""),
                ));
            }
            Ok(out)
        }
        _ => Ok(vec![OsStr::new(&flag).to_owned(), scalar(value)?]),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Debug, Parser)]
    struct Root {
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Generate {
            #[arg(long)]
            repo: PathBuf,
            #[arg(long)]
            teacher: String,
            #[arg(long, default_value_t = 0.5)]
            threshold: f64,
            #[arg(long)]
            test_cmd: Option<String>,
            #[arg(long)]
            include_tests: bool,
            #[arg(long, value_delimiter = ',')]
            rollouts: Vec<String>,
        },
        Status {
            run: PathBuf,
        },
        Mine {
            #[arg(long, value_hint = ValueHint::DirPath)]
            store: String,
        },
    }

    fn run(file: &str, args: &[&str]) -> Result<(Root, Option<Applied>), CliError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEFAULT_FILE), file).unwrap();
        let argv: Vec<OsString> = std::iter::once("trajforge")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let (argv, applied) = apply(argv, &Root::command(), dir.path())?;
        let m = overriding(Root::command())
            .try_get_matches_from(argv)
            .map_err(|e| CliError::input(e.to_string()))?;
        let root = <Root as clap::FromArgMatches>::from_arg_matches(&m)
            .map_err(|e| CliError::input(e.to_string()))?;
        Ok((
            root,
            applied.map(|a| Applied {
                file: PathBuf::new(),
                ..a
            }),
        ))
    }

    #[test]
    fn a_folder_option_that_takes_urls_too_keeps_a_url_as_it_is() {
        for (value, relative) in [("runs/m.run", true), ("postgres://u@h/db", false)] {
            let (root, _) = run(&format!("[mine]\nstore = \"{value}\"\n"), &["mine"]).unwrap();
            let Sub::Mine { store } = root.cmd else {
                panic!("wrong subcommand")
            };
            if relative {
                assert!(
                    Path::new(&store).is_absolute() && store.ends_with(value),
                    "{store}"
                );
            } else {
                assert_eq!(store, value);
            }
        }
    }

    #[test]
    fn file_fills_options_and_the_command_line_wins() {
        let file = "teacher = \"http://a/v1\"\n[generate]\nrepo = \"src\"\nthreshold = 1.0\ntest_cmd = \"pytest -q\"\ninclude-tests = true\nrollouts = [\"t1\", \"t2\"]\n";
        let (root, applied) = run(file, &["generate", "--threshold", "0.25"]).unwrap();
        let Sub::Generate {
            repo,
            teacher,
            threshold,
            test_cmd,
            include_tests,
            rollouts,
        } = root.cmd
        else {
            panic!("wrong subcommand")
        };
        assert_eq!(teacher, "http://a/v1");
        assert!(repo.is_absolute() && repo.ends_with("src"), "{repo:?}");
        assert_eq!(threshold, 0.25);
        assert_eq!(test_cmd.as_deref(), Some("pytest -q"));
        assert!(include_tests);
        assert_eq!(rollouts, ["t1", "t2"]);
        assert_eq!(
            applied.unwrap().keys,
            // Sorted by key within a table; the top level first.
            [
                "teacher",
                "include-tests",
                "repo",
                "rollouts",
                "test-cmd",
                "threshold"
            ]
        );
    }

    #[test]
    fn top_level_keys_skip_commands_without_the_option() {
        let (root, applied) = run("teacher = \"x\"\n", &["status", "run1"]).unwrap();
        assert!(matches!(root.cmd, Sub::Status { .. }));
        assert_eq!(applied, None);
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let err = run("[generate]\nrepo = \".\"\n\nthresold = 1\n", &["generate"]).unwrap_err();
        assert!(err.message.contains("line 4"), "{}", err.message);
        assert!(err.message.contains("--thresold"), "{}", err.message);
        assert!(err.hints[0].contains("threshold"));
        let err = run("nonsense = 1\n", &["status", "x"]).unwrap_err();
        assert!(err.message.contains("line 1"), "{}", err.message);
        let err = run("[generate]\nrepo = [\n", &["generate"]).unwrap_err();
        assert!(err.message.contains("line"), "{}", err.message);
    }

    #[test]
    fn wrong_value_shapes_are_explained() {
        let err = run("[generate]\ninclude-tests = \"yes\"\n", &["generate"]).unwrap_err();
        assert!(
            err.message.contains("line 2") && err.message.contains("switch"),
            "{}",
            err.message
        );
        let err = run("[generate]\nthreshold = [1]\n", &["generate"]).unwrap_err();
        assert!(err.message.contains("one value"), "{}", err.message);
    }

    #[test]
    fn config_flags_are_taken_out() {
        let argv: Vec<OsString> = [
            "t",
            "generate",
            "--no-config",
            "--repo",
            "r",
            "--",
            "--config",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let (rest, file, disabled) = take_config_flags(argv).unwrap();
        assert!(disabled && file.is_none());
        assert_eq!(rest, ["t", "generate", "--repo", "r", "--", "--config"]);
        let dir = tempfile::tempdir().unwrap();
        let err = apply(
            vec![
                "t".into(),
                "--config".into(),
                "missing.toml".into(),
                "generate".into(),
            ],
            &Root::command(),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(err.code(), crate::error::EXIT_INPUT);
    }
}
