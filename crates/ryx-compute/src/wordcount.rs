//! `word-count`: count whitespace-separated words exactly like `LC_ALL=C wc -w`.
//!
//! A *word* is a maximal run of bytes that are not ASCII whitespace (space, `\t`,
//! `\n`, `\v`, `\f`, `\r`) **and that contains at least one printable ASCII byte**
//! (`0x21..=0x7e`). The second condition is what GNU `wc` does in the C locale: bytes
//! that are neither whitespace nor printable (control bytes, bytes >= 0x80) neither
//! start nor end a word, so a run made only of them is not counted (`printf '\x01' |
//! LC_ALL=C wc -w` prints 0) while `a\x01b` is one word. Words are counted and compared
//! as raw bytes; only their display in `top` is lossy UTF-8.

use crate::bytes::{lossy, ByteRef, ByteStr};
use crate::error::ComputeError;
use crate::JobKind;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

/// Typed parameters of a `word-count` job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordCountParams {
    top: usize,
}

impl WordCountParams {
    /// Number of most frequent words reported in `top` (default 20).
    pub fn top(&self) -> usize {
        self.top
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::WordCount;
        let obj = crate::params_object(kind, v, &["top"])?;
        let top = crate::opt_usize(kind, &obj, "top", 0, 1_000_000)?.unwrap_or(20);
        Ok(WordCountParams { top })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "top": self.top })
    }
}

const SPACE: u8 = 0;
const PRINT: u8 = 1;
const OTHER: u8 = 2;

const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if crate::chunk::is_space(b) {
            t[i] = SPACE;
        } else if b >= 0x21 && b <= 0x7e {
            t[i] = PRINT;
        }
        i += 1;
    }
    t
};

/// True when `w` is a word by the definition in the module docs.
pub(crate) fn is_word(w: &[u8]) -> bool {
    !w.is_empty()
        && w.iter().all(|&b| CLASS[usize::from(b)] != SPACE)
        && w.iter().any(|&b| CLASS[usize::from(b)] == PRINT)
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Fast non-cryptographic hash of a word (folded 64x64->128 multiply per 8 bytes).
#[inline]
pub(crate) fn hash_word(w: &[u8]) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let mut h = (w.len() as u64) ^ K1;
    let mut it = w.chunks_exact(8);
    for c in &mut it {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = fold_mul(h ^ v, K2);
    }
    let r = it.remainder();
    if !r.is_empty() {
        let mut buf = [0u8; 8];
        buf[..r.len()].copy_from_slice(r);
        h = fold_mul(h ^ u64::from_le_bytes(buf), K2);
    }
    fold_mul(h, K1)
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    hash: u64,
    off: usize,
    len: usize,
    count: u64,
}

/// Open-addressing hash table of words → counts, words stored in one arena.
#[derive(Clone, Debug)]
pub(crate) struct WordTable {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// `index + 1` into `entries`, 0 = empty slot. Length is a power of two
    /// (or 0: not indexed yet).
    slots: Vec<u32>,
    total: u64,
}

impl Default for WordTable {
    fn default() -> Self {
        WordTable::with_capacity(0)
    }
}

impl WordTable {
    fn with_capacity(n: usize) -> Self {
        let cap = (n.max(8) * 2).next_power_of_two();
        WordTable { arena: Vec::new(), entries: Vec::with_capacity(n), slots: vec![0; cap], total: 0 }
    }

    /// Number of distinct words.
    pub(crate) fn distinct(&self) -> usize {
        self.entries.len()
    }

