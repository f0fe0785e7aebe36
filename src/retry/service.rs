use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::policy::Settings;
use super::replay::ReplayBody;
use crate::classify::{AnthropicClassifier, Classify};
use crate::BoxError;

/// Retries transient provider errors; built by [`RetryLayer`](super::RetryLayer).
///
/// Errors are boxed ([`BoxError`]) so a [`GateClosed`](crate::gate::GateClosed)
/// or a transport error can be told apart by downcasting.
pub struct Retry<S, C = AnthropicClassifier> {
    inner: S,
    settings: Arc<Settings<C>>,
}

impl<S, C> Retry<S, C> {
    pub(crate) fn from_parts(inner: S, settings: Arc<Settings<C>>) -> Self {
        Self { inner, settings }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
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
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for Retry<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    ReqB: ReplayBody,
    ResB: Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, C, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // NOTE: `self.inner` is the instance `poll_ready` drove to readiness,
        // so it must serve this call. A fresh clone takes its place in `self`;
        // the ready one goes into the future, which polls it ready again
        // before every retry.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, Arc::clone(&self.settings), request)
    }
}
