//! Allocations and peak memory, counted by a global allocator.
//!
//! The counting allocator is the `allocation-counter` crate's (its own
//! `#[global_allocator]` around `std::alloc::System`; this crate stays free of
//! `unsafe`). It counts the allocations of the calling thread only, so every
//! measurement here runs on a current-thread tokio runtime, server included.
//!
//! 1. Allocations per request on the happy path (200), in memory: bare,
//!    `RetryLayer`, `StatusGateLayer`, both, and `tower::retry` with a
//!    cloning policy; with a request body whose buffer is already shared and
//!    with a fresh `Vec`-backed one (as `serde_json::to_vec` gives).
//! 2. The same end to end on loopback (hyper server + hyper-util client).
//! 3. Peak memory while a 1 GiB response streams through both layers vs bare
//!    (in memory and on loopback).
//! 4. Peak memory while a 16 MiB request body is sent 5 times (4 × 529, then
//!    200): a `Full<Bytes>` body (cloned, never copied) and a streamed body
//!    (buffered once for replay).
//!
//! Run: `cargo bench --bench allocs`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use allocation_counter::{measure, AllocationInfo};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::retry::{ReplayBody, RetryInfo, RetryLayer};

#[allow(dead_code)]
mod support;

use support::{answer, request, shared_body, upstream, CloneNeverRetry, REQUEST_JSON};

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
const MIB: u64 = 1024 * 1024;
/// Requests per allocation count (after a warm-up of the same size).
const N: usize = 2_000;

/// A current-thread runtime on tokio's paused clock, so the retry layer's
/// backoff between the 529s of part 4 takes no real time.
fn paused_current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A body of `left` bytes in freshly allocated `chunk`-byte buffers, as a
/// network body arrives: each buffer is freed once the reader drops it.
struct Chunks {
    left: u64,
    chunk: u64,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(this.chunk);
        this.left -= n;
        let buf = vec![b'x'; usize::try_from(n).unwrap()];
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Reads a body to the end, dropping each frame; returns the byte count.
async fn drain<B: Body>(body: B) -> u64
where
    B::Error: Debug,
{
    let mut body = std::pin::pin!(body);
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            n += bytes::Buf::remaining(data) as u64;
        }
    }
    n
}

// ---------------------------------------------------------------- 1. in memory

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// A clone of a buffer already shared: a reference count.
    Shared,
    /// `Bytes::from(Vec)`, not yet shared (as `serde_json::to_vec` gives).
    FreshVec,
    /// Shared body, and the same headers made with `from_static` (their
    /// clones copy nothing and allocate nothing).
    StaticHeaders,
}

fn static_request(body: Bytes) -> Request<Full<Bytes>> {
    use http::header::{HeaderName, HeaderValue};
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static(support::MESSAGES_URI);
    let headers = req.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        HeaderName::from_static("x-api-key"),
        HeaderValue::from_static("sk-ant-bench-0000000000000000"),
    );
    headers.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static("2023-06-01"),
    );
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("tower-api-guard-bench/0.1"),
    );
    req
}

fn requests(kind: BodyKind, shared: &Bytes) -> Vec<Request<Full<Bytes>>> {
    (0..N)
        .map(|_| match kind {
            BodyKind::Shared => request(shared.clone()),
            BodyKind::FreshVec => request(Bytes::from(REQUEST_JSON.as_bytes().to_vec())),
            BodyKind::StaticHeaders => static_request(shared.clone()),
        })
        .collect()
}

/// Allocations of `N` calls (requests built beforehand, not counted), per call.
fn per_call<S, B>(rt: &Runtime, svc: &S, kind: BodyKind) -> (f64, f64)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let shared = shared_body();
    let mut svc = svc.clone();
    let mut run = |reqs: Vec<Request<Full<Bytes>>>| {
        rt.block_on(async {
            for req in reqs {
                let response = svc.ready().await.unwrap().call(req).await.unwrap();
                drop(std::hint::black_box(response));
            }
        });
    };
    // Warm-up: lazily initialised thread locals, tracing call sites, arc-swap slots.
    run(requests(kind, &shared));
    let reqs = requests(kind, &shared);
    let info = measure(|| run(reqs));
    (
        info.count_total as f64 / N as f64,
        info.bytes_total as f64 / N as f64,
    )
}

