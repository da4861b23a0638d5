//! `demo`: the guided tour (the README's first command).

use crate::chaos;
use crate::cli::DemoArgs;
use crate::graph::floor_for;
use crate::info;
use crate::inspect::{snapshot, status_table, summary_line};
use crate::lifecycle::TempCluster;
use crate::measure::time_info_spread;
use crate::nodebin;
use crate::ports::LOOPBACK_BROADCAST;
use crate::state::RunDir;
use crate::util::{human, time_seed, Amount, Rng};
use anyhow::{bail, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

const STEPS: usize = 5;

/// Bold text on a terminal (unless NO_COLOR is set), plain otherwise.
fn heading(step: usize, text: &str) {
    let styled = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if styled {
        out!("\n\x1b[1m[{step}/{STEPS}] {text}\x1b[0m");
    } else {
        out!("\n[{step}/{STEPS}] {text}");
    }
}

fn indent(text: &str) {
    for l in text.lines() {
        out!("      {l}");
    }
}

/// `ryx-cluster demo`.
pub fn demo(dir_arg: Option<&Path>, args: DemoArgs) -> Result<()> {
    let n = usize::from(args.nodes);
    let seed = args.seed.unwrap_or_else(time_seed);
    let mut rng = Rng::new(seed);
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    let dir = dir_arg.map(|d| RunDir::resolve(Some(d))).transpose()?;
    let mut tc = TempCluster::create(dir, node_bin, Vec::new(), args.base_port, "demo")?;
    let timeout = Duration::from_secs(60);

    out!("Ryx demo: {n} ryx-node processes on this machine, talking only over loopback.");
    out!(
        "Run dir {} · cluster {} · discovery by broadcast on {LOOPBACK_BROADCAST}:{}",
        tc.cluster.dir.path().display(),
        tc.cluster.state.cluster_id,
        tc.cluster.state.discovery_port
    );

    heading(1, &format!("Start {n} nodes"));
    let t0 = Instant::now();
    tc.spawn(n)?;
    let ports: Vec<u16> = tc.cluster.state.nodes.iter().map(|r| r.udp_port).collect();
    indent(&format!(
        "{n} processes up, every HTTP API answering after {} (ports {}–{}); each knows nobody yet.",
        human(t0.elapsed()),
        ports.iter().min().copied().unwrap_or(0),
        ports.iter().max().copied().unwrap_or(0)
    ));

    heading(2, "Let them find each other");
    indent("No seed list, no coordinator: a node broadcasts a hello on loopback, links to a few");
    indent("peers that answer, and keeps a passive list of others to replace them with.");
    let k = floor_for(n);
    match tc.cluster.wait_ready(timeout, Duration::from_millis(50))? {
        Some(_) => indent(&format!(
            "Connected after {}: every node has >= {k} neighbours and the neighbour graph is connected.",
            human(t0.elapsed())
        )),
        None => bail!(
            "the nodes did not connect within {}; their logs are in {}",
            human(timeout),
            tc.cluster.dir.path().display()
        ),
    }
    let snap = snapshot(&mut tc.cluster);
    out!();
    indent(&status_table(&tc.cluster, &snap));
    indent(&summary_line(&snap));

    heading(3, "Spread information by energy-based diffusion");
    let origin = rng.below(n);
    let value = format!("hello from node {origin}");
    indent(&format!("put \"greeting\" = {value:?} at node {origin}; it travels neighbour to neighbour,"));
    indent("each hop passing on a little less energy, until it runs out.");
    let spread = time_info_spread(&tc.cluster, origin, "greeting", serde_json::json!(value), Duration::from_secs(10))?;
    match spread.full {
        Some(t) => indent(&format!(
            "Every node has it after {}: {}/{} nodes, the farthest {} from node {origin}.",
            human(t),
            spread.holding,
            spread.asked,
            match spread.max_hops {
                Some(1) => "1 hop".to_string(),
                Some(h) => format!("{h} hops"),
                None => "? hops".to_string(),
            }
        )),
        None => indent(&format!("Only {}/{} nodes got it within 10 s.", spread.holding, spread.asked)),
    }

    heading(4, "Chaos: SIGKILL 30% of the nodes at once");
    let t_kill = Instant::now();
    let victims = chaos::kill(&mut tc.cluster, Amount::Percent(30.0), &mut rng, seed, "      ")?;
    let survivors = n - victims.len();
    indent(&format!(
        "No goodbye from the dead: each survivor notices its silent neighbours by probing them ({} nodes left).",
        survivors
    ));
    match tc.cluster.wait_for(timeout, Duration::from_millis(25), |h, _| h.dead_forgotten())? {
        Some((t, _)) => indent(&format!("Detected: after {} no survivor lists a dead neighbour any more.", human(t))),
        None => bail!("survivors still list dead neighbours after {}", human(timeout)),
    }
    match tc.cluster.wait_ready(timeout, Duration::from_millis(25))? {
        Some(_) => indent(&format!(
            "Replaced: after {} every survivor has >= {} live neighbours again, from its passive list, and the graph is connected.",
            human(t_kill.elapsed()),
            floor_for(survivors)
        )),
        None => bail!("survivors did not heal within {}", human(timeout)),
    }
    let hs = info::holdings(&mut tc.cluster, "greeting");
    let held = hs.iter().filter(|h| h.item.is_some()).count();
    indent(&format!("\"greeting\" is still held by {held}/{} survivors: no single copy to lose.", hs.len()));
    let snap = snapshot(&mut tc.cluster);
    out!();
    indent(&status_table(&tc.cluster, &snap));
    indent(&summary_line(&snap));

    let dir = tc.cluster.dir.path().to_path_buf();
    if args.keep {
        heading(5, "Keep the cluster running (--keep)");
        tc.keep();
        let d = format!(" --dir {}", dir.display());
        indent(&format!("The {survivors} survivors keep running. Try:"));
        indent(&format!("ryx-cluster{d} status"));
        indent(&format!("ryx-cluster{d} add --nodes 3"));
        indent(&format!("ryx-cluster{d} chaos --kill 2 --wait"));
        indent(&format!("ryx-cluster{d} logs --node 0"));
        indent(&format!("ryx-cluster{d} stop"));
    } else {
        heading(5, "Stop");
        let r = tc.stop()?;
        drop(tc);
        indent(&format!(
            "{} nodes ended on SIGTERM after telling their neighbours they leave{}; run dir removed.",
            r.terminated,
            if r.killed > 0 { format!(", {} needed SIGKILL", r.killed) } else { String::new() }
        ));
        out!();
        out!("Next: `ryx-cluster start --nodes 10` for a cluster that stays, `ryx-cluster measure --nodes 50` for numbers,");
        out!("      `ryx-cluster demo --keep` to keep this one, `ryx-cluster --help` for the rest.");
    }
    Ok(())
}
