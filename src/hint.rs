//! Server hints in response headers: `retry-after-ms`, `retry-after` and
//! `x-should-retry`.
//!
//! Every value comes from the network and is treated as hostile: a value that
//! is not a finite, positive number of (milli)seconds or a future HTTP-date is
//! absent. It never panics and never yields a zero delay (an immediate retry).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::HeaderMap;
//! use tower_api_guard::hint::{delay_hint, should_retry};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("retry-after", "2.5".parse().unwrap());
//! headers.insert("x-should-retry", " TRUE ".parse().unwrap());
//! assert_eq!(delay_hint(&headers, SystemTime::now()), Some(Duration::from_millis(2500)));
//! assert_eq!(should_retry(&headers), Some(true));
//!
//! headers.insert("retry-after-ms", "NaN".parse().unwrap()); // ignored, `retry-after` still counts
//! assert_eq!(delay_hint(&headers, SystemTime::now()), Some(Duration::from_millis(2500)));
//! ```

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, RETRY_AFTER};

/// `retry-after-ms`: the delay in (fractional) milliseconds.
pub static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
/// `x-should-retry`: the server's own verdict, `true` or `false`.
pub static X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// `grpc-retry-pushback-ms`: a gRPC server's delay before the next attempt,
/// in whole milliseconds.
pub static GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// The delay the server asks for, if any: `retry-after-ms` (float
/// milliseconds), else `retry-after` (float seconds, else an HTTP-date
/// relative to `now`), else gRPC's `grpc-retry-pushback-ms`
/// ([`grpc_retry_pushback`]).
///
/// A finite value too large for a [`Duration`] is [`Duration::MAX`], so that a
/// bound on hints rejects it.
pub fn delay_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    http_delay_hint(headers, now).or_else(|| grpc_retry_pushback(headers))
}

/// The delay a gRPC server asks for in `grpc-retry-pushback-ms`: a whole,
/// positive number of milliseconds. Anything else is absent (a negative or
/// unparseable value is the server asking for no retry at all, which a
/// classifier decides; `0` means no delay, which hints never yield).
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use tower_api_guard::hint::grpc_retry_pushback;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-retry-pushback-ms", "1500".parse().unwrap());
/// assert_eq!(grpc_retry_pushback(&headers), Some(Duration::from_millis(1500)));
/// headers.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
/// assert_eq!(grpc_retry_pushback(&headers), None);
/// ```
pub fn grpc_retry_pushback(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, &GRPC_RETRY_PUSHBACK_MS)?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only an overflow fails, and that is a delay past any bound.
    let ms = value.parse::<u64>().unwrap_or(u64::MAX);
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// `retry-after-ms`, else `retry-after`.
fn http_delay_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(delay) = header_str(headers, &RETRY_AFTER_MS)
        .and_then(parse_positive_f64)
        .and_then(|ms| duration_from_secs(ms / 1000.0))
    {
        return Some(delay);
    }
    let value = header_str(headers, &RETRY_AFTER)?;
    if let Some(secs) = parse_positive_f64(value) {
        return duration_from_secs(secs);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    date.duration_since(now)
        .ok()
        .filter(|delay| !delay.is_zero())
}

/// The server's `x-should-retry` verdict: `true` or `false`, trimmed, in any case.
pub fn should_retry(headers: &HeaderMap) -> Option<bool> {
    let value = header_str(headers, &X_SHOULD_RETRY)?.trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// A finite number above zero, or nothing.
fn parse_positive_f64(value: &str) -> Option<f64> {
    let value = value.trim();
    // `f64::from_str` accepts "inf" and "NaN"; both are rejected below.
    let number: f64 = value.parse().ok()?;
    (number.is_finite() && number > 0.0).then_some(number)
}

/// The delay, or nothing when it rounds to zero (below a nanosecond): a hint
/// is never an immediate retry.
fn duration_from_secs(secs: f64) -> Option<Duration> {
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    fn hint(pairs: &[(&'static str, &'static str)]) -> Option<Duration> {
        delay_hint(&headers(pairs), SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        assert_eq!(
            hint(&[("retry-after-ms", "1500.5"), ("retry-after", "9")]),
            Some(Duration::from_micros(1_500_500))
        );
    }

    #[test]
    fn seconds_may_be_fractional() {
        assert_eq!(
            hint(&[("retry-after", " 0.25 ")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(hint(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
    }

    #[test]
    fn bad_values_are_absent() {
        for bad in [
            "NaN", "nan", "inf", "-inf", "infinity", "-1", "0", "-0", "", "soon", "1e400", "0x10",
        ] {
            assert_eq!(hint(&[("retry-after", bad)]), None, "retry-after: {bad:?}");
            assert_eq!(
                hint(&[("retry-after-ms", bad)]),
                None,
                "retry-after-ms: {bad:?}"
            );
        }
    }

    #[test]
    fn bad_ms_falls_back_to_seconds() {
        assert_eq!(
            hint(&[("retry-after-ms", "NaN"), ("retry-after", "2")]),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn huge_finite_value_is_max() {
        assert_eq!(hint(&[("retry-after", "1e300")]), Some(Duration::MAX));
    }

    #[test]
    fn http_date_is_relative_to_now() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let map = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(delay_hint(&map, now), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]);
        assert_eq!(delay_hint(&past, now), None);
        let same = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(delay_hint(&same, now), None);
    }

    #[test]
    fn non_ascii_value_is_absent() {
        let mut map = HeaderMap::new();
        map.insert(
            "retry-after",
            http::HeaderValue::from_bytes(b"\xff1").unwrap(),
        );
        assert_eq!(delay_hint(&map, SystemTime::UNIX_EPOCH), None);
    }

    #[test]
    fn grpc_pushback_is_the_last_resort() {
        assert_eq!(
            hint(&[("grpc-retry-pushback-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            hint(&[("grpc-retry-pushback-ms", "250"), ("retry-after", "2")]),
            Some(Duration::from_secs(2))
        );
        for bad in ["-1", "0", "", "1.5", "soon", "+5", " 1 2"] {
            assert_eq!(hint(&[("grpc-retry-pushback-ms", bad)]), None, "{bad:?}");
        }
        assert_eq!(
            hint(&[("grpc-retry-pushback-ms", "99999999999999999999999")]),
            Some(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn should_retry_parses_trimmed_any_case() {
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", " True")])),
            Some(true)
        );
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", "FALSE ")])),
            Some(false)
        );
        assert_eq!(should_retry(&headers(&[("x-should-retry", "yes")])), None);
        assert_eq!(should_retry(&headers(&[])), None);
    }
}
