//! A small HTTP/1.1 client for fetching blobs from other nodes.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Could not connect or the exchange failed.
    #[error("cannot reach {0}: {1}")]
    Io(SocketAddr, String),
    /// Non-success status.
    #[error("{0} answered {1}")]
    Status(SocketAddr, u16),
    /// The bytes do not match their name.
    #[error("{0} sent bytes that do not match their hash")]
    Corrupt(SocketAddr),
    /// Took too long.
    #[error("{0} did not answer in time")]
    Timeout(SocketAddr),
}

/// Adds a peer credential (never the API token: the address may come from
/// a forged message, see `members`), so that nodes can use each other's
/// protected endpoints.
fn with_credential(
    b: hyper::http::request::Builder,
    method: &str,
    to: SocketAddr,
    path: &str,
) -> hyper::http::request::Builder {
    match crate::members::credential(method, to, path) {
        Some(c) => b.header(crate::members::PEER_HEADER, c),
        None => b,
    }
}

/// GETs `path` from `addr` with a peer credential, reading at most `limit`
/// bytes of body.
pub async fn get(addr: SocketAddr, path: &str, limit: usize, timeout: Duration) -> Result<Bytes, FetchError> {
    get_with(addr, path, limit, timeout, true).await
}

/// GETs `path` from `addr` with no credential at all.
pub async fn get_unauthenticated(
    addr: SocketAddr,
    path: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, FetchError> {
    get_with(addr, path, limit, timeout, false).await
}

async fn get_with(
    addr: SocketAddr,
    path: &str,
    limit: usize,
    timeout: Duration,
    credential: bool,
) -> Result<Bytes, FetchError> {
    let io_err = |e: &dyn std::fmt::Display| FetchError::Io(addr, e.to_string());
    let fut = async {
        let mut sender = handshake::<Empty<Bytes>>(addr).await?;
        let b = hyper::Request::get(path).header(hyper::header::HOST, addr.to_string());
        let b = if credential { with_credential(b, "GET", addr, path) } else { b };
        let req = b.body(Empty::<Bytes>::new()).map_err(|e| io_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io_err(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status(addr, status));
        }
        let body = Limited::new(resp.into_body(), limit).collect().await.map_err(|e| io_err(&e))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| FetchError::Timeout(addr))?
}

/// Fetches blob `hash` from the first of `sources` that serves bytes
/// matching it (BLAKE3) and, if given, `size`.
pub async fn fetch_blob(hash: &str, size: Option<u64>, sources: &[SocketAddr]) -> Result<Bytes, FetchError> {
    let mut last = None;
    // One byte more than the size named (to see a longer answer), whatever
    // size a message named: sizes come from the network.
    let limit = size.map_or(1 << 30, |s| usize::try_from(s).unwrap_or(usize::MAX).saturating_add(1)).min(1 << 34);
    let timeout = Duration::from_secs(5) + Duration::from_millis(limit as u64 / 50_000);
    for src in sources {
        match get(*src, &format!("/v1/blobs/{hash}"), limit, timeout).await {
            Ok(b) if size.is_none_or(|s| b.len() as u64 == s) && ryx_compute::digest_hex(&b) == hash => return Ok(b),
            Ok(_) => last = Some(FetchError::Corrupt(*src)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(FetchError::Io(SocketAddr::from(([0, 0, 0, 0], 0)), "no source".into())))
}

/// An HTTP/1.1 connection to `addr`, its driver spawned.
async fn handshake<B>(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<B>, FetchError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io_err = |e: &dyn std::fmt::Display| FetchError::Io(addr, e.to_string());
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| io_err(&e))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| io_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends a body-less request; returns the status and body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Bytes), FetchError> {
    let io_err = |e: &dyn std::fmt::Display| FetchError::Io(addr, e.to_string());
    let fut = async {
        let mut sender = handshake::<Empty<Bytes>>(addr).await?;
        let req = with_credential(
            hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, addr.to_string()),
            method,
            addr,
            path,
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| io_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io_err(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), 16 << 20).collect().await.map_err(|e| io_err(&e))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| FetchError::Timeout(addr))?
}

/// Posts a JSON body to `http://{host}{path}` at `addr`; returns the
/// status. (To services that are not nodes: no peer credential.)
pub async fn post_json(
    addr: SocketAddr,
    host: &str,
    path: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<u16, FetchError> {
    let io_err = |e: &dyn std::fmt::Display| FetchError::Io(addr, e.to_string());
    let fut = async {
        let mut sender = handshake::<http_body_util::Full<Bytes>>(addr).await?;
        let req = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(body))
            .map_err(|e| io_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io_err(&e))?;
        let status = resp.status().as_u16();
        let _ = Limited::new(resp.into_body(), 1 << 20).collect().await;
        Ok(status)
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| FetchError::Timeout(addr))?
}
