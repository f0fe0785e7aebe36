//! An axum backend end to end, on loopback: a handler that calls the
//! provider through a layered client kept in state, the Statuspage webhook
//! route feeding the gate, and the gate as a server-side 503 layer.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::integration::axum::StatuspageWebhook;
use tower_api_guard::retry::{Retry, RetryInfo, RetryLayer};

use provider::{Provider, Reply};

const SECRET: &str = "hook-7d1f0c9a2b6e4d38";
const BODY: &str = r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;

/// The upstream client in the backend's state: retry around hyper-util,
/// forwarding axum's own request body.
type Upstream = Retry<Client<HttpConnector, Body>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    provider: Uri,
}

/// `POST /v1/messages`: forwards the caller's request to the provider.
async fn proxy(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (mut parts, body) = request.into_parts();
    parts.uri = state.provider.clone();
    let upstream = state.upstream.clone();
    match upstream.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let attempts = RetryInfo::of(&response).attempts;
            let mut response = response.map(Body::new);
            response
                .headers_mut()
                .insert("x-upstream-attempts", attempts.into());
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// The backend: the proxied route behind the gate's 503 layer, the webhook
/// route beside it (never behind the gate).
fn app(provider: &Provider, gate: &StatusGate) -> Router {
    let upstream = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::provider_recipe().jitter(Jitter::None))
                .no_budget(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let state = AppState {
        upstream,
        provider: provider.url("/v1/messages").parse().unwrap(),
    };
    Router::new()
        .route("/v1/messages", post(proxy))
        .with_state(state)
        .layer(StatusGateLayer::new(gate.clone()).respond_503())
        .nest(
            "/hooks/statuspage",
            StatuspageWebhook::new(gate.clone(), SECRET).router(),
        )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Posts `body` to the backend, returns the status, headers and body.
async fn post_to(addr: SocketAddr, path: &str, body: impl Into<Bytes>) -> (Response<()>, Bytes) {
    let mut client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        Response::from_parts(parts, ()),
        body.collect().await.unwrap().to_bytes(),
    )
}

/// A real Statuspage webhook fixture, with its page indicator and incident
/// impact set to `level` (the fixtures' own are `none`).
fn webhook(name: &str, level: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/statuspage/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut hook: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    hook["page"]["status_indicator"] = level.into();
    hook["incident"]["impact"] = level.into();
    serde_json::to_vec(&hook).unwrap()
}

#[tokio::test(start_paused = true)]
async fn handler_calls_the_provider_through_the_layered_client() {
    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error"),
        Reply::ok(r#"{"type":"message","id":"msg_1"}"#),
    ])
    .await;
    let addr = serve(app(&provider, &StatusGate::manual())).await;

    let (head, body) = post_to(addr, "/v1/messages", BODY).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(body, r#"{"type":"message","id":"msg_1"}"#);
    assert_eq!(head.headers()["x-upstream-attempts"], "2");
    // axum's request body was replayed whole to the provider.
    let seen = provider.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|attempt| attempt.body == BODY));
}

#[tokio::test(start_paused = true)]
async fn webhook_closes_the_gate_and_the_backend_answers_503() {
    let provider = Provider::start(vec![Reply::ok(r#"{"type":"message"}"#)]).await;
    let gate = StatusGate::manual();
    let addr = serve(app(&provider, &gate)).await;

    // Statuspage posts a major incident: applied at once, 204.
    let (head, body) = post_to(
        addr,
        &format!("/hooks/statuspage/{SECRET}"),
        webhook("incident_created", "major"),
    )
    .await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert!(!gate.is_open());

    // The backend answers its callers 503 + Retry-After, and the provider is
    // never called.
    let (head, body) = post_to(addr, "/v1/messages", BODY).await;
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(head.headers()["retry-after"], "30");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert_eq!(provider.hits(), 0);

    // The incident is resolved: the gate opens, calls go through again.
    let (head, _) = post_to(
        addr,
        &format!("/hooks/statuspage/{SECRET}"),
        webhook("incident_update", "none"),
    )
    .await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert!(gate.is_open());
    let (head, _) = post_to(addr, "/v1/messages", BODY).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(provider.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_not_found_and_does_not_touch_the_gate() {
    let provider = Provider::start(vec![Reply::ok("{}")]).await;
    let gate = StatusGate::manual();
    let addr = serve(app(&provider, &gate)).await;
    let closing = webhook("incident_created", "critical");

    let almost = &SECRET[..SECRET.len() - 1];
    for path in [
        "/hooks/statuspage/wrong".to_owned(),
        format!("/hooks/statuspage/{almost}"),
        format!("/hooks/statuspage/{almost}X"),
        format!("/hooks/statuspage/{SECRET}X"),
        format!("/hooks/statuspage/{}", SECRET.to_uppercase()),
        "/hooks/statuspage/".to_owned(),
    ] {
        let (head, _) = post_to(addr, &path, closing.clone()).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(gate.is_open(), "{path}");
    }

    // Not a webhook: refused, gate untouched.
    let (head, _) = post_to(addr, &format!("/hooks/statuspage/{SECRET}"), "{not json").await;
    assert_eq!(head.status(), StatusCode::BAD_REQUEST);
    assert!(gate.is_open());

    // Over the size cap: refused, gate untouched.
    let huge = vec![b' '; 65 * 1024];
    let (head, _) = post_to(addr, &format!("/hooks/statuspage/{SECRET}"), huge).await;
    assert_eq!(head.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(gate.is_open());

    // The right secret closes it.
    let (head, _) = post_to(addr, &format!("/hooks/statuspage/{SECRET}"), closing).await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert!(!gate.is_open());
}
