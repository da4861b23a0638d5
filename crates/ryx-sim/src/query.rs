//! The query scenario: query waves (`ryx_core`'s `node::wave`, the path of
//! `GET /v1/search`) at thousands of nodes. After the join, `--queries`
//! queries start at random live nodes, one after the other, each a wave
//! along the spanning tree and, when that one falls short, a wave over
//! every link (as the daemon does); every node
//! answers for itself at once (a holder of one chunk: compute is not what
//! this measures), and the driver counts, per wave, the `query` and
//! `query_reply` messages sent, the depth of the tree the wave built (the
//! hops from the root of the node reached last) against the root's
//! eccentricity in the graph of links (the least depth any tree could
//! have), the hops the answer travelled (twice the depth) and the time it
//! took; and checks that the answer covers every node exactly once.

use crate::sim::{Sim, Violation};
use ryx_core::node::{holder_answer, WaveOutput};
use ryx_core::wire::{Envelope, Message, WaveAnswer};
use ryx_core::Time;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The current wave's tallies (the simulator's, not the nodes').
#[derive(Default)]
pub(crate) struct WaveTally {
    /// Depth of each node reached, by slot (the root: 0).
    depth: HashMap<usize, u32>,
    query: u64,
    reply: u64,
    done: Option<(WaveAnswer, Time)>,
}

/// One wave's figures.
#[derive(Clone, Debug, Serialize)]
pub struct WaveFigures {
    /// Along the spanning tree (else over every link).
    pub tree: bool,
    /// Nodes alive.
    pub live: usize,
    /// Nodes the answer counts.
    pub answered: u32,
    /// Parts the answer calls incomplete.
    pub incomplete: u32,
    /// `query` + `query_reply` messages per live node.
    pub msgs_per_node: f64,
    /// `query` messages per node.
    pub query_per_node: f64,
    /// Depth of the wave's tree.
    pub depth: u32,
    /// The root's eccentricity in the graph of links.
    pub eccentricity: u32,
    /// Depth of the spanning tree from its leader (the most hops of any
    /// node to it), after the wave.
    pub tree_depth: u32,
    /// Hops from the question leaving the root to the last answer reaching
    /// it: twice the depth.
    pub hops: u32,
    /// Milliseconds from start to answer.
    pub ms: f64,
}

/// The query scenario's report.
#[derive(Clone, Debug, Serialize)]
pub struct QueryReport {
    /// Every wave (a query's tree wave, then its wave over every link if
    /// the first fell short).
    pub waves: Vec<WaveFigures>,
    /// Queries.
    pub queries: usize,
    /// Queries whose answer counted every live node once.
    pub complete: usize,
    /// Queries answered by the tree wave alone.
    pub by_tree: usize,
    /// Largest messages per node of any query (its waves together).
    pub max_msgs_per_node: f64,
    /// Largest hops / (2 × eccentricity) of any wave: 1 when every wave's
    /// tree is as shallow as any could be.
    pub max_hops_over_2depth: f64,
    /// Median milliseconds per query.
    pub p50_ms: f64,
}

