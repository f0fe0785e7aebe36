use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tower::Layer;

use super::policy::{LongHint, Policy, Settings, TransportRetry};
use super::Retry;
use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::classify::{AnthropicClassifier, Classify};
use crate::gate::StatusGate;

/// Applies [`Retry`] to a service: retries transient provider errors.
///
/// Every service built from one layer (and every clone of them) shares one
/// [`RetryBudget`].
///
/// # Defaults ([`RetryLayer::new`])
///
/// | setting | default | why |
/// |---|---|---|
/// | attempts | 5 in all | the provider's own recipe |
/// | backoff | 5 s doubling to 120 s, full jitter | the provider's recipe; jitter so a fleet does not retry in step |
/// | classifier | [`AnthropicClassifier::new`] | `api_error`, `overloaded_error`, gateway statuses |
/// | budget | 10 % of requests + 1/s over 10 s, and a throttle (10 tokens: a retry takes 1, a request gives back 0.5) that stops retries at half | a retry storm costs about 10 % more attempts at most, and a handful once the throttle sees the outage, at any load |
/// | delay hints | honoured up to 60 s, longer ones fall back to backoff | the official SDKs' bound |
/// | deadline | none | the caller's own timeout usually bounds the call |
/// | error body cap | 64 KiB, read within 5 s | provider error bodies are well under 1 KiB |
/// | replay cap | 16 MiB | above it, holding a copy costs more than a retry is worth |
/// | transport errors | retried when not sent or idempotent | a POST that reached the server is not sent twice |
/// | stream start | off; when on, 64 KiB within 10 s | opt-in: it holds back the stream's first event |
#[derive(Clone)]
#[must_use]
pub struct RetryLayer<C = AnthropicClassifier> {
    settings: Arc<Settings<C>>,
}

impl RetryLayer<AnthropicClassifier> {
    /// The defaults above: the provider's recipe with jitter and a budget.
    ///
    /// Source: the provider's `api_error` documentation ("Fix: Retry with
    /// backoff": 5 attempts, `delay = 5`, `delay = min(delay * 2, 120)`).
    pub fn new() -> Self {
        Self {
            settings: Arc::new(Settings {
                classifier: AnthropicClassifier::new(),
                policy: Policy {
                    max_attempts: NonZeroU32::MIN.saturating_add(4),
                    backoff: Backoff::provider_recipe(),
                    jitter_seed: None,
                    honor_hints: true,
                    max_hint: Duration::from_secs(60),
                    long_hint: LongHint::Backoff,
                    deadline: None,
                    max_error_body: 64 * 1024,
                    error_body_timeout: Duration::from_secs(5),
                    max_replay_body: 16 * 1024 * 1024,
                    stream_start: false,
                    stream_start_cap: 64 * 1024,
                    stream_start_timeout: Duration::from_secs(10),
                    transport: TransportRetry::NotSentOrIdempotent,
                    transport_predicate: None,
                    budget: Some(RetryBudget::default()),
                    gate: None,
                },
            }),
        }
    }

    /// The official Anthropic SDKs' behaviour: 3 attempts in all, 0.5 s
    /// doubling to 8 s, each delay up to 25 % shorter; 408, 409, 429 and ≥ 500
    /// retried ([`AnthropicClassifier::sdk`]); `retry-after` honoured only
    /// within (0, 60] s; transport errors always retried. The budget stays on.
    ///
    /// Source: anthropic-sdk-python, `_constants.py` (`DEFAULT_MAX_RETRIES =
    /// 2`, `INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`) and
    /// `_base_client.py` (`_should_retry`, `_calculate_retry_timeout`).
    pub fn anthropic_sdk() -> Self {
        Self::new()
            .classifier(AnthropicClassifier::sdk())
            .max_attempts(NonZeroU32::MIN.saturating_add(2))
            .backoff(Backoff::anthropic_sdk())
            .transport_errors(TransportRetry::Always)
    }
}

impl Default for RetryLayer<AnthropicClassifier> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clone> RetryLayer<C> {
    fn with(mut self, change: impl FnOnce(&mut Policy)) -> Self {
        change(&mut Arc::make_mut(&mut self.settings).policy);
        self
    }

