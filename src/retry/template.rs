//! What is kept of a request to send it again.

use std::sync::Arc;

use http::{Method, Request};
use http_body::Body;

use super::head::PackedHead;
use super::replay::{Buffered, ReplayedBody};

/// Where each attempt's body comes from.
pub(crate) enum Source<B: Body> {
    /// Copies of a body already in memory.
    Clone { body: B, clone: fn(&B) -> B },
    /// Rebuilt around the buffered bytes.
    Buffered {
        buffered: Arc<Buffered>,
        rebuild: fn(ReplayedBody<B>) -> B,
    },
}

impl<B: Body> Source<B> {
    /// A body for one attempt.
    pub(crate) fn body(&self) -> B {
        match self {
            Source::Clone { body, clone } => clone(body),
            Source::Buffered { buffered, rebuild } => rebuild(ReplayedBody::replay(buffered)),
        }
    }
}

/// The request's head and a source of bodies: every retry is built from it.
///
/// The first attempt gets the caller's own head; the template keeps the URI
/// and headers packed in one buffer, with the rest of the head, in a box
/// ([`PackedHead`], reused from request to request on a thread), so a request
/// that succeeds at once costs a copy of its head's bytes, not a `HeaderMap`
/// copy and its allocations.
pub(crate) struct Template<B: Body> {
    head: PackedHead,
    source: Source<B>,
}

impl<B: Body> Template<B> {
    /// The template for `request`, whose next bodies come from `source`.
    /// `None` when the head cannot be packed (4 GiB, less a byte, or more): the
    /// request is sent once.
    pub(crate) fn new(request: &Request<B>, source: Source<B>) -> Option<Self> {
        Some(Self {
            head: PackedHead::pack(request)?,
            source,
        })
    }

    /// The request's method.
    pub(crate) fn method(&self) -> &Method {
        self.head.method()
    }

    /// Leaves the head's box to the next request on this thread (see
    /// [`PackedHead::recycle`]).
    #[inline]
    pub(crate) fn recycle(self) {
        self.head.recycle();
    }

    /// A request for the next attempt: a copy of the head and of the body.
    /// `None` if the packed head no longer parses (see [`PackedHead::request`]).
    pub(crate) fn request(&self) -> Option<Request<B>> {
        self.head.request(self.source.body())
    }
}
