//! Query waves: a question (a search over a dataset) passed down a tree of
//! neighbours and the answers merged on the way back — the echo algorithm
//! (propagation of information with feedback).
//!
//! The root (the node a client asked) sends `query` to every neighbour. A
//! node that hears a wave for the first time takes the sender as its
//! parent, passes the wave on to its other neighbours — except those the
//! sender named as asked by itself (`skip`: its neighbours, so a triangle
//! costs nothing) — and asks its driver for its own answer
//! ([`WaveOutput::Evaluate`]: its own chunks of the dataset). The first
//! copy to arrive wins, so the tree is a shortest-path tree for the
//! latencies of the moment. Every other copy says "not your child": a
//! `query` from a neighbour this node asked too crosses its own (each side
//! stops waiting for the other, no answer needed); from one it did not ask,
//! it is answered at once with an empty `query_reply`. When its own answer
//! and every child's are in, a node merges them (with the driver's
//! [`WaveMerge`]) and answers its parent; the root hands the whole answer
//! to its driver ([`WaveOutput::Done`]). (Plumtree's eager links were the
//! first tree tried: fewer messages, but trees two to three times deeper
//! than the graph, and parts of the graph unreached — `ryx-sim --scenario
//! query`.) Each hop gives its children three quarters of
//! the time it was given, so that a child silent past its deadline leaves
//! its parent time to answer without it, saying so (`incomplete`).
//!
//! Every node answers for its own chunks only, once, so a wave over a tree
//! that reaches every holder counts every chunk once. The root checks that
//! by the XOR of the holders' fingerprints against the holders it knows of
//! (`WaveAnswer::holders_xor`); anything less — a holder dead, a tree
//! broken mid-wave, a deadline passed — and the caller runs the question
//! as a job instead, which finds dead holders' copies and votes.
//!
//! Cost: two messages per link (query and answer on a tree link, two
//! crossing queries or a query and an empty answer on any other), none on
//! a link between two children of one parent; hops: twice the tree's
//! depth.

use super::*;
use crate::wire::{wave_mix, WaveAnswer, MAX_WAVE_BUDGET_MS, MAX_WAVE_PAYLOAD};
use std::collections::BTreeSet;

/// Merges the payloads of a wave's answers (the driver's: for a search,
/// top-k lists). `None` when they cannot be merged (the subtree's answer is
/// then marked incomplete).
pub type WaveMerge =
    fn(kind: &str, params: &serde_json::Value, payloads: Vec<serde_json::Value>) -> Option<serde_json::Value>;

/// What the wave machinery asks of the driver.
#[derive(Debug, Clone)]
pub enum WaveOutput {
    /// Answer wave `(root, qid)` for this node's own chunks of `dataset`
    /// (those it answered wave `pin` for, when given), and call
    /// [`Node::wave_answer`].
    Evaluate {
        /// The wave's root.
        root: NodeId,
        /// Its number.
        qid: u64,
        /// Dataset.
        dataset: String,
        /// Job kind.
        kind: String,
        /// Its parameters.
        params: serde_json::Value,
        /// Earlier wave whose chunks to answer for.
        pin: Option<u64>,
    },
    /// A wave this node started is over.
    Done {
        /// Its number.
        qid: u64,
        /// The whole network's merged answer.
        answer: WaveAnswer,
    },
}

/// A wave in progress here.
#[derive(Debug)]
pub(super) struct Wave {
    parent: Option<PeerInfo>,
    kind: String,
    params: serde_json::Value,
    /// Children whose answers are awaited.
    pending: BTreeSet<NodeId>,
    /// This node's own answer is in.
    local: bool,
    answer: WaveAnswer,
    payloads: Vec<serde_json::Value>,
    deadline: Time,
}

/// Waves in progress a node takes part in at most.
const MAX_WAVES: usize = 1024;
/// Waves remembered after they end (so a late copy is answered as a
/// duplicate, not taken for a new wave).
const MAX_WAVES_SEEN: usize = 4096;
/// How long an ended wave is remembered.
const WAVE_MEMORY: Duration = Duration::from_secs(60);

impl Node {
    /// Installs the driver's merge of wave answers (a node without one
    /// answers waves with counts only).
    pub fn set_wave_merge(&mut self, merge: WaveMerge) {
        self.wave_merge = Some(merge);
    }