    /// Total number of words.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    fn word(&self, e: &Entry) -> &[u8] {
        &self.arena[e.off..e.off + e.len]
    }

    /// A table of words known to be distinct, without its index: the index
    /// is built by the first [`WordTable::add`], so a decoded partial that
    /// is only absorbed into a larger table is never indexed at all.
    fn unindexed(n: usize) -> Self {
        WordTable { arena: Vec::new(), entries: Vec::with_capacity(n), slots: Vec::new(), total: 0 }
    }

    /// Appends a word known not to be in the table yet (unindexed tables only).
    fn push_distinct(&mut self, w: &[u8], count: u64) -> Result<(), ComputeError> {
        debug_assert!(self.slots.is_empty());
        self.total = self.total.checked_add(count).ok_or(ComputeError::Overflow("word total"))?;
        if self.entries.len() >= (u32::MAX as usize) - 1 {
            return Err(ComputeError::Overflow("too many distinct words"));
        }
        let off = self.arena.len();
        self.arena.extend_from_slice(w);
        self.entries.push(Entry { hash: hash_word(w), off, len: w.len(), count });
        Ok(())
    }

    /// Builds the index of an unindexed table.
    fn index(&mut self) {
        self.rebuild((self.entries.len().max(8) * 2).next_power_of_two());
    }

    fn grow(&mut self) {
        self.rebuild(self.slots.len() * 2);
    }

    /// Rebuilds the index with `cap` slots (a power of two).
    fn rebuild(&mut self, cap: usize) {
        let mask = cap - 1;
        let mut slots = vec![0u32; cap];
        for (i, e) in self.entries.iter().enumerate() {
            let mut s = (e.hash as usize) & mask;
            while slots[s] != 0 {
                s = (s + 1) & mask;
            }
            slots[s] = (i + 1) as u32;
        }
        self.slots = slots;
    }

    /// Adds `count` occurrences of `w` whose hash is `h`. Returns false when `w` was new.
    #[inline]
    fn add(&mut self, w: &[u8], h: u64, count: u64) -> Result<bool, ComputeError> {
        if self.slots.is_empty() {
            self.index();
        }
        self.total = self.total.checked_add(count).ok_or(ComputeError::Overflow("word total"))?;
        let mask = self.slots.len() - 1;
        let mut s = (h as usize) & mask;
        loop {
            let idx = self.slots[s];
            if idx == 0 {
                break;
            }
            let e = &self.entries[(idx - 1) as usize];
            if e.hash == h && e.len == w.len() && &self.arena[e.off..e.off + e.len] == w {
                let e = &mut self.entries[(idx - 1) as usize];
                e.count = e.count.checked_add(count).ok_or(ComputeError::Overflow("word count"))?;
                return Ok(true);
            }
            s = (s + 1) & mask;
        }
        if self.entries.len() >= (u32::MAX as usize) - 1 {
            return Err(ComputeError::Overflow("too many distinct words"));
        }
        let off = self.arena.len();
        self.arena.extend_from_slice(w);
        self.entries.push(Entry { hash: h, off, len: w.len(), count });
        self.slots[s] = self.entries.len() as u32;
        if self.entries.len() * 2 > self.slots.len() {
            self.grow();
        }
        Ok(false)
    }

    /// Counts every word of `chunk` into the table.
    pub(crate) fn count_chunk(&mut self, chunk: &[u8]) -> Result<(), ComputeError> {
        let n = chunk.len();
        let mut i = 0usize;
        while i < n {
            // Skip separators and the non-printable bytes that cannot start a word
            // on their own; remember where the current run of non-space bytes began.
            let mut start = i;
            let mut printable = false;
            while i < n {
                let c = CLASS[usize::from(chunk[i])];
                if c == PRINT {
                    printable = true;
                    break;
                }
                i += 1;
                if c == SPACE {
                    start = i;
                }
            }
            if !printable {
                break;
            }
            // Extend to the end of the run.
            i += 1;
            while i < n && CLASS[usize::from(chunk[i])] != SPACE {
                i += 1;
            }
            let w = &chunk[start..i];
            self.add(w, hash_word(w), 1)?;
        }
        Ok(())
    }

    /// Adds every entry of `other` into `self`.
    pub(crate) fn absorb(&mut self, other: &WordTable) -> Result<(), ComputeError> {
        for e in &other.entries {
            self.add(other.word(e), e.hash, e.count)?;
        }
        Ok(())
    }

    /// Entry indices sorted by word bytes.
    fn sorted(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.entries.len()).collect();
        idx.sort_unstable_by(|&a, &b| self.word(&self.entries[a]).cmp(self.word(&self.entries[b])));
        idx
    }

    /// The `k` most frequent words, by count descending then bytes ascending.
    fn top(&self, k: usize) -> Vec<(&[u8], u64)> {
        let mut v: Vec<(&[u8], u64)> = self.entries.iter().map(|e| (self.word(e), e.count)).collect();
        let order = |a: &(&[u8], u64), b: &(&[u8], u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        if k == 0 {
            return Vec::new();
        }
        if v.len() > k {
            v.select_nth_unstable_by(k - 1, order);
            v.truncate(k);
        }
        v.sort_unstable_by(order);
        v
    }
}

/// Partial state of `word-count`: a table of word counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct WcPartial {
    pub(crate) table: WordTable,
}

impl Serialize for WcPartial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Words<'a>(&'a WordTable);
        impl Serialize for Words<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let t = self.0;
                let mut seq = s.serialize_seq(Some(t.entries.len()))?;
                for i in t.sorted() {
                    let e = &t.entries[i];
                    seq.serialize_element(&(ByteRef(t.word(e)), e.count))?;
                }
                seq.end()
            }
        }
        #[derive(Serialize)]
        struct Repr<'a> {
            words: Words<'a>,
        }
        Repr { words: Words(&self.table) }.serialize(s)
    }
}

/// Wire form of [`WcPartial`], validated by [`WcPartial::from_wire`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WcWire {
    words: Vec<(ByteStr, u64)>,
}

impl WcPartial {
    pub(crate) fn from_wire(w: WcWire) -> Result<Self, ComputeError> {
        // Strictly sorted, so distinct: no index needed unless the table is
        // added to later (a partial usually is only absorbed into another).
        let mut table = WordTable::unindexed(w.words.len());
        let mut prev: Option<&[u8]> = None;
        for (word, count) in &w.words {
            if !is_word(&word.0) {
                return Err(ComputeError::bad(format!("word-count: {:?} is not a word", lossy(&word.0))));
            }
            if count == &0 {
                return Err(ComputeError::bad("word-count: zero count"));
            }
            if let Some(p) = prev {
                if p >= word.0.as_slice() {
                    return Err(ComputeError::bad("word-count: words not strictly sorted"));
                }
            }
            prev = Some(&word.0);
            table.push_distinct(&word.0, *count)?;
        }
        Ok(WcPartial { table })
    }
}

