//! Property tests: backoff bounds, delay hints, attempt and deadline bounds,
//! and byte-identical request replay and response hand-on.
//!
//! The retry-layer properties drive `RetryLayer` over a `tower::service_fn`
//! on a current-thread runtime with tokio's clock paused, so every case runs
//! in microseconds of real time whatever the delays.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::hint::{delay_hint, should_retry, RETRY_AFTER_MS};
use tower_api_guard::retry::{ReplayBody, RetryInfo, RetryLayer, Stop};
use tower_api_guard::BoxError;

const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `future` on a current-thread runtime whose clock is paused: sleeps
/// complete as soon as nothing else can run, and `Instant` follows them.
fn paused<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

/// A body that yields the given chunks one frame each, optionally returning
/// `Pending` (and waking itself) before every frame.
struct Chunks {
    chunks: VecDeque<Bytes>,
    yield_first: bool,
    yielded: bool,
}

impl Chunks {
    fn new(chunks: Vec<Bytes>, yield_first: bool) -> Self {
        Self {
            chunks: chunks.into(),
            yield_first,
            yielded: false,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.yield_first && !self.yielded && !self.chunks.is_empty() {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// Splits `bytes` into chunks of the given sizes (cycled), every chunk non-empty.
fn split(bytes: &[u8], sizes: &[usize]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut sizes = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (head, tail) = rest.split_at(size);
        chunks.push(Bytes::copy_from_slice(head));
        rest = tail;
    }
    chunks
}

fn overloaded() -> Response<Full<Bytes>> {
    Response::builder()
        .status(529)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(OVERLOADED)))
        .unwrap()
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::QuarterShorter)
    ]
}

/// Durations from nanoseconds to a day, in a few magnitudes.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..1_000).prop_map(Duration::from_nanos),
        (0u64..10_000).prop_map(Duration::from_millis),
        (0u64..86_400_000_000_000).prop_map(Duration::from_nanos),
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (duration(), duration(), 1u32..10, jitter()).prop_map(|(initial, max, factor, jitter)| {
        Backoff::new(initial, max)
            .factor(NonZeroU32::new(factor).unwrap())
            .jitter(jitter)
    })
}

/// A small schedule for the retry layer: milliseconds to seconds.
fn small_backoff() -> impl Strategy<Value = Backoff> {
    (1u64..2_000, 1u64..20_000, 1u32..4, jitter()).prop_map(|(initial, max, factor, jitter)| {
        Backoff::new(Duration::from_millis(initial), Duration::from_millis(max))
            .factor(NonZeroU32::new(factor).unwrap())
            .jitter(jitter)
    })
}

/// `initial × factor^(retry−1)`, capped at `max`, computed without overflow.
fn reference_nominal(backoff: &Backoff, factor: u32, retry: u32) -> Duration {
    let max = backoff.max().as_nanos();
    let mut nominal = backoff.initial().as_nanos();
    for _ in 1..retry {
        nominal = nominal.saturating_mul(u128::from(factor));
        if nominal > max {
            break;
        }
    }
    let nanos = nominal.min(max);
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap(),
        u32::try_from(nanos % 1_000_000_000).unwrap(),
    )
}

