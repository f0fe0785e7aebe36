//! The default retry budget through `RetryLayer::new()` on a hyper-util
//! client, against the loopback provider: a lone request keeps its retries, a
//! storm does not multiply load at low rates, and healthy traffic brings
//! retries back. tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::util::BoxCloneService;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_api_guard::budget::RetryBudget;
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

use provider::{client, Provider, Reply};

type Client = BoxCloneService<Request<Full<Bytes>>, Response<()>, BoxError>;

fn overloaded() -> Reply {
    Reply::error(529, "overloaded_error")
}

fn healthy() -> Reply {
    Reply::ok(r#"{"type":"message"}"#)
}

/// `layer` on the reference client; the response's body is dropped unread.
fn guarded(layer: RetryLayer) -> Client {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(layer)
            .service(client::<Full<Bytes>>())
            .map_response(|r| r.map(|_| ())),
    )
}

fn request(provider: &Provider) -> Request<Full<Bytes>> {
    Request::post(provider.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"max_tokens\":64}")))
        .unwrap()
}

/// Open-loop load: `count` requests, one every `every`, each on its own task;
/// waits for them all.
async fn load(client: &Client, provider: &Provider, count: usize, every: Duration) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (client, request) = (client.clone(), request(provider));
        tasks.push(tokio::spawn(async move {
            client.oneshot(request).await.unwrap();
        }));
        tokio::time::sleep(every).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_request_gets_all_four_retries_from_the_default_budget() {
    let provider = Provider::start(vec![overloaded()]).await;
    let response = guarded(RetryLayer::new())
        .oneshot(request(&provider))
        .await
        .unwrap();
    assert_eq!(response.status(), 529);
    let info = RetryInfo::of(&response);
    assert_eq!(info.stop, Stop::AttemptsExhausted);
    assert_eq!((info.attempts, provider.hits()), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn a_storm_at_two_requests_a_second_stays_under_one_point_two_attempts() {
    let requests = 120; // 60 s at 2 req/s, every attempt answered 529
    let every = Duration::from_millis(500);

    let window_only = Provider::start(vec![overloaded()]).await;
    let layer = RetryLayer::new().budget(RetryBudget::default().without_throttle());
    load(&guarded(layer), &window_only, requests, every).await;
    // The window's floor allows a retry a second: about 1.5 attempts per request.
    assert!(
        window_only.hits() * 5 > requests * 6,
        "window only: {} attempts",
        window_only.hits()
    );

    let provider = Provider::start(vec![overloaded()]).await;
    load(&guarded(RetryLayer::new()), &provider, requests, every).await;
    // The throttle stops retries after a handful: 10 tokens, each failure
    // takes 1 and each request gives back 0.5, so the bucket is at half after
    // at most 10 failures. (How they split between the first requests
    // depends on the jittered backoff.)
    let retries = provider.hits() - requests;
    assert!((4..=10).contains(&retries), "{retries} retries");
    assert!(provider.hits() * 5 <= requests * 6);
}

#[tokio::test(start_paused = true)]
async fn healthy_traffic_brings_retries_back_after_a_storm() {
    let provider = Provider::start(vec![overloaded()]).await;
    let client = guarded(RetryLayer::new());
    load(&client, &provider, 40, Duration::from_millis(500)).await;

    // Right after the storm a transient error is not retried: the throttle is empty.
    provider.play(vec![overloaded(), healthy()]);
    let response = client.clone().oneshot(request(&provider)).await.unwrap();
    assert_eq!(response.status(), 529);
    assert_eq!(RetryInfo::of(&response).stop, Stop::BudgetExhausted);

    // 14 healthy requests refill it to 7 tokens: the next transient error is retried.
    load(&client, &provider, 14, Duration::from_millis(500)).await;
    provider.play(vec![overloaded(), healthy()]);
    let before = provider.hits();
    let response = client.oneshot(request(&provider)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(RetryInfo::of(&response).attempts, 2);
    assert_eq!(provider.hits() - before, 2);
}
