//! Backoff schedules: capped exponential delays with selectable jitter.
//!
//! A [`Backoff`] describes the delay before each retry: `initial`, then
//! multiplied by `factor` after every retry, never above `max`, then jittered.
//! [`Backoff::delays`] turns it into an iterator of [`Duration`]s, so a
//! schedule can be inspected (and tested) as a plain sequence.
//!
//! ```
//! use std::time::Duration;
//! use tower_api_guard::backoff::{Backoff, Jitter};
//!
//! // The provider's own recipe with jitter off: 5 s doubling to a 120 s cap.
//! let recipe = Backoff::provider_recipe().jitter(Jitter::None);
//! let delays: Vec<u64> = recipe.delays(None).take(7).map(|d| d.as_secs()).collect();
//! assert_eq!(delays, [5, 10, 20, 40, 80, 120, 120]);
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

/// How a nominal backoff delay is randomised.
///
/// Jitter spreads the retries of many clients that failed at the same moment,
/// so that they do not all come back at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// The nominal delay, unchanged.
    None,
    /// Uniform in `[0, delay]` ("full jitter"): spreads retries the most.
    #[default]
    Full,
    /// `delay × (1 − 0.25·U)`, `U` uniform in `[0, 1)`: up to 25 % shorter,
    /// as the official Anthropic SDKs do.
    QuarterShorter,
}

impl Jitter {
    fn apply(self, delay: Duration, rng: &mut fastrand::Rng) -> Duration {
        let factor = match self {
            Jitter::None => return delay,
            Jitter::Full => rng.f64(),
            Jitter::QuarterShorter => 1.0 - 0.25 * rng.f64(),
        };
        scale(delay, factor)
    }
}

/// `delay × factor` for a factor in `[0, 1]`, never above `delay`.
///
/// `Duration::mul_f64` panics when the product rounds above `Duration::MAX`,
/// which a delay near the maximum does even at a factor of 1.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor)
        .unwrap_or(delay)
        .min(delay)
}

/// A capped exponential backoff schedule.
///
/// The delay before retry `n` (1-based) is `min(initial × factorⁿ⁻¹, max)`,
/// then [`Jitter`] is applied. If `max` is below `initial`, every delay is `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: NonZeroU32,
    jitter: Jitter,
}

impl Backoff {
    /// A schedule starting at `initial`, doubling, capped at `max`, with full jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: NonZeroU32::MIN.saturating_add(1),
            jitter: Jitter::Full,
        }
    }

    /// The provider's own recipe (its `api_error` documentation): 5 s doubling
    /// to a 120 s cap. Full jitter is added so a fleet does not retry in step;
    /// [`Jitter::None`] reproduces the recipe exactly.
    pub const fn provider_recipe() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(120))
    }

    /// The official Anthropic SDKs' schedule: 0.5 s doubling to 8 s,
    /// each delay up to 25 % shorter ([`Jitter::QuarterShorter`]).
    ///
    /// Source: anthropic-sdk-python, `_constants.py` (`INITIAL_RETRY_DELAY =
    /// 0.5`, `MAX_RETRY_DELAY = 8.0`) and `_base_client.py`
    /// (`_calculate_retry_timeout`: `delay × (1 − 0.25 × random())`).
    pub const fn anthropic_sdk() -> Self {
        Self {
            jitter: Jitter::QuarterShorter,
            ..Self::new(Duration::from_millis(500), Duration::from_secs(8))
        }
    }

    /// Sets the growth factor between consecutive delays (default 2).
    pub const fn factor(mut self, factor: NonZeroU32) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the jitter (default [`Jitter::Full`]).
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay, before jitter.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every delay.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The jitter in use.
    pub const fn jitter_kind(&self) -> Jitter {
        self.jitter
    }

    /// The nominal delay before retry `retry` (1-based), before jitter.
    pub fn nominal(&self, retry: u32) -> Duration {
        // Grow step by step until the cap: `factor^(retry-1)` overflows a
        // `u32` long before `initial × factor^(retry-1)` need pass the cap
        // (a zero or nanosecond start). At most ~100 steps for a factor ≥ 2.
        let factor = self.factor.get();
        let mut grown = self.initial;
        for _ in 1..retry {
            if factor == 1 || grown.is_zero() || grown >= self.max {
                break;
            }
            grown = grown.checked_mul(factor).unwrap_or(self.max);
        }
        grown.min(self.max)
    }

    /// The jittered delay before retry `retry` (1-based).
    pub fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        self.jitter.apply(self.nominal(retry), rng)
    }

    /// An endless iterator of the delays before retry 1, 2, 3, …
    ///
    /// With `Some(seed)` the jitter is reproducible; with `None` it is seeded
    /// from the thread's random generator.
    pub fn delays(&self, seed: Option<u64>) -> Delays {
        Delays {
            backoff: *self,
            retry: 0,
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        }
    }
}

