//! A failure-driven retry throttle after gRPC's `retryThrottling` (gRFC A6).
//!
//! The tokens are counted in thousandths in one `AtomicU32`, so a deposit is
//! one load when the bucket is full (a healthy service) and one
//! compare-and-swap loop otherwise: no lock anywhere.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use super::InvalidBudget;

/// Thousandths in one token: gRFC A6 supports a `tokenRatio` of up to three
/// decimal places, so thousandths hold every ratio exactly.
const MILLI: u32 = 1000;
/// The largest `max_tokens`: with more, it takes over 500 failures in a row
/// before the throttle engages, which no longer protects anything.
const MAX_TOKENS: u32 = 1000;

/// Settings of the failure-driven retry throttle (gRPC's `retryThrottling`,
/// [gRFC A6](https://github.com/grpc/proposal/blob/master/A6-client-retries.md#throttling-retry-attempts-and-hedged-rpcs)).
///
/// The throttle holds `max_tokens` tokens at first. Each failure that asks
/// for a retry takes one token (never below 0), each request gives back
/// `token_ratio` (never above `max_tokens`), and a retry is allowed only
/// while more than `max_tokens / 2` tokens are left after that failure's
/// token is taken.
///
/// ```
/// use std::num::NonZeroU32;
/// use tower_api_guard::budget::Throttle;
///
/// let throttle = Throttle::new(NonZeroU32::new(20).unwrap(), 0.05).unwrap();
/// assert_eq!(throttle.max_tokens().get(), 20);
/// assert_eq!(throttle.token_ratio(), 0.05);
/// assert_eq!(Throttle::default().max_tokens(), Throttle::DEFAULT_MAX_TOKENS);
/// assert!(Throttle::new(NonZeroU32::MIN, 0.0).is_err(), "a ratio of 0 never refills");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// `max_tokens` in thousandths.
    max: u32,
    /// `token_ratio` in thousandths.
    ratio: u32,
}

impl Throttle {
    /// Default bucket: 10 tokens, gRFC A6's `maxTokens` example. Retries stop
    /// at 5 tokens left, so a fresh client can take 4 failures in a row with
    /// retries (the default [`RetryLayer`](crate::retry::RetryLayer) makes 5
    /// attempts: one lone request gets all 4 of its retries), and a storm
    /// costs only those few before retries stop.
    pub const DEFAULT_MAX_TOKENS: NonZeroU32 = match NonZeroU32::new(10) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    };
    /// Default refill: half a token per request. The throttle's job is to
    /// see an outage: it stops retries once about half of the attempts fail,
    /// while the window budget keeps retries to a tenth of requests the rest
    /// of the time. gRFC A6's example (0.1) would also stop them for a
    /// provider failing 1 request in 10, where retries are what helps.
    pub const DEFAULT_TOKEN_RATIO: f32 = 0.5;

    /// A throttle of `max_tokens` tokens refilled by `token_ratio` per request.
    ///
    /// `max_tokens` must be at most 1000 (with more, the throttle engages only
    /// after 500 failures in a row). `token_ratio` must be within
    /// 0.001..=1000.0 (not NaN); it is kept to three decimal places, as in
    /// gRFC A6.
    pub fn new(max_tokens: NonZeroU32, token_ratio: f32) -> Result<Self, InvalidBudget> {
        if max_tokens.get() > MAX_TOKENS {
            return Err(InvalidBudget("throttle max_tokens must be at most 1000"));
        }
        if !(0.001..=1000.0).contains(&token_ratio) {
            return Err(InvalidBudget(
                "throttle token_ratio must be between 0.001 and 1000",
            ));
        }
        // Within 1..=1_000_000 after the range check: the cast cannot truncate.
        let ratio = (f64::from(token_ratio) * f64::from(MILLI)).round() as u32;
        Ok(Self {
            max: max_tokens.get() * MILLI,
            ratio: ratio.max(1),
        })
    }

    /// The number of tokens the throttle holds when full (and at first).
    pub fn max_tokens(&self) -> NonZeroU32 {
        NonZeroU32::new(self.max / MILLI).unwrap_or(NonZeroU32::MIN)
    }

    /// The tokens each request gives back, to three decimal places.
    pub fn token_ratio(&self) -> f32 {
        (f64::from(self.ratio) / f64::from(MILLI)) as f32
    }
}

impl Default for Throttle {
    /// 10 tokens, half a token back per request.
    fn default() -> Self {
        Self {
            max: Self::DEFAULT_MAX_TOKENS.get() * MILLI,
            // 500 thousandths: exact, as every ratio of three decimals is.
            ratio: (Self::DEFAULT_TOKEN_RATIO * MILLI as f32) as u32,
        }
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("max_tokens", &self.max_tokens())
            .field("token_ratio", &self.token_ratio())
            .finish()
    }
}