proptest! {
    #![proptest_config(config())]

    /// Every delay lies within its jitter's bounds around the nominal delay,
    /// and the nominal delay is the capped exponential, never above the cap.
    #[test]
    fn delays_lie_within_their_bounds(
        (initial, max, factor, jitter) in (duration(), duration(), 1u32..10, jitter()),
        seed in any::<u64>(),
        count in 1usize..80,
    ) {
        let backoff = Backoff::new(initial, max)
            .factor(NonZeroU32::new(factor).unwrap())
            .jitter(jitter);
        let mut previous = Duration::ZERO;
        for (index, delay) in backoff.delays(Some(seed)).take(count).enumerate() {
            let retry = u32::try_from(index).unwrap() + 1;
            let nominal = backoff.nominal(retry);
            prop_assert!(nominal <= max, "nominal {nominal:?} above the cap {max:?}");
            prop_assert_eq!(nominal, reference_nominal(&backoff, factor, retry));
            prop_assert!(nominal >= previous, "nominal delays never shrink");
            previous = nominal;
            match jitter {
                Jitter::None => prop_assert_eq!(delay, nominal),
                Jitter::Full => prop_assert!(delay <= nominal, "{delay:?} > {nominal:?}"),
                _ => prop_assert!(
                    delay <= nominal && delay >= nominal.mul_f64(0.75),
                    "{delay:?} outside [0.75, 1] × {nominal:?}"
                ),
            }
        }
    }

    /// A seeded schedule is reproducible; `delay(n)` agrees with the iterator.
    #[test]
    fn seeded_schedule_is_reproducible(backoff in backoff(), seed in any::<u64>()) {
        let a: Vec<Duration> = backoff.delays(Some(seed)).take(20).collect();
        let b: Vec<Duration> = backoff.delays(Some(seed)).take(20).collect();
        prop_assert_eq!(&a, &b);
        // The iterator is `delay(1..)` over one generator seeded with `seed`,
        // which is how the retry layer draws its delays.
        let mut rng = fastrand::Rng::with_seed(seed);
        let walked: Vec<Duration> = (1..=20).map(|retry| backoff.delay(retry, &mut rng)).collect();
        prop_assert_eq!(a, walked);
    }

    /// An integer `retry-after` reads back exactly; fractional seconds and
    /// milliseconds read back within a microsecond (float rounding).
    #[test]
    fn numeric_hints_parse_back(secs in 1u64..1_000_000_000, micros in 1u64..1_000_000_000_000) {
        let whole = headers(&[("retry-after", format!("{secs}"))]);
        prop_assert_eq!(delay_hint(&whole, SystemTime::UNIX_EPOCH), Some(Duration::from_secs(secs)));

        let expected = Duration::from_micros(micros);
        let fractional = headers(&[(
            "retry-after",
            format!(" {}.{:06} ", micros / 1_000_000, micros % 1_000_000),
        )]);
        let ms = headers(&[(
            "retry-after-ms",
            format!("{}.{:03}", micros / 1_000, micros % 1_000),
        )]);
        for map in [fractional, ms] {
            let hint = delay_hint(&map, SystemTime::UNIX_EPOCH).unwrap();
            let error = hint.abs_diff(expected);
            prop_assert!(error <= Duration::from_micros(1), "{map:?}: {hint:?} vs {expected:?}");
        }
    }

    /// An HTTP-date `retry-after` reads back as its distance from `now`.
    #[test]
    fn http_date_hints_parse_back(now in 0u64..200_000_000_000, delay in 1u64..100_000_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let at = now + Duration::from_secs(delay);
        let map = headers(&[("retry-after", httpdate::fmt_http_date(at))]);
        prop_assert_eq!(delay_hint(&map, now), Some(Duration::from_secs(delay)));
        // The same date, seen from that instant or later, is no hint at all.
        prop_assert_eq!(delay_hint(&map, at), None);
    }

    /// Whatever the header values, a hint is never zero (an immediate retry).
    #[test]
    fn hints_are_never_zero(
        ms in hint_value(),
        secs in hint_value(),
        now in 0u64..300_000_000_000,
    ) {
        let map = headers(&[("retry-after-ms", ms), ("retry-after", secs)]);
        let hint = delay_hint(&map, SystemTime::UNIX_EPOCH + Duration::from_secs(now));
        prop_assert_ne!(hint, Some(Duration::ZERO), "{:?}", map);
    }

    /// `x-should-retry` reads back `true` / `false` in any case and padding.
    #[test]
    fn should_retry_parses_back(verdict in any::<bool>(), upper in proptest::collection::vec(any::<bool>(), 5), pad in "[ \t]{0,3}") {
        let text: String = verdict
            .to_string()
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let map = headers(&[("x-should-retry", format!("{pad}{text}{pad}"))]);
        prop_assert_eq!(should_retry(&map), Some(verdict));
    }
}

fn hint_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|f| format!("{f}")),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        proptest::num::f64::POSITIVE.prop_map(|f| format!("{f}")),
        (proptest::num::f64::SUBNORMAL | proptest::num::f64::NORMAL)
            .prop_map(|f| format!("{:e}", f.abs() * 1e-9)),
        (0u32..1_000).prop_map(|n| format!("0.{n:0>9}")),
        "[ -~]{0,24}",
    ]
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value,
            );
        }
    }
    map
}

/// What the upstream saw: the time and request body of every attempt.
#[derive(Clone, Default)]
struct Log {
    attempts: Arc<Mutex<Vec<(Instant, Bytes)>>>,
}

impl Log {
    fn record(&self, body: Bytes) {
        self.attempts.lock().unwrap().push((Instant::now(), body));
    }

    fn take(&self) -> Vec<(Instant, Bytes)> {
        std::mem::take(&mut *self.attempts.lock().unwrap())
    }
}

