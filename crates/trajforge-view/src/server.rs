//! The HTTP server of the viewer: hyper's HTTP/1 on a loopback address, each request answered
//! on a blocking thread (it reads the store), every response with the security headers; and the
//! background task that keeps the search index up to date with a live run.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::{CSP, Reply, ViewError, Viewer};

/// Bind `host:port` (port 0: any free port).
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ViewError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| ViewError::Listen {
            addr: format!("{host}:{port}"),
            source,
        })
}

/// Serve `viewer` on `listener` until `shutdown` resolves; the search index fills in the
/// background meanwhile and follows the run while it grows.
pub async fn serve(
    viewer: Arc<Viewer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ViewError> {
    let local = listener.local_addr().map_err(|source| ViewError::Listen {
        addr: "the bound socket".into(),
        source,
    })?;
    spawn_indexer(Arc::downgrade(&viewer));
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let viewer = Arc::clone(&viewer);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let viewer = Arc::clone(&viewer);
                    async move { Ok::<_, Infallible>(handle(viewer, local, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    Ok(())
}

/// Index what the run stores, batch by batch, then look again every two seconds; stops when
/// the viewer is gone. Errors (a store busy, a run folder removed) are retried later.
fn spawn_indexer(viewer: Weak<Viewer>) {
    std::thread::spawn(move || {
        loop {
            let Some(v) = viewer.upgrade() else { return };
            let _ = v.refresh_overview();
            let added = v
                .background_store()
                .and_then(|store| v.index().refresh(&store))
                .unwrap_or(0);
            drop(v);
            if added == 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    });
}

/// Whether the Host header names the loopback address the server is bound to (a page on
/// another site cannot then reach the viewer through a DNS name rebound to 127.0.0.1).
fn host_allowed(req: &Request<Incoming>, local: SocketAddr) -> bool {
    if !local.ip().is_loopback() {
        return true;
    }
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .trim_start_matches('[')
        .trim_end_matches(']');
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

async fn handle(
    viewer: Arc<Viewer>,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = if !host_allowed(&req, local) {
        Reply {
            status: 421,
            content_type: "text/plain; charset=utf-8",
            body: "wrong Host: open the address trajforge view printed".into(),
        }
    } else {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        tokio::task::spawn_blocking(move || viewer.respond(&method, &path, &query))
            .await
            .unwrap_or_else(|_| Reply {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: "internal error".into(),
            })
    };
    let status = reply.status;
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == 405 {
        h.insert(header::ALLOW, HeaderValue::from_static("GET"));
    }
    r
}
