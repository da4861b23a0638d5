//! Splitting inputs into line-aligned units and iterating over lines.

use std::ops::Range;

/// Splits `data` into consecutive, non-empty ranges that cover it exactly.
///
/// Every range ends just after a `'\n'` or at the end of `data`. A range is at most
/// `target_size` bytes long unless a single line is longer, in which case that line
/// (through its `'\n'`) forms one range on its own. Cuts are placed after the last
/// `'\n'` that fits in the window, so the result only depends on `data` and
/// `target_size`. A `target_size` of 0 is treated as 1 (one line per range).
/// Empty `data` gives no ranges.
pub fn split_chunks(data: &[u8], target_size: usize) -> Vec<Range<usize>> {
    let target = target_size.max(1);
    let mut out = Vec::with_capacity(data.len() / target + 1);
    let mut start = 0usize;
    while start < data.len() {
        let rest = &data[start..];
        let end = if rest.len() <= target {
            data.len()
        } else {
            match memchr::memrchr(b'\n', &rest[..target]) {
                Some(i) => start + i + 1,
                None => match memchr::memchr(b'\n', &rest[target..]) {
                    Some(i) => start + target + i + 1,
                    None => data.len(),
                },
            }
        };
        out.push(start..end);
        start = end;
    }
    out
}

/// Cuts a stream of bytes into exactly the chunks [`split_chunks`] cuts the
/// whole into, holding at most one chunk and one line in memory: uploads
/// are cut as they arrive, never buffered whole.
#[derive(Debug)]
pub struct ChunkStream {
    target: usize,
    max_line: usize,
    buf: Vec<u8>,
}

/// A line longer than a [`ChunkStream`] may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line is longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl ChunkStream {
    /// Chunks of about `target_size` bytes; a line longer than `max_line`
    /// bytes is refused (it would have to be held whole).
    pub fn new(target_size: usize, max_line: usize) -> ChunkStream {
        ChunkStream { target: target_size.max(1), max_line, buf: Vec::new() }
    }

    /// Bytes received but not yet cut into a chunk.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes more bytes; returns the chunks they complete, in order.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        // The same decisions as `split_chunks`: a cut depends only on the
        // bytes up to the newline it falls after, so it can be made as soon
        // as that newline is here.
        while self.buf.len() - start > self.target {
            let rest = &self.buf[start..];
            let end = match memchr::memrchr(b'\n', &rest[..self.target]) {
                Some(i) => i + 1,
                None => match memchr::memchr(b'\n', &rest[self.target..]) {
                    Some(i) => self.target + i + 1,
                    None => {
                        if rest.len() > self.target.saturating_add(self.max_line) {
                            return Err(LineTooLong(self.max_line));
                        }
                        break;
                    }
                },
            };
            out.push(rest[..end].to_vec());
            start += end;
        }
        self.buf.drain(..start);
        Ok(out)
    }

    /// The last chunk (what is left; empty if nothing is).
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Iterates over the lines of `chunk` without their `'\n'` terminator.
///
/// Lines are what `grep` sees: a final segment without `'\n'` is a line when it is
/// non-empty; the empty remainder after a final `'\n'` is not.
pub(crate) fn lines(chunk: &[u8]) -> Lines<'_> {
    Lines { rest: chunk }
}

/// Iterator returned by [`lines`].
pub(crate) struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', self.rest) {
            Some(i) => {
                let line = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                Some(line)
            }
            None => {
                let line = self.rest;
                self.rest = &[];
                Some(line)
            }
        }
    }
}

/// Byte classes used by word splitting: the six ASCII whitespace bytes that
/// `LC_ALL=C wc -w` treats as separators.
pub(crate) const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Trims the [`is_space`] bytes from both ends of `s`.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_space(b)).map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &[u8], t: usize) {
        let r = split_chunks(data, t);
        let mut pos = 0;
        for c in &r {
            assert_eq!(c.start, pos);
            assert!(c.end > c.start);
            assert!(c.end == data.len() || data[c.end - 1] == b'\n');
            if c.len() > t.max(1) {
                // an over-long chunk is exactly one line
                let body = &data[c.start..c.end - usize::from(data[c.end - 1] == b'\n')];
                assert!(!body.contains(&b'\n'), "oversized chunk holds several lines");
            }
            pos = c.end;
        }
        assert_eq!(pos, data.len());
    }

    #[test]
    fn chunks_cover_and_align() {
        check(b"", 4);
        assert!(split_chunks(b"", 4).is_empty());
        check(b"abc", 1);
        check(b"a\nbb\nccc\n", 2);
        check(b"a\nbb\nccc\n", 0);
        check(b"aaaaaaaaaa\nb\n", 3);
        check(b"\n\n\n\n", 2);
        assert_eq!(split_chunks(b"ab\ncd\nef", 6), vec![0..6, 6..8]);
        assert_eq!(split_chunks(b"abcdef\ng", 2), vec![0..7, 7..8]);
    }

    fn streamed(data: &[u8], target: usize, pieces: &[usize]) -> Vec<Vec<u8>> {
        let mut cs = ChunkStream::new(target, usize::MAX / 2);
        let mut out = Vec::new();
        let mut pos: usize = 0;
        for &p in pieces.iter().chain(std::iter::once(&usize::MAX)) {
            let end = pos.saturating_add(p).min(data.len());
            out.extend(cs.push(&data[pos..end]).expect("no line limit"));
            pos = end;
            if pos == data.len() {
                break;
            }
        }
        let last = cs.finish();
        if !last.is_empty() {
            out.push(last);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn streaming_cuts_exactly_like_the_whole(
            data in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(b'\n'), 0u8..=255u8], 0..400),
            target in 0usize..40,
            pieces in proptest::collection::vec(1usize..50, 0..20),
        ) {
            let whole: Vec<Vec<u8>> = split_chunks(&data, target).into_iter().map(|r| data[r].to_vec()).collect();
            proptest::prop_assert_eq!(streamed(&data, target, &pieces), whole);
        }
    }

    #[test]
    fn a_stream_refuses_a_line_it_cannot_hold() {
        let mut cs = ChunkStream::new(4, 8);
        assert!(cs.push(b"abc\nabcdefgh").is_ok());
        assert_eq!(cs.push(b"ijklmnop"), Err(LineTooLong(8)));
    }

    #[test]
    fn lines_like_grep() {
        let v: Vec<&[u8]> = lines(b"a\n\nb").collect();
        assert_eq!(v, vec![&b"a"[..], b"", b"b"]);
        let v: Vec<&[u8]> = lines(b"a\n").collect();
        assert_eq!(v, vec![&b"a"[..]]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").count(), 1);
    }

    #[test]
    fn trim_works() {
        assert_eq!(trim(b"  a b\r\x0b"), b"a b");
        assert_eq!(trim(b" \r\n"), b"");
        assert_eq!(trim(b""), b"");
    }
}