    /// Starts a wave over the whole network from this node: every node
    /// answers `kind` with `params` for its own chunks of `dataset`. The
    /// answer comes as [`WaveOutput::Done`] with the returned number, within
    /// `budget` (capped at a minute). `tree`: along the spanning tree (two
    /// messages per node, but it misses nodes while the tree settles);
    /// else over every link.
    #[allow(clippy::too_many_arguments)]
    pub fn start_wave(
        &mut self,
        now: Time,
        dataset: &str,
        kind: &str,
        params: serde_json::Value,
        pin: Option<u64>,
        budget: Duration,
        tree: bool,
    ) -> u64 {
        self.now = now.max(self.now);
        let qid = loop {
            let q = self.rng.next_u64();
            if !self.waves.contains_key(&(self.id, q)) && !self.waves_seen.contains_key(&(self.id, q)) {
                break q;
            }
        };
        let budget_ms = (budget.as_millis() as u64).clamp(1, MAX_WAVE_BUDGET_MS as u64) as u32;
        self.metrics.waves_started += 1;
        self.join_wave(None, self.id, qid, dataset, kind, params, pin, budget_ms, &[], tree);
        qid
    }

    /// The driver's answer for this node's own chunks to wave `(root, qid)`
    /// (`None`: it holds nothing of the dataset; `Err`: it could not
    /// answer).
    pub fn wave_answer(&mut self, now: Time, root: NodeId, qid: u64, answer: Result<Option<WaveAnswer>, ()>) {
        self.now = now.max(self.now);
        let Some(w) = self.waves.get_mut(&(root, qid)) else { return };
        if w.local {
            return;
        }
        w.local = true;
        match answer {
            Ok(Some(a)) => add_answer(w, a),
            Ok(None) => {}
            Err(()) => w.answer.incomplete += 1,
        }
        w.answer.nodes += 1;
        self.maybe_finish_wave(root, qid);
    }

