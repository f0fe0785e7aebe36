//! RetryLayer and StatusGateLayer together on a hyper-util client, in both
//! orders: once the status page reports an incident, no further attempt
//! reaches the provider, and the caller gets the last real response.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use status_server::{Reply, StatusServer};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter as BackoffJitter};
use tower_api_guard::gate::{GateClosed, GateStatus, Jitter, StatusGate, StatusGateLayer};
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

const OPERATIONAL: &str = "github_summary_operational_2019-12-30.json";
const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";

fn overloaded() -> Reply {
    Reply::Raw {
        status: 529,
        content_type: "application/json",
        body: Bytes::from_static(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    }
}

/// Retries at 0, 5, 15, 35 and 75 s (the provider's recipe without jitter),
/// no budget in the way.
fn retry() -> RetryLayer {
    RetryLayer::new()
        .backoff(Backoff::provider_recipe().jitter(BackoffJitter::None))
        .no_budget()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn find_gate_closed(err: &BoxError) -> Option<&GateClosed> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&**err);
    while let Some(e) = source {
        if let Some(closed) = e.downcast_ref::<GateClosed>() {
            return Some(closed);
        }
        source = e.source();
    }
    None
}

struct Setup {
    provider: StatusServer,
    status: StatusServer,
    gate: StatusGate,
}

async fn setup() -> Setup {
    let provider = StatusServer::start(overloaded()).await;
    let status = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = StatusGate::builder()
        .base_url(status.base_url())
        .jitter(Jitter::none())
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    // The incident starts now; the gate reads it at its next poll, at 30 s.
    status.set(Reply::fixture(MAJOR));
    Setup {
        provider,
        status,
        gate,
    }
}

/// Sends one request; checks no attempt reached the provider after the gate
/// closed, and that the caller got the last 529 with the reason.
async fn no_attempt_after_close<S>(s: Setup, mut svc: S)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = http::Response<tower_api_guard::retry::ResponseBody<hyper::body::Incoming>>,
    >,
    S::Error: Into<BoxError>,
{
    let mut rx = s.gate.subscribe();
    let closed_at = tokio::spawn(async move {
        rx.wait_for(|st| matches!(st, GateStatus::Closed(_)))
            .await
            .unwrap();
        Instant::now()
    });
    let t0 = Instant::now();
    let uri = format!("{}/v1/messages", s.provider.base_url());
    let req = Request::post(uri)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let resp = svc
        .ready()
        .await
        .map_err(Into::into)
        .unwrap()
        .call(req)
        .await
        .map_err(Into::into)
        .unwrap();
    assert_eq!(resp.status(), 529);
    let info = RetryInfo::of(&resp);
    assert_eq!(info.stop, Stop::GateClosed);
    // Only attempts that reached the provider count, whatever the order.
    assert_eq!(info.attempts, 3);
    let closed_at = closed_at.await.unwrap();
    assert_eq!(closed_at - t0, Duration::from_secs(30));
    let hits = s.provider.times();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter().all(|t| *t < closed_at),
        "an attempt reached the provider after the gate closed"
    );

    // Later requests do not reach the provider at all.
    let uri = format!("{}/v1/messages", s.provider.base_url());
    let req = Request::post(uri)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let err: BoxError = svc
        .ready()
        .await
        .map_err(Into::into)
        .unwrap()
        .call(req)
        .await
        .map_err(Into::into)
        .unwrap_err();
    assert!(find_gate_closed(&err).is_some(), "{err}");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(s.provider.hits(), 3);
    assert!(s.status.hits() >= 2);
}

#[tokio::test(start_paused = true)]
async fn gate_outside_retry() {
    let s = setup().await;
    let svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .layer(retry())
        .service(client());
    no_attempt_after_close(s, svc).await;
}

