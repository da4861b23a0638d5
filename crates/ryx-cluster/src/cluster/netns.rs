//! `start --netns`: every node in a Linux network namespace of its own,
//! with its own address, as if on separate hosts joined by one switch.
//!
//! Layout (all names start with the cluster's prefix, `rxc` and six hex
//! digits of its id, so two clusters — or the `ryx-node` netns tests,
//! whose names start with `ryx` — never collide):
//!
//! ```text
//!  PREFIX-n0 … PREFIX-nK            node namespaces: eth0 = 10.78.0.(i+1)/24, no default route
//!      │ eth0 ⇄ vhI (veth)
//!  PREFIX-br                        the bridge namespace
//!      br0  ── every node's vhI (br1 holds one side during a partition)
//!      br0 ─ l0 ⇄ h0 ─┐
//!      br1 ─ l1 ⇄ h1 ─┤ brh          h0, h1 isolated from each other (no learning):
//!              vhost ─┘              the machine reaches both sides, the sides not each other
//!      │ vhost ⇄ PREFIXh (veth)
//!  the machine's namespace          PREFIXh = 10.78.0.254/24, its only address on the subnet
//! ```
//!
//! The machine's one address on the subnet makes every other command
//! (status, inject, chaos, the dashboard) reach the nodes unchanged. The
//! subnet's route is the directly connected veth, so no packet for it can
//! leave by another interface: checked with `ip route get` at start. The
//! nodes have no route beyond the subnet, so nothing they send can leave
//! either. A partition moves one side's links from `br0` to `br1`; loss and
//! delay are `tc netem` inside the node namespaces where the kernel has it,
//! else loss by `iptables -m statistic` there and delay by the nodes' own
//! fault injection. Everything is removed by `stop`, and by `start` itself
//! when it fails half-way.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

/// The subnet used when none is given (the `ryx-node` tests use 10.77).
pub const DEFAULT_SUBNET: &str = "10.78.0.0/24";
/// Node port (UDP and HTTP) inside each namespace when none is given.
pub const DEFAULT_PORT: u16 = 9001;
/// Longest any one `ip`, `tc` or `iptables` command may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(20);
/// The node-side end of each node's link.
const NODE_IF: &str = "eth0";

/// An IPv4 subnet: network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Network address (host bits zero).
    pub network: Ipv4Addr,
    /// Prefix length, 16–29.
    pub len: u8,
}

