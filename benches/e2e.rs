//! End to end on loopback: a hyper HTTP/1 server and a hyper-util legacy
//! client, requests per second bare vs behind both layers
//! (`StatusGateLayer` outside `RetryLayer`), at concurrency 1 and 64.
//!
//! One multi-thread runtime (2 workers) runs the server and the client; with
//! `E2E_SERVER=process` the server runs in a process of its own instead
//! ([`ServerProcess`]). With `E2E_IDLE=poll` idle CPUs poll rather than
//! halt while the bench runs ([`hold_idle`]). Each request is the POST of
//! overhead.rs; each response (200, small JSON body) is read to the end so
//! the connection is reused. Criterion reports requests per second (`thrpt`, one element per
//! request).
//!
//! Run: `cargo bench --bench e2e -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::io::BufRead;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
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
use tower::util::{MapRequestLayer, MapResponseLayer};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::gate::{StatusGate, StatusGateLayer, StatusGateService};
use tower_api_guard::retry::{Retry, RetryLayer};

#[path = "support/probes.rs"]
mod probes;
#[allow(dead_code)]
mod support;

use support::{median, request_to, shared_body};

/// The server's answer to everything: 200, the small JSON body
/// ([`support::json_ok`]).
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body, as a real server does: frame by frame, not
    // with `collect`. The server stands in for a provider elsewhere; had it
    // used `Collect<Incoming>`, the bare client's `collect` of its response
    // would run code the server had just warmed, while the layered client's
    // (`Collect` of the layers' body) is code of its own.
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
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

/// The environment variable that makes this binary the server of
/// [`ServerProcess`].
const SERVE_ALONE: &str = "E2E_SERVE_ALONE";

/// The server in a process of its own (`E2E_SERVER=process`): this binary
/// again, with [`SERVE_ALONE`] set ([`serve_alone`]). The provider a client
/// talks to is elsewhere; here the client's runtime runs only the client.
/// The process is killed when this is dropped, and it exits by itself when
/// its standard input closes (this process ended).
struct ServerProcess(Child);

