//! The gate logs its state changes, once each, not every refused request.
//!
//! A test binary of its own: tracing caches each callsite's interest for the
//! whole process, so a test running beside it that reaches the gate's
//! callsites first (with no subscriber) could leave them off for this test's
//! scoped subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/log_capture.rs"]
mod log_capture;
#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_api_guard::gate::{GateClosed, StatusGate};

use log_capture::Captured;
use provider::{client, Provider, Reply};

#[tokio::test]
async fn tracing_events_on_state_changes_only() {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let provider = Provider::start(vec![Reply::ok("{}")]).await;
    let request = || {
        Request::post(provider.url("/v1/messages"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let gate = StatusGate::manual();
    let mut svc = gate.layer().layer(client::<Full<Bytes>>());
    gate.force_closed("incident");
    for _ in 0..20 {
        let error = svc
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap_err();
        assert!(error.downcast_ref::<GateClosed>().is_some(), "{error}");
    }
    gate.clear_override();
    for _ in 0..20 {
        let response = svc.ready().await.unwrap().call(request()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        provider.hits(),
        20,
        "only the requests after the gate opened"
    );

    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("status gate closed") && lines[0].contains("incident"));
    assert!(lines[1].contains("status gate open"));
}
