//! Retry storm: does the client multiply load on an overloaded provider?
//!
//! A simulated provider (in memory) answers 200, except during the storm,
//! when it answers every request `529 overloaded_error`. Callers offer a
//! steady open-loop load (a new request every 1/RATE s, whatever happened to
//! the earlier ones). For each client setup the table reports upstream
//! attempts / caller requests during the storm, and, for the gated setups,
//! the attempts that reached the provider after the gate closed. A second
//! table runs the default at several rates, with and without its throttle,
//! against the floor of 1.2 attempts per request.
//!
//! Everything runs on tokio's paused clock, so the 300 simulated seconds
//! take about a second. Counts, not timings: the result does not depend on
//! the machine. Jitter is random, so counts move by a few from run to run.
//!
//! Run: `cargo bench --bench storm`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_api_guard::budget::RetryBudget;
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::retry::RetryLayer;

/// Caller requests per second, steady (the main table).
const RATE: u64 = 50;
/// Rates for the budgeted default, against the floor of 1.2 attempts per
/// request. The window budget alone keeps a floor of 1 retry/s whatever the
/// load, which weighs more when fewer requests arrive (1.5 attempts per
/// request at 2 req/s); the default's throttle (gRFC A6) counts failures, not
/// seconds, so it stops retries after a few failures at every rate.
const DEFAULT_RATES: [u64; 5] = [2, 5, 10, RATE, 200];
/// The most upstream attempts per caller request the default may cause in the storm.
const FLOOR: f64 = 1.2;
/// The whole run, and the storm within it.
const RUN: Duration = Duration::from_secs(300);
const STORM_START: Duration = Duration::from_secs(60);
const STORM_END: Duration = Duration::from_secs(240);

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

#[derive(Default)]
struct Counters {
    attempts_total: AtomicU64,
    attempts_in_storm: AtomicU64,
    attempts_after_close: AtomicU64,
    gate_closed: AtomicBool,
}

type Client = BoxCloneService<Request<Full<Bytes>>, Response<()>, BoxError>;

#[derive(Clone, Copy)]
enum Gate {
    None,
    /// Closed by a manual override this long after the storm starts; reopened when it ends.
    ClosesAfter(Duration),
}

struct Setup {
    name: &'static str,
    gate: Gate,
    layer: fn() -> Option<RetryLayer>,
}

fn provider(
    epoch: Instant,
    counters: Arc<Counters>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    service_fn(move |_req: Request<Full<Bytes>>| {
        let at = epoch.elapsed();
        let storm = (STORM_START..STORM_END).contains(&at);
        counters.attempts_total.fetch_add(1, Ordering::Relaxed);
        if storm {
            counters.attempts_in_storm.fetch_add(1, Ordering::Relaxed);
        }
        if counters.gate_closed.load(Ordering::Relaxed) {
            counters
                .attempts_after_close
                .fetch_add(1, Ordering::Relaxed);
        }
        async move {
            let response = if storm {
                Response::builder()
                    .status(529)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(OVERLOADED.as_bytes())))
            } else {
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(br#"{"type":"message"}"#)))
            };
            Ok::<_, Infallible>(response.unwrap())
        }
    })
}

struct Row {
    requests_in_storm: u64,
    attempts_in_storm: u64,
    attempts_total: u64,
    requests_total: u64,
    failed_in_storm: u64,
    attempts_after_close: Option<u64>,
}

