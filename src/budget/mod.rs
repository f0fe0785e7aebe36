//! The retry budget: a cap on retries shared by every clone of a layer, so
//! that an overloaded provider sees few more attempts than callers sent
//! requests, at any load.
//!
//! ```
//! use tower_api_guard::budget::RetryBudget;
//!
//! let budget = RetryBudget::default(); // what `RetryLayer::new()` uses
//! // A lone request that fails transiently gets all 4 retries of the default 5 attempts.
//! budget.deposit();
//! assert!((0..4).all(|_| budget.withdraw()));
//! // A fifth failure in a row leaves the throttle at half its 10 tokens: refused.
//! assert!(!budget.withdraw());
//! // A storm: each request gives back half a token, its failure takes 1. No retries.
//! for _ in 0..100 {
//!     budget.deposit();
//!     assert!(!budget.withdraw());
//! }
//! // Healthy requests refill it.
//! for _ in 0..100 {
//!     budget.deposit();
//! }
//! assert!(budget.withdraw());
//! ```
//!
//! Blind retries multiply load exactly when the provider is overloaded. The
//! default budget stacks two limits, and a retry needs both:
//!
//! - **The window**: retries stay a share of the requests made in the last
//!   10 s, plus a small floor per second for quiet services. It keeps the
//!   arithmetic of [`tower::retry::budget::TpsBudget`] (on tokio's clock, so
//!   tests drive it with a paused clock), but a deposit is an atomic add on
//!   the calling thread's stripe of the counter (one a thread, as many as
//!   the machine runs threads at once): no lock and no clock read on the
//!   happy path, and no line another thread writes while there are no more
//!   threads than stripes.
//! - **The [`Throttle`]**, gRPC's `retryThrottling` from
//!   [gRFC A6](https://github.com/grpc/proposal/blob/master/A6-client-retries.md#throttling-retry-attempts-and-hedged-rpcs):
//!   a bucket of tokens, full at first; each failure that asks for a retry
//!   takes one, each request gives back half a token, and retries stop while
//!   half the bucket or less is left: once about half the attempts fail.
//!   The window's floor alone allows a retry every second whatever the load,
//!   which at 2 requests a second is 1.5 attempts per request in an outage;
//!   the throttle depends on failures, not time, so a storm stops retries
//!   after a few failures at any load.
//!
//! # Defaults ([`RetryBudget::default`])
//!
//! | setting | default | why |
//! |---|---|---|
//! | window | 10 s | long enough to smooth bursts, short enough that a healthy period does not buy a long storm |
//! | ratio | 0.1 retries per request | an outage costs at most about 10 % more attempts than requests |
//! | floor | 1 retry per second | a quiet service can still retry; the throttle bounds it in an outage |
//! | throttle tokens | 10, retries while more than 5 are left | gRFC A6's `maxTokens` example; a fresh client can retry 4 failures in a row (all retries of one request with the default 5 attempts) |
//! | throttle refill | 0.5 token per request | the throttle only has to see an outage (about half the attempts failing); the window already keeps retries to 10 % of requests. gRFC A6's example, 0.1, would also stop retries for a provider failing 1 request in 10, where they are what helps |
//!
//! After a storm the throttle is near 0 tokens; it allows retries again once
//! about 12 requests (6 tokens) have refilled it: the refill counts requests,
//! not time. For gRFC A6's stricter example, give
//! [`RetryBudget::with_throttle`] a [`Throttle::new`] of 10 tokens and 0.1;
//! to drop the throttle, use [`RetryBudget::without_throttle`].
//!
//! # How the throttle differs from gRFC A6
//!
//! The [`Budget`] trait the layer calls has two methods, so the throttle maps
//! onto them:
//!
//! - **Every request refills**, not only successes: [`RetryBudget::deposit`]
//!   runs once per request, when its first attempt's outcome arrives,
//!   whatever that outcome is. A request whose first attempt fails nets
//!   −0.5 token rather than −1, and a successful retry gives nothing back.
//! - **A failure counts when it asks for a retry**: [`RetryBudget::withdraw`]
//!   takes the failure's token and then decides. A failure that is not
//!   retried anyway (not retryable, attempts or deadline spent, the gate
//!   closed) takes no token.
//! - One throttle per budget (shared by clones of a layer), not per server
//!   name.
//!
//! A withdrawal spends from the window only when the throttle allows the
//! retry, so refused retries waste no window tokens. Any other [`Budget`]
//! can be plugged in with [`RetryBudget::from_budget`], with or without the
//! throttle.
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use tower_api_guard::budget::{RetryBudget, Throttle};
//!
//! // Window only: no floor, and one retry for every two requests.
//! let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
//! assert!(!budget.withdraw(), "nothing deposited yet");
//! budget.deposit();
//! budget.deposit();
//! assert!(budget.withdraw());
//! assert!(!budget.withdraw());
//!
//! // A window with a floor, behind a throttle of 2 tokens: the first failure
//! // leaves 1 (not above half), so it is not retried although the window allows it.
//! let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.5)
//!     .unwrap()
//!     .with_throttle(Throttle::new(NonZeroU32::new(2).unwrap(), 0.5).unwrap());
//! assert!(!budget.withdraw());
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::Budget;

