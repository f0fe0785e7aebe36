//! Hostile status pages: connection refused, a page that never answers, a
//! 10 MiB body, HTML, truncated JSON, wrong types, a 500. Each follows the
//! configured rule (stay open, close, keep the last state for a while), in
//! bounded time (the request timeout) and bounded memory (the size cap).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;

use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use status_server::{fixture, refused_base_url, Reply, StatusServer};
use tokio::time::Instant;
use tower_api_guard::gate::{
    CloseCause, FetchErrorKind, GateStatus, Jitter, PollOutcome, StatusGate, StatusGateBuilder,
    Unreadable, DEFAULT_POLL_INTERVAL,
};
use tower_api_guard::status_page::PageErrorKind;

const OPERATIONAL: &str = "github_summary_operational_2019-12-30.json";
const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";
const TIMEOUT: Duration = Duration::from_secs(5);
const CAP: u32 = 64 * 1024;

fn builder(base: String, rule: Unreadable) -> StatusGateBuilder {
    StatusGate::builder()
        .base_url(base)
        .jitter(Jitter::none())
        .request_timeout(TIMEOUT)
        .max_response_bytes(NonZeroU32::new(CAP).unwrap())
        .when_unreadable(rule)
}

fn raw(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    Reply::Raw {
        status,
        content_type,
        body: body.into(),
    }
}

type Check = fn(&FetchErrorKind) -> bool;

fn hostile_pages() -> Vec<(&'static str, Reply, Check)> {
    let major = fixture(MAJOR);
    vec![
        ("never answers", Reply::Hang, |k| {
            *k == FetchErrorKind::Timeout
        }),
        ("10 MiB streamed", Reply::Huge(10 << 20), |k| {
            *k == FetchErrorKind::TooLarge
        }),
        (
            "10 MiB declared",
            raw(200, "application/json", vec![b' '; 10 << 20]),
            |k| *k == FetchErrorKind::TooLarge,
        ),
        (
            "HTML",
            raw(
                200,
                "text/html",
                "<!doctype html><html><body>Maintenance</body></html>",
            ),
            |k| matches!(k, FetchErrorKind::Page(e) if e.kind() == PageErrorKind::Syntax),
        ),
        (
            "truncated JSON",
            raw(200, "application/json", major.slice(..major.len() / 2)),
            |k| matches!(k, FetchErrorKind::Page(e) if e.kind() == PageErrorKind::Truncated),
        ),
        (
            "wrong types",
            raw(
                200,
                "application/json",
                r#"{"status":{"indicator":["major"]},"components":"all good"}"#,
            ),
            |k| matches!(k, FetchErrorKind::Page(e) if e.kind() == PageErrorKind::Shape),
        ),
        ("500", raw(500, "text/html", "Internal Server Error"), |k| {
            *k == FetchErrorKind::Status(500)
        }),
    ]
}

/// Polls once more after switching the server to `reply`; checks the failure
/// kind and that it took no longer than the request timeout.
async fn fail_once(
    gate: &StatusGate,
    server: &StatusServer,
    reply: Reply,
    what: &str,
    check: Check,
) {
    server.set(reply);
    let t0 = Instant::now();
    let outcome = gate.poll_now().await.unwrap();
    assert!(t0.elapsed() <= TIMEOUT, "{what}: took {:?}", t0.elapsed());
    match outcome {
        PollOutcome::Failed(e) => assert!(check(e.kind()), "{what}: {e:?}"),
        other => panic!("{what}: expected a failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn close_rule_closes_on_every_hostile_page() {
    for (what, reply, check) in hostile_pages() {
        let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
        let gate = builder(server.base_url(), Unreadable::Close)
            .build()
            .unwrap();
        gate.polled().await.unwrap();
        assert!(gate.check().is_ok(), "{what}");
        fail_once(&gate, &server, reply, what, check).await;
        let closed = gate.check().expect_err(what);
        assert_eq!(closed.cause(), CloseCause::Unreadable, "{what}");
        assert!(check(closed.fetch_error().unwrap().kind()), "{what}");
        // The same page readable again (a 304 for the last good ETag): open again.
        server.set(Reply::fixture(OPERATIONAL));
        assert!(matches!(
            gate.poll_now().await.unwrap(),
            PollOutcome::NotModified
        ));
        assert!(gate.check().is_ok(), "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn stay_open_rule_opens_on_every_hostile_page() {
    for (what, reply, check) in hostile_pages() {
        let server = StatusServer::start(Reply::fixture(MAJOR)).await;
        let gate = builder(server.base_url(), Unreadable::StayOpen)
            .build()
            .unwrap();
        gate.polled().await.unwrap();
        assert!(gate.check().is_err(), "{what}");
        fail_once(&gate, &server, reply, what, check).await;
        assert!(
            gate.check().is_ok(),
            "{what}: an unreadable page must not hold requests"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn connection_refused_follows_the_rule() {
    let base = refused_base_url().await;
    for (rule, open) in [(Unreadable::StayOpen, true), (Unreadable::Close, false)] {
        let gate = builder(base.clone(), rule).build().unwrap();
        let t0 = Instant::now();
        let PollOutcome::Failed(e) = gate.polled().await.unwrap() else {
            panic!("refused must fail");
        };
        assert!(t0.elapsed() <= TIMEOUT);
        assert_eq!(*e.kind(), FetchErrorKind::Connect, "{e}");
        assert_eq!(gate.check().is_ok(), open, "{rule:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn never_answering_page_times_out_at_the_request_timeout() {
    let server = StatusServer::start(Reply::Hang).await;
    let gate = builder(server.base_url(), Unreadable::Close)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let PollOutcome::Failed(e) = gate.polled().await.unwrap() else {
        panic!("must time out");
    };
    assert_eq!(*e.kind(), FetchErrorKind::Timeout);
    assert_eq!(t0.elapsed(), TIMEOUT);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn keep_last_rule_holds_the_last_state_up_to_its_age() {
    let max_age = Duration::from_secs(120);
    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = builder(server.base_url(), Unreadable::KeepLast { max_age })
        .build()
        .unwrap();
    let mut rx = gate.subscribe();
    gate.polled().await.unwrap();
    assert!(gate.check().is_err());
    let last_read = Instant::now();
    rx.borrow_and_update();

    server.set(raw(500, "text/plain", "down"));
    // Failed polls at 30, 60, 90 and 120 s keep the last (closed) state...
    tokio::time::sleep(Duration::from_secs(100)).await;
    let closed = gate.check().unwrap_err();
    assert_eq!(closed.cause(), CloseCause::StatusPage);
    assert!(server.hits() >= 4);
    // ...and the first failed poll past the age opens the gate.
    tokio::time::timeout(Duration::from_secs(60), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(*rx.borrow(), GateStatus::Open));
    let age = last_read.elapsed();
    assert!(
        age > max_age && age <= max_age + DEFAULT_POLL_INTERVAL,
        "{age:?}"
    );
}