/// The shared token count of one [`Throttle`].
pub(super) struct Tokens {
    settings: Throttle,
    /// Tokens in thousandths, within `0..=settings.max`.
    milli: AtomicU32,
}

impl Tokens {
    /// A full bucket, as gRFC A6 starts.
    pub(super) fn new(settings: Throttle) -> Self {
        Self {
            settings,
            milli: AtomicU32::new(settings.max),
        }
    }

    pub(super) fn settings(&self) -> Throttle {
        self.settings
    }

    /// Tokens left, in thousandths.
    pub(super) fn milli(&self) -> u32 {
        self.milli.load(Ordering::Relaxed)
    }

    /// Tokens left.
    pub(super) fn tokens(&self) -> f32 {
        (f64::from(self.milli()) / f64::from(MILLI)) as f32
    }

    /// A request: gives back `token_ratio`, up to `max_tokens`. A full bucket
    /// (a healthy service) costs one load and no write.
    pub(super) fn deposit(&self) {
        let Throttle { max, ratio } = self.settings;
        if self.milli.load(Ordering::Relaxed) >= max {
            return;
        }
        // `None` (already full, a concurrent deposit won) leaves it as it is.
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |milli| {
                (milli < max).then(|| milli.saturating_add(ratio).min(max))
            });
    }

    /// A failure that asks for a retry: takes one token (down to 0), then
    /// allows the retry only while more than half the bucket is left.
    pub(super) fn fail(&self) -> bool {
        let before = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |milli| {
                Some(milli.saturating_sub(MILLI))
            })
            .unwrap_or_else(|milli| milli);
        before.saturating_sub(MILLI) > self.settings.max / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(max: u32, ratio: f32) -> Tokens {
        let max = NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN);
        Tokens::new(Throttle::new(max, ratio).unwrap())
    }

    #[test]
    fn settings_are_checked_and_read_back() {
        let max = |n| NonZeroU32::new(n).unwrap();
        assert!(Throttle::new(max(1000), 0.001).is_ok());
        assert!(Throttle::new(max(1001), 0.1).is_err());
        assert!(Throttle::new(max(10), 0.0).is_err());
        assert!(Throttle::new(max(10), 0.0004).is_err());
        assert!(Throttle::new(max(10), -0.1).is_err());
        assert!(Throttle::new(max(10), f32::NAN).is_err());
        assert!(Throttle::new(max(10), 1000.5).is_err());
        let t = Throttle::new(max(7), 0.25).unwrap();
        assert_eq!((t.max_tokens().get(), t.token_ratio()), (7, 0.25));
        assert_eq!(
            Throttle::default(),
            Throttle::new(Throttle::DEFAULT_MAX_TOKENS, Throttle::DEFAULT_TOKEN_RATIO).unwrap()
        );
    }

    #[test]
    fn failures_allow_retries_only_above_half() {
        let t = tokens(10, 0.1);
        // 10 → 9, 8, 7, 6 (allowed), 5 (not above half), then floored at 0.
        let allowed: Vec<bool> = (0..12).map(|_| t.fail()).collect();
        assert_eq!(allowed.iter().filter(|a| **a).count(), 4);
        assert!(allowed.iter().take(4).all(|a| *a));
        assert_eq!(t.milli(), 0, "the count never goes below 0");
    }

    #[test]
    fn an_odd_bucket_has_a_fractional_threshold() {
        // max 5: threshold 2.5 tokens, so 4 and 3 are above it, 2 is not.
        let t = tokens(5, 0.5);
        assert_eq!((t.fail(), t.fail(), t.fail()), (true, true, false));
    }

    #[test]
    fn deposits_refill_by_the_ratio_up_to_the_cap() {
        let t = tokens(10, 0.1);
        for _ in 0..10 {
            t.fail();
        }
        assert_eq!(t.milli(), 0);
        for _ in 0..25 {
            t.deposit();
        }
        assert_eq!(t.milli(), 2_500, "25 deposits of 0.1");
        for _ in 0..1000 {
            t.deposit();
        }
        assert_eq!(t.milli(), 10_000, "capped at max_tokens");
        // A ratio that does not divide the bucket: the last deposit is cut to fit.
        let t = tokens(10, 0.3);
        for _ in 0..10 {
            t.fail();
        }
        for _ in 0..34 {
            t.deposit();
        }
        assert_eq!(t.milli(), 10_000, "10.2 cut to 10");
    }
}
