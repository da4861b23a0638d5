//! Time as the core sees it: a number of microseconds handed in by the driver.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the driver.
///
/// The daemon uses the Unix epoch (so timestamps from nodes on one machine, or
/// on NTP-synchronised machines, are comparable); the simulator starts at 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(pub u64);

impl Time {
    /// Time zero of the driver's epoch.
    pub const ZERO: Time = Time(0);

    /// Builds a time from milliseconds since the epoch.
    pub fn from_millis(ms: u64) -> Time {
        Time(ms.saturating_mul(1000))
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// The time `d` later (saturating).
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.as_micros().min(u64::MAX as u128) as u64))
    }

    /// How long after `earlier` this time is (zero if it is not later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}
