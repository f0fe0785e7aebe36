//! What is kept of a request to send it again.

use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};
use http_body::Body;

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

/// The request's head and a source of bodies: every attempt is built from it.
pub(crate) struct Template<B: Body> {
    pub(crate) method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    source: Source<B>,
}

impl<B: Body> Template<B> {
    pub(crate) fn new(parts: http::request::Parts, source: Source<B>) -> Self {
        Self {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
            source,
        }
    }

    /// A request for the next attempt: a copy of the head and of the body.
    pub(crate) fn request(&self) -> Request<B> {
        let body = match &self.source {
            Source::Clone { body, clone } => clone(body),
            Source::Buffered { buffered, rebuild } => rebuild(ReplayedBody::replay(buffered)),
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }
}
