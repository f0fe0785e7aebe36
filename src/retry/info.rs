use std::time::Duration;

use http::HeaderValue;

use crate::classify::RetryReason;

/// What the retry layer did for one request, carried in the final response's
/// extensions.
///
/// It is inserted whenever the layer retried or declined to retry; a response
/// that needed neither (a first-attempt success, or an error final on its
/// face) carries none, and [`RetryInfo::of`] reports one attempt for it.
///
/// ```
/// use tower_api_guard::retry::{RetryInfo, Stop};
///
/// let response = http::Response::new(());
/// let info = RetryInfo::of(&response);
/// assert_eq!(info.attempts, 1);
/// assert_eq!(info.stop, Stop::Final);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryInfo {
    /// Attempts sent upstream, the first one included.
    pub attempts: u32,
    /// Total time spent waiting between attempts.
    pub total_delay: Duration,
    /// Why the last retry (or the last declined retry) was wanted.
    pub last_reason: Option<RetryReason>,
    /// Why the layer stopped and handed this response on.
    pub stop: Stop,
    /// The provider's `request-id` header of this response, for support tickets.
    pub request_id: Option<HeaderValue>,
}

impl RetryInfo {
    /// The info attached to `response`, or one attempt with nothing to report.
    pub fn of<B>(response: &http::Response<B>) -> RetryInfo {
        response
            .extensions()
            .get::<RetryInfo>()
            .cloned()
            .unwrap_or_default()
    }
}

impl Default for RetryInfo {
    fn default() -> Self {
        Self {
            attempts: 1,
            total_delay: Duration::ZERO,
            last_reason: None,
            stop: Stop::Final,
            request_id: None,
        }
    }
}

/// Why the retry layer handed a response on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The response is not worth another attempt (a success, or a final error).
    Final,
    /// The attempt limit was reached.
    AttemptsExhausted,
    /// The shared retry budget was spent.
    BudgetExhausted,
    /// The next delay would have ended past the overall deadline.
    Deadline,
    /// The status gate closed: no retry is sent into an active incident.
    GateClosed,
    /// The server asked for a delay longer than the bound, and the rule is to give up.
    HintTooLong,
    /// The request body cannot be sent again (over the replay cap, or a body
    /// type that cannot be rebuilt).
    NotReplayable,
}
