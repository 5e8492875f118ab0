//! The trajectory list: filters, sorting and pages, all in the query string.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::html::{esc, num, query};
use crate::query::{ListQuery, ListRow, PAGE_SIZE, Sort};

/// The list's body.
pub fn body(
    q: &ListQuery,
    rows: &[ListRow],
    total: u64,
    choices: &BTreeMap<&'static str, Vec<String>>,
) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<h1>Trajectories</h1><form class=\"filters\" method=\"get\" action=\"/list\">"
    );
    select(
        &mut o,
        "kept",
        "verdict",
        q.label("kept"),
        &["kept".into(), "rejected".into()],
    );
    let empty = Vec::new();
    select(
        &mut o,
        "reason",
        "outcome",
        q.label("reason"),
        choices.get("reason").unwrap_or(&empty),
    );
    select(
        &mut o,
        "rollout",
        "rollout",
        q.label("rollout"),
        choices.get("rollout").unwrap_or(&empty),
    );
    select(
        &mut o,
        "exit",
        "exit",
        q.label("exit"),
        choices.get("exit").unwrap_or(&empty),
    );
    select(
        &mut o,
        "tests",
        "tests",
        q.label("tests"),
        &["agree".into(), "disagree".into()],
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let _ = write!(
        o,
        "<label>bug type / intent <input name=\"entry\" value=\"{}\" size=\"18\"></label>\
         <label>r from <input name=\"rmin\" value=\"{}\" size=\"4\" inputmode=\"decimal\"></label>\
         <label>to <input name=\"rmax\" value=\"{}\" size=\"4\" inputmode=\"decimal\"></label>",
        esc(q.label("entry")),
        esc(&opt(q.rmin)),
        esc(&opt(q.rmax))
    );
    let sorts = ["id", "recall", "steps", "job"].map(String::from);
    select(&mut o, "sort", "sort", q.sort.as_str(), &sorts);
    select(
        &mut o,
        "dir",
        "order",
        if q.desc { "desc" } else { "" },
        &["desc".into()],
    );
    o.push_str("<button type=\"submit\">Apply</button> <a href=\"/list\">clear</a></form>");
    let first = q.page * PAGE_SIZE;
    let _ = write!(
        o,
        "<p class=\"count\"><span id=\"list-total\">{total}</span> trajectories{}</p>",
        if total > 0 {
            format!(
                ", showing {}–{}",
                first + 1,
                (first + rows.len()).min(total as usize)
            )
        } else {
            String::new()
        }
    );
    o.push_str("<table class=\"list\" id=\"list\"><thead><tr>");
    for (key, label) in [
        (Some(Sort::Id), "id"),
        (Some(Sort::Job), "job"),
        (None, "subject"),
        (None, "bug type / intent"),
        (None, "rollout"),
        (None, "exit"),
        (Some(Sort::Steps), "steps"),
        (Some(Sort::Recall), "r"),
        (None, "verdict"),
        (None, "outcome"),
        (None, "tests"),
        (None, "sample"),
    ] {
        match key {
            Some(k) => {
                let mut next = q.clone();
                next.desc = q.sort == k && !q.desc;
                next.sort = k;
                let _ = write!(
                    o,
                    "<th><a href=\"/list?{}\">{label}</a></th>",
                    esc(&link(&next, 0))
                );
            }
            None => {
                let _ = write!(o, "<th>{label}</th>");
            }
        }
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            o,
            "<tr class=\"row {}\" data-id=\"{}\"><td><a class=\"open\" href=\"/job/{}#t{}\">{}</a></td>\
             <td>{}·{}</td><td class=\"subject\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"r\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/sample/{}\">view</a></td></tr>",
            if r.kept { "kept" } else { "rejected" },
            r.id,
            r.job_id,
            r.id,
            r.id,
            r.job_id,
            r.attempt,
            esc(&r.subject),
            esc(r.entry.as_deref().unwrap_or("")),
            esc(&r.rollout),
            esc(&r.exit),
            r.steps.map(|s| s.to_string()).unwrap_or_default(),
            num(r.recall, 2),
            if r.kept { "kept" } else { "rejected" },
            esc(r.outcome.as_deref().unwrap_or("")),
            match r.tests_agree {
                Some(true) => "agree",
                Some(false) => "disagree",
                None => "",
            },
            r.id
        );
    }
    o.push_str("</tbody></table><nav class=\"pages\">");
    let pages = (total as usize).div_ceil(PAGE_SIZE).max(1);
    if q.page > 0 {
        let _ = write!(
            o,
            "<a rel=\"prev\" href=\"/list?{}\">← previous</a> ",
            esc(&link(q, q.page - 1))
        );
    }
    let _ = write!(o, "page {} of {pages}", q.page + 1);
    if q.page + 1 < pages {
        let _ = write!(
            o,
            " <a rel=\"next\" href=\"/list?{}\">next →</a>",
            esc(&link(q, q.page + 1))
        );
    }
    o.push_str("</nav>");
    o
}

/// The query string of `q` at `page`.
fn link(q: &ListQuery, page: usize) -> String {
    let pairs = q.pairs(page);
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    query(&refs)
}

fn select(o: &mut String, name: &str, label: &str, current: &str, values: &[String]) {
    let _ = write!(
        o,
        "<label>{} <select name=\"{}\"><option value=\"\">any</option>",
        esc(label),
        esc(name)
    );
    let mut seen = false;
    for v in values {
        let sel = if v == current {
            seen = true;
            " selected"
        } else {
            ""
        };
        let _ = write!(o, "<option value=\"{}\"{sel}>{}</option>", esc(v), esc(v));
    }
    // A value from a link that the menu does not list still shows, selected.
    if !current.is_empty() && !seen {
        let _ = write!(
            o,
            "<option value=\"{}\" selected>{}</option>",
            esc(current),
            esc(current)
        );
    }
    o.push_str("</select></label>");
}
