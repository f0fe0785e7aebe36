//! RetryLayer end to end: a hyper-util client, a loopback provider that plays
//! a script, tokio's paused clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::future::Future;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::budget::RetryBudget;
use tower_api_guard::classify::RetryReason;
use tower_api_guard::retry::{LongHint, RetryControl, RetryInfo, RetryLayer, Stop};
use tower_api_guard::BoxError;

use provider::{client, Provider, Reply};

const BODY: &str = r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;

/// The default layer with jitter off and no budget: delays are exact.
fn exact() -> RetryLayer {
    RetryLayer::new()
        .backoff(Backoff::provider_recipe().jitter(Jitter::None))
        .no_budget()
}

fn post(provider: &Provider) -> Request<Full<Bytes>> {
    Request::post(provider.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(Full::new(Bytes::from(BODY)))
        .unwrap()
}

async fn send<S, B>(service: &mut S, request: Request<B>) -> (Response<()>, Bytes, RetryInfo)
where
    S: Service<
        Request<B>,
        Response = Response<tower_api_guard::retry::ResponseBody<hyper::body::Incoming>>,
        Error = BoxError,
    >,
{
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let info = RetryInfo::of(&response);
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), bytes, info)
}

#[tokio::test(start_paused = true)]
async fn overloaded_then_api_error_then_success() {
    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error"),
        Reply::error(500, "api_error"),
        Reply::ok(r#"{"type":"message","id":"msg_1"}"#).header("request-id", "req_ok"),
    ])
    .await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let started = Instant::now();
    let (head, body, info) = send(&mut service, post(&provider)).await;

    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(body, r#"{"type":"message","id":"msg_1"}"#);
    assert_eq!(provider.hits(), 3);
    assert_eq!(info.attempts, 3);
    assert_eq!(info.stop, Stop::Final);
    assert_eq!(info.last_reason, Some(RetryReason::ErrorType("api_error")));
    assert_eq!(info.request_id.as_ref().unwrap(), "req_ok");
    // 5 s, then 10 s: the provider's recipe, exactly.
    assert_eq!(info.total_delay, Duration::from_secs(15));
    assert_eq!(started.elapsed().as_secs(), 15);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error_intact() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let started = Instant::now();
    let (head, body, info) = send(&mut service, post(&provider)).await;

    assert_eq!(provider.hits(), 5);
    assert_eq!(info.attempts, 5);
    assert_eq!(info.stop, Stop::AttemptsExhausted);
    assert_eq!(head.status().as_u16(), 529);
    assert!(body.starts_with(br#"{"type":"error","error":{"type":"overloaded_error""#));
    assert_eq!(started.elapsed().as_secs(), 5 + 10 + 20 + 40);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_the_schedule() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    for seed in [1, 2, 3] {
        let layer = RetryLayer::new().no_budget().jitter_seed(seed);
        let mut service = ServiceBuilder::new().layer(layer).service(client());
        let started = Instant::now();
        let (_, _, info) = send(&mut service, post(&provider)).await;
        let elapsed = started.elapsed();
        assert_eq!(info.attempts, 5);
        // full jitter: each delay in [0, nominal], so the sum is at most 75 s
        assert!(info.total_delay <= Duration::from_secs(75), "{info:?}");
        assert!(info.total_delay > Duration::ZERO);
        assert!(elapsed >= info.total_delay && elapsed < info.total_delay + Duration::from_secs(1));
        // the seed pins the jitter: the same seed waits the same
        let mut again = ServiceBuilder::new()
            .layer(RetryLayer::new().no_budget().jitter_seed(seed))
            .service(client());
        let (_, _, second) = send(&mut again, post(&provider)).await;
        assert_eq!(second.total_delay, info.total_delay);
    }
}

#[tokio::test(start_paused = true)]
async fn server_delay_hints_are_obeyed() {
    let in_30s = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    let cases: Vec<(Reply, Duration)> = vec![
        (
            Reply::error(529, "overloaded_error").header("retry-after", "2"),
            Duration::from_secs(2),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after", "1.5"),
            Duration::from_millis(1500),
        ),
        (
            Reply::error(529, "overloaded_error")
                .header("retry-after-ms", "250")
                .header("retry-after", "9"),
            Duration::from_millis(250),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after", &in_30s),
            Duration::from_secs(30),
        ),
        // bad values are absent: the backoff's 5 s applies
        (
            Reply::error(529, "overloaded_error").header("retry-after", "NaN"),
            Duration::from_secs(5),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after", "-3"),
            Duration::from_secs(5),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after-ms", "inf"),
            Duration::from_secs(5),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after", "0"),
            Duration::from_secs(5),
        ),
        (
            Reply::error(529, "overloaded_error").header("retry-after", "tomorrow"),
            Duration::from_secs(5),
        ),
        // above the 60 s bound: back to backoff by default
        (
            Reply::error(529, "overloaded_error").header("retry-after", "3600"),
            Duration::from_secs(5),
        ),
    ];
    for (reply, expected) in cases {
        let provider = Provider::start(vec![reply.clone(), Reply::ok("{}")]).await;
        let mut service = ServiceBuilder::new().layer(exact()).service(client());
        let (head, _, info) = send(&mut service, post(&provider)).await;
        assert_eq!(head.status(), StatusCode::OK);
        let waited = info.total_delay;
        // an HTTP-date has one-second resolution
        let slack = if expected == Duration::from_secs(30) {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        assert!(
            waited <= expected && waited + slack >= expected,
            "{reply:?}: waited {waited:?}, expected {expected:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn long_hints_follow_the_chosen_rule() {
    let long = || Reply::error(529, "overloaded_error").header("retry-after", "600");

    let provider = Provider::start(vec![long(), Reply::ok("{}")]).await;
    let mut clamp = ServiceBuilder::new()
        .layer(
            exact()
                .max_hint(Duration::from_secs(20))
                .long_hint(LongHint::Clamp),
        )
        .service(client());
    let (_, _, info) = send(&mut clamp, post(&provider)).await;
    assert_eq!(info.total_delay, Duration::from_secs(20));
    assert_eq!(info.attempts, 2);

    let provider = Provider::start(vec![long(), Reply::ok("{}")]).await;
    let mut give_up = ServiceBuilder::new()
        .layer(exact().long_hint(LongHint::GiveUp))
        .service(client());
    let (head, _, info) = send(&mut give_up, post(&provider)).await;
    assert_eq!(head.status().as_u16(), 529);
    assert_eq!(info.stop, Stop::HintTooLong);
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_retries_and_is_shared_by_clones() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    // no floor; one retry for every two requests
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
    let layer = exact().budget(budget);
    let service = ServiceBuilder::new().layer(layer.clone()).service(client());
    let mut stops = Vec::new();
    for i in 0..4 {
        // A fresh clone of one service, or a service of its own built from
        // the same layer, per request: the budget is shared by all of them.
        let mut fresh = if i % 2 == 0 {
            service.clone()
        } else {
            layer.layer(client())
        };
        let (_, _, info) = send(&mut fresh, post(&provider)).await;
        stops.push((info.attempts, info.stop));
    }
    assert_eq!(
        stops,
        [
            (1, Stop::BudgetExhausted),
            (2, Stop::BudgetExhausted),
            (1, Stop::BudgetExhausted),
            (2, Stop::BudgetExhausted),
        ]
    );
    assert_eq!(provider.hits(), 6);
}

/// The same reply fetched with and without the layer must be the same bytes.
async fn assert_identical(reply: Reply, layer: RetryLayer) -> RetryInfo {
    let provider = Provider::start(vec![reply]).await;
    let mut bare = client::<Full<Bytes>>();
    let expected = bare.call(post(&provider)).await.unwrap();
    let (expected_head, expected_body) = expected.into_parts();
    let expected_body = expected_body.collect().await.unwrap().to_bytes();

    let mut service = ServiceBuilder::new().layer(layer).service(client());
    let (head, body, info) = send(&mut service, post(&provider)).await;
    assert_eq!(head.status(), expected_head.status);
    let strip = |h: &http::HeaderMap| {
        let mut h = h.clone();
        h.remove(http::header::DATE);
        h
    };
    assert_eq!(strip(head.headers()), strip(&expected_head.headers));
    assert_eq!(body, expected_body);
    info
}

#[tokio::test(start_paused = true)]
async fn responses_not_retried_reach_the_caller_byte_identical() {
    let invalid = Reply::error(400, "invalid_request_error").header("x-custom", "kept");
    let info = assert_identical(invalid, exact()).await;
    assert_eq!(info.attempts, 1);

    // read to classify (500 with a non-transient type), then handed on
    let read = Reply::error(500, "invalid_request_error");
    let info = assert_identical(read, exact()).await;
    assert_eq!((info.attempts, info.stop), (1, Stop::Final));

    // the body is larger than the cap: the caller gets what was read, then the rest
    let big: Vec<Bytes> = (0..50u8)
        .map(|i| Bytes::from(vec![b'a' + i % 26; 4096]))
        .collect();
    let oversize = Reply::status(429)
        .header("content-type", "application/json")
        .chunks(big);
    let info = assert_identical(oversize, exact().max_error_body(16 * 1024)).await;
    assert_eq!(info.stop, Stop::Final);

    // a retryable error when the budget is spent
    let spent = Reply::error(529, "overloaded_error").header("retry-after", "1");
    let none = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let info = assert_identical(spent, exact().budget(none)).await;
    assert_eq!(info.stop, Stop::BudgetExhausted);

    // the final attempt's error
    let last = Reply::error(500, "api_error");
    let info = assert_identical(last, exact().max_attempts(NonZeroU32::new(2).unwrap())).await;
    assert_eq!((info.attempts, info.stop), (2, Stop::AttemptsExhausted));
}

#[tokio::test(start_paused = true)]
async fn a_large_streamed_success_arrives_intact_and_unbuffered() {
    use std::sync::Arc;
    use tokio::sync::Notify;

    // A server that sends the head and the first chunk, then waits until the
    // client has seen that chunk before sending the other 5 MiB.
    let release = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let chunk = |i: u32| Bytes::from(vec![(i % 251) as u8; 64 * 1024]);
    let expected: Vec<u8> = (0..81).flat_map(|i| chunk(i).to_vec()).collect();
    let server_release = release.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |_req| {
            let release = server_release.clone();
            async move {
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
                tokio::spawn(async move {
                    tx.send(Ok(Frame::data(chunk(0)))).await.unwrap();
                    release.notified().await;
                    for i in 1..81 {
                        tx.send(Ok(Frame::data(chunk(i)))).await.unwrap();
                    }
                });
                let body = StreamBody::new(tokio_stream_from(rx));
                Ok::<_, std::io::Error>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    });

    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let request = Request::get(format!("http://{addr}/stream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    // The first chunk arrives while the server still holds back the rest: nothing buffers it.
    while received.len() < 64 * 1024 {
        let frame = body.frame().await.unwrap().unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    release.notify_one();
    while let Some(frame) = body.frame().await {
        received.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(received.len(), 81 * 64 * 1024);
    assert!(received == expected, "the streamed body changed on its way");
}

fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> {
    futures_util_stream::poll_fn(move |cx| rx.poll_recv(cx))
}

mod futures_util_stream {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub(crate) struct PollFn<F>(F);

    pub(crate) fn poll_fn<T, F: FnMut(&mut Context<'_>) -> Poll<Option<T>>>(f: F) -> PollFn<F> {
        PollFn(f)
    }

    impl<T, F: FnMut(&mut Context<'_>) -> Poll<Option<T>> + Unpin> futures_core::Stream for PollFn<F> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            (self.0)(cx)
        }
    }
}

fn chunked_body(chunks: Vec<Bytes>) -> BoxBody<Bytes, BoxError> {
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, BoxError>(Frame::data(c)));
    BoxBody::new(StreamBody::new(iter_stream(frames)))
}

fn iter_stream<I: Iterator + Unpin>(iter: I) -> impl futures_core::Stream<Item = I::Item> {
    let mut iter = iter;
    futures_util_stream::poll_fn(move |_| std::task::Poll::Ready(iter.next()))
}

#[tokio::test(start_paused = true)]
async fn replayed_bodies_are_byte_identical_on_every_attempt() {
    let script = vec![
        Reply::error(529, "overloaded_error"),
        Reply::error(500, "api_error"),
        Reply::ok("{}"),
    ];
    // A Full body (cloned, never copied)...
    let provider = Provider::start(script.clone()).await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let (head, _, _) = send(&mut service, post(&provider)).await;
    assert_eq!(head.status(), StatusCode::OK);
    let seen = provider.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.body, BODY);
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.headers["x-api-key"], "sk-test");
    }

    // ...and a streamed, non-Clone body (buffered once, rebuilt per attempt).
    let provider = Provider::start(script).await;
    let chunks: Vec<Bytes> = (0..7u8)
        .map(|i| Bytes::from(vec![i; 1000 + i as usize]))
        .collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let request = Request::post(provider.url("/v1/messages"))
        .body(chunked_body(chunks))
        .unwrap();
    let (head, _, info) = send(&mut service, request).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(info.attempts, 3);
    for request in provider.seen() {
        assert!(request.body == whole, "attempt body differs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_replay_cap_is_sent_once() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let layer = exact().max_replay_body(1024);

    // known size (Full)
    let mut service = ServiceBuilder::new().layer(layer.clone()).service(client());
    let big = Bytes::from(vec![b'x'; 4096]);
    let request = Request::post(provider.url("/v1/messages"))
        .body(Full::new(big.clone()))
        .unwrap();
    let (head, _, info) = send(&mut service, request).await;
    assert_eq!(head.status().as_u16(), 529);
    assert_eq!(info.stop, Stop::NotReplayable);
    assert_eq!(provider.hits(), 1);

    // unknown size: read past the cap, then sent once with every byte
    let chunks: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![i; 512])).collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let mut service = ServiceBuilder::new().layer(layer).service(client());
    let request = Request::post(provider.url("/v1/messages"))
        .body(chunked_body(chunks))
        .unwrap();
    let (_, _, info) = send(&mut service, request).await;
    assert_eq!(info.stop, Stop::NotReplayable);
    let seen = provider.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].body == whole);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_respected() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let mut service = ServiceBuilder::new()
        .layer(exact().deadline(Duration::from_secs(12)))
        .service(client());
    let started = Instant::now();
    let (head, _, info) = send(&mut service, post(&provider)).await;
    // 5 s fits in 12 s; the next 10 s would end at 15 s, so it is not begun
    assert_eq!(head.status().as_u16(), 529);
    assert_eq!(info.stop, Stop::Deadline);
    assert_eq!(info.attempts, 2);
    assert_eq!(provider.hits(), 2);
    assert_eq!(started.elapsed().as_secs(), 5);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_stops_further_attempts() {
    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let call = service.ready().await.unwrap().call(post(&provider));
    // the first attempt completes, then the future is dropped during the 5 s backoff
    let result = tokio::time::timeout(Duration::from_secs(2), call).await;
    assert!(result.is_err(), "the call should still be backing off");
    assert_eq!(provider.hits(), 1);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        provider.hits(),
        1,
        "an attempt was sent after the future was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_finished_future_polled_again_answers_an_error() {
    let provider = Provider::start(vec![Reply::ok("{}")]).await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let call = service.ready().await.unwrap().call(post(&provider));
    let mut call = std::pin::pin!(call);
    let first = (&mut call).await.expect("the provider answered 200");
    assert_eq!(first.status(), StatusCode::OK);
    let again = std::future::poll_fn(|cx| Future::poll(call.as_mut(), cx)).await;
    let error = again.expect_err("a finished future has no second response");
    assert!(
        error.to_string().contains("polled after completion"),
        "{error}"
    );
    assert_eq!(provider.hits(), 1, "polling again sent nothing");
}

#[tokio::test(start_paused = true)]
async fn a_finished_attempt_keeps_its_permit_until_the_future_is_dropped() {
    let provider = Provider::start(vec![Reply::ok("{}")]).await;
    let mut service = ServiceBuilder::new()
        .layer(exact())
        .concurrency_limit(1)
        .service(client());
    let mut other = service.clone();
    let call = service.ready().await.unwrap().call(post(&provider));
    let mut call = Box::pin(call);
    let response = (&mut call).await.expect("the provider answered 200");
    assert_eq!(response.status(), StatusCode::OK);
    // The finished attempt's future, and the limit's permit in it, go with
    // the response future, as with `tower::retry`: not when it is ready.
    let held = tokio::time::timeout(Duration::from_secs(1), other.ready()).await;
    assert!(held.is_err(), "the permit was released before the drop");
    drop(call);
    let freed = tokio::time::timeout(Duration::from_secs(1), other.ready()).await;
    assert!(freed.is_ok(), "the permit was not released by the drop");
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn x_should_retry_and_per_request_control() {
    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error").header("x-should-retry", "false")
    ])
    .await;
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let (_, _, info) = send(&mut service, post(&provider)).await;
    assert_eq!(provider.hits(), 1);
    assert_eq!(info.attempts, 1);

    let provider = Provider::start(vec![
        Reply::error(400, "invalid_request_error").header("x-should-retry", "true"),
        Reply::ok("{}"),
    ])
    .await;
    let (head, _, info) = send(&mut service, post(&provider)).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(info.last_reason, Some(RetryReason::ShouldRetryHeader));

    let provider = Provider::start(vec![Reply::error(529, "overloaded_error")]).await;
    let mut once = post(&provider);
    once.extensions_mut().insert(RetryControl::disabled());
    let (_, _, info) = send(&mut service, once).await;
    assert_eq!(provider.hits(), 1);
    assert_eq!(info.stop, Stop::AttemptsExhausted);

    let mut twice = post(&provider);
    twice
        .extensions_mut()
        .insert(RetryControl::max_attempts(NonZeroU32::new(2).unwrap()));
    let (_, _, info) = send(&mut service, twice).await;
    assert_eq!(provider.hits(), 3);
    assert_eq!(info.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limits_are_opt_in_and_spend_limits_never_retried() {
    let rate = Reply::error(429, "rate_limit_error").header("retry-after", "1");
    let provider = Provider::start(vec![rate.clone(), Reply::ok("{}")]).await;
    let mut default = ServiceBuilder::new().layer(exact()).service(client());
    let (head, _, _) = send(&mut default, post(&provider)).await;
    assert_eq!(head.status().as_u16(), 429);
    assert_eq!(provider.hits(), 1);

    let provider = Provider::start(vec![rate, Reply::ok("{}")]).await;
    let mut sdk = ServiceBuilder::new()
        .layer(RetryLayer::anthropic_sdk().no_budget())
        .service(client());
    let (head, _, info) = send(&mut sdk, post(&provider)).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(info.total_delay, Duration::from_secs(1));

    let spend = Reply::status(429).header("content-type", "application/json").body(
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"m","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
    );
    let provider = Provider::start(vec![spend, Reply::ok("{}")]).await;
    let (head, _, _) = send(&mut sdk, post(&provider)).await;
    assert_eq!(head.status().as_u16(), 429);
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_sdk_preset_makes_three_attempts_with_its_schedule() {
    let provider = Provider::start(vec![Reply::status(503).body("<html>busy</html>")]).await;
    let mut sdk = ServiceBuilder::new()
        .layer(RetryLayer::anthropic_sdk().no_budget().jitter_seed(5))
        .service(client());
    let (_, _, info) = send(&mut sdk, post(&provider)).await;
    assert_eq!(info.attempts, 3);
    assert_eq!(provider.hits(), 3);
    // 0.5 s then 1 s, each up to 25 % shorter
    assert!(info.total_delay <= Duration::from_millis(1500), "{info:?}");
    assert!(info.total_delay >= Duration::from_millis(1125), "{info:?}");
}

#[tokio::test(start_paused = true)]
async fn connection_refused_is_retried_and_a_reset_post_is_not() {
    // nothing listens on this port
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let mut service = ServiceBuilder::new().layer(exact()).service(client());
    let started = Instant::now();
    let request = Request::post(format!("http://{closed}/v1/messages"))
        .body(Full::new(Bytes::from(BODY)))
        .unwrap();
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    let client_error = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .unwrap();
    assert!(client_error.is_connect());
    // five attempts: 5 + 10 + 20 + 40 s of backoff
    assert_eq!(started.elapsed().as_secs(), 75);

    // a POST whose connection is reset after it was sent: not provably unsent, not idempotent
    let provider = Provider::start(vec![Reply::Reset]).await;
    let started = Instant::now();
    let result = service.ready().await.unwrap().call(post(&provider)).await;
    assert!(result.is_err());
    assert_eq!(provider.hits(), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);

    // the same for an idempotent GET is retried
    let provider = Provider::start(vec![Reply::Reset, Reply::ok("{}")]).await;
    let get = Request::get(provider.url("/v1/models"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (head, _, info) = send(&mut service, get).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(info.last_reason, Some(RetryReason::Transport));
    assert_eq!(provider.hits(), 2);
}
