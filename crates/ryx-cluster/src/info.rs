//! `info put` / `info get`: thin helpers over the nodes' info API.

use crate::cli::{InfoGetArgs, InfoPutArgs};
use crate::cluster::{par_map, Cluster};
use crate::http::{encode_segment, truncate};
use crate::procfs::Liveness;
use crate::state::RunDir;
use crate::util::table;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;

/// What `put` got back.
#[derive(Debug)]
pub struct PutResult {
    /// Node the item was put at.
    pub index: usize,
    /// Version the node gave it.
    pub version: Value,
    /// Origin node id.
    pub origin: Value,
}

/// What one node holds for a key.
#[derive(Debug)]
pub struct Holding {
    /// Node index.
    pub index: usize,
    /// The item as the node returned it, if it has it.
    pub item: Option<Value>,
    /// Why the node could not be asked.
    pub error: Option<String>,
}

/// Reads a command-line value: JSON if it parses, else a string.
pub fn parse_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// Puts `key` = `value` at node `index`.
pub fn put_at(cluster: &Cluster, index: usize, key: &str, value: Value, energy: Option<f64>) -> Result<PutResult> {
    let n = cluster.state.nodes.get(index).with_context(|| format!("no node {index}"))?;
    let mut body = json!({"key": key, "value": value});
    if let Some(e) = energy {
        body["energy"] = json!(e);
    }
    let bytes = serde_json::to_vec(&body)?;
    let r = cluster.http.request(n.api(), "POST", "/v1/info", Some(&bytes))?;
    if r.status != 201 && r.status != 200 {
        bail!("node {index} refused the item: HTTP {}: {}", r.status, truncate(&r.text(), 300));
    }
    let v = r.json()?;
    Ok(PutResult {
        index,
        version: v.get("version").cloned().unwrap_or(Value::Null),
        origin: v.get("origin").cloned().unwrap_or(Value::Null),
    })
}

/// Asks every running node for `key`, in parallel.
pub fn holdings(cluster: &mut Cluster, key: &str) -> Vec<Holding> {
    let running = cluster.running();
    let path = format!("/v1/info/{}", encode_segment(key));
    let cl = &*cluster;
    par_map(&running, |&i| {
        let addr = cl.state.nodes[i].api();
        match cl.http.request(addr, "GET", &path, None) {
            Ok(r) if r.status == 200 => match r.json() {
                Ok(v) => Holding { index: i, item: Some(v), error: None },
                Err(e) => Holding { index: i, item: None, error: Some(format!("{e:#}")) },
            },
            Ok(r) if r.status == 404 => Holding { index: i, item: None, error: None },
            Ok(r) => Holding {
                index: i,
                item: None,
                error: Some(format!("HTTP {}: {}", r.status, truncate(&r.text(), 120))),
            },
            Err(e) => Holding { index: i, item: None, error: Some(format!("{e:#}")) },
        }
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
        "put {:?} = {} at node {} (id {}): version {}{}",
        args.key,
        value,
        r.index,
        r.origin.as_str().unwrap_or("?"),
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
        let nodes: Vec<Value> = hs
            .iter()
            .map(|h| json!({"index": h.index, "node_id": cluster.state.nodes[h.index].node_id, "item": h.item, "error": h.error}))
            .collect();
        let out = json!({"key": args.key, "asked": hs.len(), "holding": have, "coverage": pct / 100.0, "nodes": nodes});
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let field = |h: &Holding, f: &str| {
        h.item.as_ref().and_then(|v| v.get(f)).map(|v| v.to_string()).unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Vec<String>> = hs
        .iter()
        .map(|h| {
            vec![
                h.index.to_string(),
                cluster.state.nodes[h.index].node_id.clone().unwrap_or_else(|| "-".into()),
                match (&h.item, &h.error) {
                    (Some(_), _) => "yes".into(),
                    (None, None) => "no".into(),
                    (None, Some(e)) => format!("error: {}", truncate(e, 60)),
                },
                truncate(&field(h, "value"), 40),
                field(h, "version"),
                h.item
                    .as_ref()
                    .and_then(|v| v.get("energy")?.as_f64())
                    .map(|e| format!("{e:.1}"))
                    .unwrap_or_else(|| "-".into()),
                field(h, "hops"),
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

    #[test]
    fn values_are_json_or_strings() {
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_value("hello world"), json!("hello world"));
    }
}
