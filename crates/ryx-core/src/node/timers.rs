//! The node's timers: one enum, one table.
//!
//! The driver wakes the node at [`Timer::Tick`] (every [`super::TICK`]) and
//! at [`Timer::Detect`] when a failure detector's deadline falls between
//! two ticks; each other timer is checked on the first tick at or after its
//! time, so the periodic work of a tick happens together and in a fixed
//! order.

use crate::time::Time;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The periodic tick itself.
    Tick,
    /// The failure detector's next deadline (a silence that makes a
    /// suspect, a suspect's window that ends), when it falls before the
    /// next tick: a verdict waits for no tick.
    Detect,
    /// The next discovery hello.
    Hello,
    /// The next shuffle of passive peers with a neighbour.
    Shuffle,
    /// The next probe of a passive peer.
    PassiveProbe,
    /// The next re-evaluation of the links (latency, long link).
    Reevaluate,
    /// The next diffusion of this node's neighbour list.
    Topology,
    /// The next anti-entropy digest to a neighbour.
    Sync,
    /// The next decay of the local health multiplier (and expiry sweeps).
    HealthDecay,
    /// The next look after blobs in custody.
    Custody,
    /// The next round of network-wide aggregation.
    Aggregate,
}

impl Timer {
    const COUNT: usize = 11;
}

/// When each timer fires next.
#[derive(Clone, Debug)]
pub(crate) struct TimerTable {
    at: [Time; Timer::COUNT],
}

impl TimerTable {
    /// Every timer set to `now`.
    pub(crate) fn new(now: Time) -> TimerTable {
        TimerTable { at: [now; Timer::COUNT] }
    }

    /// When `t` fires.
    pub(crate) fn get(&self, t: Timer) -> Time {
        self.at[t as usize]
    }

    /// Sets `t` to fire at `at`.
    pub(crate) fn set(&mut self, t: Timer, at: Time) {
        self.at[t as usize] = at;
    }

    /// Brings `t` forward to `at` if it would fire later.
    pub(crate) fn advance(&mut self, t: Timer, at: Time) {
        let slot = &mut self.at[t as usize];
        *slot = (*slot).min(at);
    }

    /// Whether `t` is due at `now`.
    pub(crate) fn expired(&self, t: Timer, now: Time) -> bool {
        now >= self.get(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_independent_and_advance_only_forward_in_time() {
        let mut t = TimerTable::new(Time(5));
        assert!(t.expired(Timer::Sync, Time(5)));
        t.set(Timer::Sync, Time(100));
        t.set(Timer::Hello, Time(50));
        assert!(!t.expired(Timer::Sync, Time(99)) && t.expired(Timer::Sync, Time(100)));
        assert_eq!(t.get(Timer::Custody), Time(5), "the others keep their time");
        t.advance(Timer::Hello, Time(70));
        assert_eq!(t.get(Timer::Hello), Time(50), "never postponed");
        t.advance(Timer::Hello, Time(20));
        assert_eq!(t.get(Timer::Hello), Time(20));
    }
}
