//! `ryx-node`: the Ryx daemon (and `ryx-node exec`, the single-process
//! reference run of a job). A thin binary over the `ryx_node` library:
//! start-up, signals and the serving loop live here, everything else there.

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use ryx_core::{Input, Node};
use ryx_node::cli::{self, Cli, Command, DaemonArgs, DiscoveryArg, LogFormat};
use ryx_node::{access, config_file, exec, http, members, resolve, runtime, server, work};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The configuration file feeds the parser through the environment, so
    // it is read first, while the process has only this thread.
    let from_file = match config_file::load(&Cli::command(), &argv) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ryx-node: {e:#}");
            return ExitCode::from(2);
        }
    };
    let matches = Cli::command().get_matches_from(&argv);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cli.command.is_none() && cli.daemon.print_config {
        print!("{}", config_file::render(&Cli::command(), &matches, &from_file));
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Exec(args)) => exec::run(args),
        Some(Command::Run(args)) => ryx_node::run::run(args),
        Some(Command::Search(args)) => ryx_node::run::search(args),
        None => {
            // Sources listed by the configuration file are read again on
            // SIGHUP (those given on the command line stay as they are).
            let hup_sources =
                from_file.iter().any(|v| v == "RYX_SOURCES").then(|| config_file::locate(&argv)).flatten();
            daemon(cli.daemon, hup_sources)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ryx-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status when the event loop dies (EX_SOFTWARE): the supervisor
/// restarts the node.
const EXIT_LOOP_DIED: i32 = 70;

fn init_logs(args: &DaemonArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Human => b.with_ansi(false).init(),
    }
}

/// 64 bits from the OS-seeded hasher of the standard library, mixed with the
/// time and process id: enough for node ids and protocol randomness.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

