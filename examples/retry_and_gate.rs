//! The recommended way to stack both layers onto a hyper-util client.
//!
//! ```text
//! cargo run --example retry_and_gate
//! ```
//!
//! It starts one loopback server that plays the provider (`/v1/messages`:
//! one `529 overloaded_error`, then `200`) and its status page
//! (`/api/v2/summary.json`: operational, then a major outage), then shows a
//! retried request succeeding and a request held back by the gate without
//! reaching the server. It asserts both outcomes.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::Backoff;
use tower_api_guard::gate::{GateClosed, StatusGate};
use tower_api_guard::retry::{RetryInfo, RetryLayer};
use tower_api_guard::BoxError;

// `pub(crate)` so that `tests/demo_smoke.rs` can run this example as a test.
#[tokio::main]
pub(crate) async fn main() -> Result<(), BoxError> {
    let server = Server::start().await?;

    // One gate per provider: it polls the status page in the background
    // (one poller however many clients share it; here every 10 s, the minimum).
    let gate = StatusGate::builder()
        .base_url(server.url(""))
        .poll_interval(Duration::from_secs(10))
        .build()?;
    gate.polled().await?; // the first read of the page; optional

    // Outermost first. The gate goes OUTSIDE the retry layer:
    // - a request that arrives while the gate is closed fails at once with
    //   `GateClosed`: its body is not buffered for replay and it spends no
    //   retry budget;
    // - the retry layer finds the gate while the gate layer polls its
    //   readiness (the request is left as it was) and checks it before every retry
    //   (behind a `tower::buffer`, pass it with `.gate(..)`): if the gate closes
    //   while a request is backing off, no retry is sent into the incident
    //   and the caller gets the last response (`RetryInfo.stop == GateClosed`).
    // (The other order also sends nothing into an incident, since every
    // attempt then passes the gate, but pays for buffering first.)
    let client = Client::builder(TokioExecutor::new()).build_http();
    let service = ServiceBuilder::new()
        .layer(gate.layer())
        .layer(
            // The default is the provider's recipe (5 s doubling to 120 s);
            // shortened here so the example runs in a blink.
            RetryLayer::new().backoff(Backoff::new(
                Duration::from_millis(50),
                Duration::from_secs(1),
            )),
        )
        .service(client);

    // 1. Overloaded once, then answered: one call, two attempts.
    let response = service.clone().oneshot(server.message()?).await?;
    let info = RetryInfo::of(&response);
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "request 1: {status} after {} attempts ({:?} backing off): {}",
        info.attempts,
        info.total_delay,
        String::from_utf8_lossy(&body)
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info.attempts, 2);
    assert_eq!(server.messages(), 2);

    // 2. The status page reports an incident: the next request is held back.
    server.open_incident();
    gate.poll_now().await?; // a webhook would do this too: `gate.apply_webhook(body)`
    let err = service
        .clone()
        .oneshot(server.message()?)
        .await
        .err()
        .ok_or("the gate should have held the request back")?;
    let closed = err
        .downcast_ref::<GateClosed>()
        .ok_or("a GateClosed error")?;
    println!("request 2: held back: {closed}");
    assert_eq!(closed.incidents().len(), 1);
    assert_eq!(server.messages(), 2, "the provider saw nothing more");
    Ok(())
}

/// The provider and its status page on one loopback port.
#[derive(Clone)]
struct Server {
    url: String,
    messages: Arc<AtomicUsize>,
    incident: Arc<AtomicBool>,
}

impl Server {
    async fn start() -> Result<Server, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Server {
            url: format!("http://{}", listener.local_addr()?),
            messages: Arc::default(),
            incident: Arc::default(),
        };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let _ = req.into_body().collect().await; // read the request to its end
                        Ok::<_, Infallible>(state.answer(&path))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Ok(server)
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body): (u16, &'static [u8]) = match path {
            "/api/v2/summary.json" if self.incident.load(Ordering::SeqCst) => {
                (200, PAGE_MAJOR_OUTAGE)
            }
            "/api/v2/summary.json" => (200, PAGE_OPERATIONAL),
            "/v1/messages" if self.messages.fetch_add(1, Ordering::SeqCst) == 0 => (
                529,
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            "/v1/messages" => (200, br#"{"type":"message","content":[]}"#),
            _ => (404, b""),
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body)));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn message(&self) -> Result<Request<Full<Bytes>>, http::Error> {
        Request::post(self.url("/v1/messages"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
            )))
    }

    fn messages(&self) -> usize {
        self.messages.load(Ordering::SeqCst)
    }

    fn open_incident(&self) {
        self.incident.store(true, Ordering::SeqCst);
    }
}

/// Real Statuspage captures (see `tests/fixtures/statuspage/SOURCES.md`).
const PAGE_OPERATIONAL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/statuspage/github_summary_operational_2019-12-30.json"
));
const PAGE_MAJOR_OUTAGE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/statuspage/github_summary_major_outage_2020-04-02.json"
));
