//! Happy-path cost of the layers, in memory, and the cost of a gate check.
//!
//! `happy_path`: one POST with a small JSON `Full<Bytes>` body and a few
//! headers, answered 200 by a bare `tower::service_fn`; the same service
//! behind `RetryLayer`, `StatusGateLayer`, both, and `tower::retry::Retry`
//! with a policy that clones the request and never retries. Same request,
//! same run, one current-thread runtime; each sample loops over `iters`
//! calls inside one `block_on`.
//!
//! `shared_stack`: both layers (and bare) on one core while the other core
//! sends requests through a clone of the same stack.
//!
//! `gate_check`: `StatusGate::check` on an open gate, alone, while a second
//! thread checks the same gate in a loop, while a second thread clones,
//! checks and drops handles of it, and while a second thread sends requests
//! through both layers on it (both cores busy).
//!
//! `budget_deposit`: the default budget's deposit, alone and while the
//! second core deposits in the same budget.
//!
//! Run: `cargo bench --bench overhead -- --warm-up-time 1 --measurement-time 3`
//!
//! Floor 1 in wall-clock, steadier on a shared machine than criterion's
//! groups run one after the other: `OVERHEAD_INTERLEAVED=1001 cargo bench
//! --bench overhead` (rounds of the variants in turn; see `interleaved`),
//! and with `OVERHEAD_PROCESSES=<n>` in `n` processes, the median over them
//! (see `passes`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::fmt::Debug;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::budget::RetryBudget;
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::retry::RetryLayer;

#[allow(dead_code)]
mod support;

use support::{request, shared_body, upstream, Variants};

/// Runs `iters` calls of `svc` one after the other, each with a new request
/// sharing `body`, and returns the elapsed time.
fn run_calls<S, B>(rt: &tokio::runtime::Runtime, svc: &S, body: &Bytes, iters: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let req = request(body.clone());
            let response = svc.ready().await.unwrap().call(req).await.unwrap();
            black_box(response);
        }
        start.elapsed()
    })
}

/// Adds to `group` a bench of calls of `svc`, timed with [`run_calls`].
fn bench_calls<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    svc: &S,
    body: &Bytes,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| run_calls(rt, svc, body, iters))
    });
}

fn happy_path(c: &mut Criterion) {
    let rt = support::current_thread();
    let _guard = rt.enter();
    // Every variant's `body.clone()` is a reference-count increment (see
    // allocs.rs for a fresh `Vec` body).
    let body = shared_body();
    let gate = StatusGate::manual();
    let v = Variants::new(upstream(), &gate);

    let mut group = c.benchmark_group("happy_path");
    bench_calls(&mut group, "bare", &rt, &v.bare, &body);
    bench_calls(&mut group, "retry_layer", &rt, &v.retry_layer, &body);
    bench_calls(&mut group, "gate_layer", &rt, &v.gate_layer, &body);
    bench_calls(&mut group, "both_layers", &rt, &v.both_layers, &body);
    bench_calls(
        &mut group,
        "tower_retry_clone",
        &rt,
        &v.tower_retry_clone,
        &body,
    );
    group.finish();

    // Both layers on one core while the other core sends requests through a
    // clone of the same stack (same gate, same retry settings and budget),
    // as the workers of a multi-thread server do.
    let mut group = c.benchmark_group("shared_stack");
    bench_calls(&mut group, "both_layers_alone", &rt, &v.both_layers, &body);
    let other = Contender::serving(v.both_layers.clone());
    let name = "both_layers_beside_a_busy_core";
    bench_calls(&mut group, name, &rt, &v.both_layers, &body);
    other.stop();
    let other = Contender::serving(v.bare);
    bench_calls(&mut group, "bare_beside_a_busy_core", &rt, &v.bare, &body);
    other.stop();
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
    let other = Contender::start({
        let gate = gate.clone();
        move || move || gate.check().is_ok()
    });
    group.bench_function("open_two_threads", |b| {
        b.iter(|| black_box(&gate).check().is_ok())
    });
    other.stop();

    // A second thread writes the handle's reference counts: clones it
    // twice, checks it and drops the clones in a loop (what a request
    // through both layers did before `scope` named the gate weakly; service
    // clones still do it).
    let other = Contender::start({
        let gate = gate.clone();
        move || {
            move || {
                let named = black_box(gate.clone());
                let kept = black_box(named.clone());
                kept.check().is_ok()
            }
        }
    });
    group.bench_function("open_two_threads_cloning", |b| {
        b.iter(|| black_box(&gate).check().is_ok())
    });
    other.stop();

    // A second thread sends requests through both layers on the gate.
    let other = Contender::serving(
        ServiceBuilder::new()
            .layer(StatusGateLayer::new(gate.clone()))
            .layer(RetryLayer::new())
            .service(upstream()),
    );
    group.bench_function("open_two_threads_serving", |b| {
        b.iter(|| black_box(&gate).check().is_ok())
    });
    other.stop();
    group.finish();
}

