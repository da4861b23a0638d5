//! The learn scenario: logistic regression by gossip (`ryx_core::learn`)
//! on rows spread over the nodes, measured against one process trained on
//! all of them.
//!
//! `--data FILE` is a CSV of numbers, the label (an integer from 0) last;
//! each feature is scaled to `[0, 1]` over the file (the preprocessing a
//! user does before loading rows). A share `--test-share` of the rows,
//! drawn by the seed, is the test set no node sees; the others are dealt
//! to the nodes in turn (1,000 nodes and 1,500 rows: one or two each), or
//! with `--skew` sorted by label first, so that a node's rows share one
//! label. After the join, one node starts the task; every `--cycles`
//! period the driver reads every live node's model and measures it on the
//! test set. With `--churn F`, a share F of the nodes is crashed over the
//! run, each restarted at once as a new member with its rows (its disk)
//! and no model.
//!
//! The reference is the same objective trained by one process on every
//! training row (2,000 steps of full-batch gradient descent, step 0.3,
//! momentum 0.9); the report also gives what one process reaches with as
//! many steps as cycles at the task's own step and momentum. A sampled
//! node that holds no model (the task has not reached it, or it has just
//! restarted) counts as the untrained model.

use crate::sim::{Sim, Violation};
use ryx_core::learn::{self, Row, Spec};
use serde::Serialize;
use std::time::Duration;

/// The dataset's name on the nodes.
const DATASET: &str = "rows";
/// Nodes whose models are measured each time at most (a sample).
const SAMPLE: usize = 200;
/// Steps of the single-process reference.
const REFERENCE_STEPS: usize = 2000;

/// The accuracy at one cycle.
#[derive(Clone, Debug, Serialize)]
pub struct CycleFigures {
    /// Cycles (periods) since the task started.
    pub cycle: u32,
    /// Mean and lowest test accuracy of the nodes' models.
    pub mean: f64,
    /// See `mean`.
    pub min: f64,
    /// The hold-out accuracy the nodes estimate by their tracker (mean).
    pub estimated: Option<f64>,
    /// `learn` bytes sent per node so far (encoded, as on the wire).
    pub bytes_per_node: f64,
}

/// The learn scenario's report.
#[derive(Clone, Debug, Serialize)]
pub struct LearnReport {
    /// Rows the nodes hold, rows of the test set.
    pub train_rows: usize,
    /// See `train_rows`.
    pub test_rows: usize,
    /// Features and classes.
    pub features: usize,
    /// See `features`.
    pub classes: usize,
    /// The reference's test accuracy.
    pub reference: f64,
    /// One process's test accuracy after `--cycles` steps of the task's
    /// own step and momentum (the optimiser's part of the gap).
    pub same_steps: f64,
    /// Every tenth cycle (and the last).
    pub cycles: Vec<CycleFigures>,
    /// First measured cycle at which the mean is within 1 point of the
    /// reference, and within 3.
    pub within_1pt: Option<u32>,
    /// See `within_1pt`.
    pub within_3pt: Option<u32>,
    /// `learn` bytes per node when the mean first reached 95 % of the
    /// reference's accuracy.
    pub bytes_to_95pct: Option<f64>,
    /// Nodes crashed and restarted.
    pub churned: usize,
    /// |Σ rows-per-node estimates − Σ rows| / Σ rows over the live nodes
    /// at the end: the tracker's mass (0 but for exchanges in flight).
    pub mass_err: f64,
}

/// Reads `path`: rows of numbers, the label last (lines that do not parse
/// are an error, naming the line).
pub fn read_rows(path: &str) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--data {path}: {e}"))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        rows.push(learn::parse_row(line).map_err(|e| format!("--data {path}, line {}: {e}", i + 1))?);
    }
    let f = rows.first().map(|r| r.x.len()).ok_or_else(|| format!("--data {path}: no rows"))?;
    if rows.len() < 2 {
        return Err(format!("--data {path}: at least two rows (a test set and a training set)"));
    }
    if rows.iter().any(|r| r.x.len() != f) {
        return Err(format!("--data {path}: rows of different widths"));
    }
    Ok(rows)
}

/// Scales each feature to `[0, 1]` over `rows`.
fn scale(rows: &mut [Row]) {
    let f = rows.first().map_or(0, |r| r.x.len());
    for j in 0..f {
        let lo = rows.iter().map(|r| r.x[j]).fold(f32::INFINITY, f32::min);
        let hi = rows.iter().map(|r| r.x[j]).fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        for r in rows.iter_mut() {
            r.x[j] = (r.x[j] - lo) / span;
        }
    }
}

