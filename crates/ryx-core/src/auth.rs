//! Datagram authentication: a keyed MAC over every datagram's bytes, with
//! replay protection and key rotation.
//!
//! When a cluster has a secret, every datagram is *sealed*: the JSON
//! envelope gets one more field, last, `"tag"`, whose value is
//!
//! ```text
//! r1.<key id>.<boot>.<counter>.<unix ms>.<mac>
//! ```
//!
//! - `key id`: 8 hex digits naming the key (so a receiver holding several
//!   keys during a rotation knows which one to check with);
//! - `boot`: 16 hex digits, random per process start of the sender;
//! - `counter`: the sender's datagram counter within that boot, starting at 1;
//! - `unix ms`: the sender's clock when it sealed the datagram;
//! - `mac`: the first 128 bits of BLAKE3 in keyed mode over every byte of the
//!   datagram before the MAC itself (the whole envelope and the tag fields).
//!
//! A receiver *opens* a datagram by checking, in order: the tag is present
//! and well formed; the key id is one it accepts; the MAC matches (constant
//! time); the timestamp is within [`Auth::max_skew`] of its own clock; and
//! the (boot, counter) pair was not seen before (a sliding window of
//! [`WINDOW`] counters per boot, in a table of at most [`MAX_SENDERS`]
//! boots). Then it strips the tag and hands the original envelope bytes to
//! the decoder. Each failure is counted under its own reason.
//!
//! Keys are derived from the secret text with BLAKE3's key derivation, so
//! any secret length works. A [`Keyring`] signs with its first key and
//! accepts all of them: rotate by adding the new key everywhere (accepted),
//! then making it first everywhere (signing), then removing the old one.
//!
//! What this protects and what it does not is written down in
//! `docs/security.md`.

use crate::time::Time;
use std::collections::HashMap;

/// Bytes a seal adds to a datagram, at most.
pub const MAX_OVERHEAD: usize = 128;
/// Counters remembered per sender boot for replay detection.
pub const WINDOW: u64 = 1024;
/// Sender boots remembered at most.
pub const MAX_SENDERS: usize = 4096;
/// Context string for key derivation (never change: it names the scheme).
const KDF_CONTEXT: &str = "ryx cluster datagram key v1";
/// MAC bytes carried (128 bits).
const MAC_LEN: usize = 16;
const TAG_OPEN: &[u8] = b",\"tag\":\"";
/// Length of the binary tag after a short datagram's fields
/// (`wire::short`): key id (4), boot (8), counter (8), wall ms (8), MAC.
pub const SHORT_TAG_LEN: usize = 4 + 8 + 8 + 8 + MAC_LEN;

/// One cluster key.
#[derive(Clone)]
pub struct Key {
    id: u32,
    key: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:08x})", self.id)
    }
}

impl Key {
    /// The key derived from a secret (surrounding whitespace ignored).
    pub fn from_secret(secret: &str) -> Option<Key> {
        let s = secret.trim();
        if s.is_empty() {
            return None;
        }
        let key = blake3::derive_key(KDF_CONTEXT, s.as_bytes());
        let h = blake3::hash(&key);
        let b = h.as_bytes();
        Some(Key { id: u32::from_be_bytes([b[0], b[1], b[2], b[3]]), key })
    }

    /// The key's public id (8 hex digits in tags and logs).
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// The keys a node signs and verifies with.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Parses secrets text: one secret per line, blank lines and lines
    /// starting with `#` ignored. The first secret signs; all verify.
    pub fn parse(text: &str) -> Keyring {
        let mut keys: Vec<Key> = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(k) = Key::from_secret(l) {
                if !keys.iter().any(|x| x.id == k.id) {
                    keys.push(k);
                }
            }
        }
        Keyring { keys }
    }

    /// Whether there is no key (authentication off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key ids, signing key first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }

    fn find(&self, id: u32) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Keys for another purpose, derived from these (signing key first,
    /// each with the id of the key it derives from): each purpose gets its
    /// own `context`, so no key is used twice.
    pub fn subkeys(&self, context: &str) -> Vec<(u32, [u8; 32])> {
        self.keys.iter().map(|k| (k.id, blake3::derive_key(context, &k.key))).collect()
    }
}

/// Why a datagram did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No tag although the cluster has a secret.
    Missing,
    /// A tag that does not parse.
    Malformed,
    /// Signed with a key this node does not hold.
    UnknownKey,
    /// The MAC does not match the bytes (forged or corrupted).
    BadMac,
    /// The timestamp is too far from this node's clock.
    Stale,
    /// Already received (or older than the replay window).
    Replay,
    /// Too many senders tracked at once.
    TableFull,
}

