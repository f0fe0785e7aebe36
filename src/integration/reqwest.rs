//! reqwest: the layers around a `reqwest::Client`, which stays a
//! `tower::Service<reqwest::Request>`.
//!
//! The layers of this crate speak `http::Request` / `http::Response`.
//! [`ReqwestLayer`] takes any such layer (or a `ServiceBuilder` stack of
//! them) and puts it around a reqwest client:
//!
//! - [`HttpClient`] turns the client into a `Service<http::Request<reqwest::Body>>`;
//! - the layer you give wraps that;
//! - [`Reqwest`] turns the result back into a `Service<reqwest::Request>`
//!   answering `reqwest::Response`, errors boxed ([`BoxError`]).
//!
//! An error answer that is not retried reaches the caller as a
//! `reqwest::Response` with the same status, headers and body bytes, though
//! the retry layer read part of it, and with the same [`url`](::reqwest::Response::url).
//! A request's own [`timeout`](::reqwest::RequestBuilder::timeout) applies
//! to each attempt. Request bodies in memory (`Vec<u8>`, `String`, `Bytes`,
//! JSON) are replayed as [`reqwest::Request::try_clone`](::reqwest::Request::try_clone)
//! would: a copy for each attempt; streamed bodies are read into memory once,
//! up to the retry layer's replay cap.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_api_guard::BoxError> {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
//! use tower_api_guard::gate::{StatusGate, StatusGateLayer};
//! use tower_api_guard::integration::reqwest::ReqwestLayer;
//! use tower_api_guard::retry::RetryLayer;
//!
//! // Stands in for `reqwest::Client::new()`: overloaded once, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let client = service_fn({
//!     let calls = calls.clone();
//!     move |_req: reqwest::Request| {
//!         let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
//!         async move {
//!             let (status, body) = if first {
//!                 (529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
//!             } else {
//!                 (200, r#"{"type":"message"}"#)
//!             };
//!             let response = http::Response::builder().status(status).body(body)?;
//!             Ok::<_, http::Error>(reqwest::Response::from(response))
//!         }
//!     }
//! });
//!
//! let gate = StatusGate::manual();
//! let layers = ServiceBuilder::new()
//!     .layer(StatusGateLayer::new(gate))
//!     .layer(RetryLayer::new())
//!     .into_inner();
//! let service = ReqwestLayer::new(layers).layer(client);
//!
//! let request = reqwest::Client::new()
//!     .post("http://127.0.0.1:1/v1/messages")
//!     .body(r#"{"model":"claude"}"#)
//!     .build()?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.text().await?, r#"{"type":"message"}"#);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::reqwest::{Body, ResponseBuilderExt};
use bytes::Bytes;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::retry::{Replay, ReplayBody};
use crate::BoxError;

impl ReplayBody for Body {
    fn replay(&self) -> Replay<Self> {
        if self.as_bytes().is_some() {
            Replay::Clone(copy_body)
        } else {
            Replay::Buffer(Body::wrap)
        }
    }
}

/// A copy of a body in memory, as `reqwest::Request::try_clone` makes. The
/// bytes are copied: reqwest does not hand out its shared buffer.
fn copy_body(body: &Body) -> Body {
    body.as_bytes()
        .map(|bytes| Body::from(Bytes::copy_from_slice(bytes)))
        .unwrap_or_default()
}

/// Puts an `http` layer (this crate's, or a stack of them) around a
/// reqwest client. See the [module documentation](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct ReqwestLayer<L> {
    layer: L,
}

impl<L> ReqwestLayer<L> {
    /// Wraps reqwest clients in `layer`.
    pub fn new(layer: L) -> Self {
        Self { layer }
    }
}

impl<S, L> Layer<S> for ReqwestLayer<L>
where
    L: Layer<HttpClient<S>>,
{
    type Service = Reqwest<L::Service>;

    fn layer(&self, client: S) -> Self::Service {
        Reqwest::new(self.layer.layer(HttpClient::new(client)))
    }
}

