//! A bench for the job engine's unit tests: one node's engine, identity and
//! tables, and what its calls produced.

use super::*;
use crate::identity::Identity;

pub const CLUSTER: &str = "t";

/// A node's engine, identity and tables, and what its calls produced.
pub struct Bench {
    pub engine: JobEngine,
    pub identity: Identity,
    pub rng: Rng,
    pub blobs: BlobIndex,
    pub now: Time,
    pub neighbors: Vec<(NodeId, SocketAddr)>,
    pub sends: Vec<(PeerInfo, Message)>,
    pub outputs: Vec<JobOutput>,
    pub summaries: Vec<JobSummary>,
    pub penalties: Vec<NodeId>,
    pub rejected: Vec<&'static str>,
    /// Nodes this one knows by HTTP address (`Ctx::peer_at`).
    pub peers: Vec<(SocketAddr, PeerInfo)>,
    /// Nodes keeping copies of this node's own chunks (`Ctx::keepers_of`).
    pub keepers: Vec<(String, PeerInfo)>,
    /// The node's local-health multiplier (`Ctx::local_health`).
    pub local_health: u32,
}

/// The address of test node `n`.
pub fn addr(n: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + n as u16))
}

/// Test node `n`'s key pair.
pub fn key(n: u64) -> Identity {
    Identity::from_u64(n)
}

/// Test node `n` as a peer.
pub fn peer(n: u64) -> PeerInfo {
    PeerInfo { id: key(n).id(), addr: addr(n) }
}

/// `n` units on made-up chunks, each held by node 1.
pub fn units(n: u32) -> Vec<UnitRef> {
    (0..n)
        .map(|i| UnitRef {
            hash: Hash::from(blake3::hash(&i.to_le_bytes()).to_hex().as_str()),
            size: 100,
            holders: vec![addr(1)],
        })
        .collect()
}

impl Bench {
    /// Node `n`, with nodes `neighbours` as its neighbours.
    pub fn new(n: u64, neighbours: &[u64]) -> Bench {
        Bench {
            engine: JobEngine::new(JobConfig::default()),
            identity: key(n),
            rng: Rng::new(n),
            blobs: BlobIndex::new(1 << 30),
            now: Time::from_millis(1_000_000),
            neighbors: neighbours.iter().map(|&m| (key(m).id(), addr(m))).collect(),
            sends: Vec::new(),
            outputs: Vec::new(),
            summaries: Vec::new(),
            penalties: Vec::new(),
            rejected: Vec::new(),
            peers: Vec::new(),
            keepers: Vec::new(),
            local_health: 0,
        }
    }

    pub fn id(&self) -> NodeId {
        self.identity.id()
    }

    /// Runs `f` on the engine with a context; keeps what it produced.
    pub fn call<R>(&mut self, f: impl FnOnce(&mut JobEngine, &mut Ctx<'_>) -> R) -> R {
        let me = self.identity.id();
        let http = addr(me.0 % 1000);
        let (peers, keepers) = (&self.peers, &self.keepers);
        let mut ctx = Ctx {
            now: self.now,
            wall: self.now,
            me,
            identity: &self.identity,
            cluster: CLUSTER,
            http,
            neighbors: self.neighbors.clone(),
            rng: &mut self.rng,
            sends: Vec::new(),
            outputs: Vec::new(),
            summaries: Vec::new(),
            blobs: &mut self.blobs,
            energy: EnergyModel::default(),
            penalties: Vec::new(),
            wants: Vec::new(),
            rejected: Vec::new(),
            peer_at: &|a| peers.iter().find(|(h, _)| *h == a).map(|(_, p)| *p),
            keepers_of: &|h| keepers.iter().filter(|(k, _)| k == h).map(|(_, p)| *p).collect(),
            local_health: self.local_health,
        };
        let r = f(&mut self.engine, &mut ctx);
        let Ctx { sends, outputs, summaries, penalties, rejected, .. } = ctx;
        self.sends.extend(sends);
        self.outputs.extend(outputs);
        self.summaries.extend(summaries);
        self.penalties.extend(penalties);
        self.rejected.extend(rejected);
        r
    }

    /// Lets `ms` pass and ticks.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.plus(Duration::from_millis(ms));
        self.call(|e, c| e.tick(c));
    }

    /// Submits a word count over `units` with `redundancy`.
    pub fn submit(&mut self, units: Vec<UnitRef>, redundancy: u8) -> String {
        self.call(|e, c| {
            e.submit(
                c,
                "word-count".into(),
                serde_json::json!({}),
                units,
                redundancy,
                None,
                Vec::new(),
                Placement::default(),
            )
        })
        .expect("submit")
    }

    /// The messages of one kind sent so far, and to whom.
    pub fn sent(&self, kind: &str) -> Vec<(PeerInfo, Message)> {
        self.sends.iter().filter(|(_, m)| m.kind() == kind).cloned().collect()
    }

    /// How often `reason` was counted.
    pub fn refused(&self, reason: &str) -> usize {
        self.rejected.iter().filter(|r| **r == reason).count()
    }
}

/// Worker `w`'s signed result for `unit` of `job` (its token named by
/// `chunk`).
pub fn result(w: u64, job: &str, unit: u32, replica: u8, chunk: &str, digest: &str) -> UnitResult {
    let token = token_digest(job, unit, chunk, "word-count", &serde_json::json!({}));
    let proof = crate::attest::vote_proof(&key(w), CLUSTER, 1, job, unit, &token, digest);
    UnitResult { unit, replica, digest: digest.into(), token, proof: Some(proof) }
}

/// Worker `w`'s report of `results`.
pub fn report(w: u64, job: &str, results: Vec<UnitResult>) -> JobReport {
    JobReport { job: job.into(), worker: key(w).id(), http: addr(w), holding: vec![], results, hops: 0, proof: None }
}

/// A made-up blob name.
pub fn name(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}
