//! The status gate: hold requests back while the provider's status page
//! reports an incident.
//!
//! A [`StatusGate`] is a cheap, cloneable handle to one shared state, open or
//! closed with the reason. One background task per gate polls the provider's
//! Atlassian Statuspage (`/api/v2/summary.json`, every 30 s by default, with
//! jitter, `If-None-Match`, a timeout and a size cap), judges it with a
//! [`Policy`] and publishes the result; checking the gate on the request path
//! is one atomic load. The poller ends when the last handle is dropped.
//!
//! [`StatusGateLayer`] puts the gate in front of any tower HTTP service. While
//! the gate is closed, `call` returns at once without touching the inner
//! service: in client mode ([`Reject`]) with a [`GateClosed`] error (inside a
//! `tower::BoxError`), in server mode ([`Respond503`]) with a synthesized `503`
//! JSON answer and `Retry-After`, keeping the inner error type (`Infallible`
//! for axum). Requests the layer forwards reach the inner service unchanged;
//! a retry layer further in finds the gate while it is called, and checks it
//! before each retry.
//!
//! Besides polling: manual overrides ([`StatusGate::force_open`],
//! [`StatusGate::force_closed`], [`StatusGate::clear_override`]), webhooks
//! ([`StatusGate::apply_webhook`]), optional waiting for the gate to open
//! ([`StatusGateLayer::wait_for_open`]) and optional probing
//! ([`StatusGateBuilder::probe_every`]). Every change of state is a `tracing`
//! event (target `tower_api_guard::gate`) and is sent to
//! [`StatusGate::subscribe`] receivers.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower::BoxError> {
//! // A gate with no poller, so this example needs no network; a real one comes
//! // from `StatusGate::builder().base_url("https://status.anthropic.com").build()?`.
//! let gate = StatusGate::manual();
//! let upstream = service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hello")))
//! });
//! let client = StatusGateLayer::new(gate.clone()).layer(upstream);
//!
//! let resp = client.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(resp.status(), StatusCode::OK);
//!
//! gate.force_closed("provider incident");
//! let err = client.clone().oneshot(Request::new(String::new())).await.unwrap_err();
//! let closed = err.downcast_ref::<GateClosed>().expect("a GateClosed");
//! assert_eq!(closed.description(), Some("provider incident"));
//!
//! gate.clear_override();
//! assert!(gate.check().is_ok());
//! # Ok(()) }
//! ```

//! # With the retry layer
//!
//! Put the gate outside the retry layer. A closed gate then refuses a request
//! before the retry layer buffers its body or spends budget on it; the retry
//! layer finds the gate while the gate layer polls its readiness (nothing is
//! added to the request) and checks it before each retry, so no retry is sent
//! into an incident and the caller gets the last real response. A layer
//! between them that drives readiness from another task (`tower::buffer`)
//! hides the gate: then give it to the retry layer with
//! [`RetryLayer::gate`](crate::retry::RetryLayer::gate). The other order is
//! safe too: every attempt then passes the gate, a [`GateClosed`] error is
//! never retried, and a refused retry is not counted as an attempt; but a
//! refused request's body is buffered first.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::{connect::HttpConnector, Client};
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//! use tower_api_guard::gate::{StatusGate, StatusGateLayer};
//! use tower_api_guard::retry::RetryLayer;
//!
//! # #[tokio::main] async fn main() -> Result<(), tower::BoxError> {
//! let gate = StatusGate::builder()
//!     .base_url("https://status.anthropic.com")
//!     .watch_component("Claude API")
//!     .build()?;
//! // Use an HTTPS connector (e.g. hyper-rustls) for the real API.
//! let client: Client<HttpConnector, Full<Bytes>> =
//!     Client::builder(TokioExecutor::new()).build(HttpConnector::new());
//! let api = ServiceBuilder::new()
//!     .layer(StatusGateLayer::new(gate.clone())) // outside: refuses first
//!     .layer(RetryLayer::new())                  // inside: checks the gate before each retry
//!     .service(client);
//! # let _ = api;
//! # Ok(()) }
//! ```

mod body;
mod builder;
mod decide;
mod error;
mod fetch;
mod future;
mod handle;
mod layer;
mod poller;
pub(crate) mod scope;
mod service;
mod state;
mod webhook;

pub use body::GateBody;
pub use builder::{
    Endpoint, StatusGateBuilder, DEFAULT_BASE_URL, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT, MIN_POLL_INTERVAL,
};
pub use decide::{Decision, IncidentRef, Policy, Severity, Verdict, MAX_TEXT};
pub use error::{BuildError, CloseCause, FetchError, FetchErrorKind, GateClosed, PollError};
pub use future::{Respond503Future, ResponseFuture};
pub use handle::StatusGate;
pub use layer::{Reject, Respond503, StatusGateLayer, DEFAULT_RETRY_AFTER};
pub use poller::Jitter;
pub use service::StatusGateService;
pub use state::{GateStatus, PollOutcome, Unreadable};
