//! Happy-path cost of the layers, in memory, and the cost of a gate check.
//!
//! `happy_path`: one POST with a small JSON `Full<Bytes>` body and a few
//! headers, answered 200 by a bare `tower::service_fn`; the same service
//! behind `RetryLayer`, `StatusGateLayer`, both, and `tower::retry::Retry`
//! with a policy that clones the request and never retries. Same request,
//! same run, one current-thread runtime; each sample loops over `iters`
//! calls inside one `block_on`.
//!
//! `gate_check`: `StatusGate::check` on an open gate, alone and while a
//! second thread checks the same gate in a loop (both cores busy).
//!
//! Run: `cargo bench --bench overhead -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::retry::RetryLayer;

const REQUEST_JSON: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#;
const RESPONSE_JSON: &str = r#"{"type":"message","content":[{"type":"text","text":"Hi"}]}"#;

/// The request every variant gets: a POST with a small JSON body (sharing
/// one buffer, as a client holding its serialized body would) and the
/// headers an API client sends.
fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("https://api.anthropic.com/v1/messages")
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-bench-0000000000000000")
        .header("anthropic-version", "2023-06-01")
        .header("user-agent", "tower-api-guard-bench/0.1")
        .body(Full::new(body.clone()))
        .unwrap()
}

/// The upstream: answers 200 with a small JSON body, touching nothing else.
async fn answer(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(RESPONSE_JSON.as_bytes())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn upstream(
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(answer)
}

/// `tower::retry` with a policy that keeps a clone of every request and never retries.
#[derive(Clone, Copy)]
struct CloneNeverRetry;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for CloneNeverRetry {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        _result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        Some(req.clone())
    }
}

fn run_calls<S, B>(rt: &tokio::runtime::Runtime, svc: &S, body: &Bytes, iters: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let req = request(body);
            let response = svc.ready().await.unwrap().call(req).await.unwrap();
            black_box(response);
        }
        start.elapsed()
    })
}

fn happy_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let body = Bytes::from(REQUEST_JSON.as_bytes().to_vec());
    // Make the buffer shared once, so every variant's `body.clone()` is a
    // reference-count increment (see allocs.rs for a fresh `Vec` body).
    drop(body.clone());
    let gate = StatusGate::manual();

    let bare = upstream();
    let retry = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(upstream());
    let gated = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .service(upstream());
    let both = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(RetryLayer::new())
        .service(upstream());
    let tower_retry = tower::retry::Retry::new(CloneNeverRetry, upstream());

    let mut group = c.benchmark_group("happy_path");
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| run_calls(&rt, &bare, &body, iters))
    });
    group.bench_function("retry_layer", |b| {
        b.iter_custom(|iters| run_calls(&rt, &retry, &body, iters))
    });
    group.bench_function("gate_layer", |b| {
        b.iter_custom(|iters| run_calls(&rt, &gated, &body, iters))
    });
    group.bench_function("both_layers", |b| {
        b.iter_custom(|iters| run_calls(&rt, &both, &body, iters))
    });
    group.bench_function("tower_retry_clone", |b| {
        b.iter_custom(|iters| run_calls(&rt, &tower_retry, &body, iters))
    });
    group.finish();
}

fn gate_check(c: &mut Criterion) {
    let gate = StatusGate::manual();
    let mut group = c.benchmark_group("gate_check");
    group.bench_function("open_single_thread", |b| {
        b.iter(|| black_box(&gate).check().is_ok())
    });
    // Reference: the cheapest possible "is it open" (one atomic load).
    let flag = AtomicBool::new(false);
    group.bench_function("atomic_bool_reference", |b| {
        b.iter(|| !black_box(&flag).load(Ordering::Acquire))
    });

    // A second thread checks the same gate as fast as it can meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let gate = gate.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut open = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    open += u64::from(black_box(&gate).check().is_ok());
                }
            }
            open
        })
    };
    group.bench_function("open_two_threads", |b| {
        b.iter(|| black_box(&gate).check().is_ok())
    });
    stop.store(true, Ordering::Relaxed);
    let checked = other.join().unwrap();
    assert!(checked > 0, "the contending thread ran");
    group.finish();
}

/// Instruction-count mode, for `valgrind --tool=callgrind` on this noisy
/// shared machine: `OVERHEAD_PROFILE=<variant> OVERHEAD_CALLS=<n>` runs `n`
/// calls of one variant and exits. Run each variant with n and with 0 calls;
/// the difference of the instruction counts over n is the cost of one call.
fn profile(variant: &str, calls: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let body = Bytes::from(REQUEST_JSON.as_bytes().to_vec());
    drop(body.clone());
    let gate = StatusGate::manual();
    // Warm-up call outside the count difference: the same in the 0-call run.
    let elapsed = match variant {
        "bare" => run_calls(&rt, &upstream(), &body, calls + 1),
        "retry_layer" => run_calls(
            &rt,
            &ServiceBuilder::new()
                .layer(RetryLayer::new())
                .service(upstream()),
            &body,
            calls + 1,
        ),
        "gate_layer" => run_calls(
            &rt,
            &ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .service(upstream()),
            &body,
            calls + 1,
        ),
        "both_layers" => run_calls(
            &rt,
            &ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .layer(RetryLayer::new())
                .service(upstream()),
            &body,
            calls + 1,
        ),
        "tower_retry_clone" => run_calls(
            &rt,
            &tower::retry::Retry::new(CloneNeverRetry, upstream()),
            &body,
            calls + 1,
        ),
        "sizes" => {
            // Sizes of the response futures: every move of one is a memcpy.
            let req = || request(&body);
            let mut retry = ServiceBuilder::new()
                .layer(RetryLayer::new())
                .service(upstream());
            let mut gated = ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .service(upstream());
            let mut both = ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .layer(RetryLayer::new())
                .service(upstream());
            let mut tower_retry = tower::retry::Retry::new(CloneNeverRetry, upstream());
            let mut bare = upstream();
            eprintln!(
                "future sizes (bytes): bare {}, retry_layer {}, gate_layer {}, both_layers {}, tower_retry_clone {}; request {}",
                std::mem::size_of_val(&bare.call(req())),
                std::mem::size_of_val(&retry.call(req())),
                std::mem::size_of_val(&gated.call(req())),
                std::mem::size_of_val(&both.call(req())),
                std::mem::size_of_val(&tower_retry.call(req())),
                std::mem::size_of::<Request<Full<Bytes>>>(),
            );
            Duration::ZERO
        }
        "atomic_bool_check" => {
            let flag = AtomicBool::new(false);
            let start = Instant::now();
            for _ in 0..calls {
                black_box(!black_box(&flag).load(Ordering::Acquire));
            }
            start.elapsed()
        }
        "gate_check" => {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(black_box(&gate).check().is_ok());
            }
            start.elapsed()
        }
        other => panic!("unknown OVERHEAD_PROFILE variant {other}"),
    };
    black_box(elapsed);
}

criterion_group!(benches, happy_path, gate_check);

fn main() {
    if let Ok(variant) = std::env::var("OVERHEAD_PROFILE") {
        let calls = std::env::var("OVERHEAD_CALLS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        profile(&variant, calls);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
