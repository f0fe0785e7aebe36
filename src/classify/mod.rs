//! Deciding from a response whether it is worth another attempt.
//!
//! A [`Classify`] implementation looks at a response in two steps. First
//! [`Classify::classify_head`] sees only the status and headers; a success or
//! a plainly final error is handed on untouched, without reading its body.
//! When the head is not enough, the retry layer reads the body (up to a cap,
//! within a time bound) and calls [`Classify::classify_body`] with it.
//!
//! Two classifiers ship: [`AnthropicClassifier`] for the
//! `{"type":"error","error":{"type":..}}` shape, and [`OpenAiClassifier`] for
//! the `{"error":{"type":..,"code":..}}` shape.
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use tower_api_guard::classify::{AnthropicClassifier, Classify, ErrorBody, Head, RetryReason, Verdict};
//!
//! let classifier = AnthropicClassifier::new();
//! let headers = HeaderMap::new();
//! let status = StatusCode::from_u16(529).unwrap();
//! assert_eq!(classifier.classify_head(status, &headers), Head::ReadBody);
//!
//! let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
//! assert_eq!(
//!     classifier.classify_body(status, &headers, ErrorBody::Complete(body)),
//!     Verdict::Retry(RetryReason::ErrorType("overloaded_error")),
//! );
//! ```

use std::fmt;

use http::{HeaderMap, StatusCode};

mod anthropic;
mod media_type;
mod openai;
mod rules;

pub use anthropic::AnthropicClassifier;
pub(crate) use media_type::{is_event_stream, media_type};
pub use openai::OpenAiClassifier;

/// What the status line and headers alone say about a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Not worth another attempt (a success, or a final error): hand it on
    /// untouched, body unread.
    Final,
    /// Worth another attempt, whatever the body says.
    Retry(RetryReason),
    /// Read the body (capped) and ask [`Classify::classify_body`].
    ReadBody,
}

/// What the retry layer could read of an error body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorBody<'a> {
    /// The whole body, within the cap.
    Complete(&'a [u8]),
    /// The body is larger than the cap; it is not classified by content.
    TooLarge,
    /// The body could not be read: it failed or did not finish in time.
    Unreadable,
}

impl<'a> ErrorBody<'a> {
    /// The bytes, when the whole body was read.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            ErrorBody::Complete(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// The decision after reading the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Worth another attempt.
    Retry(RetryReason),
    /// Hand the response to the caller.
    Final,
}

/// Why an attempt is retried. Reported in [`RetryInfo`](crate::retry::RetryInfo)
/// and in tracing events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The error body named a retryable error type, such as `overloaded_error`.
    ErrorType(&'static str),
    /// A retryable status whose body was not a recognisable error (for
    /// example a proxy's HTML page), or a status retried whatever its body.
    Status(StatusCode),
    /// The server said `x-should-retry: true`.
    ShouldRetryHeader,
    /// A transport error (the inner service failed).
    Transport,
    /// A user-defined reason.
    Custom(&'static str),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::ErrorType(kind) => f.write_str(kind),
            RetryReason::Status(status) => write!(f, "status {}", status.as_u16()),
            RetryReason::ShouldRetryHeader => f.write_str("x-should-retry"),
            RetryReason::Transport => f.write_str("transport error"),
            RetryReason::Custom(reason) => f.write_str(reason),
        }
    }
}

/// Decides whether a response is worth another attempt.
///
/// Implement it to teach the retry layer another provider's error shape.
/// Both methods must be cheap and must not panic on any input: the status,
/// headers and body come from the network.
pub trait Classify: Send + Sync + 'static {
    /// Looks at the status and headers. Return [`Head::ReadBody`] only for
    /// error responses: success bodies must never be read.
    fn classify_head(&self, status: StatusCode, headers: &HeaderMap) -> Head;

    /// Looks at the body of a response for which
    /// [`classify_head`](Classify::classify_head) returned [`Head::ReadBody`].
    fn classify_body(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: ErrorBody<'_>,
    ) -> Verdict;
}
