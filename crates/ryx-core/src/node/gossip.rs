//! Diffusion and anti-entropy: items pushed eagerly, announced lazily,
//! grafted, pruned, and reconciled by digests with neighbours.

use super::*;

impl Node {
    pub(super) fn kv(&self, space: Space) -> &InfoStore {
        match space {
            Space::Job => &self.job_items,
            Space::Reputation => &self.reputation,
            _ => &self.info,
        }
    }

    pub(super) fn wants(&self, id: &ItemId) -> bool {
        match id.space {
            Space::Info | Space::Job | Space::Reputation => self.kv(id.space).get(&id.key).is_none_or(|held| {
                !held.beats(id.version, id.origin) && (held.version, held.origin) != (id.version, id.origin)
            }),
            Space::Topology => self.announced(id).1,
        }
    }

    /// For an announcement: the hops of the copy held of the same item
    /// (topology: of any version), and whether this node [`wants`] it;
    /// one look-up, as announcements are the commonest thing a node hears.
    ///
    /// [`wants`]: Node::wants
    pub(super) fn announced(&self, id: &ItemId) -> (Option<u32>, bool) {
        match id.space {
            Space::Topology => match id.key.parse::<NodeId>() {
                Ok(n) => {
                    let held = self.topology.get(&n);
                    (held.map(|e| e.hops), n != self.id && held.is_none_or(|e| e.list.version() < id.version))
                }
                Err(_) => (None, false),
            },
            space => {
                let hops = self.kv(space).get(&id.key).filter(|h| h.version == id.version).map(|h| h.hops);
                (hops, self.wants(id))
            }
        }
    }

    pub(super) fn held_item(&self, space: &Space, key: &str) -> Option<Item> {
        match space {
            Space::Info | Space::Job | Space::Reputation => self.kv(*space).get(key).map(|s| Item {
                id: ItemId { space: *space, key: key.to_string(), version: s.version, origin: s.origin },
                value: ItemValue::Json(s.value.clone()),
                energy: s.energy,
                hops: s.hops,
                born: s.born,
                proof: s.proof.clone(),
            }),
            Space::Topology => {
                let n: NodeId = key.parse().ok()?;
                if n == self.id {
                    return Some(self.own_topology_item());
                }
                let e = self.topology.get(&n)?;
                // Neighbour lists are re-sent with what is left of the
                // energy they came with.
                let energy = self.topology_energy_after(e.hops);
                Some(Item {
                    id: ItemId { space: Space::Topology, key: key.to_string(), version: e.list.version(), origin: n },
                    value: ItemValue::Topology(e.list.clone()),
                    energy,
                    hops: e.hops,
                    born: 0,
                    proof: None,
                })
            }
        }
    }

    pub(super) fn topology_energy_after(&self, hops: u32) -> f64 {
        // Hop counts come from the network: stop once the energy is spent
        // (a few hops), not after u32::MAX of them.
        let mut e = self.cfg.topology_energy;
        for _ in 0..hops {
            e = self.cfg.energy.after_hop(e);
            if !EnergyModel::alive(e) {
                break;
            }
        }
        e
    }