fn in_memory_allocations() {
    let rt = support::current_thread();
    let _guard = rt.enter();
    let gate = StatusGate::manual();
    let bare = upstream();
    let retry = ServiceBuilder::new().layer(RetryLayer::new()).service(bare);
    let gated = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .service(bare);
    let both = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(RetryLayer::new())
        .service(bare);
    let both_inner_gate = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(StatusGateLayer::new(gate.clone()))
        .service(bare);
    let tower_retry = tower::retry::Retry::new(CloneNeverRetry, bare);

    println!("## 1. Allocations per request, happy path, in memory ({N} requests)\n");
    println!("| service | allocs/req (shared body) | bytes/req (shared body) | allocs/req (fresh Vec body) | bytes/req (fresh Vec body) | allocs/req (static headers) | bytes/req (static headers) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    row(&rt, "bare `service_fn`", &bare);
    row(&rt, "`RetryLayer::new()`", &retry);
    row(&rt, "`StatusGateLayer` (open)", &gated);
    row(&rt, "both (gate outside retry)", &both);
    row(&rt, "both (retry outside gate)", &both_inner_gate);
    row(&rt, "`tower::retry` + cloning policy", &tower_retry);
    println!();
}

/// One row of table 1: `svc`'s allocations and bytes per call with each
/// kind of request body, in the order of the columns.
fn row<S, B>(rt: &Runtime, name: &str, svc: &S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let shared = per_call(rt, svc, BodyKind::Shared);
    let fresh = per_call(rt, svc, BodyKind::FreshVec);
    let stat = per_call(rt, svc, BodyKind::StaticHeaders);
    println!(
        "| {name} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} |",
        shared.0, shared.1, fresh.0, fresh.1, stat.0, stat.1
    );
}

// ---------------------------------------------------------------- 2. loopback

async fn loopback_answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let _ = drain(body).await;
    answer(Request::from_parts(parts, ())).await
}

/// A loopback server answering every request with a body of `big` bytes
/// (0: the small JSON answer).
async fn serve(big: u64) -> SocketAddr {
    support::serve(hyper::service::service_fn(
        move |req: Request<Incoming>| async move {
            if big == 0 {
                return loopback_answer(req)
                    .await
                    .map(|r| r.map(BodyExt::boxed_unsync));
            }
            let _ = drain(req.into_body()).await;
            let body = Chunks {
                left: big,
                chunk: 64 * 1024,
            };
            Ok::<_, Infallible>(Response::new(body.boxed_unsync()))
        },
    ))
    .await
}

fn loopback_allocations() {
    let rt = support::current_thread();
    let _guard = rt.enter();
    let addr = rt.block_on(serve(0));
    let uri = format!("http://{addr}/v1/messages");
    let client = support::client();
    let both = ServiceBuilder::new()
        .layer(StatusGateLayer::new(StatusGate::manual()))
        .layer(RetryLayer::new())
        .service(client.clone());
    let shared = shared_body();

    fn count<S, B>(rt: &Runtime, svc: &S, uri: &str, shared: &Bytes) -> f64
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
        S::Error: Debug,
        B: Body,
        B::Error: Debug,
    {
        let mut svc = svc.clone();
        let mut run = |n: usize| {
            rt.block_on(async {
                for _ in 0..n {
                    let mut req = request(shared.clone());
                    *req.uri_mut() = uri.parse().unwrap();
                    let response = svc.ready().await.unwrap().call(req).await.unwrap();
                    assert_eq!(response.status(), 200);
                    drain(response.into_body()).await;
                }
            });
        };
        run(N / 4);
        let info = measure(|| run(N));
        info.count_total as f64 / N as f64
    }

    let bare_allocs = count(&rt, &client, &uri, &shared);
    let both_allocs = count(&rt, &both, &uri, &shared);
    println!("## 2. Allocations per request end to end on loopback (client + server, one thread, {N} requests, request built inside the loop)\n");
    println!("| client | allocs/req |");
    println!("|---|---:|");
    println!("| bare hyper-util `Client` | {bare_allocs:.2} |");
    println!("| both layers | {both_allocs:.2} |");
    println!();
}

