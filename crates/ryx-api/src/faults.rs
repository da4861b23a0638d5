//! `/v1/admin/faults` (nodes run with `--enable-fault-injection`): network
//! faults a node applies to its own traffic, healing by themselves.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `POST /v1/admin/faults`: replaces the faults in force. Unknown fields
/// are refused. On the wire the impairment's fields sit beside `block`:
/// `{"block":[...],"loss":0.1,"delay_ms":20,"jitter_ms":5,"for_ms":3000}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// UDP addresses whose datagrams are dropped both ways.
    #[serde(default)]
    pub block: Vec<SocketAddr>,
    /// Loss and delay of outgoing datagrams.
    #[serde(flatten)]
    pub impairment: Impairment,
    /// The faults heal by themselves after this long, ms (1–3,600,000).
    pub for_ms: u64,
}

/// Loss and delay a node adds to its outgoing datagrams; every field left
/// out is none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Impairment {
    /// Probability 0–1 of dropping each outgoing datagram.
    pub loss: f64,
    /// Added to each outgoing datagram, ms (≤ 10,000).
    pub delay_ms: u64,
    /// Uniform jitter on top of the delay, ms (≤ 10,000).
    pub jitter_ms: u64,
}

/// What every `/v1/admin/faults` call answers: the faults in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultState {
    /// Faults are in force.
    pub active: bool,
    /// UDP addresses blocked both ways.
    pub block: Vec<SocketAddr>,
    /// Added delay, ms.
    pub delay_ms: u64,
    /// Datagrams delayed by faults so far.
    pub delayed: u64,
    /// Datagrams dropped by faults so far.
    pub dropped: u64,
    /// Added jitter, ms.
    pub jitter_ms: u64,
    /// Probability of dropping an outgoing datagram.
    pub loss: f64,
    /// Until the faults heal by themselves, ms (none when healed).
    pub remaining_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_exchange_parses_and_prints_the_same() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"block":["127.0.0.1:34001"],"loss":0.1,"delay_ms":20,"jitter_ms":5,"for_ms":3000}"#,
        )
        .expect("spec");
        assert_eq!(spec.block, vec!["127.0.0.1:34001".parse::<SocketAddr>().expect("addr")]);
        assert_eq!(spec.impairment, Impairment { loss: 0.1, delay_ms: 20, jitter_ms: 5 });
        assert_eq!(
            serde_json::to_string(&spec).expect("json"),
            r#"{"block":["127.0.0.1:34001"],"loss":0.1,"delay_ms":20,"jitter_ms":5,"for_ms":3000}"#
        );
        let whole: FaultSpec = serde_json::from_str(r#"{"loss":1,"for_ms":5}"#).expect("a whole number as loss");
        assert_eq!((whole.impairment.loss, whole.impairment.delay_ms), (1.0, 0));
        assert!(serde_json::from_str::<FaultSpec>(r#"{"for_ms":1,"lose":1}"#).is_err(), "unknown fields refused");
        assert!(serde_json::from_str::<FaultSpec>(r#"{"loss":0.5}"#).is_err(), "for_ms is required");
        let text = r#"{"active":true,"block":["127.0.0.1:34001"],"delay_ms":20,"delayed":0,"dropped":0,"jitter_ms":5,"loss":0.1,"remaining_ms":2999}"#;
        let state: FaultState = serde_json::from_str(text).expect("state");
        assert_eq!(serde_json::to_string(&state).expect("json"), text);
    }
}
