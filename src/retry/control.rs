use std::num::NonZeroU32;

/// Per-request retry control, read from the request's extensions.
///
/// ```
/// use std::num::NonZeroU32;
/// use tower_api_guard::retry::RetryControl;
///
/// let mut request = http::Request::new(());
/// // This request must not be sent twice.
/// request.extensions_mut().insert(RetryControl::disabled());
/// assert_eq!(request.extensions().get::<RetryControl>().unwrap().attempts(), Some(NonZeroU32::MIN));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryControl {
    attempts: Option<NonZeroU32>,
}

impl RetryControl {
    /// Send this request once; never retry it.
    pub const fn disabled() -> Self {
        Self {
            attempts: Some(NonZeroU32::MIN),
        }
    }

    /// At most `attempts` attempts for this request, instead of the layer's setting.
    pub const fn max_attempts(attempts: NonZeroU32) -> Self {
        Self {
            attempts: Some(attempts),
        }
    }

    /// The attempt limit this control sets, if any.
    pub const fn attempts(&self) -> Option<NonZeroU32> {
        self.attempts
    }
}
