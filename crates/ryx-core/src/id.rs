//! Node identifiers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A name that is text on the wire and in the API (a blob's hash, a job's
/// id) as a type of its own: it reads as `&str` (`Deref`, `Borrow`, so maps
/// keyed by it are searched by `&str`), is built `From` any text, and
/// serializes as the bare string. The doc comment goes before the call.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl<S: AsRef<str> + ?Sized> From<&S> for $name {
            fn from(s: &S) -> $name {
                $name(s.as_ref().to_owned())
            }
        }

        impl From<$name> for String {
            fn from(h: $name) -> String {
                h.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
    };
}
pub(crate) use text_id;

/// A node's identity: 64 bits derived from its public key
/// (`identity::Identity`), shown as 16 lowercase hex digits.
///
/// A node keeps its id across restarts only if it keeps its key
/// (`--identity-file`); otherwise a restarted process is a new member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The text was not 1 to 16 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a node id is 1 to 16 hexadecimal digits")]
pub struct BadNodeId;

impl FromStr for NodeId {
    type Err = BadNodeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 {
            return Err(BadNodeId);
        }
        u64::from_str_radix(s, 16).map(NodeId).map_err(|_| BadNodeId)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
