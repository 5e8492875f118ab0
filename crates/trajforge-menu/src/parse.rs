//! Reading a menu file into checked, not yet merged, entries.
//!
//! Works on `toml::de::DeTable` rather than serde derive so that every
//! semantic error can point at the line of the key, value or entry header.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{MenuError, MenuProblem};
use crate::template::{self, Piece};

/// How a user file combines with the built-in menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Add entries; an entry whose id already exists replaces it in place.
    Extend,
    /// Drop the built-in entries of each kind the file defines.
    Replace,
}

/// A bug entry as written in a file (index not yet assigned).
#[derive(Debug, Clone)]
pub(crate) struct RawBug {
    pub id: String,
    pub category: String,
    pub prompt: String,
}

/// A task entry as written in a file (index not yet assigned).
#[derive(Debug, Clone)]
pub(crate) struct RawTask {
    pub id: String,
    pub intent: String,
    pub prompt: String,
    pub answer: bool,
}

/// The entries of one kind plus the line of their key, for later errors.
#[derive(Debug, Clone)]
pub(crate) struct KindList<T> {
    pub entries: Vec<T>,
    pub line: usize,
}

/// A parsed and checked menu file.
#[derive(Debug, Clone)]
pub(crate) struct MenuFile {
    pub mode: Mode,
    pub bugs: Option<KindList<RawBug>>,
    pub tasks: Option<KindList<RawTask>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Bool,
}

struct FieldSpec {
    name: &'static str,
    ty: Ty,
    required: bool,
}

/// What distinguishes `[[bug]]` from `[[task]]` entries.
struct KindSpec {
    name: &'static str,
    fields: &'static [FieldSpec],
    allowed_fields: &'static str,
    placeholders: &'static [&'static str],
    allowed_placeholders: &'static str,
    /// Each group needs at least one of its placeholders in the prompt.
    required_groups: &'static [&'static [&'static str]],
}

const fn field(name: &'static str, ty: Ty, required: bool) -> FieldSpec {
    FieldSpec { name, ty, required }
}

const BUG: KindSpec = KindSpec {
    name: "bug",
    fields: &[
        field("id", Ty::Str, true),
        field("category", Ty::Str, true),
        field("prompt", Ty::Str, true),
    ],
    allowed_fields: "id, category, prompt",
    placeholders: crate::BUG_PLACEHOLDERS,
    allowed_placeholders: "{function}, {path}",
    required_groups: &[&["function"], &["path"]],
};

const TASK: KindSpec = KindSpec {
    name: "task",
    fields: &[
        field("id", Ty::Str, true),
        field("intent", Ty::Str, true),
        field("prompt", Ty::Str, true),
        field("answer", Ty::Bool, false),
    ],
    allowed_fields: "id, intent, prompt, answer",
    placeholders: crate::TASK_PLACEHOLDERS,
    allowed_placeholders: "{start_url}, {start_title}",
    required_groups: &[&["start_url", "start_title"]],
};

/// A field value with the byte span of the value in the source.
struct Value {
    text: String,
    flag: bool,
    span: Range<usize>,
}

/// One entry after field checks; `values` is aligned with the kind's fields.
struct Entry {
    values: Vec<Option<Value>>,
}

impl Entry {
    fn text(&self, i: usize) -> String {
        self.values[i]
            .as_ref()
            .map(|v| v.text.clone())
            .unwrap_or_default()
    }
    fn flag(&self, i: usize) -> bool {
        self.values[i].as_ref().is_some_and(|v| v.flag)
    }
}

