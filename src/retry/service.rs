use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::policy::Settings;
use super::replay::ReplayBody;
use crate::classify::{AnthropicClassifier, Classify};
use crate::gate::scope::{Found, Seen};
use crate::BoxError;

/// Retries transient provider errors; built by [`RetryLayer`](super::RetryLayer).
///
/// Errors are boxed ([`BoxError`]) so a [`GateClosed`](crate::gate::GateClosed)
/// or a transport error can be told apart by downcasting.
///
/// The first attempt of each request goes through the wrapped service itself,
/// which [`poll_ready`](Service::poll_ready) drove to readiness. Retries go
/// through a clone of it, taken from a copy the service keeps for that (made
/// when the layer wraps the service, and again on the first call after
/// [`get_mut`](Self::get_mut)). So a request answered at once does not clone
/// the service, and its future does not hold one (`tower::retry` clones it
/// for every request and keeps the clone in the future). For services whose
/// clones are handles to shared state (HTTP clients, channels, buffers) that
/// changes nothing else; a clone of the copy does start without any state
/// that earlier calls left in the wrapped service itself.
pub struct Retry<S, C = AnthropicClassifier> {
    inner: S,
    shared: Arc<Shared<S, C>>,
    /// `get_mut` was called: the copy retries are cloned from may be stale.
    detached: bool,
    /// The gate named around the last `poll_ready`, for the call it readied.
    scoped: Option<Found>,
}

/// What a service shares with the futures it returns: the settings and the
/// copy of the service that retries are cloned from.
pub(crate) struct Shared<S, C> {
    pub(crate) settings: Settings<C>,
    /// Behind a lock so the futures are `Send` whenever `S` is (a retry
    /// takes it once, to clone it).
    proto: Mutex<S>,
    /// The gates found named around `poll_ready`, when the policy names none.
    pub(crate) seen: Seen,
}

impl<S: Clone, C> Shared<S, C> {
    fn new(inner: &S, settings: Settings<C>, seen: Seen) -> Arc<Self> {
        let proto = Mutex::new(inner.clone());
        Arc::new(Self {
            settings,
            proto,
            seen,
        })
    }

    /// A service for retries: a clone of the copy.
    pub(crate) fn service(&self) -> S {
        // A panic in `S::clone` poisons the lock without leaving the copy
        // half-written: it was only read.
        self.proto
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S: Clone, C> Retry<S, C> {
    pub(crate) fn new(inner: S, settings: Settings<C>) -> Self {
        Self {
            shared: Shared::new(&inner, settings, Seen::default()),
            inner,
            detached: false,
            scoped: None,
        }
    }
}

impl<S: Clone, C: Clone> Retry<S, C> {
    /// Takes a fresh copy for this and later calls, after `get_mut`.
    #[cold]
    #[inline(never)]
    fn reattach(&mut self) {
        self.detached = false;
        // The gate seen so far is kept: a gate `poll_ready` found is known
        // by reference to it.
        let seen = self.shared.seen.clone();
        self.shared = Shared::new(&self.inner, self.shared.settings.clone(), seen);
    }

    /// The ready service, what a call's future shares with it (a fresh copy
    /// first, after `get_mut`) and the gate found when it was readied.
    pub(crate) fn for_call(&mut self) -> (&mut S, Arc<Shared<S, C>>, Option<Found>) {
        if self.detached {
            self.reattach();
        }
        (
            &mut self.inner,
            Arc::clone(&self.shared),
            self.scoped.take(),
        )
    }
}

impl<S, C> Retry<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. What is changed here also reaches the
    /// retries of later calls: the next call takes a fresh copy to clone
    /// them from. Requests already in flight keep the copy they started with.
    pub fn get_mut(&mut self) -> &mut S {
        self.detached = true;
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            detached: self.detached,
            // A clone is readied before it is called, like a fresh service.
            scoped: None,
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for Retry<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify + Clone,
    ReqB: ReplayBody,
    ResB: Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, C, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // NOTE: a gate layer outside names its gate while it polls this
        // service's readiness (see `gate::scope`); what is found here serves
        // the call this readiness is for, as `poll_ready` must come before it.
        if self.shared.settings.policy.gate.is_none() {
            self.scoped = self.shared.seen.find();
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // NOTE: `self.inner` is the instance `poll_ready` drove to readiness,
        // so it serves the first attempt, here and now. Only when the body
        // must be read first does the future take it (and leave a clone in
        // its place); retries poll a clone of the copy ready before calling.
        ResponseFuture::new(self, request)
    }
}
