//! Scaffolding shared by the benches (`mod support;` in each): the request
//! every happy-path variant sends and the upstream's small JSON answer, the
//! `tower::retry` policy the layers are compared with, the tokio runtimes, a
//! loopback hyper HTTP/1 server and the hyper-util client, and the
//! environment variables of the instruction-count (callgrind) modes.
//!
//! Only what two or more benches (or two places in one) had written out the
//! same lives here; what a bench measures stays in that bench.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceBuilder};
use tower_api_guard::gate::{StatusGate, StatusGateLayer, StatusGateService};
use tower_api_guard::retry::{Retry, RetryLayer};

/// The request body: a small Messages API call.
pub(crate) const REQUEST_JSON: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#;
/// The upstream's answer body: a small message.
pub(crate) const RESPONSE_JSON: &str =
    r#"{"type":"message","content":[{"type":"text","text":"Hi"}]}"#;
/// The URI of the in-memory requests (no connection is made to it).
pub(crate) const MESSAGES_URI: &str = "https://api.anthropic.com/v1/messages";

/// [`REQUEST_JSON`] in a buffer that is already shared, so every
/// `body.clone()` is a reference-count increment (a fresh `Vec`-backed
/// `Bytes` would allocate on its first clone; allocs.rs measures that case).
pub(crate) fn shared_body() -> Bytes {
    let body = Bytes::from(REQUEST_JSON.as_bytes().to_vec());
    drop(body.clone());
    body
}

/// The request every happy-path variant gets, to [`MESSAGES_URI`]: see [`request_to`].
pub(crate) fn request(body: Bytes) -> Request<Full<Bytes>> {
    request_to(MESSAGES_URI, body)
}

/// A POST of `body` to `uri` with the headers an API client sends
/// (content type, API key, API version, user agent).
pub(crate) fn request_to(uri: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-bench-0000000000000000")
        .header("anthropic-version", "2023-06-01")
        .header("user-agent", "tower-api-guard-bench/0.1")
        .body(Full::new(body))
        .unwrap()
}

/// A 200 response with `body` and a `content-type` header, nothing else.
pub(crate) fn response<B>(body: B, content_type: &'static str) -> Response<B> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// The upstream's answer: 200, [`RESPONSE_JSON`], `application/json`.
pub(crate) fn json_ok() -> Response<Full<Bytes>> {
    response(
        Full::new(Bytes::from_static(RESPONSE_JSON.as_bytes())),
        "application/json",
    )
}

/// The in-memory upstream: answers [`json_ok`] to any request, touching
/// nothing else (the request body is not read).
pub(crate) async fn answer<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(json_ok())
}

/// [`answer`] as a `tower` service (`Copy`, so every variant wraps its own).
pub(crate) fn upstream(
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Copy
{
    service_fn(answer::<Full<Bytes>>)
}

/// `tower::retry` with a policy that keeps a clone of every request and
/// never retries: the reference the layers are compared with.
#[derive(Clone, Copy)]
pub(crate) struct CloneNeverRetry;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for CloneNeverRetry {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        _result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        Some(req.clone())
    }
}

/// A current-thread tokio runtime with IO and time enabled.
pub(crate) fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread tokio runtime with 2 workers (the machine's cores), IO and
/// time enabled.
pub(crate) fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Connections [`serve`] has accepted, over all its servers in the process.
pub(crate) static ACCEPTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A loopback HTTP/1 server on 127.0.0.1 (a free port), on its own tasks:
/// accepts connections (skipping a failed accept), turns Nagle off, and
/// serves each connection with a clone of `service`. Returns its address.
pub(crate) async fn serve<S, B>(service: S) -> SocketAddr
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The reference HTTP client: hyper-util's legacy `Client`, HTTP/1 over
/// plain TCP, default pool.
pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// Instruction-count mode, for `valgrind --tool=callgrind` (benches/callgrind.sh):
/// when `variant_var` is set, its value (the variant to run) and the number
/// of calls from `calls_var` (`default_calls` when unset or not a number).
pub(crate) fn profile_mode(
    variant_var: &str,
    calls_var: &str,
    default_calls: u64,
) -> Option<(String, u64)> {
    let variant = std::env::var(variant_var).ok()?;
    let calls = std::env::var(calls_var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_calls);
    Some((variant, calls))
}

/// The median of `values` (the upper one of an even count; NaN if empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The compared services, each around its own copy of the same upstream.
pub(crate) struct Variants<S> {
    pub(crate) bare: S,
    pub(crate) retry_layer: Retry<S>,
    pub(crate) gate_layer: StatusGateService<S>,
    /// `StatusGateLayer` outside `RetryLayer`.
    pub(crate) both_layers: StatusGateService<Retry<S>>,
    pub(crate) tower_retry_clone: tower::retry::Retry<CloneNeverRetry, S>,
}

impl<S: Copy> Variants<S> {
    /// `upstream` bare, behind `RetryLayer::new()`, behind `StatusGateLayer`
    /// on `gate` (open), behind both, and behind `tower::retry`.
    pub(crate) fn new(upstream: S, gate: &StatusGate) -> Self {
        Self {
            bare: upstream,
            retry_layer: ServiceBuilder::new()
                .layer(RetryLayer::new())
                .service(upstream),
            gate_layer: ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .service(upstream),
            both_layers: ServiceBuilder::new()
                .layer(StatusGateLayer::new(gate.clone()))
                .layer(RetryLayer::new())
                .service(upstream),
            tower_retry_clone: tower::retry::Retry::new(CloneNeverRetry, upstream),
        }
    }
}