/// The default budget's deposit (every request makes one), alone and while
/// the second core deposits in the same budget in a loop, as the workers of
/// a multi-thread server do.
fn budget_deposit(c: &mut Criterion) {
    let budget = RetryBudget::default();
    let mut group = c.benchmark_group("budget_deposit");
    group.bench_function("one_thread", |b| b.iter(|| black_box(&budget).deposit()));
    let other = Contender::start({
        let budget = budget.clone();
        move || move || budget.deposit()
    });
    group.bench_function("two_threads", |b| b.iter(|| black_box(&budget).deposit()));
    other.stop();
    group.finish();
}

/// A thread running, in a loop, the work `make` builds on it, for the
/// contended benches.
struct Contender {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Contender {
    /// Starts the thread and returns once it is looping, so the bench that
    /// follows runs against it.
    fn start<M, W, R>(make: M) -> Self
    where
        M: FnOnce() -> W + Send + 'static,
        W: FnMut() -> R,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (looping, started) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut work = make();
                let mut first = Some(looping);
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        black_box(work());
                    }
                    if let Some(looping) = first.take() {
                        let _ = looping.send(());
                    }
                }
            })
        };
        started.recv().unwrap();
        Self { stop, thread }
    }

    /// A thread sending requests through `svc`, one after the other, on a
    /// current-thread runtime of its own ([`run_calls`], 64 at a time).
    fn serving<S, B>(svc: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
        S::Error: Debug,
    {
        Self::start(move || {
            let rt = support::current_thread();
            let body = shared_body();
            move || run_calls(&rt, &svc, &body, 64)
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// Instruction-count mode, for `valgrind --tool=callgrind` on this noisy
/// shared machine: `OVERHEAD_PROFILE=<variant> OVERHEAD_CALLS=<n>` runs `n`
/// calls of one variant and exits. Run each variant with n and with 0 calls;
/// the difference of the instruction counts over n is the cost of one call.
fn profile(variant: &str, calls: u64) {
    let rt = support::current_thread();
    let _guard = rt.enter();
    let body = shared_body();
    let gate = StatusGate::manual();
    let mut v = Variants::new(upstream(), &gate);
    // Warm-up call outside the count difference: the same in the 0-call run.
    let elapsed = match variant {
        "bare" => run_calls(&rt, &v.bare, &body, calls + 1),
        "retry_layer" => run_calls(&rt, &v.retry_layer, &body, calls + 1),
        "gate_layer" => run_calls(&rt, &v.gate_layer, &body, calls + 1),
        "both_layers" => run_calls(&rt, &v.both_layers, &body, calls + 1),
        "tower_retry_clone" => run_calls(&rt, &v.tower_retry_clone, &body, calls + 1),
        "sizes" => {
            // Sizes of the response futures: every move of one is a memcpy.
            let req = || request(body.clone());
            eprintln!(
                "future sizes (bytes): bare {}, retry_layer {}, gate_layer {}, both_layers {}, tower_retry_clone {}; request {}",
                std::mem::size_of_val(&v.bare.call(req())),
                std::mem::size_of_val(&v.retry_layer.call(req())),
                std::mem::size_of_val(&v.gate_layer.call(req())),
                std::mem::size_of_val(&v.both_layers.call(req())),
                std::mem::size_of_val(&v.tower_retry_clone.call(req())),
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

/// Interleaved mode, for floor 1 in wall-clock on a machine whose load
/// drifts: `OVERHEAD_INTERLEAVED=<rounds>` runs `bare`, `both_layers`,
/// `retry_layer` and `tower_retry_clone` for 20,000 calls each, round after
/// round, in an order that changes every round (every order in turn), and
/// prints the median time a call of each, and the median, quartiles and
/// extremes of the per-round ratio of what a variant adds over bare to what
/// `tower::retry` adds over bare in the same round.
#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
fn interleaved(rounds: usize) {
    const CALLS: u64 = 20_000;
    let rt = support::current_thread();
    let _guard = rt.enter();
    let body = shared_body();
    let gate = StatusGate::manual();
    let v = Variants::new(upstream(), &gate);
    // Index: 0 bare, 1 both layers, 2 retry layer, 3 tower::retry.
    let run = |which: usize| -> f64 {
        let elapsed = match which {
            0 => run_calls(&rt, &v.bare, &body, CALLS),
            1 => run_calls(&rt, &v.both_layers, &body, CALLS),
            2 => run_calls(&rt, &v.retry_layer, &body, CALLS),
            _ => run_calls(&rt, &v.tower_retry_clone, &body, CALLS),
        };
        elapsed.as_secs_f64() * 1e9 / CALLS as f64
    };
    for which in 0..4 {
        run(which); // warm-up
    }
    let orders = permutations();
    let mut times: [Vec<f64>; 4] = Default::default();
    let (mut both, mut retry) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut ns = [0.0; 4];
        let order = orders
            .get(round % orders.len())
            .copied()
            .unwrap_or([0, 1, 2, 3]);
        for which in order {
            if let Some(slot) = ns.get_mut(which) {
                *slot = run(which);
            }
        }
        for (all, t) in times.iter_mut().zip(ns) {
            all.push(t);
        }
        let [bare, b, r, tower] = ns;
        both.push((b - bare) / (tower - bare));
        retry.push((r - bare) / (tower - bare));
    }
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        let at = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
        v.get(at).copied().unwrap_or(f64::NAN)
    };
    if std::env::var_os("OVERHEAD_MEDIANS").is_some() {
        // For `passes`: bare's median time, and the two ratios' medians.
        let bare = quantile(&mut times[0], 0.5);
        let (b, r) = (quantile(&mut both, 0.5), quantile(&mut retry, 0.5));
        println!("medians {bare} {b} {r}");
    }
    let names = ["bare", "both layers", "retry layer", "`tower::retry`"];
    println!("| variant | median ns a call over {rounds} rounds |");
    println!("|---|---:|");
    for (name, all) in names.iter().zip(times.iter_mut()) {
        println!("| {name} | {:.1} |", quantile(all, 0.5));
    }
    println!();
    println!("| added ÷ `tower::retry`'s added, per round | median | lower quartile | upper quartile | min | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ratios) in [("both layers", &mut both), ("retry layer", &mut retry)] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            quantile(ratios, 0.5),
            quantile(ratios, 0.25),
            quantile(ratios, 0.75),
            quantile(ratios, 0.0),
            quantile(ratios, 1.0),
        );
    }
}

/// Every order of the four variants, so that none always runs first or
/// after the same one.
fn permutations() -> Vec<[usize; 4]> {
    let mut all = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let order = [a, b, c, d];
                    if (0..4).all(|x| order.contains(&x)) {
                        all.push(order);
                    }
                }
            }
        }
    }
    all
}

/// Several processes of [`interleaved`], for floor 1 in wall-clock:
/// `OVERHEAD_PROCESSES=<n>` (with `OVERHEAD_INTERLEAVED=<rounds>`) runs the
/// interleaved mode in `n` processes of this binary, one after another, and
/// prints each one's medians and the median over the processes. Within a
/// process the per-round ratios sit close together, but from one process to
/// the next their median moves by more than that (BENCHMARKS.md and
/// benches/JOURNAL.md, section 1), so one process is one sample.
#[allow(clippy::print_stdout)]
fn passes(processes: usize) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    println!("| process | bare ns a call | both layers ÷ `tower::retry` | retry layer ÷ `tower::retry` |");
    println!("|---:|---:|---:|---:|");
    let (mut both, mut retry) = (Vec::new(), Vec::new());
    for pass in 1..=processes {
        let out = std::process::Command::new(&exe)
            .env_remove("OVERHEAD_PROCESSES")
            .env("OVERHEAD_MEDIANS", "1")
            .output()
            .expect("a pass of the interleaved mode");
        assert!(
            out.status.success(),
            "pass {pass} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let medians: Vec<f64> = text
            .lines()
            .find_map(|line| line.strip_prefix("medians "))
            .expect("the pass's medians line")
            .split(' ')
            .map(|n| n.parse().expect("a median"))
            .collect();
        let [bare, b, r] = medians[..] else {
            panic!("three medians, not {medians:?}");
        };
        println!("| {pass} | {bare:.1} | {b:.3} | {r:.3} |");
        both.push(b);
        retry.push(r);
    }
    println!(
        "| median of the processes | | **{:.3}** | {:.3} |",
        support::median(&both),
        support::median(&retry)
    );
}

criterion_group!(benches, happy_path, gate_check, budget_deposit);

fn main() {
    if let Some(rounds) = std::env::var("OVERHEAD_INTERLEAVED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        match std::env::var("OVERHEAD_PROCESSES")
            .ok()
            .and_then(|n| n.parse().ok())
        {
            Some(processes) => passes(processes),
            None => interleaved(rounds),
        }
        return;
    }
    if let Some((variant, calls)) =
        support::profile_mode("OVERHEAD_PROFILE", "OVERHEAD_CALLS", 10_000)
    {
        profile(&variant, calls);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