    /// Uses another classifier.
    pub fn classifier<C2: Classify + Clone>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            settings: Arc::new(Settings {
                classifier,
                policy: self.settings.policy.clone(),
            }),
        }
    }

    /// Attempts in all, the first one included (default 5).
    pub fn max_attempts(self, attempts: NonZeroU32) -> Self {
        self.with(|s| s.max_attempts = attempts)
    }

    /// The backoff schedule (default [`Backoff::provider_recipe`]).
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.with(|s| s.backoff = backoff)
    }

    /// Seeds the jitter so delays are reproducible. Every request then draws
    /// the same jitter sequence: for tests, not for a fleet.
    pub fn jitter_seed(self, seed: u64) -> Self {
        self.with(|s| s.jitter_seed = Some(seed))
    }

    /// Whether `retry-after-ms` / `retry-after` are honoured (default `true`).
    pub fn honor_hints(self, honor: bool) -> Self {
        self.with(|s| s.honor_hints = honor)
    }

    /// The longest server-requested delay honoured as is (default 60 s).
    pub fn max_hint(self, max: Duration) -> Self {
        self.with(|s| s.max_hint = max)
    }

    /// What to do with a longer hint (default [`LongHint::Backoff`]).
    pub fn long_hint(self, rule: LongHint) -> Self {
        self.with(|s| s.long_hint = rule)
    }

    /// An overall time for all attempts of a request, counted from the call.
    /// A delay that would end past it is not begun; the last response (or
    /// error) is returned instead. Default: none.
    pub fn deadline(self, deadline: Duration) -> Self {
        self.with(|s| s.deadline = Some(deadline))
    }

    /// The most bytes of an error body read to classify it (default 64 KiB).
    /// A larger body is classified by its status alone, and still handed on whole.
    pub fn max_error_body(self, bytes: usize) -> Self {
        self.with(|s| s.max_error_body = bytes)
    }

    /// How long reading an error body may take (default 5 s).
    pub fn error_body_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.error_body_timeout = timeout)
    }

    /// The largest request body kept for replay (default 16 MiB). A larger
    /// request is sent once and not retried.
    pub fn max_replay_body(self, bytes: u64) -> Self {
        self.with(|s| s.max_replay_body = bytes)
    }

    /// Retries a `text/event-stream` success whose first meaningful event is a
    /// retryable `error` event (default off).
    ///
    /// The provider's streaming endpoint can answer 200 and then send
    /// `event: error` with `overloaded_error` as its first event. With this on,
    /// the layer holds back such a stream until its first event (comments,
    /// blank lines and `ping` events skipped) has arrived, within
    /// [`stream_start_cap`](Self::stream_start_cap) bytes and
    /// [`stream_start_timeout`](Self::stream_start_timeout). A retryable error
    /// event (as the classifier judges its data) is retried like any other
    /// failure; otherwise the caller gets the whole stream byte-identical, the
    /// held-back bytes first. An error after content has been handed on is
    /// never retried.
    pub fn retry_stream_start(self, enabled: bool) -> Self {
        self.with(|s| s.stream_start = enabled)
    }

    /// The most bytes held back while waiting for a stream's first event
    /// (default 64 KiB). A larger first event is passed through, unclassified.
    pub fn stream_start_cap(self, bytes: usize) -> Self {
        self.with(|s| s.stream_start_cap = bytes)
    }

    /// How long to wait for a stream's first event (default 10 s). A stream
    /// that stalls longer is passed through as it is.
    pub fn stream_start_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.stream_start_timeout = timeout)
    }

    /// When transport errors are retried (default [`TransportRetry::NotSentOrIdempotent`]).
    pub fn transport_errors(self, rule: TransportRetry) -> Self {
        self.with(|s| s.transport = rule)
    }

    /// Decides transport errors with your own predicate, in place of
    /// [`transport_errors`](Self::transport_errors). A [`GateClosed`](crate::gate::GateClosed)
    /// error is never retried, whatever the predicate says.
    pub fn retry_transport_if<F>(self, predicate: F) -> Self
    where
        F: Fn(&(dyn StdError + 'static), &Method) -> bool + Send + Sync + 'static,
    {
        self.with(|s| s.transport_predicate = Some(Arc::new(predicate)))
    }

    /// Uses this retry budget (shared with whoever holds a clone of it).
    pub fn budget(self, budget: RetryBudget) -> Self {
        self.with(|s| s.budget = Some(budget))
    }

    /// Turns the retry budget off: every retryable failure is retried up to
    /// the attempt limit. Only for tests and for comparison.
    pub fn no_budget(self) -> Self {
        self.with(|s| s.budget = None)
    }

    /// Checks this gate before every retry: no retry is sent while it is closed.
    ///
    /// Not needed when a [`StatusGateLayer`](crate::gate::StatusGateLayer)
    /// wraps this layer (it names the gate while it polls this one's
    /// readiness) or sits inside it (each attempt passes through it). Needed
    /// when a layer between them drives readiness from another task, such as
    /// `tower::buffer`, or when the stack is called without `poll_ready`
    /// (against tower's contract).
    pub fn gate(self, gate: StatusGate) -> Self {
        self.with(|s| s.gate = Some(gate))
    }
}

impl<S: Clone, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, Settings::clone(&self.settings))
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("settings", &self.settings)
            .finish()
    }
}
