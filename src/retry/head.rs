//! A request's head kept to send it again: its URI and headers packed into
//! one buffer, beside its method, version and extensions, all in one box.
//!
//! Cloning a `HeaderMap` costs two allocations, plus one for the first clone
//! of every header value or custom name built from a string (`Bytes` backed by
//! a `Vec` turn shared on their first clone), plus one for the URI. That is
//! most of what a replaying retry adds to a request that succeeds at once.
//! Here the original head goes to the first attempt untouched, and what a
//! retry needs is copied as bytes into a single buffer; a retry parses it
//! back (the rare path pays, not the happy one).
//!
//! The box and its buffer are reused: a finished request's head, given back
//! with [`PackedHead::recycle`], leaves them to the next head kept on the same
//! thread ([`SPARE`]), so a thread sending one request
//! after another allocates them once, not once a request (an allocation and
//! a free cost about 140 instructions, a sixth of what keeping a small head
//! cost with them). Boxed, the kept head takes 8 bytes of the response
//! future rather than 80, which keeps the future around a boxed client's
//! future at 128 bytes or less: moved in a few inline instructions rather
//! than with a call to `memcpy` (benches/JOURNAL.md, item 23).
//!
//! Layout of the buffer: scheme, authority, path-and-query, then for each
//! header (in iteration order, so repeated names keep their order) one flags
//! byte, the name's and the value's lengths (`u32`, little endian), the name
//! and the value.

use std::cell::Cell;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use crate::cold::cold_path;

const SENSITIVE: u8 = 1;
/// Flags byte + two `u32` lengths.
const ENTRY_HEADER: usize = 1 + 4 + 4;

/// The head of a request, kept: see the [module docs](self).
///
/// It has no `Drop`: its owner gives it back with [`recycle`](Self::recycle)
/// (a head dropped is freed, and the thread's next head allocates anew).
/// Without an `Option` to take the box from, `Option<PackedHead>`, and
/// `Option`s of what holds it, take no more room than it does.
pub(crate) struct PackedHead(Box<Kept>);

/// What is kept of a head, in the box a thread reuses.
#[derive(Default)]
struct Kept {
    buf: Vec<u8>,
    /// The lengths of the URI's parts, [`ABSENT`] for a part it lacks.
    scheme: u32,
    authority: u32,
    path_and_query: u32,
    /// `HeaderMap` holds at most 32,768 entries.
    headers: u32,
    method: Method,
    version: Version,
    extensions: Extensions,
}

/// The length of a URI part the URI lacks: no part is this long.
const ABSENT: u32 = u32::MAX;

/// Room a thread's first buffer is made with: typical API requests pack
/// into a few hundred bytes, so it grows at most a few times, once a thread
/// (the buffer is reused), and packing reserves nothing.
const FIRST_CAPACITY: usize = 512;

impl PackedHead {
    /// Keeps `request`'s head, packing its URI and headers in one pass;
    /// `None` if the packed bytes reach `u32::MAX` (4 GiB less a byte):
    /// lengths are kept as `u32`.
    // Inlined into `Template::new`, its one caller.
    #[inline]
    pub(crate) fn pack<B>(request: &Request<B>) -> Option<Self> {
        let (uri, headers) = (request.uri(), request.headers());
        let scheme = uri.scheme_str();
        let authority = uri.authority().map(Authority::as_str);
        let path_and_query = uri.path_and_query().map(PathAndQuery::as_str);
        let mut kept = take_spare();
        let buf = &mut kept.buf;
        // Lengths are cut to `u32` unchecked: a cut one is caught below, as
        // no part is longer than the whole.
        let mut part = |part: Option<&str>| match part {
            Some(part) => {
                buf.extend_from_slice(part.as_bytes());
                part.len() as u32
            }
            None => ABSENT,
        };
        let scheme = part(scheme);
        let authority = part(authority);
        let path_and_query = part(path_and_query);
        for (name, value) in headers {
            let name = name.as_str().as_bytes();
            let value_bytes = value.as_bytes();
            // Cut lengths are caught below, as for the URI's parts.
            let [a, b, c, d] = (name.len() as u32).to_le_bytes();
            let [e, f, g, h] = (value_bytes.len() as u32).to_le_bytes();
            let flags = if value.is_sensitive() { SENSITIVE } else { 0 };
            buf.extend_from_slice(&[flags, a, b, c, d, e, f, g, h]);
            buf.extend_from_slice(name);
            buf.extend_from_slice(value_bytes);
        }
        // Under `ABSENT`, so no part's length was cut or is the sentinel,
        // and (at 9 bytes or more an entry) neither was the count.
        if buf.len() >= ABSENT as usize {
            cold_path();
            return None;
        }
        kept.scheme = scheme;
        kept.authority = authority;
        kept.path_and_query = path_and_query;
        kept.headers = headers.len() as u32;
        kept.method.clone_from(request.method());
        kept.version = request.version();
        if !request.extensions().is_empty() {
            cold_path();
            kept.extensions = request.extensions().clone();
        }
        Some(Self(kept))
    }

