//! The live progress line of a run: jobs done, stages, kept and rejected, tokens, cost, ETA.

use crate::status::Status;

/// What the progress line counts: the unit of work and the stages shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressKind {
    /// "functions" or "tasks".
    pub noun: &'static str,
    /// Stage names, in pipeline order.
    pub stages: &'static [&'static str],
}

impl ProgressKind {
    /// The code pipeline's.
    pub const CODE: ProgressKind = ProgressKind {
        noun: "functions",
        stages: &["rollout1", "selfcheck", "pr", "rollout2", "verify"],
    };
    /// The web pipeline's.
    pub const WEB: ProgressKind = ProgressKind {
        noun: "tasks",
        stages: &["rollout1", "request", "rollout2", "verify"],
    };
    /// An evaluation's: the agent's episode (committed as rollout 2) and its score.
    pub const EVAL: ProgressKind = ProgressKind {
        noun: "tasks",
        stages: &["rollout2", "score"],
    };
}

/// One progress line for `s`, with an ETA from the time `elapsed_secs` this session has run.
pub fn progress_line(s: &Status, kind: ProgressKind, total: u64, elapsed_secs: f64) -> String {
    let eta = if s.done > 0 && s.done < total {
        let per = elapsed_secs / s.done as f64;
        format!(", ETA {}", human_time(per * (total - s.done) as f64))
    } else {
        String::new()
    };
    let stages: Vec<String> = kind
        .stages
        .iter()
        .map(|k| format!("{k} {}", s.stages.get(*k).copied().unwrap_or(0)))
        .collect();
    let cost = s.cost.map(|c| format!(", ${c:.2}")).unwrap_or_default();
    if let Some(e) = &s.eval {
        let rate = e
            .all
            .resolved_rate
            .map_or(String::new(), |r| format!(" ({:.1}%)", r * 100.0));
        return format!(
            "{} {}/{total} done, {} in flight | {} | resolved {} of {} hard{rate} | mean recall {} | {} tokens{cost}{eta}",
            kind.noun,
            s.done,
            s.running,
            stages.join(" "),
            e.all.resolved,
            e.all.hard_rows,
            e.all.mean_recall.map_or("-".into(), |r| format!("{r:.2}")),
            s.prompt_tokens + s.completion_tokens,
        );
    }
    format!(
        "{} {}/{total} done, {} in flight | {} | kept T2 {} T1 {} | rejected {} | {} tokens{cost}{eta}",
        kind.noun,
        s.done,
        s.running,
        stages.join(" "),
        s.kept_t2,
        s.kept_t1,
        s.rejections.values().sum::<u64>(),
        s.prompt_tokens + s.completion_tokens,
    )
}

/// Seconds as `42s`, `17m` or `2.5h`.
pub fn human_time(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0}s")
    } else if secs < 5400.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_the_largest_fitting_unit() {
        assert_eq!(human_time(42.0), "42s");
        assert_eq!(human_time(1020.0), "17m");
        assert_eq!(human_time(9000.0), "2.5h");
    }

    #[test]
    fn the_line_counts_stages_and_estimates_the_rest() {
        let mut s = Status {
            done: 2,
            running: 1,
            kept_t2: 1,
            ..Status::default()
        };
        s.stages.insert("rollout1".into(), 3);
        s.rejections.insert("selfcheck_no".into(), 1);
        s.prompt_tokens = 100;
        s.completion_tokens = 20;
        let line = progress_line(&s, ProgressKind::CODE, 4, 60.0);
        assert_eq!(
            line,
            "functions 2/4 done, 1 in flight | rollout1 3 selfcheck 0 pr 0 rollout2 0 verify 0 | kept T2 1 T1 0 | rejected 1 | 120 tokens, ETA 60s"
        );
    }
}
