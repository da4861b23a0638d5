//! `ryx-control`: the dashboard as a standalone server, connected to any
//! live node and switching to another when that one dies.

use clap::Parser;
use ryx_control::server::Control;
use std::net::SocketAddr;
use std::time::Duration;

/// Serve the Ryx dashboard, proxying the API of a live node.
#[derive(Parser, Debug)]
#[command(name = "ryx-control", version)]
struct Args {
    /// HTTP address of a node to start from (HOST:PORT). Others are learned
    /// from its topology and used when it dies.
    #[arg(long, env = "RYX_CONTROL_NODE")]
    node: String,
    /// Address to serve the dashboard on.
    #[arg(long, env = "RYX_CONTROL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How often to refresh the list of nodes (and check the connected one), ms.
    #[arg(long, env = "RYX_CONTROL_REFRESH_MS", default_value_t = 3000)]
    refresh_ms: u64,
    /// The cluster's secret file (as the nodes'): nodes must then also
    /// prove membership of the cluster before the dashboard relays to them
    /// or fails over onto them.
    #[arg(long, env = "RYX_SECRET_FILE", value_name = "FILE")]
    secret_file: Option<std::path::PathBuf>,
    /// Log filter (e.g. info, debug).
    #[arg(long, env = "RYX_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("ryx-control: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let seed = tokio::net::lookup_host(&args.node)
        .await
        .map_err(|e| format!("cannot resolve --node {}: {e}", args.node))?
        .next()
        .ok_or_else(|| format!("--node {} resolves to no address", args.node))?;
    let member_keys = match &args.secret_file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("cannot read --secret-file {}: {e}", p.display()))?;
            let keys = ryx_core::auth::Keyring::parse(&text);
            if keys.is_empty() {
                return Err("--secret-file holds no secret".into());
            }
            keys.subkeys(ryx_core::identity::HTTP_MEMBER_CONTEXT)
        }
        None => Vec::new(),
    };
    let control = Control::with_keys(seed, Duration::from_millis(args.refresh_ms.max(200)), member_keys);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(dashboard = %format!("http://{local}/ui/"), node = %seed, "ryx-control serving");
    // The first line on stdout is the address, for scripts and tests.
    println!("ryx-control listening on http://{local}/ui/");
    tokio::spawn(control.clone().watch());
    let app = control.router();
    // No graceful shutdown: event streams never end by themselves.
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
