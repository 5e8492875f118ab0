//! How one episode is shown: each step as it happens, the one-line summary, and the
//! trajectory written to a file without ever leaving half a file.

use std::io::Write;
use std::path::Path;

use trajforge_agent::{Event, ExitStatus, Trajectory};

use crate::error::CliError;

/// Write JSON to a temporary file and rename it, so a crash never leaves half a file.
pub fn write_json_atomically(path: &Path, value: &Trajectory) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("trajectory"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::failure(format!(
            "{}: cannot write the trajectory: {e}",
            path.display()
        ))
    })
}

/// Shows one event of a live episode on stderr; everything from the model or the
/// environment has its control characters escaped (see [`terminal_safe`]).
pub fn print_event(event: &Event<'_>, color: bool) {
    let (dim, bold, reset) = if color {
        ("\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    match event {
        Event::Assistant {
            step,
            message,
            usage,
            model_time,
        } => {
            stderr_line!(
                "{bold}── step {} ──{reset} {dim}{:.1}s, {} prompt + {} completion tokens{reset}",
                step + 1,
                model_time.as_secs_f64(),
                usage.prompt_tokens,
                usage.completion_tokens
            );
            if let Some(thought) = message
                .reasoning
                .as_deref()
                .filter(|t| !t.trim().is_empty())
            {
                stderr_line!("{dim}thinking: {}{reset}", head(thought, 6));
            }
            if let Some(text) = message.content.as_deref().filter(|t| !t.trim().is_empty()) {
                stderr_line!("{}", head(text, 12));
            }
        }
        Event::Tool {
            call, observation, ..
        } => {
            stderr_line!("{bold}→ {}{reset} {}", call.name, head(&call.arguments, 8));
            let status = match (observation.error, observation.exit_code) {
                (true, _) => "error".to_string(),
                (false, Some(code)) => format!("exit {code}"),
                (false, None) => "ok".to_string(),
            };
            stderr_line!(
                "{dim}← {status}, {} ms{reset}",
                observation.duration.as_millis()
            );
            stderr_line!("{}", indent(&head(&observation.text, 12)));
        }
        Event::TeacherFailed { error, .. } => {
            stderr_line!("teacher failed: {}", terminal_safe(error));
        }
    }
}

/// Untrusted text made safe to print on a terminal: control characters other than newline
/// and tab (ESC, NUL, BEL, carriage return, DEL, C1 codes) are shown as `\x..` / `\u{..}`
/// escapes, so a trajectory cannot move the cursor, retitle the window or hide text.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn head(text: &str, lines: usize) -> String {
    let text = terminal_safe(text);
    let all: Vec<&str> = text.lines().collect();
    if all.len() <= lines {
        return text.trim_end().to_string();
    }
    format!(
        "{}\n... ({} more lines)",
        all[..lines].join("\n"),
        all.len() - lines
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one-line summary printed at the end.
pub fn summary(t: &Trajectory, out: Option<&Path>) -> String {
    let patch = t.outcome.patch.as_deref().unwrap_or("");
    let (mut files, mut added, mut removed) = (0, 0, 0);
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            files += 1;
        } else if line.starts_with('+') && !line.starts_with("+++") {
            added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            removed += 1;
        }
    }
    let status = match &t.exit {
        ExitStatus::TeacherError(reason) => format!("teacher error ({reason})"),
        other => other.label().replace('_', " "),
    };
    let mut s = format!(
        "{status} after {} steps in {:.1}s; {} prompt + {} completion tokens; patch: {files} files, +{added} -{removed}",
        t.steps.len(),
        t.duration.as_secs_f64(),
        t.usage.prompt_tokens,
        t.usage.completion_tokens
    );
    if let Some(out) = out {
        s.push_str(&format!("; trajectory in {}", out.display()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_lines_and_tabs_stay() {
        assert_eq!(
            terminal_safe("\x1b[31mred\x07\0 \r\x7f\u{9b}2J\tok\n"),
            "\\x1b[31mred\\x07\\x00 \\r\\x7f\\u{9b}2J\tok\n"
        );
        assert!(matches!(
            terminal_safe("plain é\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
