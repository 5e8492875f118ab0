//! The languages trajforge reads, and how a file's language is recognised.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A source language whose functions trajforge can list.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Python (`.py`).
    Python,
    /// Rust (`.rs`).
    Rust,
    /// JavaScript, JSX included (`.js`, `.jsx`, `.mjs`, `.cjs`).
    JavaScript,
    /// TypeScript, TSX included (`.ts`, `.tsx`, `.mts`, `.cts`).
    TypeScript,
    /// Go (`.go`).
    Go,
    /// Java (`.java`).
    Java,
    /// C (`.c`, and `.h` in repositories without C++ sources).
    C,
    /// C++ (`.cc`, `.cpp`, `.cxx`, `.hpp`, ..., and `.h` when the repository has C++ sources).
    Cpp,
}

/// Which tree-sitter grammar parses a file; TypeScript has two (plain and TSX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Grammar {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

impl Language {
    /// Every supported language, in a stable order.
    pub const ALL: [Language; 8] = [
        Language::Python,
        Language::Rust,
        Language::JavaScript,
        Language::TypeScript,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
    ];

    /// The lower-case name used in output and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Rust => "rust",
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
            Language::Go => "go",
            Language::Java => "java",
            Language::C => "c",
            Language::Cpp => "cpp",
        }
    }
}

impl Language {
    /// The languages named in `items` (blank items skipped); `None` for an empty list (every
    /// language).
    pub fn parse_list(
        items: &[String],
    ) -> Result<Option<std::collections::BTreeSet<Language>>, UnknownLanguage> {
        if items.is_empty() {
            return Ok(None);
        }
        let named = items.iter().filter(|s| !s.trim().is_empty());
        named
            .map(|item| item.parse())
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A language name that trajforge does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?}; known: python, rust, javascript, typescript, go, java, c, cpp")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "python" | "py" => Language::Python,
            "rust" | "rs" => Language::Rust,
            "javascript" | "js" | "jsx" => Language::JavaScript,
            "typescript" | "ts" | "tsx" => Language::TypeScript,
            "go" | "golang" => Language::Go,
            "java" => Language::Java,
            "c" => Language::C,
            "cpp" | "c++" | "cxx" => Language::Cpp,
            _ => return Err(UnknownLanguage(s.to_string())),
        })
    }
}

/// How a file name maps to a grammar; `.h` is decided per repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    Known(Grammar),
    /// A `.h` header: C++ when the repository has C++ sources, C otherwise.
    Header,
}

pub(crate) fn detect(path: &Path) -> Option<Detected> {
    let ext = path.extension()?.to_str()?;
    let grammar = match ext {
        "py" => Grammar::Python,
        "rs" => Grammar::Rust,
        "js" | "jsx" | "mjs" | "cjs" => Grammar::JavaScript,
        "ts" | "mts" | "cts" => {
            // Declaration files hold signatures only: nothing to change in them.
            let name = path.file_name()?.to_str()?;
            if name.ends_with(".d.ts") || name.ends_with(".d.mts") || name.ends_with(".d.cts") {
                return None;
            }
            Grammar::TypeScript
        }
        "tsx" => Grammar::Tsx,
        "go" => Grammar::Go,
        "java" => Grammar::Java,
        "c" => Grammar::C,
        "h" => return Some(Detected::Header),
        "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" | "tpp" => Grammar::Cpp,
        _ => return None,
    };
    Some(Detected::Known(grammar))
}

impl Grammar {
    pub(crate) fn language(self) -> Language {
        match self {
            Grammar::Python => Language::Python,
            Grammar::Rust => Language::Rust,
            Grammar::JavaScript => Language::JavaScript,
            Grammar::TypeScript | Grammar::Tsx => Language::TypeScript,
            Grammar::Go => Language::Go,
            Grammar::Java => Language::Java,
            Grammar::C => Language::C,
            Grammar::Cpp => Language::Cpp,
        }
    }

    pub(crate) fn ts_language(self) -> tree_sitter::Language {
        match self {
            Grammar::Python => tree_sitter_python::LANGUAGE.into(),
            Grammar::Rust => tree_sitter_rust::LANGUAGE.into(),
            Grammar::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Grammar::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Grammar::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Grammar::Go => tree_sitter_go::LANGUAGE.into(),
            Grammar::Java => tree_sitter_java::LANGUAGE.into(),
            Grammar::C => tree_sitter_c::LANGUAGE.into(),
            Grammar::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// A stable tag, part of the cache key.
    pub(crate) fn tag(self) -> u8 {
        self as u8
    }
}