impl Subnet {
    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Subnet::mask(self.len))
    }

    /// The `k`-th address of the subnet (1 = first host).
    pub fn nth(&self, k: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + k)
    }

    /// The machine's address: the last usable one.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()) - 1)
    }

    /// Nodes that fit (every usable address but the machine's).
    pub fn capacity(&self) -> usize {
        ((1u64 << (32 - u32::from(self.len))) - 3) as usize
    }

    /// Node `index`'s address (index 0 is the first host).
    pub fn node_addr(&self, index: usize) -> Option<Ipv4Addr> {
        (index < self.capacity()).then(|| self.nth(index as u32 + 1))
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let len = self.len.min(other.len);
        let m = Subnet::mask(len);
        u32::from(self.network) & m == u32::from(other.network) & m
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl FromStr for Subnet {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Subnet> {
        let (a, l) = s.trim().split_once('/').with_context(|| format!("{s:?} is not a subnet like 10.78.0.0/24"))?;
        let addr: Ipv4Addr = a.parse().with_context(|| format!("{a:?} is not an IPv4 address"))?;
        let len: u8 = l.parse().with_context(|| format!("{l:?} is not a prefix length"))?;
        if !(16..=29).contains(&len) {
            bail!("subnet {s}: the prefix length must be 16–29");
        }
        let network = Ipv4Addr::from(u32::from(addr) & Subnet::mask(len));
        if network != addr {
            bail!("{s} is not a network address (did you mean {network}/{len}?)");
        }
        if !addr.is_private() {
            bail!("subnet {s} is not private (10/8, 172.16/12, 192.168/16): a cluster's addresses must never be real ones");
        }
        Ok(Subnet { network, len })
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// How nodes of a namespace cluster find each other.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// Hellos to the first nodes' addresses.
    SeedNodes,
    /// Hellos to the subnet's broadcast address, on the bridge.
    Broadcast,
}

/// Everything a namespace cluster created, recorded in the state file
/// before it is created, so `stop` can remove it even after a crash.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Layout {
    /// Start of every name (`rxc` + 6 hex digits of the cluster id).
    pub prefix: String,
    /// The cluster's subnet.
    pub subnet: Subnet,
    /// The bridge namespace.
    pub bridge_ns: String,
    /// The machine's end of its veth into the bridge namespace.
    pub host_link: String,
    /// The machine's address on the subnet.
    pub host_addr: Ipv4Addr,
    /// Node port (UDP and HTTP) in every namespace.
    pub port: u16,
    /// Broadcast discovery port (with `Discovery::Broadcast`).
    pub discovery_port: u16,
    /// Discovery mode.
    pub discovery: Discovery,
    /// Seed addresses (with `Discovery::SeedNodes`).
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
}

impl Layout {
    /// The layout of cluster `cluster_id` on `subnet`.
    pub fn new(cluster_id: &str, subnet: Subnet, port: u16, discovery: Discovery, nodes: usize) -> Layout {
        let id = cluster_id.rsplit('-').next().unwrap_or(cluster_id);
        let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
        let tail = &hex[hex.len().saturating_sub(6)..];
        let prefix = format!("rxc{tail:0>6}");
        let seeds =
            (0..nodes.clamp(1, 3)).filter_map(|i| subnet.node_addr(i)).map(|a| SocketAddr::from((a, port))).collect();
        Layout {
            bridge_ns: format!("{prefix}-br"),
            host_link: format!("{prefix}h"),
            host_addr: subnet.host_addr(),
            prefix,
            subnet,
            port,
            discovery_port: port.saturating_sub(1).max(1),
            discovery,
            seeds,
        }
    }

    /// Node `index`'s namespace.
    pub fn node_ns(&self, index: usize) -> String {
        format!("{}-n{index}", self.prefix)
    }

    /// Node `index`'s link in the bridge namespace.
    fn node_link(index: usize) -> String {
        format!("vh{index}")
    }

    /// Whether `name` is a namespace this layout creates.
    pub fn owns_ns(&self, name: &str) -> bool {
        name == self.bridge_ns
            || name
                .strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix("-n"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The node arguments for discovery and addresses (`--bind`, `--port`
    /// and the discovery flags).
    pub fn node_args(&self, addr: Ipv4Addr) -> Vec<String> {
        let mut a: Vec<String> = vec!["--bind".into(), addr.to_string(), "--port".into(), self.port.to_string()];
        match self.discovery {
            Discovery::SeedNodes => {
                let seeds: Vec<String> = self.seeds.iter().map(SocketAddr::to_string).collect();
                a.extend(["--discovery".into(), "seed-nodes".into(), "--seeds".into(), seeds.join(",")]);
            }
            Discovery::Broadcast => a.extend([
                "--discovery".into(),
                "broadcast".into(),
                "--broadcast-addr".into(),
                self.subnet.broadcast().to_string(),
                "--discovery-port".into(),
                self.discovery_port.to_string(),
            ]),
        }
        a
    }

    /// One line describing discovery.
    pub fn describe_discovery(&self) -> String {
        match self.discovery {
            Discovery::SeedNodes => {
                format!("seed nodes {}", self.seeds.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(", "))
            }
            Discovery::Broadcast => {
                format!("broadcast on {}:{} (the bridge only)", self.subnet.broadcast(), self.discovery_port)
            }
        }
    }
}

/// Why this process cannot build namespace clusters, if it cannot.
pub fn unable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces exist on Linux only".into());
    }
    if !is_root() {
        return Some(
            "it creates network namespaces, veth links and an address with `ip`, which needs root \
             (run it as root or with sudo, or leave out --netns for a loopback cluster)"
                .into(),
        );
    }
    if run("ip", &["-V"]).is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    None
}

/// Fails with the reason when namespace clusters cannot be built here.
pub fn require() -> Result<()> {
    match unable() {
        Some(why) => bail!("--netns: {why}"),
        None => Ok(()),
    }
}

/// Whether this process's effective uid is 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Runs `prog args` (at most [`CMD_TIMEOUT`]); its stdout, or an error
/// with its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    run_input(prog, args, None)
}

/// [`run`] with `input` on standard input.
fn run_input(prog: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let shown = format!("{prog} {}", args.join(" "));
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).with_context(|| format!("cannot feed `{shown}`"))?;
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(CMD_TIMEOUT) {
        Ok(r) => r.with_context(|| format!("`{shown}` failed"))?,
        Err(_) => {
            // Still our un-reaped child: its pid cannot have been reused.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            bail!("`{shown}` did not finish within {} s", CMD_TIMEOUT.as_secs());
        }
    };
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS…` split on spaces.
fn ip(line: &str) -> Result<String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    run("ip", &args)
}

/// Namespaces that exist now.
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = ip("netns list")?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect())
}

/// Whether the machine's namespace has a link named `name`.
fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

/// Every IPv4 prefix in the machine's routes and addresses that shares an
/// address with `subnet`, with the line it came from.
fn subnet_users(subnet: &Subnet) -> Result<Vec<String>> {
    let mut hits = Vec::new();
    let routes = ip("-4 route show table all")?;
    let addrs = ip("-4 -o addr show")?;
    for line in routes.lines() {
        // The destination is the first word, after an optional route type.
        let mut words = line.split_whitespace();
        let mut dest = words.next().unwrap_or_default();
        if ["unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat"]
            .contains(&dest)
        {
            dest = words.next().unwrap_or_default();
        }
        if parse_prefix(dest).is_some_and(|p| p.overlaps(subnet)) {
            hits.push(line.trim().to_string());
        }
    }
    for line in addrs.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(p) = words.next().and_then(parse_prefix) {
                    if p.overlaps(subnet) {
                        hits.push(line.trim().to_string());
                    }
                }
            }
        }
    }
    Ok(hits)
}

/// `a.b.c.d/len` or `a.b.c.d` (a /32), for overlap checks (any address).
fn parse_prefix(s: &str) -> Option<Subnet> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (s, 32),
    };
    let addr: Ipv4Addr = a.parse().ok()?;
    Some(Subnet { network: Ipv4Addr::from(u32::from(addr) & Subnet::mask(len)), len })
}

/// Checks that nothing of `layout` exists yet and that the machine does
/// not use its subnet; touches nothing.
pub fn preflight(layout: &Layout) -> Result<()> {
    let mine: Vec<String> = list_namespaces()?.into_iter().filter(|n| layout.owns_ns(n)).collect();
    if !mine.is_empty() {
        bail!("namespaces named like this cluster's already exist ({}); not touching them", mine.join(", "));
    }
    if link_exists(&layout.host_link) {
        bail!("a link named {} already exists; not touching it", layout.host_link);
    }
    let users = subnet_users(&layout.subnet)?;
    if !users.is_empty() {
        bail!(
            "subnet {} is already in use on this machine (another cluster, or a real network); pick another --subnet:\n  {}",
            layout.subnet,
            users.join("\n  ")
        );
    }
    Ok(())
}

/// Builds the bridge namespace, its bridges and the machine's veth with
/// its address, then checks the route to the subnet is that veth.
/// (Half-built on error: the caller tears down.)
pub fn create_base(layout: &Layout) -> Result<()> {
    let b = &layout.bridge_ns;
    ip(&format!("netns add {b}"))?;
    ip(&format!("-n {b} link set lo up"))?;
    for br in ["br0", "br1", "brh"] {
        ip(&format!("-n {b} link add {br} type bridge"))?;
        ip(&format!("-n {b} link set {br} up"))?;
    }
    // br0 and br1 meet only in brh, through ports isolated from each
    // other: each side reaches the machine (vhost), never the other side.
    // No learning on brh: after a heal a node is found on its new side at once.
    for (side, hub, br) in [("l0", "h0", "br0"), ("l1", "h1", "br1")] {
        ip(&format!("-n {b} link add {side} type veth peer name {hub}"))?;
        ip(&format!("-n {b} link set {side} master {br}"))?;
        ip(&format!("-n {b} link set {hub} master brh"))?;
        ip(&format!("-n {b} link set dev {hub} type bridge_slave isolated on learning off"))?;
        ip(&format!("-n {b} link set {side} up"))?;
        ip(&format!("-n {b} link set {hub} up"))?;
    }
    let h = &layout.host_link;
    ip(&format!("link add {h} type veth peer name vhost netns {b}"))?;
    ip(&format!("-n {b} link set vhost master brh"))?;
    ip(&format!("-n {b} link set dev vhost type bridge_slave learning off"))?;
    ip(&format!("-n {b} link set vhost up"))?;
    let s = &layout.subnet;
    ip(&format!("addr add {}/{} broadcast {} dev {h}", layout.host_addr, s.len, s.broadcast()))?;
    ip(&format!("link set {h} up"))?;
    check_route(layout)
}

/// `ip route get` of the first node address must name the machine's veth
/// (directly connected, no gateway): nothing for the subnet leaves by eth0.
pub fn check_route(layout: &Layout) -> Result<()> {
    let first = layout.subnet.nth(1);
    let out = run("ip", &["-4", "route", "get", &first.to_string()])?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let dev = words.windows(2).find(|w| w[0] == "dev").map(|w| w[1]);
    let via = words.contains(&"via");
    if dev != Some(layout.host_link.as_str()) || via {
        bail!(
            "refusing to run: `ip route get {first}` says {:?}, not the directly connected {}; \
             packets for {} could leave this machine",
            out.trim(),
            layout.host_link,
            layout.subnet
        );
    }
    Ok(())
}

/// The route check's answer, for printing.
pub fn route_line(layout: &Layout) -> String {
    let first = layout.subnet.nth(1).to_string();
    run("ip", &["-4", "route", "get", &first])
        .map(|o| o.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default()
}

/// Creates node `index`'s namespace and link; returns its namespace and
/// address. (A half-built namespace is left for the caller's teardown.)
pub fn create_node(layout: &Layout, index: usize) -> Result<(String, Ipv4Addr)> {
    let Some(addr) = layout.subnet.node_addr(index) else {
        bail!("subnet {} has room for {} nodes; node {index} does not fit", layout.subnet, layout.subnet.capacity());
    };
    let ns = layout.node_ns(index);
    let b = &layout.bridge_ns;
    let vh = Layout::node_link(index);
    ip(&format!("netns add {ns}"))?;
    ip(&format!("-n {b} link add {vh} type veth peer name {NODE_IF} netns {ns}"))?;
    ip(&format!("-n {b} link set {vh} master br0"))?;
    ip(&format!("-n {b} link set {vh} up"))?;
    let s = &layout.subnet;
    ip(&format!("-n {ns} addr add {addr}/{} broadcast {} dev {NODE_IF}", s.len, s.broadcast()))?;
    ip(&format!("-n {ns} link set {NODE_IF} up"))?;
    ip(&format!("-n {ns} link set lo up"))?;
    Ok((ns, addr))
}

/// What [`teardown`] removed.
#[derive(Debug, Default)]
pub struct Teardown {
    /// Namespaces deleted.
    pub namespaces: usize,
    /// Whether the machine's veth was deleted (or went with the bridge namespace).
    pub host_link: bool,
}

/// Removes the machine's veth and every namespace of `layout` (found by
/// name, so also ones a crashed `start` did not record). Idempotent; never
/// touches a name the layout does not own. The node processes must be
/// gone first (a namespace lives on while a process is in it).
pub fn teardown(layout: &Layout) -> Result<Teardown> {
    let mut t = Teardown::default();
    let mut problems = Vec::new();
    if link_exists(&layout.host_link) {
        match ip(&format!("link del {}", layout.host_link)) {
            Ok(_) => t.host_link = true,
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    let mut ours: Vec<String> = list_namespaces()?.into_iter().filter(|n| layout.owns_ns(n)).collect();
    // Node namespaces first, the bridge namespace last.
    ours.sort_by_key(|n| *n == layout.bridge_ns);
    for ns in &ours {
        match ip(&format!("netns del {ns}")) {
            Ok(_) => t.namespaces += 1,
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    let left: Vec<String> = list_namespaces()?.into_iter().filter(|n| layout.owns_ns(n)).collect();
    if link_exists(&layout.host_link) {
        problems.push(format!("link {} is still there", layout.host_link));
    } else if !t.host_link && !ours.is_empty() {
        t.host_link = ours.contains(&layout.bridge_ns);
    }
    if !left.is_empty() {
        problems.push(format!("namespaces still there: {}", left.join(", ")));
    }
    if !problems.is_empty() {
        bail!("could not remove everything of {}: {}", layout.prefix, problems.join("; "));
    }
    Ok(t)
}

/// Removes node `index`'s namespace (its link goes with it).
pub fn remove_node(layout: &Layout, index: usize) -> Result<()> {
    let ns = layout.node_ns(index);
    if list_namespaces()?.contains(&ns) {
        ip(&format!("netns del {ns}"))?;
    }
    Ok(())
}

/// Indices of the nodes whose link is on `br1` now.
fn on_far_bridge(layout: &Layout) -> Result<Vec<usize>> {
    let out = run("ip", &["-n", &layout.bridge_ns, "-o", "link", "show", "master", "br1"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|name| name.split('@').next()?.strip_prefix("vh")?.parse().ok())
        .collect())
}

/// Plugs each node's link into `br1` (`far`) or `br0`: a partition, or
/// its heal, without touching the nodes. Only links not already there are
/// moved (one `ip -batch` for all); returns the moved ones.
pub fn plug(layout: &Layout, nodes: &[(usize, bool)]) -> Result<Vec<(usize, bool)>> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let far_now = on_far_bridge(layout)?;
    let moves: Vec<(usize, bool)> = nodes.iter().copied().filter(|&(i, far)| far_now.contains(&i) != far).collect();
    if moves.is_empty() {
        return Ok(moves);
    }
    let script: String = moves
        .iter()
        .map(|&(i, far)| format!("link set {} master {}\n", Layout::node_link(i), if far { "br1" } else { "br0" }))
        .collect();
    run_input("ip", &["-n", &layout.bridge_ns, "-batch", "-"], Some(&script))?;
    Ok(moves)
}

/// How a node's link was impaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impairment {
    /// Nothing to do.
    None,
    /// `tc netem` on the node's eth0 (loss and delay, every packet).
    Netem,
    /// No `sch_netem`: loss by iptables `statistic` DROP of outgoing UDP in
    /// the namespace; delay (if any) is left to the caller (fault injection).
    Fallback,
}

/// Sets the node namespace `ns`'s egress impairment: `tc netem` first,
/// else iptables for the loss (the caller then delays by the node's
/// fault injection). Zero everything to clear.
pub fn impair(ns: &str, loss: f64, delay_ms: u64, jitter_ms: u64) -> Result<Impairment> {
    if loss <= 0.0 && delay_ms == 0 && jitter_ms == 0 {
        // Clear both kinds; neither may be there.
        let _ = run("tc", &["-n", ns, "qdisc", "del", "dev", NODE_IF, "root"]);
        let _ = iptables_loss(ns, 0.0);
        return Ok(Impairment::None);
    }
    // "delay D J" is D ± J; the harness's jitter is an extra 0..J.
    let half = jitter_ms * 500;
    let delay = format!("{}us", delay_ms * 1000 + half);
    let jitter = format!("{half}us");
    let loss_pct = format!("{:.4}%", loss * 100.0);
    let mut args = vec!["-n", ns, "qdisc", "replace", "dev", NODE_IF, "root", "netem", "delay", &delay];
    if half > 0 {
        args.push(&jitter);
    }
    args.extend(["loss", &loss_pct]);
    match run("tc", &args) {
        Ok(_) => {
            let _ = iptables_loss(ns, 0.0);
            Ok(Impairment::Netem)
        }
        Err(_) => {
            iptables_loss(ns, loss).with_context(|| format!("no tc netem here, and iptables failed in {ns}"))?;
            Ok(Impairment::Fallback)
        }
    }
}

/// Replaces the filter table of our own namespace `ns` with one rule
/// dropping `loss` of outgoing UDP on eth0 (none when 0).
fn iptables_loss(ns: &str, loss: f64) -> Result<()> {
    let mut rules = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    if loss > 0.0 {
        rules.push_str(&format!(
            "-A OUTPUT -o {NODE_IF} -p udp -m statistic --mode random --probability {:.4} -j DROP\n",
            loss.min(1.0)
        ));
    }
    rules.push_str("COMMIT\n");
    run_input("ip", &["netns", "exec", ns, "iptables-restore", "-w", "5"], Some(&rules)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_give_addresses() {
        let s: Subnet = "10.78.0.0/24".parse().expect("subnet");
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 78, 0, 255));
        assert_eq!(s.host_addr(), Ipv4Addr::new(10, 78, 0, 254));
        assert_eq!(s.node_addr(0), Some(Ipv4Addr::new(10, 78, 0, 1)));
        assert_eq!(s.capacity(), 253);
        assert_eq!(s.node_addr(252), Some(Ipv4Addr::new(10, 78, 0, 253)));
        assert_eq!(s.node_addr(253), None);
        assert!("10.78.0.5/24".parse::<Subnet>().is_err(), "host bits set");
        assert!("8.8.8.0/24".parse::<Subnet>().is_err(), "not private");
        assert!("10.78.0.0/8".parse::<Subnet>().is_err(), "too wide");
        assert!("10.78.0.0/30".parse::<Subnet>().is_err(), "too narrow");
        let wide: Subnet = "10.78.0.0/16".parse().expect("subnet");
        assert!(wide.overlaps(&s) && s.overlaps(&wide));
        assert!(!s.overlaps(&"10.77.0.0/24".parse().expect("subnet")));
        assert!(parse_prefix("10.78.0.254").is_some_and(|p| p.overlaps(&s)));
        assert!(parse_prefix("default").is_none());
        let back: Subnet = serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
    }

    #[test]
    fn layouts_name_only_their_own() {
        let s: Subnet = DEFAULT_SUBNET.parse().expect("subnet");
        let l = Layout::new("dev-00a1b2c3d4e5", s, 9001, Discovery::SeedNodes, 5);
        assert_eq!(l.prefix, "rxcc3d4e5");
        assert!(l.host_link.len() <= 15, "interface names are at most 15 bytes");
        assert!(l.owns_ns("rxcc3d4e5-br") && l.owns_ns("rxcc3d4e5-n0") && l.owns_ns("rxcc3d4e5-n12"));
        assert!(!l.owns_ns("rxcc3d4e5-n") && !l.owns_ns("rxcc3d4e5-nx") && !l.owns_ns("rxcc3d4e50-n1"));
        assert!(!l.owns_ns("ryx123s-br") && !l.owns_ns("rxcc3d4e5"));
        assert_eq!(l.seeds.len(), 3);
        assert_eq!(l.seeds[0].to_string(), "10.78.0.1:9001");
        let args = l.node_args(Ipv4Addr::new(10, 78, 0, 2)).join(" ");
        assert_eq!(
            args,
            "--bind 10.78.0.2 --port 9001 --discovery seed-nodes --seeds 10.78.0.1:9001,10.78.0.2:9001,10.78.0.3:9001"
        );
        let b = Layout::new("dev-1", s, 9001, Discovery::Broadcast, 2);
        assert_eq!(b.prefix, "rxc000001");
        assert!(b
            .node_args(Ipv4Addr::new(10, 78, 0, 1))
            .join(" ")
            .ends_with("--broadcast-addr 10.78.0.255 --discovery-port 9000"));
    }
}
