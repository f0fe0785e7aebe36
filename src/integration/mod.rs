//! The layers where users already are: tonic, reqwest and axum, each behind
//! the cargo feature of the same name.
//!
//! - [`tonic`] (feature `tonic`): request-body replay for
//!   `tonic::body::Body`, and [`GrpcClassifier`](self::tonic::GrpcClassifier),
//!   which retries gRPC failures (`UNAVAILABLE`; `RESOURCE_EXHAUSTED` on
//!   request) from `grpc-status` and honours `grpc-retry-pushback-ms`. Both
//!   layers then stack onto a `tonic::transport::Channel` as they are.
//! - [`reqwest`] (feature `reqwest`):
//!   [`ReqwestLayer`](self::reqwest::ReqwestLayer) puts the HTTP layers around
//!   a `reqwest::Client` and keeps it a `Service<reqwest::Request>`.
//! - [`axum`] (feature `axum`): request-body replay for
//!   `axum::body::Body`, and [`StatuspageWebhook`](self::axum::StatuspageWebhook),
//!   a route that feeds Statuspage webhooks to a gate. The gate's server mode
//!   ([`StatusGateLayer::respond_503`](crate::gate::StatusGateLayer::respond_503))
//!   is an axum layer as it is.
//!
//! ```
//! # #[cfg(feature = "tonic")]
//! # {
//! use http::{HeaderMap, StatusCode};
//! use tower_api_guard::classify::{Classify, Head};
//! use tower_api_guard::integration::tonic::GrpcClassifier;
//!
//! // A trailers-only gRPC answer: HTTP 200, the status in the headers.
//! let mut headers = HeaderMap::new();
//! headers.insert("grpc-status", "14".parse().unwrap()); // UNAVAILABLE
//! let head = GrpcClassifier::new().classify_head(StatusCode::OK, &headers);
//! assert!(matches!(head, Head::Retry(_)));
//! # }
//! ```

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;