pub(crate) fn map(chunk: &[u8]) -> Result<WcPartial, ComputeError> {
    // A 4 MiB chunk of logs holds tens of thousands of distinct words; start big
    // enough to avoid most regrowth.
    let mut table = WordTable::with_capacity((chunk.len() / 64).clamp(8, 1 << 16));
    table.count_chunk(chunk)?;
    Ok(WcPartial { table })
}

pub(crate) fn merge(mut a: WcPartial, mut b: WcPartial) -> Result<WcPartial, ComputeError> {
    // Counting is commutative: absorb the smaller table into the larger one.
    if a.table.distinct() < b.table.distinct() {
        std::mem::swap(&mut a, &mut b);
    }
    a.table.absorb(&b.table)?;
    Ok(a)
}

pub(crate) fn finish(p: &WordCountParams, part: &WcPartial) -> Value {
    let top: Vec<Value> = part.table.top(p.top).into_iter().map(|(w, c)| json!([lossy(w), c])).collect();
    json!({
        "total_words": part.table.total(),
        "distinct_words": part.table.distinct(),
        "top": top,
    })
}

/// Number of words in `data` (the `total_words` of a word-count over it).
pub fn count_words(data: &[u8]) -> u64 {
    let mut n = 0u64;
    let mut in_run = false;
    let mut printable = false;
    for &b in data {
        match CLASS[usize::from(b)] {
            SPACE => {
                if in_run && printable {
                    n += 1;
                }
                in_run = false;
                printable = false;
            }
            PRINT => {
                in_run = true;
                printable = true;
            }
            _ => in_run = true,
        }
    }
    if in_run && printable {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(data: &[u8]) -> Vec<(Vec<u8>, u64)> {
        let p = map(data).expect("map");
        p.table
            .sorted()
            .into_iter()
            .map(|i| {
                let e = &p.table.entries[i];
                (p.table.word(e).to_vec(), e.count)
            })
            .collect()
    }

    #[test]
    fn counts_like_wc() {
        assert_eq!(count_words(b"\x01"), 0);
        assert_eq!(count_words(b"a\x01b \x80\xff c\x1c d\xa0e"), 3);
        assert_eq!(count_words(b"a\x01 b"), 2);
        assert_eq!(count_words(b"\x01 a \x01"), 1);
        assert_eq!(count_words(b"\x00 \x00"), 0);
        for data in [&b"a\x01b \x80\xff c\x1c d\xa0e"[..], b"  x  y\tz\n\x0bq\x0c\rw ", b""] {
            let p = map(data).expect("map");
            assert_eq!(p.table.total(), count_words(data));
        }
    }

    #[test]
    fn words_are_whole_runs() {
        assert_eq!(
            words(b"\x01a \x80 b\x80 a\x01 \x01a"),
            vec![(b"\x01a".to_vec(), 2), (b"a\x01".to_vec(), 1), (b"b\x80".to_vec(), 1)]
        );
    }

    #[test]
    fn table_grows() {
        let mut data = Vec::new();
        for i in 0..50_000u32 {
            data.extend_from_slice(format!("w{} w{} ", i, i % 7).as_bytes());
        }
        let p = map(&data).expect("map");
        assert_eq!(p.table.total(), 100_000);
        assert_eq!(p.table.distinct(), 50_000);
        let top = p.table.top(3);
        assert_eq!(top[0], (&b"w0"[..], 7144));
    }

    /// A decoded partial is indexed only when added to: absorbing into it
    /// and absorbing it give the same counts as counting it all at once.
    #[test]
    fn decoded_partials_merge_either_way() {
        let a = b"x y z x w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12";
        let b = b"x q x y";
        let decode = |p: &WcPartial| {
            let wire: WcWire = serde_json::from_slice(&serde_json::to_vec(p).expect("encode")).expect("wire");
            WcPartial::from_wire(wire).expect("decode")
        };
        let (pa, pb) = (map(a).expect("map"), map(b).expect("map"));
        let whole = words(&[&a[..], b" ", &b[..]].concat());
        for m in [
            merge(decode(&pa), decode(&pb)).expect("merge"),
            merge(decode(&pb), decode(&pa)).expect("merge"),
            merge(decode(&pa), pb.clone()).expect("merge"),
            merge(pa.clone(), decode(&pb)).expect("merge"),
        ] {
            let mut got: Vec<(Vec<u8>, u64)> =
                m.table.entries.iter().map(|e| (m.table.word(e).to_vec(), e.count)).collect();
            got.sort();
            assert_eq!(got, whole);
            assert_eq!(m.table.total(), 20);
        }
        // Adding to a decoded table finds the words it holds.
        let mut t = decode(&pa).table;
        assert!(t.add(b"x", hash_word(b"x"), 1).expect("add"), "x is there");
        assert!(!t.add(b"new", hash_word(b"new"), 1).expect("add"));
        assert_eq!(t.distinct(), 16);
    }
}
