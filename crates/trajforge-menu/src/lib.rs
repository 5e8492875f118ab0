//! Bug-type and navigation task-type menus for trajforge.
//!
//! Rollout 1 of the coding pipeline gets a deliberately vague task built from
//! a *bug-type* entry ("there may be a problem of kind K involving function F
//! in file P"); rollout 1 of the web pipeline gets a vague *navigation intent*
//! from a start page. This crate holds both menus: a built-in one (51 bug
//! types, entry 0 generic, as SERA used; a few dozen navigation intents) and a
//! loader for user files that extend or replace it. Every sample records the
//! id of the entry that produced it, and [`Menu::fingerprint`] lets a resumed
//! run notice that the menu changed underneath it.
//! Its `{name}` template engine ([`template`]) also fills the pipeline's stage
//! prompts, so menu entries and prompt files follow one placeholder syntax.
//!
//! # User menu files
//!
//! A menu file is TOML with an optional `mode` and any number of `[[bug]]` and
//! `[[task]]` entries:
//!
//! ```toml
//! # "extend" (default) adds to the built-in menu; an entry whose id is already
//! # in the menu replaces that entry in place (it keeps its index).
//! # "replace" drops the built-in entries of every kind the file defines, so a
//! # file with only [[task]] entries keeps the built-in bug types.
//! mode = "extend"
//!
//! [[bug]]
//! id = "orm-query"                      # lowercase slug, unique in the file
//! category = "ORM query construction"
//! # Must contain {function} and {path}; no other placeholders.
//! prompt = "Something may be off in how {function} (in {path}) builds database queries..."
//!
//! [[task]]
//! id = "find-webhooks-docs"
//! intent = "Find the webhooks documentation"
//! # Must contain {start_url} or {start_title} (or both); no others.
//! prompt = "Starting at {start_title}, find out how this product notifies other services of events."
//! answer = false                        # optional, default false
//! ```
//!
//! * Bug fields: `id`, `category`, `prompt` (all required).
//! * Task fields: `id`, `intent`, `prompt` (required) and `answer` (optional
//!   boolean, default `false`): `true` when the task asks for a fact to be
//!   reported with `answer(text)`, `false` when reaching a page is the goal.
//! * Write `{{` and `}}` for literal braces in a prompt.
//! * Indexes are assigned in order: built-in entries keep theirs, new entries
//!   are appended; under `replace` the file's entries are numbered from 0.
//!
//! Mistakes are reported as [`MenuError`]s carrying the file and line, e.g.
//! `menu.toml:7: bug entry "orm-query": prompt uses unknown placeholder {func}; allowed: {function}, {path}`.
//!
//! ```
//! use trajforge_menu::Menu;
//!
//! let menu = Menu::from_toml_str(
//!     r#"
//! [[bug]]
//! id = "orm-query"
//! category = "ORM query construction"
//! prompt = "Queries built by {function} in {path} may not match what callers ask for."
//! "#,
//!     "menu.toml",
//! )?;
//! let bug = menu.bug("orm-query").expect("just added");
//! assert_eq!(bug.index, 51);
//! assert_eq!(
//!     bug.render("app/db.py::Repo.find", "app/db.py"),
//!     "Queries built by app/db.py::Repo.find in app/db.py may not match what callers ask for."
//! );
//! # Ok::<(), trajforge_menu::MenuError>(())
//! ```

mod error;
mod parse;
pub mod template;

use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;
use trajforge_hash::Fnv1a64;

pub use error::{MenuError, MenuProblem};

use parse::{KindList, MenuFile, Mode, RawBug, RawTask, Source};

/// The built-in bug-type menu, as TOML in the user file format.
pub const BUILTIN_BUGS_TOML: &str = include_str!("../menus/bugs.toml");

/// The built-in navigation task-type menu, as TOML in the user file format.
pub const BUILTIN_TASKS_TOML: &str = include_str!("../menus/tasks.toml");