/// Later requests find the gate outside too, not only the first one: the
/// same stack answers one request at once, then meets the incident.
#[tokio::test(start_paused = true)]
async fn gate_outside_retry_on_a_later_request() {
    let s = setup().await;
    let answers = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let mut svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .layer(retry())
        .service(client());
    let req = Request::get(format!("{}/api/v2/summary.json", answers.base_url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(answers.hits(), 1);
    no_attempt_after_close(s, svc).await;
}

#[tokio::test(start_paused = true)]
async fn gate_inside_retry() {
    let s = setup().await;
    let svc = ServiceBuilder::new()
        .layer(retry())
        .layer(StatusGateLayer::new(s.gate.clone()))
        .service(client());
    no_attempt_after_close(s, svc).await;
}

/// A buffer between the layers moves the call to its worker task, where the
/// gate layer's call is not in progress: the retry layer is given the gate.
#[tokio::test(start_paused = true)]
async fn gate_outside_a_buffer_with_the_gate_given_to_retry() {
    let s = setup().await;
    let svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .buffer(8)
        .layer(retry().gate(s.gate.clone()))
        .service(client());
    no_attempt_after_close(s, svc).await;
}

/// Counts the readiness checks made of the service it wraps, over every
/// copy of it.
#[derive(Clone)]
struct CountReady<S> {
    inner: S,
    ready: Arc<AtomicUsize>,
}

impl<S: Service<R>, R> Service<R> for CountReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.ready.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.inner.call(request)
    }
}

/// A gate that closes during a backoff stops the retry before a copy of the
/// service is made ready for it: no capacity of the inner service is
/// reserved for an attempt that cannot be sent.
#[tokio::test(start_paused = true)]
async fn a_retry_stopped_by_the_gate_reserves_no_capacity() {
    let s = setup().await;
    let ready = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .layer(retry())
        .service(CountReady {
            inner: client(),
            ready: Arc::clone(&ready),
        });
    no_attempt_after_close(s, svc).await;
    // One check for each of the three attempts sent (a hyper-util client is
    // ready at once), and one for the second request's `ready()`, which the
    // closed gate then answers itself.
    assert_eq!(ready.load(Ordering::SeqCst), 4);
}

/// `Retry::get_mut` between `ready` and `call` makes the call take a fresh
/// copy of the service; the gate found while the stack was made ready still
/// stops the retries.
#[tokio::test(start_paused = true)]
async fn get_mut_between_ready_and_call_keeps_the_gate() {
    let s = setup().await;
    let mut svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .layer(retry())
        .service(client());
    let req = Request::post(format!("{}/v1/messages", s.provider.base_url()))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    svc.ready().await.unwrap();
    let _client = svc.get_mut().get_mut();
    let resp = svc.call(req).await.unwrap();
    assert_eq!(resp.status(), 529);
    assert_eq!(RetryInfo::of(&resp).stop, Stop::GateClosed);
    assert_eq!(
        s.provider.hits(),
        3,
        "no attempt after the gate closed at 30 s"
    );
}

/// One retry layer behind two gate layers (its clones share what they have
/// seen): a request through the second gate checks that gate, not the first
/// one the layer found (which stays open here).
#[tokio::test(start_paused = true)]
async fn a_retry_layer_behind_two_gates_checks_the_one_called_through() {
    let s = setup().await;
    let answers = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let first = StatusGate::manual();
    let shared = retry().layer(client());
    let mut via_first = StatusGateLayer::new(first.clone()).layer(shared.clone());
    let req = Request::get(format!("{}/api/v2/summary.json", answers.base_url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = via_first.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let via_second = StatusGateLayer::new(s.gate.clone()).layer(shared);
    no_attempt_after_close(s, via_second).await;
    assert!(first.is_open(), "the first gate never closed");
}

/// Calls the service it wraps without ever polling its readiness, against
/// tower's contract (a hyper-util client needs none).
struct SkipReady<S>(S);

impl<S: Service<R>, R> Service<R> for SkipReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

/// A call made without `poll_ready` names no gate for the retry layer inside
/// (`gate::scope`), as behind a buffer, and the same remedy holds: the gate
/// layer still checks every request, and a retry layer given the gate still
/// stops its retries when it closes.
#[tokio::test(start_paused = true)]
async fn a_call_without_poll_ready_is_gated_with_the_gate_given_to_retry() {
    let s = setup().await;
    let svc = ServiceBuilder::new()
        .layer(StatusGateLayer::new(s.gate.clone()))
        .layer(retry().gate(s.gate.clone()))
        .service(client());
    no_attempt_after_close(s, SkipReady(svc)).await;
}