    /// The request's method.
    pub(crate) fn method(&self) -> &Method {
        &self.0.method
    }

    /// The request again, around `body`; `None` if a part no longer parses
    /// (a header value made with `from_maybe_shared_unchecked` that was
    /// never valid).
    pub(crate) fn request<B>(&self, body: B) -> Option<Request<B>> {
        let kept = &*self.0;
        // One copy, on the rare path, that every parsed part shares.
        let mut rest = Bytes::copy_from_slice(&kept.buf);
        let mut take = |len: usize| (len <= rest.len()).then(|| rest.split_to(len));
        let mut parts = http::uri::Parts::default();
        let present = |len: u32| (len != ABSENT).then_some(len as usize);
        if let Some(len) = present(kept.scheme) {
            parts.scheme = Some(Scheme::try_from(&take(len)?[..]).ok()?);
        }
        if let Some(len) = present(kept.authority) {
            parts.authority = Some(Authority::from_maybe_shared(take(len)?).ok()?);
        }
        if let Some(len) = present(kept.path_and_query) {
            parts.path_and_query = Some(PathAndQuery::from_maybe_shared(take(len)?).ok()?);
        }
        let uri = Uri::from_parts(parts).ok()?;

        let mut headers = HeaderMap::with_capacity(kept.headers as usize);
        for _ in 0..kept.headers {
            let entry = take(ENTRY_HEADER)?;
            let (flags, lengths) = entry.split_first()?;
            let (name_len, value_len) = lengths.split_at(4);
            let name_len = u32::from_le_bytes(name_len.try_into().ok()?) as usize;
            let value_len = u32::from_le_bytes(value_len.try_into().ok()?) as usize;
            let name = HeaderName::from_bytes(&take(name_len)?).ok()?;
            let mut value = HeaderValue::from_maybe_shared(take(value_len)?).ok()?;
            value.set_sensitive(flags & SENSITIVE != 0);
            headers.append(name, value);
        }
        let mut request = Request::new(body);
        *request.method_mut() = kept.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = kept.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = kept.extensions.clone();
        Some(request)
    }
}

thread_local! {
    /// The box of the last head given back on this thread, for the next one. At
    /// most one a thread, with a buffer of at most [`MAX_SPARE`] bytes and
    /// no extensions. Like memory given back to the allocator, it is not
    /// zeroed: the bytes of a past head stay in the buffer until overwritten,
    /// and nothing reads them.
    static SPARE: Cell<Option<Box<Kept>>> = const { Cell::new(None) };
}

/// Buffers larger than this (a head with hundreds of headers, or one huge
/// value) are freed rather than kept: a thread keeps no more than this.
/// Typical API requests pack into a few hundred bytes.
const MAX_SPARE: usize = 8 * 1024;

/// This thread's spare box, its buffer emptied; a new one if there is none
/// (or while the thread is being torn down).
// Inlined here and in `recycle`: each had been a call through the
// dynamic symbol table from the caller's crate (21 instructions a call).
#[inline]
fn take_spare() -> Box<Kept> {
    match SPARE.try_with(Cell::take) {
        Ok(Some(mut kept)) => {
            kept.buf.clear();
            kept
        }
        _ => new_kept(),
    }
}

/// A box for a thread's first head (or one kept while another holds the
/// spare).
#[cold]
#[inline(never)]
fn new_kept() -> Box<Kept> {
    let mut kept = Box::<Kept>::default();
    kept.buf.reserve(FIRST_CAPACITY);
    kept
}

