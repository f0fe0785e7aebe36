//! axum: body replay for `axum::body::Body`, and a route that feeds
//! Statuspage webhooks to a [`StatusGate`].
//!
//! Three things an axum backend does with this crate:
//!
//! 1. call the provider through a layered client kept in the router's state
//!    (any client: hyper-util's, or reqwest through
//!    [`ReqwestLayer`](super::reqwest::ReqwestLayer) with the `reqwest` feature);
//! 2. receive the provider's Statuspage webhooks with [`StatuspageWebhook`],
//!    so the gate closes the moment an incident is posted rather than at
//!    the next poll;
//! 3. answer its own callers `503` with `Retry-After` while the provider has
//!    an incident: [`StatusGateLayer::respond_503`](crate::gate::StatusGateLayer::respond_503)
//!    is an axum layer as it is (it keeps axum's `Infallible` error).
//!
//! The webhook route must not sit behind the 503 layer: it is how the gate
//! learns that the incident is over.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_api_guard::gate::{StatusGate, StatusGateLayer};
//! use tower_api_guard::integration::axum::StatuspageWebhook;
//!
//! let gate = StatusGate::manual();
//! let app = Router::new()
//!     .route("/v1/messages", post(|| async { "answered" }))
//!     .layer(StatusGateLayer::new(gate.clone()).respond_503())
//!     .nest("/hooks/statuspage", StatuspageWebhook::new(gate.clone(), "s3cret-token").router());
//!
//! // Statuspage posts an incident to the secret URL: the gate closes.
//! let incident = r#"{"meta":{"unsubscribe":"","documentation":""},
//!   "page":{"id":"p","status_indicator":"major","status_description":"Partial System Outage"},
//!   "incident":{"id":"i1","name":"Elevated errors","status":"investigating","impact":"major"}}"#;
//! let hook = Request::post("/hooks/statuspage/s3cret-token").body(Body::from(incident))?;
//! assert_eq!(app.clone().oneshot(hook).await?.status(), StatusCode::NO_CONTENT);
//! assert!(!gate.is_open());
//!
//! // The backend now answers 503 with Retry-After, without calling the handler.
//! let call = Request::post("/v1/messages").body(Body::empty())?;
//! let answer = app.clone().oneshot(call).await?;
//! assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert!(answer.headers().contains_key("retry-after"));
//!
//! // A wrong secret is not found, and the gate is untouched.
//! let forged = Request::post("/hooks/statuspage/guess").body(Body::from("{}"))?;
//! assert_eq!(app.oneshot(forged).await?.status(), StatusCode::NOT_FOUND);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use ::axum::body::Body;
use ::axum::extract::{Path, State};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::post;
use ::axum::Router;
use http::StatusCode;

use crate::gate::StatusGate;
use crate::retry::{Replay, ReplayBody};

impl ReplayBody for Body {
    fn replay(&self) -> Replay<Self> {
        Replay::Buffer(Body::new)
    }
}

/// Default cap on a webhook body: 64 KiB. Statuspage's are a few KiB.
pub const DEFAULT_MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// A route that receives Statuspage webhooks and applies them to a gate
/// ([`StatusGate::apply_webhook`]).
///
/// Statuspage cannot send a header of your choosing, so the secret is the
/// last segment of the URL you give it: mount [`router`](Self::router) under
/// a prefix, e.g. `/hooks/statuspage`, and subscribe
/// `https://your.host/hooks/statuspage/<secret>`. The segment is compared in
/// constant time; a wrong one gets `404 Not Found` without its body being
/// read, and the gate is not touched. Use a long random secret, and keep
/// the URL out of access logs.
///
/// Answers, all at once (applying a webhook is a parse and a lock, no I/O):
/// `204 No Content` when applied, `400 Bad Request` for a body that is not a
/// Statuspage webhook, `413 Payload Too Large` over the cap.
#[derive(Clone)]
#[must_use]
pub struct StatuspageWebhook {
    gate: StatusGate,
    secret: Arc<[u8]>,
    max_body: usize,
}

impl StatuspageWebhook {
    /// Applies webhooks posted to `/<secret>` to `gate`.
    pub fn new(gate: StatusGate, secret: impl Into<String>) -> Self {
        Self {
            gate,
            secret: Arc::from(secret.into().into_bytes()),
            max_body: DEFAULT_MAX_WEBHOOK_BODY,
        }
    }

    /// The largest body read (default [`DEFAULT_MAX_WEBHOOK_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The route, `POST /{secret}`, to mount with `Router::nest`.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/{secret}", post(receive))
            .with_state(Arc::new(self))
    }

    /// Whether `candidate` is the secret, in time that does not depend on
    /// where they differ.
    fn accepts(&self, candidate: &[u8]) -> bool {
        constant_time_eq(&self.secret, candidate)
    }
}

impl fmt::Debug for StatuspageWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NOTE: never the secret.
        f.debug_struct("StatuspageWebhook")
            .field("gate", &self.gate)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// Compares without stopping at the first difference. The length is not
/// hidden; the secret's length is no help to a guesser.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

async fn receive(
    State(hook): State<Arc<StatuspageWebhook>>,
    Path(secret): Path<String>,
    body: Body,
) -> Response {
    if !hook.accepts(secret.as_bytes()) {
        tracing::debug!(target: "tower_api_guard::gate", "statuspage webhook with a wrong secret");
        return StatusCode::NOT_FOUND.into_response();
    }
    let bytes = match ::axum::body::to_bytes(body, hook.max_body).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return if too_large {
                StatusCode::PAYLOAD_TOO_LARGE.into_response()
            } else {
                StatusCode::BAD_REQUEST.into_response()
            };
        }
    };
    match hook.gate.apply_webhook(&bytes) {
        Ok(status) => {
            tracing::info!(
                target: "tower_api_guard::gate",
                open = status.is_open(),
                "statuspage webhook applied"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => {
            tracing::debug!(target: "tower_api_guard::gate", %error, "statuspage webhook not understood");
            (StatusCode::BAD_REQUEST, "not a Statuspage webhook\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b""));
    }
}