/// Runs the scenario on a joined network.
pub(crate) fn learn_phase(sim: &mut Sim) -> Result<LearnReport, Violation> {
    let p = sim.p.clone();
    let path = p.data.clone().ok_or_else(|| sim.violation(None, "the learn scenario needs --data FILE".into()))?;
    let mut rows = read_rows(&path).map_err(|e| sim.violation(None, e))?;
    scale(&mut rows);
    sim.ctl.shuffle(&mut rows);
    let n_test = ((rows.len() as f64 * p.test_share).round() as usize).clamp(1, rows.len().saturating_sub(1));
    let train: Vec<Row> = rows.split_off(n_test);
    let test = rows;
    let features = train[0].x.len();
    let classes = train.iter().chain(&test).map(|r| usize::from(r.y) + 1).max().unwrap_or(2).max(2);
    let mut spec = Spec::new("learn", DATASET, features as u16, classes as u16);
    spec.cycles = p.cycles + 10;
    if let Some(s) = p.step {
        spec.step = s;
    }
    if let Some(m) = p.momentum {
        spec.momentum = m;
    }
    if let Some(m) = p.mixes {
        spec.mixes = m;
    }
    spec.check().map_err(|e| sim.violation(None, format!("the learn task: {e}")))?;
    let trained: Vec<Row> = train.iter().filter(|r| !spec.held_out(r)).cloned().collect();
    let reference = learn::accuracy(&spec, &learn::train_reference(&spec, &trained, REFERENCE_STEPS), &test);
    let same = learn::train_steps(&spec, &trained, p.cycles as usize, spec.step, spec.momentum);
    let same_steps = learn::accuracy(&spec, &same, &test);

    // Deal the rows to the slots.
    let mut dealt = train.clone();
    if p.skew {
        dealt.sort_by_key(|r| r.y);
    }
    let slots = sim.p.nodes;
    let mut per_slot: Vec<Vec<Row>> = vec![Vec::new(); slots];
    let chunk = dealt.len().div_ceil(slots).max(1);
    for (i, r) in dealt.into_iter().enumerate() {
        // Skewed: consecutive rows (one label) to one node; else in turn.
        let s = if p.skew { (i / chunk) % slots } else { i % slots };
        per_slot[s].push(r);
    }
    let give = |sim: &mut Sim, s: usize, per_slot: &[Vec<Row>]| {
        if let Some(n) = sim.node_mut(s) {
            let _ = n.add_rows(DATASET, per_slot[s].clone());
        }
    };
    for s in sim.live_slots() {
        give(sim, s, &per_slot);
    }
    let live = sim.live_slots();
    let home = live[sim.ctl.below(live.len())];
    let now = sim.now();
    let started = sim.node_mut(home).map(|n| n.start_learning(now, spec.clone()));
    if let Some(Err(e)) = started {
        return Err(sim.violation(Some(home), format!("start_learning: {e}")));
    }
    let (bytes0, _) = sim.learn_sent();
    let mut sample_rng = ryx_core::rng::Rng::new(p.seed ^ 0x5eed_1ea4);
    let untrained = learn::accuracy(&spec, &vec![0.0; spec.dim()], &test);
    let period = Duration::from_millis(u64::from(spec.period_ms));
    let to_churn = (slots as f64 * p.churn).round() as usize;
    let mut churned = 0;
    let mut figures = Vec::new();
    let mut within = (None, None);
    let mut bytes_to_95 = None;
    for c in 1..=p.cycles {
        if to_churn > 0 {
            let due = to_churn * c as usize / p.cycles as usize - churned;
            let mut victims = sim.live_slots();
            victims.retain(|s| *s != home);
            sim.ctl.shuffle(&mut victims);
            victims.truncate(due);
            sim.crash_many(&victims);
            for v in victims {
                sim.restart(v)?;
                give(sim, v, &per_slot);
                churned += 1;
            }
        }
        sim.run_for(period)?;
        if c % 10 != 0 && c != p.cycles && c > 10 {
            continue;
        }
        let mut live = sim.live_slots();
        // Its own random numbers: how often the run measures does not
        // change which nodes churn.
        sample_rng.shuffle(&mut live);
        let (mut accs, mut est) = (Vec::new(), Vec::new());
        for s in live.iter().take(SAMPLE) {
            let Some(l) = sim.node(*s).and_then(|n| n.learner(&spec.id)) else {
                accs.push(untrained);
                continue;
            };
            accs.push(learn::accuracy(&spec, l.weights(), &test));
            if let Some(a) = l.view(sim.now()).network_accuracy {
                est.push(a);
            }
        }
        let mean = accs.iter().sum::<f64>() / accs.len().max(1) as f64;
        let min = accs.iter().copied().fold(1.0, f64::min);
        let (bytes, _) = sim.learn_sent();
        let per_node = (bytes - bytes0) as f64 / slots as f64;
        if within.0.is_none() && mean >= reference - 0.01 {
            within.0 = Some(c);
        }
        if within.1.is_none() && mean >= reference - 0.03 {
            within.1 = Some(c);
        }
        if bytes_to_95.is_none() && mean >= 0.95 * reference {
            bytes_to_95 = Some(per_node);
        }
        figures.push(CycleFigures {
            cycle: c,
            mean,
            min: if accs.is_empty() { 0.0 } else { min },
            estimated: (!est.is_empty()).then(|| est.iter().sum::<f64>() / est.len() as f64),
            bytes_per_node: per_node,
        });
    }
    let (mut est_rows, mut rows_held) = (0.0, 0.0);
    for s in sim.live_slots() {
        if let Some(l) = sim.node(s).and_then(|n| n.learner(&spec.id)) {
            let v = l.view(sim.now());
            est_rows += v.rows_per_node;
            rows_held += v.rows as f64;
        }
    }
    Ok(LearnReport {
        mass_err: (est_rows - rows_held).abs() / rows_held.max(1.0),
        train_rows: train.len(),
        test_rows: test.len(),
        features,
        classes,
        reference,
        same_steps,
        cycles: figures,
        within_1pt: within.0,
        within_3pt: within.1,
        bytes_to_95pct: bytes_to_95,
        churned,
    })
}
