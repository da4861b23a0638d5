//! The event loop: one task owns the protocol core and drives it with real
//! sockets and a real clock. HTTP handlers reach the core only through the
//! loop's command channel, so the core needs no locks.

use crate::store::Store;
use crate::work::{Faults, Services};
use anyhow::Context;
use ryx_core::node::Output;
use ryx_core::wire::{self, MAX_DATAGRAM};
use ryx_core::{Input, Node, Time};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};

#[path = "sdnotify.rs"]
pub mod sdnotify;

/// The driver's clock: Unix time at start plus a monotonic elapsed time, so
/// it never goes backwards and stays comparable across local nodes.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix_us: u64,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { start: Instant::now(), start_unix_us: unix.as_micros() as u64 }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        Time(self.start_unix_us + self.start.elapsed().as_micros() as u64)
    }

    /// The instant at which `t` falls.
    pub fn instant(&self, t: Time) -> Instant {
        self.start + Duration::from_micros(t.0.saturating_sub(self.start_unix_us))
    }

    /// The wall clock now (it may jump: NTP steps, a resumed suspend).
    pub fn wall() -> Time {
        Time(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64)
    }
}

/// Tells the core the time on both clocks before it handles anything.
fn sync_clock(st: &mut State) -> Time {
    let now = st.clock.now();
    st.node.set_wall_clock(now, Clock::wall());
    now
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Counters only the driver can keep (the core never sees bytes on a wire).
#[derive(Clone, Copy, Debug, Default)]
pub struct IoStats {
    /// Bytes received on the neighbour and discovery sockets.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams dropped because the socket buffer was full or sending failed.
    pub send_errors: u64,
}

/// What the event loop owns; commands run against it.
pub struct State {
    /// The protocol core.
    pub node: Node,
    /// The clock.
    pub clock: Clock,
    /// IO counters.
    pub io: IoStats,
    /// Bytes sent, by message kind (indexed as `Message::KINDS`).
    pub bytes_out_by_kind: Vec<u64>,
    /// Blob bytes (the core keeps their accounting).
    pub store: Store,
    /// Blobs being fetched right now.
    pub inflight: HashSet<String>,
    /// Worker threads, fetchers and mergers.
    pub services: Option<Services>,
    /// Progressive folders of jobs homed here, by job id.
    pub merges: std::collections::HashMap<ryx_core::jobs::JobId, mpsc::UnboundedSender<crate::work::FoldMsg>>,
    /// Folders in creation order (to bound them).
    pub merge_order: std::collections::VecDeque<ryx_core::jobs::JobId>,
    /// Network faults injected for chaos tests.
    pub faults: crate::faults::NetFaults,
    /// Whether the fault-injection API is enabled.
    pub faults_enabled: bool,
    /// The node's own data as of the last scan (`--source`).
    pub sources: ryx_api::Sources,
    /// The node's own files: what it follows and where each chunk lies.
    pub source_set: crate::sources::SourceSet,
    /// Query waves: chunk lists answered for, searches waiting.
    pub waves: crate::waves::WaveState,
    /// The node's own health, sampled once a second.
    pub health: crate::health::Health,
    /// Where incidents this node raises are posted (`--alertmanager`).
    pub alert_sinks: Vec<crate::alerts::Sink>,
}

/// A command: a closure run on the event loop with exclusive access.
pub type Command = Box<dyn FnOnce(&mut State) + Send>;

/// Handle to the event loop, cloned into every HTTP handler.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<String>,
}

impl Handle {
    /// Runs `f` on the event loop and returns its answer.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut State) -> R + Send + 'static) -> anyhow::Result<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cmd: Command = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.tx.send(cmd).await.map_err(|_| anyhow::anyhow!("node event loop has stopped"))?;
        rx.await.context("node event loop dropped the request")
    }

    /// A stream of events as JSON lines (for live views).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }
}

/// Sockets the loop uses.
pub struct Sockets {
    /// Neighbour traffic.
    pub main: std::sync::Arc<UdpSocket>,
    /// Discovery hellos (broadcast mode only).
    pub discovery: Option<UdpSocket>,
    /// Where broadcasts go.
    pub broadcast_to: SocketAddr,
}