fn run(setup: &Setup, rate: u64) -> Row {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let epoch = Instant::now();
        let counters = Arc::new(Counters::default());
        let gate = StatusGate::manual();
        let upstream = provider(epoch, Arc::clone(&counters));
        let layer = (setup.layer)();
        let client: Client = match (layer, setup.gate) {
            (None, _) => BoxCloneService::new(
                upstream
                    .map_response(|r| r.map(|_| ()))
                    .map_err(BoxError::from),
            ),
            (Some(retry), Gate::None) => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(retry)
                    .service(upstream)
                    .map_response(|r| r.map(|_| ())),
            ),
            (Some(retry), Gate::ClosesAfter(_)) => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(StatusGateLayer::new(gate.clone()))
                    .layer(retry)
                    .service(upstream)
                    .map_response(|r| r.map(|_| ())),
            ),
        };

        if let Gate::ClosesAfter(lag) = setup.gate {
            let gate = gate.clone();
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                tokio::time::sleep_until(epoch + STORM_START + lag).await;
                gate.force_closed("major outage: elevated errors on the API");
                counters.gate_closed.store(true, Ordering::Relaxed);
                tokio::time::sleep_until(epoch + STORM_END).await;
                counters.gate_closed.store(false, Ordering::Relaxed);
                gate.clear_override();
            });
        }

        let failed_in_storm = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let requests_total = RUN.as_secs() * rate;
        let mut requests_in_storm = 0;
        for i in 0..requests_total {
            let at = Duration::from_nanos(i * 1_000_000_000 / rate);
            tokio::time::sleep_until(epoch + at).await;
            let in_storm = (STORM_START..STORM_END).contains(&at);
            requests_in_storm += u64::from(in_storm);
            let client = client.clone();
            let failed = Arc::clone(&failed_in_storm);
            tasks.push(tokio::spawn(async move {
                let request = Request::post("https://api.anthropic.com/v1/messages")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(b"{\"max_tokens\":64}")))
                    .unwrap();
                let ok = matches!(client.oneshot(request).await, Ok(r) if r.status() == 200);
                if in_storm && !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        Row {
            requests_in_storm,
            attempts_in_storm: counters.attempts_in_storm.load(Ordering::Relaxed),
            attempts_total: counters.attempts_total.load(Ordering::Relaxed),
            requests_total,
            failed_in_storm: failed_in_storm.load(Ordering::Relaxed),
            attempts_after_close: match setup.gate {
                Gate::None => None,
                Gate::ClosesAfter(_) => Some(counters.attempts_after_close.load(Ordering::Relaxed)),
            },
        }
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing
    // and should not run this.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let setups = [
        Setup {
            name: "no retry",
            gate: Gate::None,
            layer: || None,
        },
        Setup {
            name: "naive: 5 attempts, no budget",
            gate: Gate::None,
            layer: || Some(RetryLayer::new().no_budget()),
        },
        Setup {
            name: "SDK preset without budget (= official SDKs)",
            gate: Gate::None,
            layer: || Some(RetryLayer::anthropic_sdk().no_budget()),
        },
        Setup {
            name: "RetryLayer::anthropic_sdk() (budget on)",
            gate: Gate::None,
            layer: || Some(RetryLayer::anthropic_sdk()),
        },
        Setup {
            name: "default, window budget only (no throttle)",
            gate: Gate::None,
            layer: window_only,
        },
        Setup {
            name: "RetryLayer::new() (default, budget on)",
            gate: Gate::None,
            layer: || Some(RetryLayer::new()),
        },
        Setup {
            name: "default + gate, closed at storm start",
            gate: Gate::ClosesAfter(Duration::ZERO),
            layer: || Some(RetryLayer::new()),
        },
        Setup {
            name: "default + gate, closed 30 s into storm",
            gate: Gate::ClosesAfter(Duration::from_secs(30)),
            layer: || Some(RetryLayer::new()),
        },
    ];
    println!(
        "storm: {RATE} req/s for {} s, provider answers 529 from {} s to {} s (paused clock)\n",
        RUN.as_secs(),
        STORM_START.as_secs(),
        STORM_END.as_secs()
    );
    println!("| client | caller requests in storm | upstream attempts in storm | attempts / request | failed in storm | attempts after gate closed | attempts / request, whole run |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for setup in &setups {
        let row = run(setup, RATE);
        println!(
            "| {} | {} | {} | {:.3} | {} | {} | {:.3} |",
            setup.name,
            row.requests_in_storm,
            row.attempts_in_storm,
            row.attempts_in_storm as f64 / row.requests_in_storm as f64,
            row.failed_in_storm,
            row.attempts_after_close
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
            row.attempts_total as f64 / row.requests_total as f64,
        );
    }
    println!(
        "\nRetryLayer::new() (default, budget on) by rate; floor: <= {FLOOR} attempts / request:\n"
    );
    println!("| caller requests/s | caller requests in storm | upstream attempts in storm | attempts / request | floor | window budget only: attempts / request |");
    println!("|---:|---:|---:|---:|---|---:|");
    let default = Setup {
        name: "default",
        gate: Gate::None,
        layer: || Some(RetryLayer::new()),
    };
    let without_throttle = Setup {
        name: "window budget only",
        gate: Gate::None,
        layer: window_only,
    };
    for rate in DEFAULT_RATES {
        let row = run(&default, rate);
        let ratio = row.attempts_in_storm as f64 / row.requests_in_storm as f64;
        let window = run(&without_throttle, rate);
        println!(
            "| {rate} | {} | {} | {ratio:.3} | {} | {:.3} |",
            row.requests_in_storm,
            row.attempts_in_storm,
            if ratio <= FLOOR { "met" } else { "MISSED" },
            window.attempts_in_storm as f64 / window.requests_in_storm as f64,
        );
    }
}

/// The default layer with the budget as it was before the throttle: the
/// window alone (10 % of requests + 1 retry/s over 10 s).
fn window_only() -> Option<RetryLayer> {
    Some(RetryLayer::new().budget(RetryBudget::default().without_throttle()))
}
