//! The HTTP server: hyper under an accept loop with the limits an endpoint
//! reachable by untrusted clients needs.
//!
//! - A request head must arrive within `header_timeout` (slowloris), and a
//!   keep-alive connection idle for `idle_timeout` is closed.
//! - At most `max_connections` are open. When a new one arrives at the
//!   limit, the connection idle the longest (no request in flight: a
//!   slowloris one, or a forgotten keep-alive) is closed to make room; if
//!   every connection is busy, the new one is refused. A flood of idle
//!   connections therefore cannot lock a health check out.
//! - Every refusal is counted ([`Stats`]) and exported on `/metrics`.
//!
//! Per-route limits (bodies, uploads, event streams) live with their
//! routes; this module only knows connections.

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest a client may take to send a request head.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// After shutdown starts, how long open requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 2048,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_millis(300),
        }
    }
}

/// Connection counters, process-wide (a node has one API).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused at the limit with every open one busy.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed for being idle (or slow to send a head) too long.
    pub timed_out: AtomicU64,
}

/// The server's counters.
pub static STATS: Stats = Stats {
    accepted: AtomicU64::new(0),
    open: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    evicted: AtomicU64::new(0),
    timed_out: AtomicU64::new(0),
};

struct Conn {
    /// Requests in flight (a response body still streaming counts).
    busy: Arc<AtomicUsize>,
    /// When it last became idle.
    idle_since: Arc<Mutex<Instant>>,
    close: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    conns: BTreeMap<u64, Conn>,
}

impl Registry {
    /// The connection idle the longest, if any is idle.
    fn most_idle(&self) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0 && c.close.is_some())
            .min_by_key(|(_, c)| *c.idle_since.lock().unwrap_or_else(|p| p.into_inner()))
            .map(|(id, _)| *id)
    }

    fn close(&mut self, id: u64) {
        if let Some(tx) = self.conns.get_mut(&id).and_then(|c| c.close.take()) {
            let _ = tx.send(());
        }
    }
}

fn lock(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open
/// requests finish for `shutdown_grace` and returns.
pub async fn serve(listener: TcpListener, router: Router, cfg: ServerConfig, shutdown: impl Future<Output = ()>) {
    let registry: Arc<Mutex<Registry>> = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_idle(registry.clone(), cfg.idle_timeout));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        STATS.accepted.fetch_add(1, Ordering::Relaxed);
        let admitted = {
            let mut reg = lock(&registry);
            if reg.conns.len() >= cfg.max_connections {
                match reg.most_idle() {
                    Some(victim) => {
                        reg.close(victim);
                        STATS.evicted.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    None => false,
                }
            } else {
                true
            }
        };
        if !admitted {
            STATS.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let busy = Arc::new(AtomicUsize::new(0));
        let idle_since = Arc::new(Mutex::new(Instant::now()));
        let (close_tx, close_rx) = oneshot::channel();
        let id = {
            let mut reg = lock(&registry);
            let id = reg.next;
            reg.next += 1;
            reg.conns.insert(id, Conn { busy: busy.clone(), idle_since: idle_since.clone(), close: Some(close_tx) });
            id
        };
        STATS.open.fetch_add(1, Ordering::Relaxed);
        let router = router.clone();
        let registry = registry.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, router, cfg, busy, idle_since, close_rx, stop).await;
            lock(&registry).conns.remove(&id);
            STATS.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    sweeper.abort();
    let _ = stop_tx.send(true);
    // Give open requests the grace period, then return (the process exits).
    let deadline = Instant::now() + cfg.shutdown_grace;
    while !lock(&registry).conns.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    cfg: ServerConfig,
    busy: Arc<AtomicUsize>,
    idle_since: Arc<Mutex<Instant>>,
    close: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let svc = {
        let busy = busy.clone();
        let idle_since = idle_since.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            busy.fetch_add(1, Ordering::Relaxed);
            let guard = BusyGuard { busy: busy.clone(), idle_since: idle_since.clone() };
            async move {
                let resp = router.oneshot(req.map(Body::new)).await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                // The connection stays busy while the body streams.
                Ok::<_, std::convert::Infallible>(resp.map(|b| Body::new(GuardedBody { inner: b, _guard: guard })))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if e.is_timeout() {
                    STATS.timed_out.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        _ = close => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(cfg.shutdown_grace, conn).await;
}

/// Closes connections idle for longer than `idle`.
async fn sweep_idle(registry: Arc<Mutex<Registry>>, idle: Duration) {
    let mut iv = tokio::time::interval(Duration::from_secs(1).min(idle));
    loop {
        iv.tick().await;
        let mut reg = lock(&registry);
        let stale: Vec<u64> = reg
            .conns
            .iter()
            .filter(|(_, c)| {
                c.busy.load(Ordering::Relaxed) == 0
                    && c.close.is_some()
                    && c.idle_since.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > idle
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            reg.close(id);
            STATS.timed_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Marks a connection idle again when its response body is done.
struct BusyGuard {
    busy: Arc<AtomicUsize>,
    idle_since: Arc<Mutex<Instant>>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
