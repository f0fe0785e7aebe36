//! More hostile status pages and webhooks, beyond `tests/gate_hostile.rs`:
//! a body that drips one byte at a time, a body that never ends, JSON nested
//! 100 000 deep, huge strings inside and over the size cap, redirect loops,
//! TLS failures (untrusted certificate, a handshake that never completes, a
//! certificate that changes after a good read), and forged, garbage,
//! oversized and unknown webhooks. Each ends in bounded time (exact virtual
//! time on the paused clock), reads a bounded number of bytes (counted on the
//! server's side against the cap), and leaves the gate where the configured
//! rule says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;
#[path = "support/tls.rs"]
mod tls_support;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use status_server::{fixture, Reply, StatusServer};
use tokio::time::Instant;
use tower_api_guard::gate::{
    CloseCause, FetchErrorKind, GateStatus, Jitter, PollOutcome, StatusGate, StatusGateBuilder,
    Unreadable, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_POLL_INTERVAL, MAX_TEXT,
};
use tower_api_guard::status_page::{parse_summary, parse_webhook, PageErrorKind};

const OPERATIONAL: &str = "github_summary_operational_2019-12-30.json";
const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";
const TIMEOUT: Duration = Duration::from_secs(5);
const CAP: u32 = 64 * 1024;
/// What a reader may have in flight beyond the cap when it stops: the
/// loopback socket buffers on both sides (autotuned up to a few MiB each on
/// Linux) and hyper's own buffers. Measured here (`endless_body_*`, which
/// prints it): 4.1 MB handed over for a 64 KiB cap, 7-8 MB for 1 MiB.
const SOCKET_SLACK: usize = 16 << 20;
const KEEP_LAST: Unreadable = Unreadable::KeepLast {
    max_age: Duration::from_secs(120),
};

fn builder(base: String, rule: Unreadable) -> StatusGateBuilder {
    StatusGate::builder()
        .base_url(base)
        .jitter(Jitter::none())
        .request_timeout(TIMEOUT)
        .max_response_bytes(NonZeroU32::new(CAP).unwrap())
        .when_unreadable(rule)
}

fn raw(status: u16, body: impl Into<Bytes>) -> Reply {
    Reply::Raw {
        status,
        content_type: "application/json",
        body: body.into(),
    }
}

/// A gate on `server` (serving MAJOR) that has read the page and is closed by it.
async fn closed_by_page(server: &StatusServer, rule: Unreadable, cap: u32) -> StatusGate {
    let gate = builder(server.base_url(), rule)
        .max_response_bytes(NonZeroU32::new(cap).unwrap())
        .build()
        .unwrap();
    assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::StatusPage);
    gate
}

/// Checks the gate state the rule prescribes after a failed read that
/// followed a read that closed the gate.
fn assert_rule_after_failure(gate: &StatusGate, rule: Unreadable, kind: &FetchErrorKind) {
    match rule {
        Unreadable::StayOpen => assert!(gate.is_open(), "{rule:?}: must let requests through"),
        Unreadable::Close => {
            let closed = gate.check().expect_err("Close must close");
            assert_eq!(closed.cause(), CloseCause::Unreadable);
            assert_eq!(closed.fetch_error().unwrap().kind(), kind);
        }
        Unreadable::KeepLast { .. } => {
            let closed = gate
                .check()
                .expect_err("KeepLast must keep the closed state");
            assert_eq!(closed.cause(), CloseCause::StatusPage, "{rule:?}");
        }
        other => panic!("unexpected rule {other:?}"),
    }
}

// ---------------------------------------------------------------- 1. slow drip