impl AuthError {
    /// Stable metric label.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::Malformed => "auth_malformed",
            AuthError::UnknownKey => "auth_unknown_key",
            AuthError::BadMac => "auth_bad_mac",
            AuthError::Stale => "auth_stale",
            AuthError::Replay => "auth_replay",
            AuthError::TableFull => "auth_table_full",
        }
    }

    /// Every reason, for pre-registering metrics.
    pub const REASONS: [&'static str; 7] = [
        "auth_missing",
        "auth_malformed",
        "auth_unknown_key",
        "auth_bad_mac",
        "auth_stale",
        "auth_replay",
        "auth_table_full",
    ];
}

/// A sliding window of the counters seen from one sender: accepts each
/// counter once, tolerating reordering within [`WINDOW`].
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// Highest counter seen.
    max: u64,
    /// Bit i set: counter `max - i` seen.
    bits: [u64; (WINDOW / 64) as usize],
    last_seen: Time,
}

impl Window {
    pub(crate) fn new(ctr: u64, now: Time) -> Window {
        let mut w = Window { max: ctr, bits: [0; (WINDOW / 64) as usize], last_seen: now };
        w.bits[0] = 1;
        w
    }

    fn get(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set(&mut self, i: u64) {
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// Shifts the window so that `max` grows by `by`.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; (WINDOW / 64) as usize];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let n = self.bits.len();
        for i in (0..n).rev() {
            let lo = if i >= words { self.bits[i - words] } else { 0 };
            let carry = if bits > 0 && i > words { self.bits[i - words - 1] >> (64 - bits) } else { 0 };
            self.bits[i] = if bits > 0 { lo << bits | carry } else { lo };
        }
    }

    /// When a counter from this sender was last accepted.
    pub(crate) fn last_seen(&self) -> Time {
        self.last_seen
    }

    /// Records `ctr`; false if it was seen or is too old.
    pub(crate) fn accept(&mut self, ctr: u64, now: Time) -> bool {
        if ctr > self.max {
            self.shift(ctr - self.max);
            self.max = ctr;
            self.set(0);
        } else {
            let back = self.max - ctr;
            if back >= WINDOW || self.get(back) {
                return false;
            }
            self.set(back);
        }
        self.last_seen = now;
        true
    }
}

/// A node's sealing and opening state.
#[derive(Clone, Debug)]
pub struct Auth {
    keys: Keyring,
    boot: u64,
    counter: u64,
    /// Largest accepted distance between a datagram's timestamp and the
    /// receiver's clock (both ways), in microseconds.
    pub max_skew: u64,
    seen: HashMap<u64, Window>,
}

/// Default accepted clock skew: 60 s.
pub const DEFAULT_MAX_SKEW_US: u64 = 60_000_000;

impl Auth {
    /// Authentication with `keys`; `boot` should be random per process.
    pub fn new(keys: Keyring, boot: u64) -> Auth {
        Auth { keys, boot, counter: 0, max_skew: DEFAULT_MAX_SKEW_US, seen: HashMap::new() }
    }

    /// Replaces the keys (rotation), keeping replay state.
    pub fn set_keys(&mut self, keys: Keyring) {
        self.keys = keys;
    }

    /// The keys.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Sender boots currently tracked.
    pub fn tracked_senders(&self) -> usize {
        self.seen.len()
    }

    /// Seals an encoded envelope in place: a `tag` field in a JSON object,
    /// a binary tag after a short datagram (`wire::short`). Does nothing
    /// to anything else, nor without a key.
    pub fn seal(&mut self, bytes: &mut Vec<u8>, now: Time) {
        let Some(key) = self.keys.keys.first() else { return };
        if bytes.first() == Some(&crate::wire::short::MAGIC) {
            // The short form: the same fields, binary, after its own.
            self.counter += 1;
            bytes.extend_from_slice(&key.id.to_le_bytes());
            bytes.extend_from_slice(&self.boot.to_le_bytes());
            bytes.extend_from_slice(&self.counter.to_le_bytes());
            bytes.extend_from_slice(&(now.0 / 1000).to_le_bytes());
            let mac = blake3::keyed_hash(&key.key, bytes);
            bytes.extend_from_slice(&mac.as_bytes()[..MAC_LEN]);
            return;
        }
        if bytes.last() != Some(&b'}') {
            return;
        }
        self.counter += 1;
        bytes.pop();
        bytes.extend_from_slice(TAG_OPEN);
        let fields = format!("r1.{:08x}.{:016x}.{}.{}.", key.id, self.boot, self.counter, now.0 / 1000);
        bytes.extend_from_slice(fields.as_bytes());
        let mac = blake3::keyed_hash(&key.key, bytes);
        push_hex(bytes, &mac.as_bytes()[..MAC_LEN]);
        bytes.extend_from_slice(b"\"}");
    }

