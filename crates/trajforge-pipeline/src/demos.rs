//! Demonstration issues the synthetic-PR writer imitates: the user's pool or ours.

use std::path::Path;

/// The default pool, written for trajforge.
const DEFAULT_POOL: &str = include_str!("../demos/default.jsonl");

/// One demonstration issue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Demo {
    /// Identifier (the line number when the file has none).
    #[serde(default)]
    pub id: String,
    /// The issue text.
    pub text: String,
}

/// A demonstration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a JSON object with a text.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No usable demonstration.
    #[error("{path}: no demonstrations (one JSON object per line, with a \"text\" field)")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The built-in pool.
pub fn default_pool() -> Vec<Demo> {
    // The embedded file is checked by the tests; a bad line there is a build defect.
    parse(DEFAULT_POOL, "built-in demos").unwrap_or_default()
}

/// Load a JSONL pool: each line an object with `text` (or `body`, as issue exports have),
/// and optionally `id`; blank lines are skipped.
pub fn load(path: &Path) -> Result<Vec<Demo>, DemoError> {
    let text = std::fs::read_to_string(path).map_err(|source| DemoError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

fn parse(text: &str, origin: &str) -> Result<Vec<Demo>, DemoError> {
    let mut demos = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| DemoError::Line {
            path: origin.to_string(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        let body = value
            .get("text")
            .or_else(|| value.get("body"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| err("no \"text\" string field".into()))?;
        if body.trim().is_empty() {
            return Err(err("empty text".into()));
        }
        let id = value.get("id").map_or_else(
            || format!("line-{}", i + 1),
            |v| v.as_str().map_or(v.to_string(), String::from),
        );
        demos.push(Demo {
            id,
            text: body.to_string(),
        });
    }
    if demos.is_empty() {
        return Err(DemoError::Empty {
            path: origin.to_string(),
        });
    }
    Ok(demos)
}

/// A stable digest of a pool, for refusing to resume a run with different demonstrations.
pub fn fingerprint(demos: &[Demo]) -> String {
    let mut hash = trajforge_hash::Fnv1a64::new();
    for d in demos {
        hash.write(d.id.as_bytes());
        hash.write_u8(0);
        hash.write(d.text.as_bytes());
        hash.write_u8(0);
    }
    hash.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_is_large_and_varied() {
        let pool = parse(DEFAULT_POOL, "default").expect("default pool parses");
        assert!(pool.len() >= 40, "{}", pool.len());
        let mut ids: Vec<&str> = pool.iter().map(|d| d.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), pool.len(), "ids are unique");
        let lengths: Vec<usize> = pool
            .iter()
            .map(|d| d.text.split_whitespace().count())
            .collect();
        assert!(
            lengths.iter().any(|&n| n < 40) && lengths.iter().any(|&n| n > 150),
            "{lengths:?}"
        );
        assert!(
            pool.iter().any(|d| d.text.contains("```"))
                && pool.iter().any(|d| !d.text.contains('#'))
        );
    }

    #[test]
    fn user_pools_accept_body_fields_and_report_bad_lines() {
        let ok = parse(
            "{\"body\": \"It crashes\"}\n\n{\"id\": 7, \"text\": \"Slow\"}\n",
            "f",
        )
        .expect("parse");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].id, "line-1");
        assert_eq!(ok[1].id, "7");
        let err = parse("{\"text\": \"a\"}\nnot json\n", "f.jsonl").expect_err("bad line");
        assert!(err.to_string().starts_with("f.jsonl:2: not JSON"), "{err}");
        assert!(matches!(parse("\n", "f"), Err(DemoError::Empty { .. })));
        assert_ne!(fingerprint(&ok), fingerprint(&ok[..1]));
        // Recorded from the release that wrote today's run folders (resumes compare them).
        assert_eq!(fingerprint(&default_pool()), "027168c81789572f");
        assert_eq!(fingerprint(&[]), "cbf29ce484222325");
    }
}
