//! The happy path in memory, with the sending task moving between two
//! threads from one request to the next, as on a multi-thread runtime.
//!
//! On loopback, at concurrency 1 on two workers, the task that sends the
//! requests runs on the other worker about once a request (the e2e bench's
//! `E2E_SCHED=1` counts it). What that task writes, on one core, the next
//! request finds in the other core's cache. Its cost is not in
//! `benches/overhead.rs`, where one thread sends every request and the
//! layers find their memory where they left it.
//!
//! Here a job (the service and a request's future) goes back and forth
//! between two threads that spin while they wait (no system call, so no
//! scheduler in the figure). A thread receives the job, polls the future to
//! its response, drops both, readies the service, calls it with a new
//! request and polls the new future once: the upstream's future is pending
//! on its first poll, as a client's is while the request is on the wire.
//! Then it hands the job to the other thread. Each request thus starts on
//! one core and ends on the other, with the service, the future and
//! whatever they point to.
//!
//! The variants are those of `overhead.rs`: bare, the retry layer, the gate
//! layer, both, and `tower::retry` with a policy that clones the request and
//! never retries. `HANDOFF_ROUNDS=<n>` (101 by default) rounds of 20,000
//! requests each, every round in another order; the table gives each
//! variant's median time a request and what it adds over bare, as a ratio
//! to what `tower::retry` adds, round by round.
//!
//! Run: `cargo bench --bench handoff`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::{black_box, spin_loop};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::Service;
use tower_api_guard::gate::StatusGate;

#[allow(dead_code)]
mod support;

use support::{json_ok, median, request, shared_body, Variants};

/// Requests a round, per variant.
const REQUESTS: u64 = 20_000;

/// A future that is pending on its first poll, then ready with `json_ok`.
struct PendingOnce {
    polled: bool,
}

impl Future for PendingOnce {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polled {
            Poll::Ready(Ok(json_ok()))
        } else {
            self.polled = true;
            Poll::Pending
        }
    }
}

/// The upstream: answers every request with a [`PendingOnce`].
#[derive(Clone, Copy)]
struct Upstream;

impl Service<Request<Full<Bytes>>> for Upstream {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = PendingOnce;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> PendingOnce {
        black_box(request);
        PendingOnce { polled: false }
    }
}

/// A one-job mailbox between the two threads: the sender sets `full` after
/// the job is in; the receiver spins on `full` (a read, so the line is not
/// fought over while it waits) and takes the job.
struct Mailbox<J> {
    full: AtomicBool,
    job: Mutex<Option<J>>,
}

impl<J> Mailbox<J> {
    fn new() -> Self {
        Self {
            full: AtomicBool::new(false),
            job: Mutex::new(None),
        }
    }

    fn put(&self, job: J) {
        *self.job.lock().unwrap() = Some(job);
        self.full.store(true, Ordering::Release);
    }

    fn take(&self) -> J {
        loop {
            if self.full.load(Ordering::Acquire) {
                self.full.store(false, Ordering::Relaxed);
                return self.job.lock().unwrap().take().unwrap();
            }
            spin_loop();
        }
    }
}

/// What a thread does with a job: finishes its request, starts the next.
fn step<S>(
    cx: &mut Context<'_>,
    body: &Bytes,
    (mut svc, mut future): (S, Pin<Box<S::Future>>),
) -> (S, Pin<Box<S::Future>>)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    match future.as_mut().poll(cx) {
        Poll::Ready(response) => drop(black_box(response.unwrap())),
        Poll::Pending => panic!("the upstream is ready on its second poll"),
    }
    drop(future);
    assert!(svc.poll_ready(cx).is_ready());
    let mut future = Box::pin(svc.call(request(body.clone())));
    assert!(future.as_mut().poll(cx).is_pending());
    (svc, future)
}

/// `REQUESTS` requests through `svc`, each started on one thread and
/// finished on the other; nanoseconds a request.
#[allow(clippy::cast_precision_loss)]
fn run<S>(svc: &S, body: &Bytes) -> f64
where
    S: Service<Request<Full<Bytes>>> + Clone + Send,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let (to_b, to_a) = (Mailbox::new(), Mailbox::new());
    let mut cx = Context::from_waker(Waker::noop());
    let mut svc = svc.clone();
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut first = Box::pin(svc.call(request(body.clone())));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let half = REQUESTS / 2;
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..half {
                let job = to_b.take();
                to_a.put(step(&mut cx, body, job));
            }
        });
        let mut job = (svc, first);
        for _ in 0..half {
            to_b.put(job);
            job = step(&mut cx, body, to_a.take());
        }
        drop(job);
    });
    start.elapsed().as_secs_f64() * 1e9 / REQUESTS as f64
}

#[allow(clippy::print_stdout)]
fn main() {
    let rounds: usize = std::env::var("HANDOFF_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(101);
    let body = shared_body();
    let gate = StatusGate::manual();
    let v = Variants::new(Upstream, &gate);
    let names = [
        "bare",
        "retry layer",
        "gate layer",
        "both layers",
        "`tower::retry`",
    ];
    let variant = |which: usize| match which {
        0 => run(&v.bare, &body),
        1 => run(&v.retry_layer, &body),
        2 => run(&v.gate_layer, &body),
        3 => run(&v.both_layers, &body),
        _ => run(&v.tower_retry_clone, &body),
    };
    for which in 0..names.len() {
        variant(which); // warm-up
    }
    let mut times = vec![Vec::with_capacity(rounds); names.len()];
    for round in 0..rounds {
        for step in 0..names.len() {
            // Each round starts one variant further on; every other round
            // goes backwards.
            let which = if round % 2 == 0 {
                (round + step) % names.len()
            } else {
                (round + names.len() - step) % names.len()
            };
            if let Some(column) = times.get_mut(which) {
                column.push(variant(which));
            }
        }
    }
    let (Some(bare), Some(tower)) = (times.first(), times.last()) else {
        return;
    };
    let over = |runs: &[f64], base: &[f64]| -> Vec<f64> {
        runs.iter().zip(base).map(|(r, b)| r - b).collect()
    };
    let tower_over = over(tower, bare);
    println!("| variant | median ns a request, {rounds} rounds | added ns (median per round) | added ÷ `tower::retry`'s (median per round) |");
    println!("|---|---:|---:|---:|");
    for (name, runs) in names.iter().zip(&times) {
        let added = over(runs, bare);
        let ratio: Vec<f64> = added.iter().zip(&tower_over).map(|(a, t)| a / t).collect();
        println!(
            "| {name} | {:.1} | {:.1} | {:.3} |",
            median(runs),
            median(&added),
            median(&ratio),
        );
    }
}
