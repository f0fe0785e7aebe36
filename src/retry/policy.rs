//! The retry layer's settings and the rules for hints and transport errors.

use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::gate::{GateClosed, StatusGate};

/// What to do when the server asks for a delay above the bound
/// ([`RetryLayer::max_hint`](super::RetryLayer::max_hint)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LongHint {
    /// Ignore the hint and use the backoff schedule (the official SDKs' rule).
    #[default]
    Backoff,
    /// Wait for the bound instead.
    Clamp,
    /// Do not retry: hand the response on.
    GiveUp,
}

/// When a transport error (the inner service's `Err`) is retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportRetry {
    /// Never.
    Never,
    /// Only when the request provably was not sent: the connection could not
    /// be made (hyper-util's `is_connect()`, or a refused connection).
    NotSent,
    /// When the request was not sent, or its method is idempotent (GET, HEAD,
    /// OPTIONS, TRACE, PUT, DELETE).
    #[default]
    NotSentOrIdempotent,
    /// Always, as the official SDKs do. A POST may then be processed twice.
    Always,
}

/// A user predicate on transport errors: `(error, method) -> retry?`.
pub(crate) type TransportPredicate =
    Arc<dyn Fn(&(dyn StdError + 'static), &Method) -> bool + Send + Sync>;

/// The layer's settings: a classifier and the policy.
#[derive(Clone, Debug)]
pub(crate) struct Settings<C> {
    pub(crate) classifier: C,
    pub(crate) policy: Policy,
}

/// Everything but the classifier.
#[derive(Clone)]
pub(crate) struct Policy {
    pub(crate) max_attempts: NonZeroU32,
    pub(crate) backoff: Backoff,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) honor_hints: bool,
    pub(crate) max_hint: Duration,
    pub(crate) long_hint: LongHint,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_error_body: usize,
    pub(crate) error_body_timeout: Duration,
    pub(crate) max_replay_body: u64,
    pub(crate) stream_start: bool,
    pub(crate) stream_start_cap: usize,
    pub(crate) stream_start_timeout: Duration,
    pub(crate) transport: TransportRetry,
    pub(crate) transport_predicate: Option<TransportPredicate>,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) gate: Option<StatusGate>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter_seed", &self.jitter_seed)
            .field("honor_hints", &self.honor_hints)
            .field("max_hint", &self.max_hint)
            .field("long_hint", &self.long_hint)
            .field("deadline", &self.deadline)
            .field("max_error_body", &self.max_error_body)
            .field("error_body_timeout", &self.error_body_timeout)
            .field("max_replay_body", &self.max_replay_body)
            .field("stream_start", &self.stream_start)
            .field("stream_start_cap", &self.stream_start_cap)
            .field("stream_start_timeout", &self.stream_start_timeout)
            .field("transport", &self.transport)
            .field("transport_predicate", &self.transport_predicate.is_some())
            .field("budget", &self.budget)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

/// What a delay hint means under the settings.
pub(crate) enum HintDecision {
    /// Wait this long.
    Wait(Duration),
    /// No usable hint: use the backoff schedule.
    Backoff,
    /// Do not retry.
    GiveUp,
}

impl Policy {
    pub(crate) fn hint(&self, hint: Option<Duration>) -> HintDecision {
        match hint {
            Some(hint) if self.honor_hints => {
                if hint <= self.max_hint {
                    HintDecision::Wait(hint)
                } else {
                    match self.long_hint {
                        LongHint::Backoff => HintDecision::Backoff,
                        LongHint::Clamp => HintDecision::Wait(self.max_hint),
                        LongHint::GiveUp => HintDecision::GiveUp,
                    }
                }
            }
            _ => HintDecision::Backoff,
        }
    }

    pub(crate) fn retry_transport(
        &self,
        error: &(dyn StdError + 'static),
        method: &Method,
    ) -> bool {
        if find::<GateClosed>(error).is_some() {
            return false;
        }
        if let Some(predicate) = &self.transport_predicate {
            return predicate(error, method);
        }
        match self.transport {
            TransportRetry::Never => false,
            TransportRetry::NotSent => not_sent(error),
            TransportRetry::NotSentOrIdempotent => not_sent(error) || idempotent(method),
            TransportRetry::Always => true,
        }
    }
}

/// The first error of type `T` in `error`'s source chain.
pub(crate) fn find<'a, T: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Whether the error proves that no byte of the request reached the server.
fn not_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(client) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            if client.is_connect() {
                return true;
            }
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = error.source();
    }
    false
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
