//! Learning by gossip: a multi-class logistic regression trained where its
//! rows live, with no parameter server and no row leaving its node.
//!
//! **The model.** Softmax regression: `classes × (features + 1)` weights
//! (a bias per class), L2-regularised by `lambda`; the objective is the
//! mean cross-entropy over every training row of the network plus
//! `lambda/2 ‖w‖²`.
//!
//! **The protocol: gradient tracking over push-pull averaging.** Every
//! node keeps a model `x`, a momentum `v`, and a *tracker*: its estimate
//! of the network's mean of each node's input, where a node's input is the
//! sum of its rows' gradients at its own model, its number of rows, and
//! its hold-out rows' hits and count. The tracker is the push-pull
//! averaging with flows of [`crate::agg`], over a dense vector: each link
//! carries the running totals of what each end took, so a lost message is
//! made good by the next, and the mass of the network is always the live
//! nodes' inputs. Because a node's estimate is its input plus its flows, a
//! node whose gradient changes moves its estimate by exactly that change:
//! the tracker follows the network's mean gradient as the models move
//! (Nedić, Olshevsky and Shi's DIGing; Pu and Nedić's gradient tracking).
//!
//! Each cycle (`period_ms`) a node:
//! 1. sets its input to its rows' gradient sum at `x` (and its counts);
//! 2. steps `v ← momentum·v + (g/n + lambda·x)`, `x ← x − step·v`, where
//!    `g` and `n` are the tracker's estimates of the mean gradient sum and
//!    the mean number of rows (their ratio is the network's mean gradient
//!    per row, whatever the number of nodes);
//! 3. pushes `x`, `v` and its tracker totals to one neighbour, which
//!    merges and answers with its own: both ends average `x` and `v`
//!    (weighted by *age*, the cycles a model has trained, so a node that
//!    just joined adopts its neighbour's model) and move half their
//!    trackers' difference.
//!
//! When the models agree this is gradient descent with momentum on the
//! whole network's rows; the averaging keeps them close. Gossip learning
//! that merges models trained on a node's own rows only (Ormándi, Hegedűs
//! and Jelasity 2013) reached 73 % on the digits with 1,000 nodes of 1–2
//! rows in 100 cycles where this reaches 95 % (docs/learning.md).
//!
//! A message carries one *part* of the vectors ([`PART`] coordinates,
//! `f32`, base64): a model of any size within [`MAX_DIM`] travels as a few
//! datagrams, each independent (averaging is per coordinate).

use crate::{NodeId, Time};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Features a task may have at most.
pub const MAX_FEATURES: usize = 1024;
/// Classes a task may have at most.
pub const MAX_CLASSES: usize = 64;
/// Weights a model may have at most (`classes × (features + 1)`).
pub const MAX_DIM: usize = 8192;
/// Coordinates per message.
pub const PART: usize = 256;
/// Tracker coordinates past the gradient: rows, hold-out hits, hold-out rows.
pub const EXTRA: usize = 3;
/// Longest task id and dataset name.
pub const MAX_NAME: usize = 64;
/// Rows a node keeps per dataset at most.
pub const MAX_ROWS: usize = 200_000;
/// Longest base64 vector a message carries (`PART` f32s).
pub const MAX_B64: usize = (PART * 4).div_ceil(3) * 4;
/// Least time between two exchanges a node starts (a task cannot make
/// its nodes flood their links).
pub const MIN_EXCHANGE_GAP_MS: u64 = 250;
/// Feature values a node holds at most over all its datasets (16 MB).
pub const MAX_ROW_VALUES: usize = 4_000_000;
/// How long a node waits for the answer to its push before its tracker
/// takes from others' pushes again (as `agg::PUSH_WAIT`).
pub const PUSH_WAIT: Duration = Duration::from_millis(250);

fn default_step() -> f32 {
    0.1
}
fn default_momentum() -> f32 {
    0.9
}
fn default_lambda() -> f32 {
    1e-3
}
fn default_period() -> u32 {
    1000
}
fn default_cycles() -> u32 {
    300
}
fn default_mixes() -> u8 {
    1
}
fn default_holdout() -> f32 {
    0.1
}

