//! Which pages of a crawled site become held-out tasks: every page reachable from the start
//! page by recorded links, in a seeded order that follows the pages' paths on the site (so
//! the same seed draws the same tasks wherever the site was served), each with a shortest
//! route from the start page and a drawn intent (reach the page, or find a fact on it).

use std::collections::{HashMap, VecDeque};

use trajforge_browser::PageRecord;
use trajforge_eval::WebIntent;

use crate::web::{normalize_url, site_path};

/// A page that may become a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the target in the recording's pages.
    pub page: usize,
    /// The recorded URLs of a shortest route from the start page (excluded) to the target.
    pub route: Vec<String>,
    /// What the task asks.
    pub intent: WebIntent,
}

/// The page `start_url` names among `pages` (URLs normalised), else the first page.
pub fn start_page(pages: &[PageRecord], start_url: &str) -> Option<usize> {
    let start = normalize_url(start_url);
    pages
        .iter()
        .position(|p| normalize_url(&p.url) == start)
        .or((!pages.is_empty()).then_some(0))
}

/// Every page reachable from `pages[start]` other than itself, each page once (URLs
/// normalised), in the order `seed` draws by site path.
pub fn candidates(pages: &[PageRecord], start: usize, seed: u64) -> Vec<Candidate> {
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, p) in pages.iter().enumerate() {
        index.entry(normalize_url(&p.url)).or_insert(i);
    }
    // Breadth first over recorded links, in document order: shortest routes, deterministic.
    let mut parent: HashMap<usize, usize> = HashMap::from([(start, start)]);
    let mut queue = VecDeque::from([start]);
    let mut reached = Vec::new();
    while let Some(i) = queue.pop_front() {
        for link in &pages[i].links {
            let Some(&j) = index.get(&normalize_url(link)) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(j) {
                e.insert(i);
                queue.push_back(j);
                reached.push(j);
            }
        }
    }
    let key = |i: usize| site_path(&normalize_url(&pages[i].url));
    let mut out: Vec<Candidate> = reached
        .into_iter()
        .map(|page| {
            let mut route = vec![pages[page].url.clone()];
            let mut at = page;
            while let Some(&p) = parent.get(&at).filter(|&&p| p != start) {
                route.push(pages[p].url.clone());
                at = p;
            }
            route.reverse();
            let intent = match trajforge_hash::draw(seed, &key(page), 0, "web-task-intent", 2) {
                0 => WebIntent::Navigate,
                _ => WebIntent::Answer,
            };
            Candidate {
                page,
                route,
                intent,
            }
        })
        .collect();
    out.sort_by_cached_key(|c| {
        let k = key(c.page);
        (trajforge_hash::draw(seed, &k, 0, "web-task", usize::MAX), k)
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn site(origin: &str) -> Vec<PageRecord> {
        let page = |u: &str, links: &[&str]| PageRecord {
            url: format!("{origin}/{u}"),
            title: u.to_string(),
            links: links.iter().map(|l| format!("{origin}/{l}")).collect(),
            snapshot: String::new(),
        };
        vec![
            page("index.html", &["a.html", "b.html", "index.html"]),
            page("a.html", &["a1.html", "index.html"]),
            page("b.html", &["b1.html#top", "a.html"]),
            page("a1.html", &["a2.html"]),
            page("a2.html", &[]),
            page("b1.html", &[]),
            page("orphan.html", &[]),
        ]
    }

    #[test]
    fn every_reachable_page_once_with_a_shortest_route() {
        let pages = site("http://h");
        let start = start_page(&pages, "http://h/").unwrap();
        assert_eq!(start, 0);
        let c = candidates(&pages, start, 3);
        let mut targets: Vec<&str> = c.iter().map(|c| pages[c.page].title.as_str()).collect();
        targets.sort_unstable();
        assert_eq!(
            targets,
            ["a.html", "a1.html", "a2.html", "b.html", "b1.html"]
        );
        let a2 = c.iter().find(|c| pages[c.page].title == "a2.html").unwrap();
        assert_eq!(
            a2.route,
            ["http://h/a.html", "http://h/a1.html", "http://h/a2.html"]
        );
        let b1 = c.iter().find(|c| pages[c.page].title == "b1.html").unwrap();
        assert_eq!(b1.route, ["http://h/b.html", "http://h/b1.html"]);
    }

    #[test]
    fn the_draw_follows_the_seed_and_site_paths_not_the_origin() {
        let (a, b) = (site("http://127.0.0.1:4100"), site("http://localhost:5200"));
        let order = |pages: &[PageRecord], seed| -> Vec<(String, WebIntent)> {
            candidates(pages, 0, seed)
                .iter()
                .map(|c| (pages[c.page].title.clone(), c.intent))
                .collect()
        };
        assert_eq!(order(&a, 9), order(&b, 9));
        let seeds: std::collections::BTreeSet<Vec<(String, WebIntent)>> =
            (0..8).map(|s| order(&a, s)).collect();
        assert!(seeds.len() > 1, "the seed changes the draw");
        let intents: std::collections::BTreeSet<WebIntent> =
            (0..8).flat_map(|s| order(&a, s)).map(|(_, i)| i).collect();
        assert_eq!(intents.len(), 2, "both intents are drawn");
    }
}
