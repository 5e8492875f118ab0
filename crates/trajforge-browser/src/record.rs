//! The on-disk recording of a site: pages (pages.jsonl), responses (responses.jsonl) and
//! bodies stored once by content hash (bodies/<xxh3-128 hex>), plus site.json.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::BrowserError;
use crate::lock;

/// One response as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// HTTP method.
    pub method: String,
    /// Request URL without fragment.
    pub url: String,
    /// Status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Content hash of the body file, when the response had a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body size in bytes.
    pub size: u64,
    /// Content hash of the request body (form posts, fetch bodies), when it had one: two
    /// requests to the same URL with different bodies are told apart by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
}

/// One crawled page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    /// URL after redirects, without fragment.
    pub url: String,
    /// Document title.
    pub title: String,
    /// Same-origin links, normalised (no fragment), deduplicated, in document order.
    pub links: Vec<String>,
    /// The compact accessibility snapshot.
    pub snapshot: String,
}

/// site.json: what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteMeta {
    /// Format version (1).
    pub version: u32,
    /// The origin, e.g. `http://127.0.0.1:8080`.
    pub origin: String,
    /// Where the crawl started.
    pub start_url: String,
    /// Served by trajforge's static server, which ignores query strings: replay may then
    /// answer `page?q=x` with the recorded `page`.
    pub static_site: bool,
    /// Pages in pages.jsonl.
    pub pages: usize,
    /// Responses in responses.jsonl.
    pub responses: usize,
}

/// The lookup key of a request.
pub fn key(method: &str, url: &str) -> String {
    format!("{} {}", method.to_ascii_uppercase(), strip_fragment(url))
}

/// The lookup key of a request with its body's content hash.
fn body_key(method: &str, url: &str, body_hash: Option<&str>) -> String {
    format!("{} {}", key(method, url), body_hash.unwrap_or("-"))
}

/// The content hash of a body, as recorded (xxh3-128, hex).
pub fn body_hash(body: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body))
}

fn strip_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(a, _)| a)
}

/// Appends responses and pages to a site folder while browsing live.
pub struct Recorder {
    dir: PathBuf,
    responses: Mutex<(File, HashMap<String, ()>)>,
    pages: Mutex<(File, usize)>,
}

impl Recorder {
    /// Open (creating) `dir` for appending.
    pub fn create(dir: &Path) -> Result<Recorder, BrowserError> {
        std::fs::create_dir_all(dir.join("bodies")).map_err(|e| BrowserError::store(dir, e))?;
        let open = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .map_err(|e| BrowserError::store(dir.join(name), e))
        };
        let mut seen = HashMap::new();
        for r in read_jsonl::<ResponseRecord>(&dir.join("responses.jsonl"))? {
            seen.insert(body_key(&r.method, &r.url, r.request_body.as_deref()), ());
        }
        let pages = read_jsonl::<PageRecord>(&dir.join("pages.jsonl"))?.len();
        Ok(Recorder {
            dir: dir.to_path_buf(),
            responses: Mutex::new((open("responses.jsonl")?, seen)),
            pages: Mutex::new((open("pages.jsonl")?, pages)),
        })
    }

    /// The site folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Record a response to a request with `request_body` (the first one recorded for a
    /// method, URL and request body wins).
    pub fn add_response(
        &self,
        method: &str,
        url: &str,
        request_body: Option<&[u8]>,
        status: u16,
        headers: Vec<(String, String)>,
        body: Option<&[u8]>,
    ) -> Result<(), BrowserError> {
        let request_body = request_body.map(body_hash);
        let k = body_key(method, url, request_body.as_deref());
        if lock(&self.responses).1.contains_key(&k) {
            return Ok(());
        }
        let hash = match body {
            Some(b) => {
                let h = body_hash(b);
                let path = self.dir.join("bodies").join(&h);
                if !path.exists() {
                    std::fs::write(&path, b).map_err(|e| BrowserError::store(&path, e))?;
                }
                Some(h)
            }
            None => None,
        };
        let rec = ResponseRecord {
            method: method.to_ascii_uppercase(),
            url: strip_fragment(url).to_string(),
            status,
            headers,
            body: hash,
            size: body.map_or(0, |b| b.len() as u64),
            request_body,
        };
        let mut line =
            serde_json::to_string(&rec).map_err(|e| BrowserError::store(&self.dir, e))?;
        line.push('\n');
        let mut g = lock(&self.responses);
        if g.1.insert(k, ()).is_none() {
            g.0.write_all(line.as_bytes())
                .map_err(|e| BrowserError::store(self.dir.join("responses.jsonl"), e))?;
        }
        Ok(())
    }

    /// Append a page.
    pub fn add_page(&self, page: &PageRecord) -> Result<(), BrowserError> {
        let mut line =
            serde_json::to_string(page).map_err(|e| BrowserError::store(&self.dir, e))?;
        line.push('\n');
        let mut g = lock(&self.pages);
        g.0.write_all(line.as_bytes())
            .map_err(|e| BrowserError::store(self.dir.join("pages.jsonl"), e))?;
        g.1 += 1;
        Ok(())
    }

    /// Responses recorded (including earlier runs).
    pub fn responses(&self) -> usize {
        lock(&self.responses).1.len()
    }

    /// Pages recorded (including earlier runs).
    pub fn pages(&self) -> usize {
        lock(&self.pages).1
    }

    /// Write site.json with the current counts.
    pub fn write_meta(
        &self,
        origin: &str,
        start_url: &str,
        static_site: bool,
    ) -> Result<SiteMeta, BrowserError> {
        let meta = SiteMeta {
            version: 1,
            origin: origin.to_string(),
            start_url: start_url.to_string(),
            static_site,
            pages: self.pages(),
            responses: self.responses(),
        };
        let path = self.dir.join("site.json");
        let text =
            serde_json::to_string_pretty(&meta).map_err(|e| BrowserError::store(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| BrowserError::store(&path, e))?;
        Ok(meta)
    }
}

