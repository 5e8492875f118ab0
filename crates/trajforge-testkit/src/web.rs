//! A scripted teacher for whole web runs: it knows the site's page graph (from a crawl) and
//! answers every stage from the content of the request alone, so runs are deterministic.
//!
//! Rollout 1 picks a target page two links away from its start page (by a hash of the task),
//! walks there with `goto` along a shortest path and answers with the page's title; one task
//! in five is reported infeasible instead. The request writer asks for "the page about
//! TITLE" plus a short tag naming the page (a hash, no URL or path: titles are not unique on
//! real sites), and rollout 2 walks a shortest path to that page. What differs is the target's
//! [`WebFate`]: rollout 1 takes a detour first (partial agreement), or rollout 2 goes to
//! another page (disagreement). Hashes ignore URL origins, so a site served on another
//! loopback port gets the same fates.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use trajforge_hash::fnv1a64;

use crate::{Step, between, first_user_text};

/// One page of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPage {
    /// Its URL (no fragment).
    pub url: String,
    /// Its title.
    pub title: String,
    /// Same-site pages it links to.
    pub links: Vec<String>,
}

/// How the two rollouts relate for a target page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFate {
    /// Both walk the same shortest path: r = 1.
    Exact,
    /// Rollout 1 visits a detour page first, then the same path: same final page, recall < 1.
    Detour,
    /// Rollout 2 goes to another page.
    Wrong,
}

/// The fate of a target page, by its URL (origin ignored).
pub fn web_fate(url: &str) -> WebFate {
    match fnv1a64(strip_origins(url).as_bytes()) % 3 {
        0 => WebFate::Exact,
        1 => WebFate::Detour,
        _ => WebFate::Wrong,
    }
}

/// Whether rollout 1 reports a task infeasible (by the task text, origins ignored).
pub fn infeasible(task: &str) -> bool {
    fnv1a64(strip_origins(task).as_bytes()).is_multiple_of(5)
}

