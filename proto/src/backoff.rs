//! The one retry policy of Ferry: how long to wait after consecutive failures, used by the
//! source server between reconciles of a failing source and by the agent between artifact
//! downloads and event-stream reconnects.
//!
//! The policy: exponential, doubling from `initial` per consecutive failure, capped at `max`,
//! then shortened at random by up to `jitter` (a fraction). Jitter only ever shortens, so `max`
//! is a true bound (what an operator configures is the longest wait) while many clients that
//! failed together (a server restart) spread out instead of retrying in lockstep.

use std::time::Duration;

/// The jitter [`Backoff::new`] uses: delays are 90–100 % of the exponential value.
pub const DEFAULT_JITTER: f64 = 0.1;

/// Delays after consecutive failures: see the [module docs](self) for the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The longest delay, however many failures.
    pub max: Duration,
    /// The fraction, in `0.0..=1.0`, by which a delay is shortened at most, at random.
    pub jitter: f64,
}

impl Backoff {
    /// From `initial` doubling to `max`, with [`DEFAULT_JITTER`].
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: DEFAULT_JITTER,
        }
    }

    /// The same delays without jitter (deterministic: for tests and for callers that add
    /// their own spread).
    pub const fn without_jitter(self) -> Self {
        Self {
            jitter: 0.0,
            ..self
        }
    }

    /// The delay after `failures` consecutive failures (`1` for the first; `0` counts as `1`).
    pub fn delay(&self, failures: u32) -> Duration {
        self.delay_with(failures, rand::random::<f64>())
    }

    /// [`Backoff::delay`] with the random draw given: `unit` in `0.0..1.0`, `0.0` for the
    /// full delay.
    pub fn delay_with(&self, failures: u32, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let cut = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        // `try_from`: near `Duration::MAX` the float product may round above it.
        let shorter = Duration::try_from_secs_f64(full.as_secs_f64() * cut).unwrap_or(full);
        full.saturating_sub(shorter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_per_failure_up_to_the_cap() {
        let b = Backoff::new(100 * MS, 500 * MS).without_jitter();
        let delays: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500, 500]);
        assert_eq!(b.delay(0), 100 * MS, "no failure yet counts as the first");
        assert_eq!(
            b.delay(u32::MAX),
            500 * MS,
            "no overflow after many failures"
        );
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(huge.without_jitter().delay(40), Duration::MAX);
    }

    #[test]
    fn jitter_only_shortens_and_never_passes_the_cap() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(b.delay_with(3, 0.0), Duration::from_secs(4));
        assert_eq!(b.delay_with(3, 0.5), Duration::from_millis(3800));
        assert_eq!(b.delay_with(3, 1.0), Duration::from_millis(3600));
        for n in 1..40 {
            let d = b.delay(n);
            let full = b.without_jitter().delay(n);
            assert!(
                d <= full && d >= full.mul_f64(0.9),
                "{n}: {d:?} vs {full:?}"
            );
            assert!(d <= b.max);
        }
    }

    #[test]
    fn random_delays_spread() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let distinct: std::collections::BTreeSet<Duration> = (0..50).map(|_| b.delay(1)).collect();
        assert!(distinct.len() > 1, "jitter spreads retries");
    }
}
