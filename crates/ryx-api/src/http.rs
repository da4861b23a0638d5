//! A small blocking HTTP/1.1 client: what talking to a node's API needs.
//!
//! Requests to a node's API address, JSON or raw bodies, `Content-Length`
//! or chunked responses, and keep-alive connections (one idle per address)
//! so that polling dozens of nodes every few milliseconds does not churn
//! through ephemeral ports. Every connect, read and write has a timeout and
//! every response is size-bounded. Safe to share between threads: requests
//! to different nodes run in parallel.

use crate::error::{Error, ErrorKind};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

/// Largest response body [`Http::new`] accepts.
pub const MAX_BODY: usize = 8 << 20;
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

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The transport: one idle keep-alive connection per address.
pub struct Http {
    idle: Mutex<HashMap<SocketAddr, BufReader<TcpStream>>>,
    timeout: Duration,
    max_body: usize,
}

impl Http {
    /// A transport whose connects, reads and writes each give up after
    /// `timeout`, and that accepts bodies of up to [`MAX_BODY`].
    pub fn new(timeout: Duration) -> Http {
        Http::with_max_body(timeout, MAX_BODY)
    }

    /// A transport that accepts response bodies of up to `max_body` bytes
    /// (job results, whole blobs).
    pub fn with_max_body(timeout: Duration, max_body: usize) -> Http {
        Http { idle: Mutex::new(HashMap::new()), timeout, max_body }
    }

    /// Sends one request to `addr` (with `Authorization: Bearer <token>`
    /// when given) and reads the response, whatever its status.
    pub fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> Result<Response, Error> {
        let what = || format!("{method} {path} on {addr}");
        let fail = |e: String| Error::new(what(), ErrorKind::Transport(e));
        let req = Request { addr, method, path, body: body.unwrap_or(&[]), token };
        let pooled = self.idle.lock().map(|mut m| m.remove(&addr)).unwrap_or(None);
        if let Some(conn) = pooled {
            // A pooled connection may have been closed by the server while
            // idle; that shows as an error before any response byte, and
            // then the request is sent again on a fresh connection.
            match self.exchange(conn, &req) {
                Ok(r) => return Ok(r),
                Err(Exchange::BeforeResponse(_)) => {}
                Err(Exchange::During(e)) => return Err(fail(e)),
            }
        }
        let conn = self.connect(addr).map_err(fail)?;
        self.exchange(conn, &req).map_err(|e| match e {
            Exchange::BeforeResponse(e) | Exchange::During(e) => fail(e),
        })
    }

    fn connect(&self, addr: SocketAddr) -> Result<BufReader<TcpStream>, String> {
        let s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| format!("cannot connect: {e}"))?;
        let set = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
        set(s.set_read_timeout(Some(self.timeout)))?;
        set(s.set_write_timeout(Some(self.timeout)))?;
        let _ = s.set_nodelay(true);
        Ok(BufReader::new(s))
    }

    fn exchange(&self, mut conn: BufReader<TcpStream>, req: &Request<'_>) -> Result<Response, Exchange> {
        let auth = req.token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ryx-api\r\nAccept: application/json\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            req.method,
            req.path,
            req.addr,
            req.body.len()
        );
        let stream = conn.get_mut();
        stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(req.body))
            .and_then(|_| stream.flush())
            .map_err(|e| Exchange::BeforeResponse(e.to_string()))?;
        let mut status_line = String::new();
        match conn.by_ref().take(MAX_HEAD as u64).read_line(&mut status_line) {
            Ok(0) => return Err(Exchange::BeforeResponse("connection closed before a response".into())),
            Ok(_) => {}
            Err(e) => return Err(Exchange::BeforeResponse(e.to_string())),
        }
        let (resp, keep) = read_rest(&mut conn, &status_line, self.max_body).map_err(Exchange::During)?;
        if keep {
            if let Ok(mut m) = self.idle.lock() {
                m.insert(req.addr, conn);
            }
        }
        Ok(resp)
    }
}

struct Request<'a> {
    addr: SocketAddr,
    method: &'a str,
    path: &'a str,
    body: &'a [u8],
    token: Option<&'a str>,
}

enum Exchange {
    /// Nothing of a response arrived: safe to retry on a new connection.
    BeforeResponse(String),
    /// The response was cut or malformed.
    During(String),
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// Reads headers and body after the status line; also says whether the
/// connection may be reused.
fn read_rest(conn: &mut BufReader<TcpStream>, status_line: &str, max_body: usize) -> Result<(Response, bool), String> {
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: {}", truncate(status_line, 80)));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    let mut head_bytes = status_line.len();
    loop {
        let mut line = String::new();
        let n = conn.by_ref().take(MAX_HEAD as u64).read_line(&mut line).map_err(io)?;
        head_bytes += n;
        if n == 0 {
            return Err("connection closed inside the headers".into());
        }
        if head_bytes > MAX_HEAD {
            return Err(format!("response headers larger than {MAX_HEAD} bytes"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = Some(value.parse().map_err(|_| "bad Content-Length")?),
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
            return Err(format!("response body of {len} bytes is larger than {max_body}"));
        }
        let mut b = vec![0; len];
        conn.read_exact(&mut b).map_err(io)?;
        b
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        keep = false;
        let mut b = Vec::new();
        conn.by_ref().take(max_body as u64 + 1).read_to_end(&mut b).map_err(io)?;
        if b.len() > max_body {
            return Err(format!("response body larger than {max_body} bytes"));
        }
        b
    };
    Ok((Response { status, body }, keep))
}

fn read_chunked(conn: &mut BufReader<TcpStream>, max_body: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        conn.by_ref().take(1024).read_line(&mut line).map_err(io)?;
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let mut t = String::new();
                let n = conn.by_ref().take(MAX_HEAD as u64).read_line(&mut t).map_err(io)?;
                if n == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max_body {
            return Err(format!("chunked response larger than {max_body} bytes"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..]).map_err(io)?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf).map_err(io)?;
    }
}

/// Percent-encodes one URL path segment (everything but RFC 3986
/// unreserved characters).
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
