//! The response body the retry layer hands on, and the capped read of error
//! bodies.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::classify::ErrorBody;

pin_project! {
    /// The body of a response from [`Retry`](super::Retry).
    ///
    /// A response whose body was never read (every success) is the inner body,
    /// polled directly. A response whose error body the layer read to
    /// classify it yields the frames read, in order, then the rest of the
    /// original stream: the caller gets every byte, and the trailers.
    pub struct ResponseBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Passthrough { #[pin] body: B },
        Held { held: Held<B> },
    }
}

/// The frames read of an error body, an error met while reading, and the unread rest.
pub(crate) struct Held<B: Body> {
    frames: VecDeque<Frame<B::Data>>,
    error: Option<B::Error>,
    rest: Option<Pin<Box<B>>>,
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }

    pub(crate) fn held(held: Held<B>) -> Self {
        Self {
            kind: Kind::Held { held },
        }
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Held { .. } => "held",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body.poll_frame(cx),
            KindProj::Held { held } => {
                if let Some(frame) = held.frames.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = held.error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                match held.rest.as_mut() {
                    Some(rest) => rest.as_mut().poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Held { held } => {
                held.frames.is_empty()
                    && held.error.is_none()
                    && held.rest.as_ref().map_or(true, |rest| rest.is_end_stream())
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Held { held } => {
                let read: u64 = held
                    .frames
                    .iter()
                    .filter_map(|frame| frame.data_ref())
                    .map(|data| data.remaining() as u64)
                    .sum();
                let Some(rest) = &held.rest else {
                    return SizeHint::with_exact(read);
                };
                let hint = rest.size_hint();
                let mut total = SizeHint::new();
                total.set_lower(hint.lower().saturating_add(read));
                if let Some(upper) = hint.upper() {
                    total.set_upper(upper.saturating_add(read));
                }
                total
            }
        }
    }
}

/// How far the read of an error body got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    Complete,
    TooLarge,
    Unreadable,
}

pin_project! {
    /// Reads an error body up to `cap` bytes, within `timeout`, keeping every
    /// frame so that nothing is lost when the response is handed on.
    pub(crate) struct Prefetch<B: Body> {
        held: Option<Held<B>>,
        len: usize,
        cap: usize,
        #[pin]
        timeout: Sleep,
    }
}

impl<B: Body> Prefetch<B> {
    pub(crate) fn new(body: B, cap: usize, timeout: Duration) -> Self {
        Self {
            held: Some(Held {
                frames: VecDeque::new(),
                error: None,
                rest: Some(Box::pin(body)),
            }),
            len: 0,
            cap,
            timeout: tokio::time::sleep(timeout),
        }
    }
}

impl<B: Body> Future for Prefetch<B> {
    type Output = Prefetched<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Prefetched<B>> {
        let mut this = self.project();
        let Some(held) = this.held.as_mut() else {
            // Polled after completion: report an empty, unreadable body.
            return Poll::Ready(Prefetched::empty());
        };
        let outcome = loop {
            let Some(rest) = held.rest.as_mut() else {
                break ReadOutcome::Complete;
            };
            let hint = rest.size_hint();
            if *this.len > *this.cap
                || hint.lower() > (*this.cap - (*this.len).min(*this.cap)) as u64
            {
                break ReadOutcome::TooLarge;
            }
            let frame = match rest.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    ready!(this.timeout.as_mut().poll(cx));
                    break ReadOutcome::Unreadable;
                }
            };
            match frame {
                None => held.rest = None,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        *this.len = this.len.saturating_add(data.remaining());
                    }
                    held.frames.push_back(frame);
                }
                Some(Err(error)) => {
                    held.error = Some(error);
                    held.rest = None;
                    break ReadOutcome::Unreadable;
                }
            }
        };
        let held = this.held.take().unwrap_or_else(Held::empty);
        let bytes = match outcome {
            ReadOutcome::Complete => contiguous(&held.frames),
            _ => None,
        };
        Poll::Ready(Prefetched {
            held,
            outcome,
            bytes,
        })
    }
}

/// The data of `frames` copied into one buffer (at most the cap, on the error path).
/// `None` when a frame's buffer is not contiguous.
fn contiguous<D: Buf>(frames: &VecDeque<Frame<D>>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for data in frames.iter().filter_map(Frame::data_ref) {
        let chunk = data.chunk();
        if chunk.len() != data.remaining() {
            return None;
        }
        out.extend_from_slice(chunk);
    }
    Some(out)
}

impl<B: Body> Held<B> {
    fn empty() -> Self {
        Self {
            frames: VecDeque::new(),
            error: None,
            rest: None,
        }
    }
}

/// The result of a [`Prefetch`].
pub(crate) struct Prefetched<B: Body> {
    pub(crate) held: Held<B>,
    pub(crate) outcome: ReadOutcome,
    bytes: Option<Vec<u8>>,
}

impl<B: Body> Prefetched<B> {
    fn empty() -> Self {
        Self {
            held: Held::empty(),
            outcome: ReadOutcome::Unreadable,
            bytes: None,
        }
    }

    /// The view the classifier gets.
    pub(crate) fn view(&self) -> ErrorBody<'_> {
        match (self.outcome, &self.bytes) {
            (ReadOutcome::Complete, Some(bytes)) => ErrorBody::Complete(bytes),
            (ReadOutcome::TooLarge, _) => ErrorBody::TooLarge,
            _ => ErrorBody::Unreadable,
        }
    }
}