impl Default for Backoff {
    /// [`Backoff::provider_recipe`].
    fn default() -> Self {
        Self::provider_recipe()
    }
}

/// The iterator returned by [`Backoff::delays`]. It never ends.
#[derive(Clone, Debug)]
pub struct Delays {
    backoff: Backoff,
    retry: u32,
    rng: fastrand::Rng,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.retry = self.retry.saturating_add(1);
        Some(self.backoff.delay(self.retry, &mut self.rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs_f64(delays: impl Iterator<Item = Duration>) -> Vec<f64> {
        delays.map(|d| d.as_secs_f64()).collect()
    }

    #[test]
    fn sdk_schedule_without_jitter_is_exact() {
        let sdk = Backoff::anthropic_sdk().jitter(Jitter::None);
        assert_eq!(
            secs_f64(sdk.delays(None).take(6)),
            [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
        );
    }

    #[test]
    fn factor_three_and_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
            .factor(NonZeroU32::new(3).unwrap())
            .jitter(Jitter::None);
        let ms: Vec<u128> = b.delays(None).take(5).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 300, 900, 1000, 1000]);
    }

    #[test]
    fn huge_retry_numbers_saturate_at_the_cap() {
        let b = Backoff::provider_recipe().jitter(Jitter::None);
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(120));
        assert_eq!(b.nominal(64), Duration::from_secs(120));
        let big = Backoff::new(Duration::MAX, Duration::MAX).jitter(Jitter::None);
        assert_eq!(big.nominal(10), Duration::MAX);
    }

    #[test]
    fn max_below_initial_caps_everything() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1)).jitter(Jitter::None);
        assert_eq!(b.nominal(1), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_nominal() {
        let b = Backoff::provider_recipe();
        for (i, d) in b.delays(Some(7)).take(50).enumerate() {
            let nominal = b.nominal(i as u32 + 1);
            assert!(d <= nominal, "{d:?} > {nominal:?}");
        }
    }

    #[test]
    fn quarter_jitter_is_at_most_a_quarter_shorter() {
        let b = Backoff::anthropic_sdk();
        let mut shorter = false;
        for (i, d) in b.delays(Some(11)).take(50).enumerate() {
            let nominal = b.nominal(i as u32 + 1);
            assert!(
                d <= nominal && d >= nominal.mul_f64(0.75),
                "{d:?} vs {nominal:?}"
            );
            shorter |= d < nominal;
        }
        assert!(shorter, "jitter never shortened a delay");
    }

    #[test]
    fn jitter_near_the_maximum_duration_does_not_panic() {
        // `Duration::MAX.mul_f64(1.0)` panics: the f64 product rounds up.
        assert_eq!(scale(Duration::MAX, 1.0), Duration::MAX);
        assert!(scale(Duration::MAX, 0.999_999_999_999) <= Duration::MAX);
        assert_eq!(scale(Duration::from_secs(8), 0.75), Duration::from_secs(6));
        assert_eq!(scale(Duration::from_secs(8), 0.0), Duration::ZERO);
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        for jitter in [Jitter::Full, Jitter::QuarterShorter] {
            assert_eq!(huge.jitter(jitter).delays(Some(3)).take(100).count(), 100);
        }
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let b = Backoff::provider_recipe();
        let a: Vec<Duration> = b.delays(Some(42)).take(5).collect();
        let c: Vec<Duration> = b.delays(Some(42)).take(5).collect();
        let other: Vec<Duration> = b.delays(Some(43)).take(5).collect();
        assert_eq!(a, c);
        assert_ne!(a, other);
    }
}
