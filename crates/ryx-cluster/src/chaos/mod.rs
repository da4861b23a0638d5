//! `chaos`: kill, pause, partition, lose or delay traffic — now, or while a
//! job runs — and undo every timed fault at its deadline.

pub mod faults;

use crate::cli::ChaosArgs;
use crate::cluster::graph::floor_for;
use crate::cluster::lifecycle::secs;
use crate::cluster::state::{unix_ms, RunDir};
use crate::cluster::Cluster;
use crate::interrupt;
use crate::jobs::run::{self, Source};
use crate::jobs::{self, render, Follower, Progress};
use crate::util::{clock_now, human, time_seed, Amount, Rng};
use anyhow::{bail, Context, Result};
use faults::{Effect, FaultKind, FaultRecord};
use ryx_api::Impairment;
use std::path::Path;
use std::time::{Duration, Instant};

/// A fault `chaos` can inject.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// SIGKILL.
    Kill(Amount),
    /// SIGSTOP, then SIGCONT.
    Pause(Amount, Duration),
    /// Two sides that cannot talk.
    Partition(Amount, Duration),
    /// Outgoing loss at some nodes.
    Loss(f64, Option<Amount>, Duration),
    /// Outgoing delay at some nodes.
    Delay(u64, u64, Option<Amount>, Duration),
}

impl Action {
    fn from_args(a: &ChaosArgs) -> Result<Option<Action>> {
        let d = a.for_;
        let need = |what: &str| -> Result<Duration> {
            match d {
                Some(d) if d.is_zero() => bail!("--for must be longer than 0"),
                Some(d) if d > Duration::from_secs(3600) => bail!("--for is at most 1h (faults always heal)"),
                Some(d) => Ok(d),
                None => bail!("{what} needs --for DURATION"),
            }
        };
        Ok(Some(if let Some(k) = a.kill {
            Action::Kill(k)
        } else if let Some(p) = a.pause {
            Action::Pause(p, need("--pause")?)
        } else if let Some(p) = a.partition {
            Action::Partition(p, need("--partition")?)
        } else if let Some(l) = a.loss {
            Action::Loss(l, a.targets, need("--loss")?)
        } else if let Some(ms) = a.delay {
            Action::Delay(ms, a.jitter, a.targets, need("--delay")?)
        } else {
            return Ok(None);
        }))
    }
}

/// What an injection did.
#[derive(Debug, Default)]
pub struct Injected {
    /// The fault record (timed faults).
    pub record: Option<u64>,
    /// Nodes killed.
    pub killed: Vec<usize>,
    /// When it ends.
    pub deadline: Option<Instant>,
}

/// `ryx-cluster chaos`.
pub fn chaos(dir_arg: Option<&Path>, args: ChaosArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let seed = args.seed.unwrap_or_else(time_seed);
    let mut rng = Rng::new(seed);
    let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
    if cluster.state.netns.is_some() {
        // Bridges, netem and iptables in the namespaces, signals to root's nodes.
        crate::cluster::netns::require().context("this cluster runs in network namespaces; chaos")?;
    }
    // Whatever an earlier, vanished chaos left past its deadline goes first.
    faults::heal_due(&mut cluster, "deadline", true)?;
    if args.heal {
        let (records, cleared, resumed, problems) = faults::heal_everything(&mut cluster)?;
        out!(
            "{} healed: {records} timed faults undone, network faults cleared on {cleared} nodes, {resumed} paused nodes resumed",
            clock_now()
        );
        for p in &problems {
            out!("  warning: {p}");
        }
        return Ok(());
    }
    let Some(action) = Action::from_args(&args)? else {
        bail!("give one of --kill, --pause, --partition, --loss, --delay or --heal");
    };
    if args.during_job {
        return during_job(&mut cluster, action, &args, &mut rng, seed);
    }
    let injected = {
        let _lock = dir.lock(Duration::from_secs(10))?;
        // Reload under the lock: another command may have changed the state.
        cluster.state = dir.load_required()?;
        inject(&mut cluster, action, &mut rng, seed, "", !args.detach)?
    };
    if let Action::Kill(_) = action {
        if args.wait {
            wait_heal(&mut cluster, secs(args.timeout))?;
        }
        return Ok(());
    }
    let (Some(id), Some(deadline)) = (injected.record, injected.deadline) else {
        return Ok(());
    };
    if args.detach {
        out!(
            "{} returning now; fault #{id} is undone at its deadline by the nodes' own expiry and the healer (or `ryx-cluster chaos --heal`)",
            clock_now()
        );
        return Ok(());
    }
    let completed = interrupt::sleep(deadline.saturating_duration_since(Instant::now()));
    heal_record(&mut cluster, id, if completed { "deadline" } else { "interrupt" }, "")?;
    Ok(())
}