/// A learning task, as `POST /v1/learn` takes it and as it spreads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The task's name (unique in the network).
    pub id: String,
    /// The rows it learns from: each node's rows of this dataset.
    pub dataset: String,
    /// Features per row.
    pub features: u16,
    /// Classes (labels `0..classes`).
    pub classes: u16,
    /// Step size.
    #[serde(default = "default_step")]
    pub step: f32,
    /// Momentum (heavy ball), in `[0, 1)`.
    #[serde(default = "default_momentum")]
    pub momentum: f32,
    /// L2 regularisation.
    #[serde(default = "default_lambda")]
    pub lambda: f32,
    /// Milliseconds between a node's cycles.
    #[serde(default = "default_period")]
    pub period_ms: u32,
    /// Exchanges a node starts per cycle (1-4): the first after its step,
    /// the others evenly between (averaging only).
    #[serde(default = "default_mixes")]
    pub mixes: u8,
    /// Cycles a node runs; then its model stays as it is.
    #[serde(default = "default_cycles")]
    pub cycles: u32,
    /// Share of the rows held out to measure accuracy (chosen by a hash
    /// of the row, the same wherever it lives).
    #[serde(default = "default_holdout")]
    pub holdout: f32,
}

impl Spec {
    /// A task with the default parameters.
    pub fn new(id: &str, dataset: &str, features: u16, classes: u16) -> Spec {
        Spec {
            id: id.to_string(),
            dataset: dataset.to_string(),
            features,
            classes,
            step: default_step(),
            momentum: default_momentum(),
            lambda: default_lambda(),
            period_ms: default_period(),
            mixes: default_mixes(),
            cycles: default_cycles(),
            holdout: default_holdout(),
        }
    }

    /// Weights of the model.
    pub fn dim(&self) -> usize {
        usize::from(self.classes) * (usize::from(self.features) + 1)
    }

    /// Coordinates the vectors carry (weights, then [`EXTRA`]).
    pub fn coords(&self) -> usize {
        self.dim() + EXTRA
    }

    /// Parts a push is cut in.
    pub fn parts(&self) -> usize {
        self.coords().div_ceil(PART)
    }

    /// Whether the task is one a node can run: `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !name_ok(&self.id) || !name_ok(&self.dataset) {
            return Err(format!("id and dataset are 1-{MAX_NAME} characters of [A-Za-z0-9._-]"));
        }
        if self.features == 0 || usize::from(self.features) > MAX_FEATURES {
            return Err(format!("features must be 1-{MAX_FEATURES}"));
        }
        if self.classes < 2 || usize::from(self.classes) > MAX_CLASSES {
            return Err(format!("classes must be 2-{MAX_CLASSES}"));
        }
        if self.dim() > MAX_DIM {
            return Err(format!("classes × (features + 1) must be at most {MAX_DIM}"));
        }
        let finite = [self.step, self.momentum, self.lambda, self.holdout].iter().all(|x| x.is_finite());
        if !finite || self.step <= 0.0 || self.step > 100.0 {
            return Err("step must be in (0, 100]".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err("momentum must be in [0, 1)".into());
        }
        if !(0.0..=10.0).contains(&self.lambda) {
            return Err("lambda must be in [0, 10]".into());
        }
        if !(0.0..=0.5).contains(&self.holdout) {
            return Err("holdout must be in [0, 0.5]".into());
        }
        if self.period_ms > 3_600_000 {
            return Err("period_ms must be at most 3600000".into());
        }
        if !(1..=4).contains(&self.mixes) {
            return Err("mixes must be 1-4".into());
        }
        if u64::from(self.period_ms) < MIN_EXCHANGE_GAP_MS * u64::from(self.mixes) {
            return Err(format!("period_ms must be at least {MIN_EXCHANGE_GAP_MS} × mixes"));
        }
        if self.cycles == 0 || self.cycles > 1_000_000 {
            return Err("cycles must be 1-1000000".into());
        }
        Ok(())
    }

    /// Whether `row` is held out (a hash of the task and the row, so every
    /// node and the reference agree).
    pub fn held_out(&self, row: &Row) -> bool {
        if self.holdout <= 0.0 {
            return false;
        }
        let mut h = blake3::Hasher::new();
        h.update(self.id.as_bytes());
        for x in &row.x {
            h.update(&x.to_le_bytes());
        }
        h.update(&row.y.to_le_bytes());
        let b = h.finalize();
        let u = u32::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1], b.as_bytes()[2], b.as_bytes()[3]]);
        (f64::from(u) / f64::from(u32::MAX)) < f64::from(self.holdout)
    }
}

