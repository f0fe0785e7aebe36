//! The poller against a loopback status server serving real captures: state
//! changes within one poll, ETag/304, one poller per gate, shutdown on drop,
//! jitter, and the builder's refusals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use status_server::{Reply, StatusServer};
use tokio::time::{timeout, Instant};
use tower::{service_fn, Layer};
use tower_api_guard::gate::{
    BuildError, CloseCause, Endpoint, GateStatus, Jitter, PollOutcome, StatusGate, StatusGateLayer,
    DEFAULT_POLL_INTERVAL,
};
use tower_api_guard::status_page::Indicator;

const OPERATIONAL: &str = "github_summary_operational_2019-12-30.json";
const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";
const INTERVAL: Duration = DEFAULT_POLL_INTERVAL;

fn gate_for(server: &StatusServer) -> StatusGate {
    StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::none())
        .build()
        .unwrap()
}

/// Waits for the next state change, failing if it takes longer than one poll.
async fn next_change(rx: &mut tokio::sync::watch::Receiver<GateStatus>) -> GateStatus {
    timeout(INTERVAL + Duration::from_millis(1), rx.changed())
        .await
        .expect("the gate should change within one poll interval")
        .unwrap();
    rx.borrow_and_update().clone()
}

#[tokio::test(start_paused = true)]
async fn closes_and_reopens_within_one_poll() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = gate_for(&server);
    let mut rx = gate.subscribe();
    assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
    assert!(gate.check().is_ok());
    assert_eq!(server.paths(), vec!["/api/v2/summary.json"]);

    // Operational -> major outage: closed at the next poll, with the incident.
    server.set(Reply::fixture(MAJOR));
    let t0 = Instant::now();
    let GateStatus::Closed(closed) = next_change(&mut rx).await else {
        panic!("expected closed");
    };
    assert!(t0.elapsed() <= INTERVAL);
    assert_eq!(closed.cause(), CloseCause::StatusPage);
    assert_eq!(closed.indicator(), Some(&Indicator::Major));
    assert_eq!(closed.description(), Some("Partial System Outage"));
    assert_eq!(closed.incidents().len(), 1);
    assert_eq!(
        closed.incidents()[0].name,
        "Incident on 2020-04-02 20:20 UTC"
    );
    assert_eq!(
        closed.incidents()[0].shortlink.as_deref(),
        Some("http://stspg.io/n0wskg2n6bvy")
    );
    let err = gate.check().unwrap_err();
    assert!(
        err.to_string().contains("http://stspg.io/n0wskg2n6bvy"),
        "{err}"
    );

    // Resolved: open again at the next poll.
    server.set(Reply::fixture(OPERATIONAL));
    let t1 = Instant::now();
    assert!(next_change(&mut rx).await.is_open());
    assert!(t1.elapsed() <= INTERVAL);
    assert!(gate.check().is_ok());
    assert_eq!(server.hits(), 3);
}

#[tokio::test(start_paused = true)]
async fn etag_is_sent_and_304_changes_nothing() {
    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = gate_for(&server);
    gate.polled().await.unwrap();
    let before = gate.check().unwrap_err();

    assert!(matches!(
        gate.poll_now().await.unwrap(),
        PollOutcome::NotModified
    ));
    let after = gate.check().unwrap_err();
    assert_eq!(after.since(), before.since());
    assert_eq!(after.incidents(), before.incidents());
    assert_eq!(server.not_modified(), 1);
    let etag = "W/\"github_summary_major_outage_2020-04-02-json\"".to_owned();
    assert_eq!(server.if_none_match(), vec![None, Some(etag.clone())]);

    // A new page (new ETag) is read in full and replaces the old state.
    server.set(Reply::fixture(OPERATIONAL));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert!(gate.check().is_ok());
    assert_eq!(server.if_none_match()[2], Some(etag));
    assert_eq!(server.not_modified(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_page_without_etag_is_fetched_without_if_none_match() {
    let body = String::from_utf8(status_server::fixture(OPERATIONAL).to_vec()).unwrap();
    let server = StatusServer::start(Reply::json(&body)).await;
    let gate = gate_for(&server);
    gate.polled().await.unwrap();
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert_eq!(server.if_none_match(), vec![None, None]);
}

#[tokio::test(start_paused = true)]
async fn one_poller_for_many_clones() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = gate_for(&server);
    gate.polled().await.unwrap();
    let clones: Vec<StatusGate> = (0..64).map(|_| gate.clone()).collect();
    let services: Vec<_> = (0..16)
        .map(|_| {
            StatusGateLayer::new(gate.clone()).layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }))
        })
        .collect();
    tokio::time::sleep(INTERVAL * 5 + Duration::from_secs(1)).await;
    // The first poll, then one per interval: not one per clone.
    assert_eq!(server.hits(), 6);
    drop((clones, services));
}

