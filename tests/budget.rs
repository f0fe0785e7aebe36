//! The default retry budget through `RetryLayer::new()`: a lone request keeps
//! its retries, a storm does not multiply load at low rates, and healthy
//! traffic brings retries back. An in-memory provider, tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_api_guard::budget::RetryBudget;
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

type Client = BoxCloneService<Request<Full<Bytes>>, Response<()>, BoxError>;

/// A provider that answers 529 `overloaded_error` while `failing` is set (or
/// to the next `fail_next` attempts), 200 otherwise, and counts attempts.
#[derive(Clone, Default)]
struct Provider {
    failing: Arc<AtomicBool>,
    fail_next: Arc<AtomicU32>,
    attempts: Arc<AtomicU32>,
}

impl Provider {
    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn client(&self, layer: RetryLayer) -> Client {
        let this = self.clone();
        let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
            this.attempts.fetch_add(1, Ordering::Relaxed);
            let once = this
                .fail_next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            let fail = once || this.failing.load(Ordering::Relaxed);
            async move {
                let (status, body) = if fail {
                    (529, OVERLOADED)
                } else {
                    (200, r#"{"type":"message"}"#)
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap(),
                )
            }
        });
        BoxCloneService::new(
            ServiceBuilder::new()
                .layer(layer)
                .service(upstream)
                .map_response(|r| r.map(|_| ())),
        )
    }
}

fn request() -> Request<Full<Bytes>> {
    Request::post("https://api.anthropic.com/v1/messages")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"max_tokens\":64}")))
        .unwrap()
}

/// Open-loop load: `count` requests, one every `every`, each on its own task;
/// waits for them all.
async fn load(client: &Client, count: u32, every: Duration) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.oneshot(request()).await.unwrap();
        }));
        tokio::time::sleep(every).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_request_gets_all_four_retries_from_the_default_budget() {
    let provider = Provider::default();
    provider.failing.store(true, Ordering::Relaxed);
    let response = provider
        .client(RetryLayer::new())
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), 529);
    let info = RetryInfo::of(&response);
    assert_eq!(info.stop, Stop::AttemptsExhausted);
    assert_eq!((info.attempts, provider.attempts()), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn a_storm_at_two_requests_a_second_stays_under_one_point_two_attempts() {
    let requests = 120; // 60 s at 2 req/s, every attempt answered 529
    let every = Duration::from_millis(500);

    let window_only = Provider::default();
    window_only.failing.store(true, Ordering::Relaxed);
    let layer = RetryLayer::new().budget(RetryBudget::default().without_throttle());
    load(&window_only.client(layer), requests, every).await;
    // The window's floor allows a retry a second: about 1.5 attempts per request.
    assert!(
        window_only.attempts() * 5 > requests * 6,
        "window only: {} attempts",
        window_only.attempts()
    );

    let provider = Provider::default();
    provider.failing.store(true, Ordering::Relaxed);
    load(&provider.client(RetryLayer::new()), requests, every).await;
    // The throttle stops retries after a handful: 10 tokens, each failure
    // takes 1 and each request gives back 0.5, so the bucket is at half after
    // at most 10 failures. (How they split between the first requests
    // depends on the jittered backoff.)
    let retries = provider.attempts() - requests;
    assert!((4..=10).contains(&retries), "{retries} retries");
    assert!(provider.attempts() * 5 <= requests * 6);
}

#[tokio::test(start_paused = true)]
async fn healthy_traffic_brings_retries_back_after_a_storm() {
    let provider = Provider::default();
    let client = provider.client(RetryLayer::new());
    provider.failing.store(true, Ordering::Relaxed);
    load(&client, 40, Duration::from_millis(500)).await;
    provider.failing.store(false, Ordering::Relaxed);

    // Right after the storm a transient error is not retried: the throttle is empty.
    provider.fail_next.store(1, Ordering::Relaxed);
    let response = client.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 529);
    assert_eq!(RetryInfo::of(&response).stop, Stop::BudgetExhausted);

    // 14 healthy requests refill it to 7 tokens: the next transient error is retried.
    load(&client, 14, Duration::from_millis(500)).await;
    provider.fail_next.store(1, Ordering::Relaxed);
    let before = provider.attempts();
    let response = client.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(RetryInfo::of(&response).attempts, 2);
    assert_eq!(provider.attempts() - before, 2);
}