/// An upstream that records every request body, waits `latency`, and answers
/// 529 `overloaded_error`, optionally with a `retry-after-ms` hint.
fn always_overloaded<B>(
    log: Log,
    latency: Duration,
    hint_ms: Option<u64>,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    service_fn(move |request: Request<B>| {
        let log = log.clone();
        async move {
            let body = request.into_body().collect().await.map_err(Into::into)?;
            log.record(body.to_bytes());
            tokio::time::sleep(latency).await;
            let mut response = overloaded();
            if let Some(ms) = hint_ms {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER_MS.clone(), HeaderValue::from(ms));
            }
            Ok::<_, BoxError>(response)
        }
    })
}

async fn call<S, B, R>(service: S, request: Request<B>) -> Response<R>
where
    S: Service<Request<B>, Response = Response<R>, Error = BoxError>,
{
    let mut service = service;
    service.ready().await.unwrap().call(request).await.unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// Against an upstream that is always overloaded, the layer makes exactly
    /// `max_attempts` attempts, reports them in `RetryInfo`, and waits
    /// exactly the seeded schedule between them (to the timer's millisecond).
    #[test]
    fn attempts_never_exceed_the_maximum(
        max_attempts in 1u32..8,
        backoff in small_backoff(),
        seed in any::<u64>(),
    ) {
        let log = Log::default();
        let layer = RetryLayer::new()
            .max_attempts(NonZeroU32::new(max_attempts).unwrap())
            .backoff(backoff)
            .jitter_seed(seed)
            .no_budget();
        let service = ServiceBuilder::new()
            .layer(layer)
            .service(always_overloaded(log.clone(), Duration::ZERO, None));
        let request = Request::post("/v1/messages").body(Full::new(Bytes::from("{}"))).unwrap();
        let response = paused(call(service, request));

        let attempts = log.take();
        let info = RetryInfo::of(&response);
        prop_assert_eq!(response.status(), StatusCode::from_u16(529).unwrap());
        prop_assert_eq!(attempts.len(), max_attempts as usize);
        prop_assert_eq!(info.attempts, max_attempts);
        if max_attempts > 1 {
            prop_assert_eq!(info.stop, Stop::AttemptsExhausted);
        }
        let expected: Vec<Duration> = backoff.delays(Some(seed)).take(attempts.len().saturating_sub(1)).collect();
        let mut total = Duration::ZERO;
        for (pair, delay) in attempts.windows(2).zip(&expected) {
            let gap = pair[1].0 - pair[0].0;
            prop_assert!(*delay <= backoff.max());
            prop_assert!(gap >= *delay && gap <= *delay + Duration::from_millis(1), "gap {gap:?} for delay {delay:?}");
            total += *delay;
        }
        if max_attempts > 1 {
            prop_assert_eq!(info.total_delay, total);
        }
    }

    /// With a deadline, attempts stay within `max_attempts`, every delay ends
    /// before the deadline, and the call returns by deadline + one attempt's
    /// latency; server hints (within the bound) do not change that.
    #[test]
    fn attempts_stay_within_the_deadline(
        max_attempts in 1u32..12,
        backoff in small_backoff(),
        seed in any::<u64>(),
        deadline_ms in 0u64..30_000,
        latency_ms in 0u64..2_000,
        hint_ms in proptest::option::of(1u64..90_000),
    ) {
        let log = Log::default();
        let deadline = Duration::from_millis(deadline_ms);
        let latency = Duration::from_millis(latency_ms);
        let layer = RetryLayer::new()
            .max_attempts(NonZeroU32::new(max_attempts).unwrap())
            .backoff(backoff)
            .jitter_seed(seed)
            .deadline(deadline)
            .no_budget();
        let service = ServiceBuilder::new()
            .layer(layer)
            .service(always_overloaded(log.clone(), latency, hint_ms));
        let request = Request::post("/v1/messages").body(Full::new(Bytes::from("{}"))).unwrap();
        let (response, elapsed) = paused(async move {
            let start = Instant::now();
            let response = call(service, request).await;
            (response, start.elapsed())
        });

        let attempts = log.take();
        let info = RetryInfo::of(&response);
        prop_assert!(!attempts.is_empty());
        prop_assert!(attempts.len() <= max_attempts as usize);
        prop_assert_eq!(info.attempts as usize, attempts.len());
        prop_assert!(info.total_delay <= deadline, "{:?} > {deadline:?}", info.total_delay);
        // One millisecond of timer rounding per sleep.
        let slack = Duration::from_millis(2 * u64::from(max_attempts));
        prop_assert!(elapsed <= deadline + latency + slack, "{elapsed:?} > {deadline:?} + {latency:?}");
        let last_start = attempts.last().unwrap().0 - attempts[0].0;
        prop_assert!(last_start <= deadline + Duration::from_millis(u64::from(max_attempts)), "an attempt started after the deadline: {last_start:?}");
        if attempts.len() < max_attempts as usize {
            prop_assert!(matches!(info.stop, Stop::Deadline), "{:?}", info.stop);
        }
    }

    /// A random request body is replayed byte-identical on every attempt, as a
    /// `Full<Bytes>` and as a multi-chunk `BoxBody`.
    #[test]
    fn request_body_replays_identically(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
        max_attempts in 2u32..5,
        boxed in any::<bool>(),
        yield_first in any::<bool>(),
    ) {
        let expected: Vec<u8> = chunks.concat();
        let log = Log::default();
        let layer = RetryLayer::new()
            .max_attempts(NonZeroU32::new(max_attempts).unwrap())
            .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(10)))
            .no_budget();
        let response = if boxed {
            let body = Chunks::new(chunks.into_iter().map(Bytes::from).collect(), yield_first);
            let body: BoxBody<Bytes, Infallible> = BoxBody::new(body);
            send_once(layer, log.clone(), body)
        } else {
            send_once(layer, log.clone(), Full::new(Bytes::from(expected.clone())))
        };
        prop_assert_eq!(response.status(), StatusCode::from_u16(529).unwrap());
        let attempts = log.take();
        prop_assert_eq!(attempts.len(), max_attempts as usize);
        for (index, (_, body)) in attempts.iter().enumerate() {
            prop_assert_eq!(&body[..], &expected[..], "attempt {}", index + 1);
        }
    }

    /// A random response body, smaller or larger than the error-body cap and
    /// in random chunk sizes, reaches the caller byte-identical with the same
    /// status and headers: on a retried 503 / 529, a final 400 and a 200.
    #[test]
    fn response_body_reaches_the_caller_intact(
        cap in 0usize..2_048,
        delta in -64isize..=64,
        sizes in proptest::collection::vec(1usize..700, 1..6),
        seed in any::<u64>(),
        status in prop_oneof![Just(200u16), Just(400), Just(503), Just(529)],
        json in any::<bool>(),
        overloaded_prefix in any::<bool>(),
        max_attempts in 1u32..4,
        yield_first in any::<bool>(),
    ) {
        let len = cap.saturating_add_signed(delta);
        let mut body = vec![0u8; len];
        fastrand::Rng::with_seed(seed).fill(&mut body);
        if overloaded_prefix && len >= OVERLOADED.len() {
            // A recognisable error body, padded with JSON whitespace to `len`.
            body[..OVERLOADED.len()].copy_from_slice(OVERLOADED.as_bytes());
            body[OVERLOADED.len()..].fill(b' ');
        }
        let chunks = split(&body, &sizes);
        let mut headers = HeaderMap::new();
        if json {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        headers.insert("request-id", HeaderValue::from(seed));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));

        let calls = Arc::new(Mutex::new(0u32));
        let upstream = {
            let calls = calls.clone();
            let headers = headers.clone();
            service_fn(move |_request: Request<Full<Bytes>>| {
                *calls.lock().unwrap() += 1;
                let mut response = Response::new(Chunks::new(chunks.clone(), yield_first));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                *response.headers_mut() = headers.clone();
                std::future::ready(Ok::<_, BoxError>(response))
            })
        };
        let layer = RetryLayer::new()
            .max_attempts(NonZeroU32::new(max_attempts).unwrap())
            .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(10)))
            .max_error_body(cap)
            .no_budget();
        let service = ServiceBuilder::new().layer(layer).service(upstream);
        let request = Request::post("/v1/messages").body(Full::new(Bytes::from("{}"))).unwrap();
        let (parts, received) = paused(async move {
            let response = call(service, request).await;
            let (parts, body) = response.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        });

        prop_assert_eq!(parts.status.as_u16(), status);
        prop_assert_eq!(&parts.headers, &headers);
        prop_assert_eq!(received.len(), body.len());
        prop_assert!(received[..] == body[..], "body differs");
        let calls = *calls.lock().unwrap();
        prop_assert!(calls >= 1 && calls <= max_attempts);
        if status == 200 {
            prop_assert_eq!(calls, 1);
        }
    }
}

