//! A tiny blocking HTTP/1.1 client for the nodes' API.
//!
//! Only what talking to `ryx-node` needs: requests to a node's API address
//! (`127.0.0.1:PORT`, or the node's own address in a namespace cluster),
//! JSON bodies, `Content-Length` or chunked responses, and keep-alive
//! connections (one per address) so that polling dozens of nodes every few
//! milliseconds does not churn through ephemeral ports. Every read, write
//! and connect has a timeout and every response is size-bounded.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

/// Largest response body accepted.
const MAX_BODY: usize = 8 << 20;
/// Largest status line plus headers accepted.
const MAX_HEAD: usize = 64 << 10;

/// A response: status code and body bytes.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes (chunked encoding already removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response is not JSON: {}", truncate(&self.text(), 200)))
    }
}

/// A client with one idle keep-alive connection per address. Safe to share
/// between threads: requests to different nodes run in parallel.
pub struct Http {
    idle: Mutex<HashMap<SocketAddr, BufReader<TcpStream>>>,
    timeout: Duration,
    max_body: usize,
}

impl Http {
    /// A client whose connects, reads and writes each give up after `timeout`.
    pub fn new(timeout: Duration) -> Http {
        Http { idle: Mutex::new(HashMap::new()), timeout, max_body: MAX_BODY }
    }

    /// A client that also accepts response bodies of up to `max_body` bytes
    /// (job results, whole blobs).
    pub fn with_max_body(timeout: Duration, max_body: usize) -> Http {
        Http { idle: Mutex::new(HashMap::new()), timeout, max_body }
    }

    /// Sends a JSON body (or none) and returns the parsed JSON answer; a
    /// non-2xx status is an error carrying the node's message.
    pub fn call_json(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<serde_json::Value> {
        let r = self.request(addr, method, path, body)?;
        if !(200..300).contains(&r.status) {
            let msg = r
                .json()
                .ok()
                .and_then(|v| v.get("error").cloned())
                .map(|e| match e {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Object(o) => o
                        .get("message")
                        .and_then(|m| m.as_str())
                        .map(String::from)
                        .unwrap_or_else(|| serde_json::Value::Object(o).to_string()),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| truncate(&r.text(), 300));
            bail!("{method} {path} on {addr}: HTTP {}: {msg}", r.status);
        }
        r.json()
    }

    /// Sends one request to `addr` and reads the response.
    pub fn request(&self, addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let pooled = self.idle.lock().map(|mut m| m.remove(&addr)).unwrap_or(None);
        if let Some(conn) = pooled {
            // A pooled connection may have been closed by the server while
            // idle; that shows as an error before any response byte, and
            // then the request is sent again on a fresh connection.
            match self.exchange(conn, addr, method, path, body) {
                Ok(r) => return Ok(r),
                Err(Exchange::BeforeResponse(_)) => {}
                Err(Exchange::During(e)) => return Err(e),
            }
        }
        let conn = self.connect(addr)?;
        self.exchange(conn, addr, method, path, body).map_err(|e| match e {
            Exchange::BeforeResponse(e) | Exchange::During(e) => e,
        })
    }

    /// GET returning the JSON body; non-2xx statuses are errors.
    pub fn get_json(&self, addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
        let r = self.request(addr, "GET", path, None)?;
        if !(200..300).contains(&r.status) {
            bail!("GET {path} on {addr}: HTTP {}: {}", r.status, truncate(&r.text(), 200));
        }
        r.json()
    }

    fn connect(&self, addr: SocketAddr) -> Result<BufReader<TcpStream>> {
        let s = TcpStream::connect_timeout(&addr, self.timeout).with_context(|| format!("cannot connect to {addr}"))?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let _ = s.set_nodelay(true);
        Ok(BufReader::new(s))
    }

    fn exchange(
        &self,
        mut conn: BufReader<TcpStream>,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, Exchange> {
        let body = body.unwrap_or(&[]);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ryx-cluster\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let ctx = || format!("{method} {path} on {addr}");
        let stream = conn.get_mut();
        stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(body))
            .and_then(|_| stream.flush())
            .map_err(|e| Exchange::BeforeResponse(anyhow!(e).context(ctx())))?;
        let mut status_line = String::new();
        match conn.by_ref().take(MAX_HEAD as u64).read_line(&mut status_line) {
            Ok(0) => {
                return Err(Exchange::BeforeResponse(anyhow!("connection closed before a response").context(ctx())))
            }
            Ok(_) => {}
            Err(e) => return Err(Exchange::BeforeResponse(anyhow!(e).context(ctx()))),
        }
        let (resp, keep) =
            read_rest(&mut conn, &status_line, self.max_body).with_context(ctx).map_err(Exchange::During)?;
        if keep {
            if let Ok(mut m) = self.idle.lock() {
                m.insert(addr, conn);
            }
        }
        Ok(resp)
    }
}

enum Exchange {
    /// Nothing of a response arrived: safe to retry on a new connection.
    BeforeResponse(anyhow::Error),
    /// The response was cut or malformed.
    During(anyhow::Error),
}

/// Reads headers and body after the status line; also says whether the
/// connection may be reused.
fn read_rest(conn: &mut BufReader<TcpStream>, status_line: &str, max_body: usize) -> Result<(Response, bool)> {
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP response: {}", truncate(status_line, 80));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).context("bad status line")?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    let mut head_bytes = status_line.len();
    loop {
        let mut line = String::new();
        let n = conn.by_ref().take(MAX_HEAD as u64).read_line(&mut line)?;
        head_bytes += n;
        if n == 0 {
            bail!("connection closed inside the headers");
        }
        if head_bytes > MAX_HEAD {
            bail!("response headers larger than {MAX_HEAD} bytes");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = Some(value.parse().context("bad Content-Length")?),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => {
                    let v = value.to_ascii_lowercase();
                    if v.contains("close") {
                        keep = false;
                    } else if v.contains("keep-alive") {
                        keep = true;
                    }
                }
                _ => {}
            }
        }
    }
    let body = if chunked {
        read_chunked(conn, max_body)?
    } else if let Some(len) = content_length {
        if len > max_body {
            bail!("response body of {len} bytes is larger than {max_body}");
        }
        let mut b = vec![0; len];
        conn.read_exact(&mut b)?;
        b
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        keep = false;
        let mut b = Vec::new();
        conn.by_ref().take(max_body as u64 + 1).read_to_end(&mut b)?;
        if b.len() > max_body {
            bail!("response body larger than {max_body} bytes");
        }
        b
    };
    Ok((Response { status, body }, keep))
}

fn read_chunked(conn: &mut BufReader<TcpStream>, max_body: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        conn.by_ref().take(1024).read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let mut t = String::new();
                let n = conn.by_ref().take(MAX_HEAD as u64).read_line(&mut t)?;
                if n == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max_body {
            bail!("chunked response larger than {max_body} bytes");
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)?;
    }
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved
/// characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_segment("plain-key_1.x~"), "plain-key_1.x~");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
