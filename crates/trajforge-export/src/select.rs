//! Which trajectories become training data: the filters SERA used, each switchable, with
//! a count of what each removed.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Selection settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filters {
    /// Rollouts to export (`t1`, `t2`).
    pub rollouts: Vec<String>,
    /// T2 kept when r >= this (instead of the run's own verdict).
    pub min_recall: Option<f64>,
    /// Only trajectories that ended with a submit.
    pub require_submit: bool,
    /// Drop patches with more changed lines than this.
    pub max_patch_lines: Option<usize>,
    /// Drop trajectories whose tool responses average more tokens than this.
    pub max_tool_tokens: Option<f64>,
    /// Most samples per rollout, taken fitting samples first, then truncated ones by ratio.
    pub mix: Vec<(String, usize)>,
    /// Keep only the first of trajectories with byte-identical patches (per rollout).
    pub dedup: bool,
    /// Repositories to leave out (decontamination), normalised.
    pub exclude_repos: Vec<String>,
    /// Token limit per sample; longer ones are truncated.
    pub max_tokens: Option<usize>,
    /// Truncated samples are kept down to this ratio.
    pub min_ratio: f64,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            rollouts: vec!["t1".into(), "t2".into()],
            min_recall: None,
            require_submit: true,
            max_patch_lines: Some(40),
            max_tool_tokens: Some(600.0),
            mix: Vec::new(),
            dedup: true,
            exclude_repos: Vec::new(),
            max_tokens: Some(32768),
            min_ratio: 0.88,
        }
    }
}

/// Names of the filters, in the order they apply.
pub const FILTER_ORDER: [&str; 9] = [
    "rollout",
    "verdict",
    "not_submitted",
    "patch_lines",
    "excluded_repo",
    "duplicate_patch",
    "tool_tokens",
    "too_long",
    "mix",
];

/// What is wrong with a `--mix` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// A part without `=`.
    #[error("{0:?}: expected ROLLOUT=COUNT")]
    Pair(String),
    /// A rollout other than t1 and t2.
    #[error("{0:?}: the rollouts are t1 and t2")]
    Rollout(String),
    /// A count that is not a number.
    #[error("{0:?}: not a count")]
    Count(String),
}

/// Parse `t2=3000,t1=5000`.
pub fn parse_mix(spec: &str) -> Result<Vec<(String, usize)>, MixError> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| MixError::Pair(part.to_string()))?;
            let k = k.trim().to_lowercase();
            if k != "t1" && k != "t2" {
                return Err(MixError::Rollout(k));
            }
            let n = v
                .trim()
                .parse::<usize>()
                .map_err(|_| MixError::Count(v.to_string()))?;
            Ok((k, n))
        })
        .collect()
}

/// A repository name reduced for comparison: lower case, no scheme, host, `.git` or slashes
/// at the ends; `owner/name` when it has an owner.
pub fn normalize_repo(repo: &str) -> String {
    let r = repo.trim().trim_end_matches('/').to_lowercase();
    let r = r.strip_suffix(".git").unwrap_or(&r);
    let parts: Vec<&str> = r.split(['/', ':']).filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [.., owner, name] => format!("{owner}/{name}"),
    }
}

/// Whether `repo` is in the exclusion list (an entry without owner matches any owner).
pub fn excluded(repo: &str, list: &[String]) -> bool {
    let n = normalize_repo(repo);
    let name = n.rsplit('/').next().unwrap_or(&n);
    list.iter()
        .any(|e| if e.contains('/') { *e == n } else { e == name })
}

/// What the first pass learns about one trajectory: small, so memory stays flat.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Trajectory row id.
    pub id: i64,
    /// `t1` or `t2`.
    pub rollout: String,
    /// The first filter that removed it, if a per-sample filter did.
    pub removed: Option<&'static str>,
    /// Hash of the patch, for deduplication.
    pub patch_hash: Option<u64>,
    /// Tokens kept, all tokens, messages kept, messages, mean tool tokens (when counted).
    pub measure: Option<crate::tokens::Measure>,
    /// Line recall.
    pub recall: Option<f64>,
    /// Menu entry id.
    pub menu_entry: Option<String>,
    /// Teacher model.
    pub teacher: String,
    /// Changed lines of the patch (`None` when it does not parse).
    pub patch_lines: Option<usize>,
    /// Intent and start page (web runs).
    pub web: Option<(String, String)>,
}

