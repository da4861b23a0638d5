//! A small pure-Rust resolver for seed names: `/etc/hosts`, then DNS A and
//! AAAA queries over UDP to the nameservers of `/etc/resolv.conf` (with its
//! `search` domains and `ndots`), with timeouts and bounded sizes.
//!
//! Why: a statically linked glibc binary cannot use `getaddrinfo` for DNS in
//! a `FROM scratch` container (glibc loads its NSS modules as shared
//! libraries at run time), so Kubernetes headless-Service names and
//! docker-compose service names would not resolve. This module needs no
//! library. The system resolver is still tried last in dynamically linked
//! builds (mDNS, LDAP and other NSS sources); never in static ones, where
//! loading the host's NSS modules into a static binary is unsafe.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Most addresses one name yields (a large headless Service is sampled).
pub const MAX_ADDRS: usize = 64;
/// Largest DNS message read (plain UDP DNS without EDNS is at most 512).
const MAX_MESSAGE: usize = 512;
/// Largest hosts / resolv.conf file read.
const MAX_FILE: u64 = 1 << 20;
/// Longest name accepted (RFC 1035).
const MAX_NAME: usize = 253;

/// What `/etc/resolv.conf` says (the parts used here).
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvConf {
    /// Nameservers to ask, in order (port 53 unless a test says otherwise).
    pub nameservers: Vec<SocketAddr>,
    /// Search domains.
    pub search: Vec<String>,
    /// Names with fewer dots than this try the search domains first.
    pub ndots: usize,
    /// Wait per query.
    pub timeout: Duration,
    /// Rounds over all nameservers.
    pub attempts: usize,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Parses resolv.conf text; unknown lines are ignored.
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse::<IpAddr>().ok()) {
                        if c.nameservers.len() < 3 {
                            c.nameservers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    c.search = words.take(6).map(|w| w.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for o in words {
                        let (k, v) = o.split_once(':').unwrap_or((o, ""));
                        let n = v.parse::<u64>().ok();
                        match (k, n) {
                            ("ndots", Some(n)) => c.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => c.timeout = Duration::from_secs(n.clamp(1, 30)),
                            ("attempts", Some(n)) => c.attempts = n.clamp(1, 5) as usize,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        c
    }

    /// The names to try for `name`, in order (resolv.conf(5) semantics).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let searched = self.search.iter().filter(|d| !d.is_empty()).map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

/// Addresses `/etc/hosts`-format text gives `name` (case-insensitive).
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else { continue };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Splits `host:port` or `[v6]:port`.
pub fn split_host_port(spec: &str) -> io::Result<(&str, u16)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("{spec:?} is not host:port"));
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        spec.rsplit_once(':').ok_or_else(bad)?
    };
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.len() > MAX_NAME {
        return Err(bad());
    }
    Ok((host, port))
}

fn read_small(path: &str) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(MAX_FILE).read_to_string(&mut s);
    }
    s
}

/// Resolves `host:port` the way a seed list needs: an IP literal as is,
/// else `/etc/hosts`, else DNS (A and AAAA) through `/etc/resolv.conf`.
pub async fn lookup_host(spec: &str) -> io::Result<Vec<SocketAddr>> {
    let hosts = read_small("/etc/hosts");
    let conf = ResolvConf::parse(&read_small("/etc/resolv.conf"));
    match lookup_with(spec, &hosts, &conf).await {
        Ok(v) => Ok(v),
        Err(e) if cfg!(target_feature = "crt-static") => Err(e),
        Err(e) => match tokio::net::lookup_host(spec).await {
            Ok(it) => Ok(it.take(MAX_ADDRS).collect()),
            Err(_) => Err(e),
        },
    }
}

