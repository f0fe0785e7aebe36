//! The media type of a message, from its `content-type` header.

use http::HeaderMap;

/// The media type of `headers`' `content-type`: the value up to its first
/// `;`, without the spaces around it, as bytes to compare without regard to
/// case. Read from the header's bytes: a `str` view would check UTF-8 and
/// trim Unicode spaces on every response, and a parameter with bytes outside
/// visible ASCII would hide the type.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(http::header::CONTENT_TYPE)?.as_bytes();
    let mime = value.split(|&b| b == b';').next()?;
    Some(mime.trim_ascii())
}

/// Whether `headers` say the body is an event stream: media type
/// `text/event-stream`, in any case, with or without parameters.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|mime| mime.eq_ignore_ascii_case(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(value: &'static [u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(value).unwrap();
        headers.insert(http::header::CONTENT_TYPE, value);
        headers
    }

    fn of(value: &'static [u8]) -> Option<Vec<u8>> {
        media_type(&headers(value)).map(<[u8]>::to_vec)
    }

    #[test]
    fn an_event_stream_is_known_by_its_media_type_alone() {
        for (value, stream) in [
            (&b"text/event-stream"[..], true),
            (b"Text/Event-Stream", true),
            (b"text/event-stream; charset=utf-8", true),
            (b" text/event-stream ;charset=utf-8", true),
            // Bytes a `str` view refuses, in a parameter, do not hide it.
            (b"text/event-stream; name=\xe9t\xe9", true),
            (b"application/json", false),
            (b"text/event-streams", false),
            (b"text/event", false),
            (b"", false),
            (b";text/event-stream", false),
        ] {
            assert_eq!(is_event_stream(&headers(value)), stream, "{value:?}");
        }
        assert!(!is_event_stream(&HeaderMap::new()), "no content-type");
    }

    #[test]
    fn absent_without_the_header_and_cut_at_the_parameters() {
        assert_eq!(media_type(&HeaderMap::new()), None);
        assert_eq!(
            of(b"application/problem+json; x=1").as_deref(),
            Some(&b"application/problem+json"[..])
        );
    }
}
