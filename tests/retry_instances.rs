//! Which instance of the wrapped service sends each attempt: the one
//! `poll_ready` made ready sends the first, a ready clone of the kept copy
//! sends each retry, a request answered at once clones nothing, and what
//! `get_mut` changes reaches later retries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::retry::{ResponseBody, RetryInfo, RetryLayer};
use tower_api_guard::BoxError;

use provider::{client, Provider, Reply};

const BODY: &str = r#"{"model":"claude","messages":[]}"#;

/// Wraps the client and keeps tower's readiness contract strictly, as
/// `tower::buffer::Buffer` does: `call` on an instance that `poll_ready` has
/// not made ready since its last call fails. A clone starts not ready. It
/// counts its clones and tags each request it sends with `x-tag`.
struct Strict<S> {
    inner: S,
    ready: bool,
    tag: &'static str,
    clones: Arc<AtomicUsize>,
}

impl<S> Strict<S> {
    fn new(inner: S, tag: &'static str) -> (Self, Arc<AtomicUsize>) {
        let clones = Arc::new(AtomicUsize::new(0));
        let strict = Strict {
            inner,
            ready: false,
            tag,
            clones: Arc::clone(&clones),
        };
        (strict, clones)
    }
}

impl<S: Clone> Clone for Strict<S> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Strict {
            inner: self.inner.clone(),
            ready: false,
            tag: self.tag,
            clones: Arc::clone(&self.clones),
        }
    }
}

impl<S, B> Service<Request<B>> for Strict<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        ready!(self.inner.poll_ready(cx)).map_err(Into::into)?;
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if !std::mem::take(&mut self.ready) {
            return Box::pin(async { Err("called without poll_ready".into()) });
        }
        let tag = HeaderValue::from_static(self.tag);
        request.headers_mut().insert("x-tag", tag);
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

fn layer() -> RetryLayer {
    RetryLayer::new()
        .backoff(Backoff::provider_recipe().jitter(Jitter::None))
        .no_budget()
}

/// A body the layer keeps a clone of.
fn full(provider: &Provider) -> Request<Full<Bytes>> {
    Request::post(provider.url("/v1/messages"))
        .body(Full::new(Bytes::from(BODY)))
        .unwrap()
}

/// A body the layer must read into memory before the first attempt.
fn boxed(provider: &Provider) -> Request<BoxBody<Bytes, Infallible>> {
    Request::post(provider.url("/v1/messages"))
        .body(Full::new(Bytes::from(BODY)).boxed())
        .unwrap()
}

/// Sends `request`; the status, the attempts and the body read whole.
async fn send<S, B, ResB>(service: &mut S, request: Request<B>) -> (StatusCode, u32, Bytes)
where
    S: Service<Request<B>, Response = Response<ResponseBody<ResB>>, Error = BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: std::fmt::Debug,
{
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let attempts = RetryInfo::of(&response).attempts;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, attempts, body)
}

/// The `x-tag` of every request the provider saw since `from`.
fn tags(provider: &Provider, from: usize) -> Vec<String> {
    provider.seen()[from..]
        .iter()
        .map(|seen| seen.headers["x-tag"].to_str().unwrap().to_owned())
        .collect()
}

fn overloaded_once() -> Vec<Reply> {
    vec![Reply::error(529, "overloaded_error"), Reply::ok("{}")]
}

/// Through `service`: a request overloaded once, then one answered at once.
async fn retried_then_answered<S, B>(
    service: &mut S,
    provider: &Provider,
    request: fn(&Provider) -> Request<B>,
) where
    S: Service<Request<B>, Response = Response<ResponseBody<Incoming>>, Error = BoxError>,
{
    provider.play(overloaded_once());
    assert_eq!(
        send(service, request(provider)).await,
        (StatusCode::OK, 2, Bytes::from("{}"))
    );
    // The next call goes through `inner` again, made ready again.
    assert_eq!(send(service, request(provider)).await.1, 1);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_goes_through_an_instance_made_ready_for_it() {
    let provider = Provider::start(Vec::new()).await;
    // Kept body: the first attempt from `call`, a retry from a clone.
    let (strict, _) = Strict::new(client(), "a");
    let mut service = ServiceBuilder::new().layer(layer()).service(strict);
    retried_then_answered(&mut service, &provider, full).await;
    // Buffered body: the ready instance waits in the future for the body.
    let (strict, _) = Strict::new(client(), "a");
    let mut service = ServiceBuilder::new().layer(layer()).service(strict);
    retried_then_answered(&mut service, &provider, boxed).await;
    assert_eq!(provider.hits(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_request_answered_at_once_clones_no_service() {
    let provider = Provider::start(vec![Reply::ok("{}")]).await;
    let (strict, clones) = Strict::new(client(), "a");
    let mut service = ServiceBuilder::new().layer(layer()).service(strict);
    // The layer keeps one copy to clone retries from.
    assert_eq!(clones.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        assert_eq!(send(&mut service, full(&provider)).await.1, 1);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 1);

    // Each retry takes one clone of the copy.
    provider.play(vec![
        Reply::error(529, "overloaded_error"),
        Reply::error(500, "api_error"),
        Reply::ok("{}"),
    ]);
    assert_eq!(send(&mut service, full(&provider)).await.1, 3);
    assert_eq!(clones.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn what_get_mut_changes_reaches_later_retries() {
    let provider = Provider::start(overloaded_once()).await;
    let (strict, _) = Strict::new(client(), "a");
    let mut service = ServiceBuilder::new().layer(layer()).service(strict);
    let mut sibling = service.clone();
    assert_eq!(send(&mut service, full(&provider)).await.1, 2);
    assert_eq!(tags(&provider, 0), ["a", "a"]);

    service.get_mut().tag = "b";
    provider.play(overloaded_once());
    assert_eq!(send(&mut service, full(&provider)).await.1, 2);
    assert_eq!(tags(&provider, 2), ["b", "b"]);

    // A clone made before the change keeps its own service and copy.
    provider.play(overloaded_once());
    assert_eq!(send(&mut sibling, full(&provider)).await.1, 2);
    assert_eq!(tags(&provider, 4), ["a", "a"]);
}