impl PackedHead {
    /// Leaves the box to the next head kept on this thread, unless its
    /// buffer grew past [`MAX_SPARE`]. The extensions go now: their values
    /// are the caller's. A spare already there is freed; during the thread's
    /// teardown this box is.
    #[inline]
    pub(crate) fn recycle(self) {
        let mut kept = self.0;
        if kept.buf.capacity() > MAX_SPARE {
            return;
        }
        if !kept.extensions.is_empty() {
            kept.extensions.clear();
        }
        let _ = SPARE.try_with(|spare| spare.set(Some(kept)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request with `uri` and `headers` (name, value, sensitive).
    fn request(uri: &str, headers: &[(&str, &str, bool)]) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = uri.parse().unwrap();
        for (name, value, sensitive) in headers {
            let mut value = HeaderValue::from_str(value).unwrap();
            value.set_sensitive(*sensitive);
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().append(name, value);
        }
        request
    }

    /// The request a retry would send, from the head kept of `request`.
    fn again(packed: &PackedHead) -> Request<()> {
        packed.request(()).unwrap()
    }

    fn pairs(m: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        m.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
            .collect()
    }

    fn round_trip(original: &Request<()>) {
        let packed = PackedHead::pack(original).unwrap();
        let copy = again(&packed);
        assert_eq!(copy.method(), original.method());
        assert_eq!(copy.version(), original.version());
        let (uri, uri2) = (original.uri(), copy.uri());
        assert_eq!(uri2, uri);
        assert_eq!(uri2.to_string(), uri.to_string());
        assert_eq!(uri2.scheme(), uri.scheme());
        assert_eq!(uri2.authority(), uri.authority());
        assert_eq!(uri2.path_and_query(), uri.path_and_query());
        assert_eq!(pairs(copy.headers()), pairs(original.headers()));
        // Twice: making a request leaves the kept head as it was.
        assert_eq!(again(&packed).headers(), original.headers());
    }

    #[test]
    fn uri_forms_round_trip() {
        for uri in [
            "https://api.anthropic.com/v1/messages",
            "https://api.anthropic.com/v1/messages?beta=true&x=%20y",
            "http://127.0.0.1:8080",
            "http://user@example.com:80/",
            "/v1/messages?stream=1",
            "/",
            "*",
            "example.com:443",
            "custom+scheme://host/path",
        ] {
            round_trip(&request(uri, &[]));
        }
    }

    #[test]
    fn headers_keep_order_repeats_and_sensitivity() {
        round_trip(&request(
            "https://api.anthropic.com/v1/messages",
            &[
                ("content-type", "application/json", false),
                ("x-api-key", "sk-ant-secret", true),
                ("anthropic-beta", "a", false),
                ("accept", "*/*", false),
                ("anthropic-beta", "b", false),
                ("x-empty", "", false),
                ("x-obs", "caf\u{e9}", false),
            ],
        ));
    }

    #[test]
    fn method_version_and_extensions_round_trip() {
        #[derive(Clone, Debug, PartialEq)]
        struct Tag(u32);
        let mut original = request("/v1/messages", &[("accept", "*/*", false)]);
        *original.method_mut() = Method::from_bytes(b"PURGE-CACHE").unwrap();
        *original.version_mut() = Version::HTTP_2;
        original.extensions_mut().insert(Tag(7));
        round_trip(&original);
        let packed = PackedHead::pack(&original).unwrap();
        assert_eq!(again(&packed).extensions().get::<Tag>(), Some(&Tag(7)));
        assert_eq!(packed.method(), original.method());
    }

    #[test]
    fn a_recycled_head_leaves_its_box_to_the_next_and_nothing_of_itself() {
        #[derive(Clone)]
        struct Tag;
        let long = "x".repeat(300);
        let mut first = request(
            "https://api.anthropic.com/v1/messages",
            &[
                ("x-long", &long, false),
                ("x-api-key", "sk-ant-first", true),
            ],
        );
        *first.method_mut() = Method::PUT;
        first.extensions_mut().insert(Tag);
        let packed = PackedHead::pack(&first).unwrap();
        let kept = &*packed.0;
        let (reused_box, reused_buf) = (std::ptr::from_ref(kept), kept.buf.as_ptr());
        packed.recycle();

        let second = request("/v1/complete", &[("accept", "*/*", false)]);
        let packed = PackedHead::pack(&second).unwrap();
        let kept = &*packed.0;
        assert_eq!(std::ptr::from_ref(kept), reused_box, "the box is reused");
        assert_eq!(kept.buf.as_ptr(), reused_buf, "and so is its buffer");
        let copy = again(&packed);
        assert_eq!(copy.uri(), second.uri());
        assert_eq!(copy.headers(), second.headers(), "no header of the first");
        assert_eq!(copy.method(), Method::GET, "nor its method");
        assert!(
            copy.extensions().get::<Tag>().is_none(),
            "nor its extensions"
        );
        // A head is kept while another holds the spare: a box of its own.
        let other = PackedHead::pack(&second).unwrap();
        assert_ne!(std::ptr::from_ref(&*other.0), std::ptr::from_ref(kept));
    }

    #[test]
    fn a_large_buffer_is_freed_not_kept() {
        // Start from an empty spare, whatever ran on this thread before.
        SPARE.with(Cell::take);
        let big = "v".repeat(MAX_SPARE + 1);
        let packed = PackedHead::pack(&request("/", &[("cookie", &big, false)])).unwrap();
        assert!(packed.0.buf.capacity() > MAX_SPARE);
        packed.recycle();
        assert!(SPARE.with(Cell::take).is_none());
    }

    #[test]
    fn a_long_value_round_trips() {
        let long = "v".repeat(100_000);
        round_trip(&request("/", &[("cookie", &long, true)]));
    }
}
