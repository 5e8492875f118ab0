//! The link graph of a recorded site: links between pages, the pages linked to most, links
//! to pages that were not recorded, and pages no recorded page links to; and the report
//! `site show` prints of it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::record::Recording;

/// The link graph of a recording, borrowing its pages.
#[derive(Debug, Clone)]
pub struct SiteGraph<'a> {
    /// Links between pages (self-links left out).
    pub edges: usize,
    /// Links into each linked URL.
    pub incoming: HashMap<&'a str, usize>,
    /// Linked URLs that were not recorded, with how many links lead there.
    pub unrecorded: BTreeMap<&'a str, usize>,
}

impl Recording {
    /// The recording's link graph.
    pub fn graph(&self) -> SiteGraph<'_> {
        let pages = self.pages();
        let known: HashSet<&str> = pages.iter().map(|p| p.url.as_str()).collect();
        let mut graph = SiteGraph {
            edges: 0,
            incoming: HashMap::new(),
            unrecorded: BTreeMap::new(),
        };
        for p in pages {
            for l in p.links.iter().filter(|l| **l != p.url) {
                graph.edges += 1;
                *graph.incoming.entry(l.as_str()).or_default() += 1;
                if !known.contains(l.as_str()) {
                    *graph.unrecorded.entry(l.as_str()).or_default() += 1;
                }
            }
        }
        graph
    }
}

impl<'a> SiteGraph<'a> {
    /// Links into `url`.
    pub fn links_in(&self, url: &str) -> usize {
        self.incoming.get(url).copied().unwrap_or(0)
    }
}

/// What `site show` prints as JSON: the site's pages with their links and the unrecorded links.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteReport {
    /// The origin.
    pub origin: String,
    /// Where the crawl started.
    pub start_url: String,
    /// Whether the built-in static server served it.
    pub static_site: bool,
    /// Every page in crawl order.
    pub pages: Vec<PageLinks>,
    /// Recorded responses.
    pub responses: usize,
    /// Links between pages.
    pub edges: usize,
    /// Links to pages that were not recorded.
    pub unrecorded_links: Vec<UnrecordedLink>,
}

/// One page of a [`SiteReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageLinks {
    /// Its URL.
    pub url: String,
    /// Its title.
    pub title: String,
    /// Links out.
    pub links_out: usize,
    /// Links in.
    pub links_in: usize,
    /// Length of its snapshot.
    pub snapshot_chars: usize,
}

/// A link target that was not recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnrecordedLink {
    /// The URL.
    pub url: String,
    /// Pages linking to it.
    pub linked_from: usize,
}

impl Recording {
    /// The site's page graph as `site show` reports it.
    pub fn report(&self) -> SiteReport {
        let graph = self.graph();
        let meta = self.meta();
        SiteReport {
            origin: meta.origin.clone(),
            start_url: meta.start_url.clone(),
            static_site: meta.static_site,
            pages: self
                .pages()
                .iter()
                .map(|p| PageLinks {
                    url: p.url.clone(),
                    title: p.title.clone(),
                    links_out: p.links.len(),
                    links_in: graph.links_in(&p.url),
                    snapshot_chars: p.snapshot.len(),
                })
                .collect(),
            responses: self.response_count(),
            edges: graph.edges,
            unrecorded_links: graph
                .unrecorded
                .iter()
                .map(|(u, n)| UnrecordedLink {
                    url: (*u).to_string(),
                    linked_from: *n,
                })
                .collect(),
        }
    }
}

impl SiteReport {
    /// The report as text: counts, the ten most linked-to pages, orphans, unrecorded links
    /// and every page with its out/in links.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let short = |u: &str| {
            u.strip_prefix(self.origin.as_str())
                .unwrap_or(u)
                .to_string()
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "site {} (start {})",
            self.origin,
            short(&self.start_url)
        );
        let _ = writeln!(
            out,
            "{} pages, {} links between them, {} recorded responses{}",
            self.pages.len(),
            self.edges,
            self.responses,
            if self.static_site {
                ", served from a local folder"
            } else {
                ""
            }
        );
        let mut ranked: Vec<&PageLinks> = self.pages.iter().collect();
        ranked.sort_by_key(|p| std::cmp::Reverse(p.links_in));
        let _ = writeln!(out, "\nmost linked-to pages:");
        for p in ranked.iter().take(10) {
            let _ = writeln!(out, "  {:>4}  {}  {}", p.links_in, short(&p.url), p.title);
        }
        let orphans = self
            .pages
            .iter()
            .filter(|p| p.url != self.start_url && p.links_in == 0)
            .count();
        if orphans > 0 {
            let _ = writeln!(
                out,
                "\npages reached only by redirect or outside links: {orphans}"
            );
        }
        if !self.unrecorded_links.is_empty() {
            let _ = writeln!(
                out,
                "\nlinked but not recorded (not HTML, missing, or past the limits):"
            );
            for l in &self.unrecorded_links {
                let _ = writeln!(out, "  {}  (from {} pages)", short(&l.url), l.linked_from);
            }
        }
        let _ = writeln!(out, "\npages (in crawl order; out/in links):");
        for p in &self.pages {
            let _ = writeln!(
                out,
                "  {}  \"{}\"  {}/{}",
                short(&p.url),
                p.title,
                p.links_out,
                p.links_in
            );
        }
        out
    }
}