/// Binds the neighbour socket and, for broadcast discovery, the shared
/// discovery socket. The discovery socket is bound to the broadcast address
/// itself with address reuse, so every node on the machine hears every hello
/// and nothing else.
pub fn bind(
    bind: IpAddr,
    port: u16,
    broadcast_addr: IpAddr,
    discovery_port: u16,
    broadcast: bool,
) -> anyhow::Result<Sockets> {
    let main = Socket::new(Domain::for_address(SocketAddr::new(bind, port)), Type::DGRAM, Some(Protocol::UDP))?;
    main.set_broadcast(true)?;
    main.set_nonblocking(true)?;
    let _ = main.set_recv_buffer_size(4 << 20);
    let _ = main.set_send_buffer_size(4 << 20);
    main.bind(&SocketAddr::new(bind, port).into()).with_context(|| format!("cannot bind UDP {bind}:{port}"))?;
    let main = std::sync::Arc::new(UdpSocket::from_std(main.into())?);
    let discovery = if broadcast {
        let addr = SocketAddr::new(broadcast_addr, discovery_port);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into()).with_context(|| format!("cannot bind discovery socket {addr}"))?;
        Some(UdpSocket::from_std(s.into())?)
    } else {
        None
    };
    Ok(Sockets { main, discovery, broadcast_to: SocketAddr::new(broadcast_addr, discovery_port) })
}

/// Starts the event loop with `workers` kernel threads; returns its handle
/// and the join handle of the task.
pub fn spawn(
    node: Node,
    clock: Clock,
    sockets: Sockets,
    workers: usize,
    faults: Faults,
    faults_enabled: bool,
) -> (Handle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Command>(4096);
    let (events, _) = broadcast::channel(1024);
    let handle = Handle { tx: tx.clone(), events: events.clone() };
    let services = Services::start(tx, workers, faults);
    let state = State {
        node,
        clock,
        io: IoStats::default(),
        bytes_out_by_kind: vec![0; ryx_core::wire::Message::KINDS.len()],
        store: Store::default(),
        inflight: HashSet::new(),
        services: Some(services),
        merges: Default::default(),
        merge_order: Default::default(),
        faults: Default::default(),
        faults_enabled,
        sources: ryx_api::Sources::default(),
        source_set: Default::default(),
        waves: Default::default(),
        health: Default::default(),
        alert_sinks: Vec::new(),
    };
    let task = tokio::spawn(run(state, sockets, rx, events));
    (handle, task)
}

