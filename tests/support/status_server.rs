//! A loopback Statuspage stand-in for the gate tests: real TCP on 127.0.0.1,
//! a real hyper 1 server. It serves the real captures from
//! `tests/fixtures/statuspage/` (or hostile replies), can be re-scripted while
//! running, honours `If-None-Match`, and counts what it receives.
//!
//! It runs on the test's own runtime, so the tests can use tokio's paused
//! clock: a loopback write makes the peer socket readable before the write
//! returns, so whenever the runtime is idle and auto-advances time, no
//! loopback I/O is still in flight and no timeout fires early. (Checked by
//! running the suites repeatedly and concurrently; the hostile-page tests
//! assert exact virtual durations, which would catch an early timeout.)
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the server answers with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this JSON body and ETag; 304 when `If-None-Match` matches it.
    Page { body: Bytes, etag: Option<String> },
    /// This status, content type and body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: Bytes,
    },
    /// 200 with a streamed body of this many bytes and no content-length.
    Huge(usize),
    /// Accept the request and never answer.
    Hang,
    /// 200, no content-length, then this body one byte per `every` (tokio's
    /// clock), then the end. Counted in [`StatusServer::streamed`].
    SlowDrip { body: Bytes, every: Duration },
    /// 200, no content-length, `{"status":` then spaces in 64 KiB chunks,
    /// forever. Counted in [`StatusServer::streamed`].
    Endless,
    /// This redirect status with this `Location`.
    Redirect { status: u16, location: String },
}

impl Reply {
    /// A fixture served as a page with a made-up ETag derived from its name.
    pub fn fixture(name: &str) -> Self {
        Reply::Page {
            body: fixture(name),
            etag: Some(format!("W/\"{}\"", name.replace(['/', '.'], "-"))),
        }
    }

    /// A page body with no ETag.
    pub fn json(body: &str) -> Self {
        Reply::Page {
            body: Bytes::from(body.to_owned()),
            etag: None,
        }
    }
}

/// Reads `tests/fixtures/statuspage/<name>`.
pub fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/statuspage/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}")))
}

struct State {
    reply: Mutex<Reply>,
    hits: AtomicUsize,
    not_modified: AtomicUsize,
    if_none_match: Mutex<Vec<Option<String>>>,
    paths: Mutex<Vec<String>>,
    times: Mutex<Vec<tokio::time::Instant>>,
    hits_tx: watch::Sender<usize>,
    /// Body bytes handed to hyper by the `SlowDrip` and `Endless` bodies.
    streamed: AtomicUsize,
    /// `SlowDrip` and `Endless` bodies dropped (finished or abandoned).
    dropped_tx: watch::Sender<usize>,
}