impl ServerProcess {
    /// Starts the process and reads the address it serves on.
    fn start() -> (Self, SocketAddr) {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = Command::new(exe)
            .env(SERVE_ALONE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server process starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the server's stdout is piped");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints its address");
        let addr = line.trim().parse().expect("an address");
        (Self(child), addr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `E2E_IDLE`: `halt` (the default) leaves the CPUs' idle states as the
/// machine has them; `poll` holds the kernel's CPU latency request (PM QoS,
/// `/dev/cpu_dma_latency`, the knob `cyclictest` and tuned's latency
/// profiles use) at 0 µs for as long as the returned file is open, so an
/// idle CPU polls instead of halting. On a VM a halt is an exit to the host,
/// which may run other work on that core before the CPU is woken: at
/// multi-thread, concurrency 1, where every step of a request wakes the
/// other CPU, that multiplies whatever a request runs (BENCHMARKS.md,
/// section 2). Needs Linux and root; the bench stops with a message
/// otherwise.
#[allow(clippy::print_stderr)]
fn hold_idle() -> Option<std::fs::File> {
    use std::io::Write;
    match std::env::var("E2E_IDLE").as_deref() {
        Err(_) | Ok("halt") => None,
        Ok("poll") => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/cpu_dma_latency")
                .expect("E2E_IDLE=poll writes /dev/cpu_dma_latency: Linux, as root");
            file.write_all(&0_i32.to_ne_bytes())
                .expect("the CPU latency request is written");
            eprintln!("E2E_IDLE=poll: CPU latency request held at 0 µs, idle CPUs poll");
            Some(file)
        }
        Ok(other) => panic!("unknown E2E_IDLE {other}: halt or poll"),
    }
}

/// The server's side of [`ServerProcess`]: serves on a current-thread
/// runtime, prints its address, and exits when its standard input closes.
#[allow(clippy::print_stdout)]
fn serve_alone() {
    let rt = support::current_thread();
    let addr = rt.block_on(support::serve(hyper::service::service_fn(answer)));
    println!("{addr}");
    // Until end of file (or an error) on stdin: the bench process is gone.
    let _ = rt.block_on(tokio::io::copy(
        &mut tokio::io::stdin(),
        &mut tokio::io::sink(),
    ));
}

/// The server (on `rt`, or in a process of its own), the request's URI and
/// body, and the two compared clients: hyper-util's `Client` bare and behind
/// both layers (`StatusGateLayer` outside `RetryLayer`, the gate open).
struct Loopback {
    uri: String,
    body: Bytes,
    bare: Client<HttpConnector, Full<Bytes>>,
    both: StatusGateService<Retry<Client<HttpConnector, Full<Bytes>>>>,
    /// The server's process, with `E2E_SERVER=process`.
    _process: Option<ServerProcess>,
}

impl Loopback {
    /// Starts the server (`E2E_SERVER`: `runtime`, the default, on `rt`; or
    /// `process`) and builds the clients (in `rt`'s context).
    fn start(rt: &Runtime) -> Self {
        let (addr, process) = match std::env::var("E2E_SERVER").as_deref() {
            Err(_) | Ok("runtime") => {
                let service = hyper::service::service_fn(answer);
                (rt.block_on(support::serve(service)), None)
            }
            Ok("process") => {
                let (process, addr) = ServerProcess::start();
                (addr, Some(process))
            }
            Ok(other) => panic!("unknown E2E_SERVER {other}: runtime or process"),
        };
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
            _process: process,
        }
    }

    /// Sends `total` requests through `svc` (one of the two clients) over
    /// `concurrency` tasks and returns the elapsed time.
    async fn drive<S: Driven>(&self, svc: &S, total: u64, concurrency: u64) -> Duration {
        self.drive_counting(svc, total, concurrency, false).await.0
    }

    /// [`drive`](Self::drive), and with `count_moves` the number of times a
    /// task was on another thread than at its previous request's start or
    /// response (two looks a request).
    async fn drive_counting<S: Driven>(
        &self,
        svc: &S,
        total: u64,
        concurrency: u64,
        count_moves: bool,
    ) -> (Duration, u64) {
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
                let mut moves = Moves::new(count_moves);
                for _ in 0..share {
                    moves.look();
                    let response = svc
                        .ready()
                        .await
                        .unwrap()
                        .call(request_to(&uri, body.clone()))
                        .await
                        .unwrap();
                    moves.look();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                }
                moves.count
            }));
        }
        let mut moves = 0;
        for task in tasks {
            moves += task.await.unwrap();
        }
        (start.elapsed(), moves)
    }
}

/// Counts the times a task is seen on another thread than at the last look.
struct Moves {
    last: Option<std::thread::ThreadId>,
    count: u64,
    on: bool,
}

impl Moves {
    fn new(on: bool) -> Self {
        Self {
            last: None,
            count: 0,
            on,
        }
    }

    fn look(&mut self) {
        if self.on {
            let here = std::thread::current().id();
            if self.last.is_some_and(|last| last != here) {
                self.count += 1;
            }
            self.last = Some(here);
        }
    }
}

/// What a run cost the runtime's scheduler (`E2E_SCHED=1`), summed over runs.
#[derive(Clone, Copy, Default)]
struct Sched {
    /// Times a worker parked (tokio's `worker_park_count`, all workers).
    parks: u64,
    /// The process's voluntary context switches (`/proc/self/task/*/status`).
    switches: u64,
    /// Thread changes of the sending tasks (see [`Moves`]).
    moves: u64,
    /// Connections the server accepted.
    accepted: u64,
    requests: u64,
}

impl Sched {
    fn add(&mut self, other: Self) {
        self.parks += other.parks;
        self.switches += other.switches;
        self.moves += other.moves;
        self.accepted += other.accepted;
        self.requests += other.requests;
    }