/// One labelled row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Features.
    pub x: Vec<f32>,
    /// Label, `0..classes`.
    pub y: u16,
}

/// Parses a row of comma-separated numbers, the label last (a CSV line).
pub fn parse_row(line: &str) -> Result<Row, String> {
    let mut vals = Vec::new();
    for f in line.trim().split(',') {
        let v: f32 =
            f.trim().parse().map_err(|_| format!("not a number: {:?}", f.chars().take(20).collect::<String>()))?;
        if !v.is_finite() {
            return Err("not a finite number".into());
        }
        vals.push(v);
        if vals.len() > MAX_FEATURES + 1 {
            return Err(format!("more than {MAX_FEATURES} features"));
        }
    }
    let y = vals.pop().filter(|_| !vals.is_empty()).ok_or("a row needs features and a label")?;
    if y < 0.0 || y.fract() != 0.0 || y >= MAX_CLASSES as f32 {
        return Err(format!("the label (last field) must be an integer 0-{}", MAX_CLASSES - 1));
    }
    Ok(Row { x: vals, y: y as u16 })
}

/// Scores of each class for `x` (`w` is `classes × (features + 1)`).
fn scores(w: &[f32], features: usize, x: &[f32], out: &mut [f64]) {
    for (c, o) in out.iter_mut().enumerate() {
        let wc = &w[c * (features + 1)..(c + 1) * (features + 1)];
        let mut s = f64::from(wc[features]);
        for (a, b) in wc.iter().zip(x) {
            s += f64::from(*a) * f64::from(*b);
        }
        *o = s;
    }
}

/// The class `w` predicts for `x` (features past the model's are ignored,
/// missing ones are 0).
pub fn predict(w: &[f32], features: usize, classes: usize, x: &[f32]) -> usize {
    let mut s = vec![0.0; classes];
    scores(w, features, &x[..x.len().min(features)], &mut s);
    let mut best = 0;
    for (c, v) in s.iter().enumerate() {
        if *v > s[best] {
            best = c;
        }
    }
    best
}

/// Adds the cross-entropy gradient of one row at `w` to `g`.
fn add_gradient(w: &[f32], features: usize, row: &Row, g: &mut [f64], s: &mut [f64]) {
    let x = &row.x[..row.x.len().min(features)];
    scores(w, features, x, s);
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut z = 0.0;
    for v in s.iter_mut() {
        *v = (*v - m).exp();
        z += *v;
    }
    for (c, p) in s.iter_mut().enumerate() {
        *p /= z;
        if c == usize::from(row.y) {
            *p -= 1.0;
        }
        let gc = &mut g[c * (features + 1)..(c + 1) * (features + 1)];
        for (gi, xi) in gc.iter_mut().zip(x) {
            *gi += *p * f64::from(*xi);
        }
        gc[features] += *p;
    }
}

/// The mean loss gradient over `rows` plus `lambda·w`, as one step of a
/// single-process reference would take it.
pub fn full_gradient(spec: &Spec, w: &[f32], rows: &[Row]) -> Vec<f64> {
    let f = usize::from(spec.features);
    let mut g = vec![0.0; spec.dim()];
    let mut s = vec![0.0; usize::from(spec.classes)];
    for r in rows.iter().filter(|r| usize::from(r.y) < usize::from(spec.classes)) {
        add_gradient(w, f, r, &mut g, &mut s);
    }
    let n = rows.len().max(1) as f64;
    for (gi, wi) in g.iter_mut().zip(w) {
        *gi = *gi / n + f64::from(spec.lambda) * f64::from(*wi);
    }
    g
}

