//! The network guard of a tab: same origin only, live (optionally recorded) or replayed.

use std::sync::{Arc, Mutex};

use url::Url;

use crate::error::BrowserError;
use crate::lock;
use crate::record::{Recorder, Recording};

/// Where responses come from.
#[derive(Clone)]
pub enum NetMode {
    /// The live site; every response is recorded when a recorder is given.
    Live {
        /// Where to record.
        record: Option<Arc<Recorder>>,
    },
    /// Served from a recording; the network is never reached.
    Replay(Arc<Recording>),
}

/// What a tab may load.
pub struct NetPolicy {
    origin: url::Origin,
    mode: NetMode,
    blocked: Mutex<Vec<String>>,
    misses: Mutex<Vec<String>>,
}

impl NetPolicy {
    /// Allow only the origin of `start_url`.
    pub fn new(start_url: &str, mode: NetMode) -> Result<NetPolicy, BrowserError> {
        let url = parse_web_url(start_url)?;
        Ok(NetPolicy {
            origin: url.origin(),
            mode,
            blocked: Mutex::new(Vec::new()),
            misses: Mutex::new(Vec::new()),
        })
    }

    /// The allowed origin, serialised.
    pub fn origin(&self) -> String {
        self.origin.ascii_serialization()
    }

    /// The mode.
    pub fn mode(&self) -> &NetMode {
        &self.mode
    }

    /// True for http(s) URLs of the allowed origin.
    pub fn allows(&self, url: &str) -> bool {
        Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.origin() == self.origin)
    }

    /// Record a request refused for leaving the origin or scheme.
    pub(crate) fn note_blocked(&self, url: &str) {
        lock(&self.blocked).push(url.to_string());
    }

    /// Record a replayed request that had no recorded response.
    pub(crate) fn note_miss(&self, url: &str) {
        lock(&self.misses).push(url.to_string());
    }

    /// Requests refused because they left the origin (or used another scheme).
    pub fn blocked(&self) -> Vec<String> {
        lock(&self.blocked).clone()
    }

    /// Replayed requests with no recorded response (failed as blocked).
    pub fn misses(&self) -> Vec<String> {
        lock(&self.misses).clone()
    }
}

/// Parse an absolute http(s) URL.
pub fn parse_web_url(text: &str) -> Result<Url, BrowserError> {
    let url = Url::parse(text).map_err(|e| BrowserError::Url {
        url: text.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BrowserError::Url {
            url: text.to_string(),
            reason: format!(
                "scheme {:?} is not allowed (only http and https)",
                url.scheme()
            ),
        });
    }
    Ok(url)
}

/// The network mode for episodes on a crawled site folder: replayed from the recording with
/// the network blocked, or (`live`) the live site with new responses recorded into the same
/// folder. Returns the mode and the site's metadata (origin, start URL).
pub fn site_mode(
    site_dir: &std::path::Path,
    live: bool,
) -> Result<(NetMode, crate::record::SiteMeta), BrowserError> {
    let recording = Recording::open(site_dir)?;
    let meta = recording.meta().clone();
    let mode = if live {
        drop(recording);
        NetMode::Live {
            record: Some(Arc::new(Recorder::create(site_dir)?)),
        }
    } else {
        NetMode::Replay(Arc::new(recording))
    };
    Ok((mode, meta))
}
