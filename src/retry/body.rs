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
                    && held.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
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

/// How far a [`Prefetch`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// The body ended within the cap.
    Complete,
    /// The watch saw enough before the body ended.
    Enough,
    /// The body went over the cap.
    TooLarge,
    /// The body failed, stalled past the time bound, or its data is not contiguous.
    Unreadable,
}

/// Looks at the bytes of a body as a [`Prefetch`] reads them.
pub(crate) trait Watch {
    /// Takes the next chunk of data; `true` when it has seen enough.
    fn feed(&mut self, chunk: &[u8]) -> bool;
}

/// Keeps every byte: for error bodies, classified once complete.
#[derive(Debug, Default)]
pub(crate) struct Collect(pub(crate) Vec<u8>);

impl Watch for Collect {
    fn feed(&mut self, chunk: &[u8]) -> bool {
        self.0.extend_from_slice(chunk);
        false
    }
}

pin_project! {
    /// Reads the start of a body, up to `cap` bytes and within `timeout`,
    /// until the watch has seen enough or the body ends, keeping every frame
    /// so that nothing is lost when the response is handed on.
    pub(crate) struct Prefetch<B: Body, W> {
        held: Option<Held<B>>,
        watch: Option<W>,
        len: usize,
        cap: usize,
        #[pin]
        timeout: Sleep,
    }
}

impl<B: Body, W> Prefetch<B, W> {
    pub(crate) fn new(body: B, watch: W, cap: usize, timeout: Duration) -> Self {
        Self {
            held: Some(Held {
                frames: VecDeque::new(),
                error: None,
                rest: Some(Box::pin(body)),
            }),
            watch: Some(watch),
            len: 0,
            cap,
            timeout: tokio::time::sleep(timeout),
        }
    }
}

impl<B: Body, W: Watch> Future for Prefetch<B, W> {
    type Output = Option<Prefetched<B, W>>;

    /// `None` only when polled again after completion.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (Some(held), Some(watch)) = (this.held.as_mut(), this.watch.as_mut()) else {
            return Poll::Ready(None);
        };
        let outcome = loop {
            let Some(rest) = held.rest.as_mut() else {
                break ReadOutcome::Complete;
            };
            let room = this.cap.saturating_sub(*this.len) as u64;
            if *this.len > *this.cap || rest.size_hint().lower() > room {
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
                    let (enough, opaque) = match frame.data_ref() {
                        Some(data) => {
                            let chunk = data.chunk();
                            *this.len = this.len.saturating_add(data.remaining());
                            let opaque = chunk.len() != data.remaining();
                            (!opaque && watch.feed(chunk), opaque)
                        }
                        None => (false, false),
                    };
                    held.frames.push_back(frame);
                    if opaque {
                        break ReadOutcome::Unreadable;
                    }
                    if *this.len > *this.cap {
                        break ReadOutcome::TooLarge;
                    }
                    if enough {
                        break ReadOutcome::Enough;
                    }
                }
                Some(Err(error)) => {
                    held.error = Some(error);
                    held.rest = None;
                    break ReadOutcome::Unreadable;
                }
            }
        };
        match (this.held.take(), this.watch.take()) {
            (Some(held), Some(watch)) => Poll::Ready(Some(Prefetched {
                held,
                outcome,
                watch,
            })),
            _ => Poll::Ready(None),
        }
    }
}

/// The result of a [`Prefetch`].
pub(crate) struct Prefetched<B: Body, W> {
    pub(crate) held: Held<B>,
    pub(crate) outcome: ReadOutcome,
    pub(crate) watch: W,
}

impl<B: Body> Prefetched<B, Collect> {
    /// The view the classifier gets of an error body.
    pub(crate) fn view(&self) -> ErrorBody<'_> {
        match self.outcome {
            ReadOutcome::Complete | ReadOutcome::Enough => ErrorBody::Complete(&self.watch.0),
            ReadOutcome::TooLarge => ErrorBody::TooLarge,
            ReadOutcome::Unreadable => ErrorBody::Unreadable,
        }
    }
}
