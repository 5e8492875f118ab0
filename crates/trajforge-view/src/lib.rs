//! `trajforge view`: a local, read-only web application over a run store.
//!
//! [`Viewer`] answers requests (a pure function of the store's current content, so the pages
//! follow a live run: every request opens a run folder's database read-only and closes it; a
//! PostgreSQL run is read through one connection for the pages and one for the background
//! task, everything through the store's typed reads, a batch at a time);
//! [`server`] serves it over HTTP/1 with hyper on a loopback address. The pages:
//! the overview (the numbers of `status` with server-drawn SVG plots), the trajectory list
//! (filters, sorting, pages, all in the query string), full-text search (an FTS5 index in a
//! temporary side database, see [`search`]), one job's story (timelines, the synthetic PR, P1
//! beside P2 with each line marked as the recall counted it) and the training sample in an
//! export format with its loss mask. An evaluation's folder also gets its result per task and
//! seed, and (given another evaluation) the comparison `trajforge eval compare` makes.
//!
//! Safety: trajectory content is untrusted. Every string from the store goes through
//! [`html::esc`]; URLs from trajectories are shown as text, never as links; the only script
//! is the embedded `/static/app.js`, and every page carries a Content-Security-Policy that
//! allows nothing else (no inline script, no inline style, nothing from another origin).

pub mod html;
pub mod pages;
pub mod query;
pub mod search;
pub mod server;
pub mod svg;
pub mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trajforge_export::{Format, Sample};
use trajforge_pipeline::prepare;
use trajforge_pipeline::status;
use trajforge_store::{Location, Store, StoreError};

use crate::html::{Section, page};
use crate::search::SearchIndex;

/// Search results shown at most.
pub const SEARCH_LIMIT: usize = 100;

/// The Content-Security-Policy of every response: only this origin's script and style files,
/// no inline script or style, no plugins, no framing, forms only to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded script (keyboard navigation).
pub const APP_JS: &str = include_str!("../static/app.js");
/// The embedded style sheet.
pub const STYLE_CSS: &str = include_str!("../static/style.css");

