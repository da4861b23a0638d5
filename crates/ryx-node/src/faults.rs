//! Network fault injection for chaos tests: drop traffic to and from chosen
//! peers (partitions), lose or delay outgoing datagrams. Off unless the node
//! runs with `--enable-fault-injection`; every fault expires by itself.

use ryx_api::FaultState;
pub use ryx_api::{FaultSpec, Impairment};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What happens to an outgoing datagram.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Send now.
    Send,
    /// Drop it.
    Drop,
    /// Send after this long.
    Delay(Duration),
}

/// Faults in force.
#[derive(Debug, Default)]
pub struct NetFaults {
    blocked: HashSet<SocketAddr>,
    loss: f64,
    delay: Duration,
    jitter: Duration,
    until: Option<Instant>,
    rng: u64,
    /// Datagrams dropped by faults.
    pub dropped: u64,
    /// Datagrams delayed by faults.
    pub delayed: u64,
}

impl NetFaults {
    /// Replaces the faults in force.
    pub fn set(&mut self, spec: &FaultSpec) -> Result<(), String> {
        let imp = spec.impairment;
        if !(0.0..=1.0).contains(&imp.loss) {
            return Err("loss must be within 0..1".into());
        }
        if spec.for_ms == 0 || spec.for_ms > 3_600_000 {
            return Err("for_ms must be 1 to 3600000 (faults always heal by themselves)".into());
        }
        if imp.delay_ms > 10_000 || imp.jitter_ms > 10_000 {
            return Err("delay_ms and jitter_ms must be at most 10000".into());
        }
        self.blocked = spec.block.iter().copied().collect();
        self.loss = imp.loss;
        self.delay = Duration::from_millis(imp.delay_ms);
        self.jitter = Duration::from_millis(imp.jitter_ms);
        self.until = Some(Instant::now() + Duration::from_millis(spec.for_ms));
        if self.rng == 0 {
            self.rng = 0x2545_F491_4F6C_DD1D ^ std::process::id() as u64;
        }
        Ok(())
    }

    /// Heals everything.
    pub fn clear(&mut self) {
        self.blocked.clear();
        self.loss = 0.0;
        self.delay = Duration::ZERO;
        self.jitter = Duration::ZERO;
        self.until = None;
    }

    fn live(&mut self) -> bool {
        match self.until {
            Some(t) if Instant::now() >= t => {
                self.clear();
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether a datagram from `from` is dropped on arrival.
    pub fn drop_incoming(&mut self, from: SocketAddr) -> bool {
        if !self.live() {
            return false;
        }
        let d = self.blocked.contains(&from);
        if d {
            self.dropped += 1;
        }
        d
    }

    /// The fate of a datagram to `to`.
    pub fn outgoing(&mut self, to: SocketAddr, broadcast: bool) -> Verdict {
        if !self.live() {
            return Verdict::Send;
        }
        if (!broadcast && self.blocked.contains(&to)) || (self.loss > 0.0 && self.unit() < self.loss) {
            self.dropped += 1;
            return Verdict::Drop;
        }
        if self.delay.is_zero() && self.jitter.is_zero() {
            return Verdict::Send;
        }
        self.delayed += 1;
        let j = self.jitter.mul_f64(self.unit());
        Verdict::Delay(self.delay + j)
    }

    /// The faults in force, for `GET /v1/admin/faults`.
    pub fn describe(&mut self) -> FaultState {
        FaultState {
            active: self.live(),
            block: self.blocked.iter().copied().collect(),
            delay_ms: self.delay.as_millis() as u64,
            delayed: self.delayed,
            dropped: self.dropped,
            jitter_ms: self.jitter.as_millis() as u64,
            loss: self.loss,
            remaining_ms: self.until.map(|u| u.saturating_duration_since(Instant::now()).as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_block_lose_delay_and_expire() {
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let mut f = NetFaults::default();
        assert_eq!(f.outgoing(a, false), Verdict::Send);
        assert!(f.set(&FaultSpec { for_ms: 0, ..Default::default() }).is_err());
        // Long enough that the checks below run while it is in force, even
        // on a loaded machine.
        let lasts = Duration::from_millis(300);
        f.set(&FaultSpec { block: vec![a], for_ms: lasts.as_millis() as u64, ..Default::default() }).expect("set");
        let expires_by = Instant::now() + lasts;
        assert!(f.drop_incoming(a));
        assert!(!f.drop_incoming(b));
        assert_eq!(f.outgoing(a, false), Verdict::Drop);
        assert_eq!(f.outgoing(b, false), Verdict::Send);
        // Nothing to wait for but the clock: once its deadline has passed,
        // the fault is gone with no one clearing it.
        std::thread::sleep(expires_by.saturating_duration_since(Instant::now()) + Duration::from_millis(1));
        assert_eq!(f.outgoing(a, false), Verdict::Send, "faults heal by themselves");
        let lose_all = Impairment { loss: 1.0, ..Impairment::default() };
        f.set(&FaultSpec { impairment: lose_all, for_ms: 1000, ..Default::default() }).expect("set");
        assert_eq!(f.outgoing(b, false), Verdict::Drop);
        let delay = Impairment { delay_ms: 5, ..Impairment::default() };
        f.set(&FaultSpec { impairment: delay, for_ms: 1000, ..Default::default() }).expect("set");
        assert_eq!(f.outgoing(b, false), Verdict::Delay(Duration::from_millis(5)));
        f.clear();
        assert_eq!(f.outgoing(b, false), Verdict::Send);
    }
}