/// Injects `action` now; prints what it did (lines start with `indent`).
/// `owned`: this process stays to undo the fault itself.
pub fn inject(
    cluster: &mut Cluster,
    action: Action,
    rng: &mut Rng,
    seed: u64,
    indent: &str,
    owned: bool,
) -> Result<Injected> {
    let owner = owned.then(std::process::id);
    let dir = cluster.dir.clone();
    let live = cluster.live();
    let running = cluster.running();
    match action {
        Action::Kill(amount) => {
            let killed = kill(cluster, amount, rng, seed, indent)?;
            faults::log_event(&dir, &format!("SIGKILL nodes {killed:?} (seed {seed})"));
            Ok(Injected { killed, ..Injected::default() })
        }
        Action::Pause(amount, d) => {
            let k = amount.of(running.len());
            let mut victims = rng.choose(&running, k);
            victims.sort_unstable();
            let effects = victims.iter().map(|&n| Effect { node: n, pause: true, ..Effect::default() }).collect();
            let what = format!("pause {} of {} running nodes {victims:?}", victims.len(), running.len());
            timed(cluster, FaultKind::Pause, what, effects, d, seed, indent, owner)
        }
        Action::Partition(amount, d) => {
            let k = amount.of(live.len());
            if k == 0 || k >= live.len() {
                bail!("a partition needs nodes on both sides: {amount} of {} live nodes is {k}", live.len());
            }
            if cluster.state.netns.is_some() {
                // Two bridges make two sides: one partition at a time.
                let now = unix_ms();
                if let Some(f) =
                    faults::read(&dir)?.faults.iter().find(|f| f.kind == FaultKind::Partition && f.active(now))
                {
                    bail!(
                        "partition #{} is in force until {}; heal it first (`chaos --heal`) or wait",
                        f.id,
                        faults::fmt_unix_ms(f.deadline_unix_ms)
                    );
                }
            }
            let mut a = rng.choose(&live, k);
            a.sort_unstable();
            let b: Vec<usize> = live.iter().copied().filter(|i| !a.contains(i)).collect();
            let what = format!("partition {a:?} | {b:?}");
            timed(cluster, FaultKind::Partition, what, faults::partition_effects(&a, &b), d, seed, indent, owner)
        }
        Action::Loss(p, targets, d) => {
            let nodes = pick(&live, targets, rng);
            let lose = Impairment { loss: p, ..Impairment::default() };
            let effects = nodes.iter().map(|&n| Effect { node: n, impairment: lose, ..Effect::default() }).collect();
            let what = format!("lose {:.1}% of outgoing datagrams at {} nodes {nodes:?}", p * 100.0, nodes.len());
            timed(cluster, FaultKind::Loss, what, effects, d, seed, indent, owner)
        }
        Action::Delay(ms, jitter, targets, d) => {
            let nodes = pick(&live, targets, rng);
            let delay = Impairment { delay_ms: ms, jitter_ms: jitter, ..Impairment::default() };
            let effects = nodes.iter().map(|&n| Effect { node: n, impairment: delay, ..Effect::default() }).collect();
            let j = if jitter > 0 { format!(" (+0..{jitter} ms jitter)") } else { String::new() };
            let what = format!("delay outgoing datagrams by {ms} ms{j} at {} nodes {nodes:?}", nodes.len());
            timed(cluster, FaultKind::Delay, what, effects, d, seed, indent, owner)
        }
    }
}

fn pick(live: &[usize], targets: Option<Amount>, rng: &mut Rng) -> Vec<usize> {
    let mut v = match targets {
        Some(a) => rng.choose(live, a.of(live.len())),
        None => live.to_vec(),
    };
    v.sort_unstable();
    v
}

#[allow(clippy::too_many_arguments)]
fn timed(
    cluster: &mut Cluster,
    kind: FaultKind,
    what: String,
    effects: Vec<Effect>,
    d: Duration,
    seed: u64,
    indent: &str,
    owner_pid: Option<u32>,
) -> Result<Injected> {
    if effects.is_empty() {
        out!("{indent}{} nothing to do: {what}", clock_now());
        return Ok(Injected::default());
    }
    let now = unix_ms();
    let deadline = Instant::now() + d;
    let rec = FaultRecord {
        id: 0,
        kind,
        what: what.clone(),
        effects,
        set_unix_ms: now,
        deadline_unix_ms: now + d.as_millis() as u64,
        healed_unix_ms: None,
        healed_by: None,
        owner_pid,
    };
    let until = faults::fmt_unix_ms(rec.deadline_unix_ms);
    let (id, notes) = faults::inject(cluster, rec)?;
    out!("{indent}{} fault #{id}: {what} for {} (until {until}; seed {seed})", clock_now(), human(d));
    for p in notes {
        out!("{indent}  {p}");
    }
    Ok(Injected { record: Some(id), deadline: Some(deadline), ..Injected::default() })
}