fn send_once<B>(layer: RetryLayer, log: Log, body: B) -> Response<()>
where
    B: ReplayBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(always_overloaded(log, Duration::ZERO, None));
    let request = Request::post("/v1/messages").body(body).unwrap();
    paused(async move { call(service, request).await.map(|_| ()) })
}

/// Regression (found by `delays_lie_within_their_bounds`): when
/// `factor^(retry−1)` overflows a `u32`, the nominal delay jumped to the cap
/// even though `initial × factor^(retry−1)` was still below it.
#[test]
fn nominal_follows_the_formula_past_u32_overflow() {
    let day = Duration::from_secs(86_400);
    let tiny = Backoff::new(Duration::from_nanos(1), day).jitter(Jitter::None);
    assert_eq!(tiny.nominal(33), Duration::from_nanos(1 << 32));
    assert_eq!(tiny.nominal(40), Duration::from_nanos(1 << 39));
    assert_eq!(tiny.nominal(u32::MAX), day);
    let zero = Backoff::new(Duration::ZERO, day).jitter(Jitter::None);
    assert_eq!(zero.nominal(33), Duration::ZERO);
    assert_eq!(zero.nominal(u32::MAX), Duration::ZERO);
}

/// What a request's head looks like to the upstream, sensitivity included.
type SeenHead = (
    http::Method,
    http::Uri,
    http::Version,
    Vec<(String, Vec<u8>, bool)>,
);

