//! `info put` / `info get`: thin helpers over the nodes' info API.

use crate::cli::{InfoGetArgs, InfoPutArgs};
use crate::cluster::procfs::Liveness;
use crate::cluster::state::RunDir;
use crate::cluster::{par_map, Cluster};
use crate::util::table;
use anyhow::{bail, Context, Result};
use ryx_api::{truncate, InfoItem, InfoWritten, NodeId, PutInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// What one node holds for a key (a node of `info get --json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    /// Why the node could not be asked.
    pub error: Option<String>,
    /// Node index.
    pub index: usize,
    /// The item as the node holds it, if it does.
    pub item: Option<InfoItem>,
    /// The node's id.
    pub node_id: Option<NodeId>,
}

/// What `info get --json` prints: how far an item has spread.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Coverage {
    /// Running nodes asked.
    pub asked: usize,
    /// The fraction of them holding the item.
    pub coverage: f64,
    /// Nodes holding it.
    pub holding: usize,
    /// The key.
    pub key: String,
    /// Every node asked.
    pub nodes: Vec<Holding>,
}

/// Reads a command-line value: JSON if it parses, else a string.
pub fn parse_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// Puts `key` = `value` at node `index`.
pub fn put_at(cluster: &Cluster, index: usize, key: &str, value: Value, energy: Option<f64>) -> Result<InfoWritten> {
    if index >= cluster.state.nodes.len() {
        bail!("no node {index}");
    }
    let put = PutInfo { key: key.to_string(), value, energy };
    cluster.client(index).put_info(&put).with_context(|| format!("node {index} refused the item"))
}

/// Asks every running node for `key`, in parallel.
pub fn holdings(cluster: &mut Cluster, key: &str) -> Vec<Holding> {
    let running = cluster.running();
    let cl = &*cluster;
    par_map(&running, |&i| {
        let (item, error) = match cl.client(i).info(key) {
            Ok(item) => (item, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Holding { error, index: i, item, node_id: cl.state.nodes[i].node_id.clone() }
    })
}

/// `ryx-cluster info put`.
pub fn put(dir_arg: Option<&Path>, args: InfoPutArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
    let index = match args.to {
        Some(i) => {
            if i >= cluster.state.nodes.len() {
                bail!("no node {i} (nodes are 0..{})", cluster.state.nodes.len());
            }
            if cluster.liveness(i) != Liveness::Running {
                bail!("node {i} is not running");
            }
            i
        }
        None => *cluster.running().first().context("no running node in the cluster")?,
    };
    let value = parse_value(&args.value);
    let r = put_at(&cluster, index, &args.key, value.clone(), args.energy)?;
    out!(
        "put {:?} = {} at node {index} (id {}): version {}{}",
        args.key,
        value,
        r.origin,
        r.version,
        args.energy.map(|e| format!(", energy {e}")).unwrap_or_default()
    );
    Ok(())
}

/// `ryx-cluster info get`.
pub fn get(dir_arg: Option<&Path>, args: InfoGetArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let mut cluster = Cluster::new(dir.clone(), dir.load_required()?);
    let hs = holdings(&mut cluster, &args.key);
    if hs.is_empty() {
        bail!("no running node in the cluster");
    }
    let have = hs.iter().filter(|h| h.item.is_some()).count();
    let pct = 100.0 * have as f64 / hs.len() as f64;
    if args.json {
        let asked = hs.len();
        let out = Coverage { asked, coverage: pct / 100.0, holding: have, key: args.key, nodes: hs };
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let field = |h: &Holding, f: fn(&InfoItem) -> String| h.item.as_ref().map_or_else(|| "-".into(), f);
    let rows: Vec<Vec<String>> = hs
        .iter()
        .map(|h| {
            vec![
                h.index.to_string(),
                h.node_id.as_ref().map_or_else(|| "-".into(), NodeId::to_string),
                match (&h.item, &h.error) {
                    (Some(_), _) => "yes".into(),
                    (None, None) => "no".into(),
                    (None, Some(e)) => format!("error: {}", truncate(e, 60)),
                },
                truncate(&field(h, |i| i.value.to_string()), 40),
                field(h, |i| i.version.to_string()),
                field(h, |i| format!("{:.1}", i.energy)),
                field(h, |i| i.hops.to_string()),
            ]
        })
        .collect();
    out_raw!("{}", table(&["node", "node id", "has", "value", "version", "energy", "hops"], &rows));
    out!("coverage of {:?}: {have}/{} running nodes ({pct:.0}%)", args.key, hs.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_json_or_strings() {
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_value("hello world"), json!("hello world"));
    }
}
