//! Request bodies that can be sent more than once.
//!
//! The retry layer keeps the caller's request body type. How a body is
//! replayed is said by [`ReplayBody::replay`], which looks at the body
//! without taking it:
//! - [`Replay::Clone`]: the body is already in memory and cheap to copy
//!   (`Full<Bytes>` clones a reference count, never the bytes);
//! - [`Replay::Buffer`]: the body is read once into memory (up to a cap) and
//!   each attempt gets a body of the same type rebuilt around those bytes
//!   (boxed bodies, axum's, tonic's);
//! - [`Replay::Once`]: the body cannot be rebuilt (hyper's `Incoming`); the
//!   request is sent once and not retried.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Empty, Full};
use pin_project_lite::pin_project;

/// How a request body is made available for another attempt.
pub enum Replay<B: Body> {
    /// The body is in memory and cheap to copy: the first attempt gets the
    /// caller's body, and each retry a copy made with this function. For
    /// bodies whose copy shares their bytes (`Full<Bytes>` clones a
    /// reference count).
    Clone(fn(&B) -> B),
    /// Read the body into memory once (up to the layer's cap), and give each
    /// attempt a body rebuilt by this function around the buffered copy; it
    /// must yield exactly the copy's frames.
    Buffer(fn(ReplayedBody<B>) -> B),
    /// Send the body once; the request is not retried.
    Once,
}

impl<B: Body> fmt::Debug for Replay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replay::Clone(_) => "Replay::Clone",
            Replay::Buffer(_) => "Replay::Buffer",
            Replay::Once => "Replay::Once",
        })
    }
}

/// A request body type the retry layer knows how to send again.
///
/// Implemented for `Full<Bytes>`, `Empty<Bytes>`, `String`, `BoxBody`,
/// `UnsyncBoxBody` and hyper's `Incoming` (sent once). Implement it for your
/// own body type by choosing a [`Replay`] strategy.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_api_guard::retry::{Replay, ReplayBody};
///
/// let body = Full::new(Bytes::from_static(b"{}"));
/// assert!(matches!(body.replay(), Replay::Clone(_)));
/// ```
pub trait ReplayBody: Body + Sized {
    /// Chooses how this body is replayed. It takes the body by reference,
    /// so a body copied for retries goes to the first attempt as it came.
    fn replay(&self) -> Replay<Self>;
}

impl ReplayBody for Full<Bytes> {
    fn replay(&self) -> Replay<Self> {
        Replay::Clone(Clone::clone)
    }
}

impl ReplayBody for Empty<Bytes> {
    fn replay(&self) -> Replay<Self> {
        Replay::Clone(Clone::clone)
    }
}

impl ReplayBody for String {
    fn replay(&self) -> Replay<Self> {
        // A `String` clone copies its bytes; request bodies of this type are
        // small by nature, and the copy is bounded by the replay cap.
        Replay::Clone(Clone::clone)
    }
}

impl<E> ReplayBody for BoxBody<Bytes, E>
where
    E: Send + Sync + 'static,
{
    fn replay(&self) -> Replay<Self> {
        Replay::Buffer(BoxBody::new)
    }
}

impl<E> ReplayBody for UnsyncBoxBody<Bytes, E>
where
    E: Send + 'static,
{
    fn replay(&self) -> Replay<Self> {
        Replay::Buffer(UnsyncBoxBody::new)
    }
}

impl ReplayBody for hyper::body::Incoming {
    fn replay(&self) -> Replay<Self> {
        Replay::Once
    }
}

/// The bytes of a buffered request body, shared by every attempt.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
}

pin_project! {
    /// A replayed request body: the buffered frames, then (for a body over the
    /// cap, sent once) the unread rest of the original.
    ///
    /// Pass it to the function of [`Replay::Buffer`].
    pub struct ReplayedBody<B: Body> {
        buffered: Arc<Buffered>,
        next: usize,
        trailers_sent: bool,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    }
}

impl<B: Body> ReplayedBody<B> {
    pub(crate) fn replay(buffered: &Arc<Buffered>) -> Self {
        Self {
            buffered: Arc::clone(buffered),
            next: 0,
            trailers_sent: false,
            error: None,
            rest: None,
        }
    }
}

impl<B: Body> fmt::Debug for ReplayedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayedBody")
            .field("buffered_len", &self.buffered.len)
            .field("next_chunk", &self.next)
            .field("has_rest", &self.rest.is_some())
            .finish()
    }
}

impl<B: Body> Body for ReplayedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(chunk) = this.buffered.chunks.get(*this.next) {
            *this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if !*this.trailers_sent {
            *this.trailers_sent = true;
            if let Some(trailers) = &this.buffered.trailers {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
            }
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(rest.as_mut().poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.buffered.chunks.len()
            && (self.trailers_sent || self.buffered.trailers.is_none())
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let unsent: u64 = self
            .buffered
            .chunks
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .map(|chunk| chunk.len() as u64)
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(unsent),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut total = SizeHint::new();
                total.set_lower(hint.lower().saturating_add(unsent));
                if let Some(upper) = hint.upper() {
                    total.set_upper(upper.saturating_add(unsent));
                }
                total
            }
        }
    }
}

/// Reads a request body into memory, up to `cap` bytes.
pub(crate) struct Buffering<B: Body> {
    body: Option<Pin<Box<B>>>,
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
    cap: u64,
}

/// What buffering a request body gave.
pub(crate) enum BufferOutcome<B: Body> {
    /// The whole body, within the cap: it can be replayed.
    Complete(Arc<Buffered>),
    /// Over the cap, or the body failed: send what was read, then the rest
    /// (or the error), once.
    Once(ReplayedBody<B>),
}

impl<B: Body> Buffering<B> {
    pub(crate) fn new(body: B, cap: u64) -> Self {
        Self {
            body: Some(Box::pin(body)),
            chunks: VecDeque::new(),
            trailers: None,
            len: 0,
            cap,
        }
    }

    fn finish(&mut self, error: Option<B::Error>, rest: Option<Pin<Box<B>>>) -> BufferOutcome<B> {
        let buffered = Arc::new(Buffered {
            chunks: std::mem::take(&mut self.chunks).into(),
            trailers: self.trailers.take(),
            len: self.len,
        });
        if error.is_none() && rest.is_none() {
            return BufferOutcome::Complete(buffered);
        }
        let mut once = ReplayedBody::replay(&buffered);
        once.error = error;
        once.rest = rest;
        BufferOutcome::Once(once)
    }

    pub(crate) fn poll_buffer(&mut self, cx: &mut Context<'_>) -> Poll<BufferOutcome<B>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(self.finish(None, None));
            };
            if self.len > self.cap {
                let rest = self.body.take();
                return Poll::Ready(self.finish(None, rest));
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                None => {
                    self.body = None;
                }
                Some(Err(error)) => {
                    self.body = None;
                    return Poll::Ready(self.finish(Some(error), None));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let chunk = data.copy_to_bytes(data.remaining());
                        self.len = self.len.saturating_add(chunk.len() as u64);
                        self.chunks.push_back(chunk);
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            match &mut self.trailers {
                                Some(existing) => existing.extend(trailers),
                                None => self.trailers = Some(trailers),
                            }
                        }
                    }
                },
            }
        }
    }
}

impl<B: Body> fmt::Debug for Buffering<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffering")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}
