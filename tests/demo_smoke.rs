//! The main demo (`cargo run --example outage_drill`) runs to completion and
//! its figures hold: this file includes the example as a module and runs the
//! same `run` function `main` does, with and without the layers, on the same
//! schedule, checking both the returned figures and the printed output. It
//! also runs `examples/retry_and_gate.rs`, which asserts its own outcome.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

#[allow(dead_code)]
#[path = "../examples/outage_drill.rs"]
mod drill;

#[path = "../examples/retry_and_gate.rs"]
mod retry_and_gate;

use std::collections::BTreeSet;
use std::time::Duration;

use drill::{Mode, Outcome, Plan, Summary};

/// How long after the gate closes an attempt already on the wire may still
/// reach the provider, on the real clock. On the paused clock nothing moves
/// while the gate closes, so only an attempt sent in that same instant (just
/// before the webhook was applied) may arrive: 1 ms covers exactly that.
const IN_FLIGHT: Duration = Duration::from_millis(250);
const IN_FLIGHT_PAUSED: Duration = Duration::from_millis(1);

async fn drill(mode: Mode) -> (Summary, String) {
    let mut out = Vec::new();
    let summary = drill::run(mode, Plan::standard(), &mut out).await.unwrap();
    (summary, String::from_utf8(out).unwrap())
}

/// What holds for any run, with or without the layers.
fn check_common(summary: &Summary, out: &str) {
    let plan = Plan::standard();
    // Every request has exactly one outcome, and one line in the output.
    let ids: Vec<u32> = summary.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=plan.requests).collect::<Vec<_>>());
    assert_eq!(
        summary.succeeded() + summary.failed() + summary.short_circuited(),
        summary.requests()
    );
    for id in 1..=plan.requests {
        let tag = format!("  #{id} ");
        let lines = out.lines().filter(|l| l.contains(&tag)).count();
        assert_eq!(lines, 1, "request #{id} has {lines} lines in:\n{out}");
    }
    // What the client was told agrees with what the provider saw.
    let mut seen = 0;
    for r in &summary.records {
        match r.outcome {
            Outcome::ShortCircuited => {
                assert!(r.upstream.is_empty(), "#{} short-circuited but sent", r.id);
                assert_eq!(r.attempts, 0);
            }
            _ => assert_eq!(
                r.attempts as usize,
                r.upstream.len(),
                "#{}: RetryInfo says {} attempts, the provider saw {:?}",
                r.id,
                r.attempts,
                r.upstream
            ),
        }
        if let Outcome::Succeeded(_) = r.outcome {
            assert_eq!(r.upstream.last(), Some(&200));
        }
        seen += r.upstream.len() as u64;
    }
    assert_eq!(seen, summary.upstream_attempts);
    // The summary table, with its figures.
    for (name, value) in [
        ("requests", summary.requests().to_string()),
        ("succeeded", summary.succeeded().to_string()),
        ("failed", summary.failed().to_string()),
        ("short-circuited", summary.short_circuited().to_string()),
        ("upstream attempts", summary.upstream_attempts.to_string()),
        ("amplification", format!("{:.2}", summary.amplification())),
        (
            "time spent waiting",
            format!("{:.2} s", summary.waited().as_secs_f64()),
        ),
    ] {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{out}"));
        assert!(row.contains(&value), "{name}: expected {value} in {row:?}");
    }
    // The incident opened and resolved on schedule.
    assert!(summary.incident.0 >= plan.incident.0);
    assert!(summary.incident.1 >= plan.incident.1);
}

