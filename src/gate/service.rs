//! [`StatusGateService`]: the middleware itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{BoxError, Service};

use super::body::{closed_response, GateBody};
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
    /// Waited (or did not need to); go on to the inner service.
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
            self.wait = if self.gate.is_open() {
                Wait::Done
            } else {
                let mut rx = self.gate.subscribe();
                Wait::Waiting(Box::pin(async move {
                    let _ = tokio::time::timeout(bound, rx.wait_for(GateStatus::is_open)).await;
                }))
            };
        }
        if let Wait::Waiting(fut) = &mut self.wait {
            ready!(fut.as_mut().poll(cx));
            self.wait = Wait::Done;
        }
        Poll::Ready(())
    }

    /// Lets the request through (`Some(is_probe)`) or not (`None` + reason).
    fn admit(&mut self) -> Result<bool, super::GateClosed> {
        self.wait = Wait::Idle;
        match self.gate.check() {
            Ok(()) => Ok(false),
            Err(closed) if self.gate.shared().try_probe(&closed) => Ok(true),
            Err(closed) => Err(closed),
        }
    }
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
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self.admit() {
            Err(closed) => ResponseFuture::closed(closed),
            Ok(probe) => {
                let probe = probe.then(|| self.gate.clone());
                // Lets a retry layer further in find the gate (see `scope`).
                let _named = scope::enter(&self.gate);
                ResponseFuture::forward(self.inner.call(req), probe)
            }
        }
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
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self.admit() {
            Err(closed) => Respond503Future::closed(closed_response(closed, self.mode.retry_after)),
            Ok(probe) => {
                let probe = probe.then(|| self.gate.clone());
                let _named = scope::enter(&self.gate);
                Respond503Future::forward(self.inner.call(req), probe)
            }
        }
    }
}
