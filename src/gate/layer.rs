//! [`StatusGateLayer`] and its two modes: [`Reject`] (clients) and
//! [`Respond503`] (servers).

use std::time::Duration;

use tower::Layer;

use super::handle::StatusGate;
use super::service::StatusGateService;

/// Client mode (default): a closed gate fails the call with a
/// [`GateClosed`](super::GateClosed) inside a `tower::BoxError`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Reject;

/// Server mode: a closed gate answers `503 Service Unavailable` itself, with
/// `Retry-After` and an Anthropic-shaped JSON body
/// `{"type":"error","error":{"type":"overloaded_error","message":…}}`, and the
/// service keeps the inner service's error type (`Infallible` for axum).
///
/// `overloaded_error` because it is the provider's "temporarily unable, come
/// back later" error, which its SDKs (and this crate's retry layer) retry
/// after `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub struct Respond503 {
    pub(crate) retry_after: Duration,
}

/// Default `Retry-After` of the 503 answer, 30 s: the default poll interval,
/// by which time the gate has read the page again.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

impl Default for Respond503 {
    fn default() -> Self {
        Self {
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }
}

/// Holds requests back while a [`StatusGate`] is closed.
///
/// ```
/// use tower_api_guard::gate::{StatusGate, StatusGateLayer};
/// let gate = StatusGate::manual();
/// let client_side = StatusGateLayer::new(gate.clone());
/// let server_side = StatusGateLayer::new(gate).respond_503();
/// # let _ = (client_side, server_side);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct StatusGateLayer<M = Reject> {
    gate: StatusGate,
    wait: Option<Duration>,
    mode: M,
}

impl StatusGateLayer<Reject> {
    /// A client-mode layer for this gate.
    pub fn new(gate: StatusGate) -> Self {
        Self {
            gate,
            wait: None,
            mode: Reject,
        }
    }

    /// Switches to server mode: answer 503 instead of failing.
    pub fn respond_503(self) -> StatusGateLayer<Respond503> {
        StatusGateLayer {
            gate: self.gate,
            wait: self.wait,
            mode: Respond503::default(),
        }
    }
}

impl StatusGateLayer<Respond503> {
    /// `Retry-After` of the 503 answer, rounded up to whole seconds, at least
    /// 1 (default [`DEFAULT_RETRY_AFTER`]).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.mode.retry_after = after;
        self
    }
}

impl<M> StatusGateLayer<M> {
    /// While the gate is closed, `poll_ready` waits up to `bound` for it to
    /// open before the request is let through or held back. Off by default:
    /// failing at once lets the caller decide.
    pub fn wait_for_open(mut self, bound: Duration) -> Self {
        self.wait = Some(bound);
        self
    }
}

impl<S, M: Clone> Layer<S> for StatusGateLayer<M> {
    type Service = StatusGateService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusGateService::new(inner, self.gate.clone(), self.wait, self.mode.clone())
    }
}