/// What the layers must achieve, compared with the bare client.
fn check_layers_beat_bare(layers: &Summary, layers_out: &str, bare: &Summary, in_flight: Duration) {
    check_common(layers, layers_out);
    let (opened, resolved) = layers.incident;

    // The gate held requests back, and only while the incident was open.
    assert!(
        layers.short_circuited() >= 10,
        "only {} short-circuited",
        layers.short_circuited()
    );
    // (`sent` is taken just before the call, so a request started a moment
    // before the webhook may be checked just after it: the same slack.)
    for r in &layers.records {
        if r.outcome == Outcome::ShortCircuited {
            assert!(
                r.sent + in_flight >= opened && r.sent <= resolved,
                "#{} short-circuited at {:?}, outside the incident {opened:?}..{resolved:?}",
                r.id,
                r.sent
            );
        }
    }
    // No attempt (first or retry) reached the provider while the gate was closed.
    for r in &layers.records {
        for at in &r.upstream_at {
            assert!(
                *at < opened + in_flight || *at >= resolved,
                "#{} reached the provider at {at:?}, inside the incident {opened:?}..{resolved:?}",
                r.id
            );
        }
    }
    // The gate's state changes were shown live.
    assert!(layers_out.contains("■ gate CLOSED by webhook, indicator major"));
    assert!(layers_out.contains("■ gate CLOSED by status page poll, indicator major"));
    assert!(layers_out.contains("■ gate OPEN"));
    assert!(layers_out.contains("GateClosed: indicator major, not sent"));
    // Retries were made, shown, and waited for.
    let retried = layers.records.iter().filter(|r| r.attempts > 1).count();
    assert!(retried >= 5, "only {retried} requests retried");
    assert!(layers.waited() > Duration::ZERO);
    assert!(layers_out.contains("529 → 200") || layers_out.contains("500 → 200"));

    // Less load on the provider, and far fewer failures handed to callers.
    assert!(
        layers.amplification() < bare.amplification(),
        "amplification {:.2} with the layers, {:.2} bare",
        layers.amplification(),
        bare.amplification()
    );
    assert!(
        layers.failed() * 4 < bare.failed(),
        "failed: {} with the layers, {} bare",
        layers.failed(),
        bare.failed()
    );
}

fn check_bare(bare: &Summary, out: &str) {
    check_common(bare, out);
    assert_eq!(bare.short_circuited(), 0);
    assert_eq!(bare.upstream_attempts, u64::from(Plan::standard().requests));
    assert_eq!(bare.waited(), Duration::ZERO);
    assert!(bare.records.iter().all(|r| r.attempts == 1));
    assert!(!out.contains("■ gate"));
    assert!(out.contains("summary: bare hyper-util client, no layers"));
    // The outage hurts the bare client: most requests sent during it fail.
    assert!(bare.failed() >= 30, "bare failed only {}", bare.failed());
}

/// Both drills on tokio's paused clock: the schedule runs in virtual time, so
/// the figures do not depend on the machine's speed.
#[tokio::test(start_paused = true)]
async fn drill_on_the_paused_clock() {
    let (layers, layers_out) = drill(Mode::Layers).await;
    let (bare, bare_out) = drill(Mode::Bare).await;
    // Shown when the test fails (or with --nocapture).
    println!("{layers_out}\n{bare_out}");
    check_bare(&bare, &bare_out);
    check_layers_beat_bare(&layers, &layers_out, &bare, IN_FLIGHT_PAUSED);
    // Retries recover the transient errors outside the incident: at least as
    // many successes as bare, which sends every request (exact on this clock;
    // on the real clock the margin of two or three requests depends on timing).
    assert!(
        layers.succeeded() >= bare.succeeded(),
        "succeeded: {} with the layers, {} bare",
        layers.succeeded(),
        bare.succeeded()
    );
    // The whole drill spans the schedule: about 15 s of (virtual) time.
    assert!(layers.elapsed >= Duration::from_secs(14) && layers.elapsed < Duration::from_secs(20));
}

/// The drill as a user runs it, on the real clock: it ends within 20 s and
/// its figures hold. (On the real clock on purpose: this is the proof that
/// `cargo run --example outage_drill` finishes in the time the README says.
/// Both modes run at once, so the test takes about 15 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_on_the_real_clock() {
    let wall = std::time::Instant::now();
    let ((layers, layers_out), (bare, bare_out)) =
        tokio::join!(drill(Mode::Layers), drill(Mode::Bare));
    let took = wall.elapsed();
    println!("{layers_out}\n{bare_out}");
    assert!(took < Duration::from_secs(20), "the drill took {took:?}");
    check_bare(&bare, &bare_out);
    check_layers_beat_bare(&layers, &layers_out, &bare, IN_FLIGHT);
    // The output is plain lines: no cursor movement or colour codes, so it
    // reads the same in a terminal and in a CI log.
    assert!(!layers_out.contains('\u{1b}') && !layers_out.contains('\r'));
    let distinct: BTreeSet<_> = layers.records.iter().map(|r| r.id).collect();
    assert_eq!(distinct.len(), layers.requests());
}

/// `examples/retry_and_gate.rs` runs to the end: its own assertions (a 529
/// retried to a 200, then a request held back by the gate without reaching
/// the server) hold. Real clock: its backoff is 50 ms.
#[test]
fn retry_and_gate_example_runs() {
    retry_and_gate::main().unwrap();
}
