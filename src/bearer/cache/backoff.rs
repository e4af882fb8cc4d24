//! Backoff after failed fetches, so a failing token endpoint is not hammered.
//!
//! When a fetch fails and no usable token is cached, requests would otherwise start a new fetch
//! each, back to back. Instead no fetch starts for a delay, and requests arriving inside it fail
//! at once with the last failure as their error's `source()`. The delay doubles with each
//! consecutive failure, from [`INITIAL`] up to [`MAX`], and is jittered down by up to half
//! ("equal jitter") so that many clients that failed together do not retry in lockstep. A
//! success resets it.
//!
//! Why these numbers: the first retry comes within a second, so a blip costs callers little;
//! a real outage settles at one attempt per 15-30 s, which a recovering endpoint can bear, and a
//! recovery is noticed within 30 s at worst.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// The delay after the first failure, before jitter.
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest delay, before jitter.
pub(crate) const MAX: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Backoff {
    /// Consecutive failed fetches with no usable token cached.
    failures: u32,
    /// No fetch starts before this...
    until: Option<Instant>,
    /// ...and requests until then fail with this (its source is the last failure).
    error: Option<Error>,
}

impl Backoff {
    /// The error for a request arriving inside the delay, if it is one.
    pub(super) fn holding(&self, now: Instant) -> Option<&Error> {
        match self.until {
            Some(until) if now < until => self.error.as_ref(),
            _ => None,
        }
    }

    /// A fetch failed with no usable token cached: start (or lengthen) the delay. Returns the
    /// delay and the number of consecutive failures.
    pub(super) fn failed(&mut self, now: Instant, last: &Error) -> (Duration, u32) {
        self.failures = self.failures.saturating_add(1);
        let delay = jitter(delay(self.failures));
        self.until = now.checked_add(delay);
        self.error = Some(Error::token_fetch_backing_off(self.failures, delay, last));
        (delay, self.failures)
    }

    /// A fetch succeeded. Returns how many failures came before it.
    pub(super) fn reset(&mut self) -> u32 {
        std::mem::take(self).failures
    }
}

/// The delay after `failures` consecutive failures, before jitter.
fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    INITIAL.saturating_mul(1 << doublings).min(MAX)
}

/// Somewhere in `[delay / 2, delay]`.
fn jitter(delay: Duration) -> Duration {
    // `RandomState` is seeded randomly per process and varied per instance: enough
    // randomness to spread retries, with no dependency.
    let random = RandomState::new().build_hasher().finish();
    let fraction = (random % 1_001) as f64 / 1_000.0; // 0.0 ..= 1.0
    delay / 2 + (delay / 2).mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let delays: Vec<_> = (1..=8).map(delay).collect();
        assert_eq!(delays, [s(1), s(2), s(4), s(8), s(16), s(30), s(30), s(30)]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn jitter_stays_within_half_and_whole_and_varies() {
        let d = Duration::from_secs(8);
        let samples: Vec<_> = (0..200).map(|_| jitter(d)).collect();
        assert!(samples.iter().all(|j| *j >= d / 2 && *j <= d));
        let first = samples[0];
        assert!(samples.iter().any(|j| *j != first), "no jitter at all");
    }

    #[test]
    fn holding_until_the_delay_passes_and_reset() {
        let now = Instant::now();
        let mut b = Backoff::default();
        assert!(b.holding(now).is_none());
        let cause = Error::new(ErrorKind::TokenFetch, "token fetch failed");
        let (d, n) = b.failed(now, &cause);
        assert_eq!(n, 1);
        assert!(d >= INITIAL / 2 && d <= INITIAL);
        let held = b.holding(now).expect("inside the delay");
        assert_eq!(held.kind(), ErrorKind::TokenFetch);
        let source = std::error::Error::source(held).expect("source").to_string();
        assert_eq!(source, "token fetch failed");
        assert!(b.holding(now + d).is_none());
        let (d2, n) = b.failed(now + d, &cause);
        assert_eq!(n, 2);
        assert!(d2 >= INITIAL && d2 <= 2 * INITIAL);
        b.reset();
        assert!(b.holding(now + d).is_none());
        assert_eq!(b.failed(now, &cause).1, 1);
    }
}
