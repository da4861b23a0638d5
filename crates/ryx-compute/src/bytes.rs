//! Lossless JSON representation of arbitrary byte strings.
//!
//! A byte string that is valid UTF-8 is written as a JSON string; any other byte
//! string is written as `{"hex":"<lowercase hex>"}`. Decoding accepts both forms for
//! any bytes, encoding always picks the canonical one, so bytes round-trip exactly.

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Owned byte string with the canonical JSON encoding described in the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ByteStr(pub Vec<u8>);

/// Borrowed byte string, serialized like [`ByteStr`].
pub(crate) struct ByteRef<'a>(pub &'a [u8]);

impl Serialize for ByteRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &to_hex(self.0))?;
                m.end()
            }
        }
    }
}

impl Serialize for ByteStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ByteRef(&self.0).serialize(s)
    }
}

struct ByteVisitor;

impl<'de> Visitor<'de> for ByteVisitor {
    type Value = ByteStr;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an object {\"hex\": \"...\"}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteStr, E> {
        Ok(ByteStr(v.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<ByteStr, E> {
        Ok(ByteStr(v.into_bytes()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByteStr, A::Error> {
        let mut hex: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "hex" || hex.is_some() {
                return Err(de::Error::custom(format!("unexpected key {key:?} in byte string")));
            }
            hex = Some(map.next_value()?);
        }
        let hex = hex.ok_or_else(|| de::Error::custom("byte string object without \"hex\""))?;
        from_hex(&hex).map(ByteStr).ok_or_else(|| de::Error::custom("invalid hex in byte string"))
    }
}

impl<'de> Deserialize<'de> for ByteStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteStr, D::Error> {
        d.deserialize_any(ByteVisitor)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks_exact(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

/// Display form of bytes: UTF-8 with invalid sequences replaced by U+FFFD.
pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for b in [&b""[..], b"abc", b"\xff\x00a", "é\"\\\n".as_bytes()] {
            let v = ByteStr(b.to_vec());
            let j = serde_json::to_vec(&v).expect("serialize");
            let back: ByteStr = serde_json::from_slice(&j).expect("deserialize");
            assert_eq!(back, v);
        }
        let j = serde_json::to_string(&ByteStr(b"\xff".to_vec())).expect("serialize");
        assert_eq!(j, r#"{"hex":"ff"}"#);
        assert!(serde_json::from_str::<ByteStr>(r#"{"hex":"f"}"#).is_err());
        assert!(serde_json::from_str::<ByteStr>(r#"{"hox":"ff"}"#).is_err());
        assert!(serde_json::from_str::<ByteStr>("12").is_err());
    }
}