    /// `(parks, switches, moves)` a request.
    #[allow(clippy::cast_precision_loss)]
    fn per_request(&self) -> (f64, f64, f64) {
        let n = self.requests.max(1) as f64;
        (
            self.parks as f64 / n,
            self.switches as f64 / n,
            self.moves as f64 / n,
        )
    }
}

/// Worker parks so far, over all of `rt`'s workers.
fn parks(rt: &Runtime) -> u64 {
    let metrics = rt.metrics();
    (0..metrics.num_workers())
        .map(|w| metrics.worker_park_count(w))
        .sum()
}

/// The process's voluntary context switches so far, over its threads.
fn switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .filter_map(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("voluntary_ctxt_switches:")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
        })
        .sum()
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
/// With `E2E_SERVER=process` the server runs outside valgrind (which does
/// not follow child processes by default): the counts are the client's
/// alone.
/// With `--cache-sim=yes` callgrind also counts first-level cache misses:
/// in its simulation the client's and the server's own code evict the
/// layers' between requests. What a line of code costs in wall-clock
/// depends on the row: about 1.5 ns at current-thread, about 17 ns at
/// multi-thread, concurrency 1, with idle CPUs halting (BENCHMARKS.md,
/// section 2).
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
/// `E2E_INTERLEAVED=<rounds>` runs bare and the layered variants one after
/// another, a fixed number of requests each, round after round (each round
/// starts one variant further on, and every other round runs them in
/// reverse), on a multi-thread runtime (2 workers) and on a current-thread
/// runtime (client and server on one thread: no cross-thread wake-ups, which
/// on an idle VM cost more than the layers do). For each variant it prints
/// the median requests per second of bare and of the variant, the median of
/// the per-round ratios to bare (with their range), and, when several
/// variants run, the median per-round ratio to the first one: two variants
/// compared in one process, round by round, are not at the mercy of the
/// spread between processes.
///
/// Two knobs, to find which part of the layers a row's cost comes from:
/// - `E2E_LAYERS`: what is compared with bare, a comma-separated list of
///   variants: `both` (the default), `retry`, `retry_no_budget` (the retry
///   layer without a budget: no deposit a request), `retry_once` (the retry
///   layer allowed one attempt, so it keeps no copy of the request: the head
///   and body a retry would resend), `gate`, `spin` or `spin_after` (no
///   layer of ours: [`spin`] spends a set CPU time, `E2E_SPIN` iterations,
///   before each request is sent or after each response's head arrives),
///   `code`, `code_loop` and `lines` (no layer of ours either: what code and
///   data cost by cache line; see `support/probes.rs`), and `none` (bare
///   again: the ratio's noise).
/// - `E2E_ROWS`: which rows to run, a comma-separated list of `mt1`, `mt64`,
///   `ct1` and `ct64` (runtime and concurrency); all four by default.
///
/// And two for the measurement itself:
/// - `E2E_BLOCK=<n>`: within a round, the variants take turns `n` requests
///   at a time rather than a whole round each (400 is about 20 ms at
///   concurrency 1), so they share the machine's drift at that grain: the
///   per-round ratios then spread about four times less.
/// - `E2E_SCHED=1`: prints, for each variant, the worker parks and the
///   voluntary context switches a request, the times a sending task was on
///   another thread than at its last look (two looks a request), and the
///   connections the server accepted: what the layers might change in the
///   runtime's work besides their own. With `E2E_SERVER=process` the
///   connections are counted in the server's process, not here: 0.
///
/// And `E2E_SERVER=process` puts the server in a process of its own
/// ([`ServerProcess`]); the current-thread rows then run the client alone on
/// its thread. `E2E_IDLE=poll` keeps idle CPUs from halting ([`hold_idle`]).
#[allow(clippy::print_stdout)]
fn interleaved(rounds: usize) {
    let layers = std::env::var("E2E_LAYERS").unwrap_or_else(|_| "both".to_owned());
    let layers: Vec<&str> = layers.split(',').map(str::trim).collect();
    let rows = std::env::var("E2E_ROWS").unwrap_or_else(|_| "mt1,mt64,ct1,ct64".to_owned());
    let rows: Vec<&str> = rows.split(',').map(str::trim).collect();
    if let Some(unknown) = rows
        .iter()
        .find(|r| !["mt1", "mt64", "ct1", "ct64"].contains(r))
    {
        panic!("unknown E2E_ROWS entry {unknown}: mt1, mt64, ct1 or ct64");
    }
    let first = layers.first().copied().unwrap_or("both");
    println!("| runtime | concurrency | layers | bare req/s (median) | layered req/s (median) | median per-round ratio | min ratio | max ratio | ratio to {first} |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
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
            let mut runners = vec![runner(&rt, &lb, lb.bare.clone())];
            runners.extend(layers.iter().map(|name| variant(name, &rt, &lb)));
            let block = std::env::var("E2E_BLOCK").ok().and_then(|n| n.parse().ok());
            let (rps, sched) = rounds_of(&runners, rounds, requests, concurrency, block);
            let Some((bare, layered)) = rps.split_first() else {
                continue;
            };
            if std::env::var_os("E2E_SCHED").is_some() {
                let names = std::iter::once(&"bare").chain(layers.iter());
                for (name, cost) in names.zip(&sched) {
                    let (parks, switches, moves) = cost.per_request();
                    eprintln!(
                        "{flavour}, concurrency {concurrency}, {name}: a request {parks:.3} worker parks, {switches:.3} voluntary context switches, {moves:.3} moves of its task between threads; {} connections accepted in all",
                        cost.accepted
                    );
                }
            }
            for (name, runs) in layers.iter().zip(layered) {
                let to_bare = per_round(runs, bare);
                let to_first = per_round(runs, layered.first().unwrap_or(runs));
                println!(
                    "| {flavour} | {concurrency} | {name} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
                    median(bare),
                    median(runs),
                    median(&to_bare),
                    to_bare.iter().copied().fold(f64::INFINITY, f64::min),
                    to_bare.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    median(&to_first),
                );
            }
        }
    }
}