/// The single-process reference: `steps` of full-batch gradient descent
/// with momentum (step 0.3, momentum 0.9, whatever the task's) on the
/// task's objective over every training row.
pub fn train_reference(spec: &Spec, rows: &[Row], steps: usize) -> Vec<f32> {
    train_steps(spec, rows, steps, 0.3, 0.9)
}

/// `steps` of full-batch gradient descent with `step` and `momentum`:
/// with the task's own, what one process reaches in as many cycles.
pub fn train_steps(spec: &Spec, rows: &[Row], steps: usize, step: f32, momentum: f32) -> Vec<f32> {
    let mut w = vec![0.0f32; spec.dim()];
    let mut v = vec![0.0f64; spec.dim()];
    for _ in 0..steps {
        let g = full_gradient(spec, &w, rows);
        for ((wi, vi), gi) in w.iter_mut().zip(v.iter_mut()).zip(&g) {
            *vi = f64::from(momentum) * *vi + gi;
            *wi -= (f64::from(step) * *vi) as f32;
        }
    }
    w
}

/// Share of `rows` that `w` classifies right.
pub fn accuracy(spec: &Spec, w: &[f32], rows: &[Row]) -> f64 {
    let (f, c) = (usize::from(spec.features), usize::from(spec.classes));
    let hits = rows.iter().filter(|r| predict(w, f, c, &r.x) == usize::from(r.y)).count();
    hits as f64 / rows.len().max(1) as f64
}

/// Base64 of little-endian `f32`s.
pub fn encode_f32s(v: &[f32]) -> String {
    let mut b = Vec::with_capacity(v.len() * 4);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The `f32`s of [`encode_f32s`]; `None` if it is not base64 of whole,
/// finite `f32`s, or longer than [`MAX_B64`].
pub fn decode_f32s(s: &str) -> Option<Vec<f32>> {
    if s.len() > MAX_B64 {
        return None;
    }
    let b = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if b.len() % 4 != 0 {
        return None;
    }
    let v: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// One message of an exchange: a part of a push, or of its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnMsg {
    /// The task.
    pub task: String,
    /// Which part: coordinates `part·PART ..`.
    pub part: u16,
    /// The sender model's age (cycles trained).
    pub age: u64,
    /// An answer to a push.
    pub reply: bool,
    /// The sender's model, momentum, tracker totals on this link (what it
    /// took, its copy of what the receiver took) and tracker estimate,
    /// over the part's coordinates (base64 `f32`).
    pub x: String,
    /// See `x`.
    pub v: String,
    /// See `x`.
    pub took: String,
    /// See `x`.
    pub gave: String,
    /// See `x`.
    pub est: String,
}

/// A message refused whole: not this task's shape, or a number not finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// What one neighbour's link carries.
#[derive(Clone, Debug)]
struct Link {
    took: Vec<f32>,
    gave: Vec<f32>,
    est: Vec<f32>,
}

impl Link {
    fn new(n: usize) -> Link {
        Link { took: vec![0.0; n], gave: vec![0.0; n], est: vec![0.0; n] }
    }
}

/// What a node reports of a task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LearnView {
    /// The task.
    pub spec: Spec,
    /// Cycles this node ran.
    pub cycles: u64,
    /// Its model's age (cycles trained, its own or merged in).
    pub age: u64,
    /// Its training rows and hold-out rows.
    pub rows: usize,
    /// See `rows`.
    pub holdout_rows: usize,
    /// Its model's accuracy on its own hold-out rows.
    pub local_accuracy: Option<f64>,
    /// Its model's accuracy on every hold-out row of the network, as the
    /// tracker estimates it (every node's model on its own hold-out rows,
    /// averaged).
    pub network_accuracy: Option<f64>,
    /// Training rows per node, as the tracker estimates it.
    pub rows_per_node: f64,
    /// Milliseconds since this node's last cycle.
    pub age_ms: Option<u64>,
    /// Messages refused (bad shape, bad numbers).
    pub refused: u64,
}

