//! The retry budget: a cap on retries as a share of requests, shared by every
//! clone of a layer.
//!
//! Blind retries multiply load exactly when the provider is overloaded. A
//! budget lets through retries only while they stay a small share of recent
//! requests (plus a small floor for quiet services), so during a full outage
//! the upstream sees few more attempts than callers sent requests.
//!
//! It keeps the arithmetic of [`tower::retry::budget::TpsBudget`] (a sliding
//! window of deposits, on tokio's clock, so tests can drive it with a paused
//! clock), but a deposit, made on every request, is one atomic add: no lock and
//! no clock read on the happy path. Any other [`Budget`] can be plugged in
//! with [`RetryBudget::from_budget`].
//!
//! ```
//! use std::time::Duration;
//! use tower_api_guard::budget::RetryBudget;
//!
//! // No floor, and one retry for every two requests.
//! let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
//! assert!(!budget.withdraw(), "nothing deposited yet");
//! budget.deposit();
//! budget.deposit();
//! assert!(budget.withdraw());
//! assert!(!budget.withdraw());
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::Budget;

mod window;

use window::WindowBudget;

/// A retry budget shared by all clones of the handle.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<dyn Budget + Send + Sync>,
}

impl RetryBudget {
    /// Default window: 10 s. Long enough to smooth bursts, short enough that a
    /// healthy period does not buy a long storm.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
    /// Default floor: 1 retry per second, so a quiet service can still retry.
    pub const DEFAULT_MIN_PER_SEC: u32 = 1;
    /// Default ratio: 0.1 retries per request, so an outage costs at most
    /// about 10 % more attempts than requests (plus the floor).
    pub const DEFAULT_RATIO: f32 = 0.1;

    /// A budget that allows `ratio` retries per request deposited in the last
    /// `window`, plus `min_per_sec` retries per second.
    ///
    /// `window` must be within 1 s..=60 s and `ratio` within 0.0..=1000.0
    /// (and not NaN).
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> Result<Self, InvalidBudget> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) {
            return Err(InvalidBudget("window must be between 1 s and 60 s"));
        }
        if !(0.0..=1000.0).contains(&ratio) {
            return Err(InvalidBudget("ratio must be between 0 and 1000"));
        }
        if min_per_sec >= i32::MAX as u32 {
            return Err(InvalidBudget("min_per_sec is too large"));
        }
        Ok(Self::from_budget(WindowBudget::new(
            window,
            min_per_sec,
            ratio,
        )))
    }

    /// Uses any [`Budget`] implementation.
    pub fn from_budget(budget: impl Budget + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(budget),
        }
    }

    /// Records a request (the first attempt).
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

impl Default for RetryBudget {
    /// 10 % of requests plus 1 retry per second, over a 10 s window.
    fn default() -> Self {
        Self::from_budget(WindowBudget::new(
            Self::DEFAULT_WINDOW,
            Self::DEFAULT_MIN_PER_SEC,
            Self::DEFAULT_RATIO,
        ))
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget").finish_non_exhaustive()
    }
}

/// A retry budget setting out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBudget(&'static str);

impl fmt::Display for InvalidBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry budget: {}", self.0)
    }
}

impl std::error::Error for InvalidBudget {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_settings() {
        assert!(RetryBudget::new(Duration::from_millis(999), 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(61), 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, f32::NAN).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, -0.5).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), u32::MAX, 0.1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn default_allows_the_floor_then_a_tenth() {
        let budget = RetryBudget::default();
        // the floor: 1 per second over the 10 s window
        let floor = (0..100).take_while(|_| budget.withdraw()).count();
        assert_eq!(floor, 10);
        for _ in 0..100 {
            budget.deposit();
        }
        let more = (0..100).take_while(|_| budget.withdraw()).count();
        assert_eq!(more, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
        let b = a.clone();
        a.deposit();
        assert!(b.withdraw());
        assert!(!a.withdraw());
    }
}