/// The text being parsed and its name, for locating errors.
pub(crate) struct Source<'a> {
    text: &'a str,
    origin: &'a str,
    /// Byte offset where each line starts: a line number is a binary search, not a scan
    /// from the top (which made a file of 40,000 entries take a minute).
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(text: &'a str, origin: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            text,
            origin,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    fn invalid(&self, offset: usize, problem: MenuProblem) -> MenuError {
        MenuError::Invalid {
            origin: self.origin.to_owned(),
            line: self.line(offset),
            problem,
        }
    }

    /// Parses and checks the whole file.
    pub(crate) fn parse(&self) -> Result<MenuFile, MenuError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let offset = e.span().map_or(self.text.len(), |s| s.start);
            let (line, column) = self.line_col(offset);
            MenuError::Syntax {
                origin: self.origin.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let mut file = MenuFile {
            mode: Mode::Extend,
            bugs: None,
            tasks: None,
        };
        for (key, value) in sorted_by_position(root.get_ref()) {
            let key_start = key.span().start;
            match key.get_ref().as_ref() {
                "mode" => file.mode = self.mode(value)?,
                "bug" => {
                    let entries = self.entries(&BUG, value)?;
                    let entries = entries
                        .into_iter()
                        .map(|e| RawBug {
                            id: e.text(0),
                            category: e.text(1),
                            prompt: e.text(2),
                        })
                        .collect();
                    file.bugs = Some(KindList {
                        entries,
                        line: self.line(key_start),
                    });
                }
                "task" => {
                    let entries = self.entries(&TASK, value)?;
                    let entries = entries
                        .into_iter()
                        .map(|e| RawTask {
                            id: e.text(0),
                            intent: e.text(1),
                            prompt: e.text(2),
                            answer: e.flag(3),
                        })
                        .collect();
                    file.tasks = Some(KindList {
                        entries,
                        line: self.line(key_start),
                    });
                }
                other => {
                    return Err(self.invalid(
                        key_start,
                        MenuProblem::UnknownKey {
                            key: other.to_owned(),
                        },
                    ));
                }
            }
        }
        Ok(file)
    }

    fn mode(&self, value: &Spanned<DeValue<'_>>) -> Result<Mode, MenuError> {
        let start = value.span().start;
        match value.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "extend" => Ok(Mode::Extend),
                "replace" => Ok(Mode::Replace),
                other => Err(self.invalid(
                    start,
                    MenuProblem::UnknownMode {
                        mode: other.to_owned(),
                    },
                )),
            },
            other => Err(self.invalid(
                start,
                MenuProblem::WrongType {
                    what: "`mode`".to_owned(),
                    expected: "a string (\"extend\" or \"replace\")",
                    found: other.type_str(),
                },
            )),
        }
    }

    fn entries(
        &self,
        kind: &KindSpec,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<Entry>, MenuError> {
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.invalid(
                value.span().start,
                MenuProblem::WrongType {
                    what: format!("`{}`", kind.name),
                    expected: if kind.name == "bug" {
                        "an array of tables (write [[bug]])"
                    } else {
                        "an array of tables (write [[task]])"
                    },
                    found: value.get_ref().type_str(),
                },
            ));
        };
        let mut entries = Vec::with_capacity(items.len());
        // id -> line of its first use, to report duplicates.
        let mut seen: std::collections::HashMap<String, usize> =
            std::collections::HashMap::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            let entry = self.entry(kind, n + 1, item)?;
            if let Some(id) = &entry.values[0] {
                let line = self.line(id.span.start);
                if let Some(first_line) = seen.get(&id.text) {
                    return Err(self.invalid(
                        id.span.start,
                        MenuProblem::DuplicateId {
                            entry: format!("{} entry \"{}\"", kind.name, id.text),
                            first_line: *first_line,
                        },
                    ));
                }
                seen.insert(id.text.clone(), line);
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    fn entry(
        &self,
        kind: &KindSpec,
        n: usize,
        item: &Spanned<DeValue<'_>>,
    ) -> Result<Entry, MenuError> {
        let entry_start = item.span().start;
        let DeValue::Table(table) = item.get_ref() else {
            return Err(self.invalid(
                entry_start,
                MenuProblem::WrongType {
                    what: format!("{} entry #{n}", kind.name),
                    expected: "a table",
                    found: item.get_ref().type_str(),
                },
            ));
        };
        let label = match table.get("id").map(Spanned::get_ref) {
            Some(DeValue::String(id)) if is_slug(id) => format!("{} entry \"{id}\"", kind.name),
            _ => format!("{} entry #{n}", kind.name),
        };
        let mut values: Vec<Option<Value>> = kind.fields.iter().map(|_| None).collect();
        for (key, value) in sorted_by_position(table) {
            let name = key.get_ref().as_ref();
            let Some(i) = kind.fields.iter().position(|f| f.name == name) else {
                return Err(self.invalid(
                    key.span().start,
                    MenuProblem::UnknownField {
                        entry: label,
                        field: name.to_owned(),
                        allowed: kind.allowed_fields,
                    },
                ));
            };
            let span = value.span();
            let parsed = match (kind.fields[i].ty, value.get_ref()) {
                (Ty::Str, DeValue::String(s)) => Value {
                    text: s.to_string(),
                    flag: false,
                    span,
                },
                (Ty::Bool, DeValue::Boolean(b)) => Value {
                    text: String::new(),
                    flag: *b,
                    span,
                },
                (ty, other) => {
                    return Err(self.invalid(
                        span.start,
                        MenuProblem::WrongType {
                            what: format!("{label}: field `{name}`"),
                            expected: if ty == Ty::Str {
                                "a string"
                            } else {
                                "a boolean"
                            },
                            found: other.type_str(),
                        },
                    ));
                }
            };
            values[i] = Some(parsed);
        }
        for (spec, value) in kind.fields.iter().zip(&values) {
            if spec.required && value.is_none() {
                return Err(self.invalid(
                    entry_start,
                    MenuProblem::MissingField {
                        entry: label,
                        field: spec.name,
                    },
                ));
            }
        }
        for (spec, value) in kind.fields.iter().zip(&values) {
            let Some(value) = value else { continue };
            if spec.ty != Ty::Str {
                continue;
            }
            if value.text.trim().is_empty() {
                return Err(self.invalid(
                    value.span.start,
                    MenuProblem::EmptyField {
                        entry: label,
                        field: spec.name,
                    },
                ));
            }
            if spec.name == "id" && !is_slug(&value.text) {
                return Err(self.invalid(
                    value.span.start,
                    MenuProblem::InvalidId {
                        entry: label,
                        id: value.text.clone(),
                    },
                ));
            }
        }
        if let Some(prompt) = values
            .iter()
            .zip(kind.fields)
            .find(|(_, f)| f.name == "prompt")
            .and_then(|(v, _)| v.as_ref())
        {
            self.check_prompt(kind, &label, prompt)?;
        }
        Ok(Entry { values })
    }

    fn check_prompt(&self, kind: &KindSpec, label: &str, prompt: &Value) -> Result<(), MenuError> {
        let raw = self.text.get(prompt.span.clone()).unwrap_or("");
        let pieces = template::scan(&prompt.text);
        for piece in &pieces {
            match *piece {
                Piece::Placeholder(name) if !kind.placeholders.contains(&name) => {
                    // Point at the placeholder itself inside multi-line prompts.
                    let needle = format!("{{{name}}}");
                    let offset = raw
                        .find(&needle)
                        .map_or(prompt.span.start, |i| prompt.span.start + i);
                    return Err(self.invalid(
                        offset,
                        MenuProblem::UnknownPlaceholder {
                            entry: label.to_owned(),
                            name: name.to_owned(),
                            allowed: kind.allowed_placeholders,
                        },
                    ));
                }
                Piece::Stray(brace, at) => {
                    // The n-th such brace of the decoded text is, escapes aside,
                    // the n-th of the raw literal.
                    let n = prompt.text[..at].matches(brace).count();
                    let offset = raw
                        .match_indices(brace)
                        .nth(n)
                        .map_or(prompt.span.start, |(i, _)| prompt.span.start + i);
                    return Err(self.invalid(
                        offset,
                        MenuProblem::StrayBrace {
                            entry: label.to_owned(),
                            brace,
                        },
                    ));
                }
                _ => {}
            }
        }
        for group in kind.required_groups {
            let present = pieces
                .iter()
                .any(|p| matches!(p, Piece::Placeholder(name) if group.contains(name)));
            if !present {
                let required = group
                    .iter()
                    .map(|name| format!("{{{name}}}"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                return Err(self.invalid(
                    prompt.span.start,
                    MenuProblem::MissingPlaceholder {
                        entry: label.to_owned(),
                        required,
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Table entries in source order (the map itself is sorted by key).
fn sorted_by_position<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<toml::de::DeString<'i>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Ids end up in file names and sample records, so keep them plain.
pub(crate) fn is_slug(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
