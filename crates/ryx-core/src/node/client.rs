//! What the node's own driver and API ask of it: writes, reads,
//! status, topology.

use super::*;

impl Node {
    /// Writes a key/value item and starts its diffusion. Returns the version.
    pub fn put_info(
        &mut self,
        now: Time,
        key: &str,
        value: serde_json::Value,
        energy: Option<f64>,
    ) -> Result<u64, PutError> {
        self.now = now.max(self.now);
        if self.leaving {
            return Err(PutError::Leaving);
        }
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(PutError::BadKey);
        }
        let size = wire::value_len(&value);
        if size > MAX_VALUE_LEN {
            return Err(PutError::ValueTooLarge);
        }
        let energy = energy.unwrap_or(self.cfg.default_energy);
        if !(energy.is_finite() && energy > 0.0 && energy <= self.cfg.max_energy) {
            return Err(PutError::BadEnergy(self.cfg.max_energy));
        }
        let version = self.next_version(self.info.get(key).map_or(0, |h| h.version));
        let value = std::sync::Arc::new(value);
        let stored = StoredItem {
            version,
            origin: self.id,
            value: value.clone(),
            energy,
            hops: 0,
            born: self.now.as_micros(),
            received: self.now,
            size,
            proof: None,
        };
        let ev = self.info.insert(key.to_string(), stored, self.now, self.cfg.max_items, self.cfg.max_item_bytes);
        self.metrics.items_evicted += ev;
        let item = Item {
            id: ItemId { space: Space::Info, key: key.to_string(), version, origin: self.id },
            value: ItemValue::Json(value),
            energy,
            hops: 0,
            born: self.now.as_micros(),
            proof: None,
        };
        self.forward(item, None);
        Ok(version)
    }

    /// Announces departure to every neighbour; afterwards the node answers
    /// pings (so it is not mistaken for dead while it drains) but takes no
    /// new neighbours. The driver exits once outputs are flushed.
    pub fn leave(&mut self, now: Time) {
        self.now = now.max(self.now);
        if self.leaving {
            return;
        }
        self.leaving = true;
        // Hand over what only this node holds: neighbours fetch copies
        // (over HTTP, which the driver keeps serving while it drains) and
        // answer with BlobHave, which `handover_pending` counts down.
        let only_here: Vec<BlobRef> = self
            .blobs
            .iter()
            .filter(|(_, m)| m.holders.is_empty())
            .map(|(h, m)| BlobRef { hash: h.clone(), size: m.size })
            .collect();
        // Two takers per blob: one may have no room.
        self.offer(only_here, self.cfg.blob_energy, None, 2);
        for a in self.active_peers() {
            self.send(a, Message::Leave);
        }
    }

    /// While leaving: blobs no other node is known to hold yet, and work
    /// units still running here. The driver waits (boundedly) for both to
    /// reach zero before it exits.
    pub fn handover_pending(&self) -> (usize, usize) {
        // With every neighbour gone (a whole cluster stopping together),
        // there is nobody left to hand blobs to.
        if self.active.is_empty() {
            return (0, self.jobs.load().1);
        }
        let blobs = self.blobs.iter().filter(|(_, m)| m.holders.is_empty()).count();
        (blobs, self.jobs.load().1)
    }

    /// The item held under `key`.
    pub fn info(&self, key: &str) -> Option<&StoredItem> {
        self.info.get(key)
    }

    /// All info items, by key.
    pub fn info_items(&self) -> impl Iterator<Item = (&String, &StoredItem)> {
        self.info.iter()
    }

    pub(super) fn active_peers(&self) -> Vec<PeerInfo> {
        self.active.iter().map(|(id, p)| PeerInfo { id: *id, addr: p.addr }).collect()
    }

    /// Active neighbour ids.
    pub fn active_ids(&self) -> Vec<NodeId> {
        self.active.keys().copied().collect()
    }

    /// Number of active neighbours.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Sizes of every bounded table (for invariant checks).
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            active: self.active.len(),
            passive: self.passive.len(),
            pending_joins: self.pending_joins.len(),
            pending_pings: self.pending_pings.len(),
            tombstones: self.tombstones.len(),
            info: self.info.len(),
            info_bytes: self.info.bytes(),
            topology: self.topology.len(),
            missing: self.missing.len(),
            lazy_queued: self.lazy_queue.values().map(|q| q.len()).sum(),
            job_items: self.job_items.len(),
            reputation_items: self.reputation.len(),
            signed_seqs: self.signed_seqs.len(),
            pending_ping_reqs: self.pending_ping_reqs.len(),
            blobs: self.blobs.len(),
            local_chunks: self.blobs.local_len(),
            blob_bytes: self.blobs.used(),
            blob_pins: self.blobs.pinned_count(),
            blob_holders: self.blobs.iter().map(|(_, m)| m.holders.len()).max().unwrap_or(0),
            blob_consistent: self.blobs.consistent(),
            replication: self.replication_src.len(),
            replication_more: self.replication_more.len(),
            want_routes: self.want_routes.len(),
            upload_queue: self.upload_queue.len() + self.upload_window.len(),
            custody: self.custody.len(),
            custody_peers: self.custody.peers(),
            custody_pending: self.custody.pending(),
            agg: self.agg.entries(),
            alerts: self.alert_entries(),
            learn: self.learn_entries(),
            jobs: self.jobs.sizes(),
        }
    }

    /// Whether `id` is in the passive list.
    pub fn is_passive(&self, id: &NodeId) -> bool {
        self.passive.contains(id)
    }

    /// Snapshot for `/v1/status`.
    pub fn status(&self, now: Time) -> Status {
        Status {
            node_id: self.id,
            cluster_id: self.cfg.cluster_id.clone(),
            addr: self.addr,
            uptime_ms: now.since(self.started).as_millis() as u64,
            neighbors: self.neighbors(now),
            passive_count: self.passive.len(),
            local_health: self.local_health,
            info_items: self.info.len(),
            topology_nodes: self.topology.len() + 1,
            leaving: self.leaving,
            zone: self.cfg.zone.clone(),
            coord: self.coord(),
            work: {
                let j = self.jobs.sizes();
                WorkStatus {
                    homes: j.homes,
                    heir_of: j.heirs,
                    queued: j.queue,
                    running: j.running,
                    slots: self.jobs.config().worker_slots,
                    blobs: self.blobs.len(),
                    blob_bytes: self.blobs.used(),
                }
            },
        }
    }

    /// Active neighbours.
    pub fn neighbors(&self, now: Time) -> Vec<NeighborStatus> {
        self.active
            .iter()
            .map(|(id, p)| NeighborStatus {
                node_id: *id,
                addr: p.addr,
                rtt_ms: p.rtt.millis(),
                long: p.long,
                eager: p.eager,
                age_ms: now.since(p.since).as_millis() as u64,
                silent_ms: now.since(p.last_heard).as_millis() as u64,
                suspect: p.suspect_since.is_some(),
            })
            .collect()
    }

    /// Passive peers.
    pub fn passive_peers(&self) -> Vec<PeerStatus> {
        self.passive.iter().map(|(id, p)| PeerStatus { node_id: *id, addr: p.addr, rtt_ms: p.rtt.millis() }).collect()
    }

    pub(super) fn own_links(&self) -> Vec<LinkInfo> {
        self.active.iter().map(|(id, p)| LinkInfo { id: *id, long: p.long, rtt_ms: p.rtt.millis() }).collect()
    }

    pub(super) fn own_topology_item(&self) -> Item {
        let list = NeighborList {
            addr: self.addr,
            http: Some(self.http),
            links: self.own_links(),
            zone: self.cfg.zone.clone(),
            coord: self.coord(),
            every_s: Some(self.topology_every().as_secs().min(u64::from(u32::MAX)) as u32),
        };
        Item {
            id: ItemId {
                space: Space::Topology,
                key: self.id.to_string(),
                version: self.topo_version,
                origin: self.id,
            },
            value: ItemValue::Topology(crate::topology::ListValue::new(list, self.topo_version)),
            energy: self.cfg.topology_energy,
            hops: 0,
            born: 0,
            proof: None,
        }
    }

    /// This node's network coordinate, once a round trip has placed it.
    pub fn coord(&self) -> Option<crate::coords::Coord> {
        (self.vivaldi.used > 0).then(|| self.vivaldi.coord())
    }

    /// Round trips this node's coordinate has moved by.
    pub fn coord_samples(&self) -> u64 {
        self.vivaldi.used
    }

    /// The round trip to `peer` its coordinate predicts, if both are known
    /// (the peer's from its diffused neighbour list, if plausible) and this
    /// node is fairly sure of its own (error ≤ [`PREDICT_MAX_ERROR`]).
    pub fn predicted_rtt_ms(&self, peer: NodeId) -> Option<f64> {
        let theirs = self.topology.get(&peer)?.list.coord.filter(crate::coords::Coord::plausible)?;
        let me = self.coord().filter(|c| (c.e as f64) <= PREDICT_MAX_ERROR)?;
        Some(me.rtt_ms(&theirs))
    }

    /// The round trip to a passive peer: measured, else predicted, in µs.
    pub(super) fn rtt_or_predicted_us(&self, peer: NodeId, measured: Option<u64>) -> Option<u64> {
        measured.or_else(|| self.predicted_rtt_ms(peer).map(|ms| (ms * 1000.0) as u64))
    }

    /// The graph this node has learned (its own list plus diffused ones).
    pub fn topology(&self, now: Time) -> Topology {
        let mut nodes = vec![TopologyNode {
            node_id: self.id,
            addr: self.addr,
            http: Some(self.http),
            hops: 0,
            age_ms: 0,
            coord: self.coord(),
        }];
        let mut links: Vec<TopologyLink> = self
            .active
            .iter()
            .map(|(id, p)| TopologyLink { source: self.id, target: *id, long: p.long, rtt_ms: p.rtt.millis() })
            .collect();
        for (id, e) in self.topology.iter() {
            nodes.push(TopologyNode {
                node_id: *id,
                addr: e.list.addr,
                http: e.list.http,
                hops: e.hops,
                age_ms: now.since(e.received).as_millis() as u64,
                // Only a believable one: a made-up coordinate must not
                // break the readers of `/v1/topology`.
                coord: e.list.coord.filter(crate::coords::Coord::plausible),
            });
            for l in &e.list.links {
                links.push(TopologyLink { source: *id, target: l.id, long: l.long, rtt_ms: l.rtt_ms });
            }
        }
        Topology { observer: self.id, nodes, links }
    }
}
