//! Rendering a [`Patch`] back to git-style unified-diff text.
//!
//! Any patch git itself could have produced renders to text that [`crate::parse`] reads
//! back to the same structure (apart from the input line numbers).

use std::fmt::{self, Display, Formatter};

use crate::quote::quote;
use crate::{FilePatch, FileStatus, Hunk, Patch};

/// Writes one line; a line whose content ends in `\r` gets a `\r\n` terminator, because the
/// parser takes `\r\n` as the terminator and would otherwise eat that content `\r`.
fn line(f: &mut Formatter<'_>, args: fmt::Arguments<'_>) -> fmt::Result {
    let text = args.to_string();
    let end = if text.ends_with('\r') { "\r\n" } else { "\n" };
    write!(f, "{text}{end}")
}

impl Display for Patch {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.files.iter().try_for_each(|file| file.fmt(f))
    }
}

impl Display for FilePatch {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let old = self.old_path.as_deref().unwrap_or(self.path());
        let new = self.new_path.as_deref().unwrap_or(self.path());
        let a = quote(&format!("a/{old}"));
        let b = quote(&format!("b/{new}"));
        line(f, format_args!("diff --git {a} {b}"))?;
        match self.status {
            FileStatus::Added => {
                if let Some(mode) = &self.new_mode {
                    line(f, format_args!("new file mode {mode}"))?;
                }
            }
            FileStatus::Deleted => {
                if let Some(mode) = &self.old_mode {
                    line(f, format_args!("deleted file mode {mode}"))?;
                }
            }
            _ => {
                if let Some(mode) = &self.old_mode {
                    line(f, format_args!("old mode {mode}"))?;
                }
                if let Some(mode) = &self.new_mode {
                    line(f, format_args!("new mode {mode}"))?;
                }
            }
        }
        let verb = match self.status {
            FileStatus::Renamed => Some("rename"),
            FileStatus::Copied => Some("copy"),
            _ => None,
        };
        if let Some(verb) = verb {
            line(f, format_args!("{verb} from {}", quote(old)))?;
            line(f, format_args!("{verb} to {}", quote(new)))?;
        }
        let minus = if self.status == FileStatus::Added {
            "/dev/null"
        } else {
            &a
        };
        let plus = if self.status == FileStatus::Deleted {
            "/dev/null"
        } else {
            &b
        };
        if self.binary {
            line(f, format_args!("Binary files {minus} and {plus} differ"))?;
        }
        if !self.hunks.is_empty() {
            // git's marker: a tab after a name with a space, so readers know where it ends
            let tab = |name: &str| if name.contains(' ') { "\t" } else { "" };
            line(f, format_args!("--- {minus}{}", tab(minus)))?;
            line(f, format_args!("+++ {plus}{}", tab(plus)))?;
        }
        self.hunks.iter().try_for_each(|hunk| hunk.fmt(f))
    }
}

impl Display for Hunk {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // git omits a length of 1
        let range = |start: usize, len: usize| {
            if len == 1 {
                start.to_string()
            } else {
                format!("{start},{len}")
            }
        };
        let sep = if self.section.is_empty() { "" } else { " " };
        line(
            f,
            format_args!(
                "@@ -{} +{} @@{sep}{}",
                range(self.old_start, self.old_len),
                range(self.new_start, self.new_len),
                self.section
            ),
        )?;
        for body in &self.lines {
            line(f, format_args!("{}{}", body.kind.sign(), body.text))?;
            if body.no_newline_at_eof {
                line(f, format_args!("\\ No newline at end of file"))?;
            }
        }
        Ok(())
    }
}