// ---------------------------------------------------------------- 3. 1 GiB response

fn peak_streamed_response() {
    const SIZE: u64 = 1024 * MIB;
    let rt = support::current_thread();
    let _guard = rt.enter();
    let gate = StatusGate::manual();

    let streaming = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Chunks {
            left: SIZE,
            chunk: 64 * 1024,
        }))
    });
    let mem_req = || request(Bytes::from_static(b"{}"));
    let bare_mem = peak_reading(&rt, streaming, mem_req, SIZE);
    let both_mem = peak_reading(
        &rt,
        ServiceBuilder::new()
            .layer(StatusGateLayer::new(gate.clone()))
            .layer(RetryLayer::new())
            .service(streaming),
        mem_req,
        SIZE,
    );

    // The same over loopback: hyper server streaming 1 GiB, hyper-util client.
    let addr = rt.block_on(serve(SIZE));
    let uri: http::Uri = format!("http://{addr}/v1/messages").parse().unwrap();
    let client = support::client();
    let loop_req = || {
        let mut req = request(Bytes::from_static(b"{}"));
        *req.uri_mut() = uri.clone();
        req
    };
    let bare_loop = peak_reading(&rt, client.clone(), loop_req, SIZE);
    let both_loop = peak_reading(
        &rt,
        ServiceBuilder::new()
            .layer(StatusGateLayer::new(gate.clone()))
            .layer(RetryLayer::new())
            .service(client.clone()),
        loop_req,
        SIZE,
    );

    println!("## 3. Peak memory while a 1 GiB success response streams (64 KiB chunks)\n");
    println!("| path | bare peak | both layers peak | difference | floor (≤ 1 MiB) |");
    println!("|---|---:|---:|---:|---|");
    for (name, bare, both) in [
        ("in memory", bare_mem, both_mem),
        ("loopback (hyper + hyper-util)", bare_loop, both_loop),
    ] {
        let diff = both.bytes_max as i64 - bare.bytes_max as i64;
        println!(
            "| {name} | {} B | {} B | {diff} B | {} |",
            bare.bytes_max,
            both.bytes_max,
            if diff <= MIB as i64 { "met" } else { "MISSED" }
        );
    }
    println!();
}

/// Allocations during one call of `svc` with `req()`, its response body
/// read to the end (and checked to be `size` bytes).
fn peak_reading<S, B>(
    rt: &Runtime,
    mut svc: S,
    req: impl Fn() -> Request<Full<Bytes>>,
    size: u64,
) -> AllocationInfo
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let mut got = 0;
    let info = measure(|| {
        got = rt.block_on(async {
            let response = svc.ready().await.unwrap().call(req()).await.unwrap();
            drain(response.into_body()).await
        });
    });
    assert_eq!(got, size);
    info
}

// ---------------------------------------------------------------- 4. 16 MiB request

/// A provider that reads each request body to the end (checking its length)
/// and answers 529 overloaded until the `ok_at`-th attempt.
#[derive(Clone)]
struct Provider {
    attempts: Arc<AtomicU32>,
    bytes_seen: Arc<AtomicU64>,
    ok_at: u32,
}

impl Provider {
    fn new(ok_at: u32) -> Self {
        Self {
            attempts: Arc::default(),
            bytes_seen: Arc::default(),
            ok_at,
        }
    }

