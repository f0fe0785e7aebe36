//! Fuzz harness for `tower-api-guard`: one function per fuzz target.
//!
//! Each function decodes arbitrary bytes into the inputs of one parser, runs
//! it, and asserts the properties the crate documents (beyond "does not
//! panic"). The fuzz targets in `fuzz_targets/` call these functions; the main
//! crate's `tests/fuzz_regressions.rs` includes this file and runs every seed
//! and crash reproducer under `fuzz/seeds/<target>/` through the same code, so
//! stable CI replays the corpus as ordinary tests.
//!
//! Input formats (all lenient: a short input reads as zeros / empty):
//!
//! - [`classify_body`]: 2 bytes status (big-endian, mapped into 100..=999),
//!   1 byte header count (mod 5), then per header 1 byte selector and a
//!   length-prefixed value (a selector ≥ 4 names a custom header: its name is
//!   length-prefixed too), then the rest is the body.
//! - [`delay_hint`]: 1 byte flags (bit 0 `retry-after-ms`, bit 1 `retry-after`,
//!   bit 2 `x-should-retry`, bit 4 `grpc-retry-pushback-ms`, bit 3 a second,
//!   ignored value of each), 8 bytes
//!   `now` in seconds since the epoch (big-endian, taken mod 10⁴ years), then
//!   the values of the present headers, separated by `\n`.
//! - [`status_page`]: the document.
//! - [`webhook`]: one or more webhook bodies separated by a `0xFF` byte (which
//!   cannot occur in UTF-8 JSON), applied in order to one gate.

use std::time::{Duration, SystemTime};

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use tower_api_guard::classify::{
    AnthropicClassifier, Classify, ErrorBody, Head, OpenAiClassifier, Verdict,
};
use tower_api_guard::gate::{Policy, StatusGate};
use tower_api_guard::hint::{self, GRPC_RETRY_PUSHBACK_MS, RETRY_AFTER_MS, X_SHOULD_RETRY};
use tower_api_guard::status_page::{self, Summary};

/// A lenient reader over the fuzz input.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A value prefixed by its one-byte length.
    fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte());
        self.take(len)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_be_bytes(bytes)
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

