//! The layers around a `reqwest::Client`, end to end: real reqwest, a
//! loopback provider that plays a script, tokio's paused clock.
#![cfg(feature = "reqwest")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::classify::RetryReason;
use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
use tower_api_guard::integration::reqwest::ReqwestLayer;
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

use provider::{Provider, Reply};

const BODY: &str = r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;

/// Gate, then retry (exact 5 s, 10 s, ... delays, no budget), around reqwest.
fn layered(
    gate: &StatusGate,
) -> impl tower::Service<
    reqwest::Request,
    Response = reqwest::Response,
    Error = tower::BoxError,
    Future = impl Send,
> + Clone {
    let layers = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(
            RetryLayer::new()
                .backoff(Backoff::provider_recipe().jitter(Jitter::None))
                .no_budget(),
        )
        .into_inner();
    ReqwestLayer::new(layers).layer(reqwest::Client::new())
}

fn post(provider: &Provider) -> reqwest::Request {
    reqwest::Client::new()
        .post(provider.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(BODY)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn overloaded_is_retried_to_success() {
    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error"),
        Reply::ok(r#"{"type":"message","id":"msg_1"}"#).header("request-id", "req_ok"),
    ])
    .await;
    let gate = StatusGate::manual();
    let started = Instant::now();
    let response = layered(&gate).oneshot(post(&provider)).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.url().as_str(), provider.url("/v1/messages"));
    let info = response.extensions().get::<RetryInfo>().cloned().unwrap();
    assert_eq!(info.attempts, 2);
    assert_eq!(info.stop, Stop::Final);
    assert_eq!(
        info.last_reason,
        Some(RetryReason::ErrorType("overloaded_error"))
    );
    assert_eq!(info.total_delay, Duration::from_secs(5));
    assert_eq!(started.elapsed().as_secs(), 5);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"type":"message","id":"msg_1"}"#
    );

    // Both attempts carried the whole body and the caller's headers.
    let seen = provider.seen();
    assert_eq!(seen.len(), 2);
    for attempt in &seen {
        assert_eq!(attempt.method, http::Method::POST);
        assert_eq!(attempt.body, BODY);
        assert_eq!(attempt.headers["x-api-key"], "sk-test");
        assert_eq!(attempt.headers["content-length"], BODY.len().to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn final_error_arrives_byte_identical() {
    // A JSON 400 is read by the retry layer (to classify it), in three chunks.
    let chunks = vec![
        Bytes::from_static(br#"{"type":"error","error":{"type":"invalid_"#),
        Bytes::from_static(br#"request_error","message":"max_tokens: "#),
        Bytes::from_static(b"\xe2\x9c\x97 too large\"}}"),
    ];
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let provider = Provider::start(vec![Reply::status(400)
        .header("content-type", "application/json")
        .header("request-id", "req_400")
        .header("x-custom", "kept")
        .chunks(chunks)])
    .await;
    let response = layered(&StatusGate::manual())
        .oneshot(post(&provider))
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["request-id"], "req_400");
    assert_eq!(response.headers()["x-custom"], "kept");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.url().as_str(), provider.url("/v1/messages"));
    assert_eq!(response.bytes().await.unwrap(), whole);
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_hand_back_the_last_error_intact() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let layers = RetryLayer::new()
        .max_attempts(std::num::NonZeroU32::new(2).unwrap())
        .backoff(Backoff::provider_recipe().jitter(Jitter::None))
        .no_budget();
    let service = ReqwestLayer::new(layers).layer(reqwest::Client::new());
    let response = service.oneshot(post(&provider)).await.unwrap();

    assert_eq!(response.status(), 529);
    assert_eq!(
        response.extensions().get::<RetryInfo>().unwrap().stop,
        Stop::AttemptsExhausted
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"scripted overloaded_error"}}"#
    );
    assert_eq!(provider.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn gated_request_never_reaches_the_server() {
    let provider = Provider::start(vec![Reply::ok(r#"{"type":"message"}"#)]).await;
    let gate = StatusGate::manual();
    let service = layered(&gate);

    gate.force_closed("provider incident");
    let error = service.clone().oneshot(post(&provider)).await.unwrap_err();
    let closed = error.downcast_ref::<GateClosed>().unwrap();
    assert_eq!(closed.description(), Some("provider incident"));
    assert_eq!(provider.hits(), 0);

    gate.clear_override();
    let response = service.oneshot(post(&provider)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_request_timeout_still_applies() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let request = reqwest::Client::new()
        .post(format!("http://{addr}/v1/messages"))
        .body(BODY)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();

    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        layered(&StatusGate::manual()).oneshot(request),
    )
    .await
    .expect("reqwest's own timeout must end the call");
    let error = outcome.unwrap_err();
    let error = error.downcast_ref::<reqwest::Error>().unwrap();
    assert!(error.is_timeout(), "{error:?}");
    // A POST that reached the server is not sent again: one 3 s attempt.
    assert_eq!(started.elapsed().as_secs(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_buffered_and_replayed() {
    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error"),
        Reply::ok(r#"{"type":"message"}"#),
    ])
    .await;
    let (head, tail) = BODY.split_at(20);
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(hyper::body::Frame::data(Bytes::from(head))),
        Ok(hyper::body::Frame::data(Bytes::from(tail))),
    ];
    let stream = http_body_util::StreamBody::new(futures_core_stream(frames));
    let request = reqwest::Client::new()
        .post(provider.url("/v1/messages"))
        .body(reqwest::Body::wrap(stream))
        .build()
        .unwrap();
    assert!(request.try_clone().is_none(), "a streamed body");

    let response = layered(&StatusGate::manual())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = provider.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|attempt| attempt.body == BODY));
}

/// A stream of ready items (no extra dependency for a stream adapter).
fn futures_core_stream<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Unpin {
    struct Ready<T>(std::collections::VecDeque<T>);
    impl<T: Unpin> futures_core::Stream for Ready<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
    Ready(items.into())
}
