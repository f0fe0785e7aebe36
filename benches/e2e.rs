//! End to end on loopback: a hyper HTTP/1 server and a hyper-util legacy
//! client, requests per second bare vs behind both layers
//! (`StatusGateLayer` outside `RetryLayer`), at concurrency 1 and 64.
//!
//! One multi-thread runtime (2 workers) runs the server and the client. Each
//! request is the POST of overhead.rs; each response (200, small JSON body)
//! is read to the end so the connection is reused. Criterion reports
//! requests per second (`thrpt`, one element per request).
//!
//! Run: `cargo bench --bench e2e -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::runtime::Runtime;
use tower::util::MapRequestLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::gate::{StatusGate, StatusGateLayer, StatusGateService};
use tower_api_guard::retry::{Retry, RetryLayer};

#[allow(dead_code)]
mod support;

use support::{request_to, shared_body};

/// The server's answer to everything: 200, the small JSON body
/// ([`support::json_ok`]).
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body, as a real server does.
    let _ = req.into_body().collect().await;
    Ok(support::json_ok())
}

/// What [`Loopback::drive`] sends requests through: a service that its tasks
/// can own, whose responses' bodies they read to the end.
trait Driven:
    Service<Request<Full<Bytes>>, Response = Response<Self::Body>, Future: Send, Error: Debug>
    + Clone
    + Send
    + 'static
{
    /// The response body.
    type Body: Body<Data: Send, Error: Debug> + Send + 'static;
}

impl<S, B> Driven for S
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Future: Send, Error: Debug>
        + Clone
        + Send
        + 'static,
    B: Body<Data: Send, Error: Debug> + Send + 'static,
{
    type Body = B;
}

/// The server on `rt`, the request's URI and body, and the two compared
/// clients: hyper-util's `Client` bare and behind both layers
/// (`StatusGateLayer` outside `RetryLayer`, the gate open).
struct Loopback {
    uri: String,
    body: Bytes,
    bare: Client<HttpConnector, Full<Bytes>>,
    both: StatusGateService<Retry<Client<HttpConnector, Full<Bytes>>>>,
}

impl Loopback {
    /// Starts the server on `rt` and builds the clients (in `rt`'s context).
    fn start(rt: &Runtime) -> Self {
        let addr = rt.block_on(support::serve(hyper::service::service_fn(answer)));
        let uri = format!("http://{addr}/v1/messages");
        let body = shared_body();
        let _guard = rt.enter();
        let bare = support::client();
        let both = ServiceBuilder::new()
            .layer(StatusGateLayer::new(StatusGate::manual()))
            .layer(RetryLayer::new())
            .service(bare.clone());
        Self {
            uri,
            body,
            bare,
            both,
        }
    }

    /// Sends `total` requests through `svc` (one of the two clients) over
    /// `concurrency` tasks and returns the elapsed time.
    async fn drive<S: Driven>(&self, svc: &S, total: u64, concurrency: u64) -> Duration {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let share = total / concurrency + u64::from(task < total % concurrency);
            if share == 0 {
                continue;
            }
            let mut svc = svc.clone();
            let uri = self.uri.clone();
            let body = self.body.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    let response = svc
                        .ready()
                        .await
                        .unwrap()
                        .call(request_to(&uri, body.clone()))
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        start.elapsed()
    }
}

fn e2e(c: &mut Criterion) {
    let rt = support::two_workers();
    let lb = Loopback::start(&rt);

    let mut group = c.benchmark_group("e2e_loopback");
    group.throughput(Throughput::Elements(1));
    for concurrency in [1_u64, 64] {
        group.bench_with_input(
            BenchmarkId::new("bare", concurrency),
            &concurrency,
            |b, &n| b.iter_custom(|iters| rt.block_on(lb.drive(&lb.bare, iters, n))),
        );
        group.bench_with_input(
            BenchmarkId::new("both_layers", concurrency),
            &concurrency,
            |b, &n| b.iter_custom(|iters| rt.block_on(lb.drive(&lb.both, iters, n))),
        );
    }
    group.finish();
}