fn status_from(raw: u16) -> StatusCode {
    // 100..=999 is exactly the range `StatusCode` accepts.
    StatusCode::from_u16(100 + raw % 900).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Fuzzes both error-body classifiers (each with its default, SDK and
/// rate-limit rules) on an arbitrary status, headers and body.
pub fn classify_body(data: &[u8]) {
    let mut input = Input { data };
    let status = status_from(input.u16());
    let mut headers = HeaderMap::new();
    for _ in 0..input.byte() % 5 {
        let name = match input.byte() {
            0 => Some(X_SHOULD_RETRY.clone()),
            1 => Some(CONTENT_TYPE),
            2 => Some(RETRY_AFTER),
            3 => Some(RETRY_AFTER_MS.clone()),
            _ => HeaderName::from_bytes(input.chunk()).ok(),
        };
        let value = HeaderValue::from_bytes(input.chunk()).ok();
        if let (Some(name), Some(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    let body = input.rest();

    let anthropic = AnthropicClassifier::new();
    let openai = OpenAiClassifier::new();
    let classifiers: [&dyn Classify; 6] = [
        &anthropic,
        &AnthropicClassifier::sdk(),
        &anthropic.retry_rate_limits(true),
        &openai,
        &OpenAiClassifier::sdk(),
        &openai.retry_rate_limits(true),
    ];
    let is_error = status.is_client_error() || status.is_server_error();
    for classifier in classifiers {
        let head = classifier.classify_head(status, &headers);
        // A success body is never read (SSE streams flow through untouched).
        if !is_error {
            assert_eq!(head, Head::Final, "non-error {status} must be final");
        }
        // `x-should-retry: false` is final whatever the status.
        if hint::should_retry(&headers) == Some(false) {
            assert_eq!(head, Head::Final, "x-should-retry: false must be final");
        }
        assert_eq!(head, classifier.classify_head(status, &headers));
        for error_body in [
            ErrorBody::Complete(body),
            ErrorBody::TooLarge,
            ErrorBody::Unreadable,
        ] {
            let verdict = classifier.classify_body(status, &headers, error_body);
            assert_eq!(
                verdict,
                classifier.classify_body(status, &headers, error_body),
                "classification must be deterministic"
            );
            // `x-should-retry: true` on an error the head sends to the body
            // is retried unless the body says it can never succeed.
            if head == Head::ReadBody
                && hint::should_retry(&headers) == Some(true)
                && !matches!(error_body, ErrorBody::Complete(_))
            {
                assert!(matches!(verdict, Verdict::Retry(_)), "{verdict:?}");
            }
        }
    }
}

/// Fuzzes `delay_hint` and `should_retry` on arbitrary header bytes.
///
/// Checked: no panic; never a zero delay; no delay without a delay header;
/// `retry-after-ms` wins over `retry-after` when valid, and both over
/// `grpc-retry-pushback-ms`; a numeric value yields exactly its duration; an
/// HTTP-date yields its distance from `now`.
pub fn delay_hint(data: &[u8]) {
    let mut input = Input { data };
    let flags = input.byte();
    // Up to the year 11970, well within `SystemTime` on every platform.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(input.u64() % 315_569_520_000);
    let mut values = input.rest().splitn(4, |b| *b == b'\n');
    let mut headers = HeaderMap::new();
    for (bit, name) in [
        (1u8, &RETRY_AFTER_MS),
        (2, &RETRY_AFTER),
        (4, &X_SHOULD_RETRY),
        (16, &GRPC_RETRY_PUSHBACK_MS),
    ] {
        if flags & bit == 0 {
            continue;
        }
        let Some(value) = values.next() else { break };
        // A value the transport would not deliver is simply absent.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name.clone(), value);
            if flags & 8 != 0 {
                // Only the first value counts; a second one must not change it.
                headers.append(name.clone(), HeaderValue::from_static("1"));
            }
        }
    }

    let delay = hint::delay_hint(&headers, now);
    assert_ne!(delay, Some(Duration::ZERO), "a delay hint is never zero");
    assert_eq!(delay, hint::delay_hint(&headers, now));
    if !headers.contains_key(&RETRY_AFTER_MS)
        && !headers.contains_key(RETRY_AFTER)
        && !headers.contains_key(&GRPC_RETRY_PUSHBACK_MS)
    {
        assert_eq!(delay, None);
    }

    // The reference: the documented rules, spelled out.
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let number = |value: &str| {
        value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0)
    };
    let duration = |secs: f64| {
        Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)).filter(|d| !d.is_zero())
    };
    let from_ms = text(&RETRY_AFTER_MS)
        .and_then(number)
        .and_then(|ms| duration(ms / 1000.0));
    let from_grpc = || {
        // Whole, positive milliseconds; an overflow is a delay past any bound.
        let value = text(&GRPC_RETRY_PUSHBACK_MS)?.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ms = value.parse::<u64>().unwrap_or(u64::MAX);
        (ms > 0).then(|| Duration::from_millis(ms))
    };
    let from_http = from_ms.or_else(|| {
        let value = text(&RETRY_AFTER)?;
        match number(value) {
            Some(secs) => duration(secs),
            None => httpdate::parse_http_date(value)
                .ok()?
                .duration_since(now)
                .ok()
                .filter(|d| !d.is_zero()),
        }
    });
    let expected = from_http.or_else(from_grpc);
    assert_eq!(delay, expected, "headers: {headers:?}, now: {now:?}");

    let verdict = hint::should_retry(&headers);
    let expected = text(&X_SHOULD_RETRY).and_then(|v| {
        let v = v.trim();
        if v.eq_ignore_ascii_case("true") {
            Some(true)
        } else if v.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    });
    assert_eq!(verdict, expected);
}

fn check_summary(summary: &Summary) {
    // Open enums read back what they print.
    let indicator = &summary.status.indicator;
    assert_eq!(
        &status_page::Indicator::from_api(indicator.as_str()),
        indicator
    );
    for component in &summary.components {
        assert_eq!(
            &status_page::ComponentStatus::from_api(component.status.as_str()),
            &component.status
        );
    }
    // Judging any parsed page must not panic either.
    let decision = Policy::default().decide(summary);
    let _ = format!("{summary:?} {decision:?}");
}

/// Fuzzes the `/api/v2/summary.json` and `/api/v2/status.json` parsers, and
/// the gate's judgement of whatever they accept.
pub fn status_page(data: &[u8]) {
    if let Ok(summary) = status_page::parse_summary(data) {
        check_summary(&summary);
    }
    if let Ok(summary) = status_page::parse_status(data) {
        check_summary(&summary);
        assert!(summary.components.is_empty() && summary.incidents.is_empty());
    }
    // An error is reported with a position inside the input.
    if let Err(error) = status_page::parse_summary(data) {
        let _ = format!("{error} {error:?} {:?}", error.kind());
        assert!(error.line() <= data.len().saturating_add(1));
    }
}

/// Fuzzes the webhook parser and applying webhooks to a gate.
pub fn webhook(data: &[u8]) {
    let gate = StatusGate::manual();
    let mut last = None;
    for body in data.split(|b| *b == 0xFF).take(8) {
        let parsed = status_page::parse_webhook(body);
        let applied = gate.apply_webhook(body);
        assert_eq!(
            parsed.is_ok(),
            applied.is_ok(),
            "parse_webhook and apply_webhook must agree"
        );
        if let Ok(hook) = parsed {
            let _ = format!("{hook:?}");
            last = Some(body);
        }
    }
    // Applying the last accepted webhook again changes nothing.
    if let Some(body) = last {
        let open = gate.is_open();
        assert!(gate.apply_webhook(body).is_ok());
        assert_eq!(
            gate.is_open(),
            open,
            "re-applying a webhook flipped the gate"
        );
    }
}
