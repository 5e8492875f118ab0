//! The search page: a query box and the trajectories whose text matches.

use std::fmt::Write;

use crate::html::esc;
use crate::search::{Found, MARK_END, MARK_START};

/// The search page's body.
pub fn body(q: &str, found: &Found) -> String {
    let hits = &found.hits;
    let mut o = String::new();
    let _ = write!(
        o,
        "<h1>Search</h1><form class=\"filters\" method=\"get\" action=\"/search\">\
         <input id=\"q\" name=\"q\" value=\"{}\" size=\"50\" placeholder=\"words in reasoning, commands, observations, PR text\" autofocus> \
         <button type=\"submit\">Search</button></form>",
        esc(q)
    );
    if q.trim().is_empty() {
        return o;
    }
    let _ = write!(
        o,
        "<p class=\"count\"><span id=\"hit-count\">{}</span> matching trajectories{}</p><ol class=\"hits list\" id=\"list\">",
        hits.len(),
        if !found.ranked {
            " (more than 5,000 match: the first by id are shown; add words to rank them)"
        } else if hits.len() >= crate::SEARCH_LIMIT {
            " (the best shown)"
        } else {
            ""
        }
    );
    for h in hits {
        let _ = write!(
            o,
            "<li class=\"row\" data-id=\"{}\"><a class=\"open\" href=\"/job/{}#t{}\">trajectory {} · job {} · {}</a><p class=\"snippet\">{}</p></li>",
            h.id,
            h.job_id,
            h.id,
            h.id,
            h.job_id,
            esc(&h.rollout),
            marked(&h.snippet)
        );
    }
    o.push_str("</ol>");
    o
}

/// The snippet escaped, then its match markers turned into `<mark>` elements.
fn marked(snippet: &str) -> String {
    esc(snippet)
        .replace(MARK_START, "<mark>")
        .replace(MARK_END, "</mark>")
}
