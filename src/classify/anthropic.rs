use http::{HeaderMap, StatusCode};
use std::borrow::Cow;

use serde::Deserialize;

use super::rules::{Facts, Rules, StatusRule};
use super::{Classify, ErrorBody, Head, Verdict};

/// Classifies the Anthropic API's errors:
/// `{"type":"error","error":{"type":T,"message":..}}`.
///
/// With [`AnthropicClassifier::new`]:
/// - `T` = `api_error` or `overloaded_error` is retried, whatever the status;
/// - 500, 502, 503, 504 and 529 whose body is not such an error (a proxy's
///   HTML page, an empty body, a body over the cap) are retried;
/// - `rate_limit_error` / 429 is retried only with
///   [`retry_rate_limits(true)`](AnthropicClassifier::retry_rate_limits), and
///   never when `error.details.error_code` is `enforced_spend_limit_reached`;
/// - every other 4xx is final;
/// - `x-should-retry: true|false` overrides the status.
///
/// [`AnthropicClassifier::sdk`] follows the official SDKs instead: 408, 409,
/// 429 and every status ≥ 500 are retried whatever the body.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct AnthropicClassifier {
    rules: Rules,
}

impl AnthropicClassifier {
    /// The default rules described above; rate limits are not retried.
    pub const fn new() -> Self {
        Self {
            rules: Rules {
                retry_rate_limits: false,
                status_rule: StatusRule::Unrecognised,
            },
        }
    }

    /// The official SDKs' rules: 408, 409, 429 and ≥ 500 are retried.
    pub const fn sdk() -> Self {
        Self {
            rules: Rules {
                retry_rate_limits: true,
                status_rule: StatusRule::Sdk,
            },
        }
    }

    /// Whether `rate_limit_error` (429) is retried (default `false` for
    /// [`new`](Self::new), `true` for [`sdk`](Self::sdk)). A spend limit is
    /// never retried.
    pub const fn retry_rate_limits(mut self, enabled: bool) -> Self {
        self.rules.retry_rate_limits = enabled;
        self
    }
}

impl Default for AnthropicClassifier {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    details: Option<Details<'a>>,
}

#[derive(Deserialize)]
struct Details<'a> {
    #[serde(borrow)]
    error_code: Option<Cow<'a, str>>,
}

pub(super) fn facts(body: &[u8]) -> Facts {
    let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(body) else {
        return Facts::default();
    };
    let Some(error) = envelope
        .error
        .filter(|_| envelope.kind.as_deref() == Some("error"))
    else {
        return Facts::default();
    };
    let Some(kind) = error.kind else {
        return Facts::default();
    };
    Facts {
        recognised: true,
        transient: match kind.as_ref() {
            "api_error" => Some("api_error"),
            "overloaded_error" => Some("overloaded_error"),
            _ => None,
        },
        rate_limited: kind == "rate_limit_error",
        hopeless: error
            .details
            .and_then(|details| details.error_code)
            .is_some_and(|code| code == "enforced_spend_limit_reached"),
    }
}

impl Classify for AnthropicClassifier {
    #[inline]
    fn classify_head(&self, status: StatusCode, headers: &HeaderMap) -> Head {
        self.rules.head(status, headers)
    }

