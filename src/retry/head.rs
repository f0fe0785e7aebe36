//! A request's URI and headers packed into one buffer, kept to send them again.
//!
//! Cloning a `HeaderMap` costs two allocations, plus one for the first clone
//! of every header value or custom name built from a string (`Bytes` backed by
//! a `Vec` turn shared on their first clone), plus one for the URI. That is
//! most of what a replaying retry adds to a request that succeeds at once.
//! Here the original head goes to the first attempt untouched, and what a
//! retry needs is copied as bytes into a single buffer; a retry parses it
//! back (the rare path pays, not the happy one).
//!
//! The buffer is reused: a dropped head leaves it to the next head packed on
//! the same thread ([`SPARE`]), so a thread sending one request after another
//! allocates it once, not once a request (an allocation and a free cost about
//! 140 instructions, a sixth of what keeping a small head cost with them).
//!
//! Layout of `buf`: scheme, authority, path-and-query, then for each header
//! (in iteration order, so repeated names keep their order) one flags byte,
//! the name's and the value's lengths (`u32`, little endian), the name and
//! the value.

use std::cell::Cell;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Uri};

const SENSITIVE: u8 = 1;
/// Flags byte + two `u32` lengths.
const ENTRY_HEADER: usize = 1 + 4 + 4;

/// The URI and headers of a request, packed.
pub(crate) struct PackedHead {
    buf: Vec<u8>,
    /// The lengths of the URI's parts, [`ABSENT`] for a part it lacks.
    scheme: u32,
    authority: u32,
    path_and_query: u32,
    /// `HeaderMap` holds at most 32,768 entries.
    headers: u32,
}

/// The length of a URI part the URI lacks: no part is this long.
const ABSENT: u32 = u32::MAX;

/// Room guessed for one header's name and value; the buffer grows past it
/// when needed.
const GUESS_PER_HEADER: usize = 48;

impl PackedHead {
    /// Packs `uri` and `headers` in one pass; `None` if the packed bytes
    /// reach `u32::MAX` (4 GiB less a byte): lengths are kept as `u32`.
    // Inlined into `Template::new`, its one caller, the packed head is
    // written in place instead of moved (about 11 instructions a call).
    #[inline]
    pub(crate) fn pack(uri: &Uri, headers: &HeaderMap) -> Option<Self> {
        let scheme = uri.scheme_str();
        let authority = uri.authority().map(Authority::as_str);
        let path_and_query = uri.path_and_query().map(PathAndQuery::as_str);
        let len = |part: Option<&str>| part.map_or(0, str::len);
        let guess = len(scheme)
            + len(authority)
            + len(path_and_query)
            + headers.len() * (ENTRY_HEADER + GUESS_PER_HEADER);
        let mut buf = take_spare();
        buf.reserve(guess);
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
            return None;
        }
        Some(Self {
            buf,
            scheme,
            authority,
            path_and_query,
            headers: headers.len() as u32,
        })
    }

    /// The URI and headers again; `None` if a part no longer parses (a
    /// header value made with `from_maybe_shared_unchecked` that was never
    /// valid).
    pub(crate) fn unpack(&self) -> Option<(Uri, HeaderMap)> {
        // One copy, on the rare path, that every parsed part shares.
        let mut rest = Bytes::copy_from_slice(&self.buf);
        let mut take = |len: usize| (len <= rest.len()).then(|| rest.split_to(len));
        let mut parts = http::uri::Parts::default();
        let present = |len: u32| (len != ABSENT).then_some(len as usize);
        if let Some(len) = present(self.scheme) {
            parts.scheme = Some(Scheme::try_from(&take(len)?[..]).ok()?);
        }
        if let Some(len) = present(self.authority) {
            parts.authority = Some(Authority::from_maybe_shared(take(len)?).ok()?);
        }
        if let Some(len) = present(self.path_and_query) {
            parts.path_and_query = Some(PathAndQuery::from_maybe_shared(take(len)?).ok()?);
        }
        let uri = Uri::from_parts(parts).ok()?;

        let mut headers = HeaderMap::with_capacity(self.headers as usize);
        for _ in 0..self.headers {
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
        Some((uri, headers))
    }
}

