//! The response body of server mode: the inner service's body, or the
//! synthesized 503 JSON error.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::error::GateClosed;

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Closed { #[pin] body: Full<Bytes> },
    }
}

pin_project! {
    /// Server-mode response body: the inner service's body, or the gate's own
    /// 503 JSON body.
    #[derive(Debug)]
    pub struct GateBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

impl<B> GateBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn closed(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Closed { body },
        }
    }

    /// `true` when the gate answered (503) rather than the inner service.
    pub fn is_gate_answer(&self) -> bool {
        matches!(self.kind, Kind::Closed { .. })
    }
}

impl<B> Body for GateBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Closed { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|never: Infallible| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Closed { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Closed { body } => body.size_hint(),
        }
    }
}

/// The 503 answer for a closed gate. The `GateClosed` rides along in the
/// response extensions.
pub(crate) fn closed_response(closed: GateClosed, retry_after: Duration) -> Response<Full<Bytes>> {
    let mut resp = response_503(&closed.to_string(), retry_after);
    resp.extensions_mut().insert(closed);
    resp
}

/// A 503 with the JSON error body and `Retry-After`.
pub(crate) fn response_503(message: &str, retry_after: Duration) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "message": message,
        }
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    resp
}