    pub(super) fn on_item(&mut self, from: NodeId, item: Item, sync: bool) {
        if !self.wants(&item.id) {
            let same = match item.id.space {
                Space::Info | Space::Job | Space::Reputation => self
                    .kv(item.id.space)
                    .get(&item.id.key)
                    .is_some_and(|h| (h.version, h.origin) == (item.id.version, item.id.origin)),
                Space::Topology => true,
            };
            if same {
                self.metrics.items_duplicate += 1;
            }
            if !sync {
                // A second payload copy: this link is redundant for payloads.
                if let Some(p) = self.active.get_mut(&from) {
                    if p.eager {
                        p.eager = false;
                        self.send_to(from, Message::Prune);
                    }
                }
            }
            return;
        }
        // A version from beyond the clock-skew bound would lock its key
        // until the clock caught up (u64::MAX: for ever); energy beyond
        // what any node may give an item would outrank everything.
        if item.id.version > self.version_ceiling() {
            self.metrics.count_rejected("future_version");
            return;
        }
        if let Err(reason) = self.check_record(&item) {
            self.metrics.count_rejected(reason);
            return;
        }
        let energy = self.cfg.energy.after_hop(self.clamp_energy(item.energy));
        if !EnergyModel::alive(energy) {
            self.metrics.items_exhausted += 1;
            return;
        }
        let hops = item.hops.saturating_add(1);
        match item.id.space {
            Space::Info | Space::Job | Space::Reputation => {
                let size = item.value.len();
                let stored = StoredItem {
                    version: item.id.version,
                    origin: item.id.origin,
                    value: item.value.to_json(),
                    energy,
                    hops,
                    born: item.born,
                    received: self.now,
                    size,
                    proof: item.proof.clone(),
                };
                if item.id.space == Space::Job && job_is_running(&stored.value) {
                    self.job_running_seen = Some(self.now);
                }
                let ev = match item.id.space {
                    Space::Job => self.job_items.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        MAX_JOB_ITEMS,
                        MAX_JOB_ITEMS * wire::MAX_VALUE_LEN,
                    ),
                    Space::Reputation => self.reputation.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        MAX_REPUTATION_ITEMS,
                        MAX_REPUTATION_ITEMS * 64,
                    ),
                    _ => self.info.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        self.cfg.max_items,
                        self.cfg.max_item_bytes,
                    ),
                };
                self.metrics.items_evicted += ev;
                self.on_kv_delivered(&item);
                self.missing.superseded(&item.id.key, item.id.version, item.id.origin);
                if sync {
                    self.metrics.items_synced += 1;
                }
                if item.id.space == Space::Info && item.born > 0 && self.now.as_micros() >= item.born {
                    let ms = (self.now.as_micros() - item.born) as f64 / 1000.0;
                    self.metrics.diffusion_latency.observe(ms);
                }
            }
            Space::Topology => {
                let Some(list) = item.value.neighbor_list(item.id.version) else {
                    self.metrics.count_rejected(wire::WireError::OutOfBounds.reason());
                    return;
                };
                if list.links.len() > wire::MAX_PEERS_PER_MESSAGE {
                    self.metrics.count_rejected(wire::WireError::OutOfBounds.reason());
                    return;
                }
                let Ok(origin) = item.id.key.parse::<NodeId>() else {
                    return;
                };
                self.topology.insert(
                    origin,
                    TopologyEntry { list, received: self.now, hops },
                    self.cfg.max_topology_nodes,
                );
                self.missing.superseded(&item.id.key, item.id.version, item.id.origin);
            }
        }
        self.metrics.items_delivered += 1;
        if item.id.space == Space::Info {
            self.emit(Event::ItemDelivered { id: item.id.clone(), energy, hops, from });
            self.on_incident_item(&item.id.key);
        }
        if !sync {
            if let Some(p) = self.active.get_mut(&from) {
                p.eager = true;
            }
        }
        let fwd = Item { energy, hops, ..item };
        self.forward(fwd, Some(from));
    }

    /// The newest version a node accepts: its wall clock (µs) plus the skew
    /// bound. Versions are hybrid clocks (see [`Node::next_version`]), so an
    /// honest writer never exceeds it.
    pub(super) fn version_ceiling(&self) -> u64 {
        self.wall().0.saturating_add(MAX_CLOCK_SKEW.as_micros() as u64)
    }

    /// The version of a new write over `held`: one more than what is held,
    /// and at least the wall clock in microseconds (a hybrid logical
    /// clock). A later write therefore always wins, and no accepted
    /// version can be pushed so high that the next write cannot pass it.
    pub(super) fn next_version(&self, held: u64) -> u64 {
        held.saturating_add(1).max(self.wall().0).max(1)
    }

    /// Nodes that may be the home of `job` as far as this node knows: its
    /// creator (the job id starts with it), and the home and co-homes of
    /// the summary held here.
    pub(super) fn may_home(&self, job: &str) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = crate::jobs::job_creator(job).into_iter().collect();
        if let Some(s) = self.job_items.get(job).and_then(|it| JobSummary::deserialize(&*it.value).ok()) {
            v.push(s.home);
            v.extend(s.co_homes);
        }
        v
    }

    /// Job summaries and reputation records are statements of their origin
    /// and must carry its signature. A job summary is moreover accepted only
    /// from the job's creator, the home of the summary held, or one of the
    /// heirs that home named (a node may not make itself another job's
    /// home); a reputation record only about another node, by its accuser.
    pub(super) fn check_record(&self, item: &Item) -> Result<(), &'static str> {
        if !matches!(item.id.space, Space::Job | Space::Reputation) {
            return Ok(());
        }
        let Some(proof) = &item.proof else { return Err(SigError::Missing.reason()) };
        if let Err(e) =
            proof.verify(item.id.origin, crate::identity::domain::ITEM, &[&item.signed_bytes(&self.cfg.cluster_id)])
        {
            return Err(e.reason());
        }
        match item.id.space {
            Space::Job => {
                let Ok(sum) = JobSummary::deserialize(&*item.value.to_json()) else {
                    return Err(wire::WireError::OutOfBounds.reason());
                };
                if sum.job_id != item.id.key || sum.home != item.id.origin || sum.co_homes.len() > 16 {
                    return Err(wire::WireError::OutOfBounds.reason());
                }
                let creator = crate::jobs::job_creator(&item.id.key);
                let held = self.job_items.get(&item.id.key);
                let held_summary = held.and_then(|h| JobSummary::deserialize(&*h.value).ok());
                let allowed = creator == Some(item.id.origin)
                    || held.is_none_or(|h| h.origin == item.id.origin)
                    || held_summary.as_ref().is_some_and(|h| h.co_homes.contains(&item.id.origin));
                if !allowed {
                    return Err("not_heir");
                }
                // A result is believed from the creator, or from another
                // home with an appointed heir's confirmation (`attest`).
                if sum.state == crate::jobs::JobState::Done {
                    let (Some(hash), Some(digest)) = (&sum.result_hash, &sum.result_digest) else {
                        return Err(wire::WireError::OutOfBounds.reason());
                    };
                    crate::attest::check_result(
                        &self.cfg.cluster_id,
                        &item.id.key,
                        item.id.origin,
                        hash,
                        digest,
                        sum.appointment.as_ref(),
                        &sum.confirmations,
                    )?;
                }
            }
            _ => {
                let Some((accused, accuser)) = reputation_key(&item.id.key) else {
                    return Err(wire::WireError::OutOfBounds.reason());
                };
                if accuser != item.id.origin || accused == accuser || item.value.as_u64().is_none() {
                    return Err(wire::WireError::OutOfBounds.reason());
                }
            }
        }
        Ok(())
    }

    /// Pushes an item to eager neighbours and announces it to lazy ones.
    pub(super) fn forward(&mut self, item: Item, except: Option<NodeId>) {
        if !EnergyModel::alive(self.cfg.energy.after_hop(item.energy)) {
            // The next hop would receive nothing: the item stops here.
            return;
        }
        let peers: Vec<(NodeId, bool)> =
            self.active.iter().filter(|(id, _)| Some(**id) != except).map(|(id, p)| (*id, p.eager)).collect();
        for (id, eager) in peers {
            if eager {
                self.send_to(id, Message::Gossip { items: vec![item.clone()], sync: false });
            } else {
                let q = self.lazy_queue.entry(id).or_default();
                if q.len() < MAX_LAZY_QUEUE {
                    q.push(Announce { id: item.id.clone(), energy: item.energy, hops: item.hops });
                }
            }
        }
    }

    pub(super) fn flush_lazy(&mut self) {
        let queue = std::mem::take(&mut self.lazy_queue);
        for (id, anns) in queue {
            for chunk in anns.chunks(wire::IDS_PER_PAGE) {
                self.send_to(id, Message::IHave { items: chunk.to_vec() });
            }
        }
    }

    /// Sends the next page of the anti-entropy walks to a neighbour: one of
    /// info items, and one of records (job summaries, then reputation, and
    /// round). Records have a walk of their own so that a large info table
    /// never delays a job's result reaching a node that missed it.
    pub(super) fn send_digest_to(&mut self, id: NodeId) {
        let Some(addr) = self.active.get(&id).map(|p| p.addr) else {
            return;
        };
        let addr = PeerInfo { id, addr };
        let after = std::mem::take(&mut self.sync_cursor);
        let (entries, upto) = self.info.digest_page(&after, DIGEST_PAGE_BYTES);
        self.sync_cursor = upto.clone().unwrap_or_default();
        self.send(addr, Message::SyncDigest { space: Space::Info, after, upto, entries });
        let (space, after) = std::mem::replace(&mut self.record_cursor, (Space::Job, String::new()));
        let (entries, upto) = self.kv(space).digest_page(&after, DIGEST_PAGE_BYTES);
        self.record_cursor = match &upto {
            Some(u) => (space, u.clone()),
            None if space == Space::Job => (Space::Reputation, String::new()),
            None => (Space::Job, String::new()),
        };
        self.send(addr, Message::SyncDigest { space, after, upto, entries });
    }

    /// Compares job summaries with a new neighbour at once: after a
    /// partition heals, the first links across are where two homes of one
    /// job learn of each other.
    pub(super) fn send_job_digest_to(&mut self, id: NodeId) {
        let Some(addr) = self.active.get(&id).map(|p| p.addr) else {
            return;
        };
        let addr = PeerInfo { id, addr };
        if self.job_items.is_empty() {
            return;
        }
        let (entries, upto) = self.job_items.digest_page("", DIGEST_PAGE_BYTES);
        self.send(addr, Message::SyncDigest { space: Space::Job, after: String::new(), upto, entries });
    }

    /// Energy an item is re-sent with by anti-entropy. Job summaries and
    /// reputation are records every node should come to hold (a job's
    /// result is asked for anywhere), so repair lifts them to a floor that
    /// carries them a few more hops; info items keep what they have left.
    pub(super) fn sync_energy(&self, mut item: Item) -> Item {
        if matches!(item.id.space, Space::Job | Space::Reputation) {
            item.energy = item.energy.max(SYNC_RECORD_ENERGY);
        }
        item
    }

    pub(super) fn on_digest(
        &mut self,
        src: PeerInfo,
        space: Space,
        after: &str,
        upto: Option<&str>,
        entries: Vec<wire::DigestEntry>,
    ) {
        if space == Space::Topology {
            return;
        }
        let mut want = Vec::new();
        let mut theirs = BTreeMap::new();
        for e in entries {
            let mine = self.kv(space).get(&e.key);
            match mine {
                Some(m) if m.beats(e.version, e.origin) => {}
                Some(m) if (m.version, m.origin) == (e.version, e.origin) => {}
                _ => want.push(e.key.clone()),
            }
            theirs.insert(e.key, (e.version, e.origin));
        }
        // Push what we hold newer, or what they lack, in their range, up
        // to a budget (an honest page asks for far less).
        let mut budget = SYNC_ANSWER_BYTES;
        for key in self.kv(space).keys_in(after, upto) {
            let push = match (theirs.get(&key), self.kv(space).get(&key)) {
                (Some(&(v, o)), Some(m)) => m.beats(v, o),
                (None, Some(_)) => true,
                _ => false,
            };
            if push {
                if let Some(item) = self.held_item(&space, &key).map(|i| self.sync_energy(i)) {
                    if EnergyModel::alive(self.cfg.energy.after_hop(item.energy)) {
                        if !self.spend(&mut budget, &item) {
                            self.metrics.sync_answers_capped += 1;
                            break;
                        }
                        self.send(src, Message::Gossip { items: vec![item], sync: true });
                    }
                }
            }
        }
        for chunk in want.chunks(wire::IDS_PER_PAGE) {
            self.send(src, Message::SyncRequest { space, keys: chunk.to_vec() });
        }
    }
}

/// Whether a job summary's value says the job is running.
pub(super) fn job_is_running(v: &serde_json::Value) -> bool {
    v.get("state").and_then(|s| s.as_str()) == Some("running")
}