/// A reqwest client (any `Service<reqwest::Request>` answering
/// `reqwest::Response`) as a `Service<http::Request<reqwest::Body>>`.
#[derive(Clone, Debug)]
pub struct HttpClient<S> {
    client: S,
}

impl<S> HttpClient<S> {
    /// Wraps `client`.
    pub fn new(client: S) -> Self {
        Self { client }
    }

    /// The client.
    pub fn get_ref(&self) -> &S {
        &self.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        self.client
    }
}

impl<S> Service<http::Request<Body>> for HttpClient<S>
where
    S: Service<::reqwest::Request, Response = ::reqwest::Response>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = HttpClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.client.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // NOTE: reqwest keeps a request's timeout (and its other settings) in
        // the extensions, which both conversions carry.
        let call = ::reqwest::Request::try_from(request)
            .map(|request| self.client.call(request))
            .map_err(Into::into);
        HttpClientFuture {
            outcome: Outcome::new(call),
        }
    }
}

pin_project! {
    #[project = OutcomeProj]
    enum Outcome<F> {
        Call { #[pin] future: F },
        Failed { error: Option<BoxError> },
    }
}

impl<F> Outcome<F> {
    fn new(call: Result<F, BoxError>) -> Self {
        match call {
            Ok(future) => Outcome::Call { future },
            Err(error) => Outcome::Failed { error: Some(error) },
        }
    }

    /// Polls the call and converts its response; a failed conversion of the
    /// request comes out as the error.
    fn poll_with<T, E, U>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        convert: impl FnOnce(T) -> U,
    ) -> Poll<Result<U, BoxError>>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        match self.project() {
            OutcomeProj::Call { future } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                Poll::Ready(Ok(convert(response)))
            }
            OutcomeProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "reqwest: future polled after completion".into()))),
        }
    }
}

pin_project! {
    /// The response future of [`HttpClient`].
    pub struct HttpClientFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

impl<F> fmt::Debug for HttpClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for HttpClientFuture<F>
where
    F: Future<Output = Result<::reqwest::Response, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().outcome.poll_with(cx, into_http)
    }
}

/// `reqwest::Response` to `http::Response`, keeping the URL for the way back.
fn into_http(response: ::reqwest::Response) -> http::Response<Body> {
    let url = response.url().clone();
    let mut response = http::Response::<Body>::from(response);
    // `ResponseBuilderExt::url` is reqwest's public way to attach the URL that
    // `reqwest::Response::from(http::Response)` reads back.
    let mut builder = http::Response::builder().url(url);
    if let Some(extensions) = builder.extensions_mut() {
        response.extensions_mut().extend(std::mem::take(extensions));
    }
    response
}

/// An `http` service as a `Service<reqwest::Request>` answering
/// `reqwest::Response`. Built by [`ReqwestLayer`].
#[derive(Clone, Debug)]
pub struct Reqwest<S> {
    inner: S,
}

impl<S> Reqwest<S> {
    /// Wraps `inner`, a `Service<http::Request<reqwest::Body>>`.
    pub fn new(inner: S) -> Self {
        Self { inner }
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
}

impl<S, B> Service<::reqwest::Request> for Reqwest<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = ::reqwest::Response;
    type Error = BoxError;
    type Future = ReqwestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ::reqwest::Request) -> Self::Future {
        let call = http::Request::<Body>::try_from(request)
            .map(|request| self.inner.call(request))
            .map_err(Into::into);
        ReqwestFuture {
            outcome: Outcome::new(call),
        }
    }
}

pin_project! {
    /// The response future of [`Reqwest`].
    pub struct ReqwestFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

impl<F> fmt::Debug for ReqwestFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ReqwestFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<::reqwest::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .outcome
            .poll_with(cx, |response: http::Response<B>| {
                ::reqwest::Response::from(response.map(Body::wrap))
            })
    }
}
