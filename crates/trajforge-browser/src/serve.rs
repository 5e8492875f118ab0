//! A static file server for a local folder of HTML, on 127.0.0.1 (GET and HEAD only).
//! Query strings are ignored; `dir/` serves `dir/index.html`; `..` never leaves the root.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::error::BrowserError;

/// A running static server; stops when dropped.
pub struct StaticServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    /// Serve `root` on 127.0.0.1 at `port` (0: any free port).
    pub async fn start(root: &Path, port: u16) -> Result<StaticServer, BrowserError> {
        let root = root
            .canonicalize()
            .map_err(|e| BrowserError::store(root, e))?;
        if !root.is_dir() {
            return Err(BrowserError::store(&root, "not a folder"));
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
            BrowserError::store(&root, format!("cannot listen on 127.0.0.1:{port}: {e}"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| BrowserError::store(&root, e))?;
        let root = Arc::new(root);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let root = Arc::clone(&root);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let root = Arc::clone(&root);
                        async move { Ok::<_, Infallible>(respond(&root, &req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(StaticServer { addr, task })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:43123/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn respond(root: &Path, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let raw = req.uri().path();
    let Some(rel) = safe_path(raw) else {
        return plain(StatusCode::BAD_REQUEST, "bad path");
    };
    let mut path = root.join(&rel);
    if path.is_dir() {
        if !raw.ends_with('/') {
            let mut r = plain(StatusCode::MOVED_PERMANENTLY, "moved");
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{raw}/")) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return r;
        }
        path = path.join("index.html");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let len = bytes.len();
            let body = if req.method() == Method::HEAD {
                Bytes::new()
            } else {
                Bytes::from(bytes)
            };
            let mut r = Response::new(Full::new(body));
            let h = r.headers_mut();
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(mime_of(&path)),
            );
            h.insert(
                hyper::header::CONTENT_LENGTH,
                hyper::header::HeaderValue::from(len),
            );
            r
        }
        Err(_) => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Percent-decode a URL path into a relative path with no `..`, or None.
fn safe_path(raw: &str) -> Option<PathBuf> {
    let decoded = percent_decode(raw)?;
    let mut out = PathBuf::new();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

fn mime_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "rst" | "md" | "py" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(safe_path("/a/b.html"), Some(PathBuf::from("a/b.html")));
        assert_eq!(safe_path("/a%20b.html"), Some(PathBuf::from("a b.html")));
        assert_eq!(safe_path("/../etc/passwd"), None);
        assert_eq!(safe_path("/a/%2e%2e/%2e%2e/x"), None);
        assert_eq!(safe_path("/"), Some(PathBuf::new()));
    }
}