#[tokio::test(start_paused = true)]
async fn poller_stops_when_the_last_handle_drops() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = gate_for(&server);
    let mut rx = gate.subscribe();
    gate.polled().await.unwrap();

    // A service still holds a clone: polling goes on.
    let svc = gate.layer().layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    drop(gate);
    tokio::time::sleep(INTERVAL * 2 + Duration::from_secs(1)).await;
    assert_eq!(server.hits(), 3);

    // The last handle goes: the task ends at once (its state is dropped, so
    // the watch sender closes), not at its next tick.
    drop(svc);
    timeout(Duration::from_millis(1), rx.changed())
        .await
        .expect("the poller should end at once")
        .expect_err("the state should be gone");
    let hits = server.hits();
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(server.hits(), hits);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_polls_within_bounds() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::up_to_percent(50))
        .jitter_seed(7)
        .build()
        .unwrap();
    server.wait_hits(9).await;
    let times = server.times();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in &gaps {
        assert!(*gap >= INTERVAL && *gap <= INTERVAL.mul_f64(1.5), "{gap:?}");
    }
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "no jitter: {gaps:?}");
    drop(gate);
}

#[tokio::test(start_paused = true)]
async fn status_json_endpoint() {
    let server = StatusServer::start(Reply::fixture("github_status_2026-10-09.json")).await;
    let gate = StatusGate::builder()
        .base_url(format!("{}/", server.base_url()))
        .endpoint(Endpoint::Status)
        .build()
        .unwrap();
    assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
    assert!(gate.check().is_ok());
    assert_eq!(server.paths(), vec!["/api/v2/status.json"]);
}

#[tokio::test]
async fn builder_refuses_bad_settings() {
    let too_short = StatusGate::builder()
        .poll_interval(Duration::from_secs(9))
        .build()
        .unwrap_err();
    assert!(
        matches!(too_short, BuildError::PollIntervalTooShort { .. }),
        "{too_short}"
    );
    for url in ["ftp://example.com", "not a url", "http://", "http://h/?q=1"] {
        let err = StatusGate::builder().base_url(url).build().unwrap_err();
        assert!(matches!(err, BuildError::InvalidBaseUrl(_)), "{url}: {err}");
    }
    let zero = StatusGate::builder()
        .request_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(zero, BuildError::ZeroDuration("request timeout"));
}

/// A caller's own tower HTTP service fetches the page instead of the built-in
/// client (here an in-memory one, so no socket is involved at all).
#[tokio::test(start_paused = true)]
async fn fetches_with_a_callers_http_service() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let http = service_fn(move |req: Request<http_body_util::Empty<bytes::Bytes>>| {
        seen.fetch_add(1, Ordering::SeqCst);
        assert_eq!(req.uri(), "https://status.example.test/api/v2/summary.json");
        assert_eq!(req.headers()["accept"], "application/json");
        async move {
            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                status_server::fixture(MAJOR),
            )))
        }
    });
    let gate = StatusGate::builder()
        .base_url("https://status.example.test")
        .http_service(http)
        .build()
        .unwrap();
    assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
    assert_eq!(
        gate.check().unwrap_err().indicator(),
        Some(&Indicator::Major)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn handles_and_services_are_send_sync_and_clone() {
    fn assert_all<T: Send + Sync + Clone + 'static>() {}
    assert_all::<StatusGate>();
    assert_all::<tower_api_guard::gate::GateClosed>();
    assert_all::<StatusGateLayer>();
    assert_all::<
        tower_api_guard::gate::StatusGateService<
            tower::util::BoxCloneSyncService<Request<()>, Response<()>, Infallible>,
        >,
    >();
}

/// HTTPS works out of the box: the rustls client builds (no crypto-provider
/// panic) and a poll fails cleanly where nothing listens.
#[cfg(feature = "rustls")]
#[tokio::test(start_paused = true)]
async fn https_base_url_builds_with_rustls() {
    let base = status_server::refused_base_url()
        .await
        .replace("http://", "https://");
    let gate = StatusGate::builder().base_url(base).build().unwrap();
    let PollOutcome::Failed(e) = gate.polled().await.unwrap() else {
        panic!("nothing listens there");
    };
    assert_eq!(
        *e.kind(),
        tower_api_guard::gate::FetchErrorKind::Connect,
        "{e}"
    );
}

/// Without the `rustls` feature, an https page needs the caller's own client.
#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn https_without_rustls_is_a_build_error() {
    let err = StatusGate::builder().build().unwrap_err();
    assert_eq!(err, BuildError::HttpsUnavailable);
}

#[test]
fn build_outside_a_runtime_is_an_error_not_a_panic() {
    let err = StatusGate::builder()
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    // A manual gate needs no runtime, and has no poller.
    let manual = StatusGate::builder().build_manual().unwrap();
    assert!(manual.check().is_ok());
}
