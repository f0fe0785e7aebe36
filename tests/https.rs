//! Both layers on a hyper-util client over HTTPS, and the gate reading its
//! status page over HTTPS: a loopback TLS server (tokio-rustls) with a
//! certificate made here (rcgen), and hyper-rustls clients that trust only
//! that certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::gate::{CloseCause, GateClosed, PollOutcome, StatusGate};
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

#[path = "support/tls.rs"]
mod tls;

use tls::{acceptor, https_client, make_cert, Cert};

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
const MESSAGE: &str = r#"{"type":"message","content":[{"type":"text","text":"hi"}]}"#;
const REQUEST: &str =
    r#"{"model":"claude","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/statuspage/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap())
}

/// The provider (`/v1/messages`: one 529 `overloaded_error`, then 200) and
/// its status page (`/api/v2/summary.json`: operational, or a major outage
/// once `incident` is set), served over TLS only.
#[derive(Clone, Default)]
struct Upstream {
    messages: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    incident: Arc<AtomicBool>,
    /// Request bodies received on `/v1/messages`.
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Upstream {
    async fn answer(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let (status, body) = match path.as_str() {
            "/v1/messages" => {
                self.bodies.lock().unwrap().push(body);
                match self.messages.fetch_add(1, Ordering::SeqCst) {
                    0 => (529, Bytes::from_static(OVERLOADED.as_bytes())),
                    _ => (200, Bytes::from_static(MESSAGE.as_bytes())),
                }
            }
            "/api/v2/summary.json" => {
                self.polls.fetch_add(1, Ordering::SeqCst);
                if self.incident.load(Ordering::SeqCst) {
                    (200, fixture("github_summary_major_outage_2020-04-02.json"))
                } else {
                    (200, fixture("github_summary_operational_2019-12-30.json"))
                }
            }
            _ => (404, Bytes::new()),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    /// Serves over TLS with `cert` on a fresh loopback port; counts handshakes.
    async fn serve_tls(&self, cert: &Cert) -> (SocketAddr, Arc<AtomicUsize>) {
        let acceptor = acceptor(cert);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (upstream, done) = (self.clone(), Arc::clone(&handshakes));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream, done) = (acceptor.clone(), upstream.clone(), done.clone());
                tokio::spawn(async move {
                    // A failed handshake (an untrusting client) just ends the connection.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    done.fetch_add(1, Ordering::SeqCst);
                    let service =
                        hyper::service::service_fn(move |req| upstream.clone().answer(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, handshakes)
    }
}

fn message(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("https://{addr}/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(Full::new(Bytes::from_static(REQUEST.as_bytes())))
        .unwrap()
}

/// Both layers on a hyper-util client over HTTPS; the gate reads its status
/// page over HTTPS through a caller-supplied hyper-rustls client
/// (`StatusGateBuilder::http_service`): a 529 is retried to a 200, then the
/// page reports an incident and the next request never reaches the server.
#[tokio::test(start_paused = true)]
async fn retried_then_gated_over_https() {
    let cert = make_cert();
    let upstream = Upstream::default();
    let (addr, handshakes) = upstream.serve_tls(&cert).await;

    let gate = StatusGate::builder()
        .base_url(format!("https://{addr}"))
        .poll_interval(Duration::from_secs(30))
        .http_service(https_client::<Empty<Bytes>>(&cert))
        .build()
        .unwrap();
    assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
    assert!(gate.is_open());
    assert_eq!(upstream.polls.load(Ordering::SeqCst), 1);

    let service = ServiceBuilder::new()
        .layer(gate.layer())
        .layer(
            RetryLayer::new()
                .backoff(
                    Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
                        .jitter(Jitter::None),
                )
                .no_budget(),
        )
        .service(https_client::<Full<Bytes>>(&cert));

    // 529 overloaded_error, retried after the 100 ms backoff, then 200.
    let response = service.clone().oneshot(message(addr)).await.unwrap();
    let info = RetryInfo::of(&response);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(info.attempts, 2);
    assert_eq!(info.total_delay, Duration::from_millis(100));
    assert_eq!(info.stop, Stop::Final);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, MESSAGE.as_bytes());
    assert_eq!(upstream.messages.load(Ordering::SeqCst), 2);
    // The request body was replayed byte-identical over TLS.
    let bodies = upstream.bodies.lock().unwrap().clone();
    assert_eq!(bodies, vec![Bytes::from_static(REQUEST.as_bytes()); 2]);
    assert!(
        handshakes.load(Ordering::SeqCst) >= 2,
        "the page and the API both went through TLS"
    );

    // The status page (over TLS) now reports a major outage.
    upstream.incident.store(true, Ordering::SeqCst);
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let err = service.clone().oneshot(message(addr)).await.unwrap_err();
    let closed = err
        .downcast_ref::<GateClosed>()
        .expect("a GateClosed error");
    assert_eq!(closed.cause(), CloseCause::StatusPage);
    assert_eq!(closed.incidents().len(), 1);
    assert_eq!(
        closed.incidents()[0].name,
        "Incident on 2020-04-02 20:20 UTC"
    );
    assert_eq!(
        upstream.messages.load(Ordering::SeqCst),
        2,
        "the gated request never reached the server"
    );

    // Resolved: requests flow again, still over TLS.
    upstream.incident.store(false, Ordering::SeqCst);
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let response = service.clone().oneshot(message(addr)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(RetryInfo::of(&response).attempts, 1);
    assert_eq!(upstream.messages.load(Ordering::SeqCst), 3);
}

/// The gate's built-in fetcher speaks HTTPS (feature `rustls`, on by
/// default) and verifies certificates against the public roots: it refuses
/// the test's self-signed certificate (a connect failure, so the default rule
/// leaves the gate open) and never reaches the page. Handing in a client that
/// trusts the certificate is what makes the same page readable (see above).
#[cfg(feature = "rustls")]
#[tokio::test(start_paused = true)]
async fn built_in_fetcher_verifies_the_certificate() {
    use tower_api_guard::gate::FetchErrorKind;

    let cert = make_cert();
    let upstream = Upstream::default();
    upstream.incident.store(true, Ordering::SeqCst);
    let (addr, handshakes) = upstream.serve_tls(&cert).await;

    let gate = StatusGate::builder()
        .base_url(format!("https://{addr}"))
        .build()
        .unwrap();
    match gate.polled().await.unwrap() {
        PollOutcome::Failed(e) => assert_eq!(e.kind(), &FetchErrorKind::Connect, "{e}"),
        other => panic!("expected a failed fetch, got {other:?}"),
    }
    assert!(
        gate.is_open(),
        "an unreadable page leaves the gate open by default"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(upstream.polls.load(Ordering::SeqCst), 0);
}