/// Instruction-count mode, for `valgrind --tool=callgrind`: `E2E_PROFILE=bare|both_layers
/// E2E_CALLS=<n>` sends `n` sequential requests (after one warm-up request)
/// on a current-thread runtime that runs the server too, and exits. The
/// difference of the counts with `n` and with 0 requests, over `n`, is the
/// user-space cost of one request, client and server. Kernel time (the
/// loopback TCP stack) is not counted, and it is the same for both variants.
/// With `--cache-sim=yes` callgrind also counts first-level cache misses:
/// between requests the kernel and hyper evict the layers' code and data, so
/// on loopback the misses cost them about as much as their instructions
/// (BENCHMARKS.md, section 2).
fn profile(variant: &str, calls: u64) {
    let rt = support::current_thread();
    let lb = Loopback::start(&rt);
    let _guard = rt.enter();
    let elapsed = match variant {
        "bare" => rt.block_on(lb.drive(&lb.bare, calls + 1, 1)),
        "both_layers" => rt.block_on(lb.drive(&lb.both, calls + 1, 1)),
        "sizes" => {
            // Every move of a response future is a memcpy of its size; the
            // retry layer's future holds a clone of the client.
            let (mut bare, mut both) = (lb.bare.clone(), lb.both.clone());
            let req = || request_to(&lb.uri, lb.body.clone());
            eprintln!(
                "sizes (bytes): client {}, bare future {}, both_layers future {}",
                std::mem::size_of_val(&lb.bare),
                std::mem::size_of_val(&bare.call(req())),
                std::mem::size_of_val(&both.call(req())),
            );
            Duration::ZERO
        }
        other => panic!("unknown E2E_PROFILE variant {other}"),
    };
    black_box(elapsed);
}

/// Interleaved mode, for a machine whose load drifts (a shared VM):
/// `E2E_INTERLEAVED=<rounds>` alternates bare and layered runs of a fixed
/// number of requests, round after round (the order flipped each round), on a
/// multi-thread runtime (2 workers) and on a current-thread runtime (client
/// and server on one thread: no cross-thread wake-ups, which on an idle VM
/// cost more than the layers do), and prints the median requests per second
/// of each and the median of the per-round ratios.
///
/// Two knobs, to find which part of the layers a row's cost comes from:
/// - `E2E_LAYERS`: what is compared with bare. `both` (the default), `retry`,
///   `gate`, `retry_once` (the retry layer allowed one attempt, so it keeps
///   no copy of the request: the head and body a retry would resend), or
///   `spin` (no layer of ours: [`spin`] spends a set CPU time before each
///   request is sent, `E2E_SPIN` iterations).
/// - `E2E_ROWS`: which rows to run, a comma-separated list of `mt1`, `mt64`,
///   `ct1` and `ct64` (runtime and concurrency); all four by default.
#[allow(clippy::print_stdout)]
fn interleaved(rounds: usize) {
    let layers = std::env::var("E2E_LAYERS").unwrap_or_else(|_| "both".to_owned());
    let rows = std::env::var("E2E_ROWS").unwrap_or_else(|_| "mt1,mt64,ct1,ct64".to_owned());
    let rows: Vec<&str> = rows.split(',').map(str::trim).collect();
    if let Some(unknown) = rows
        .iter()
        .find(|r| !["mt1", "mt64", "ct1", "ct64"].contains(r))
    {
        panic!("unknown E2E_ROWS entry {unknown}: mt1, mt64, ct1 or ct64");
    }
    println!("| runtime | concurrency | bare req/s (median) | {layers} req/s (median) | median per-round ratio | min ratio | max ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (flavour, tag) in [("multi-thread (2 workers)", "mt"), ("current-thread", "ct")] {
        let rt = if tag == "ct" {
            support::current_thread()
        } else {
            support::two_workers()
        };
        let lb = Loopback::start(&rt);
        let _guard = rt.enter();
        for (concurrency, requests) in [(1_u64, 4_000_u64), (64, 16_000)] {
            if !rows.contains(&format!("{tag}{concurrency}").as_str()) {
                continue;
            }
            let bare = lb.bare.clone();
            let line = match layers.as_str() {
                "both" => rounds_of(&rt, &lb, &lb.both, rounds, requests, concurrency),
                "retry" => {
                    let svc = RetryLayer::new().layer(bare);
                    rounds_of(&rt, &lb, &svc, rounds, requests, concurrency)
                }
                "retry_once" => {
                    let once = RetryLayer::new().max_attempts(NonZeroU32::MIN);
                    rounds_of(&rt, &lb, &once.layer(bare), rounds, requests, concurrency)
                }
                "gate" => {
                    let svc = StatusGateLayer::new(StatusGate::manual()).layer(bare);
                    rounds_of(&rt, &lb, &svc, rounds, requests, concurrency)
                }
                "spin" => {
                    let svc = MapRequestLayer::new(spin(spin_iterations())).layer(bare);
                    rounds_of(&rt, &lb, &svc, rounds, requests, concurrency)
                }
                other => {
                    panic!("unknown E2E_LAYERS {other}: both, retry, retry_once, gate or spin")
                }
            };
            println!("| {flavour} | {concurrency} | {line} |");
        }
    }
}

