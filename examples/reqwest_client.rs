//! Both layers around a `reqwest::Client`, which stays a
//! `Service<reqwest::Request>`. No network, no set-up:
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! A loopback server plays the provider: `POST /v1/messages` is overloaded
//! (`529 overloaded_error`) once, then answers; `POST /v1/bad` answers
//! `400 invalid_request_error`. The example shows the retried request
//! succeeding, the 400 handed back untouched as a `reqwest::Response`, and a
//! request held back by the closed gate without reaching the server.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::Backoff;
use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
use tower_api_guard::integration::reqwest::ReqwestLayer;
use tower_api_guard::retry::{RetryInfo, RetryLayer};
use tower_api_guard::BoxError;

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
const INVALID: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be at least 1"}}"#;

/// The provider on a loopback port; counts the requests it receives.
async fn provider(hits: Arc<AtomicU32>) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = match (request.uri().path(), n) {
                        ("/v1/bad", _) => (400, INVALID),
                        (_, 0) => (529, OVERLOADED),
                        _ => (
                            200,
                            r#"{"type":"message","content":[{"type":"text","text":"hi"}]}"#,
                        ),
                    };
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let hits = Arc::new(AtomicU32::new(0));
    let addr = provider(hits.clone()).await?;

    // The layers around reqwest: gate, then retry (short delays for the demo).
    let gate = StatusGate::manual();
    let layers = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(RetryLayer::new().backoff(Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(2),
        )))
        .into_inner();
    let reqwest = reqwest::Client::new();
    let client = ReqwestLayer::new(layers).layer(reqwest.clone());

    let request = |path: &str| {
        reqwest
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .header("x-api-key", "sk-demo")
            .body(
                r#"{"model":"claude","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
            )
            .build()
    };

    println!("POST /v1/messages (overloaded once):");
    let response = client.clone().oneshot(request("/v1/messages")?).await?;
    let info = response
        .extensions()
        .get::<RetryInfo>()
        .cloned()
        .unwrap_or_default();
    println!(
        "  {} after {} attempts, {} ms backing off: {}",
        response.status(),
        info.attempts,
        info.total_delay.as_millis(),
        response.text().await?
    );

    println!("POST /v1/bad (a final error):");
    let response = client.clone().oneshot(request("/v1/bad")?).await?;
    let status = response.status();
    let body = response.text().await?;
    println!("  {status}, body handed back whole: {body}");
    if body != INVALID {
        return Err("the error body changed on its way".into());
    }

    println!("POST /v1/messages with the gate closed:");
    gate.force_closed("provider incident");
    let before = hits.load(Ordering::SeqCst);
    let error = client
        .oneshot(request("/v1/messages")?)
        .await
        .err()
        .ok_or("expected the gate to hold the request back")?;
    let closed = error
        .downcast_ref::<GateClosed>()
        .ok_or("expected a GateClosed")?;
    println!(
        "  held back: {closed}; requests the provider received meanwhile: {}",
        hits.load(Ordering::SeqCst) - before
    );
    Ok(())
}