/// One node's part in one task.
#[derive(Clone, Debug)]
pub struct Learner {
    spec: Spec,
    train: Vec<Row>,
    hold: Vec<Row>,
    x: Vec<f32>,
    v: Vec<f32>,
    age: u64,
    cycles: u64,
    input: Vec<f64>,
    settled: Vec<f64>,
    links: BTreeMap<NodeId, Link>,
    pending: Option<(NodeId, Time)>,
    last: Option<Time>,
    /// When it last pushed.
    pushed: Option<Time>,
    refused: u64,
}

impl Learner {
    /// A learner for `spec` (checked) over this node's `rows` of its
    /// dataset (rows of another width or label range are skipped).
    pub fn new(spec: Spec, rows: &[Row]) -> Learner {
        let n = spec.coords();
        let f = usize::from(spec.features);
        let ok = rows.iter().filter(|r| r.x.len() == f && r.y < spec.classes);
        let (hold, train): (Vec<Row>, Vec<Row>) = ok.cloned().partition(|r| spec.held_out(r));
        Learner {
            train,
            hold,
            x: vec![0.0; n],
            v: vec![0.0; n],
            age: 0,
            cycles: 0,
            input: vec![0.0; n],
            settled: vec![0.0; n],
            links: BTreeMap::new(),
            pending: None,
            last: None,
            pushed: None,
            refused: 0,
            spec,
        }
    }

    /// Adds rows of its dataset (of the task's width and label range).
    pub fn add_rows(&mut self, rows: &[Row]) {
        let f = usize::from(self.spec.features);
        for r in rows.iter().filter(|r| r.x.len() == f && r.y < self.spec.classes) {
            if self.spec.held_out(r) {
                self.hold.push(r.clone());
            } else {
                self.train.push(r.clone());
            }
        }
    }

    /// The model's age: cycles trained, its own or merged in.
    pub fn age(&self) -> u64 {
        self.age
    }

    /// Cycles this node ran.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// The task.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The model's weights.
    pub fn weights(&self) -> &[f32] {
        &self.x[..self.spec.dim()]
    }

    /// The class this node's model predicts for `x`.
    pub fn predict(&self, x: &[f32]) -> usize {
        predict(self.weights(), usize::from(self.spec.features), usize::from(self.spec.classes), x)
    }

    /// Whether a cycle is due at `now`.
    pub fn due(&self, now: Time) -> bool {
        self.cycles < u64::from(self.spec.cycles)
            && self.last.is_none_or(|t| now.since(t) >= Duration::from_millis(u64::from(self.spec.period_ms)))
    }

    /// Whether an exchange between cycles is due at `now`.
    pub fn mix_due(&self, now: Time) -> bool {
        let gap = Duration::from_millis(u64::from(self.spec.period_ms)) / u32::from(self.spec.mixes.max(1));
        self.spec.mixes > 1 && self.running() && self.pushed.is_some_and(|t| now.since(t) >= gap)
    }

    /// An exchange between cycles (averaging only): the push to `to`.
    pub fn mix(&mut self, now: Time, neighbours: &[NodeId], to: Option<NodeId>) -> Vec<LearnMsg> {
        self.links.retain(|id, _| neighbours.contains(id));
        self.push(now, to)
    }

    fn push(&mut self, now: Time, to: Option<NodeId>) -> Vec<LearnMsg> {
        self.pushed = Some(now);
        let Some(to) = to else { return Vec::new() };
        self.pending = Some((to, now));
        (0..self.spec.parts()).map(|p| self.message(to, p, false)).collect()
    }

    /// Whether it still runs cycles.
    pub fn running(&self) -> bool {
        self.cycles < u64::from(self.spec.cycles)
    }