async fn recv_opt(s: &Option<UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sends `STOPPING=1` to systemd when the event loop ends (or is aborted).
struct StopNotice(sdnotify::Systemd);

impl Drop for StopNotice {
    fn drop(&mut self) {
        self.0.stopping();
    }
}

async fn tick_opt(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn run(mut st: State, sockets: Sockets, mut rx: mpsc::Receiver<Command>, events: broadcast::Sender<String>) {
    // One byte more than the largest datagram so oversized ones are seen.
    let mut buf = vec![0u8; MAX_DATAGRAM + ryx_core::auth::MAX_OVERHEAD + 1];
    let mut dbuf = vec![0u8; MAX_DATAGRAM + ryx_core::auth::MAX_OVERHEAD + 1];
    // systemd (Type=notify): sockets are bound and the loop serves now; the
    // watchdog heartbeat comes from this loop, so a wedged loop misses it.
    let sd = StopNotice(sdnotify::Systemd::from_env());
    let mut watchdog = sd.0.watchdog.map(tokio::time::interval);
    sd.0.ready(&format!("serving on {}", sockets.main.local_addr().map(|a| a.to_string()).unwrap_or_default()));
    loop {
        let deadline = st.clock.instant(st.node.next_deadline());
        tokio::select! {
            r = sockets.main.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    st.io.bytes_in += n as u64;
                    st.io.datagrams_in += 1;
                    if !st.faults.drop_incoming(from) {
                        let now = sync_clock(&mut st);
                        st.node.handle(now, Input::Datagram { from, bytes: &buf[..n] });
                    }
                }
                Err(e) => tracing::debug!("recv error: {e}"),
            },
            r = recv_opt(&sockets.discovery, &mut dbuf) => match r {
                Ok((n, from)) => {
                    st.io.bytes_in += n as u64;
                    st.io.datagrams_in += 1;
                    if !st.faults.drop_incoming(from) {
                        let now = sync_clock(&mut st);
                        st.node.handle(now, Input::Datagram { from, bytes: &dbuf[..n] });
                    }
                }
                Err(e) => tracing::debug!("discovery recv error: {e}"),
            },
            cmd = rx.recv() => match cmd {
                Some(cmd) => {
                    sync_clock(&mut st);
                    cmd(&mut st)
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                let woke = Instant::now();
                st.health.note_lag(woke.saturating_duration_since(deadline));
                let now = sync_clock(&mut st);
                st.node.handle(now, Input::Tick);
                if st.health.due(woke) {
                    let io = (st.io.datagrams_in, st.io.datagrams_out);
                    let store = st.node.status(now).work.blob_bytes;
                    st.health.sample(woke, &mut st.node, io, store);
                }
            }
            _ = tick_opt(&mut watchdog) => sd.0.watchdog(),
        }
        flush(&mut st, &sockets, &events);
    }
}

/// Sends everything the core asked for. Sends never wait: a full socket
/// buffer drops the datagram (as the network might) and counts it.
pub fn flush(st: &mut State, sockets: &Sockets, events: &broadcast::Sender<String>) {
    while let Some(out) = st.node.poll_output() {
        let (to, env) = match out {
            Output::Send { to, env } => (to, env),
            Output::Broadcast { env } => (sockets.broadcast_to, env),
            Output::Job(j) => {
                if let Some(svc) = st.services.clone() {
                    svc.dispatch(st, j);
                }
                continue;
            }
            Output::Wave(w) => {
                let tx = st.services.as_ref().map(|s| s.loop_tx());
                crate::waves::dispatch(st, w, tx);
                continue;
            }
            Output::Event(e) => {
                log_event(&e);
                if let ryx_core::Event::Incident { incident, notify: true } = &e {
                    if !st.alert_sinks.is_empty() {
                        let cluster = st.node.status(st.clock.now()).cluster_id;
                        crate::alerts::notify(&st.alert_sinks, &cluster, incident);
                    }
                }
                if events.receiver_count() > 0 {
                    if let Ok(s) = serde_json::to_string(&e) {
                        let _ = events.send(s);
                    }
                }
                continue;
            }
        };
        let bytes = match wire::encode(&env) {
            Ok(mut b) => {
                st.node.seal(&mut b);
                b
            }
            Err(e) => {
                tracing::warn!("not sending {}: {e}", env.msg.kind());
                st.io.send_errors += 1;
                continue;
            }
        };
        match st.faults.outgoing(to, to == sockets.broadcast_to) {
            crate::faults::Verdict::Send => {}
            crate::faults::Verdict::Drop => continue,
            crate::faults::Verdict::Delay(d) => {
                let sock = sockets.main.clone();
                st.io.bytes_out += bytes.len() as u64;
                st.io.datagrams_out += 1;
                if let Some(b) = st.bytes_out_by_kind.get_mut(env.msg.kind_index()) {
                    *b += bytes.len() as u64;
                }
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = sock.send_to(&bytes, to).await;
                });
                continue;
            }
        }
        match sockets.main.try_send_to(&bytes, to) {
            Ok(n) => {
                st.io.bytes_out += n as u64;
                st.io.datagrams_out += 1;
                if let Some(b) = st.bytes_out_by_kind.get_mut(env.msg.kind_index()) {
                    *b += n as u64;
                }
            }
            Err(e) => {
                st.io.send_errors += 1;
                tracing::debug!("send to {to} failed: {e}");
            }
        }
    }
}

fn log_event(e: &ryx_core::Event) {
    use ryx_core::Event::*;
    match e {
        NeighborUp { id, addr, long } => tracing::info!(%id, %addr, long, "neighbour up"),
        NeighborDown { id, reason } => tracing::info!(%id, ?reason, "neighbour down"),
        Suspect { id } => tracing::debug!(%id, "neighbour suspected"),
        Incident { incident, notify } => {
            if *notify {
                tracing::warn!(id = %incident.id, state = %incident.state, "incident {}", incident.summary)
            } else {
                tracing::info!(id = %incident.id, state = %incident.state, "incident {}", incident.summary)
            }
        }
        ItemDelivered { id, energy, hops, .. } => {
            tracing::debug!(key = %id.key, version = id.version, energy, hops, "item delivered")
        }
    }
}