/// A running status server.
pub struct StatusServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StatusServer {
    /// Binds 127.0.0.1:0 and serves `reply`.
    pub async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            reply: Mutex::new(reply),
            hits: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            if_none_match: Mutex::new(Vec::new()),
            paths: Mutex::new(Vec::new()),
            times: Mutex::new(Vec::new()),
            hits_tx: watch::Sender::new(0),
            streamed: AtomicUsize::new(0),
            dropped_tx: watch::Sender::new(0),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = Arc::clone(&st);
                        async move { Ok::<_, Infallible>(answer(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to give the gate.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the server answers from now on.
    pub fn set(&self, reply: Reply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// 304 answers sent so far.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// The `If-None-Match` of every request, in order.
    pub fn if_none_match(&self) -> Vec<Option<String>> {
        self.state.if_none_match.lock().unwrap().clone()
    }

    /// The path of every request, in order.
    pub fn paths(&self) -> Vec<String> {
        self.state.paths.lock().unwrap().clone()
    }

    /// When each request arrived (tokio's clock, so paused time counts).
    pub fn times(&self) -> Vec<tokio::time::Instant> {
        self.state.times.lock().unwrap().clone()
    }

    /// Body bytes the `SlowDrip` and `Endless` replies have handed to hyper
    /// so far (an upper bound on what was written to the socket).
    pub fn streamed(&self) -> usize {
        self.state.streamed.load(Ordering::SeqCst)
    }

    /// `SlowDrip` and `Endless` bodies dropped so far: the server stopped
    /// writing them (finished, or the client went away).
    pub fn bodies_dropped(&self) -> usize {
        *self.state.dropped_tx.borrow()
    }

    /// Waits until at least `n` streamed bodies have been dropped.
    pub async fn wait_dropped(&self, n: usize) {
        let mut rx = self.state.dropped_tx.subscribe();
        rx.wait_for(|d| *d >= n).await.unwrap();
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_hits(&self, n: usize) {
        let mut rx = self.state.hits_tx.subscribe();
        rx.wait_for(|h| *h >= n).await.unwrap();
    }
}

type ServerBody = Either<Full<Bytes>, Either<Filler, Drip>>;

async fn answer(st: &Arc<State>, req: Request<Incoming>) -> Response<ServerBody> {
    let inm = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    st.paths.lock().unwrap().push(req.uri().path().to_owned());
    st.times.lock().unwrap().push(tokio::time::Instant::now());
    st.if_none_match.lock().unwrap().push(inm.clone());
    let n = st.hits.fetch_add(1, Ordering::SeqCst) + 1;
    st.hits_tx.send_replace(n);
    let reply = st.reply.lock().unwrap().clone();
    match reply {
        Reply::Page { body, etag } => {
            if etag.is_some() && inm == etag {
                st.not_modified.fetch_add(1, Ordering::SeqCst);
                let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                return r;
            }
            let mut r = Response::new(Either::Left(Full::new(body)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8".parse().unwrap(),
            );
            if let Some(tag) = etag {
                r.headers_mut()
                    .insert(http::header::ETAG, tag.parse().unwrap());
            }
            r
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => {
            let mut r = Response::new(Either::Left(Full::new(body)));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
            r
        }
        Reply::Huge(len) => Response::new(Either::Right(Either::Left(Filler { left: len }))),
        Reply::Hang => std::future::pending().await,
        Reply::SlowDrip { body, every } => {
            let sleep = Box::pin(tokio::time::sleep(every));
            let drip = DripKind::Slow { body, every, sleep };
            Response::new(Either::Right(Either::Right(Drip::new(st, drip))))
        }
        Reply::Endless => Response::new(Either::Right(Either::Right(Drip::new(
            st,
            DripKind::Endless { first: true },
        )))),
        Reply::Redirect { status, location } => {
            let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert(http::header::LOCATION, location.parse().unwrap());
            r
        }
    }
}

/// 64 KiB of spaces, the `Endless` body's chunk.
static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

enum DripKind {
    Slow {
        body: Bytes,
        every: Duration,
        sleep: Pin<Box<tokio::time::Sleep>>,
    },
    Endless {
        first: bool,
    },
}

/// The `SlowDrip` and `Endless` bodies: count what they hand to hyper and
/// when they are dropped.
pub struct Drip {
    kind: DripKind,
    st: Arc<State>,
}

impl Drip {
    fn new(st: &Arc<State>, kind: DripKind) -> Self {
        Self {
            kind,
            st: Arc::clone(st),
        }
    }
}

impl Drop for Drip {
    fn drop(&mut self) {
        self.st.dropped_tx.send_modify(|d| *d += 1);
    }
}

impl Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = match &mut self.kind {
            DripKind::Slow { body, every, sleep } => {
                if body.is_empty() {
                    return Poll::Ready(None);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let next = tokio::time::Instant::now() + *every;
                sleep.as_mut().reset(next);
                body.split_to(1)
            }
            DripKind::Endless { first } => {
                if std::mem::take(first) {
                    let mut chunk = SPACES.to_vec();
                    chunk[..10].copy_from_slice(b"{\"status\":");
                    Bytes::from(chunk)
                } else {
                    Bytes::from_static(&SPACES)
                }
            }
        };
        self.st.streamed.fetch_add(chunk.len(), Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

/// A streamed body: `{"status":` then spaces, in 64 KiB chunks, no length.
pub struct Filler {
    left: usize,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        let mut chunk = vec![b' '; n];
        if n >= 10 {
            chunk[..10].copy_from_slice(b"{\"status\":");
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

/// A base URL on which nothing listens (connection refused).
pub async fn refused_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