/// Undoes record `id` now (if still in force) and says so.
pub fn heal_record(cluster: &mut Cluster, id: u64, by: &str, indent: &str) -> Result<()> {
    let (healed, notes) = faults::heal_where(cluster, by, |f, _| f.id == id)?;
    match healed.first() {
        Some(f) => out!(
            "{indent}{} fault #{id} undone ({by}) after {}: {}",
            clock_now(),
            human(Duration::from_millis(unix_ms().saturating_sub(f.set_unix_ms))),
            f.what
        ),
        None => {
            let by = faults::read(&cluster.dir)?
                .faults
                .iter()
                .find(|f| f.id == id)
                .and_then(|f| f.healed_by.clone())
                .unwrap_or_else(|| "?".into());
            out!("{indent}{} fault #{id} was already undone (by {by})", clock_now())
        }
    }
    for p in notes {
        out!("{indent}  {p}");
    }
    Ok(())
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
                "{indent}{} SIGKILL node {i} (pid {}, id {}, {})",
                clock_now(),
                n.pid,
                n.node_id.as_ref().map_or("?", |id| id.as_str()),
                n.udp_addr()
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

/// `chaos ... --during-job`: start a job, inject the fault once it has done
/// `--at` of its units, undo the fault at its deadline, wait for the job,
/// show its result and check it against `ryx-node exec`.
fn during_job(cluster: &mut Cluster, action: Action, args: &ChaosArgs, rng: &mut Rng, seed: u64) -> Result<()> {
    let j = &args.job;
    let src = Source::from_args(&j.inputs, &j.size, j.corpus_seed)?;
    let (param_list, params) = run::params(&j.kind, &src, j.kernel.preset.as_deref(), &j.kernel.params)?;
    let entry = run::entry_node(cluster, None)?;
    out!("{} loading {} onto node {entry}", clock_now(), src.describe());
    let loaded = run::load(cluster, entry, &src, None, None)?;
    let job_id = run::submit(cluster, entry, &j.kind, &loaded, params, j.kernel.redundancy)?;
    let when = match args.after {
        Some(d) => format!("{} after the submit", human(d)),
        None => format!("{:.0}% done", args.at * 100.0),
    };
    out!(
        "{} job {job_id}: {} over {} in {} units, submitted at node {entry}; fault at {when}",
        clock_now(),
        j.kind,
        jobs::mib(loaded.bytes),
        loaded.units(),
    );
    let mut bar = Progress::new(&j.kind, loaded.bytes);
    let mut follower = Follower::new(job_id.clone(), entry);
    let mut injected: Option<Injected> = None;
    let mut healed = false;
    let at = args.at;
    let t_submit = Instant::now();
    let result = follower.wait(cluster, secs(j.job_timeout), Duration::from_millis(50), |c, job| {
        let (done, total) = jobs::units(job);
        let due = match args.after {
            Some(d) => t_submit.elapsed() >= d,
            None => total > 0 && done as f64 >= at * total as f64,
        };
        if injected.is_none() && !job.is_final() && due {
            bar.note(&format!("{} job at {done}/{total} units: injecting the fault", clock_now()));
            bar.finish();
            injected = Some(inject(c, action, rng, seed, "  ", true)?);
        }
        if let Some(inj) = &injected {
            if let (Some(id), Some(dl)) = (inj.record, inj.deadline) {
                if !healed && Instant::now() >= dl {
                    bar.finish();
                    heal_record(c, id, "deadline", "  ")?;
                    healed = true;
                }
            }
        }
        bar.update(job);
        Ok(())
    });
    bar.finish();
    // An interrupted or timed-out wait must not leave the fault in place
    // longer than its deadline; the healer covers the rest.
    let job = match result {
        Ok(j) => j,
        Err(e) => {
            if let Some(id) = injected.as_ref().and_then(|i| i.record) {
                if !healed {
                    let _ = heal_record(cluster, id, "interrupt", "  ");
                }
            }
            return Err(e);
        }
    };
    let Some(inj) = injected else {
        bail!(
            "job {job_id} finished ({}) before the fault was due ({when}), so no fault was injected; use a bigger --size, a smaller --at or --after",
            job.state,
        );
    };
    out!(
        "{} job {job_id} {} after {}{} ({} units re-issued, {} takeovers)",
        clock_now(),
        job.state,
        human(bar.elapsed()),
        if inj.killed.is_empty() { String::new() } else { format!(" with {} nodes killed", inj.killed.len()) },
        job.stats.reissued,
        job.stats.takeovers
    );
    if let (Some(id), Some(dl), false) = (inj.record, inj.deadline, healed) {
        out!("{} the job ended while fault #{id} holds; it is undone at its deadline", clock_now());
        let completed = interrupt::sleep(dl.saturating_duration_since(Instant::now()));
        heal_record(cluster, id, if completed { "deadline" } else { "interrupt" }, "")?;
    }
    jobs::check_done(&job)?;
    out!();
    out!("{}", render::job(&job).trim_end());
    let digest = job.result_digest.clone().unwrap_or_default();
    out!("result_digest: {digest}");
    if j.no_verify {
        return Ok(());
    }
    let (files, _tmp) = run::reference_files(&src, Some(&loaded), &std::env::temp_dir())?;
    let reference = run::reference(cluster, &j.kind, &files, &param_list, None)?;
    if reference.digest == digest {
        out!("reference:     {} (ryx-node exec, {}) — identical", reference.digest, human(reference.wall));
        Ok(())
    } else {
        bail!("result digest {digest} differs from the single-process reference {}", reference.digest)
    }
}