/// `text` with the scheme and host of every http(s) URL removed, so hashes do not depend on
/// the port a test server happened to get.
fn strip_origins(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("http") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let scheme = ["http://", "https://"]
            .into_iter()
            .find(|p| after.starts_with(p));
        match scheme {
            Some(p) => {
                let host = &after[p.len()..];
                let end = host.find(['/', ' ', '"', ')']).unwrap_or(host.len());
                rest = &host[end..];
            }
            None => {
                out.push_str("http");
                rest = &after[4..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The tag the request writer gives a page (a hash of its URL without origin).
fn tag(url: &str) -> String {
    let digest = fnv1a64(strip_origins(url).as_bytes());
    format!("{:08x}", digest & 0xffff_ffff)
}

fn strip_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// The scripted web teacher.
#[derive(Debug, Clone)]
pub struct WebTeacher {
    pages: BTreeMap<String, GraphPage>,
}

/// What a rollout will do: pages to go to, then the answer (or an infeasible report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Pages to `goto`, in order.
    pub gotos: Vec<String>,
    /// The answer, or `None` for `report_infeasible`.
    pub answer: Option<String>,
}

impl WebTeacher {
    /// A teacher for the site made of `pages`.
    pub fn new(pages: Vec<GraphPage>) -> Self {
        let pages = pages
            .into_iter()
            .map(|mut p| {
                p.url = strip_fragment(&p.url).to_string();
                p.links = p
                    .links
                    .iter()
                    .map(|l| strip_fragment(l).to_string())
                    .collect();
                (p.url.clone(), p)
            })
            .collect();
        WebTeacher { pages }
    }

    /// Shortest path from `from` to every reachable page (links in recorded order: deterministic).
    fn paths(&self, from: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
        paths.insert(from.to_string(), Vec::new());
        let mut queue = VecDeque::from([from.to_string()]);
        while let Some(url) = queue.pop_front() {
            let Some(page) = self.pages.get(&url) else {
                continue;
            };
            let here = paths.get(&url).cloned().unwrap_or_default();
            for link in &page.links {
                if !paths.contains_key(link) && self.pages.contains_key(link) {
                    let mut p = here.clone();
                    p.push(link.clone());
                    paths.insert(link.clone(), p);
                    queue.push_back(link.clone());
                }
            }
        }
        paths
    }

    /// The page rollout 1 of `task` aims for from `start`: two links away if possible.
    pub fn target(&self, start: &str, task: &str) -> Option<String> {
        let paths = self.paths(start);
        for depth in [2, 1] {
            let at: Vec<&String> = paths
                .iter()
                .filter(|(_, p)| p.len() == depth)
                .map(|(u, _)| u)
                .collect();
            if !at.is_empty() {
                return Some(
                    at[(fnv1a64(strip_origins(task).as_bytes()) % at.len() as u64) as usize]
                        .clone(),
                );
            }
        }
        None
    }

    fn title(&self, url: &str) -> String {
        self.pages
            .get(url)
            .map_or_else(|| url.to_string(), |p| p.title.clone())
    }

    /// Rollout 1's plan for `task` from `start`.
    pub fn plan1(&self, start: &str, task: &str) -> Plan {
        let Some(target) = self.target(start, task).filter(|_| !infeasible(task)) else {
            return Plan {
                gotos: Vec::new(),
                answer: None,
            };
        };
        let path = self.paths(start).remove(&target).unwrap_or_default();
        let title = self.title(&target);
        let mut gotos = Vec::new();
        if web_fate(&target) == WebFate::Detour {
            // A neighbour of the start page off the path, visited and left again.
            if let Some(d) = self.pages.get(start).and_then(|p| {
                p.links
                    .iter()
                    .find(|l| !path.contains(l) && *l != start && self.pages.contains_key(*l))
            }) {
                gotos.push(d.clone());
            }
        }
        gotos.extend(path);
        Plan {
            gotos,
            answer: Some(title),
        }
    }

    /// Rollout 2's plan for the page tagged `wanted` (see `tag`) from `start`.
    pub fn plan2(&self, start: &str, wanted: &str) -> Plan {
        let paths = self.paths(start);
        // Nearest first, then by URL: deterministic.
        let mut by_depth: Vec<(&String, &Vec<String>)> = paths.iter().collect();
        by_depth.sort_by_key(|(u, p)| (p.len(), (*u).clone()));
        let Some((found, path)) = by_depth.iter().find(|(u, _)| tag(u) == wanted) else {
            return Plan {
                gotos: Vec::new(),
                answer: None,
            };
        };
        if web_fate(found) != WebFate::Wrong {
            return Plan {
                gotos: (*path).clone(),
                answer: Some(self.title(found)),
            };
        }
        // Another page as far away, under another title, in another part of the site.
        let title = self.title(found);
        let other = by_depth
            .iter()
            .find(|(u, p)| {
                p.len() == path.len()
                    && u != found
                    && self.title(u) != title
                    && p.first() != path.first()
            })
            .or_else(|| {
                by_depth
                    .iter()
                    .find(|(u, _)| u != found && self.title(u) != title)
            });
        match other {
            Some((u, p)) => Plan {
                gotos: (*p).clone(),
                answer: Some(self.title(u)),
            },
            None => Plan {
                gotos: Vec::new(),
                answer: None,
            },
        }
    }

    /// The answer to one chat-completions request.
    pub fn answer(&self, req: &Value) -> Step {
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let has_tools = req
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let task = first_user_text(req);
        // The task message ends with the start page's snapshot: decide by the prompt alone, so
        // that fates do not depend on how the browser rendered the page.
        let task = task.split(START_PAGE).next().unwrap_or(task);
        if !has_tools {
            // The request writer: the final page's title and tag, nothing of the path.
            let title = between(task, "ended on the page \"", "\"").unwrap_or("the page");
            let url = between(task, "(http", ")")
                .map(|r| format!("http{r}"))
                .unwrap_or_default();
            return Step::text(format!(
                "Please help me find the page about \"{title}\" [{}].",
                tag(&url)
            ));
        }
        let start = between(task, "(http", ")")
            .map(|rest| format!("http{rest}"))
            .unwrap_or_default();
        let start = start.as_str();
        let wanted = task
            .split("A visitor asks you:")
            .nth(1)
            .and_then(|request| between(request, "\" [", "]"));
        let plan = match wanted {
            Some(wanted) => self.plan2(start, wanted),
            None => self.plan1(start, task),
        };
        let step = messages.iter().filter(|m| m["role"] == "assistant").count();
        match plan.gotos.get(step) {
            Some(url) => Step::tool_call("goto", json!({"url": url})),
            None => match plan.answer {
                Some(a) => Step::tool_call("answer", json!({"text": a})),
                None => Step::tool_call(
                    "report_infeasible",
                    json!({"reason": "This site does not offer that."}),
                ),
            },
        }
    }
}

/// Where a rollout's task message turns to the start page's observation (URL, title,
/// snapshot) that the web pipeline appends to the prompt.
const START_PAGE: &str = "\n\nURL: http";

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> WebTeacher {
        let page = |u: &str, t: &str, links: &[&str]| GraphPage {
            url: format!("http://h/{u}"),
            title: t.into(),
            links: links.iter().map(|l| format!("http://h/{l}")).collect(),
        };
        WebTeacher::new(vec![
            page("", "Home", &["a", "b", "c"]),
            page("a", "A", &["a1", "a2", ""]),
            page("b", "B", &["b1#top", ""]),
            page("c", "C", &[""]),
            page("a1", "A one", &["a"]),
            page("a2", "A two", &["a"]),
            page("b1", "B one", &["b"]),
        ])
    }

    #[test]
    fn rollouts_follow_shortest_paths_to_the_same_page() {
        let t = site();
        let mut fates = std::collections::BTreeSet::new();
        for task in [
            "find x", "find y", "find z", "w", "v", "u", "t", "s", "r", "q",
        ] {
            let p1 = t.plan1("http://h/", task);
            if p1.answer.is_none() {
                assert!(infeasible(task));
                continue;
            }
            let target = p1.gotos.last().expect("a path").clone();
            let p2 = t.plan2("http://h/", &tag(&target));
            fates.insert(format!("{:?}", web_fate(&target)));
            match web_fate(&target) {
                WebFate::Exact => assert_eq!(p1, p2),
                WebFate::Detour => {
                    assert_eq!(p1.gotos[1..], p2.gotos[..]);
                    assert_eq!(p1.answer, p2.answer);
                }
                WebFate::Wrong => assert_ne!(p2.gotos.last(), Some(&target)),
            }
            assert_eq!(Some(t.title(&target)), p1.answer);
        }
        assert!(fates.len() >= 2, "{fates:?}");
    }

    #[test]
    fn hashes_ignore_origins() {
        assert_eq!(
            strip_origins("on (http://127.0.0.1:4000/a.html) and https://x.org/b"),
            "on (/a.html) and /b"
        );
        assert_eq!(
            tag("http://127.0.0.1:1/p.html"),
            tag("http://127.0.0.1:2/p.html")
        );
    }
}