/// One column of an interleaved row: a run of `requests` requests over
/// `concurrency` tasks through one service; its time, and with `E2E_SCHED`
/// what it cost the scheduler.
type Runner<'a> = Box<dyn Fn(u64, u64) -> (Duration, Sched) + 'a>;

/// A [`Runner`] through `svc`.
fn runner<'a, S: Driven>(rt: &'a Runtime, lb: &'a Loopback, svc: S) -> Runner<'a> {
    let sched = std::env::var_os("E2E_SCHED").is_some();
    Box::new(move |requests, concurrency| {
        if !sched {
            let elapsed = rt.block_on(lb.drive(&svc, requests, concurrency));
            return (elapsed, Sched::default());
        }
        let (parks_before, switches_before) = (parks(rt), switches());
        let accepted_before = support::ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
        let (elapsed, moves) = rt.block_on(lb.drive_counting(&svc, requests, concurrency, true));
        let cost = Sched {
            parks: parks(rt) - parks_before,
            switches: switches() - switches_before,
            moves,
            accepted: support::ACCEPTED.load(std::sync::atomic::Ordering::Relaxed)
                - accepted_before,
            requests,
        };
        (elapsed, cost)
    })
}

/// The [`Runner`] of the `E2E_LAYERS` variant `name`.
fn variant<'a>(name: &str, rt: &'a Runtime, lb: &'a Loopback) -> Runner<'a> {
    let bare = lb.bare.clone();
    match name {
        "both" => runner(rt, lb, lb.both.clone()),
        "retry" => runner(rt, lb, RetryLayer::new().layer(bare)),
        "retry_no_budget" => runner(rt, lb, RetryLayer::new().no_budget().layer(bare)),
        "retry_once" => {
            let once = RetryLayer::new().max_attempts(NonZeroU32::MIN);
            runner(rt, lb, once.layer(bare))
        }
        "gate" => runner(
            rt,
            lb,
            StatusGateLayer::new(StatusGate::manual()).layer(bare),
        ),
        "spin" => {
            let before = spun(spin(spin_iterations()));
            runner(rt, lb, MapRequestLayer::new(before).layer(bare))
        }
        "spin_after" => {
            let after = spun(spin(spin_iterations()));
            runner(rt, lb, MapResponseLayer::new(after).layer(bare))
        }
        "none" => runner(rt, lb, bare),
        other => match probes::Probe::new(other, bare) {
            Some(probe) => runner(rt, lb, probe),
            None => panic!(
                "unknown E2E_LAYERS entry {other}: both, retry, retry_no_budget, retry_once, \
                 gate, spin, spin_after, code, code_loop, lines or none"
            ),
        },
    }
}