    fn service<B>(
        &self,
    ) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    where
        B: Body + Send + 'static,
        B::Error: Debug,
    {
        let this = self.clone();
        service_fn(move |req: Request<B>| {
            let this = this.clone();
            async move {
                let n = this.attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let len = drain(req.into_body()).await;
                this.bytes_seen.fetch_add(len, Ordering::SeqCst);
                let response = if n >= this.ok_at {
                    Response::new(Full::new(Bytes::from_static(b"{}")))
                } else {
                    Response::builder()
                        .status(529)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(OVERLOADED.as_bytes())))
                        .unwrap()
                };
                Ok(response)
            }
        })
    }
}

fn peak_large_request() {
    const SIZE: u64 = 16 * MIB;
    println!("## 4. Peak memory while a 16 MiB request body is sent 5 times (4 × 529, then 200)\n");
    println!("| request body | client | attempts | bytes the provider read | peak during the call (above what was allocated before) |");
    println!("|---|---|---:|---:|---:|");

    // `Full<Bytes>`: allocated before the call; each attempt gets a clone.
    for (client, ok_at, retry) in [
        ("bare, 1 attempt", 1, false),
        ("`RetryLayer` (no budget), 5 attempts", 5, true),
    ] {
        let rt = paused_current_thread();
        let provider = Provider::new(ok_at);
        let body = Bytes::from(vec![b'x'; usize::try_from(SIZE).unwrap()]);
        let req = Request::post("http://provider/v1/messages")
            .body(Full::new(body))
            .unwrap();
        let info = measure(|| {
            rt.block_on(async {
                assert_eq!(send_large(&provider, req, retry).await, 200);
            });
        });
        large_row(
            "`Full<Bytes>`, 16 MiB, allocated before the call",
            client,
            &provider,
            &info,
        );
    }

    // A streamed body (`UnsyncBoxBody`, 64 KiB chunks allocated as it is read):
    // the retry layer must buffer it to replay it, and holds it once.
    for (client, ok_at, retry) in [
        ("bare, 1 attempt", 1, false),
        ("`RetryLayer` (no budget), 5 attempts", 5, true),
    ] {
        let rt = paused_current_thread();
        let provider = Provider::new(ok_at);
        let info = measure(|| {
            rt.block_on(async {
                let req = Request::post("http://provider/v1/messages")
                    .body(
                        Chunks {
                            left: SIZE,
                            chunk: 64 * 1024,
                        }
                        .boxed_unsync(),
                    )
                    .unwrap();
                assert_eq!(send_large(&provider, req, retry).await, 200);
            });
        });
        large_row(
            "streamed `UnsyncBoxBody`, 16 MiB in 64 KiB chunks",
            client,
            &provider,
            &info,
        );
    }
    println!();
}

/// Sends `req` to `provider` bare, or behind `RetryLayer` without a budget
/// (checking that it took the 5 attempts); returns the final status.
async fn send_large<B>(provider: &Provider, req: Request<B>, retry: bool) -> http::StatusCode
where
    B: ReplayBody + Send + 'static,
    B::Error: Debug,
{
    let upstream = provider.service::<B>();
    if retry {
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new().no_budget())
            .service(upstream);
        let response = svc.oneshot(req).await.unwrap();
        assert_eq!(RetryInfo::of(&response).attempts, 5);
        response.status()
    } else {
        upstream.oneshot(req).await.unwrap().status()
    }
}

/// One row of table 4: what `provider` saw and the peak of `info`.
fn large_row(body: &str, client: &str, provider: &Provider, info: &AllocationInfo) {
    println!(
        "| {body} | {client} | {} | {} MiB | {:.1} KiB |",
        provider.attempts.load(Ordering::SeqCst),
        provider.bytes_seen.load(Ordering::SeqCst) / MIB,
        info.bytes_max as f64 / 1024.0
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    in_memory_allocations();
    loopback_allocations();
    peak_streamed_response();
    peak_large_request();
}
