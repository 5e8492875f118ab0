//! One module per subcommand.

pub mod export;
pub mod functions;
pub mod generate;
pub mod import;
pub mod menu;
pub mod recall;
pub mod run;
pub mod serve;
pub mod site;
pub mod status;
pub mod web;

use std::path::PathBuf;

/// Where trajforge keeps caches: `$TRAJFORGE_CACHE_DIR`, `$XDG_CACHE_HOME/trajforge`, or `~/.cache/trajforge`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRAJFORGE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("trajforge"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("trajforge"))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (`kill`, systemd, a container stop), with
/// the signal's name; both mean "stop gracefully". Never resolves if no handler can be installed.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

/// Parse a size such as `1048576`, `512K`, `2M`, `1MB`, `1MiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; use e.g. 1048576, 512K or 2M"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use K, M or G")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("2MB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }
}
