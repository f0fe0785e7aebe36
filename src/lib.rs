//! Tower middleware for programs that call a hosted HTTP API which fails in
//! known ways: the Anthropic API first, and any provider shaped like it.
//!
//! - [`retry::RetryLayer`] retries transient errors (`api_error`,
//!   `overloaded_error`, gateway failures) read from JSON error bodies, with
//!   capped exponential backoff, jitter, server delay hints and a shared
//!   budget, and hands every other response on byte for byte.
//! - [`gate::StatusGateLayer`] short-circuits requests while the provider's
//!   status page reports an incident, so no request and no retry is sent into
//!   a known outage.
//!
//! Both are plain tower layers over `http::Request<B>` / `http::Response<B>`
//! for any [`http_body::Body`]: they stack onto a hyper-util client, a tonic
//! `Channel`, a `reqwest::Client` (the `integration` module, behind cargo
//! features) or an axum backend.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_api_guard::BoxError> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
//! use tower_api_guard::retry::RetryLayer;
//!
//! let gate = StatusGate::manual(); // `StatusGate::builder().build()?` polls the real page
//! let provider = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("{}"))))
//! });
//! let api = ServiceBuilder::new()
//!     .layer(StatusGateLayer::new(gate.clone()))
//!     .layer(RetryLayer::new())
//!     .service(provider);
//!
//! let ok = api.clone().oneshot(http::Request::new(Full::new(Bytes::new()))).await?;
//! assert_eq!(ok.status(), 200);
//!
//! gate.force_closed("major outage");
//! let refused = api.oneshot(http::Request::new(Full::new(Bytes::new()))).await.unwrap_err();
//! assert!(refused.is::<GateClosed>());
//! # Ok(())
//! # }
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rustls` | yes | the status-page poller fetches over HTTPS (rustls, webpki roots) |
//! | `tonic` | no | body replay for `tonic::body::Body`, `GrpcClassifier` |
//! | `reqwest` | no | `ReqwestLayer` around a `reqwest::Client` |
//! | `axum` | no | body replay for `axum::body::Body`, the Statuspage webhook route |

pub mod backoff;
pub mod budget;
pub mod classify;
mod cold;
pub mod gate;
pub mod hint;
#[cfg(any(feature = "tonic", feature = "reqwest", feature = "axum"))]
pub mod integration;
pub mod retry;
pub mod status_page;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The boxed error the layers return, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