fn daemon(args: DaemonArgs, hup_sources: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    init_logs(&args);
    let cfg = args.node_config();
    cfg.validate().context("invalid configuration")?;
    if args.discovery == DiscoveryArg::SeedNodes && args.seeds.is_empty() {
        anyhow::bail!("--discovery seed-nodes needs --seeds host:port[,host:port...]");
    }
    let faults = match &args.fault {
        Some(f) => cli::parse_fault(f).map_err(anyhow::Error::msg)?,
        None => work::Faults::default(),
    };
    let keys = args.keyring()?;
    access::configure(args.api_token()?, args.protect_reads);
    let identity = args.identity()?;
    let id = identity.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ryx-node")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let sockets = runtime::bind(
            args.bind,
            args.port,
            args.broadcast_addr,
            args.discovery_port,
            args.discovery == DiscoveryArg::Broadcast,
        )?;
        let local = sockets.main.local_addr()?;
        let http_addr = args.http_addr();
        // The addresses other nodes reach this one at: a wildcard bind
        // (0.0.0.0, ::) needs --advertise-addr.
        let advertise = |a: SocketAddr| match args.advertise_addr {
            Some(ip) => Ok(SocketAddr::new(ip, a.port())),
            None if a.ip().is_unspecified() => Err(anyhow::anyhow!(
                "{a} is a wildcard address: give --advertise-addr, the address other nodes reach this one at"
            )),
            None => Ok(a),
        };
        let addr = advertise(local)?;
        let http_public = advertise(http_addr)?;
        let own_http = vec![http_public, http_addr];
        members::configure_peer(id, &keys, access::token().as_deref(), own_http.clone());
        let listener =
            tokio::net::TcpListener::bind(http_addr).await.with_context(|| format!("cannot bind HTTP {http_addr}"))?;
        let clock = runtime::Clock::new();
        let mut node = Node::new(cfg, identity, addr, random_u64(), clock.now());
        node.set_wave_merge(ryx_node::waves::merge);
        node.set_wall_clock(clock.now(), runtime::Clock::wall());
        node.set_http_addr(http_public);
        if keys.is_empty() {
            tracing::info!("datagram authentication off (no --secret-file or RYX_SECRET)");
        } else {
            let ids: Vec<String> = keys.ids().iter().map(|k| format!("{k:08x}")).collect();
            tracing::info!(keys = ?ids, "datagram authentication on");
        }
        node.set_auth(keys.clone(), random_u64());
        let (handle, loop_task) =
            runtime::spawn(node, clock, sockets, args.workers(), faults, args.enable_fault_injection);
        if !args.alertmanager.is_empty() {
            let sinks = args.alertmanager.clone();
            tracing::info!(sinks = ?sinks.iter().map(|s| &s.authority).collect::<Vec<_>>(), "incidents go to Alertmanager");
            let _ = handle.call(move |st| st.alert_sinks = sinks).await;
        }
        if faults.corrupt_results > 0.0 {
            tracing::warn!(p = faults.corrupt_results, "fault injection: corrupting partial results");
        }
        tracing::info!(node_id = %id, udp = %addr, http = %http_addr, cluster = %args.cluster_id,
            discovery = ?args.discovery, "ryx-node started");
        if !args.seeds.is_empty() {
            tokio::spawn(resolve_seeds(
                handle.clone(),
                args.seeds.clone(),
                Duration::from_secs(args.seed_resolve_s.max(1)),
            ));
        }
        let spooling = ryx_node::sources::Spooling {
            dir: args.spool_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("ryx-spool-{id}"))),
            node: id.to_string(),
        };
        let sources = ryx_node::sources::SourceSet::new(
            args.sources.clone(),
            args.chunk_size.max(1),
            args.source_copies,
            spooling,
        );
        if !args.sources.is_empty() || hup_sources.is_some() {
            let names: Vec<&str> = args.sources.iter().map(|s| s.name.as_str()).collect();
            tracing::info!(sources = ?names, "following this node's own data");
            let held = sources.clone();
            handle.call(move |s| s.source_set = held).await?;
            tokio::spawn(ryx_node::sources::follow(handle.clone(), sources.clone()));
        }
        // Search indexes of the units this node runs are kept within a
        // quarter of its memory limit (by the bytes of the units).
        ryx_compute::search::set_index_cache_bytes(
            (args.memory_limit / 4).min(ryx_compute::search::DEFAULT_INDEX_CACHE_BYTES as u64) as usize,
        );
        let limits = http::Limits {
            memory: args.memory_limit,
            chunk_size: args.chunk_size as usize,
            max_uploads: args.max_uploads.max(1),
            max_event_streams: args.max_event_streams,
            body_timeout: Duration::from_millis(args.http_timeout_ms.max(100)),
        };
        let app = http::router(handle.clone(), limits);
        let serving = server::ServerConfig {
            max_connections: args.max_connections.max(16),
            header_timeout: Duration::from_millis(args.http_timeout_ms.max(100)),
            ..Default::default()
        };
        if let Some(ro) = args.read_only_http {
            let ro_listener = tokio::net::TcpListener::bind(ro)
                .await
                .with_context(|| format!("cannot bind --read-only-http {ro}"))?;
            let ro_app = app.clone().layer(axum::middleware::from_fn(access::read_only));
            tracing::info!(addr = %ro, "read-only API listening");
            tokio::spawn(server::serve(ro_listener, ro_app, serving, std::future::pending()));
        }
        let app = app.layer(axum::middleware::from_fn(access::require_token));
        if access::enabled() {
            tracing::info!(protect_reads = args.protect_reads, "HTTP API token required for changes");
        }
        let hup_sources = hup_sources.map(|file| (file, sources));
        tokio::spawn(reload_on_hup(handle.clone(), args.clone(), id, own_http, hup_sources));
        // On SIGTERM/SIGINT the node leaves while the API still serves (so
        // neighbours can fetch what it hands over), then the server stops:
        // open requests (a connected dashboard's event stream never ends by
        // itself) get a short grace period, then the process exits.
        let drain = Duration::from_millis(args.shutdown_timeout_ms);
        let h = handle.clone();
        let shutdown = async move {
            shutdown_signal().await;
            hand_over(&h, drain).await;
            tracing::info!("closing open HTTP connections");
        };
        let mut loop_task = loop_task;
        tokio::select! {
            _ = server::serve(listener, app, serving, shutdown) => {}
            r = &mut loop_task => {
                // The event loop owns the node: without it the process
                // only answers 503. End it, non-zero, so that a supervisor
                // (systemd, Docker, Kubernetes) restarts the node.
                let why = match r {
                    Ok(()) => "it returned".to_string(),
                    Err(e) if e.is_panic() => "it panicked".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!("the node's event loop stopped ({why}); exiting");
                std::process::exit(EXIT_LOOP_DIED);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        loop_task.abort();
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Graceful leave: tells the neighbours (they replace this node at once),
/// offers the blobs only this node holds to them, and waits — at most
/// `limit` — until each has a copy elsewhere and running work units have
/// reported their results.
async fn hand_over(handle: &runtime::Handle, limit: Duration) {
    let start = std::time::Instant::now();
    // Tell systemd at once: the stop has begun (the watchdog may stop now).
    runtime::sdnotify::notify_stopping();
    let first = handle.call(|s| {
        s.node.leave(s.clock.now());
        s.node.handover_pending()
    });
    let Ok((blobs, units)) = first.await else { return };
    tracing::info!(blobs, units, limit_ms = limit.as_millis() as u64, "leaving: handing over blobs and work");
    let mut left = (blobs, units);
    while left != (0, 0) && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match handle.call(|s| s.node.handover_pending()).await {
            Ok(p) => left = p,
            Err(_) => return,
        }
    }
    if left == (0, 0) {
        tracing::info!(ms = start.elapsed().as_millis() as u64, "hand-over complete");
    } else {
        tracing::warn!(blobs = left.0, units = left.1, "hand-over incomplete at the shutdown deadline");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// SIGHUP: rereads what can change without a restart — the cluster keys
/// (rotation), the API token, and the sources when the configuration file
/// lists them. A file that cannot be read leaves the current value in place.
async fn reload_on_hup(
    handle: runtime::Handle,
    args: DaemonArgs,
    me: ryx_core::NodeId,
    own: Vec<SocketAddr>,
    sources: Option<(std::path::PathBuf, ryx_node::sources::SourceSet)>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    let mut current = args.keyring().unwrap_or_default();
    while hup.recv().await.is_some() {
        match args.keyring() {
            Ok(keys) => {
                let ids: Vec<String> = keys.ids().iter().map(|k| format!("{k:08x}")).collect();
                let boot = random_u64();
                current = keys.clone();
                if handle.call(move |s| s.node.set_auth(keys, boot)).await.is_err() {
                    return;
                }
                tracing::info!(keys = ?ids, "SIGHUP: cluster keys reloaded");
            }
            Err(e) => tracing::error!("SIGHUP: keeping the current keys: {e:#}"),
        }
        match args.api_token() {
            Ok(t) => {
                access::configure(t, args.protect_reads);
                tracing::info!(token = access::enabled(), "SIGHUP: API token reloaded");
            }
            Err(e) => tracing::error!("SIGHUP: keeping the current API token: {e:#}"),
        }
        members::configure_peer(me, &current, access::token().as_deref(), own.clone());
        if let Some((file, set)) = &sources {
            match config_file::sources(&Cli::command(), file) {
                Ok(specs) => {
                    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
                    set.replace(specs);
                    tracing::info!(sources = ?names, "SIGHUP: sources reloaded");
                }
                Err(e) => tracing::error!("SIGHUP: keeping the current sources: {e:#}"),
            }
        }
    }
}

/// Resolves seed host names now and then again periodically (quickly while
/// none resolves), so a DNS name listing many addresses seeds them all.
async fn resolve_seeds(handle: runtime::Handle, seeds: Vec<String>, every: Duration) {
    loop {
        let mut addrs = Vec::new();
        for s in &seeds {
            match resolve::lookup_host(s.as_str()).await {
                Ok(it) => addrs.extend(it),
                Err(e) => tracing::warn!(seed = %s, "cannot resolve seed: {e}"),
            }
        }
        addrs.sort();
        addrs.dedup();
        let found = !addrs.is_empty();
        tracing::debug!(?addrs, "seeds resolved");
        if handle.call(move |s| s.node.handle(s.clock.now(), Input::Seeds(addrs))).await.is_err() {
            return;
        }
        tokio::time::sleep(if found { every } else { Duration::from_secs(2) }).await;
    }
}