    /// Waves in progress here.
    pub fn waves_in_progress(&self) -> usize {
        self.waves.len()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_query(
        &mut self,
        from: PeerInfo,
        root: NodeId,
        qid: u64,
        dataset: String,
        kind: String,
        params: serde_json::Value,
        pin: Option<u64>,
        budget_ms: u32,
        skip: Vec<NodeId>,
        tree: bool,
    ) {
        let key = (root, qid);
        if let Some(w) = self.waves.get_mut(&key) {
            // Crossed our own question to it: it is not our child (nor we
            // its), and it will not wait for us either.
            if w.pending.remove(&from.id) {
                self.maybe_finish_wave(root, qid);
            } else {
                self.send(from, Message::QueryReply { root, qid, answer: None });
            }
            return;
        }
        if self.waves_seen.contains_key(&key) || root == self.id {
            self.send(from, Message::QueryReply { root, qid, answer: None });
            return;
        }
        if self.waves.len() >= MAX_WAVES {
            // Too many at once: answer "nothing here, incomplete" rather
            // than hold the sender to its deadline.
            self.metrics.waves_refused += 1;
            let a = WaveAnswer { nodes: 1, incomplete: 1, ..Default::default() };
            self.send(from, Message::QueryReply { root, qid, answer: Some(Box::new(a)) });
            return;
        }
        self.join_wave(Some(from), root, qid, &dataset, &kind, params, pin, budget_ms, &skip, tree);
    }

    #[allow(clippy::too_many_arguments)]
    fn join_wave(
        &mut self,
        parent: Option<PeerInfo>,
        root: NodeId,
        qid: u64,
        dataset: &str,
        kind: &str,
        params: serde_json::Value,
        pin: Option<u64>,
        budget_ms: u32,
        skip: &[NodeId],
        tree: bool,
    ) {
        let now = self.now;
        let except = parent.map(|p| p.id);
        let children: Vec<PeerInfo> = if tree {
            self.tree_links()
                .into_iter()
                .filter(|id| Some(*id) != except)
                .filter_map(|id| self.active.get(&id).map(|p| PeerInfo { id, addr: p.addr }))
                .collect()
        } else {
            self.active
                .iter()
                .filter(|(id, _)| Some(**id) != except && !skip.contains(id))
                .map(|(id, p)| PeerInfo { id: *id, addr: p.addr })
                .collect()
        };
        // Over every link, the sender's neighbours are asked by the sender;
        // along the tree, no two nodes ask the same one.
        let mut named: Vec<NodeId> = if tree { Vec::new() } else { self.active.keys().copied().collect() };
        named.truncate(crate::wire::MAX_WAVE_SKIP);
        let child_budget = budget_ms.saturating_mul(3) / 4;
        let wave = Wave {
            parent,
            kind: kind.to_string(),
            params: params.clone(),
            pending: children.iter().map(|c| c.id).collect(),
            local: false,
            answer: WaveAnswer::default(),
            payloads: Vec::new(),
            deadline: now.plus(Duration::from_millis(u64::from(budget_ms))),
        };
        self.waves.insert((root, qid), wave);
        if child_budget > 0 {
            for c in children {
                let msg = Message::Query {
                    root,
                    qid,
                    dataset: dataset.to_string(),
                    kind: kind.to_string(),
                    params: params.clone(),
                    pin,
                    budget_ms: child_budget,
                    skip: named.clone(),
                    tree,
                };
                self.send(c, msg);
            }
        } else if let Some(w) = self.waves.get_mut(&(root, qid)) {
            // No time left to ask anyone: answer for this node alone.
            w.answer.incomplete += w.pending.len() as u32;
            w.pending.clear();
        }
        self.outputs.push_back(Output::Wave(WaveOutput::Evaluate {
            root,
            qid,
            dataset: dataset.to_string(),
            kind: kind.to_string(),
            params,
            pin,
        }));
    }

    pub(super) fn on_query_reply(&mut self, from: NodeId, root: NodeId, qid: u64, answer: Option<Box<WaveAnswer>>) {
        let Some(w) = self.waves.get_mut(&(root, qid)) else { return };
        // Only a child asked may answer, once.
        if !w.pending.remove(&from) {
            return;
        }
        if let Some(a) = answer {
            add_answer(w, *a);
        }
        self.maybe_finish_wave(root, qid);
    }

    /// Ends the waves whose deadline passed, each answering with what it
    /// has (the silent children counted incomplete); forgets old ones.
    pub(super) fn expire_waves(&mut self) {
        let now = self.now;
        let late: Vec<(NodeId, u64)> = self.waves.iter().filter(|(_, w)| now >= w.deadline).map(|(k, _)| *k).collect();
        for (root, qid) in late {
            if let Some(w) = self.waves.get_mut(&(root, qid)) {
                w.answer.incomplete += w.pending.len() as u32 + u32::from(!w.local);
                w.pending.clear();
                w.local = true;
            }
            self.maybe_finish_wave(root, qid);
        }
        self.waves_seen.retain(|_, t| now.since(*t) < WAVE_MEMORY);
    }

    /// A child that is no longer a neighbour will not answer: its subtree
    /// is missing (counted incomplete), and no one waits for it.
    pub(super) fn wave_child_gone(&mut self, id: NodeId) {
        let keys: Vec<(NodeId, u64)> =
            self.waves.iter().filter(|(_, w)| w.pending.contains(&id)).map(|(k, _)| *k).collect();
        for (root, qid) in keys {
            if let Some(w) = self.waves.get_mut(&(root, qid)) {
                w.pending.remove(&id);
                w.answer.incomplete += 1;
            }
            self.maybe_finish_wave(root, qid);
        }
    }

    fn maybe_finish_wave(&mut self, root: NodeId, qid: u64) {
        let done = self.waves.get(&(root, qid)).is_some_and(|w| w.local && w.pending.is_empty());
        if !done {
            return;
        }
        let Some(mut w) = self.waves.remove(&(root, qid)) else { return };
        if self.waves_seen.len() >= MAX_WAVES_SEEN {
            if let Some(oldest) = self.waves_seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.waves_seen.remove(&oldest);
            }
        }
        self.waves_seen.insert((root, qid), self.now);
        let payloads = std::mem::take(&mut w.payloads);
        w.answer.payload = match payloads.len() {
            0 => serde_json::Value::Null,
            1 => payloads.into_iter().next().unwrap_or_default(),
            _ => match self.wave_merge.and_then(|m| m(&w.kind, &w.params, payloads)) {
                Some(p) => p,
                None => {
                    w.answer.incomplete += 1;
                    serde_json::Value::Null
                }
            },
        };
        if wire::value_len(&w.answer.payload) > MAX_WAVE_PAYLOAD {
            w.answer.payload = serde_json::Value::Null;
            w.answer.incomplete += 1;
        }
        match w.parent {
            Some(p) => self.send(p, Message::QueryReply { root, qid, answer: Some(Box::new(w.answer)) }),
            None => {
                self.metrics.waves_done += 1;
                self.outputs.push_back(Output::Wave(WaveOutput::Done { qid, answer: w.answer }));
            }
        }
    }
}

/// Adds a subtree's (or this node's) answer to a wave's.
fn add_answer(w: &mut Wave, a: WaveAnswer) {
    let s = &mut w.answer;
    s.nodes = s.nodes.saturating_add(a.nodes);
    s.holders = s.holders.saturating_add(a.holders);
    s.holders_xor ^= a.holders_xor;
    s.snapshot_xor ^= a.snapshot_xor;
    s.chunks = s.chunks.saturating_add(a.chunks);
    s.bytes = s.bytes.saturating_add(a.bytes);
    s.incomplete = s.incomplete.saturating_add(a.incomplete);
    if !a.payload.is_null() {
        w.payloads.push(a.payload);
    }
}

/// A holder's own answer's figures: its fingerprint and that of the chunks
/// it answered for (`chunks_digest`: any digest of their names, in order).
pub fn holder_answer(
    node: NodeId,
    chunks_digest: u64,
    chunks: u64,
    bytes: u64,
    payload: serde_json::Value,
) -> WaveAnswer {
    WaveAnswer {
        payload,
        nodes: 0,
        holders: 1,
        holders_xor: wave_mix(node.0, 0),
        snapshot_xor: wave_mix(node.0, chunks_digest),
        chunks,
        bytes,
        incomplete: 0,
    }
}