    fn classify_body(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: ErrorBody<'_>,
    ) -> Verdict {
        let facts = body.bytes().map(facts).unwrap_or_default();
        self.rules.body(status, headers, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::RetryReason;

    fn verdict(
        c: AnthropicClassifier,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: ErrorBody<'_>,
    ) -> Option<RetryReason> {
        let status = StatusCode::from_u16(status).unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        match c.classify_head(status, &map) {
            Head::Final => None,
            Head::Retry(reason) => Some(reason),
            Head::ReadBody => match c.classify_body(status, &map, body) {
                Verdict::Retry(reason) => Some(reason),
                Verdict::Final => None,
            },
        }
    }

    fn error(kind: &str) -> String {
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}}}}"#)
    }

    const SPEND: &[u8] = br#"{"type":"error","error":{"type":"rate_limit_error","message":"m","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
    const HTML: &[u8] = b"<html><body>502 Bad Gateway</body></html>";

    #[test]
    fn classification_table() {
        let new = AnthropicClassifier::new();
        let sdk = AnthropicClassifier::sdk();
        let rl = AnthropicClassifier::new().retry_rate_limits(true);
        let api = error("api_error");
        let over = error("overloaded_error");
        let invalid = error("invalid_request_error");
        let rate = error("rate_limit_error");
        let auth = error("authentication_error");
        let not_found = error("not_found_error");
        let s = RetryReason::Status;
        let code = |c: u16| StatusCode::from_u16(c).unwrap();
        let ty = RetryReason::ErrorType;
        use ErrorBody::*;
        type Case<'a> = (
            AnthropicClassifier,
            u16,
            &'a [(&'static str, &'static str)],
            ErrorBody<'a>,
            Option<RetryReason>,
        );
        let cases: Vec<Case<'_>> = vec![
            (new, 200, &[], Complete(over.as_bytes()), None),
            (
                new,
                500,
                &[],
                Complete(api.as_bytes()),
                Some(ty("api_error")),
            ),
            (
                new,
                529,
                &[],
                Complete(over.as_bytes()),
                Some(ty("overloaded_error")),
            ),
            // the error type wins whatever the status
            (
                new,
                400,
                &[("content-type", "application/json")],
                Complete(over.as_bytes()),
                Some(ty("overloaded_error")),
            ),
            (
                new,
                200,
                &[("content-type", "application/json")],
                Complete(over.as_bytes()),
                None,
            ),
            // a proxy's page on a gateway status
            (new, 502, &[], Complete(HTML), Some(s(code(502)))),
            (new, 503, &[], TooLarge, Some(s(code(503)))),
            (new, 504, &[], Unreadable, Some(s(code(504)))),
            (new, 529, &[], Complete(b""), Some(s(code(529)))),
            // a recognised non-transient error on 500 is final by default, retried by the SDK rule
            (new, 500, &[], Complete(invalid.as_bytes()), None),
            (
                sdk,
                500,
                &[],
                Complete(invalid.as_bytes()),
                Some(s(code(500))),
            ),
            (new, 501, &[], Complete(HTML), None),
            (sdk, 501, &[], Complete(HTML), Some(s(code(501)))),
            (new, 408, &[], Complete(b""), None),
            (sdk, 408, &[], Complete(b""), Some(s(code(408)))),
            (sdk, 409, &[], Complete(b""), Some(s(code(409)))),
            // rate limits: opt-in, never the spend limit
            (new, 429, &[], Complete(rate.as_bytes()), None),
            (
                rl,
                429,
                &[],
                Complete(rate.as_bytes()),
                Some(ty("rate_limit_error")),
            ),
            (rl, 429, &[], Complete(SPEND), None),
            (sdk, 429, &[], Complete(SPEND), None),
            (rl, 429, &[], Complete(HTML), Some(s(code(429)))),
            // other 4xx
            (new, 400, &[], Complete(invalid.as_bytes()), None),
            (new, 401, &[], Complete(auth.as_bytes()), None),
            (sdk, 404, &[], Complete(not_found.as_bytes()), None),
            // x-should-retry overrides the status
            (
                new,
                400,
                &[("x-should-retry", "true")],
                Complete(invalid.as_bytes()),
                Some(RetryReason::ShouldRetryHeader),
            ),
            (
                new,
                529,
                &[("x-should-retry", " False")],
                Complete(over.as_bytes()),
                None,
            ),
            (
                sdk,
                503,
                &[("x-should-retry", "false")],
                Complete(HTML),
                None,
            ),
            (
                new,
                529,
                &[("x-should-retry", "true")],
                Complete(over.as_bytes()),
                Some(ty("overloaded_error")),
            ),
            (
                rl,
                429,
                &[("x-should-retry", "true")],
                Complete(SPEND),
                None,
            ),
            (
                new,
                503,
                &[("x-should-retry", "maybe")],
                Complete(HTML),
                Some(s(code(503))),
            ),
        ];
        for (i, (c, status, headers, body, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                verdict(c, status, headers, body),
                want,
                "case {i}: {status} {headers:?} {body:?}"
            );
        }
    }

    #[test]
    fn success_and_plain_client_errors_are_not_read() {
        let c = AnthropicClassifier::new();
        let map = HeaderMap::new();
        assert_eq!(c.classify_head(StatusCode::OK, &map), Head::Final);
        assert_eq!(c.classify_head(StatusCode::NOT_FOUND, &map), Head::Final);
        assert_eq!(
            c.classify_head(StatusCode::INTERNAL_SERVER_ERROR, &map),
            Head::ReadBody
        );
    }

    #[test]
    fn escaped_error_types_are_recognised() {
        let escaped =
            br#"{"type":"err\u006fr","error":{"type":"overloaded\u005ferror","message":"m"}}"#;
        let f = facts(escaped);
        assert!(f.recognised);
        assert_eq!(f.transient, Some("overloaded_error"));
    }

    #[test]
    fn hostile_bodies_do_not_panic() {
        let deep = "[".repeat(100_000);
        for body in [
            &b"\xff\xfe"[..],
            b"{",
            b"null",
            b"[]",
            br#"{"type":"error","error":"x"}"#,
            br#"{"type":"error","error":{"type":5}}"#,
            deep.as_bytes(),
        ] {
            let f = facts(body);
            assert!(!f.recognised, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
