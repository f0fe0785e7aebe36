//! The decision rules both shipped classifiers share, applied to the facts
//! each one parses from its provider's error shape.

use http::{HeaderMap, StatusCode};

use super::{media_type, Head, RetryReason, Verdict};
use crate::hint::should_retry;

/// Which statuses are retried from the status alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusRule {
    /// 500, 502, 503, 504 and 529, only when the body is not a recognisable
    /// error of the provider's.
    Unrecognised,
    /// 408, 409, 429 and every status ≥ 500, whatever the body (the official
    /// SDKs' rule).
    Sdk,
}

/// What a classifier parsed out of an error body.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Facts {
    /// The body had the provider's error shape.
    pub(crate) recognised: bool,
    /// The error type names a transient server failure.
    pub(crate) transient: Option<&'static str>,
    /// The error is a rate limit.
    pub(crate) rate_limited: bool,
    /// The error can never succeed on retry (e.g. a spend limit was reached).
    pub(crate) hopeless: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub(crate) retry_rate_limits: bool,
    pub(crate) status_rule: StatusRule,
}

impl Rules {
    // Inlined, with errors out of line: a success is judged by its status
    // alone, where its response is (a call given its headers cost a copy of
    // the response, about 30 instructions).
    #[inline]
    pub(crate) fn head(&self, status: StatusCode, headers: &HeaderMap) -> Head {
        if !(status.is_client_error() || status.is_server_error()) {
            return Head::Final;
        }
        self.error_head(status, headers)
    }

    /// [`Rules::head`] for a 4xx or 5xx.
    #[inline(never)]
    fn error_head(&self, status: StatusCode, headers: &HeaderMap) -> Head {
        let server_says = should_retry(headers);
        if server_says == Some(false) {
            return Head::Final;
        }
        let candidate = status.is_server_error()
            || matches!(status.as_u16(), 408 | 409 | 429)
            || is_json(headers)
            || server_says == Some(true);
        if candidate {
            Head::ReadBody
        } else {
            Head::Final
        }
    }

    pub(crate) fn body(&self, status: StatusCode, headers: &HeaderMap, facts: Facts) -> Verdict {
        if facts.hopeless {
            return Verdict::Final;
        }
        if should_retry(headers) == Some(true) {
            return Verdict::Retry(
                facts
                    .transient
                    .map_or(RetryReason::ShouldRetryHeader, RetryReason::ErrorType),
            );
        }
        if let Some(kind) = facts.transient {
            return Verdict::Retry(RetryReason::ErrorType(kind));
        }
        let code = status.as_u16();
        if facts.rate_limited || code == 429 {
            return if self.retry_rate_limits {
                Verdict::Retry(if facts.rate_limited {
                    RetryReason::ErrorType("rate_limit_error")
                } else {
                    RetryReason::Status(status)
                })
            } else {
                Verdict::Final
            };
        }
        let retry_status = match self.status_rule {
            StatusRule::Sdk => status.is_server_error() || matches!(code, 408 | 409),
            StatusRule::Unrecognised => {
                !facts.recognised && matches!(code, 500 | 502 | 503 | 504 | 529)
            }
        };
        if retry_status {
            Verdict::Retry(RetryReason::Status(status))
        } else {
            Verdict::Final
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|mime| {
        mime.eq_ignore_ascii_case(b"application/json")
            || mime
                .get(mime.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case(b"+json"))
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn json_and_json_suffixed_types_are_json() {
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("application/problem+JSON ; x=1", true),
            ("text/plain", false),
            ("json", false),
            ("application/jsonp", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), json, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()), "no content-type");
        // Bytes a `str` view refuses, in a parameter, do not hide the type.
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"application/json; name=\xe9t\xe9").unwrap();
        headers.insert(http::header::CONTENT_TYPE, value);
        assert!(is_json(&headers), "a parameter outside visible ASCII");
    }
}