impl Key {
    /// Kept messages / all messages (1 without a token limit).
    pub fn ratio(&self) -> f64 {
        self.measure.map_or(1.0, |m| m.ratio())
    }
}

/// Why a filter removed rows, by how much, and the option that keeps them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterNote {
    /// The filter.
    pub filter: String,
    /// Rows it removed.
    pub removed: u64,
    /// What the removed rows had against the limit, e.g. "mean 1432 tokens per tool response
    /// (limit 600)".
    pub found: String,
    /// The option that keeps them.
    pub keep_with: String,
}

/// Notes for the filters that removed rows when most rows were removed (at least half of
/// the trajectories), so an almost empty export says why.
pub fn notes(keys: &[Key], f: &Filters, written: u64) -> Vec<FilterNote> {
    let total = keys.len() as u64;
    if total == 0 || written * 2 > total {
        return Vec::new();
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    FILTER_ORDER
        .iter()
        .filter_map(|&name| {
            let removed: Vec<&Key> = keys.iter().filter(|k| k.removed == Some(name)).collect();
            if removed.is_empty() {
                return None;
            }
            let (found, keep_with) = match name {
                "rollout" => (
                    format!("rollouts other than {}", f.rollouts.join(",")),
                    "--rollouts t1,t2".to_string(),
                ),
                "verdict" => (
                    match f.min_recall {
                        Some(r) => format!("T2 recall below {r} or T1 self-check failed"),
                        None => "rejected by the run's verdict (T1 self-check, T2 r below the run's threshold)".to_string(),
                    },
                    "--min-recall R (T2 rows with r >= R)".to_string(),
                ),
                "not_submitted" => (
                    "episodes that ended without a submit".to_string(),
                    "--require-submit false".to_string(),
                ),
                "patch_lines" => {
                    let lines: Vec<f64> = removed
                        .iter()
                        .filter_map(|k| k.patch_lines.map(|n| n as f64))
                        .collect();
                    (
                        format!(
                            "mean {:.0} changed lines per patch (limit {})",
                            mean(&lines),
                            f.max_patch_lines.unwrap_or(0)
                        ),
                        "--max-patch-lines N (0: off)".to_string(),
                    )
                }
                "excluded_repo" => (
                    "repositories in the exclusion list".to_string(),
                    "leave out --exclude-repos".to_string(),
                ),
                "duplicate_patch" => (
                    "patches identical to an earlier row's".to_string(),
                    "--dedup false".to_string(),
                ),
                "tool_tokens" => {
                    let found: Vec<f64> = removed
                        .iter()
                        .filter_map(|k| k.measure.map(|m| m.tool_tokens_mean))
                        .collect();
                    (
                        format!(
                            "mean {:.0} tokens per tool response (limit {:.0})",
                            mean(&found),
                            f.max_tool_tokens.unwrap_or(0.0)
                        ),
                        "--max-tool-tokens N above that mean (0: off)".to_string(),
                    )
                }
                "too_long" => {
                    let found: Vec<f64> = removed
                        .iter()
                        .filter_map(|k| k.measure.map(|m| m.total_tokens as f64))
                        .collect();
                    (
                        format!(
                            "mean {:.0} tokens per sample (limit {}, truncated kept down to ratio {})",
                            mean(&found),
                            f.max_tokens.unwrap_or(0),
                            f.min_ratio
                        ),
                        "--max-tokens N (0: off) or a lower --min-ratio".to_string(),
                    )
                }
                _ => (
                    "over the --mix caps".to_string(),
                    "raise or leave out --mix".to_string(),
                ),
            };
            Some(FilterNote {
                filter: name.to_string(),
                removed: removed.len() as u64,
                found,
                keep_with,
            })
        })
        .collect()
}

/// The decision: which ids are written, and how many each filter removed.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Selected trajectory ids with how many messages to keep.
    pub selected: HashMap<i64, usize>,
    /// Removed per filter name.
    pub removed: BTreeMap<&'static str, u64>,
}

