//! `trajforge menu`: print the bug-type and navigation task-type menus.

use std::io::Write;
use std::path::PathBuf;

use trajforge_menu::Menu;

use crate::error::{self, CliError};

/// Options of `trajforge menu`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A menu file (TOML) extends the built-in menus, or replaces them with mode = \"replace\":\n\
  mode = \"extend\"\n  [[bug]]\n  id = \"orm-query\"\n  category = \"ORM query construction\"\n  \
prompt = \"There may be a problem in how {function} (in {path}) builds queries ...\"\n  [[task]]\n  \
id = \"find-webhooks\"\n  intent = \"Find the webhooks documentation\"\n  \
prompt = \"From {start_title} ({start_url}), find where webhooks are documented.\"\n  answer = false\n\
Bug prompts must use {function} and {path}; task prompts may use {start_url} and {start_title}."
)]
pub struct Args {
    /// Which menu to print (both when omitted).
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// A TOML menu file that extends or replaces the built-in menus.
    #[arg(long, value_name = "FILE.toml")]
    pub menu: Option<PathBuf>,
}

/// The two menus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Bug types for code (SERA's 51-entry menu, ours in wording).
    Bug,
    /// Navigation task types for websites.
    Task,
}

/// Run `trajforge menu`.
pub fn run(args: Args) -> Result<(), CliError> {
    let menu = match &args.menu {
        Some(path) => Menu::load(path)?,
        None => Menu::builtin(),
    };
    let text = render(&menu, args.kind, args.json);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).map_err(error::output)?;
    out.flush().map_err(error::output)
}

/// The menu as printed: text or JSON, one or both kinds.
pub fn render(menu: &Menu, kind: Option<Kind>, json: bool) -> String {
    let bugs = kind.is_none_or(|k| k == Kind::Bug);
    let tasks = kind.is_none_or(|k| k == Kind::Task);
    if json {
        let mut value = serde_json::Map::new();
        if bugs {
            value.insert(
                "bugs".into(),
                serde_json::to_value(&menu.bugs).unwrap_or_default(),
            );
        }
        if tasks {
            value.insert(
                "tasks".into(),
                serde_json::to_value(&menu.tasks).unwrap_or_default(),
            );
        }
        let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
        s.push('\n');
        return s;
    }
    let mut s = String::new();
    if bugs {
        s.push_str(&format!(
            "Bug-type menu ({} entries; placeholders {{function}} and {{path}})\n\n",
            menu.bugs.len()
        ));
        for bug in &menu.bugs {
            s.push_str(&format!(
                "{:>3}  {}  ({})\n",
                bug.index, bug.id, bug.category
            ));
            s.push_str(&indent(&bug.prompt));
            s.push('\n');
        }
    }
    if tasks {
        if bugs {
            s.push('\n');
        }
        s.push_str(&format!(
            "Navigation task-type menu ({} entries; placeholders {{start_url}} and {{start_title}})\n\n",
            menu.tasks.len()
        ));
        for task in &menu.tasks {
            let answer = if task.answer {
                ", ends with an answer"
            } else {
                ""
            };
            s.push_str(&format!(
                "{:>3}  {}  ({}{answer})\n",
                task.index, task.id, task.intent
            ));
            s.push_str(&indent(&task.prompt));
            s.push('\n');
        }
    }
    s
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}
