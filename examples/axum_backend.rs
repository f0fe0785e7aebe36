//! An axum backend in front of the provider, with both layers. No network,
//! no set-up:
//!
//! ```text
//! cargo run --example axum_backend --features axum            # runs the scenario below
//! cargo run --example axum_backend --features axum -- --serve # then keeps serving, for curl
//! ```
//!
//! The backend has two routes:
//! - `POST /v1/messages` forwards the caller's request to the provider
//!   through a retrying client kept in the router's state; the route sits
//!   behind `StatusGateLayer::respond_503`, so while the provider has an
//!   incident the backend answers `503` + `Retry-After` itself;
//! - `POST /hooks/statuspage/<secret>` receives the provider's Statuspage
//!   webhooks and feeds them to the gate (outside the 503 layer).
//!
//! The scenario: a call retried through one `529`; an incident webhook that
//! closes the gate; a call answered `503` without reaching the provider; a
//! webhook with a wrong secret (`404`, gate untouched); the resolving
//! webhook; a call that goes through again.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::Backoff;
use tower_api_guard::gate::{StatusGate, StatusGateLayer};
use tower_api_guard::integration::axum::StatuspageWebhook;
use tower_api_guard::retry::{Retry, RetryInfo, RetryLayer};
use tower_api_guard::BoxError;

/// In a real deployment: a long random value from your secret store.
const SECRET: &str = "demo-3f9c2a71e4b8";

/// The client the handler calls the provider with.
type Upstream = Retry<Client<HttpConnector, Body>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    provider: Uri,
}

/// `POST /v1/messages`: forwards the request (axum's body is replayed for
/// each attempt) and answers with the provider's final response.
async fn messages(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (mut parts, body) = request.into_parts();
    parts.uri = state.provider.clone();
    match state
        .upstream
        .oneshot(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let attempts = RetryInfo::of(&response).attempts;
            let mut response = response.map(Body::new);
            response
                .headers_mut()
                .insert("x-upstream-attempts", attempts.into());
            response
        }
        Err(error) => (StatusCode::BAD_GATEWAY, format!("upstream: {error}\n")).into_response(),
    }
}

fn backend(provider: SocketAddr, gate: &StatusGate) -> Result<Router, BoxError> {
    let upstream = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new(
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                ))
                // No retry is sent into an incident the gate knows of.
                .gate(gate.clone()),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let state = AppState {
        upstream,
        provider: format!("http://{provider}/v1/messages").parse()?,
    };
    Ok(Router::new()
        .route("/v1/messages", post(messages))
        .with_state(state)
        .layer(
            StatusGateLayer::new(gate.clone())
                .respond_503()
                .retry_after(Duration::from_secs(5)),
        )
        .nest(
            "/hooks/statuspage",
            StatuspageWebhook::new(gate.clone(), SECRET).router(),
        ))
}

/// The provider: overloaded for its first request, then answers.
async fn provider(hits: Arc<AtomicU32>) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    let (status, body) = if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            529,
                            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                        )
                    } else {
                        (
                            200,
                            r#"{"type":"message","content":[{"type":"text","text":"hi"}]}"#,
                        )
                    };
                    let mut response = http::Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A Statuspage incident webhook, as Statuspage posts it.
fn incident(status: &str, impact: &str, indicator: &str) -> String {
    format!(
        r#"{{"meta":{{"unsubscribe":"https://status.example.com/?unsubscribe=x","documentation":"https://support.atlassian.com/statuspage/"}},
"page":{{"id":"demo","status_indicator":"{indicator}","status_description":"demo"}},
"incident":{{"id":"inc1","name":"Elevated errors on the Messages API","status":"{status}","impact":"{impact}",
"created_at":"2026-11-25T10:00:00.000Z","updated_at":"2026-11-25T10:00:00.000Z","incident_updates":[]}}}}"#
    )
}

async fn post_to(
    addr: SocketAddr,
    path: &str,
    body: String,
) -> Result<(StatusCode, http::HeaderMap, Bytes), BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    Ok((
        parts.status,
        parts.headers,
        body.collect().await?.to_bytes(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let hits = Arc::new(AtomicU32::new(0));
    let provider = provider(hits.clone()).await?;
    let gate = StatusGate::manual();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = backend(provider, &gate)?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let call = r#"{"model":"claude","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;
    let hook = format!("/hooks/statuspage/{SECRET}");

    let (status, headers, body) = post_to(addr, "/v1/messages", call.into()).await?;
    let attempts = headers
        .get("x-upstream-attempts")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!(
        "POST /v1/messages             -> {status} after {attempts} upstream attempts: {}",
        String::from_utf8_lossy(&body)
    );

    let (status, _, _) = post_to(addr, &hook, incident("investigating", "major", "major")).await?;
    println!(
        "POST {hook} (incident) -> {status}; gate open: {}",
        gate.is_open()
    );

    let before = hits.load(Ordering::SeqCst);
    let (status, headers, body) = post_to(addr, "/v1/messages", call.into()).await?;
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    println!(
        "POST /v1/messages             -> {status}, Retry-After: {retry_after}, provider reached: {} times: {}",
        hits.load(Ordering::SeqCst) - before,
        String::from_utf8_lossy(&body)
    );
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return Err("expected the backend to answer 503 during the incident".into());
    }

    let (status, _, _) = post_to(
        addr,
        "/hooks/statuspage/a-guess",
        incident("resolved", "none", "none"),
    )
    .await?;
    println!(
        "POST /hooks/statuspage/a-guess -> {status}; gate open: {}",
        gate.is_open()
    );

    let (status, _, _) = post_to(addr, &hook, incident("resolved", "none", "none")).await?;
    println!(
        "POST {hook} (resolved) -> {status}; gate open: {}",
        gate.is_open()
    );

    let (status, _, _) = post_to(addr, "/v1/messages", call.into()).await?;
    println!("POST /v1/messages             -> {status}");
    if status != StatusCode::OK {
        return Err("expected the backend to answer again".into());
    }

    if std::env::args().any(|arg| arg == "--serve") {
        println!("\nserving on http://{addr} (Ctrl-C to stop); try:");
        println!("  curl -i -X POST http://{addr}/v1/messages -d '{call}'");
        println!("  curl -i -X POST http://{addr}{hook} -d @tests/fixtures/statuspage/webhooks/incident_created.json");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
