//! The seed resolver's parsers (the static binary resolves seeds without
//! libc): DNS responses from the network, `/etc/hosts` text, `host:port`
//! specs. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ryx_node::resolve;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 2 {
        let id = u16::from_be_bytes([data[0], data[1]]);
        for qtype in [1, 28] {
            let _ = resolve::parse_response(data, id, qtype);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = resolve::hosts_lookup(text, "node1");
        let _ = resolve::split_host_port(text);
        if let Ok(q) = resolve::encode_query(7, text, 1) {
            let _ = resolve::parse_response(&q, 7, 1);
        }
    }
});