    fn estimate(&self, k: usize) -> f64 {
        let flows: f64 = self.links.values().map(|l| f64::from(l.took[k]) - f64::from(l.gave[k])).sum();
        self.input[k] + self.settled[k] + flows
    }

    /// Entries held (for the node's table bounds): coordinates kept.
    pub fn entries(&self) -> usize {
        self.x.len() * (4 + 3 * self.links.len()) + self.train.len() + self.hold.len()
    }

    /// A neighbour is gone: as `agg::Aggregator::drop_link` (`settle`:
    /// the link merely closed, what moved over it stays).
    pub fn drop_link(&mut self, id: NodeId, settle: bool) {
        let Some(l) = self.links.remove(&id) else { return };
        if settle {
            for (k, s) in self.settled.iter_mut().enumerate() {
                *s += f64::from(l.took[k]) - f64::from(l.gave[k]);
            }
        }
    }

    /// Sets the input to this node's gradient sum and counts at its model.
    fn refresh_input(&mut self) {
        let d = self.spec.dim();
        let f = usize::from(self.spec.features);
        let mut g = vec![0.0; d];
        let mut s = vec![0.0; usize::from(self.spec.classes)];
        for r in &self.train {
            add_gradient(&self.x[..d], f, r, &mut g, &mut s);
        }
        let hits = self.hold.iter().filter(|r| self.predict(&r.x) == usize::from(r.y)).count();
        self.input[..d].copy_from_slice(&g);
        self.input[d] = self.train.len() as f64;
        self.input[d + 1] = hits as f64;
        self.input[d + 2] = self.hold.len() as f64;
    }

    /// One cycle: the input at the current model, a step along the
    /// tracked gradient, and the push to `to` (the caller's pick among
    /// the neighbours, `None` if it has none): the messages to send it.
    pub fn cycle(&mut self, now: Time, neighbours: &[NodeId], to: Option<NodeId>) -> Vec<LearnMsg> {
        self.links.retain(|id, _| neighbours.contains(id));
        self.last = Some(now);
        self.cycles += 1;
        self.refresh_input();
        let d = self.spec.dim();
        let n = self.estimate(d);
        if n > 1e-9 {
            let (beta, step, lambda) =
                (f64::from(self.spec.momentum), f64::from(self.spec.step), f64::from(self.spec.lambda));
            for k in 0..d {
                let dir = self.estimate(k) / n + lambda * f64::from(self.x[k]);
                let v = beta * f64::from(self.v[k]) + dir;
                self.v[k] = wire(v);
                self.x[k] = wire(f64::from(self.x[k]) - step * v);
            }
            self.age = (self.age + 1).min(max_age(&self.spec));
            // The input follows the model (the tracker sees the change now).
            self.refresh_input();
        }
        self.push(now, to)
    }

    fn message(&self, to: NodeId, part: usize, reply: bool) -> LearnMsg {
        let (lo, hi) = (part * PART, ((part + 1) * PART).min(self.spec.coords()));
        let est: Vec<f32> = (lo..hi).map(|k| wire(self.estimate(k))).collect();
        let zero = vec![0.0; hi - lo];
        let l = self.links.get(&to);
        LearnMsg {
            task: self.spec.id.clone(),
            part: part as u16,
            age: self.age,
            reply,
            x: encode_f32s(&self.x[lo..hi]),
            v: encode_f32s(&self.v[lo..hi]),
            took: encode_f32s(l.map_or(&zero[..], |l| &l.took[lo..hi])),
            gave: encode_f32s(l.map_or(&zero[..], |l| &l.gave[lo..hi])),
            est: encode_f32s(&est),
        }
    }