/// Errors of the viewer.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The folder holds no run.
    #[error("{0}: not a run folder (no trajforge.db)")]
    NotARun(PathBuf),
    /// The PostgreSQL database holds no run of that name.
    #[error("{location}: no such run in this database")]
    NoSuchRun {
        /// The database (password hidden) and run.
        location: String,
        /// The runs the database holds.
        runs: Vec<String>,
    },
    /// The run store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index's folder could not be made.
    #[error("cannot create the search index: {0}")]
    Index(#[source] std::io::Error),
    /// The search index failed.
    #[error("search index: {0}")]
    Search(#[source] rusqlite::Error),
    /// The student's tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] trajforge_export::ExportError),
    /// The server could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Content-Type header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }
}

/// What the overview shows, computed from the store at one moment.
#[derive(Debug)]
pub struct Overview {
    key: trajforge_store::ChangeMark,
    took: std::time::Duration,
    /// The run's status, as `trajforge status` computes it.
    pub status: status::Status,
    /// The recall threshold of the run.
    pub threshold: Option<f64>,
    /// When jobs finished (ms since the epoch), in order.
    pub finished: Vec<i64>,
}

/// The built-in demonstration pool when the run used it (its fingerprint is in the run's
/// settings); a run given its own pool gets none (the file is not known here).
fn run_demos(store: &Store) -> Vec<trajforge_pipeline::demos::Demo> {
    let pool = trajforge_pipeline::demos::default_pool();
    let used = trajforge_export::run_settings(store)
        .ok()
        .and_then(|v| v.get("demos").and_then(|d| d.as_str()).map(str::to_string));
    if used.as_deref() == Some(trajforge_pipeline::demos::fingerprint(&pool).as_str()) {
        pool
    } else {
        Vec::new()
    }
}

/// Where the viewer reads its run.
enum Source {
    /// A run folder: each request opens its SQLite file read-only and closes it.
    Folder(PathBuf),
    /// A PostgreSQL run: one connection for the pages, another for the background task (so
    /// a long status computation or index batch never holds up a page).
    Shared {
        pages: Arc<Store>,
        background: Arc<Store>,
    },
}

/// The viewer of one run.
pub struct Viewer {
    source: Source,
    name: String,
    index: Arc<SearchIndex>,
    overview: std::sync::Mutex<Option<Arc<Overview>>>,
    /// Held while the overview is computed, so a page and the background task never compute
    /// it twice at once (the second takes the first one's result).
    computing: std::sync::Mutex<()>,
    tokens: Option<(trajforge_export::StudentTokenizer, Option<usize>)>,
    compare: Option<PathBuf>,
}

impl Viewer {
    /// A viewer of the run in `dir` (which must hold a run store), with an empty search index.
    pub fn open(dir: &Path) -> Result<Viewer, ViewError> {
        Viewer::open_at(&Location::Folder(dir.to_path_buf()))
    }

    /// A viewer of the run at `location` (a run folder, or a run of a PostgreSQL database),
    /// with an empty search index.
    pub fn open_at(location: &Location) -> Result<Viewer, ViewError> {
        let (source, name) = match location {
            Location::Folder(dir) => {
                if Store::open_read_only(dir)?.is_none() {
                    return Err(ViewError::NotARun(dir.to_path_buf()));
                }
                let name = dir
                    .canonicalize()
                    .unwrap_or_else(|_| dir.to_path_buf())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dir.display().to_string());
                (Source::Folder(dir.to_path_buf()), name)
            }
            Location::Postgres { url, run } => {
                let open = || {
                    Store::open_existing_at(location)?.ok_or_else(|| ViewError::NoSuchRun {
                        location: location.to_string(),
                        runs: trajforge_store::postgres_runs(url).unwrap_or_default(),
                    })
                };
                let source = Source::Shared {
                    pages: Arc::new(open()?),
                    background: Arc::new(open()?),
                };
                (source, run.clone())
            }
        };
        Ok(Viewer {
            source,
            name,
            index: Arc::new(SearchIndex::create()?),
            overview: std::sync::Mutex::new(None),
            computing: std::sync::Mutex::new(()),
            tokens: None,
            compare: None,
        })
    }

    /// Count the training sample's tokens with the student's tokenizer (a `tokenizer.json`,
    /// its folder or a GGUF file, as `export --tokenizer` takes) and show where a
    /// `--max-tokens` cut falls.
    pub fn with_tokenizer(
        mut self,
        path: &Path,
        max_tokens: Option<usize>,
    ) -> Result<Viewer, ViewError> {
        self.tokens = Some((trajforge_export::StudentTokenizer::load(path)?, max_tokens));
        Ok(self)
    }

    /// Compare this evaluation (A) with the one in `other` (B) on the page `/compare`, as
    /// `trajforge eval compare A B` does; read afresh on each request.
    pub fn with_comparison(mut self, other: &Path) -> Viewer {
        self.compare = Some(other.to_path_buf());
        self
    }

    /// The run folder (none for a PostgreSQL run).
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Folder(dir) => Some(dir),
            Source::Shared { .. } => None,
        }
    }

    /// The search index.
    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.index
    }

    /// The run's store for a page: a short-lived read-only connection to a run folder's
    /// file, or the PostgreSQL run's page connection.
    pub fn store(&self) -> Result<Arc<Store>, ViewError> {
        match &self.source {
            Source::Folder(dir) => Store::open_read_only(dir)?
                .map(Arc::new)
                .ok_or_else(|| ViewError::NotARun(dir.clone())),
            Source::Shared { pages, .. } => Ok(Arc::clone(pages)),
        }
    }

    /// The run's store for the background task (the index and the overview).
    pub fn background_store(&self) -> Result<Arc<Store>, ViewError> {
        match &self.source {
            Source::Folder(_) => self.store(),
            Source::Shared { background, .. } => Ok(Arc::clone(background)),
        }
    }

    /// Index every trajectory stored so far (the server does this in the background).
    pub fn index_all(&self) -> Result<usize, ViewError> {
        let store = self.background_store()?;
        let mut n = 0;
        loop {
            let added = self.index.refresh(&store)?;
            if added == 0 {
                return Ok(n);
            }
            n += added;
        }
    }

    /// The answer to `GET path?query`; other methods are refused.
    pub fn respond(&self, method: &str, path: &str, query: &str) -> Reply {
        if method != "GET" {
            return Reply::text(405, "this viewer is read-only: GET only");
        }
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let result = match path {
            "/static/app.js" => {
                return Reply {
                    status: 200,
                    content_type: "text/javascript; charset=utf-8",
                    body: APP_JS.to_string(),
                };
            }
            "/static/style.css" => {
                return Reply {
                    status: 200,
                    content_type: "text/css; charset=utf-8",
                    body: STYLE_CSS.to_string(),
                };
            }
            "/" => self.overview(),
            "/list" => self.list(&params),
            "/search" => self.search(params.get("q").map_or("", String::as_str)),
            "/eval" => self.eval(),
            "/compare" => self.compare(),
            _ => {
                if let Some(id) = path.strip_prefix("/job/").and_then(|i| i.parse().ok()) {
                    self.job(id)
                } else if let Some(id) = path.strip_prefix("/sample/").and_then(|i| i.parse().ok())
                {
                    self.sample(id, params.get("format").map_or("hermes", String::as_str))
                } else {
                    Ok(None)
                }
            }
        };
        match result {
            Ok(Some(reply)) => reply,
            Ok(None) => Reply::html(
                404,
                self.page("Not found", Section::Detail, "<h1>Not found</h1>"),
            ),
            Err(e) => Reply::html(
                500,
                self.page(
                    "Error",
                    Section::Detail,
                    &format!("<h1>Error</h1><pre>{}</pre>", html::esc(&e.to_string())),
                ),
            ),
        }
    }

    /// A note while the side index has not caught up with the store (empty once it has).
    fn progress(&self) -> Result<String, ViewError> {
        let stored = self.store()?.last_trajectory_id()?;
        let indexed = self.index.indexed_up_to()?;
        Ok(if indexed < stored {
            format!(
                "<p class=\"muted\" id=\"index-progress\">Indexing: trajectories up to {indexed} of {stored} so far; reload for the rest.</p>"
            )
        } else {
            String::new()
        })
    }

    /// The status and the jobs' finishing times, computed again only when the store's files
    /// changed since the last computation (the background task keeps it fresh on a live run).
    pub fn refresh_overview(&self) -> Result<Arc<Overview>, ViewError> {
        let _computing = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.background_store()?;
        let key = store.change_mark()?;
        if let Some(c) = self.lock_overview().as_ref().filter(|c| c.key == key) {
            return Ok(Arc::clone(c));
        }
        let started = std::time::Instant::now();
        let pricing = prepare::stored_pricing(&store).unwrap_or_default();
        let mut fresh = Overview {
            key,
            took: std::time::Duration::ZERO,
            status: status::status(&store, pricing)?,
            threshold: prepare::stored_threshold(&store),
            finished: store.finish_times()?.1,
        };
        fresh.took = started.elapsed();
        let fresh = Arc::new(fresh);
        *self.lock_overview() = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    fn lock_overview(&self) -> std::sync::MutexGuard<'_, Option<Arc<Overview>>> {
        self.overview.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn page(&self, title: &str, section: Section, body: &str) -> String {
        page(&self.name, title, section, body)
    }

    fn overview(&self) -> Result<Option<Reply>, ViewError> {
        // A run whose status takes long to compute is shown as last computed (the background
        // task brings it up to date within seconds), so its overview answers at once; a small
        // run's is computed afresh when the store changed.
        let cached = self.lock_overview().clone();
        let o = match cached {
            Some(o) if o.took >= std::time::Duration::from_millis(200) => o,
            _ => self.refresh_overview()?,
        };
        let body = pages::overview::body(&o.status, o.threshold, &o.finished);
        Ok(Some(Reply::html(
            200,
            self.page("Overview", Section::Overview, &body),
        )))
    }

    fn eval(&self) -> Result<Option<Reply>, ViewError> {
        let store = self.store()?;
        if !trajforge_pipeline::eval::is_eval(&store) {
            return Ok(None);
        }
        let rows = trajforge_pipeline::eval::scored_jobs(&store)?;
        let results: Vec<_> = rows.iter().map(|(_, s)| s.result.clone()).collect();
        let summary = trajforge_eval::summarize(&results);
        let other = self.compare.as_ref().map(|p| p.display().to_string());
        let body = pages::eval::results_body(&rows, &summary, other.as_deref());
        Ok(Some(Reply::html(
            200,
            self.page("Evaluation", Section::Detail, &body),
        )))
    }

    fn compare(&self) -> Result<Option<Reply>, ViewError> {
        let (Some(other), Some(dir)) = (&self.compare, self.dir()) else {
            return Ok(None);
        };
        let options = trajforge_eval::CompareOptions::default();
        let body = match trajforge_eval::compare_dirs(dir, other, &options) {
            Ok(c) => pages::eval::compare_body(&c),
            Err(e) => format!(
                "<h1>Comparison</h1><p class=\"bad\" id=\"compare-error\">{}</p>",
                html::esc(&e.to_string())
            ),
        };
        Ok(Some(Reply::html(
            200,
            self.page("Comparison", Section::Detail, &body),
        )))
    }

    fn list(&self, params: &BTreeMap<String, String>) -> Result<Option<Reply>, ViewError> {
        let q = query::ListQuery::from_pairs(params);
        // The note first: rows indexed after it was read are shown without one, and never
        // rows missing without it.
        let mut body = self.progress()?;
        let (rows, total) = self.index.list(&q)?;
        let choices = self.index.choices()?;
        body.push_str(&pages::list::body(&q, &rows, total, &choices));
        Ok(Some(Reply::html(
            200,
            self.page("Trajectories", Section::List, &body),
        )))
    }

    fn search(&self, q: &str) -> Result<Option<Reply>, ViewError> {
        // The note first, as for the list.
        let mut body = self.progress()?;
        let found = self.index.search(q, SEARCH_LIMIT)?;
        body.push_str(&pages::search::body(q, &found));
        Ok(Some(Reply::html(
            200,
            self.page("Search", Section::Search, &body),
        )))
    }

    fn job(&self, id: i64) -> Result<Option<Reply>, ViewError> {
        let store = self.store()?;
        let Some(story) = query::job_story(&store, id)? else {
            return Ok(None);
        };
        let threshold = prepare::stored_threshold(&store);
        let demos = run_demos(&store);
        let body = pages::job::body(&story, threshold, &demos);
        let title = format!("Job {id}");
        Ok(Some(Reply::html(
            200,
            self.page(&title, Section::Detail, &body),
        )))
    }

    fn sample(&self, id: i64, format: &str) -> Result<Option<Reply>, ViewError> {
        let format = Format::parse(format)
            .filter(|f| *f != Format::Raw)
            .unwrap_or(Format::Hermes);
        let store = self.store()?;
        let Some(row) = store.trajectory_row(id)? else {
            return Ok(None);
        };
        let body = match Sample::from_row(row, false) {
            Ok(mut sample) => {
                trajforge_export::convert::prepare(&mut sample.trajectory, false);
                let run = trajforge_export::run_settings(&store).unwrap_or_default();
                let site = trajforge_export::web_site(&store, &run).ok().flatten();
                // With a tokenizer: the exact count, and the cut `export --max-tokens` makes.
                let measure = match &self.tokens {
                    Some((tok, max)) => Some((tok.measure(&sample.trajectory, *max)?, *max)),
                    None => None,
                };
                let keep = measure.map_or(sample.trajectory.messages.len(), |(m, _)| m.keep);
                let rendered = trajforge_export::render_row(
                    &sample,
                    format,
                    keep,
                    measure.as_ref().map(|(m, _)| m),
                    &run,
                    site.as_deref(),
                );
                pages::sample::body(&sample, format, &rendered.row, measure)
            }
            Err(e) => format!(
                "<h1>Training sample</h1><p class=\"bad\">{}</p>",
                html::esc(&e.to_string())
            ),
        };
        let title = format!("Sample {id}");
        Ok(Some(Reply::html(
            200,
            self.page(&title, Section::Detail, &body),
        )))
    }
}