mod throttle;
mod window;

pub use throttle::Throttle;
use throttle::Tokens;
use window::WindowBudget;

/// A retry budget shared by all clones of the handle: a window budget and,
/// by default, a failure-driven [`Throttle`] (see the [module docs](self)).
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<dyn Budget + Send + Sync>,
    throttle: Option<Arc<Tokens>>,
}

impl RetryBudget {
    /// Default window: 10 s. Long enough to smooth bursts, short enough that a
    /// healthy period does not buy a long storm.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
    /// Default floor: 1 retry per second, so a quiet service can still retry
    /// (in an outage the default [`Throttle`] stops these retries too).
    pub const DEFAULT_MIN_PER_SEC: u32 = 1;
    /// Default ratio: 0.1 retries per request, so an outage costs at most
    /// about 10 % more attempts than requests.
    pub const DEFAULT_RATIO: f32 = 0.1;

    /// A window budget, without a throttle: it allows `ratio` retries per
    /// request deposited in the last `window`, plus `min_per_sec` retries per
    /// second. Add the throttle with [`with_throttle`](Self::with_throttle).
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

    /// Uses any [`Budget`] implementation, without a throttle.
    pub fn from_budget(budget: impl Budget + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(budget),
            throttle: None,
        }
    }

    /// Adds a failure-driven throttle in front of the budget (or replaces the
    /// one it has); it starts full.
    ///
    /// Clones made before this call keep sharing the window, but not the new
    /// throttle: configure the budget first, then hand it out.
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(Arc::new(Tokens::new(throttle)));
        self
    }

    /// Removes the throttle: only the window decides, as before the throttle
    /// existed (the floor then allows retries during an outage at any load).
    pub fn without_throttle(mut self) -> Self {
        self.throttle = None;
        self
    }

    /// The throttle's settings, if the budget has one.
    pub fn throttle(&self) -> Option<Throttle> {
        self.throttle.as_ref().map(|tokens| tokens.settings())
    }

    /// The throttle's tokens left, if the budget has one (for metrics: retries
    /// are allowed while a failure leaves more than half the maximum).
    pub fn throttle_tokens(&self) -> Option<f32> {
        self.throttle.as_ref().map(|tokens| tokens.tokens())
    }

    /// Records a request (once, when its first attempt's outcome arrives):
    /// refills the throttle and deposits in the window. No lock: a full
    /// throttle costs one atomic load.
    pub fn deposit(&self) {
        if let Some(throttle) = &self.throttle {
            throttle.deposit();
        }
        self.inner.deposit();
    }

    /// Records a failure that asks for a retry, and decides: `true` when the
    /// throttle (if any) and then the window both allow it. The throttle
    /// takes its token whatever the answer; the window is spent only when the
    /// throttle allows.
    pub fn withdraw(&self) -> bool {
        if let Some(throttle) = &self.throttle {
            if !throttle.fail() {
                return false;
            }
        }
        self.inner.withdraw()
    }
}

impl Default for RetryBudget {
    /// 10 % of requests plus 1 retry per second over a 10 s window, and no
    /// retries while the default [`Throttle`] (10 tokens, 0.5 per request)
    /// is at half or less.
    fn default() -> Self {
        Self::from_budget(WindowBudget::new(
            Self::DEFAULT_WINDOW,
            Self::DEFAULT_MIN_PER_SEC,
            Self::DEFAULT_RATIO,
        ))
        .with_throttle(Throttle::default())
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("throttle", &self.throttle())
            .field("throttle_tokens", &self.throttle_tokens())
            .finish_non_exhaustive()
    }
}