    /// Checks a sealed datagram and returns the envelope bytes without the
    /// tag.
    pub fn open(&mut self, bytes: &[u8], now: Time) -> Result<Vec<u8>, AuthError> {
        if bytes.first() == Some(&crate::wire::short::MAGIC) {
            return self.open_short(bytes, now);
        }
        if !bytes.ends_with(b"\"}") {
            return Err(AuthError::Missing);
        }
        let start = rfind(bytes, TAG_OPEN).ok_or(AuthError::Missing)?;
        // `,"tag":"}` ends where its own opening begins: no room for a tag.
        let tag = bytes.get(start + TAG_OPEN.len()..bytes.len() - 2).ok_or(AuthError::Malformed)?;
        let tag = std::str::from_utf8(tag).map_err(|_| AuthError::Malformed)?;
        let mut parts = tag.split('.');
        let (Some("r1"), Some(kid), Some(boot), Some(ctr), Some(ts), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let kid = parse_hex_u64(kid, 8).ok_or(AuthError::Malformed)? as u32;
        let boot = parse_hex_u64(boot, 16).ok_or(AuthError::Malformed)?;
        let ctr: u64 = parse_dec(ctr).ok_or(AuthError::Malformed)?;
        let ts_ms: u64 = parse_dec(ts).ok_or(AuthError::Malformed)?;
        let mac = parse_hex_bytes::<MAC_LEN>(mac).ok_or(AuthError::Malformed)?;
        let key = self.keys.find(kid).ok_or(AuthError::UnknownKey)?;
        // The MAC is the tag's last field: everything before it is signed.
        let signed =
            bytes.len().checked_sub(2 + 2 * MAC_LEN).and_then(|n| bytes.get(..n)).ok_or(AuthError::Malformed)?;
        let want = blake3::keyed_hash(&key.key, signed);
        if !ct_eq(&want.as_bytes()[..MAC_LEN], &mac) {
            return Err(AuthError::BadMac);
        }
        self.check_fresh(boot, ctr, ts_ms, now)?;
        let mut out = Vec::with_capacity(start + 1);
        out.extend_from_slice(&bytes[..start]);
        out.push(b'}');
        Ok(out)
    }

    /// Opens a short datagram: its fields, then [`SHORT_TAG_LEN`] bytes of
    /// tag.
    fn open_short(&mut self, bytes: &[u8], now: Time) -> Result<Vec<u8>, AuthError> {
        if crate::wire::short::is_whole(bytes) {
            return Err(AuthError::Missing);
        }
        let body_len = bytes.len().checked_sub(SHORT_TAG_LEN).filter(|n| *n > 0).ok_or(AuthError::Missing)?;
        let (body, tag) = bytes.split_at(body_len);
        let u64_at = |i: usize| u64::from_le_bytes(tag[i..i + 8].try_into().unwrap_or_default());
        let kid = u32::from_le_bytes(tag[..4].try_into().unwrap_or_default());
        let (boot, ctr, ts_ms) = (u64_at(4), u64_at(12), u64_at(20));
        let key = self.keys.find(kid).ok_or(AuthError::UnknownKey)?;
        let (signed, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        let want = blake3::keyed_hash(&key.key, signed);
        if !ct_eq(&want.as_bytes()[..MAC_LEN], mac) {
            return Err(AuthError::BadMac);
        }
        self.check_fresh(boot, ctr, ts_ms, now)?;
        Ok(body.to_vec())
    }

    /// A tag's time within the skew bound, and its counter not seen before.
    fn check_fresh(&mut self, boot: u64, ctr: u64, ts_ms: u64, now: Time) -> Result<(), AuthError> {
        if ts_ms.saturating_mul(1000).abs_diff(now.0) > self.max_skew {
            return Err(AuthError::Stale);
        }
        self.check_replay(boot, ctr, now)
    }

    fn check_replay(&mut self, boot: u64, ctr: u64, now: Time) -> Result<(), AuthError> {
        if let Some(w) = self.seen.get_mut(&boot) {
            return if w.accept(ctr, now) { Ok(()) } else { Err(AuthError::Replay) };
        }
        if self.seen.len() >= MAX_SENDERS {
            // Forget boots silent for longer than the skew bound: anything
            // they sent before is now rejected as stale anyway.
            let horizon = now.0.saturating_sub(2 * self.max_skew);
            self.seen.retain(|_, w| w.last_seen.0 >= horizon);
            if self.seen.len() >= MAX_SENDERS {
                return Err(AuthError::TableFull);
            }
        }
        self.seen.insert(boot, Window::new(ctr, now));
        Ok(())
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for x in b {
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
}

fn parse_hex_u64(s: &str, len: usize) -> Option<u64> {
    if s.len() != len || !s.bytes().all(is_lower_hex) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    if !b.iter().copied().all(is_lower_hex) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Only the canonical (lower-case) spelling is accepted, so a tag has
/// exactly one valid form.
fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Time = Time(1_700_000_000_000_000);

    fn pair(secret: &str) -> (Auth, Auth) {
        (Auth::new(Keyring::parse(secret), 1), Auth::new(Keyring::parse(secret), 2))
    }

    fn env() -> Vec<u8> {
        br#"{"v":1,"cluster":"c","from":"00000000000000aa","seq":1,"msg":{"kind":"ping"}}"#.to_vec()
    }

    #[test]
    fn round_trip_restores_the_exact_bytes() {
        let (mut a, mut b) = pair("s3cret");
        let mut d = env();
        a.seal(&mut d, T0);
        assert!(d.len() <= env().len() + MAX_OVERHEAD);
        assert!(serde_json::from_slice::<serde_json::Value>(&d).is_ok(), "sealed datagram stays JSON");
        assert_eq!(b.open(&d, T0).unwrap(), env());
    }

    #[test]
    fn each_kind_of_bad_datagram_is_refused_with_its_reason() {
        let (mut a, mut b) = pair("s3cret");
        let mut d = env();
        a.seal(&mut d, T0);
        // Replay.
        assert!(b.open(&d, T0).is_ok());
        assert_eq!(b.open(&d, T0), Err(AuthError::Replay));
        // Missing tag.
        assert_eq!(b.open(&env(), T0), Err(AuthError::Missing));
        // Any flipped byte before the MAC breaks it.
        let mut d2 = env();
        a.seal(&mut d2, T0);
        let mut forged = d2.clone();
        forged[10] ^= 1;
        assert_eq!(b.open(&forged, T0), Err(AuthError::BadMac));
        // Another secret.
        let (mut other, _) = pair("other");
        let mut d3 = env();
        other.seal(&mut d3, T0);
        assert_eq!(b.open(&d3, T0), Err(AuthError::UnknownKey));
        // Stale or from the future.
        let mut d4 = env();
        a.seal(&mut d4, T0);
        assert_eq!(b.open(&d4, Time(T0.0 + DEFAULT_MAX_SKEW_US + 1_000_000)), Err(AuthError::Stale));
        assert_eq!(b.open(&d4, Time(T0.0 - DEFAULT_MAX_SKEW_US - 1_000_000)), Err(AuthError::Stale));
        // Mangled tag.
        let mut d5 = d2.clone();
        let n = d5.len();
        d5[n - 5] = b'x';
        assert_eq!(b.open(&d5, T0), Err(AuthError::Malformed));
        // The untouched one still opens.
        assert!(b.open(&d2, T0).is_ok());
    }

    #[test]
    fn a_short_datagram_is_sealed_with_a_binary_tag_and_refused_as_a_json_one_is() {
        let (mut a, mut b) = pair("s3cret");
        let short = || {
            let mut d = vec![crate::wire::short::MAGIC];
            d.extend_from_slice(&[2, 1, 9, 9, 9, 9]);
            d
        };
        let mut d = short();
        a.seal(&mut d, T0);
        assert_eq!(d.len(), short().len() + SHORT_TAG_LEN);
        assert_eq!(b.open(&d, T0).unwrap(), short());
        assert_eq!(b.open(&d, T0), Err(AuthError::Replay));
        // Every byte matters: the fields, the tag's counter, the MAC.
        for i in [1, 20, d.len() - 1] {
            let mut d2 = short();
            a.seal(&mut d2, T0);
            d2[i] ^= 1;
            assert_eq!(b.open(&d2, T0), Err(AuthError::BadMac), "byte {i}");
        }
        // Unsealed, truncated, another key, stale.
        assert_eq!(b.open(&short(), T0), Err(AuthError::Missing));
        assert_eq!(b.open(&d[..SHORT_TAG_LEN], T0), Err(AuthError::Missing));
        let (mut other, _) = pair("other");
        let mut d3 = short();
        other.seal(&mut d3, T0);
        assert_eq!(b.open(&d3, T0), Err(AuthError::UnknownKey));
        let mut d4 = short();
        a.seal(&mut d4, T0);
        assert_eq!(b.open(&d4, Time(T0.0 + DEFAULT_MAX_SKEW_US + 1_000_000)), Err(AuthError::Stale));
        assert!(b.open(&d4, T0).is_ok());
    }

    #[test]
    fn a_tag_opening_with_no_room_for_a_tag_is_refused_not_a_panic() {
        let mut b = Auth::new(Keyring::parse("k"), 0);
        // Nine bytes whose tag would start after its end: refused as
        // malformed, not a panic.
        assert_eq!(b.open(br#","tag":"}"#, T0), Err(AuthError::Malformed));
        assert_eq!(b.open(br#"{,"tag":"}"#, T0), Err(AuthError::Malformed));
        assert_eq!(b.open(br#"{"a":1,"tag":""}"#, T0), Err(AuthError::Malformed));
    }

    #[test]
    fn reordering_within_the_window_is_fine_older_is_refused() {
        let (mut a, mut b) = pair("k");
        let sealed: Vec<Vec<u8>> = (0..2000)
            .map(|_| {
                let mut d = env();
                a.seal(&mut d, T0);
                d
            })
            .collect();
        assert!(b.open(&sealed[1500], T0).is_ok());
        assert!(b.open(&sealed[1000], T0).is_ok(), "500 back is inside the window");
        assert!(b.open(&sealed[1499], T0).is_ok());
        assert_eq!(b.open(&sealed[400], T0), Err(AuthError::Replay), "beyond the window");
        assert_eq!(b.open(&sealed[1000], T0), Err(AuthError::Replay));
        assert!(b.open(&sealed[1999], T0).is_ok());
        assert!(b.open(&sealed[1501], T0).is_ok());
    }

    #[test]
    fn rotation_accepts_old_and_new() {
        let mut old = Auth::new(Keyring::parse("old"), 1);
        let mut new = Auth::new(Keyring::parse("new\nold"), 2);
        let mut both = Auth::new(Keyring::parse("old\n# comment\n\nnew"), 3);
        let mut d1 = env();
        old.seal(&mut d1, T0);
        let mut d2 = env();
        new.seal(&mut d2, T0);
        assert!(both.open(&d1, T0).is_ok());
        assert!(both.open(&d2, T0).is_ok());
        assert!(new.open(&d1, T0).is_ok());
        assert_eq!(old.open(&d2, T0), Err(AuthError::UnknownKey));
        assert_eq!(both.keys().ids().len(), 2);
    }

    #[test]
    fn sender_table_is_bounded() {
        let mut b = Auth::new(Keyring::parse("k"), 0);
        for boot in 0..(MAX_SENDERS as u64 + 10) {
            let mut s = Auth::new(Keyring::parse("k"), boot + 1);
            let mut d = env();
            s.seal(&mut d, T0);
            let r = b.open(&d, T0);
            if (boot as usize) < MAX_SENDERS {
                assert!(r.is_ok());
            } else {
                assert_eq!(r, Err(AuthError::TableFull));
            }
        }
        // Much later, silent boots are forgotten and new ones fit.
        let later = Time(T0.0 + 3 * DEFAULT_MAX_SKEW_US);
        let mut s = Auth::new(Keyring::parse("k"), 99_999);
        let mut d = env();
        s.seal(&mut d, later);
        assert!(b.open(&d, later).is_ok());
        assert_eq!(b.tracked_senders(), 1);
    }

    proptest! {
        #[test]
        fn random_bytes_never_open_or_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = Auth::new(Keyring::parse("k"), 0);
            prop_assert!(b.open(&bytes, T0).is_err());
        }

        #[test]
        fn tag_shaped_bytes_never_open_or_panic(
            head in proptest::collection::vec(any::<u8>(), 0..40),
            tail in "[r1.0-9a-f]{0,120}",
        ) {
            // Random bytes around a tag opening: the shapes the parser has
            // to cut apart (random bytes alone almost never contain one).
            let mut bytes = head;
            bytes.extend_from_slice(TAG_OPEN);
            bytes.extend_from_slice(tail.as_bytes());
            bytes.extend_from_slice(b"\"}");
            let mut b = Auth::new(Keyring::parse("k"), 0);
            prop_assert!(b.open(&bytes, T0).is_err());
        }

        #[test]
        fn any_single_byte_change_is_caught(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (mut a, mut b) = pair("k");
            let mut d = env();
            a.seal(&mut d, T0);
            let i = pos.index(d.len());
            d[i] ^= 1 << bit;
            prop_assert!(b.open(&d, T0).is_err());
        }
    }
}