/// A page that sends a valid JSON prefix (of an all-clear page, which would
/// open the gate if it ever finished) one byte every 100 ms: the fetch ends at
/// exactly the request timeout, the server has sent about 50 bytes, the
/// connection is dropped (the server's body is dropped), and each rule holds.
#[tokio::test(start_paused = true)]
async fn slow_drip_ends_at_the_request_timeout() {
    for rule in [Unreadable::StayOpen, Unreadable::Close, KEEP_LAST] {
        let server = StatusServer::start(Reply::fixture(MAJOR)).await;
        let gate = closed_by_page(&server, rule, CAP).await;
        server.set(Reply::SlowDrip {
            body: fixture(OPERATIONAL),
            every: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        let PollOutcome::Failed(e) = gate.poll_now().await.unwrap() else {
            panic!("{rule:?}: a slow drip must fail");
        };
        assert_eq!(t0.elapsed(), TIMEOUT, "{rule:?}: ends at the timeout");
        assert_eq!(*e.kind(), FetchErrorKind::Timeout, "{rule:?}");
        // 5 s at one byte per 100 ms: 49 or 50 bytes, never the whole page.
        let sent = server.streamed();
        assert!((45..=50).contains(&sent), "{rule:?}: {sent} bytes dripped");
        // The fetcher hung up: the server stops dripping at once.
        tokio::time::timeout(Duration::from_millis(1), server.wait_dropped(1))
            .await
            .expect("the dripping body is dropped when the fetch times out");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(server.streamed(), sent, "{rule:?}: nothing sent after");
        assert_rule_after_failure(&gate, rule, &FetchErrorKind::Timeout);
        assert_eq!(server.hits(), 2);
    }
}

// ------------------------------------------------------------ 2. endless body

/// Runs one gate against an endless body with `cap`; returns the bytes the
/// server handed to hyper for that one fetch.
async fn endless_once(rule: Unreadable, cap: u32) -> usize {
    let server = StatusServer::start(Reply::fixture(MAJOR)).await;
    let gate = closed_by_page(&server, rule, cap).await;
    server.set(Reply::Endless);
    let t0 = Instant::now();
    let PollOutcome::Failed(e) = gate.poll_now().await.unwrap() else {
        panic!("an endless body must fail");
    };
    // Loopback I/O takes no virtual time: cut long before the timeout.
    assert!(t0.elapsed() < TIMEOUT, "{:?}", t0.elapsed());
    assert_eq!(*e.kind(), FetchErrorKind::TooLarge, "{e}");
    // The server stops writing: its body is dropped, and nothing more is sent.
    tokio::time::timeout(Duration::from_millis(1), server.wait_dropped(1))
        .await
        .expect("the endless body is dropped once the cap is passed");
    let sent = server.streamed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.streamed(), sent, "the server kept writing");
    let cap_bytes = usize::try_from(cap).unwrap();
    assert!(sent > cap_bytes, "the cap was reached: {sent}");
    assert!(
        sent < cap_bytes + SOCKET_SLACK,
        "read far past the cap: {sent} bytes for a cap of {cap}"
    );
    assert_rule_after_failure(&gate, rule, &FetchErrorKind::TooLarge);

    // Every later poll is cut the same way: the total stays bounded per poll.
    tokio::time::sleep(DEFAULT_POLL_INTERVAL * 3).await;
    assert_eq!(server.hits(), 5);
    server.wait_dropped(4).await;
    let total = server.streamed();
    assert!(
        total < 4 * (cap_bytes + SOCKET_SLACK),
        "{total} bytes over 4 polls"
    );
    assert_rule_after_failure(&gate, rule, &FetchErrorKind::TooLarge);
    sent
}

/// A 200 with no content-length whose body never ends: the fetch fails with
/// `TooLarge` without waiting for the timeout, the connection is dropped, and
/// what the server managed to hand over stays within the cap plus socket
/// buffers, for the test's 64 KiB cap and the default 1 MiB one.
#[tokio::test(start_paused = true)]
async fn endless_body_is_cut_at_the_size_cap() {
    for rule in [Unreadable::StayOpen, Unreadable::Close, KEEP_LAST] {
        for cap in [CAP, DEFAULT_MAX_RESPONSE_BYTES.get()] {
            let sent = endless_once(rule, cap).await;
            eprintln!(
                "endless body, {rule:?}, cap {cap} B: server handed over {sent} B \
                 ({:.1} x cap)",
                sent as f64 / f64::from(cap)
            );
        }
    }
}

// ----------------------------------------------- 3. deep nesting, huge strings

fn nested(prefix: &str, open: &str, depth: usize) -> Vec<u8> {
    let mut body = prefix.as_bytes().to_vec();
    for _ in 0..depth {
        body.extend_from_slice(open.as_bytes());
    }
    body
}

fn page_with_description(indicator: &str, description_len: usize) -> Vec<u8> {
    let description = "x".repeat(description_len);
    format!(
        r#"{{"status":{{"indicator":"{indicator}","description":"{description}"}},"components":[],"incidents":[]}}"#
    )
    .into_bytes()
}

type Check = fn(&FetchErrorKind) -> bool;

/// A typed parse failure. Deep nesting ends in one of two ways, neither
/// of them recursion: where a typed field meets a `[` the parse stops at
/// once (`Shape`), and under an unknown key serde_json skips the value with
/// a loop and an explicit stack, so unbalanced nesting runs into the end of
/// the input (`Truncated`).
fn page_error(k: &FetchErrorKind) -> bool {
    matches!(k, FetchErrorKind::Page(e) if matches!(
        e.kind(),
        PageErrorKind::Syntax | PageErrorKind::Shape | PageErrorKind::Truncated
    ))
}

/// `depth` levels of `open`, closed again with `close`, under `prefix`.
fn balanced(prefix: &str, open: &str, close: &str, depth: usize) -> Vec<u8> {
    let mut body = nested(prefix, open, depth);
    for _ in 0..depth {
        body.extend_from_slice(close.as_bytes());
    }
    body.push(b'}');
    body
}

/// Hostile documents for the default 1 MiB cap.
fn deep_and_huge() -> Vec<(&'static str, Vec<u8>, Check)> {
    let head = r#"{"status":{"indicator":"none"},"components":"#;
    vec![
        ("100 000 [", nested(head, "[", 100_000), page_error),
        (
            "100 000 {\"a\": (unknown keys)",
            nested(head, r#"{"a":"#, 100_000),
            page_error,
        ),
        (
            "100 000 [ in an ignored field",
            nested(r#"{"status":{"indicator":"none"},"x":"#, "[", 100_000),
            page_error,
        ),
        // A 2 MiB string: over the cap, refused before parsing.
        (
            "2 MiB description",
            page_with_description("none", 2 << 20),
            |k| *k == FetchErrorKind::TooLarge,
        ),
    ]
}

/// The parsers themselves, on the thread's stack: a million levels of
/// nesting is a typed error, never a stack overflow (see [`page_error`]),
/// and a page with a balanced half-million-deep value under an unknown key
/// is simply read.
#[test]
fn parsers_refuse_deep_nesting_without_recursing() {
    for (open, kind) in [
        ("[", PageErrorKind::Shape),
        ("{\"a\":", PageErrorKind::Truncated),
        ("{\"x\":[", PageErrorKind::Truncated),
    ] {
        let doc = nested("", open, 1_000_000);
        let e = parse_summary(&doc).unwrap_err();
        assert_eq!(e.kind(), kind, "{open}: {e}");
        let e = parse_webhook(&doc).unwrap_err();
        assert_eq!(e.kind(), kind, "{open}: {e}");
    }
    let doc = balanced(
        r#"{"status":{"indicator":"major"},"x":"#,
        "{\"a\":[",
        "]}",
        500_000,
    );
    let page = parse_summary(&doc).unwrap();
    assert_eq!(page.status.indicator.as_str(), "major");
    let hook = nested(
        r#"{"page":{"status_indicator":"none"},"incident":"#,
        "[",
        100_000,
    );
    assert_eq!(
        parse_webhook(&hook).unwrap_err().kind(),
        PageErrorKind::Shape
    );
}

/// Deep nesting and a 2 MiB string, served to a live gate with the default
/// 1 MiB cap: a typed failure each, and the rule holds (Close closes,
/// StayOpen opens, KeepLast keeps the last state).
#[tokio::test(start_paused = true)]
async fn deep_nesting_and_oversized_strings_follow_the_rule() {
    let cap = DEFAULT_MAX_RESPONSE_BYTES.get();
    for rule in [Unreadable::StayOpen, Unreadable::Close, KEEP_LAST] {
        for (what, body, check) in deep_and_huge() {
            let server = StatusServer::start(Reply::fixture(MAJOR)).await;
            let gate = closed_by_page(&server, rule, cap).await;
            server.set(raw(200, body));
            let t0 = Instant::now();
            let PollOutcome::Failed(e) = gate.poll_now().await.unwrap() else {
                panic!("{what}: must fail");
            };
            assert!(t0.elapsed() < TIMEOUT, "{what}");
            assert!(check(e.kind()), "{what}: {e:?}");
            match rule {
                Unreadable::StayOpen => assert!(gate.is_open(), "{what}"),
                Unreadable::Close => {
                    let closed = gate.check().unwrap_err();
                    assert_eq!(closed.cause(), CloseCause::Unreadable, "{what}");
                    assert!(check(closed.fetch_error().unwrap().kind()), "{what}");
                }
                _ => assert_eq!(
                    gate.check().unwrap_err().cause(),
                    CloseCause::StatusPage,
                    "{what}"
                ),
            }
        }
    }
}

/// Huge but valid pages within the cap are read like any other: a 900 KiB
/// description, a 900 KiB unknown indicator (kept as unknown, counted as an
/// incident), a value nested 100 000 deep under an unknown key, and a page of
/// 5 000 components.
#[tokio::test(start_paused = true)]
async fn huge_valid_pages_within_the_cap_still_parse() {
    let cap = DEFAULT_MAX_RESPONSE_BYTES.get();
    let server = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    let gate = builder(server.base_url(), Unreadable::Close)
        .max_response_bytes(NonZeroU32::new(cap).unwrap())
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    assert!(gate.is_open());

    let body = page_with_description("major", 900 * 1024);
    assert!(body.len() < cap as usize);
    server.set(raw(200, body));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let closed = gate.check().unwrap_err();
    assert_eq!(closed.cause(), CloseCause::StatusPage);
    // kept, but cut to MAX_TEXT: it is echoed in every refusal
    let description = closed.description().unwrap();
    assert!(description.len() <= MAX_TEXT && description.ends_with('…'));
    assert!(description.trim_end_matches('…').bytes().all(|b| b == b'x'));

    let weird = "z".repeat(900 * 1024);
    server.set(raw(
        200,
        format!(r#"{{"status":{{"indicator":"{weird}"}}}}"#),
    ));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let closed = gate.check().unwrap_err();
    let indicator = closed.indicator().unwrap().as_str();
    assert!(indicator.len() <= MAX_TEXT && indicator.starts_with("zzzz"));

    // A balanced 100 000-deep value under an unknown key: skipped, page read.
    server.set(raw(
        200,
        balanced(r#"{"status":{"indicator":"minor"},"x":"#, "[", "]", 100_000),
    ));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    let closed = gate.check().unwrap_err();
    assert_eq!(closed.cause(), CloseCause::StatusPage);
    assert_eq!(closed.indicator().map(|i| i.as_str()), Some("minor"));

    let rows: Vec<String> = (0..5_000)
        .map(|n| format!(r#"{{"id":"c{n}","name":"Component {n}","status":"operational"}}"#))
        .collect();
    let page = format!(
        r#"{{"status":{{"indicator":"none"}},"components":[{}],"incidents":[]}}"#,
        rows.join(",")
    );
    assert!(page.len() < cap as usize);
    server.set(raw(200, page));
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert!(gate.is_open());
}

// ------------------------------------------------------------- 4. redirects

/// A page redirecting to itself (301, 302, 307, 308) is not followed: each
/// poll is exactly one request, fails with the redirect status, and the rule
/// holds. A redirect to another (all-clear) page is not followed either: that
/// page is never asked, so a redirect cannot open the gate.
#[tokio::test(start_paused = true)]
async fn redirect_loops_are_not_followed() {
    let elsewhere = StatusServer::start(Reply::fixture(OPERATIONAL)).await;
    for rule in [Unreadable::StayOpen, Unreadable::Close, KEEP_LAST] {
        for status in [301, 302, 307, 308] {
            let server = StatusServer::start(Reply::fixture(MAJOR)).await;
            let gate = closed_by_page(&server, rule, CAP).await;
            for (n, location) in [
                format!("{}/api/v2/summary.json", server.base_url()),
                "/api/v2/summary.json".to_owned(),
                format!("{}/api/v2/summary.json", elsewhere.base_url()),
            ]
            .into_iter()
            .enumerate()
            {
                server.set(Reply::Redirect {
                    status,
                    location: location.clone(),
                });
                let before = server.hits();
                let t0 = Instant::now();
                let PollOutcome::Failed(e) = gate.poll_now().await.unwrap() else {
                    panic!("{status} to {location}: must fail");
                };
                assert_eq!(t0.elapsed(), Duration::ZERO, "{status}: no waiting");
                assert_eq!(*e.kind(), FetchErrorKind::Status(status), "{location}");
                assert_eq!(
                    server.hits(),
                    before + 1,
                    "{status} {location}: one request"
                );
                assert_rule_after_failure(&gate, rule, &FetchErrorKind::Status(status));
                assert_eq!(server.hits(), 2 + n);
            }
            // Interval polls: still one request each.
            tokio::time::sleep(DEFAULT_POLL_INTERVAL * 2 + Duration::from_secs(1)).await;
            assert_eq!(server.hits(), 4 + 2, "{status}");
            assert_rule_after_failure(&gate, rule, &FetchErrorKind::Status(status));
        }
    }
    assert_eq!(elsewhere.hits(), 0, "a redirect was followed off-site");
}

// -------------------------------------------------------------------- 5. TLS

mod tls {
    use super::*;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::tls_support::acceptor;
    pub(super) use super::tls_support::{make_cert, Cert};

    /// A status page over TLS serving MAJOR, one request per connection (so
    /// every poll makes a new handshake), presenting whichever certificate
    /// is current. Counts TCP connections and completed handshakes.
    pub(super) struct TlsPage {
        pub(super) addr: SocketAddr,
        current: Arc<Mutex<TlsAcceptor>>,
        pub(super) connections: Arc<AtomicUsize>,
        pub(super) handshakes: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TlsPage {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TlsPage {
        pub(super) async fn start(cert: &Cert) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let current = Arc::new(Mutex::new(acceptor(cert)));
            let connections = Arc::new(AtomicUsize::new(0));
            let handshakes = Arc::new(AtomicUsize::new(0));
            let (cur, conns, done) = (current.clone(), connections.clone(), handshakes.clone());
            let task = tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    conns.fetch_add(1, Ordering::SeqCst);
                    let acceptor = cur.lock().unwrap().clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        done.fetch_add(1, Ordering::SeqCst);
                        let svc =
                            hyper::service::service_fn(|_req: http::Request<Incoming>| async {
                                let mut r =
                                    http::Response::new(http_body_util::Full::new(fixture(MAJOR)));
                                r.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, Infallible>(r)
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
            Self {
                addr,
                current,
                connections,
                handshakes,
                task,
            }
        }

        /// Presents `cert` on every connection from now on.
        pub(super) fn present(&self, cert: &Cert) {
            *self.current.lock().unwrap() = acceptor(cert);
        }

        pub(super) fn base_url(&self) -> String {
            format!("https://{}", self.addr)
        }
    }

    /// Accepts TCP connections and holds them without a word: a TLS
    /// handshake that never completes.
    #[cfg(feature = "rustls")]
    pub(super) async fn silent_tls_port() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(tcp);
            }
        });
        (format!("https://{addr}"), accepted, task)
    }
}

/// `tests/https.rs` shows the built-in fetcher refusing an untrusted
/// certificate under the default rule (stay open). Here the other rules:
/// Close closes with a `Connect` failure, and KeepLast, with nothing read
/// yet, has no state to keep and stays open. No handshake completes.
#[cfg(feature = "rustls")]
#[tokio::test(start_paused = true)]
async fn untrusted_certificate_follows_close_and_keep_last() {
    let cert = tls::make_cert();
    let page = tls::TlsPage::start(&cert).await;
    for (rule, open) in [(Unreadable::Close, false), (KEEP_LAST, true)] {
        let gate = builder(page.base_url(), rule).build().unwrap();
        let t0 = Instant::now();
        let PollOutcome::Failed(e) = gate.polled().await.unwrap() else {
            panic!("{rule:?}: an untrusted certificate must fail");
        };
        assert!(t0.elapsed() < TIMEOUT);
        assert_eq!(*e.kind(), FetchErrorKind::Connect, "{e}");
        assert_eq!(gate.is_open(), open, "{rule:?}");
        if !open {
            let closed = gate.check().unwrap_err();
            assert_eq!(closed.cause(), CloseCause::Unreadable);
            assert_eq!(
                closed.fetch_error().unwrap().kind(),
                &FetchErrorKind::Connect
            );
        }
    }
    assert_eq!(page.connections.load(Ordering::SeqCst), 2);
    assert_eq!(page.handshakes.load(Ordering::SeqCst), 0);
}

/// A page read over TLS closes the gate; then the server presents a
/// certificate the client does not trust (as a hijacked or misconfigured
/// endpoint would). Each poll is a fresh handshake that fails, and each rule
/// holds: StayOpen opens, Close closes as unreadable, KeepLast keeps the
/// page's closed state.
#[tokio::test(start_paused = true)]
async fn tls_failure_after_a_good_read_follows_every_rule() {
    let (good, rogue) = (tls::make_cert(), tls::make_cert());
    for rule in [Unreadable::StayOpen, Unreadable::Close, KEEP_LAST] {
        let page = tls::TlsPage::start(&good).await;
        let gate = builder(page.base_url(), rule)
            .http_service(tls_support::https_client::<http_body_util::Empty<Bytes>>(
                &good,
            ))
            .build()
            .unwrap();
        assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
        assert_eq!(gate.check().unwrap_err().cause(), CloseCause::StatusPage);
        assert_eq!(page.handshakes.load(Ordering::SeqCst), 1);

        page.present(&rogue);
        let t0 = Instant::now();
        let PollOutcome::Failed(e) = gate.poll_now().await.unwrap() else {
            panic!("{rule:?}: the rogue certificate must fail");
        };
        assert!(t0.elapsed() < TIMEOUT);
        assert_eq!(*e.kind(), FetchErrorKind::Connect, "{e}");
        assert_rule_after_failure(&gate, rule, &FetchErrorKind::Connect);
        assert_eq!(page.connections.load(Ordering::SeqCst), 2);
        assert_eq!(page.handshakes.load(Ordering::SeqCst), 1);
    }
}

/// A server that accepts TCP and never answers the ClientHello: the fetch
/// ends at exactly the request timeout (the built-in connector has no
/// handshake timeout of its own; the fetch's covers it) and the rule holds.
#[cfg(feature = "rustls")]
#[tokio::test(start_paused = true)]
async fn tls_handshake_that_never_completes_times_out() {
    let (base, accepted, task) = tls::silent_tls_port().await;
    for (rule, open) in [(Unreadable::StayOpen, true), (Unreadable::Close, false)] {
        let gate = builder(base.clone(), rule).build().unwrap();
        let t0 = Instant::now();
        let PollOutcome::Failed(e) = gate.polled().await.unwrap() else {
            panic!("{rule:?}: must time out");
        };
        assert_eq!(t0.elapsed(), TIMEOUT, "{rule:?}");
        assert_eq!(*e.kind(), FetchErrorKind::Timeout, "{e}");
        assert_eq!(gate.is_open(), open, "{rule:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    task.abort();
}

// --------------------------------------------------------------- 6. webhooks

/// Forged all-clear webhooks (valid JSON), for the MAJOR page: the indicator
/// alone, and the page's own incident marked resolved.
fn forged_all_clear() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "indicator none",
            r#"{"page":{"id":"kctbh9vrtdwd","status_indicator":"none","status_description":"All Systems Operational"}}"#,
        ),
        (
            "incident resolved",
            r#"{"page":{"id":"kctbh9vrtdwd","status_indicator":"none","status_description":"All Systems Operational"},
                "incident":{"id":"80d0cs6kpsps","name":"Incident on 2020-04-02 20:20 UTC","status":"resolved","impact":"none"}}"#,
        ),
    ]
}

/// The page says major outage; a forged webhook says all is well. It may
/// open the gate at once, but the confirming poll it triggers (at once, no
/// waiting) reads the page, and the gate is closed again by that one poll,
/// whether the page answers 304 (unchanged ETag) or 200 with the same page;
/// and under KeepLast, when the confirming poll fails (a 500), the last page
/// read is kept, not the webhook. It stays closed at the next interval poll.
#[tokio::test(start_paused = true)]
async fn forged_all_clear_webhook_is_undone_by_the_confirming_poll() {
    let same_page_no_etag = Reply::Page {
        body: fixture(MAJOR),
        etag: None,
    };
    let cases = [
        ("304", Reply::fixture(MAJOR), None, Unreadable::StayOpen, 1),
        ("same 200", same_page_no_etag, None, Unreadable::StayOpen, 0),
        (
            "500, KeepLast",
            Reply::fixture(MAJOR),
            Some(raw(500, "down")),
            KEEP_LAST,
            0,
        ),
    ];
    for (how, reply, then, rule, not_modified) in cases {
        for (what, forged) in forged_all_clear() {
            let server = StatusServer::start(reply.clone()).await;
            let gate = StatusGate::builder()
                .base_url(server.base_url())
                .jitter(Jitter::none())
                .when_unreadable(rule)
                .build()
                .unwrap();
            assert!(matches!(gate.polled().await.unwrap(), PollOutcome::Page));
            assert_eq!(gate.check().unwrap_err().cause(), CloseCause::StatusPage);
            if let Some(then) = then.clone() {
                server.set(then);
            }
            let mut rx = gate.subscribe();
            rx.borrow_and_update();

            let t0 = Instant::now();
            let status = gate.apply_webhook(forged.as_bytes()).unwrap();
            assert!(
                status.is_open(),
                "{how}/{what}: the webhook applies at once"
            );
            assert!(rx.has_changed().unwrap());
            rx.borrow_and_update();
            // Closed again by the confirming poll, with no virtual time passing.
            tokio::time::timeout(TIMEOUT, rx.changed())
                .await
                .expect("the confirming poll closes the gate again")
                .unwrap();
            assert_eq!(t0.elapsed(), Duration::ZERO, "{how}/{what}");
            let closed = rx.borrow_and_update().closed().cloned().unwrap();
            assert_eq!(closed.cause(), CloseCause::StatusPage, "{how}/{what}");
            assert_eq!(closed.incidents().len(), 1);
            assert_eq!(server.hits(), 2, "{how}/{what}: one confirming request");
            assert_eq!(server.times()[1], t0, "{how}/{what}: polled at once");
            assert_eq!(server.not_modified(), not_modified, "{how}/{what}");
            // And it stays closed.
            tokio::time::sleep(DEFAULT_POLL_INTERVAL + Duration::from_secs(1)).await;
            assert_eq!(server.hits(), 3);
            assert_eq!(gate.check().unwrap_err().cause(), CloseCause::StatusPage);
        }
    }
}

/// The opposite direction is unchanged: a webhook that reports an incident
/// the page does not show yet (the CDN copy lags) closes the gate, and an
/// unchanged page does not reopen it (covered in `gate_layer.rs` for a 304;
/// here for a 200 of the same page).
#[tokio::test(start_paused = true)]
async fn closing_webhook_still_stands_against_an_unchanged_page() {
    let server = StatusServer::start(Reply::Page {
        body: fixture(OPERATIONAL),
        etag: None,
    })
    .await;
    let gate = StatusGate::builder()
        .base_url(server.base_url())
        .jitter(Jitter::none())
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    assert!(gate.is_open());
    let hook = r#"{"page":{"status_indicator":"major","status_description":"Partial System Outage"},
                   "incident":{"id":"new1","name":"API errors","status":"investigating","impact":"major"}}"#;
    assert!(!gate.apply_webhook(hook.as_bytes()).unwrap().is_open());
    server.wait_hits(2).await;
    assert!(matches!(gate.poll_now().await.unwrap(), PollOutcome::Page));
    assert_eq!(gate.check().unwrap_err().cause(), CloseCause::Webhook);
}

/// Garbage, deeply nested and oversized webhook bodies: a typed error each,
/// the state untouched (same cause, same `since`, no change event) and no
/// poll triggered.
#[tokio::test(start_paused = true)]
async fn garbage_and_oversized_webhooks_are_refused_and_change_nothing() {
    let cap = 64 * 1024;
    let mut all_clear_2mib =
        br#"{"page":{"status_indicator":"none","status_description":""#.to_vec();
    all_clear_2mib.extend(std::iter::repeat_n(b'x', 2 << 20));
    all_clear_2mib.extend_from_slice(br#""}}"#);
    let mut spaces = vec![b' '; 2 << 20];
    spaces.extend_from_slice(br#"{"page":{"status_indicator":"none"}}"#);
    let bodies: Vec<(&str, Vec<u8>, PageErrorKind)> = vec![
        ("empty", Vec::new(), PageErrorKind::Empty),
        (
            "html",
            b"<html><body>hi</body></html>".to_vec(),
            PageErrorKind::Syntax,
        ),
        (
            "truncated",
            br#"{"page":{"status_indicator":"no"#.to_vec(),
            PageErrorKind::Truncated,
        ),
        (
            "wrong types",
            br#"{"page":{"status_indicator":5},"incident":[]}"#.to_vec(),
            PageErrorKind::Shape,
        ),
        (
            "100 000 [",
            nested(
                r#"{"page":{"status_indicator":"none"},"incident":"#,
                "[",
                100_000,
            ),
            PageErrorKind::TooLarge,
        ),
        ("2 MiB all-clear", all_clear_2mib, PageErrorKind::TooLarge),
        ("2 MiB of spaces first", spaces, PageErrorKind::TooLarge),
        (
            "deep within the cap",
            nested(r#"{"page":{"status_indicator":"none"},"x":"#, "[", 60_000),
            PageErrorKind::Truncated,
        ),
    ];
    for start in [MAJOR, OPERATIONAL] {
        let server = StatusServer::start(Reply::fixture(start)).await;
        let gate = builder(server.base_url(), Unreadable::StayOpen)
            .max_response_bytes(NonZeroU32::new(cap).unwrap())
            .build()
            .unwrap();
        gate.polled().await.unwrap();
        let before = gate.status();
        let mut rx = gate.subscribe();
        rx.borrow_and_update();
        for (what, body, kind) in &bodies {
            let e = gate.apply_webhook(body).unwrap_err();
            assert_eq!(e.kind(), *kind, "{what}: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(!rx.has_changed().unwrap(), "{what}: state changed");
            match (&before, gate.status()) {
                (GateStatus::Open, GateStatus::Open) => {}
                (GateStatus::Closed(a), GateStatus::Closed(b)) => {
                    assert_eq!(a.cause(), b.cause(), "{what}");
                    assert_eq!(a.since(), b.since(), "{what}");
                }
                (a, b) => panic!("{what}: {a:?} became {b:?}"),
            }
        }
        assert_eq!(server.hits(), 1, "a refused webhook triggers no poll");
    }
}

/// Webhooks of a kind this crate does not know (a subscriber notice, a
/// maintenance object, an unknown top-level key) parse, change nothing and
/// do no harm; the confirming poll still runs.
#[tokio::test(start_paused = true)]
async fn unknown_webhook_events_are_harmless() {
    let unknown = [
        r#"{"meta":{"unsubscribe":"http://x/?u=1","generated_at":"2017-12-26T07:37:21.000Z"},"page":{"id":"kctbh9vrtdwd"},"subscriber":{"email":"a@b.c"}}"#,
        r#"{"page":{"id":"kctbh9vrtdwd"},"maintenance":{"name":"DB upgrade","status":"in_progress"}}"#,
        r#"{"page":{"id":"kctbh9vrtdwd"},"event":"page.deleted","data":[1,2,3]}"#,
        r#"{}"#,
    ];
    for start in [MAJOR, OPERATIONAL] {
        let server = StatusServer::start(Reply::fixture(start)).await;
        let gate = builder(server.base_url(), Unreadable::StayOpen)
            .build()
            .unwrap();
        gate.polled().await.unwrap();
        let before = gate.status();
        let mut rx = gate.subscribe();
        rx.borrow_and_update();
        for body in unknown {
            let hits = server.hits();
            let status = gate.apply_webhook(body.as_bytes()).unwrap();
            assert_eq!(status.is_open(), before.is_open(), "{body}");
            server.wait_hits(hits + 1).await;
            assert!(matches!(
                gate.poll_now().await.unwrap(),
                PollOutcome::NotModified
            ));
            assert!(!rx.has_changed().unwrap(), "{body}: state changed");
            if let (GateStatus::Closed(a), GateStatus::Closed(b)) = (&before, gate.status()) {
                assert_eq!(a.cause(), b.cause());
                assert_eq!(a.since(), b.since());
            }
        }
    }
}
