//! What is kept of a request to send it again.

use std::sync::Arc;

use http::{Extensions, Method, Request, Version};
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
/// and headers packed in one buffer ([`PackedHead`], reused from request to
/// request on a thread), so a request that succeeds at once costs a copy of
/// its head's bytes, not a `HeaderMap` copy and its allocations.
pub(crate) struct Template<B: Body> {
    pub(crate) method: Method,
    version: Version,
    head: PackedHead,
    extensions: Extensions,
    source: Source<B>,
}

impl<B: Body> Template<B> {
    /// The template for `request`, whose next bodies come from `source`.
    /// `None` when the head cannot be packed (4 GiB, less a byte, or more): the
    /// request is sent once.
    pub(crate) fn new(request: &Request<B>, source: Source<B>) -> Option<Self> {
        Some(Self {
            head: PackedHead::pack(request.uri(), request.headers())?,
            method: request.method().clone(),
            version: request.version(),
            extensions: request.extensions().clone(),
            source,
        })
    }

    /// A request for the next attempt: a copy of the head and of the body.
    /// `None` if the packed head no longer parses (see [`PackedHead::unpack`]).
    pub(crate) fn request(&self) -> Option<Request<B>> {
        let (uri, headers) = self.head.unpack()?;
        let mut request = Request::new(self.source.body());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = self.extensions.clone();
        Some(request)
    }
}