    /// A neighbour's message. A push is answered: the returned message
    /// goes back to `from`. `Err` (nothing changed) when it is not this
    /// task's shape or carries a number that is not finite.
    pub fn receive(&mut self, now: Time, me: NodeId, from: NodeId, m: &LearnMsg) -> Result<Option<LearnMsg>, Refused> {
        let part = usize::from(m.part);
        // An age made up to win every average is refused: merges take the
        // larger age and cycles add to it, so an honest age stays near the
        // task's cycles; twice them (and 100) is beyond any.
        if part >= self.spec.parts() || m.age > max_age(&self.spec) {
            self.refused += 1;
            return Err(Refused);
        }
        let (lo, hi) = (part * PART, ((part + 1) * PART).min(self.spec.coords()));
        let dec = |s: &str| decode_f32s(s).filter(|v| v.len() == hi - lo);
        let (Some(x), Some(v), Some(took), Some(seen), Some(est)) =
            (dec(&m.x), dec(&m.v), dec(&m.took), dec(&m.gave), dec(&m.est))
        else {
            self.refused += 1;
            return Err(Refused);
        };
        // The answer carries this node's model as it was (both ends then
        // average the same two).
        let answer = (!m.reply).then(|| (encode_f32s(&self.x[lo..hi]), encode_f32s(&self.v[lo..hi]), self.age));
        // Age-weighted averaging: a model that has not trained adopts the
        // other; equal ages meet halfway.
        let w = if m.age == 0 { 0.0 } else { m.age as f64 / (m.age as f64 + self.age as f64) };
        for k in lo..hi.min(self.spec.dim()) {
            let i = k - lo;
            self.x[k] = wire(f64::from(self.x[k]) + w * (f64::from(x[i]) - f64::from(self.x[k])));
            self.v[k] = wire(f64::from(self.v[k]) + w * (f64::from(v[i]) - f64::from(self.v[k])));
        }
        let len = self.spec.coords();
        let last = part + 1 == self.spec.parts();
        // The tracker: its totals first (what it took is what this node gave).
        let link = self.links.entry(from).or_insert_with(|| Link::new(len));
        link.gave[lo..hi].copy_from_slice(&took);
        link.est[lo..hi].copy_from_slice(&est);
        let take = if m.reply {
            if last && self.pending.is_some_and(|(p, _)| p == from) {
                self.pending = None;
            }
            false
        } else {
            // Waiting on its own push, it takes nothing; of two pushes that
            // crossed, the lesser id's end takes.
            !self.pending.is_some_and(|(p, at)| now.since(at) < PUSH_WAIT && !(p == from && me < from))
        };
        if take {
            for k in lo..hi {
                let i = k - lo;
                let mine = self.estimate(k);
                let link = self.links.get_mut(&from).expect("inserted above");
                let t = f64::from(link.took[k]);
                let theirs = f64::from(est[i]) - (t - f64::from(seen[i]));
                let moved = wire(t + (theirs - mine) / 2.0);
                link.took[k] = moved;
                link.est[k] = wire(theirs - (f64::from(moved) - t));
            }
        }
        if last {
            self.age = self.age.max(m.age);
        }
        Ok(answer.map(|(ax, av, age)| {
            let mut r = self.message(from, part, true);
            r.x = ax;
            r.v = av;
            r.age = age;
            r
        }))
    }

    /// What this node reports of the task.
    pub fn view(&self, now: Time) -> LearnView {
        let d = self.spec.dim();
        let local = (!self.hold.is_empty()).then(|| accuracy(&self.spec, self.weights(), &self.hold));
        let (n, hits, held) = (self.estimate(d), self.estimate(d + 1), self.estimate(d + 2));
        LearnView {
            spec: self.spec.clone(),
            cycles: self.cycles,
            age: self.age,
            rows: self.train.len(),
            holdout_rows: self.hold.len(),
            local_accuracy: local,
            network_accuracy: (held > 1e-9).then(|| (hits / held).clamp(0.0, 1.0)),
            rows_per_node: n,
            age_ms: self.last.map(|t| now.since(t).as_millis() as u64),
            refused: self.refused,
        }
    }
}

/// The largest age a model of `spec` may claim.
fn max_age(spec: &Spec) -> u64 {
    2 * u64::from(spec.cycles) + 100
}

/// Rounds to what the wire carries (both ends keep exactly this).
fn wire(x: f64) -> f32 {
    let y = x as f32;
    if y.is_finite() {
        y
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