fn seen(request: &Request<Full<Bytes>>) -> SeenHead {
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
        .collect();
    (
        request.method().clone(),
        request.uri().clone(),
        request.version(),
        headers,
    )
}

fn uri_strategy() -> impl Strategy<Value = String> {
    let path = "(/[a-zA-Z0-9._~%-]{0,12}){0,4}";
    let query = proptest::option::of("[a-zA-Z0-9=&%._-]{0,20}");
    let host = prop_oneof![
        Just(String::new()),
        Just("https://api.anthropic.com".to_owned()),
        Just("http://127.0.0.1:8080".to_owned()),
        Just("http://user@example.com".to_owned()),
    ];
    (host, path, query).prop_map(|(host, path, query)| {
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        match query {
            Some(query) => format!("{host}{path}?{query}"),
            None => format!("{host}{path}"),
        }
    })
}

fn header_strategy() -> impl Strategy<Value = (String, Vec<u8>, bool)> {
    let name = prop_oneof![
        Just("content-type".to_owned()),
        Just("x-api-key".to_owned()),
        Just("anthropic-beta".to_owned()),
        Just("accept".to_owned()),
        "x-[a-z0-9-]{1,20}",
    ];
    // Visible ASCII, tab and obs-text: every byte a `HeaderValue` accepts.
    let byte = prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff];
    (name, proptest::collection::vec(byte, 0..64), any::<bool>())
}

proptest! {
    #![proptest_config(config())]

    /// Every attempt reaches the upstream with the caller's head: method, URI,
    /// version, and every header in order, repeats and sensitivity included.
    #[test]
    fn request_head_replays_identically(
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT"), Just("PURGE")],
        uri in uri_strategy(),
        headers in proptest::collection::vec(header_strategy(), 0..12),
        http2 in any::<bool>(),
    ) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri.as_str())
            .version(if http2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 })
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        for (name, value, sensitive) in &headers {
            let mut value = HeaderValue::from_bytes(value).unwrap();
            value.set_sensitive(*sensitive);
            request
                .headers_mut()
                .append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
        let expected = seen(&request);
        let heads = Arc::new(Mutex::new(Vec::new()));
        let upstream = {
            let heads = heads.clone();
            service_fn(move |request: Request<Full<Bytes>>| {
                heads.lock().unwrap().push(seen(&request));
                let mut response = Response::new(Full::new(Bytes::from_static(OVERLOADED.as_bytes())));
                *response.status_mut() = StatusCode::from_u16(529).unwrap();
                std::future::ready(Ok::<_, BoxError>(response))
            })
        };
        let service = ServiceBuilder::new()
            .layer(
                RetryLayer::new()
                    .max_attempts(NonZeroU32::new(3).unwrap())
                    .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(10)))
                    .no_budget(),
            )
            .service(upstream);
        let response = paused(async move { call(service, request).await });
        prop_assert_eq!(response.status(), StatusCode::from_u16(529).unwrap());
        let heads = heads.lock().unwrap();
        prop_assert_eq!(heads.len(), 3);
        for (index, head) in heads.iter().enumerate() {
            prop_assert_eq!(head, &expected, "attempt {}", index + 1);
        }
    }
}
