//! The response futures of [`StatusGateService`](super::StatusGateService):
//! either the inner call, or an answer ready at once. No boxing.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::BoxError;

use super::body::{response_503, GateBody};
use super::error::GateClosed;
use super::handle::StatusGate;
use crate::cold::cold_path;

/// A probe that succeeded (2xx) opens the gate locally.
fn settle_probe<B>(probe: &mut Option<StatusGate>, resp: &Response<B>) {
    if let Some(gate) = probe.take() {
        if resp.status().is_success() {
            gate.shared().probe_succeeded();
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        Forward { #[pin] fut: F, probe: Option<StatusGate> },
        Ready { answer: Option<T> },
    }
}

pin_project! {
    /// Client-mode future: the inner call, or a [`GateClosed`] error at once.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F, GateClosed>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn forward(fut: F, probe: Option<StatusGate>) -> Self {
        Self {
            kind: Kind::Forward { fut, probe },
        }
    }

    pub(crate) fn closed(closed: GateClosed) -> Self {
        Self {
            kind: Kind::Ready {
                answer: Some(closed),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    // Inlined into its caller's poll: a wrapper this thin costs a request
    // more in its own call, frame and lines of code than in its work, and on
    // loopback with two workers whose idle CPUs halt each line of code a
    // request runs costs about 17 ns (benches/JOURNAL.md, item 26).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            // Without a probe to settle, the outcome is handed on untouched,
            // so it is written straight into this poll's (a look at the
            // response in between made it a copy; `Poll::map_err` here
            // measured 14 instructions more).
            KindProj::Forward { fut, probe: None } => match ready!(fut.poll(cx)) {
                Ok(resp) => Poll::Ready(Ok(resp)),
                Err(error) => {
                    cold_path();
                    Poll::Ready(Err(error.into()))
                }
            },
            KindProj::Forward { fut, probe } => match ready!(fut.poll(cx)) {
                Ok(resp) => {
                    settle_probe(probe, &resp);
                    Poll::Ready(Ok(resp))
                }
                Err(error) => Poll::Ready(Err(error.into())),
            },
            KindProj::Ready { answer } => {
                cold_path();
                Poll::Ready(Err(match answer.take() {
                    Some(closed) => closed.into(),
                    None => "ResponseFuture polled after completion".into(),
                }))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// Server-mode future: the inner call, or a 503 answer at once.
    pub struct Respond503Future<F> {
        #[pin]
        kind: Kind<F, Response<Full<Bytes>>>,
    }
}

impl<F> Respond503Future<F> {
    pub(crate) fn forward(fut: F, probe: Option<StatusGate>) -> Self {
        Self {
            kind: Kind::Forward { fut, probe },
        }
    }

    pub(crate) fn closed(resp: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Ready { answer: Some(resp) },
        }
    }
}

impl<F, B, E> Future for Respond503Future<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<GateBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Forward { fut, probe } => {
                let res = ready!(fut.poll(cx));
                Poll::Ready(res.map(|resp| {
                    settle_probe(probe, &resp);
                    resp.map(GateBody::inner)
                }))
            }
            KindProj::Ready { answer } => {
                // Polled again after completion: answer another 503 rather than panic.
                let resp = answer
                    .take()
                    .unwrap_or_else(|| response_503("status gate closed", Duration::from_secs(1)));
                Poll::Ready(Ok(resp.map(GateBody::closed)))
            }
        }
    }
}

impl<F> std::fmt::Debug for Respond503Future<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Respond503Future").finish_non_exhaustive()
    }
}