/// Placeholder names a bug prompt may use (both are required).
pub const BUG_PLACEHOLDERS: &[&str] = &["function", "path"];

/// Placeholder names a task prompt may use (at least one is required).
pub const TASK_PLACEHOLDERS: &[&str] = &["start_url", "start_title"];

/// One kind of problem the rollout-1 coding task hints at.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BugEntry {
    /// Stable slug recorded with every sample, e.g. `resource-cleanup`.
    pub id: String,
    /// Position in the menu; 0 is the generic entry of the built-in menu.
    pub index: usize,
    /// Human-readable category name.
    pub category: String,
    /// Template with `{function}` and `{path}` placeholders.
    pub prompt: String,
}

impl BugEntry {
    /// Fills `{function}` and `{path}`; `{{`/`}}` become single braces.
    pub fn render(&self, function: &str, path: &str) -> String {
        template::render(&self.prompt, &[("function", function), ("path", path)])
    }
}

/// One navigation intent the rollout-1 web task starts from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TaskEntry {
    /// Stable slug recorded with every sample, e.g. `find-pricing`.
    pub id: String,
    /// Position in the menu.
    pub index: usize,
    /// Short name of the intent.
    pub intent: String,
    /// Template with `{start_url}` and/or `{start_title}` placeholders.
    pub prompt: String,
    /// True when the task ends with `answer(text)` rather than on a page.
    pub answer: bool,
}

impl TaskEntry {
    /// Fills `{start_url}` and `{start_title}`; `{{`/`}}` become single braces.
    pub fn render(&self, start_url: &str, start_title: &str) -> String {
        template::render(
            &self.prompt,
            &[("start_url", start_url), ("start_title", start_title)],
        )
    }
}

/// Both menus; `bugs[i].index == i` and `tasks[i].index == i` always hold.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Menu {
    /// Bug-type entries, in index order.
    pub bugs: Vec<BugEntry>,
    /// Navigation task-type entries, in index order.
    pub tasks: Vec<TaskEntry>,
}

impl Menu {
    /// The built-in menu: 51 bug types and the built-in navigation intents.
    ///
    /// # Panics
    ///
    /// Only if the embedded menu files are invalid, which the crate's tests rule out.
    pub fn builtin() -> Menu {
        static BUILTIN: OnceLock<Menu> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut menu = Menu {
                    bugs: Vec::new(),
                    tasks: Vec::new(),
                };
                for (text, origin) in [
                    (BUILTIN_BUGS_TOML, "<built-in>/menus/bugs.toml"),
                    (BUILTIN_TASKS_TOML, "<built-in>/menus/tasks.toml"),
                ] {
                    if let Err(err) = menu.apply_text(text, origin) {
                        panic!("the built-in menu is invalid: {err}");
                    }
                }
                menu
            })
            .clone()
    }

    /// Reads a user menu file and applies it on top of the built-in menu.
    pub fn load(path: &Path) -> Result<Menu, MenuError> {
        let text = std::fs::read_to_string(path).map_err(|source| MenuError::Read {
            path: path.to_owned(),
            source,
        })?;
        Menu::from_toml_str(&text, &path.display().to_string())
    }

    /// Applies menu-file text on top of the built-in menu; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Menu, MenuError> {
        let mut menu = Menu::builtin();
        menu.apply_text(text, origin)?;
        Ok(menu)
    }

    /// The bug entry with this id.
    pub fn bug(&self, id: &str) -> Option<&BugEntry> {
        self.bugs.iter().find(|b| b.id == id)
    }

    /// The task entry with this id.
    pub fn task(&self, id: &str) -> Option<&TaskEntry> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// A stable 16-hex-digit digest (FNV-1a 64) of the whole menu's content.
    ///
    /// Hand-written so the value never changes with a dependency upgrade;
    /// every field is length-prefixed so no two menus serialise alike.
    pub fn fingerprint(&self) -> String {
        let mut hash = Fnv1a64::new();
        hash.write_field(b"trajforge-menu/1");
        for bug in &self.bugs {
            hash.write_field(b"bug");
            hash.write_field(bug.index.to_string().as_bytes());
            hash.write_field(bug.id.as_bytes());
            hash.write_field(bug.category.as_bytes());
            hash.write_field(bug.prompt.as_bytes());
        }
        for task in &self.tasks {
            hash.write_field(b"task");
            hash.write_field(task.index.to_string().as_bytes());
            hash.write_field(task.id.as_bytes());
            hash.write_field(task.intent.as_bytes());
            hash.write_field(task.prompt.as_bytes());
            hash.write_field(if task.answer {
                b"answer=true"
            } else {
                b"answer=false"
            });
        }
        hash.hex()
    }

    fn apply_text(&mut self, text: &str, origin: &str) -> Result<(), MenuError> {
        let file = Source::new(text, origin).parse()?;
        self.apply(file, origin)
    }

    fn apply(&mut self, file: MenuFile, origin: &str) -> Result<(), MenuError> {
        let empty_replacement = |kind: &'static str, line: usize| MenuError::Invalid {
            origin: origin.to_owned(),
            line,
            problem: MenuProblem::EmptyReplacement { kind },
        };
        let replace = file.mode == Mode::Replace;
        if let Some(list) = file.bugs {
            merge(&mut self.bugs, list, replace).map_err(|line| empty_replacement("bug", line))?;
        }
        if let Some(list) = file.tasks {
            merge(&mut self.tasks, list, replace)
                .map_err(|line| empty_replacement("task", line))?;
        }
        Ok(())
    }
}

