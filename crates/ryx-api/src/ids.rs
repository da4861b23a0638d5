//! The names the API uses: node ids, blob names and job ids, as types of
//! their own rather than bare strings. On the wire each is the plain string.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_owned())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<$name, Self::Err> {
                Ok($name(s.to_owned()))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id! {
    /// A node's id: 16 lowercase hex digits derived from its public key.
    NodeId
}

string_id! {
    /// A blob's name: 64 lowercase hex digits, the BLAKE3 hash of its bytes.
    BlobHash
}

string_id! {
    /// A job's id: 32 hex digits, the first 16 being the id of the node
    /// that created it.
    JobId
}

impl JobId {
    /// The node that created the job (the first 16 digits), if the id is
    /// long enough to name one.
    pub fn creator(&self) -> Option<NodeId> {
        self.0.get(..16).map(NodeId::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let id: NodeId = serde_json::from_str("\"bc21727c6dc0aad6\"").expect("id");
        assert_eq!(id, "bc21727c6dc0aad6");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"bc21727c6dc0aad6\"");
        let job = JobId::from("6720fd28f87f0e4c737a811a5e6f542e");
        assert_eq!(job.creator(), Some(NodeId::from("6720fd28f87f0e4c")));
        assert_eq!(JobId::from("ab").creator(), None);
        assert_eq!(format!("{job}"), job.as_str());
    }
}
