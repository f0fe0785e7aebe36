//! The layers add no allocation to a request answered at once, once the
//! thread has sent one, and do not copy a `Full<Bytes>` body: counted with a
//! counting global allocator, against the bare service in the same test.
//! (`benches/allocs.rs` reports the figures; this keeps them from slipping.)
//!
//! The counter counts the calling thread only, so everything runs on a
//! current-thread runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::fmt::Debug;

use allocation_counter::measure;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::retry::RetryLayer;

const REQUESTS: usize = 50;

/// The provider's answer to everything: 200 with a JSON body and a header.
async fn answer(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A POST of a body the size of a small API request (shared, so a clone is
/// a reference count) with the headers an API client sends, made from strings.
fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("https://api.anthropic.com/v1/messages")
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-test-0000000000000000")
        .header("anthropic-version", "2023-06-01")
        .header("user-agent", "tower-api-guard-test/0.1")
        .body(Full::new(body.clone()))
        .unwrap()
}

/// Allocations and bytes allocated by `REQUESTS` calls of `svc`, after as
/// many calls to warm up the thread (requests built before counting).
fn allocations<S, B>(svc: S) -> (u64, u64)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = Bytes::from(vec![b'x'; 4096]);
    drop(body.clone()); // shared from here on
    let mut svc = svc;
    let mut run = |requests: Vec<Request<Full<Bytes>>>| {
        rt.block_on(async {
            for request in requests {
                let response = svc.ready().await.unwrap().call(request).await.unwrap();
                drop(response);
            }
        });
    };
    run((0..REQUESTS).map(|_| request(&body)).collect());
    let requests = (0..REQUESTS).map(|_| request(&body)).collect();
    let info = measure(|| run(requests));
    (info.count_total, info.bytes_total)
}

#[test]
fn the_layers_add_no_allocation_and_copy_no_body() {
    let bare = service_fn(answer);
    let gate = StatusGate::manual();
    let (bare_count, bare_bytes) = allocations(bare);
    assert!(bare_count > 0, "the counter counts this thread");

    let (retry, gated) = (RetryLayer::new(), StatusGateLayer::new(gate));
    for (name, counted) in [
        ("retry", allocations(retry.layer(bare))),
        ("gate", allocations(gated.layer(bare))),
        (
            "gate outside retry",
            allocations(gated.layer(retry.layer(bare))),
        ),
        (
            "retry outside gate",
            allocations(retry.layer(gated.layer(bare))),
        ),
    ] {
        assert_eq!(
            counted,
            (bare_count, bare_bytes),
            "{name}: (allocations, bytes) against bare for {REQUESTS} requests"
        );
    }
}
