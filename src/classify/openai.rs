use http::{HeaderMap, StatusCode};
use std::borrow::Cow;

use serde::Deserialize;

use super::rules::{Facts, Rules, StatusRule};
use super::{Classify, ErrorBody, Head, Verdict};

/// Classifies OpenAI-shaped errors: `{"error":{"type":..,"code":..,"message":..}}`.
///
/// `type` = `server_error` is retried whatever the status; 500, 502, 503, 504
/// and 529 without such a body are retried; `rate_limit_exceeded` / 429 only
/// with [`retry_rate_limits(true)`](OpenAiClassifier::retry_rate_limits), and
/// never `insufficient_quota`, which cannot succeed on retry.
/// `x-should-retry` overrides the status.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct OpenAiClassifier {
    rules: Rules,
}

impl OpenAiClassifier {
    /// The rules described above; rate limits are not retried.
    pub const fn new() -> Self {
        Self {
            rules: Rules {
                retry_rate_limits: false,
                status_rule: StatusRule::Unrecognised,
            },
        }
    }

    /// The official OpenAI SDKs' rules: 408, 409, 429 and ≥ 500 are retried.
    pub const fn sdk() -> Self {
        Self {
            rules: Rules {
                retry_rate_limits: true,
                status_rule: StatusRule::Sdk,
            },
        }
    }

    /// Whether rate limits (429) are retried. `insufficient_quota` never is.
    pub const fn retry_rate_limits(mut self, enabled: bool) -> Self {
        self.rules.retry_rate_limits = enabled;
        self
    }
}

impl Default for OpenAiClassifier {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

fn facts(body: &[u8]) -> Facts {
    let Some(error) = serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|envelope| envelope.error)
    else {
        return Facts::default();
    };
    let is =
        |value: &str| error.kind.as_deref() == Some(value) || error.code.as_deref() == Some(value);
    Facts {
        recognised: error.kind.is_some() || error.code.is_some(),
        transient: is("server_error").then_some("server_error"),
        rate_limited: is("rate_limit_exceeded") || is("requests") || is("tokens"),
        hopeless: is("insufficient_quota"),
    }
}

impl Classify for OpenAiClassifier {
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

    fn decide(c: OpenAiClassifier, status: u16, body: &[u8]) -> Verdict {
        let status = StatusCode::from_u16(status).unwrap();
        let headers = HeaderMap::new();
        assert_eq!(c.classify_head(status, &headers), Head::ReadBody);
        c.classify_body(status, &headers, ErrorBody::Complete(body))
    }

    #[test]
    fn openai_shapes() {
        let c = OpenAiClassifier::new();
        let server = br#"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#;
        let quota =
            br#"{"error":{"message":"m","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let rate = br#"{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}"#;
        let invalid = br#"{"error":{"message":"m","type":"invalid_request_error","code":null}}"#;
        assert_eq!(
            decide(c, 500, server),
            Verdict::Retry(RetryReason::ErrorType("server_error"))
        );
        assert_eq!(
            decide(c, 503, b"<html>"),
            Verdict::Retry(RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert_eq!(decide(c, 500, invalid), Verdict::Final);
        assert_eq!(decide(c, 429, rate), Verdict::Final);
        assert_eq!(
            decide(c.retry_rate_limits(true), 429, rate),
            Verdict::Retry(RetryReason::ErrorType("rate_limit_error"))
        );
        assert_eq!(decide(OpenAiClassifier::sdk(), 429, quota), Verdict::Final);
        assert_eq!(
            decide(OpenAiClassifier::sdk(), 500, invalid),
            Verdict::Retry(RetryReason::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
    }
}
