//! Retries transient provider errors, reading only error bodies and losing nothing.
//!
//! [`RetryLayer`] wraps any tower HTTP client (`Service<http::Request<B>>`).
//! For each response it asks a [`Classify`](crate::classify::Classify)
//! implementation whether another attempt is worth it: from the status and
//! headers first, then, for error responses only, from the body, read up to a
//! cap. A response that is not retried reaches the caller with the same
//! status, headers and body bytes, although part of its body was read; a
//! success body is never read, so an SSE stream flows through untouched.
//!
//! Delays follow a [`Backoff`](crate::backoff::Backoff) schedule, or the
//! server's `retry-after-ms` / `retry-after` hint within a bound. A shared
//! [`RetryBudget`](crate::budget::RetryBudget) keeps retries a small share of
//! requests, an optional deadline bounds the whole call, and a
//! [`StatusGate`](crate::gate::StatusGate) stops retries into a known outage.
//! The final response carries a [`RetryInfo`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_api_guard::BoxError> {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_api_guard::retry::{RetryInfo, RetryLayer};
//!
//! // A provider that is overloaded once, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let provider = service_fn({
//!     let calls = calls.clone();
//!     move |_req: http::Request<Full<Bytes>>| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let (status, body) = if n == 0 {
//!                 (529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
//!             } else {
//!                 (200, r#"{"type":"message"}"#)
//!             };
//!             let response = http::Response::builder().status(status).body(Full::new(Bytes::from(body)))?;
//!             Ok::<_, http::Error>(response)
//!         }
//!     }
//! });
//!
//! let mut client = ServiceBuilder::new().layer(RetryLayer::new()).service(provider);
//! let request = http::Request::post("/v1/messages").body(Full::new(Bytes::from("{}")))?;
//! let response = client.ready().await?.call(request).await?;
//!
//! assert_eq!(response.status(), 200);
//! assert_eq!(RetryInfo::of(&response).attempts, 2);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), r#"{"type":"message"}"#);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```

mod body;
mod control;
mod future;
mod head;
mod info;
mod layer;
mod policy;
mod replay;
mod service;
mod stream_start;
mod template;

pub use body::ResponseBody;
pub use control::RetryControl;
pub use future::ResponseFuture;
pub use info::{RetryInfo, Stop};
pub use layer::RetryLayer;
pub use policy::{LongHint, TransportRetry};
pub use replay::{Replay, ReplayBody, ReplayedBody};
pub use service::Retry;
