//! Finding free loopback ports for nodes and for a cluster's discovery.

use anyhow::{bail, Result};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// The loopback broadcast address discovery hellos go to.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// Lowest port chosen when none is given.
const AUTO_LOW: u16 = 24_000;
/// Width of the range automatic base ports are drawn from: above the
/// fixed ports of the ryx-node tests (21000-22999) and of ours (23xxx),
/// below Linux's ephemeral range (from 32768), leaving room to scan up.
const AUTO_SPAN: u16 = 8_000;
/// Ports tried before giving up.
const MAX_PROBES: usize = 4_000;

/// Whether a node can bind UDP and TCP on `127.0.0.1:port`.
pub fn node_port_free(port: u16) -> bool {
    port != 0
        && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Whether `port` is free as a discovery port: nobody listens for UDP on
/// the loopback broadcast address (another cluster's nodes would hold it)
/// nor on 127.0.0.1, and the TCP port is free too so it cannot be mistaken
/// for a node's.
pub fn discovery_port_free(port: u16) -> bool {
    port != 0 && UdpSocket::bind((LOOPBACK_BROADCAST, port)).is_ok() && node_port_free(port)
}

/// A base port drawn from `seed` when the user gave none.
pub fn auto_base(seed: u64) -> u16 {
    AUTO_LOW + (seed % u64::from(AUTO_SPAN)) as u16
}

/// Hands out free ports, scanning upward from a start and never handing out
/// the same port twice.
#[derive(Debug)]
pub struct PortAllocator {
    next: u32,
    used: HashSet<u16>,
}

impl PortAllocator {
    /// Starts scanning at `start`, never returning a port in `used`.
    pub fn new(start: u16, used: impl IntoIterator<Item = u16>) -> PortAllocator {
        PortAllocator { next: u32::from(start.max(1024)), used: used.into_iter().collect() }
    }

    /// The next port that passes `free`.
    fn take(&mut self, free: impl Fn(u16) -> bool, what: &str) -> Result<u16> {
        for _ in 0..MAX_PROBES {
            let Ok(port) = u16::try_from(self.next) else {
                bail!("ran out of ports looking for a free {what} port (reached 65535); try a lower --base-port");
            };
            self.next += 1;
            if !self.used.contains(&port) && free(port) {
                self.used.insert(port);
                return Ok(port);
            }
        }
        bail!("no free {what} port among {MAX_PROBES} tried; try another --base-port")
    }

    /// A free port for a node (UDP and TCP on 127.0.0.1).
    pub fn node_port(&mut self) -> Result<u16> {
        self.take(node_port_free, "node")
    }

    /// A free discovery port.
    pub fn discovery_port(&mut self) -> Result<u16> {
        self.take(discovery_port_free, "discovery")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_busy_and_used_ports() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let busy_port = busy.local_addr().expect("addr").port();
        let mut a = PortAllocator::new(busy_port, [busy_port.saturating_add(1)]);
        let p = a.node_port().expect("port");
        assert!(p >= busy_port.saturating_add(2), "busy {busy_port} and used ports skipped, got {p}");
        let q = a.node_port().expect("port");
        assert!(q > p);
    }

    #[test]
    fn discovery_probe_sees_a_held_broadcast_socket() {
        let held = UdpSocket::bind((LOOPBACK_BROADCAST, 0)).expect("bind broadcast addr");
        let port = held.local_addr().expect("addr").port();
        assert!(!discovery_port_free(port));
    }

    #[test]
    fn auto_base_is_below_ephemeral_range() {
        for s in [0, 1, 9_999, 10_000, u64::MAX] {
            let b = auto_base(s);
            assert!((AUTO_LOW..AUTO_LOW + AUTO_SPAN).contains(&b));
        }
    }
}
