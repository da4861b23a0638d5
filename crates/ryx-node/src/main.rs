//! `ryx-node`: the Ryx daemon (and `ryx-node exec`, the single-process
//! reference run of a job).

mod api_jobs;
mod cli;
mod client;
mod events;
mod exec;
mod faults;
mod http;
mod metrics;
mod runtime;
mod store;
mod work;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, DaemonArgs, DiscoveryArg, LogFormat};
use ryx_core::{Input, Node, NodeId};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Exec(args)) => exec::run(args),
        None => daemon(cli.daemon),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ryx-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

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

fn daemon(args: DaemonArgs) -> anyhow::Result<()> {
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
    let id = match &args.node_id {
        Some(s) => s.parse::<NodeId>().context("--node-id")?,
        None => NodeId(random_u64()),
    };
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
        let addr = sockets.main.local_addr()?;
        let http_addr = SocketAddr::new(args.bind, args.http_port());
        let listener =
            tokio::net::TcpListener::bind(http_addr).await.with_context(|| format!("cannot bind HTTP {http_addr}"))?;
        let clock = runtime::Clock::new();
        let mut node = Node::new(cfg, id, addr, random_u64(), clock.now());
        node.set_http_addr(http_addr);
        let (handle, loop_task) =
            runtime::spawn(node, clock, sockets, args.workers(), faults, args.enable_fault_injection);
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
        let app = http::router(
            handle.clone(),
            http::Limits { memory: args.memory_limit, chunk_size: args.chunk_size as usize },
        );
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
        server.await.context("HTTP server failed")?;
        // Graceful leave: tell the neighbours, give the datagrams a moment.
        tracing::info!("shutting down: announcing leave to neighbours");
        let _ = handle.call(|s| s.node.leave(s.clock.now())).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        loop_task.abort();
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
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

/// Resolves seed host names now and then again periodically (quickly while
/// none resolves), so a DNS name listing many addresses seeds them all.
async fn resolve_seeds(handle: runtime::Handle, seeds: Vec<String>, every: Duration) {
    loop {
        let mut addrs = Vec::new();
        for s in &seeds {
            match tokio::net::lookup_host(s.as_str()).await {
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
