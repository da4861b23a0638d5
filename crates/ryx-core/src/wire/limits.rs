//! Every bound on what a datagram carries, in one place: the decoder
//! refuses what exceeds them ([`super::Message::check_bounds`]) and the
//! senders cap what they send by the same constants.

/// Largest datagram a node sends or accepts, in bytes.
pub const MAX_DATAGRAM: usize = 16 * 1024;
/// Longest info key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest serialized info value, in bytes.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Most peers in any list carried by one message.
pub const MAX_PEERS_PER_MESSAGE: usize = 64;
/// Most item ids or digests in one message.
pub const MAX_IDS_PER_MESSAGE: usize = 128;
/// Most times a `blob_want` question may be passed on.
pub const MAX_WANT_HOPS: u8 = 4;