/// A recorded site, read back for replay and for `site show`.
pub struct Recording {
    dir: PathBuf,
    meta: SiteMeta,
    responses: HashMap<String, ResponseRecord>,
    by_body: HashMap<String, ResponseRecord>,
    by_path: HashMap<String, String>,
    pages: Vec<PageRecord>,
    bodies: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Recording {
    /// Read a site folder written by a crawl.
    pub fn open(dir: &Path) -> Result<Recording, BrowserError> {
        let meta_path = dir.join("site.json");
        let text = std::fs::read_to_string(&meta_path).map_err(|e| {
            BrowserError::store(
                &meta_path,
                format!("{e} (is this a folder written by `trajforge site crawl`?)"),
            )
        })?;
        let meta: SiteMeta =
            serde_json::from_str(&text).map_err(|e| BrowserError::store(&meta_path, e))?;
        let mut responses = HashMap::new();
        let mut by_body = HashMap::new();
        let mut by_path = HashMap::new();
        for r in read_jsonl::<ResponseRecord>(&dir.join("responses.jsonl"))? {
            by_body
                .entry(body_key(&r.method, &r.url, r.request_body.as_deref()))
                .or_insert_with(|| r.clone());
            let k = key(&r.method, &r.url);
            if let Some((base, _)) = r.url.split_once('?') {
                by_path
                    .entry(key(&r.method, base))
                    .or_insert_with(|| k.clone());
            }
            responses.entry(k).or_insert(r);
        }
        let pages = read_jsonl::<PageRecord>(&dir.join("pages.jsonl"))?;
        Ok(Recording {
            dir: dir.to_path_buf(),
            meta,
            responses,
            by_body,
            by_path,
            pages,
            bodies: Mutex::new(HashMap::new()),
        })
    }

    /// site.json.
    pub fn meta(&self) -> &SiteMeta {
        &self.meta
    }

    /// The pages, in crawl order.
    pub fn pages(&self) -> &[PageRecord] {
        &self.pages
    }

    /// Number of recorded responses.
    pub fn response_count(&self) -> usize {
        self.responses.len()
    }

    /// The recorded response for a request with `body`: the one recorded for the same
    /// method, URL and body; else (a form filled differently) the first one recorded for
    /// the method and URL, as [`Recording::lookup`] finds it.
    pub fn lookup_request(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Option<&ResponseRecord> {
        let hash = body.map(body_hash);
        self.by_body
            .get(&body_key(method, url, hash.as_deref()))
            .or_else(|| self.lookup(method, url))
    }

    /// The first recorded response for a method and URL, whatever the request body. On a
    /// static site a URL with a query string falls back to the same path without it (the
    /// static server ignores queries).
    pub fn lookup(&self, method: &str, url: &str) -> Option<&ResponseRecord> {
        let k = key(method, url);
        if let Some(r) = self.responses.get(&k) {
            return Some(r);
        }
        let base = strip_fragment(url);
        let (path, _) = base.split_once('?')?;
        if !self.meta.static_site {
            return None;
        }
        self.responses.get(&key(method, path)).or_else(|| {
            self.by_path
                .get(&key(method, path))
                .and_then(|k| self.responses.get(k))
        })
    }

    /// The body of a recorded response (cached in memory after the first read).
    pub fn body(&self, rec: &ResponseRecord) -> Result<Arc<Vec<u8>>, BrowserError> {
        let Some(hash) = &rec.body else {
            return Ok(Arc::new(Vec::new()));
        };
        if let Some(b) = lock(&self.bodies).get(hash) {
            return Ok(Arc::clone(b));
        }
        let path = self.dir.join("bodies").join(hash);
        let bytes = Arc::new(std::fs::read(&path).map_err(|e| BrowserError::store(&path, e))?);
        lock(&self.bodies).insert(hash.clone(), Arc::clone(&bytes));
        Ok(bytes)
    }
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, BrowserError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BrowserError::store(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| BrowserError::store(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| BrowserError::store(path, format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}