/// [`lookup_host`] with the hosts text and resolver configuration given.
pub async fn lookup_with(spec: &str, hosts: &str, conf: &ResolvConf) -> io::Result<Vec<SocketAddr>> {
    let (host, port) = split_host_port(spec)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is not a host name")));
    }
    let from_hosts = hosts_lookup(hosts, host);
    if !from_hosts.is_empty() {
        return Ok(from_hosts.into_iter().take(MAX_ADDRS).map(|ip| SocketAddr::new(ip, port)).collect());
    }
    if conf.nameservers.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{host}: not in hosts and no nameserver")));
    }
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no such name"));
    for name in conf.candidates(host) {
        match query_name(&name, conf).await {
            Ok(ips) if !ips.is_empty() => {
                return Ok(ips.into_iter().take(MAX_ADDRS).map(|ip| SocketAddr::new(ip, port)).collect())
            }
            Ok(_) => last = io::Error::new(io::ErrorKind::NotFound, format!("{name}: no A/AAAA records")),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A and AAAA records of one fully qualified name.
async fn query_name(name: &str, conf: &ResolvConf) -> io::Result<Vec<IpAddr>> {
    if name.len() > MAX_NAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long"));
    }
    let (a, aaaa) = tokio::join!(query(name, TYPE_A, conf), query(name, TYPE_AAAA, conf));
    let mut out = Vec::new();
    let mut err = None;
    for r in [a, aaaa] {
        match r {
            Ok(v) => out.extend(v),
            Err(e) => err = Some(e),
        }
    }
    match (out.is_empty(), err) {
        (true, Some(e)) => Err(e),
        _ => {
            out.dedup();
            Ok(out)
        }
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u16
}

/// One record type, asking each nameserver in turn, `attempts` rounds.
async fn query(name: &str, qtype: u16, conf: &ResolvConf) -> io::Result<Vec<IpAddr>> {
    let mut last = io::Error::new(io::ErrorKind::TimedOut, format!("{name}: no nameserver answered"));
    for _ in 0..conf.attempts.max(1) {
        for ns in &conf.nameservers {
            let id = random_id();
            let msg = encode_query(id, name, qtype)?;
            match ask(*ns, &msg, id, conf.timeout).await {
                Ok(resp) => match parse_response(&resp, id, qtype) {
                    Ok(Answer::Addrs(v)) => return Ok(v),
                    // The name does not exist: another server will agree.
                    Ok(Answer::NoName) => return Ok(Vec::new()),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

async fn ask(ns: SocketAddr, msg: &[u8], id: u16, timeout: Duration) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match ns {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(local).await?;
    sock.connect(ns).await?;
    sock.send(msg).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("nameserver {ns} timed out"))),
        };
        // Ignore stray datagrams (wrong id); keep waiting until the deadline.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// A DNS query for `name`/`qtype`, recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> io::Result<Vec<u8>> {
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?}: bad label")));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// What a response says.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Addresses of the asked type (possibly none: NODATA).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN.
    NoName,
}

fn malformed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed DNS response: {why}"))
}

/// Skips a (possibly compressed) name at `i`; returns the index after it.
fn skip_name(m: &[u8], mut i: usize) -> io::Result<usize> {
    for _ in 0..128 {
        let len = *m.get(i).ok_or_else(|| malformed("name past end"))? as usize;
        match len {
            0 => return Ok(i + 1),
            l if l & 0xC0 == 0xC0 => {
                m.get(i + 1).ok_or_else(|| malformed("pointer past end"))?;
                return Ok(i + 2);
            }
            l if l < 64 => i += 1 + l,
            _ => return Err(malformed("bad label length")),
        }
    }
    Err(malformed("name too long"))
}

fn u16_at(m: &[u8], i: usize) -> io::Result<u16> {
    Ok(u16::from_be_bytes([
        *m.get(i).ok_or_else(|| malformed("short"))?,
        *m.get(i + 1).ok_or_else(|| malformed("short"))?,
    ]))
}

/// Parses a response to the query with `id` and `qtype`. Never panics on
/// any input; at most [`MAX_ADDRS`] addresses.
pub fn parse_response(m: &[u8], id: u16, qtype: u16) -> io::Result<Answer> {
    if m.len() < 12 {
        return Err(malformed("shorter than a header"));
    }
    if u16_at(m, 0)? != id {
        return Err(malformed("wrong id"));
    }
    let flags = u16_at(m, 2)?;
    if flags & 0x8000 == 0 {
        return Err(malformed("not a response"));
    }
    match flags & 0x000F {
        0 => {}
        3 => return Ok(Answer::NoName),
        rc => return Err(io::Error::other(format!("DNS server error (rcode {rc})"))),
    }
    let qd = u16_at(m, 4)? as usize;
    let an = u16_at(m, 6)? as usize;
    let mut i = 12;
    for _ in 0..qd.min(4) {
        i = skip_name(m, i)? + 4;
    }
    let mut out = Vec::new();
    // A truncated (TC) answer still holds whole records up to its end.
    for _ in 0..an.min(256) {
        let Ok(j) = skip_name(m, i) else { break };
        let (Ok(rtype), Ok(class), Ok(rdlen)) = (u16_at(m, j), u16_at(m, j + 2), u16_at(m, j + 8)) else { break };
        let start = j + 10;
        let end = start + rdlen as usize;
        let Some(rdata) = m.get(start..end) else { break };
        if class == CLASS_IN && rtype == qtype && out.len() < MAX_ADDRS {
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => out.push(IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))),
                (TYPE_AAAA, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(rdata);
                    out.push(IpAddr::V6(Ipv6Addr::from(b)));
                }
                _ => {}
            }
        }
        i = end;
    }
    Ok(Answer::Addrs(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A fake DNS server on 127.0.0.1: answers `name` with `ips` (A and
    /// AAAA as they fit), NXDOMAIN for anything else. Counts queries.
    async fn fake_dns(name: &'static str, ips: Vec<IpAddr>, silent: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                c.fetch_add(1, Ordering::SeqCst);
                if silent {
                    continue;
                }
                let q = &buf[..n];
                let qend = skip_name(q, 12).expect("query name");
                let qtype = u16_at(q, qend).expect("qtype");
                let asked = decode_name(&q[12..qend]);
                let mut r = q[..qend + 4].to_vec();
                r[2] = 0x81;
                r[3] = 0x80;
                let hits: Vec<&IpAddr> = ips
                    .iter()
                    .filter(|ip| (qtype == TYPE_A && ip.is_ipv4()) || (qtype == TYPE_AAAA && ip.is_ipv6()))
                    .collect();
                if !asked.eq_ignore_ascii_case(name) {
                    r[3] = 0x83;
                } else {
                    r[7] = hits.len() as u8;
                    for ip in hits {
                        r.extend_from_slice(&[0xC0, 12]);
                        r.extend_from_slice(&qtype.to_be_bytes());
                        r.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
                        match ip {
                            IpAddr::V4(v) => {
                                r.extend_from_slice(&[0, 4]);
                                r.extend_from_slice(&v.octets());
                            }
                            IpAddr::V6(v) => {
                                r.extend_from_slice(&[0, 16]);
                                r.extend_from_slice(&v.octets());
                            }
                        }
                    }
                }
                // A stray answer with a wrong id first: must be ignored.
                let mut stray = r.clone();
                stray[0] ^= 0xFF;
                let _ = sock.send_to(&stray, from).await;
                let _ = sock.send_to(&r, from).await;
            }
        });
        (addr, count)
    }

    fn decode_name(b: &[u8]) -> String {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < b.len() && b[i] != 0 {
            let l = b[i] as usize;
            parts.push(String::from_utf8_lossy(&b[i + 1..i + 1 + l]).to_string());
            i += 1 + l;
        }
        parts.join(".")
    }

    fn conf(ns: SocketAddr, search: &[&str], ndots: usize) -> ResolvConf {
        ResolvConf {
            nameservers: vec![ns],
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots,
            timeout: Duration::from_millis(300),
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn resolves_a_and_aaaa_through_a_fake_server() {
        let ips: Vec<IpAddr> =
            vec!["10.0.0.1".parse().expect("ok"), "10.0.0.2".parse().expect("ok"), "fd00::7".parse().expect("ok")];
        let (ns, _) = fake_dns("ryx.default.svc.cluster.local", ips.clone(), false).await;
        // Short name + search domains + ndots:5, as in a Kubernetes pod.
        let c = conf(ns, &["default.svc.cluster.local", "svc.cluster.local"], 5);
        let mut got = lookup_with("ryx:9001", "", &c).await.expect("resolves");
        got.sort();
        let mut want: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 9001)).collect();
        want.sort();
        assert_eq!(got, want);
        // The fully qualified name (trailing dot) goes straight there.
        assert_eq!(lookup_with("ryx.default.svc.cluster.local.:1", "", &c).await.expect("fqdn").len(), 3);
    }

    #[tokio::test]
    async fn unknown_names_and_silent_servers_fail_cleanly() {
        let (ns, _) = fake_dns("known.test", vec!["10.1.1.1".parse().expect("ok")], false).await;
        let c = conf(ns, &[], 1);
        let e = lookup_with("unknown.test:1", "", &c).await.expect_err("NXDOMAIN");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let (silent, count) = fake_dns("x", vec![], true).await;
        let c = conf(silent, &[], 1);
        let t = std::time::Instant::now();
        let e = lookup_with("known.test:1", "", &c).await.expect_err("timeout");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "bounded by the timeout: {:?}", t.elapsed());
        assert!(count.load(Ordering::SeqCst) >= 2, "A and AAAA were asked");
    }

    #[tokio::test]
    async fn literals_and_hosts_file_need_no_server() {
        let c = ResolvConf::default();
        assert_eq!(
            lookup_with("10.77.0.3:9001", "", &c).await.expect("ok"),
            vec!["10.77.0.3:9001".parse().expect("ok")]
        );
        assert_eq!(
            lookup_with("[fd00::1]:9001", "", &c).await.expect("ok"),
            vec!["[fd00::1]:9001".parse().expect("ok")]
        );
        let hosts = "127.0.0.1 localhost\n10.9.0.5 node-a node-a.lan # comment\n# 10.9.0.6 node-a\n";
        assert_eq!(lookup_with("NODE-A:7", hosts, &c).await.expect("ok"), vec!["10.9.0.5:7".parse().expect("ok")]);
        assert!(lookup_with("nobody:7", hosts, &c).await.is_err());
        assert!(lookup_with("no-port", hosts, &c).await.is_err());
        assert!(lookup_with("bad name!:1", hosts, &c).await.is_err());
    }

    #[test]
    fn parses_resolv_conf() {
        let c = ResolvConf::parse(
            "# k8s\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:3\n",
        );
        assert_eq!(c.nameservers.len(), 2);
        assert_eq!(c.nameservers[0], "10.96.0.10:53".parse().expect("ok"));
        assert_eq!(c.ndots, 5);
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.attempts, 3);
        assert_eq!(c.candidates("ryx")[0], "ryx.ns.svc.cluster.local");
        assert_eq!(c.candidates("ryx").last().expect("ok"), "ryx");
        let c = ResolvConf { ndots: 1, ..c };
        assert_eq!(c.candidates("a.b")[0], "a.b");
    }

    #[test]
    fn hostile_responses_never_panic() {
        let q = encode_query(7, "a.example", TYPE_A).expect("ok");
        let mut seed: u64 = 1;
        for len in 0..300usize {
            let mut m = q.clone();
            m.resize(len.max(12), 0);
            for b in m.iter_mut().skip(2) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (seed >> 56) as u8;
            }
            m[0] = 0;
            m[1] = 7;
            if let Ok(Answer::Addrs(v)) = parse_response(&m, 7, TYPE_A) {
                assert!(v.len() <= MAX_ADDRS);
            }
        }
        assert!(parse_response(&[0; 5], 7, TYPE_A).is_err());
        assert!(encode_query(1, &format!("{}.x", "a".repeat(64)), TYPE_A).is_err());
    }
}