/// `E2E_SPIN`, the iterations of [`spin`] (default 400).
fn spin_iterations() -> u64 {
    std::env::var("E2E_SPIN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}

/// A request map that only spends CPU time, `iterations` dependent steps,
/// for `E2E_LAYERS=spin`: how much a row loses to a delay of known length
/// before each request is sent, with no memory of its own to miss in
/// cache. Prints what the spin costs a request in memory.
#[allow(clippy::print_stderr, clippy::cast_precision_loss)]
fn spin(iterations: u64) -> impl Fn(Request<Full<Bytes>>) -> Request<Full<Bytes>> + Clone {
    let burn = move || {
        let mut x = 1_u64;
        for i in 0..iterations {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        black_box(x);
    };
    let start = Instant::now();
    for _ in 0..10_000 {
        burn();
    }
    eprintln!(
        "spin of {iterations} iterations: {:.0} ns a request in memory",
        start.elapsed().as_secs_f64() * 1e9 / 10_000.0
    );
    move |request| {
        burn();
        request
    }
}

/// `rounds` rounds of `requests` requests each, bare and through `layered`
/// in turn; the row's cells from the bare column on.
#[allow(clippy::cast_precision_loss)]
fn rounds_of<S: Driven>(
    rt: &Runtime,
    lb: &Loopback,
    layered: &S,
    rounds: usize,
    requests: u64,
    concurrency: u64,
) -> String {
    // Warm-up: connections, pools, lazily initialised state.
    rt.block_on(lb.drive(&lb.bare, requests / 4, concurrency));
    rt.block_on(lb.drive(layered, requests / 4, concurrency));
    let rps = |elapsed: Duration| requests as f64 / elapsed.as_secs_f64();
    let bare = || rps(rt.block_on(lb.drive(&lb.bare, requests, concurrency)));
    let layered = || rps(rt.block_on(lb.drive(layered, requests, concurrency)));
    let (mut bare_rps, mut layered_rps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (b, l) = if round % 2 == 0 {
            let b = bare();
            (b, layered())
        } else {
            let l = layered();
            (bare(), l)
        };
        bare_rps.push(b);
        layered_rps.push(l);
        ratios.push(l / b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (lo, hi) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    format!(
        "{:.0} | {:.0} | {:.3} | {lo:.3} | {hi:.3}",
        median(&mut bare_rps),
        median(&mut layered_rps),
        median(&mut ratios),
    )
}

criterion_group!(benches, e2e);

fn main() {
    if let Some(rounds) = std::env::var("E2E_INTERLEAVED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    if let Some((variant, calls)) = support::profile_mode("E2E_PROFILE", "E2E_CALLS", 2_000) {
        profile(&variant, calls);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
