//! [`StatusGateService`]: the middleware itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{BoxError, Service};

use super::body::{closed_response, GateBody};
use super::error::GateClosed;
use super::future::{Respond503Future, ResponseFuture};
use super::handle::StatusGate;
use super::layer::{Reject, Respond503};
use super::scope;
use super::state::GateStatus;

/// The wait for the gate to open, up to a bound. Boxed (once per closed
/// period, never while open) because it borrows a `watch::Receiver` it owns.
type WaitOpen = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

enum Wait {
    /// No wait started for the next request.
    Idle,
    /// Waiting for the gate to open.
    Waiting(WaitOpen),
    /// Waited; go on to the inner service.
    Done,
}

/// Holds requests back while a [`StatusGate`] is closed. Built by
/// [`StatusGateLayer`](super::StatusGateLayer).
pub struct StatusGateService<S, M = Reject> {
    inner: S,
    gate: StatusGate,
    wait_bound: Option<Duration>,
    wait: Wait,
    mode: M,
}

impl<S, M> StatusGateService<S, M> {
    pub(crate) fn new(inner: S, gate: StatusGate, wait_bound: Option<Duration>, mode: M) -> Self {
        Self {
            inner,
            gate,
            wait_bound,
            wait: Wait::Idle,
            mode,
        }
    }

    /// The gate this service checks.
    pub fn gate(&self) -> &StatusGate {
        &self.gate
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// With a wait bound and a closed gate, waits (up to the bound) for it to open.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(bound) = self.wait_bound else {
            return Poll::Ready(());
        };
        if let Wait::Idle = self.wait {
            // Open: nothing to wait for or to remember, so `call` takes its
            // fast path.
            if self.gate.is_open() {
                return Poll::Ready(());
            }
            let mut rx = self.gate.subscribe();
            self.wait = Wait::Waiting(Box::pin(async move {
                let _ = tokio::time::timeout(bound, rx.wait_for(GateStatus::is_open)).await;
            }));
        }
        if let Wait::Waiting(fut) = &mut self.wait {
            ready!(fut.as_mut().poll(cx));
            self.wait = Wait::Done;
        }
        Poll::Ready(())
    }

    /// Polls the inner service's readiness with the gate named, so that a
    /// retry layer inside finds it (see `scope`). Named here rather than
    /// around the inner `call`: a guard alive across that call made the
    /// inner response future a copy, moved into this one, instead of being
    /// built in place (464 bytes with a retry layer inside, 76 instructions).
    fn poll_inner_ready<R>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>>
    where
        S: Service<R>,
    {
        let _named = scope::enter(&self.gate);
        self.inner.poll_ready(cx)
    }

    /// Forwards the request, or answers it while the gate is closed.
    ///
    /// An open gate (one flag) forwards it with nothing else before or
    /// around the inner call, so that the inner future is built in place in
    /// this one: a guard alive across the call made it a copy, and calls
    /// that may unwind before it (the wait's reset, the reason of a closed
    /// gate) cost about 30 instructions more. Everything else is out of line.
    #[inline]
    fn forward<R, F, X>(&mut self, req: R, answers: Answers<S::Future, F, X>) -> F
    where
        S: Service<R>,
        X: FnOnce(GateClosed) -> F,
    {
        if matches!(self.wait, Wait::Idle) && self.gate.shared().surely_open() {
            return (answers.forward)(self.inner.call(req), None);
        }
        self.forward_slowly(req, answers)
    }

    /// [`Self::forward`] after a wait, or with the gate flagged closed:
    /// the request goes on (perhaps as the probe) or is refused.
    #[cold]
    #[inline(never)]
    fn forward_slowly<R, F, X>(&mut self, req: R, answers: Answers<S::Future, F, X>) -> F
    where
        S: Service<R>,
        X: FnOnce(GateClosed) -> F,
    {
        // The wait `poll_ready` finished was for this call.
        self.wait = Wait::Idle;
        match self.gate.check() {
            Ok(()) => (answers.forward)(self.inner.call(req), None),
            Err(closed) if self.gate.shared().try_probe(&closed) => {
                let probe = Some(self.gate.clone());
                (answers.forward)(self.inner.call(req), probe)
            }
            Err(closed) => (answers.refuse)(closed),
        }
    }
}

/// What a mode makes of a call: its future around the inner one (with the
/// probe, if it is one), or its answer to a refused request.
struct Answers<Fut, F, X> {
    forward: fn(Fut, Option<StatusGate>) -> F,
    refuse: X,
}

impl<S: Clone, M: Clone> Clone for StatusGateService<S, M> {
    fn clone(&self) -> Self {
        // A clone starts with no wait of its own, like a fresh service.
        Self::new(
            self.inner.clone(),
            self.gate.clone(),
            self.wait_bound,
            self.mode.clone(),
        )
    }
}

impl<S: fmt::Debug, M: fmt::Debug> fmt::Debug for StatusGateService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusGateService")
            .field("inner", &self.inner)
            .field("gate", &self.gate)
            .field("wait_bound", &self.wait_bound)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for StatusGateService<S, Reject>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_wait(cx));
        // NOTE: the inner service is asked even while the gate is closed: the
        // gate may open between `poll_ready` and `call`, and `call` must then be
        // able to forward. A reservation a held-back request leaves unused stays
        // with this service for its next call, as with `tower::filter::Filter`.
        self.poll_inner_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let answers = Answers {
            forward: ResponseFuture::forward,
            refuse: ResponseFuture::closed,
        };
        self.forward(req, answers)
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for StatusGateService<S, Respond503>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = bytes::Bytes>,
{
    type Response = Response<GateBody<ResB>>;
    type Error = S::Error;
    type Future = Respond503Future<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_wait(cx));
        // NOTE: see the client-mode impl: always reserve inner capacity.
        self.poll_inner_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let retry_after = self.mode.retry_after;
        let answers = Answers {
            forward: Respond503Future::forward,
            refuse: |closed| Respond503Future::closed(closed_response(closed, retry_after)),
        };
        self.forward(req, answers)
    }
}