/// A menu entry as files merge it: known by its id, built from what a file wrote.
trait Merged {
    /// The entry as written in a file.
    type Raw;
    /// The entry's id.
    fn id(&self) -> &str;
    /// The entry's position in the menu.
    fn index(&self) -> usize;
    /// The id of an entry as written.
    fn raw_id(raw: &Self::Raw) -> &str;
    /// The entry at `index` from what a file wrote.
    fn from_raw(raw: Self::Raw, index: usize) -> Self;
}

impl Merged for BugEntry {
    type Raw = RawBug;
    fn id(&self) -> &str {
        &self.id
    }
    fn index(&self) -> usize {
        self.index
    }
    fn raw_id(raw: &RawBug) -> &str {
        &raw.id
    }
    fn from_raw(raw: RawBug, index: usize) -> Self {
        BugEntry {
            id: raw.id,
            index,
            category: raw.category,
            prompt: raw.prompt,
        }
    }
}

impl Merged for TaskEntry {
    type Raw = RawTask;
    fn id(&self) -> &str {
        &self.id
    }
    fn index(&self) -> usize {
        self.index
    }
    fn raw_id(raw: &RawTask) -> &str {
        &raw.id
    }
    fn from_raw(raw: RawTask, index: usize) -> Self {
        TaskEntry {
            id: raw.id,
            index,
            intent: raw.intent,
            prompt: raw.prompt,
            answer: raw.answer,
        }
    }
}

/// Merges one kind's entries from a file into `entries`. With `replace` the current entries
/// go first (an empty list is refused: `Err` with the line of its key). An entry whose id is
/// already there takes that entry's place and index; a new one is appended.
fn merge<E: Merged>(
    entries: &mut Vec<E>,
    list: KindList<E::Raw>,
    replace: bool,
) -> Result<(), usize> {
    if replace {
        if list.entries.is_empty() {
            return Err(list.line);
        }
        entries.clear();
    }
    // id -> position, so a file of many entries merges in linear time.
    let mut at: std::collections::HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id().to_string(), i))
        .collect();
    for raw in list.entries {
        match at.get(E::raw_id(&raw)) {
            Some(&i) => {
                let index = entries[i].index();
                entries[i] = E::from_raw(raw, index);
            }
            None => {
                at.insert(E::raw_id(&raw).to_string(), entries.len());
                entries.push(E::from_raw(raw, entries.len()));
            }
        }
    }
    Ok(())
}