thread_local! {
    /// The buffer of the last head dropped on this thread, empty, for the
    /// next one. At most one a thread, of at most [`MAX_SPARE`] bytes. Like
    /// memory given back to the allocator, it is not zeroed: the bytes of a
    /// past head stay in it until overwritten, and nothing reads them.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Buffers larger than this (a head with hundreds of headers, or one huge
/// value) are freed rather than kept: a thread keeps no more than this.
/// Typical API requests pack into a few hundred bytes.
const MAX_SPARE: usize = 8 * 1024;

/// This thread's spare buffer, emptied; a new one if there is none (or
/// while the thread is being torn down).
// Inlined here and in `drop` below: each had been a call through the
// dynamic symbol table from the caller's crate (21 instructions a call).
#[inline]
fn take_spare() -> Vec<u8> {
    let mut buf = SPARE.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    buf
}

impl Drop for PackedHead {
    #[inline]
    fn drop(&mut self) {
        if self.buf.capacity() <= MAX_SPARE {
            let buf = std::mem::take(&mut self.buf);
            // A spare already there is freed. During the thread's teardown
            // `buf` is freed here instead.
            let _ = SPARE.try_with(|spare| spare.set(buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(uri: &str, headers: &[(&str, &str, bool)]) {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value, sensitive) in headers {
            let mut value = HeaderValue::from_str(value).unwrap();
            value.set_sensitive(*sensitive);
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
        let packed = PackedHead::pack(&uri, &map).unwrap();
        let (uri2, map2) = packed.unpack().unwrap();
        assert_eq!(uri2, uri);
        assert_eq!(uri2.to_string(), uri.to_string());
        assert_eq!(uri2.scheme(), uri.scheme());
        assert_eq!(uri2.authority(), uri.authority());
        assert_eq!(uri2.path_and_query(), uri.path_and_query());
        let pairs = |m: &HeaderMap| -> Vec<(String, Vec<u8>, bool)> {
            m.iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
                .collect()
        };
        assert_eq!(pairs(&map2), pairs(&map));
        // Twice: unpacking leaves the packed head as it was.
        assert_eq!(packed.unpack().unwrap().1, map);
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
            round_trip(uri, &[]);
        }
    }

    #[test]
    fn headers_keep_order_repeats_and_sensitivity() {
        round_trip(
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
        );
    }

    #[test]
    fn a_dropped_head_leaves_its_buffer_to_the_next_and_no_stale_bytes() {
        let long = "x".repeat(300);
        let uri: Uri = "https://api.anthropic.com/v1/messages".parse().unwrap();
        let mut first = HeaderMap::new();
        first.insert("x-long", HeaderValue::from_str(&long).unwrap());
        first.insert("x-api-key", HeaderValue::from_static("sk-ant-first"));
        let packed = PackedHead::pack(&uri, &first).unwrap();
        let reused = packed.buf.as_ptr();
        drop(packed);

        let uri: Uri = "/v1/complete".parse().unwrap();
        let mut second = HeaderMap::new();
        second.insert("accept", HeaderValue::from_static("*/*"));
        let packed = PackedHead::pack(&uri, &second).unwrap();
        assert_eq!(packed.buf.as_ptr(), reused, "the spare buffer is reused");
        let (uri2, headers2) = packed.unpack().unwrap();
        assert_eq!(uri2, uri);
        assert_eq!(headers2, second, "nothing of the first head is left");
        // A head is packed while another holds the spare: a buffer of its own.
        let other = PackedHead::pack(&uri, &second).unwrap();
        assert_ne!(other.buf.as_ptr(), packed.buf.as_ptr());
    }

    #[test]
    fn a_large_buffer_is_freed_not_kept() {
        // Start from an empty spare, whatever ran on this thread before.
        drop(take_spare());
        let big = "v".repeat(MAX_SPARE + 1);
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_str(&big).unwrap());
        let packed = PackedHead::pack(&"/".parse().unwrap(), &headers).unwrap();
        assert!(packed.buf.capacity() > MAX_SPARE);
        drop(packed);
        assert_eq!(SPARE.with(|spare| spare.take().capacity()), 0);
    }

    #[test]
    fn a_long_value_round_trips() {
        let long = "v".repeat(100_000);
        round_trip("/", &[("cookie", &long, true)]);
    }
}
