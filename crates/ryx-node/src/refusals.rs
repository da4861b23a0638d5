//! Counters of HTTP requests refused for exceeding a limit, by reason
//! (`ryx_http_refused_total{reason}` on `/metrics`). Process-wide: a
//! daemon serves one node.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// More live event streams than `--max-event-streams`.
    EventStreams,
    /// More uploads at once than `--max-uploads`.
    UploadsBusy,
    /// A body larger than its route accepts.
    TooLarge,
    /// A body that stalled longer than `--http-timeout-ms`.
    BodyTimeout,
    /// An upload with a line longer than the store could ever cut.
    LineTooLong,
    /// No room in the store (everything held is in use or acknowledged).
    StoreFull,
    /// A manifest whose chunk list does not add up.
    BadManifest,
    /// A job lookup not sent on to other nodes: too many in flight.
    LookupBusy,
    /// A relay to an address that did not prove to be a member.
    NotMember,
}

impl Refusal {
    /// Every reason, in the order of [`COUNTS`].
    pub const ALL: [Refusal; 9] = [
        Refusal::EventStreams,
        Refusal::UploadsBusy,
        Refusal::TooLarge,
        Refusal::BodyTimeout,
        Refusal::LineTooLong,
        Refusal::StoreFull,
        Refusal::BadManifest,
        Refusal::LookupBusy,
        Refusal::NotMember,
    ];

    /// Stable metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::EventStreams => "event_streams",
            Refusal::UploadsBusy => "uploads_busy",
            Refusal::TooLarge => "too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::LineTooLong => "line_too_long",
            Refusal::StoreFull => "store_full",
            Refusal::BadManifest => "bad_manifest",
            Refusal::LookupBusy => "lookup_busy",
            Refusal::NotMember => "not_member",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Counts one refusal.
    pub fn count(self) {
        COUNTS[self.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far.
    pub fn total(self) -> u64 {
        COUNTS[self.index()].load(Ordering::Relaxed)
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static COUNTS: [AtomicU64; Refusal::ALL.len()] = [ZERO; Refusal::ALL.len()];
