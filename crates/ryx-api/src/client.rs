//! The typed client: one node's API, each endpoint a method.

use crate::blobs::{BlobList, Deleted, Manifest, UploadOptions, Uploaded};
use crate::error::{Error, ErrorBody, ErrorKind};
use crate::events::{RecentEvent, RecentEvents};
use crate::faults::{FaultSpec, FaultState};
use crate::http::{encode_segment, truncate, Http, Response};
use crate::identity::Identity;
use crate::ids::{BlobHash, JobId};
use crate::info::{InfoItem, InfoItems, InfoWritten, PutInfo};
use crate::jobs::{Cancelled, JobList, JobView, SubmitJob, Submitted};
use crate::metrics::Metrics;
use crate::status::{Health, Neighbor, Neighbors, PassivePeer, Peers, Status};
use crate::topology::Topology;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long [`Client::new`] waits on each step of an exchange: an upload
/// answers once its copies exist (30 s by default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer [`Client::new`] accepts: a job answer inlines its result,
/// which per-line assignments make large.
pub const DEFAULT_MAX_BODY: usize = 256 << 20;

/// A client of one node's API. Cheap to clone; clients made
/// [`with_http`](Client::with_http) share that transport's connections.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    http: Arc<Http>,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the node whose API is at `addr`, with a transport of its
    /// own ([`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_BODY`]).
    pub fn new(addr: SocketAddr) -> Client {
        Client::with_http(addr, Arc::new(Http::with_max_body(DEFAULT_TIMEOUT, DEFAULT_MAX_BODY)))
    }

    /// A client of the node at `addr` over `http` (its timeouts and limits,
    /// its pool of connections).
    pub fn with_http(addr: SocketAddr, http: Arc<Http>) -> Client {
        Client { addr, http, token: None }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(Arc::from(token));
        self
    }

    /// The node's API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One raw exchange, whatever the status: for what the typed methods do
    /// not cover (malformed requests in tests, say).
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, Error> {
        self.http.request(self.addr, method, path, body, self.token.as_deref())
    }

    /// An exchange that must succeed (2xx); a refusal is an error with the
    /// API's code.
    fn ok(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, Error> {
        let r = self.request(method, path, body)?;
        if r.is_success() {
            return Ok(r);
        }
        let kind = match serde_json::from_slice::<ErrorBody>(&r.body) {
            Ok(b) => ErrorKind::Api { status: r.status, code: b.error.code, message: b.error.message },
            Err(_) => ErrorKind::Status { status: r.status, body: truncate(&r.text(), 300) },
        };
        Err(Error::new(self.what(method, path), kind))
    }

    /// An exchange whose 2xx answer is the JSON of `T`.
    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<T, Error> {
        let r = self.ok(method, path, body)?;
        serde_json::from_slice(&r.body).map_err(|e| {
            Error::new(self.what(method, path), ErrorKind::Decode(format!("{e}: {}", truncate(&r.text(), 200))))
        })
    }

    /// As [`call`](Client::call), sending `body` as JSON.
    fn send<B: Serialize, T: DeserializeOwned>(&self, method: &str, path: &str, body: &B) -> Result<T, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::new(self.what(method, path), ErrorKind::Decode(e.to_string())))?;
        self.call(method, path, Some(&bytes))
    }

    fn what(&self, method: &str, path: &str) -> String {
        format!("{method} {path} on {}", self.addr)
    }

    /// `GET /v1/search?dataset=…&q=…&k=…`: the result as JSON (hits,
    /// corpus figures, the snapshot searched and the two jobs).
    pub fn search(&self, dataset: &str, q: &str, k: u32, redundancy: Option<u8>) -> Result<serde_json::Value, Error> {
        let mut path = format!("/v1/search?dataset={}&q={}&k={k}", encode_segment(dataset), encode_segment(q));
        if let Some(r) = redundancy {
            path.push_str(&format!("&redundancy={r}"));
        }
        self.call("GET", &path, None)
    }

    /// `GET /healthz`.
    pub fn healthz(&self) -> Result<Health, Error> {
        self.call("GET", "/healthz", None)
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Status, Error> {
        self.call("GET", "/v1/status", None)
    }

    /// `GET /v1/neighbors`: the active neighbours.
    pub fn neighbors(&self) -> Result<Vec<Neighbor>, Error> {
        self.call::<Neighbors>("GET", "/v1/neighbors", None).map(|n| n.neighbors)
    }

    /// `GET /v1/peers`: the passive list.
    pub fn peers(&self) -> Result<Vec<PassivePeer>, Error> {
        self.call::<Peers>("GET", "/v1/peers", None).map(|p| p.passive)
    }

    /// `GET /v1/topology`.
    pub fn topology(&self) -> Result<Topology, Error> {
        self.call("GET", "/v1/topology", None)
    }

    /// `GET /v1/sources`: the node's own data.
    pub fn sources(&self) -> Result<crate::Sources, Error> {
        self.call("GET", "/v1/sources", None)
    }

    /// `GET /v1/datasets`: every dataset the node has heard announced.
    pub fn datasets(&self) -> Result<crate::Datasets, Error> {
        self.call("GET", "/v1/datasets", None)
    }

    /// `GET /v1/sources/{name}/snapshot`: the node's chunks of a dataset now.
    pub fn source_snapshot(&self, name: &str) -> Result<crate::SourceSnapshot, Error> {
        self.call("GET", &format!("/v1/sources/{}/snapshot", crate::encode_segment(name)), None)
    }

    /// `GET /v1/identity?challenge=...` (16–64 lowercase hex digits). The
    /// answer is a claim until its proof is checked.
    pub fn identity(&self, challenge: &str) -> Result<Identity, Error> {
        self.call("GET", &format!("/v1/identity?challenge={}", encode_segment(challenge)), None)
    }

    /// `GET /v1/info`: every item held here.
    pub fn info_items(&self) -> Result<Vec<InfoItem>, Error> {
        self.call::<InfoItems>("GET", "/v1/info", None).map(|i| i.items)
    }

    /// `GET /v1/info/{key}`: the item, or none when this node does not hold it.
    pub fn info(&self, key: &str) -> Result<Option<InfoItem>, Error> {
        match self.call("GET", &format!("/v1/info/{}", encode_segment(key)), None) {
            Ok(item) => Ok(Some(item)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/info`: writes an item; it diffuses from here.
    pub fn put_info(&self, put: &PutInfo) -> Result<InfoWritten, Error> {
        self.send("POST", "/v1/info", put)
    }

    /// `PUT /v1/blobs`: uploads `bytes`.
    pub fn put_blob(&self, bytes: &[u8], options: &UploadOptions) -> Result<Uploaded, Error> {
        self.call("PUT", &with_query("/v1/blobs".into(), &options.query()), Some(bytes))
    }

    /// `POST /v1/blobs/sample`: the node generates `size` bytes of the
    /// built-in corpus from `seed` and stores them like an upload.
    pub fn put_sample(&self, size: u64, seed: u64, options: &UploadOptions) -> Result<Uploaded, Error> {
        let path = with_query(format!("/v1/blobs/sample?size={size}&seed={seed}"), &options.query());
        self.call("POST", &path, None)
    }

    /// `GET /v1/blobs`: what the node holds.
    pub fn blobs(&self) -> Result<BlobList, Error> {
        self.call("GET", "/v1/blobs", None)
    }

    /// `GET /v1/blobs/{hash}`: the bytes (a manifest's whole content).
    pub fn blob(&self, hash: &BlobHash) -> Result<Vec<u8>, Error> {
        self.ok("GET", &format!("/v1/blobs/{}", encode_segment(hash.as_str())), None).map(|r| r.body)
    }

    /// `GET /v1/blobs/{hash}?manifest=true`: an upload's chunks.
    pub fn manifest(&self, hash: &BlobHash) -> Result<Manifest, Error> {
        self.call("GET", &format!("/v1/blobs/{}?manifest=true", encode_segment(hash.as_str())), None)
    }

    /// `DELETE /v1/blobs/{hash}`.
    pub fn delete_blob(&self, hash: &BlobHash) -> Result<Deleted, Error> {
        self.call("DELETE", &format!("/v1/blobs/{}", encode_segment(hash.as_str())), None)
    }

    /// `POST /v1/jobs`: the new job's id.
    pub fn submit_job(&self, job: &SubmitJob) -> Result<JobId, Error> {
        self.submit(job).map(|s| s.job_id)
    }

    /// `POST /v1/jobs`, with the whole answer (a dataset job's snapshot).
    pub fn submit(&self, job: &SubmitJob) -> Result<Submitted, Error> {
        self.send::<_, Submitted>("POST", "/v1/jobs", job)
    }

    /// `GET /v1/jobs`: every job known here, newest first, without results.
    pub fn jobs(&self) -> Result<Vec<JobView>, Error> {
        self.call::<JobList>("GET", "/v1/jobs", None).map(|j| j.jobs)
    }

    /// `GET /v1/jobs/{id}`: any node answers (one that does not know the
    /// job asks others); the result is inlined once done.
    pub fn job(&self, id: &JobId) -> Result<JobView, Error> {
        self.call("GET", &format!("/v1/jobs/{}", encode_segment(id.as_str())), None)
    }

    /// `GET /v1/jobs/{id}?local=true`: from this node's knowledge only.
    pub fn job_local(&self, id: &JobId) -> Result<JobView, Error> {
        self.call("GET", &format!("/v1/jobs/{}?local=true", encode_segment(id.as_str())), None)
    }

    /// `DELETE /v1/jobs/{id}`: cancels the job (forwarded to its home).
    pub fn cancel_job(&self, id: &JobId) -> Result<Cancelled, Error> {
        self.call("DELETE", &format!("/v1/jobs/{}", encode_segment(id.as_str())), None)
    }

    /// `GET /v1/admin/faults`: the network faults in force.
    pub fn faults(&self) -> Result<FaultState, Error> {
        self.call("GET", "/v1/admin/faults", None)
    }

    /// `POST /v1/admin/faults`: replaces the faults in force.
    pub fn set_faults(&self, spec: &FaultSpec) -> Result<FaultState, Error> {
        self.send("POST", "/v1/admin/faults", spec)
    }

    /// `DELETE /v1/admin/faults`: heals every network fault now.
    pub fn clear_faults(&self) -> Result<FaultState, Error> {
        self.call("DELETE", "/v1/admin/faults", None)
    }

    /// `GET /v1/events/recent`: the last events, newest first.
    pub fn recent_events(&self) -> Result<Vec<RecentEvent>, Error> {
        self.call::<RecentEvents>("GET", "/v1/events/recent", None).map(|e| e.events)
    }

    /// `GET /metrics`.
    pub fn metrics(&self) -> Result<Metrics, Error> {
        self.ok("GET", "/metrics", None).map(|r| Metrics(r.text()))
    }
}

fn with_query(path: String, query: &str) -> String {
    match (query.is_empty(), path.contains('?')) {
        (true, _) => path,
        (false, true) => format!("{path}&{query}"),
        (false, false) => format!("{path}?{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A one-request server answering `status` and `body`; returns its
    /// address and the request it got.
    fn serve_once(status: &'static str, body: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s);
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).expect("read");
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).expect("body");
            head.push_str(&String::from_utf8_lossy(&b));
            let mut s = r.into_inner();
            write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            head
        });
        (addr, h)
    }

    #[test]
    fn typed_answers_and_typed_refusals() {
        let (addr, h) = serve_once("201 Created", r#"{"job_id":"6720fd28f87f0e4c737a811a5e6f542e"}"#);
        let c = Client::new(addr).with_token("t0k");
        let id = c.submit_job(&SubmitJob::new("grep", vec![])).expect("submitted");
        assert_eq!(id, "6720fd28f87f0e4c737a811a5e6f542e");
        let req = h.join().expect("server");
        assert!(req.starts_with("POST /v1/jobs HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Authorization: Bearer t0k\r\n"), "{req}");
        assert!(req.ends_with(r#"{"kind":"grep","inputs":[],"params":{}}"#), "{req}");

        let (addr, _h) =
            serve_once("404 Not Found", r#"{"error":{"code":"not_found","message":"no info item with key \"k\""}}"#);
        assert_eq!(Client::new(addr).info("k").expect("absent is not an error"), None);
        let (addr, _h) = serve_once("403 Forbidden", r#"{"error":{"code":"fault_injection_disabled","message":"m"}}"#);
        let e = Client::new(addr).faults().expect_err("refused");
        assert_eq!((e.status(), e.code()), (Some(403), Some(&ErrorCode::FaultInjectionDisabled)));
        let (addr, _h) = serve_once("400 Bad Request", "plain text");
        let e = Client::new(addr).status().expect_err("refused");
        assert!(matches!(e.kind(), ErrorKind::Status { status: 400, .. }), "{e}");
        let (addr, _h) = serve_once("200 OK", r#"{"unexpected":true}"#);
        let e = Client::new(addr).status().expect_err("not a status");
        assert!(matches!(e.kind(), ErrorKind::Decode(_)), "{e}");
    }

    #[test]
    fn query_strings_join() {
        assert_eq!(with_query("/v1/blobs".into(), ""), "/v1/blobs");
        assert_eq!(with_query("/v1/blobs".into(), "copies=3"), "/v1/blobs?copies=3");
        assert_eq!(with_query("/s?size=1".into(), "copies=3"), "/s?size=1&copies=3");
    }
}