impl Sim {
    /// Carries out the wave machinery's requests at slot `s`: a node
    /// answers for itself at once; an answer that ends a wave is noted.
    pub(crate) fn dispatch_waves(&mut self, s: usize, outs: Vec<WaveOutput>) -> Result<(), Violation> {
        let now = self.now();
        for o in outs {
            match o {
                WaveOutput::Evaluate { root, qid, .. } => {
                    let Some(node) = self.node_mut(s) else { continue };
                    let me = node.id();
                    let a = holder_answer(me, 0, 1, 1, serde_json::Value::Null);
                    node.wave_answer(now, root, qid, Ok(Some(a)));
                    // Its reply (or the root's Done) goes out with the next
                    // poll of outputs.
                    self.after_handle(s)?;
                }
                WaveOutput::Done { answer, .. } => {
                    if let Some(t) = self.wave.as_mut() {
                        t.done = Some((answer, now));
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts a wave's messages and the depth each node is first reached at.
    pub(crate) fn tally_wave(&mut self, from: usize, env: &Envelope) {
        let to = env.to.and_then(|id| self.slot_of(&id));
        let Some(t) = self.wave.as_mut() else { return };
        match &env.msg {
            Message::Query { .. } => {
                t.query += 1;
                let Some(d) = t.depth.get(&from).copied() else { return };
                if let Some(to) = to {
                    t.depth.entry(to).or_insert(d + 1);
                }
            }
            Message::QueryReply { .. } => t.reply += 1,
            _ => {}
        }
    }
}

/// The root's eccentricity in the graph of active links (BFS).
fn eccentricity(sim: &Sim, root: usize) -> u32 {
    let mut dist: HashMap<usize, u32> = HashMap::from([(root, 0)]);
    let mut q = VecDeque::from([root]);
    let mut far = 0;
    while let Some(s) = q.pop_front() {
        let d = dist[&s];
        far = far.max(d);
        let Some(node) = sim.node(s) else { continue };
        for id in node.active_ids() {
            if let Some(t) = sim.slot_of(&id).filter(|t| sim.is_alive(*t)) {
                if let std::collections::hash_map::Entry::Vacant(e) = dist.entry(t) {
                    e.insert(d + 1);
                    q.push_back(t);
                }
            }
        }
    }
    far
}

/// Runs one wave from `root` to its end; its figures.
fn one_wave(sim: &mut Sim, root: usize, tree: bool) -> Result<WaveFigures, Violation> {
    let live = sim.live_slots().len();
    let ecc = eccentricity(sim, root);
    sim.wave = Some(WaveTally { depth: HashMap::from([(root, 0)]), ..Default::default() });
    let t0 = sim.now();
    if let Some(node) = sim.node_mut(root) {
        node.start_wave(t0, "docs", "search", serde_json::json!({}), None, Duration::from_secs(10), tree);
    }
    sim.after_handle(root)?;
    let deadline = t0.plus(Duration::from_secs(15));
    sim.run_until(deadline, None, |s| s.wave.as_ref().is_some_and(|t| t.done.is_some()))?;
    // Let the last answers to duplicates drain.
    sim.run_for(Duration::from_millis(200))?;
    let t = sim.wave.take().unwrap_or_default();
    let Some((a, at)) = t.done else {
        return Err(sim.violation(Some(root), "a query wave did not end within 15 s".into()));
    };
    let n = live as f64;
    let depth = t.depth.values().copied().max().unwrap_or(0);
    let tree_depth = sim
        .live_slots()
        .into_iter()
        .filter_map(|s| sim.node(s).and_then(|x| x.tree_place()).map(|(p, _)| u32::from(p.dist)))
        .max()
        .unwrap_or(0);
    Ok(WaveFigures {
        tree,
        live,
        answered: a.holders,
        incomplete: a.incomplete,
        msgs_per_node: (t.query + t.reply) as f64 / n,
        query_per_node: t.query as f64 / n,
        depth,
        eccentricity: ecc,
        tree_depth,
        hops: 2 * depth,
        ms: at.since(t0).as_secs_f64() * 1e3,
    })
}

/// Runs `--queries` queries, one after the other, from random live nodes,
/// as `GET /v1/search` does: a wave along the tree, and over every link
/// when that one did not reach every node.
pub(crate) fn query_phase(sim: &mut Sim) -> Result<QueryReport, Violation> {
    let mut waves = Vec::new();
    let mut per_query = Vec::new();
    let mut complete = 0;
    let mut by_tree = 0;
    for _ in 0..sim.p.queries.max(1) {
        let live = sim.live_slots();
        let root = live[sim.ctl.below(live.len())];
        let t = one_wave(sim, root, true)?;
        let full = |w: &WaveFigures| w.incomplete == 0 && w.answered as usize == w.live;
        let mut msgs = t.msgs_per_node;
        let mut ms = t.ms;
        let mut ok = full(&t);
        by_tree += usize::from(ok);
        waves.push(t);
        if !ok {
            let e = one_wave(sim, root, false)?;
            msgs += e.msgs_per_node;
            ms += e.ms;
            ok = full(&e);
            waves.push(e);
        }
        complete += usize::from(ok);
        per_query.push((msgs, ms));
    }
    let max_msgs = per_query.iter().map(|q| q.0).fold(0.0, f64::max);
    let max_ratio = waves.iter().map(|w| f64::from(w.hops) / f64::from(2 * w.eccentricity.max(1))).fold(0.0, f64::max);
    let mut ms: Vec<f64> = per_query.iter().map(|q| q.1).collect();
    ms.sort_by(f64::total_cmp);
    let p50 = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
    Ok(QueryReport {
        waves,
        queries: per_query.len(),
        complete,
        by_tree,
        max_msgs_per_node: max_msgs,
        max_hops_over_2depth: max_ratio,
        p50_ms: p50,
    })
}