/// Apply the set-wide filters (dedup, tool tokens, length, mix) to the first pass's keys.
pub fn plan(keys: &mut [Key], f: &Filters) -> Plan {
    keys.sort_by_key(|k| k.id);
    let mut removed: BTreeMap<&'static str, u64> = FILTER_ORDER.iter().map(|n| (*n, 0)).collect();
    let mut seen: HashSet<(String, u64)> = HashSet::new();
    for k in keys.iter_mut() {
        if k.removed.is_some() {
            continue;
        }
        if f.dedup
            && let Some(h) = k.patch_hash
            && !seen.insert((k.rollout.clone(), h))
        {
            k.removed = Some("duplicate_patch");
            continue;
        }
        if let (Some(max), Some(m)) = (f.max_tool_tokens, k.measure)
            && m.tool_tokens_mean > max
        {
            k.removed = Some("tool_tokens");
            continue;
        }
        if let Some(m) = k.measure
            && (m.keep == 0 || (m.keep < m.messages && m.ratio() < f.min_ratio))
        {
            k.removed = Some("too_long");
        }
    }
    // Fitting samples first (in store order), then truncated ones by ratio, highest first.
    let mut order: Vec<usize> = (0..keys.len())
        .filter(|&i| keys[i].removed.is_none())
        .collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (&keys[a], &keys[b]);
        kb.ratio()
            .partial_cmp(&ka.ratio())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(ka.id.cmp(&kb.id))
    });
    let caps: HashMap<&str, usize> = f.mix.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for i in order {
        let k = &mut keys[i];
        if let Some(cap) = caps.get(k.rollout.as_str()) {
            let n = taken.entry(k.rollout.clone()).or_default();
            if *n >= *cap {
                k.removed = Some("mix");
                continue;
            }
            *n += 1;
        }
    }
    let mut selected = HashMap::new();
    for k in keys.iter() {
        match k.removed {
            Some(name) => *removed.entry(name).or_default() += 1,
            None => {
                selected.insert(k.id, k.measure.map_or(usize::MAX, |m| m.keep));
            }
        }
    }
    Plan { selected, removed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Measure;

    fn key(id: i64, rollout: &str, keep: usize, n: usize, hash: u64) -> Key {
        Key {
            id,
            rollout: rollout.into(),
            removed: None,
            patch_hash: Some(hash),
            measure: Some(Measure {
                total_tokens: 10,
                tokens: 10,
                keep,
                messages: n,
                tool_tokens_mean: 5.0,
            }),
            recall: None,
            menu_entry: None,
            teacher: "m".into(),
            patch_lines: Some(2),
            web: None,
        }
    }

    #[test]
    fn mix_takes_fitting_then_best_truncated_and_dedups_per_rollout() {
        let mut keys = vec![
            key(1, "t2", 90, 100, 1),
            key(2, "t2", 10, 10, 2),
            key(3, "t2", 95, 100, 3),
            key(4, "t2", 50, 100, 4),
            key(5, "t2", 10, 10, 2),
            key(6, "t1", 10, 10, 2),
        ];
        let f = Filters {
            mix: vec![("t2".into(), 2)],
            ..Filters::default()
        };
        let p = plan(&mut keys, &f);
        let mut ids: Vec<i64> = p.selected.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 3, 6]);
        assert_eq!(p.removed["duplicate_patch"], 1);
        assert_eq!(p.removed["too_long"], 1);
        assert_eq!(p.removed["mix"], 1);
    }

    #[test]
    fn mix_and_repo_parsing() {
        assert_eq!(
            parse_mix("t2=3000, t1=5000").unwrap_or_default(),
            vec![("t2".to_string(), 3000), ("t1".to_string(), 5000)]
        );
        assert!(parse_mix("t3=1").is_err());
        assert!(parse_mix("t1").is_err());
        assert_eq!(
            normalize_repo("https://github.com/Django/django.git"),
            "django/django"
        );
        assert!(excluded(
            "git@github.com:sympy/sympy.git",
            &["sympy/sympy".into()]
        ));
        assert!(excluded("/home/me/src/sympy", &["sympy".into()]));
        assert!(!excluded("/home/me/src/sympy", &["other/sympy".into()]));
    }
}