/// A retry budget or throttle setting out of range.
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
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Barrier;

    use super::*;

    /// Requests of a provider that answers every one with a retryable error:
    /// one deposit and one withdrawal each, `every` apart. Returns the retries allowed.
    async fn storm(budget: &RetryBudget, requests: u32, every: Duration) -> usize {
        let mut allowed = 0;
        for _ in 0..requests {
            budget.deposit();
            allowed += usize::from(budget.withdraw());
            tokio::time::advance(every).await;
        }
        allowed
    }

    fn milli(budget: &RetryBudget) -> u32 {
        budget.throttle.as_ref().map_or(u32::MAX, |t| t.milli())
    }

    #[test]
    fn rejects_out_of_range_settings() {
        assert!(RetryBudget::new(Duration::from_millis(999), 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(61), 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, f32::NAN).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, -0.5).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), u32::MAX, 0.1).is_err());
    }

    #[test]
    fn default_has_the_throttle_and_new_has_none() {
        let default = RetryBudget::default();
        assert_eq!(default.throttle(), Some(Throttle::default()));
        assert_eq!(default.throttle_tokens(), Some(10.0), "it starts full");
        let window = RetryBudget::new(Duration::from_secs(10), 1, 0.1).unwrap();
        assert_eq!(window.throttle(), None);
        assert_eq!(default.without_throttle().throttle(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn default_window_allows_the_floor_then_a_tenth() {
        let budget = RetryBudget::default().without_throttle();
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
    async fn a_fresh_default_budget_lets_a_lone_request_retry() {
        let budget = RetryBudget::default();
        budget.deposit();
        // The default layer makes 5 attempts: 4 retries, all allowed (10 → 6 tokens).
        let retries = (0..10).take_while(|_| budget.withdraw()).count();
        assert_eq!(retries, 4);
        assert_eq!(
            milli(&budget),
            5_000,
            "the refused fifth failure took its token too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_stops_retries_once_tokens_fall_to_half() {
        // 2 requests a second for 180 s, every one failing: the window's floor
        // alone allows a retry a second...
        let window_only = RetryBudget::default().without_throttle();
        let floor = storm(&window_only, 360, Duration::from_millis(500)).await;
        assert!(floor >= 180, "{floor}");
        // ...the throttle stops them after 8: each request nets -0.5 token
        // (9, 8.5, 8, 7.5, 7, 6.5, 6, 5.5 left; then 5, not above half).
        let budget = RetryBudget::default();
        let allowed = storm(&budget, 360, Duration::from_millis(500)).await;
        assert_eq!(allowed, 8);
        assert_eq!(milli(&budget), 0, "the storm drained it");
        // The same at 200 requests a second: the throttle counts failures, not time.
        let budget = RetryBudget::default();
        let allowed = storm(&budget, 36_000, Duration::from_millis(5)).await;
        assert_eq!(allowed, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_requests_refill_the_throttle() {
        let budget = RetryBudget::default();
        storm(&budget, 100, Duration::from_millis(500)).await;
        assert_eq!(milli(&budget), 0);
        // 12 healthy requests: 6 tokens; a failure leaves 5, not above half.
        for _ in 0..12 {
            budget.deposit();
        }
        assert_eq!(milli(&budget), 6_000);
        assert!(!budget.withdraw());
        // 3 more: 6.5 tokens; a failure leaves 5.5, and it is retried.
        for _ in 0..3 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        // A long healthy run fills it up to 10 and no further.
        for _ in 0..1000 {
            budget.deposit();
        }
        assert_eq!(milli(&budget), 10_000);
        assert_eq!((0..10).take_while(|_| budget.withdraw()).count(), 4);
    }

    #[test]
    fn concurrent_deposits_lose_no_tokens() {
        let max = NonZeroU32::new(1000).unwrap();
        let budget = RetryBudget::from_budget(Always::default())
            .with_throttle(Throttle::new(max, 0.001).unwrap());
        // Drain the bucket, so every deposit below does a read-modify-write.
        for _ in 0..1000 {
            budget.withdraw();
        }
        assert_eq!(milli(&budget), 0);
        let deposit_from_two_threads = |per_thread: u32| {
            let start = Barrier::new(2);
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        start.wait();
                        for _ in 0..per_thread {
                            budget.deposit();
                        }
                    });
                }
            });
        };
        // 2 × 200 000 deposits of 0.001 token: exactly 400 tokens.
        deposit_from_two_threads(200_000);
        assert_eq!(milli(&budget), 400_000);
        // 2 × 400 000 more would make 1200: the cap of 1000 holds.
        deposit_from_two_threads(400_000);
        assert_eq!(milli(&budget), 1_000_000);
    }

    /// A budget that always allows and counts its withdrawals.
    #[derive(Default)]
    struct Always {
        withdrawals: AtomicU32,
    }

    impl Budget for Always {
        fn deposit(&self) {}
        fn withdraw(&self) -> bool {
            self.withdrawals.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    #[test]
    fn refused_retries_spend_nothing_from_the_window() {
        let window = Arc::new(Always::default());
        let budget = RetryBudget::from_budget(ArcBudget(Arc::clone(&window)))
            .with_throttle(Throttle::default());
        let allowed = (0..20).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 4);
        assert_eq!(window.withdrawals.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_refusing_window_still_counts_the_failure() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.0)
            .unwrap()
            .with_throttle(Throttle::default());
        assert!(!budget.withdraw(), "the window has nothing");
        assert_eq!(milli(&budget), 9_000);
    }

    struct ArcBudget(Arc<Always>);

    impl Budget for ArcBudget {
        fn deposit(&self) {
            self.0.deposit();
        }
        fn withdraw(&self) -> bool {
            self.0.withdraw()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = RetryBudget::new(Duration::from_secs(10), 0, 1.0)
            .unwrap()
            .with_throttle(Throttle::default());
        let b = a.clone();
        a.deposit();
        assert!(b.withdraw());
        assert!(!a.withdraw());
        assert_eq!(
            a.throttle_tokens(),
            Some(8.0),
            "both failures took from one throttle"
        );
    }
}
