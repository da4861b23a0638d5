//! Learning tasks on this node (`crate::learn`): the rows it holds, the
//! tasks it takes part in, and their exchanges with its neighbours.
//!
//! A task is started on any node and spreads as an info item under
//! [`LEARN_PREFIX`]; every node that holds it takes part, with its rows of
//! the task's dataset or with none (it still averages, so the task's graph
//! is the whole overlay). No row leaves its node: only models, momenta and
//! tracker totals travel, one part of them per `learn` datagram.

use super::*;
use crate::learn::{LearnMsg, LearnView, Learner, Row, Spec};

/// Where tasks are kept as info items (`ryx.`: the network's own keys,
/// which a client cannot write through `/v1/info`).
pub const LEARN_PREFIX: &str = "ryx.learn/";
/// Tasks a node takes part in at most (the others are left to the nodes
/// that have room).
pub const MAX_TASKS: usize = 4;
/// Datasets of rows a node holds at most.
pub const MAX_DATASETS: usize = 16;
/// Energy of a task's item (it reaches every node).
const TASK_ENERGY: f64 = 1000.0;

/// This node's rows and tasks.
#[derive(Clone, Debug, Default)]
pub(super) struct Learning {
    /// Rows by dataset.
    rows: BTreeMap<String, Vec<Row>>,
    /// Tasks by id (a task that has run its cycles stays, answering
    /// predictions, until a new one needs its room).
    tasks: BTreeMap<String, Learner>,
    /// Task items handled: key → version (a bad one is counted once).
    seen: BTreeMap<String, u64>,
    /// Messages for a task this node does not hold (yet).
    pub(super) unknown: u64,
}

impl Node {
    /// Adds rows of `dataset` to this node (rows past [`crate::learn::MAX_ROWS`]
    /// are refused); tasks on that dataset train on them from their next
    /// cycle. Returns the rows held.
    pub fn add_rows(&mut self, dataset: &str, rows: Vec<Row>) -> Result<usize, String> {
        let l = &mut self.learning;
        if !l.rows.contains_key(dataset) && l.rows.len() >= MAX_DATASETS {
            return Err(format!("a node holds at most {MAX_DATASETS} datasets of rows"));
        }
        let held = l.rows.get(dataset).map_or(0, Vec::len);
        if held + rows.len() > crate::learn::MAX_ROWS {
            return Err(format!("a node holds at most {} rows of a dataset", crate::learn::MAX_ROWS));
        }
        let values: usize = l.rows.values().flatten().chain(&rows).map(|r| r.x.len()).sum();
        if values > crate::learn::MAX_ROW_VALUES {
            return Err(format!("a node holds at most {} feature values of rows", crate::learn::MAX_ROW_VALUES));
        }
        for t in l.tasks.values_mut().filter(|t| t.spec().dataset == dataset) {
            t.add_rows(&rows);
        }
        let v = l.rows.entry(dataset.to_string()).or_default();
        v.extend(rows);
        Ok(v.len())
    }

    /// Rows this node holds, by dataset.
    pub fn rows_held(&self) -> BTreeMap<String, usize> {
        self.learning.rows.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    /// Starts a task here; it spreads to every node.
    pub fn start_learning(&mut self, now: Time, spec: Spec) -> Result<(), String> {
        self.now = now.max(self.now);
        spec.check()?;
        let key = format!("{LEARN_PREFIX}{}", spec.id);
        if self.info.get(&key).is_some() || self.learning.tasks.contains_key(&spec.id) {
            return Err(format!("a task named {:?} exists", spec.id));
        }
        let v = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
        self.put_info(now, &key, v, Some(TASK_ENERGY.min(self.cfg.max_energy))).map_err(|e| e.to_string())?;
        self.learn_tick();
        Ok(())
    }

    /// Takes up the tasks it holds items of, and runs the cycles due.
    pub(super) fn learn_tick(&mut self) {
        let now = self.now;
        let mut new = Vec::new();
        // A task that has run all its cycles makes room for a new one.
        if self.learning.tasks.len() >= MAX_TASKS {
            let waiting = self.info.prefixed(LEARN_PREFIX).any(|(k, _)| {
                !self.learning.tasks.contains_key(&k[LEARN_PREFIX.len()..]) && !self.learning.seen.contains_key(k)
            });
            let done = self.learning.tasks.iter().find(|(_, l)| !l.running()).map(|(k, _)| k.clone());
            if let (true, Some(k)) = (waiting, done) {
                self.learning.tasks.remove(&k);
            }
        }
        for (k, it) in self.info.prefixed(LEARN_PREFIX) {
            let id = &k[LEARN_PREFIX.len()..];
            if self.learning.tasks.contains_key(id)
                || self.learning.tasks.len() + new.len() >= MAX_TASKS
                || self.learning.seen.get(k) == Some(&it.version)
            {
                continue;
            }
            self.learning.seen.insert(k.clone(), it.version);
            match serde_json::from_value::<Spec>((*it.value).clone()) {
                Ok(s) if s.id == id && s.check().is_ok() => new.push(s),
                _ => self.metrics.count_rejected("learn_spec"),
            }
        }
        let info = &self.info;
        self.learning.seen.retain(|k, _| info.get(k).is_some());
        for s in new {
            let rows = self.learning.rows.get(&s.dataset).map_or(&[][..], Vec::as_slice);
            let l = Learner::new(s.clone(), rows);
            self.learning.tasks.insert(s.id, l);
        }
        if self.learning.tasks.is_empty() {
            return;
        }
        let ids = self.active_ids();
        let due: Vec<(String, bool)> =
            self.learning
                .tasks
                .iter()
                .filter_map(|(k, l)| {
                    if l.due(now) {
                        Some((k.clone(), true))
                    } else {
                        l.mix_due(now).then(|| (k.clone(), false))
                    }
                })
                .collect();
        for (k, step) in due {
            let to = (!ids.is_empty()).then(|| ids[self.rng.below(ids.len())]);
            let Some(l) = self.learning.tasks.get_mut(&k) else { continue };
            let msgs = if step { l.cycle(now, &ids, to) } else { l.mix(now, &ids, to) };
            if let Some(to) = to {
                for m in msgs {
                    self.send_to(to, Message::learn(m));
                }
            }
        }
    }

    /// A neighbour's part of an exchange.
    pub(super) fn on_learn(&mut self, from: NodeId, m: LearnMsg) {
        let (now, me) = (self.now, self.id);
        let Some(l) = self.learning.tasks.get_mut(&m.task) else {
            // Its item has not reached this node yet, or it has no room.
            self.learning.unknown += 1;
            return;
        };
        match l.receive(now, me, from, &m) {
            Ok(Some(r)) => self.send_to(from, Message::learn(r)),
            Ok(None) => {}
            Err(crate::learn::Refused) => self.metrics.count_rejected("learn_refused"),
        }
    }

    /// A neighbour is gone (`settle`: the link merely closed).
    pub(super) fn learn_link_down(&mut self, id: NodeId, settle: bool) {
        for l in self.learning.tasks.values_mut() {
            l.drop_link(id, settle);
        }
    }

    /// What this node reports of each task it takes part in.
    pub fn learning(&self) -> Vec<LearnView> {
        self.learning.tasks.values().map(|l| l.view(self.now)).collect()
    }

    /// This node's part in task `id`.
    pub fn learner(&self, id: &str) -> Option<&Learner> {
        self.learning.tasks.get(id)
    }

    /// Entries held for learning (bounded: tasks × their size).
    pub(super) fn learn_entries(&self) -> usize {
        self.learning.tasks.len() + self.learning.rows.len() + self.learning.seen.len()
    }
}