/// `E2E_SPIN`, the iterations of [`spin`] (default 400).
fn spin_iterations() -> u64 {
    std::env::var("E2E_SPIN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}

/// A function that only spends CPU time, `iterations` dependent steps, for
/// `E2E_LAYERS=spin` and `spin_after`: how much a row loses to a delay of
/// known length at one point of each request, with no memory of its own to
/// miss in cache. Prints what the spin costs a request in memory.
#[allow(clippy::print_stderr, clippy::cast_precision_loss)]
fn spin(iterations: u64) -> impl Fn() + Clone {
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
    burn
}

/// A map that runs `burn` and hands its value on unchanged: a request map
/// for `spin`, a response map for `spin_after`.
fn spun<T>(burn: impl Fn() + Clone) -> impl Fn(T) -> T + Clone {
    move |value| {
        burn();
        value
    }
}

/// `rounds` rounds of `requests` requests through each of `runners` (the
/// first is bare), in turn; the requests per second of each runner, round by
/// round, and what each cost the scheduler over all rounds. With `block`, a
/// round runs the runners in turn `block` requests at a time (the order
/// the same within a round), so that they share the machine's drift at that
/// finer grain; without, each runs its round's requests at once.
#[allow(clippy::cast_precision_loss)]
fn rounds_of(
    runners: &[Runner<'_>],
    rounds: usize,
    requests: u64,
    concurrency: u64,
    block: Option<u64>,
) -> (Vec<Vec<f64>>, Vec<Sched>) {
    // Warm-up: connections, pools, lazily initialised state.
    for run in runners {
        run(requests / 4, concurrency);
    }
    let n = runners.len();
    let block = block.unwrap_or(requests).clamp(1, requests.max(1));
    let mut rps = vec![Vec::with_capacity(rounds); n];
    let mut sched = vec![Sched::default(); n];
    for round in 0..rounds {
        // Each round starts one runner further on; every other round
        // goes backwards, so no runner always follows the same one.
        let order: Vec<usize> = (0..n)
            .map(|step| {
                if round % 2 == 0 {
                    (round + step) % n
                } else {
                    (round + n - step) % n
                }
            })
            .collect();
        let mut elapsed = vec![Duration::ZERO; n];
        let mut left = requests;
        while left > 0 {
            let now = block.min(left);
            for &i in &order {
                if let (Some(run), Some(time), Some(cost)) =
                    (runners.get(i), elapsed.get_mut(i), sched.get_mut(i))
                {
                    let (took, spent) = run(now, concurrency);
                    *time += took;
                    cost.add(spent);
                }
            }
            left -= now;
        }
        for (column, time) in rps.iter_mut().zip(&elapsed) {
            column.push(requests as f64 / time.as_secs_f64());
        }
    }
    (rps, sched)
}

/// The per-round ratios of `runs` to `base`.
fn per_round(runs: &[f64], base: &[f64]) -> Vec<f64> {
    runs.iter().zip(base).map(|(r, b)| r / b).collect()
}

criterion_group!(benches, e2e);

fn main() {
    if std::env::var_os(SERVE_ALONE).is_some() {
        serve_alone();
        return;
    }
    // Held until the bench ends: the kernel drops the request when the file closes.
    let _idle = hold_idle();
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
