//! A real headless Chromium driven over the DevTools protocol, for website environments.
//!
//! - [`BrowserPool`]: Chromium processes (fresh profile each, network-quiet flags) reused
//!   across episodes; a crashed or hung browser is killed by process group and replaced.
//! - [`Tab`]: one isolated browser context with a [`NetPolicy`]: same-origin only, and
//!   either live (optionally recording every response) or replayed from a [`Recording`]
//!   with the network blocked (CDP Fetch interception). Its files by concept: navigation,
//!   scripts (the isolated world), frames (snapshots across iframes), actions (real input),
//!   events and interception.
//! - [`snapshot`]: the compact accessibility snapshot with stable `[ref=eN]` ids.
//! - [`BrowserEnvironment`]: the agent [`trajforge_agent::Environment`] over a tab.
//! - [`crawl`]: breadth-first same-origin crawl into a site folder; [`serve`]: a static
//!   server for a local folder of HTML on 127.0.0.1.

pub mod browser;
pub mod cdp;
pub mod crawl;
pub mod env;
pub mod error;
pub mod graph;
pub mod net;
pub mod record;
pub mod serve;
pub mod snapshot;
pub mod tab;

pub use browser::{Browser, BrowserPool, LaunchConfig, Lease};
pub use crawl::{
    CrawlConfig, CrawlSummary, DEFAULT_CONCURRENCY, SiteSource, crawl, crawl_concurrent, crawl_site,
};
pub use env::{BrowserEnvironment, Ending, EnvConfig};
pub use error::BrowserError;
pub use graph::SiteGraph;
pub use net::{NetMode, NetPolicy, site_mode};
pub use record::{PageRecord, Recorder, Recording, SiteMeta};
pub use serve::StaticServer;
pub use snapshot::Snapshot;
pub use tab::{NavMark, Tab};

use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, ignoring poisoning (a panicked holder leaves plain data behind).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
