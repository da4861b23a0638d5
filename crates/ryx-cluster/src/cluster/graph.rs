//! Health of the neighbour graph as the nodes report it: does every node
//! have enough neighbours, is the graph connected, and does anyone still
//! list a dead node.

use ryx_api::NodeId;
use std::collections::{HashMap, HashSet, VecDeque};

/// What one live node reported.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The node's id (or a placeholder when it never answered).
    pub id: NodeId,
    /// Ids of its active neighbours, or `None` if it did not answer.
    pub neighbors: Option<Vec<NodeId>>,
}

/// The health of a set of live nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Nodes that should answer.
    pub expected: usize,
    /// Nodes that answered.
    pub answered: usize,
    /// Fewest live neighbours any answering node has (0 when none answered).
    pub min_neighbors: usize,
    /// Neighbour entries that name a dead node.
    pub dead_links: usize,
    /// Whether the undirected graph of live nodes is connected.
    pub connected: bool,
}

impl Health {
    /// Every node answered, has at least `k` live neighbours and no dead
    /// one, and the graph is connected.
    pub fn ready(&self, k: usize) -> bool {
        self.answered == self.expected && self.min_neighbors >= k && self.dead_links == 0 && self.connected
    }

    /// Every node answered and none lists a dead neighbour.
    pub fn dead_forgotten(&self) -> bool {
        self.answered == self.expected && self.dead_links == 0
    }
}

/// The neighbour floor a cluster of `n` live nodes can reach: min(4, n-1).
pub fn floor_for(n: usize) -> usize {
    4.min(n.saturating_sub(1))
}

/// Assesses the graph of `nodes` (all of them live); `dead` are ids of
/// nodes known to be gone.
pub fn assess(nodes: &[Observed], dead: &HashSet<NodeId>) -> Health {
    let ids: HashMap<&NodeId, usize> = nodes.iter().enumerate().map(|(i, o)| (&o.id, i)).collect();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut answered = 0;
    let mut min_neighbors = usize::MAX;
    let mut dead_links = 0;
    for (i, o) in nodes.iter().enumerate() {
        let Some(ns) = &o.neighbors else { continue };
        answered += 1;
        let mut live = 0;
        for n in ns {
            if dead.contains(n) {
                dead_links += 1;
            } else if let Some(&j) = ids.get(n) {
                if j != i {
                    live += 1;
                    adj[i].push(j);
                    adj[j].push(i);
                }
            }
        }
        min_neighbors = min_neighbors.min(live);
    }
    let connected = if nodes.is_empty() {
        true
    } else {
        let mut seen = vec![false; nodes.len()];
        let mut queue = VecDeque::from([0usize]);
        seen[0] = true;
        let mut reached = 1;
        while let Some(v) = queue.pop_front() {
            for &w in &adj[v] {
                if !seen[w] {
                    seen[w] = true;
                    reached += 1;
                    queue.push_back(w);
                }
            }
        }
        reached == nodes.len()
    };
    Health {
        expected: nodes.len(),
        answered,
        min_neighbors: if answered == 0 { 0 } else { min_neighbors },
        dead_links,
        connected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: &str, ns: &[&str]) -> Observed {
        Observed { id: id.into(), neighbors: Some(ns.iter().map(|&s| NodeId::from(s)).collect()) }
    }

    #[test]
    fn ring_is_connected_with_two_neighbours() {
        let nodes = vec![obs("a", &["b", "d"]), obs("b", &["a", "c"]), obs("c", &["b", "d"]), obs("d", &["c", "a"])];
        let h = assess(&nodes, &HashSet::new());
        assert!(h.connected);
        assert_eq!(h.min_neighbors, 2);
        assert!(h.ready(2));
        assert!(!h.ready(3));
    }

    #[test]
    fn two_islands_are_not_connected() {
        let nodes = vec![obs("a", &["b"]), obs("b", &["a"]), obs("c", &["d"]), obs("d", &["c"])];
        assert!(!assess(&nodes, &HashSet::new()).connected);
    }

    #[test]
    fn one_sided_links_count_for_connectivity_and_dead_links_are_seen() {
        let dead: HashSet<NodeId> = [NodeId::from("x")].into();
        let nodes = vec![obs("a", &["b", "x"]), obs("b", &[])];
        let h = assess(&nodes, &dead);
        assert!(h.connected);
        assert_eq!(h.dead_links, 1);
        assert_eq!(h.min_neighbors, 0);
        assert!(!h.dead_forgotten());
    }

    #[test]
    fn silent_nodes_block_readiness() {
        let nodes = vec![obs("a", &["b"]), Observed { id: "b".into(), neighbors: None }];
        let h = assess(&nodes, &HashSet::new());
        assert_eq!(h.answered, 1);
        assert!(!h.ready(0));
    }

    #[test]
    fn floors() {
        assert_eq!(floor_for(1), 0);
        assert_eq!(floor_for(3), 2);
        assert_eq!(floor_for(50), 4);
    }
}
