//! StatusGateLayer in front of a service: a closed gate never calls the inner
//! service, its error carries the incident, the 503 mode answers correctly,
//! waiting and probing, manual overrides, webhooks and observers (tracing:
//! `tests/gate_events.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use status_server::{fixture, Reply, StatusServer};
use tokio::time::Instant;
use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
use tower_api_guard::gate::{
    CloseCause, GateClosed, GateStatus, Jitter, PollError, PollOutcome, StatusGate, StatusGateLayer,
};
use tower_api_guard::status_page::Indicator;

const OPERATIONAL: &str = "github_summary_operational_2019-12-30.json";
const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";
const INSTRUCTURE: &str = "atc0005_check-statuspage/instructure-summary.json";

/// An inner service that counts its calls, answers with a settable status,
/// and records whether the request carried the gate.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    /// Requests that reached the upstream with anything in their extensions.
    saw_extensions: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
}

impl Upstream {
    fn service(
        &self,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
           + Send
           + Sync {
        let me = self.clone();
        me.status.store(200, Ordering::SeqCst);
        service_fn(move |req: Request<Full<Bytes>>| {
            me.calls.fetch_add(1, Ordering::SeqCst);
            if !req.extensions().is_empty() {
                me.saw_extensions.fetch_add(1, Ordering::SeqCst);
            }
            let status = me.status.load(Ordering::SeqCst);
            async move {
                let mut resp = Response::new(Full::new(Bytes::from_static(b"upstream")));
                *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok::<_, Infallible>(resp)
            }
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn req() -> Request<Full<Bytes>> {
    Request::new(Full::new(Bytes::from_static(b"{}")))
}

async fn polled_gate(server: &StatusServer) -> StatusGate {
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::none())
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    gate
}

#[tokio::test(start_paused = true)]
async fn closed_gate_never_calls_inner_and_the_error_carries_the_incident() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = polled_gate(&server).await;
    let upstream = Upstream::default();
    let mut svc = StatusGateLayer::new(gate.clone()).layer(upstream.service());

    // Open: forwarded as it was (the gate adds nothing to the request).
    let resp = svc.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        (
            upstream.calls(),
            upstream.saw_extensions.load(Ordering::SeqCst)
        ),
        (1, 0)
    );

    server.set(Reply::fixture(MAJOR));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let before = SystemTime::now();
    for _ in 0..50 {
        let err: BoxError = svc.ready().await.unwrap().call(req()).await.unwrap_err();
        let closed = err.downcast_ref::<GateClosed>().expect("a GateClosed");
        assert_eq!(closed.cause(), CloseCause::StatusPage);
        assert_eq!(closed.indicator(), Some(&Indicator::Major));
        assert_eq!(closed.description(), Some("Partial System Outage"));
        assert_eq!(
            closed.incidents()[0].name,
            "Incident on 2020-04-02 20:20 UTC"
        );
        assert_eq!(
            closed.incidents()[0].shortlink.as_deref(),
            Some("http://stspg.io/n0wskg2n6bvy")
        );
        assert_eq!(closed.incidents()[0].impact.as_deref(), Some("major"));
        assert!(closed.since() <= before);
    }
    assert_eq!(
        upstream.calls(),
        1,
        "a closed gate must not call the inner service"
    );

    // The error is returned at once: no time passes on the paused clock.
    let t0 = Instant::now();
    let _ = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn respond_503_mode_answers_for_the_inner_service() {
    fn assert_axum_friendly<S: Clone + Send + Sync + 'static>(_: &S) {}

    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = polled_gate(&server).await;
    let upstream = Upstream::default();
    let mut svc = StatusGateLayer::new(gate.clone())
        .respond_503()
        .retry_after(Duration::from_millis(7_500))
        .layer(upstream.service());
    assert_axum_friendly(&svc);

    let result: Result<_, Infallible> = svc.ready().await.unwrap().call(req()).await;
    let resp = result.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "8");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.extensions().get::<GateClosed>().is_some());
    assert!(resp.body().is_gate_answer());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "overloaded_error");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Incident on 2020-04-02 20:20 UTC"),
        "{message}"
    );
    assert_eq!(upstream.calls(), 0);

    // Open again: the inner answer goes through untouched.
    gate.force_open();
    let resp = svc.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.body().is_gate_answer());
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "upstream"
    );
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn wait_for_open_waits_up_to_its_bound() {
    let gate = StatusGate::manual();
    let upstream = Upstream::default();
    let svc = StatusGateLayer::new(gate.clone())
        .wait_for_open(Duration::from_secs(10))
        .layer(upstream.service());

    // The gate opens after 3 s: the request goes through then.
    gate.force_closed("deploy");
    let t0 = Instant::now();
    let call = tokio::spawn(svc.clone().oneshot(req()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(upstream.calls(), 0);
    gate.clear_override();
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!(upstream.calls(), 1);

    // It stays closed: the request fails when the bound runs out.
    gate.force_closed("deploy");
    let t0 = Instant::now();
    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert!(err.downcast_ref::<GateClosed>().is_some());
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn probing_lets_one_request_through_per_interval() {
    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::none())
        .probe_every(Duration::from_secs(60))
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    let upstream = Upstream::default();
    let mut svc = gate.layer().layer(upstream.service());
    assert!(gate.check().is_err());

    // A failing probe: one request through, the gate stays closed, the next is held.
    upstream.status.store(500, Ordering::SeqCst);
    let resp = svc.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(svc.ready().await.unwrap().call(req()).await.is_err());
    assert_eq!(upstream.calls(), 1);
    assert!(gate.check().is_err());

    // A probe interval later, a successful probe opens the gate locally.
    tokio::time::sleep(Duration::from_secs(60)).await;
    upstream.status.store(200, Ordering::SeqCst);
    assert!(svc.ready().await.unwrap().call(req()).await.is_ok());
    assert!(gate.check().is_ok());
    assert!(svc.ready().await.unwrap().call(req()).await.is_ok());
    assert_eq!(upstream.calls(), 3);

    // Unchanged page (304s) keeps it open; a changed page closes it again.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(gate.check().is_ok());
    server.set(Reply::fixture(INSTRUCTURE));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert!(gate.check().is_err());

    // A manual close is never probed.
    gate.force_closed("hands off");
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(svc.ready().await.unwrap().call(req()).await.is_err());
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn manual_override_and_observers() {
    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = polled_gate(&server).await;
    let mut rx = gate.subscribe();
    assert!(!rx.borrow_and_update().is_open());

    gate.force_open();
    assert!(gate.check().is_ok());
    assert!(rx.has_changed().unwrap() && rx.borrow_and_update().is_open());

    gate.force_closed("maintenance window, by hand");
    let closed = gate.check().unwrap_err();
    assert_eq!(closed.cause(), CloseCause::Manual);
    assert_eq!(closed.description(), Some("maintenance window, by hand"));
    assert!(
        matches!(&*rx.borrow_and_update(), GateStatus::Closed(c) if c.cause() == CloseCause::Manual)
    );

    // Polls do not undo an override.
    assert!(matches!(
        gate.poll_now().await.unwrap(),
        PollOutcome::NotModified
    ));
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::Manual);

    gate.clear_override();
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::StatusPage);
    assert!(rx.has_changed().unwrap());
    // Setting the same state twice is not a change.
    rx.borrow_and_update();
    gate.clear_override();
    assert!(!rx.has_changed().unwrap());
}

/// `incident_created.json` with a major impact and indicator, as an incident
/// that matters would be sent.
fn major_incident_webhook() -> Vec<u8> {
    let mut hook: serde_json::Value =
        serde_json::from_slice(&fixture("webhooks/incident_created.json")).unwrap();
    hook["incident"]["impact"] = "major".into();
    hook["page"]["status_indicator"] = "major".into();
    hook["page"]["status_description"] = "Partial System Outage".into();
    serde_json::to_vec(&hook).unwrap()
}

#[tokio::test(start_paused = true)]
async fn webhooks_apply_at_once_and_poll_to_confirm() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::none())
        .watch_component("Management Portal (example)")
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    assert!(gate.check().is_ok());

    // An incident on the watched component closes at once, and a poll follows.
    let status = gate.apply_webhook(&major_incident_webhook()).unwrap();
    let GateStatus::Closed(closed) = status else {
        panic!("expected closed");
    };
    assert_eq!(closed.cause(), CloseCause::Webhook);
    assert_eq!(closed.incidents()[0].name, "Database query delays");
    assert_eq!(
        closed.incidents()[0].shortlink.as_deref(),
        Some("http://stspg.io/646947c1e")
    );
    let t0 = Instant::now();
    server.wait_hits(2).await;
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "the confirming poll starts at once"
    );
    // The page has not caught up (304): the webhook's state stands.
    assert!(matches!(
        gate.poll_now().await.unwrap(),
        PollOutcome::NotModified
    ));
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::Webhook);

    // The resolving update (a real capture) opens it again.
    let status = gate
        .apply_webhook(&fixture("webhooks/incident_update.json"))
        .unwrap();
    assert!(status.is_open());

    // Garbage is an error and changes nothing.
    assert!(gate.apply_webhook(b"<html>").is_err());
    assert!(gate.check().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_changed_page_replaces_a_webhook_state() {
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = polled_gate(&server).await;
    gate.apply_webhook(&major_incident_webhook()).unwrap();
    assert!(gate.check().is_err());
    // The page changes (and says all is well): the poll wins.
    server.set(Reply::json(
        r#"{"status":{"indicator":"none","description":"All Systems Operational"},"components":[]}"#,
    ));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert!(gate.check().is_ok());
}

#[tokio::test]
async fn manual_gate_takes_webhooks_but_cannot_poll() {
    let gate = StatusGate::builder()
        .maintenance_closes(true)
        .build_manual()
        .unwrap();
    let status = gate
        .apply_webhook(&fixture("webhooks/component_status_update.json"))
        .unwrap();
    let GateStatus::Closed(closed) = status else {
        panic!("maintenance should close with the rule on");
    };
    assert_eq!(closed.indicator(), Some(&Indicator::Maintenance));
    assert_eq!(gate.poll_now().await.unwrap_err(), PollError::NoPoller);
}

#[tokio::test(start_paused = true)]
async fn probe_reopens_a_gate_closed_by_an_unreadable_page() {
    let server = StatusServer::start(Reply::Raw {
        status: 502,
        content_type: "text/html",
        body: Bytes::from_static(b"<html>bad gateway</html>"),
    })
    .await;
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .when_unreadable(tower_api_guard::gate::Unreadable::Close)
        .probe_every(Duration::from_secs(60))
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::Unreadable);
    let upstream = Upstream::default();
    let mut svc = gate.layer().layer(upstream.service());
    assert!(svc.ready().await.unwrap().call(req()).await.is_ok());
    assert!(gate.check().is_ok(), "a successful probe opens the gate");
    assert_eq!(upstream.calls(), 1);
}
