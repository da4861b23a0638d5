//! `chaos`: kill or pause random live nodes.

use crate::cli::ChaosArgs;
use crate::cluster::Cluster;
use crate::graph::floor_for;
use crate::interrupt;
use crate::lifecycle::secs;
use crate::procfs::Liveness;
use crate::state::RunDir;
use crate::util::{clock_now, human, time_seed, Amount, Rng};
use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

/// `ryx-cluster chaos`.
pub fn chaos(dir_arg: Option<&Path>, args: ChaosArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let seed = args.seed.unwrap_or_else(time_seed);
    let mut rng = Rng::new(seed);
    match (args.kill, args.pause, args.for_) {
        (Some(amount), None, _) => {
            let _lock = dir.lock(Duration::from_secs(10))?;
            let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
            kill(&mut cluster, amount, &mut rng, seed, "")?;
            if args.wait {
                wait_heal(&mut cluster, secs(args.timeout))?;
            }
            Ok(())
        }
        (None, Some(amount), Some(d)) => {
            let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
            pause(&mut cluster, amount, d, &mut rng, seed)
        }
        _ => bail!("give either --kill N|P% or --pause N|P% --for DURATION"),
    }
}

/// SIGKILLs `amount` of the live nodes at once and saves their fate.
/// Returns the victims' indices.
/// Each printed line starts with `indent`.
pub fn kill(cluster: &mut Cluster, amount: Amount, rng: &mut Rng, seed: u64, indent: &str) -> Result<Vec<usize>> {
    let live = cluster.live();
    let k = amount.of(live.len());
    if k == 0 {
        out!("{indent}{} nothing to kill: {amount} of {} live nodes is 0", clock_now(), live.len());
        return Ok(Vec::new());
    }
    let mut victims = rng.choose(&live, k);
    victims.sort_unstable();
    let mut killed = Vec::new();
    for &i in &victims {
        let n = cluster.state.nodes[i].clone();
        if cluster.kill(i)? {
            out!(
                "{indent}{} SIGKILL node {i} (pid {}, id {}, port {})",
                clock_now(),
                n.pid,
                n.node_id.as_deref().unwrap_or("?"),
                n.udp_port
            );
            killed.push(i);
        } else {
            out!("{indent}{} node {i} (pid {}) was already gone", clock_now(), n.pid);
        }
    }
    cluster.save()?;
    let left = cluster.live().len();
    out!("{indent}{} killed {} of {} live nodes (seed {seed}); {left} remain", clock_now(), killed.len(), live.len());
    Ok(killed)
}

/// Waits until no survivor lists a dead neighbour, then until the graph
/// is healthy again; prints both times.
fn wait_heal(cluster: &mut Cluster, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    let every = Duration::from_millis(50);
    match cluster.wait_for(timeout, every, |h, _| h.dead_forgotten())? {
        Some((t, _)) => out!("{} every survivor dropped its dead neighbours after {}", clock_now(), human(t)),
        None => bail!("survivors still list dead neighbours after {}", human(timeout)),
    }
    let left = timeout.saturating_sub(t0.elapsed());
    match cluster.wait_ready(left, every)? {
        Some(_) => {
            let n = cluster.running().len();
            out!(
                "{} healed after {}: all {n} survivors have >= {} live neighbours, graph connected",
                clock_now(),
                human(t0.elapsed()),
                floor_for(n)
            );
            Ok(())
        }
        None => bail!("the survivors did not heal within {}", human(timeout)),
    }
}

/// SIGSTOPs `amount` of the running nodes, waits `d` (or until Ctrl-C),
/// then SIGCONTs them.
fn pause(cluster: &mut Cluster, amount: Amount, d: Duration, rng: &mut Rng, seed: u64) -> Result<()> {
    let running: Vec<usize> = cluster.running();
    let k = amount.of(running.len());
    if k == 0 {
        out!("{} nothing to pause: {amount} of {} running nodes is 0", clock_now(), running.len());
        return Ok(());
    }
    let mut victims = rng.choose(&running, k);
    victims.sort_unstable();
    let mut paused = Vec::new();
    for &i in &victims {
        if cluster.signal(i, Signal::SIGSTOP)? {
            let n = &cluster.state.nodes[i];
            out!("{} SIGSTOP node {i} (pid {}, id {})", clock_now(), n.pid, n.node_id.as_deref().unwrap_or("?"));
            paused.push(i);
        }
    }
    out!(
        "{} paused {} of {} running nodes (seed {seed}) for {}; Ctrl-C resumes them early",
        clock_now(),
        paused.len(),
        running.len(),
        human(d)
    );
    let completed = interrupt::sleep(d);
    let mut resumed = 0;
    for &i in &paused {
        if cluster.liveness(i) == Liveness::Gone {
            out!("{} node {i} is gone (killed while paused?)", clock_now());
            continue;
        }
        if cluster.signal(i, Signal::SIGCONT)? {
            out!("{} SIGCONT node {i} (pid {})", clock_now(), cluster.state.nodes[i].pid);
            resumed += 1;
        }
    }
    out!("{} resumed {resumed} nodes{}", clock_now(), if completed { "" } else { " (interrupted early)" });
    Ok(())
}
