//! Retrying an SSE stream whose first event is an overload error, never after
//! content: a loopback server that streams, a hyper-util client, a paused clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::classify::RetryReason;
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};

const ERROR_EVENT: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

fn good_stream() -> String {
    concat!(
        ": keep-alive\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\r\n\r\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n",
        "data: \"delta\":{\"text\":\"Hello\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    )
    .to_owned()
}

/// One scripted streamed answer: 200 `text/event-stream` with these chunks;
/// with `stall_at = Some(i)` the server waits for `release` before chunk `i`.
#[derive(Clone)]
struct Stream {
    chunks: Vec<Bytes>,
    stall_at: Option<usize>,
}

impl Stream {
    fn whole(text: &str) -> Self {
        Stream {
            chunks: vec![Bytes::from(text.to_owned())],
            stall_at: None,
        }
    }

    fn bytes(text: &str) -> Self {
        Stream {
            chunks: text.bytes().map(|b| Bytes::from(vec![b])).collect(),
            stall_at: None,
        }
    }
}

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Stream>>>,
    hits: Arc<Mutex<usize>>,
    release: Arc<Notify>,
}

impl Server {
    async fn start(script: Vec<Stream>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script.into())),
            hits: Arc::new(Mutex::new(0)),
            release: Arc::new(Notify::new()),
        };
        let handle = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let handle = handle.clone();
                        async move { Ok::<_, std::io::Error>(handle.answer()) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    fn answer(&self) -> Response<Either<provider::Chunks, StreamBody<ChannelStream>>> {
        *self.hits.lock().unwrap() += 1;
        let next = self.script.lock().unwrap().pop_front();
        let Stream { chunks, stall_at } = next.unwrap_or_else(|| Stream::whole(&good_stream()));
        let response = Response::builder()
            .header("content-type", "text/event-stream; charset=utf-8")
            .header("request-id", "req_stream");
        if stall_at.is_none() {
            // Every frame is ready with the head, as on a real socket; a body
            // fed by another task would race tokio's auto-advancing paused clock.
            return response
                .body(Either::Left(provider::Chunks::new(chunks)))
                .unwrap();
        }
        let (tx, rx) = mpsc::channel(1);
        let release = self.release.clone();
        tokio::spawn(async move {
            for (i, chunk) in chunks.into_iter().enumerate() {
                if stall_at == Some(i) {
                    release.notified().await;
                }
                if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                    return;
                }
            }
        });
        response
            .body(Either::Right(StreamBody::new(ChannelStream(rx))))
            .unwrap()
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

struct ChannelStream(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn layer() -> RetryLayer {
    RetryLayer::new()
        .backoff(Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).jitter(Jitter::None))
        .no_budget()
        .retry_stream_start(true)
}

async fn stream(server: &Server, layer: RetryLayer) -> (StatusCode, String, RetryInfo) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new().layer(layer).service(client);
    let request = Request::post(format!("http://{}/v1/messages", server.addr))
        .body(Full::new(Bytes::from_static(br#"{"stream":true}"#)))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let info = RetryInfo::of(&response);
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), info)
}

#[tokio::test(start_paused = true)]
async fn an_error_first_stream_is_retried_and_the_caller_sees_only_the_good_one() {
    let server = Server::start(vec![
        Stream::whole(ERROR_EVENT),
        Stream::whole(&good_stream()),
    ])
    .await;
    let started = Instant::now();
    let (status, body, info) = stream(&server, layer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, good_stream());
    assert_eq!(server.hits(), 2);
    assert_eq!(info.attempts, 2);
    assert_eq!(
        info.last_reason,
        Some(RetryReason::ErrorType("overloaded_error"))
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn an_error_after_content_is_passed_through_untouched() {
    let mid = format!("{}{}", good_stream(), ERROR_EVENT);
    let server = Server::start(vec![Stream::whole(&mid)]).await;
    let (status, body, info) = stream(&server, layer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, mid);
    assert_eq!(server.hits(), 1);
    assert_eq!((info.attempts, info.stop), (1, Stop::Final));
}

#[tokio::test(start_paused = true)]
async fn a_first_event_split_into_one_byte_chunks_is_still_seen() {
    let server = Server::start(vec![
        Stream::bytes(ERROR_EVENT),
        Stream::bytes(&good_stream()),
    ])
    .await;
    let (_, body, info) = stream(&server, layer()).await;
    assert_eq!(body, good_stream());
    assert_eq!(info.attempts, 2);
    assert_eq!(server.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stream_stalled_before_its_first_event_is_handed_on_after_the_bound() {
    let stalled = Stream {
        chunks: vec![
            Bytes::from_static(b": waiting\n\n"),
            Bytes::from(good_stream()),
        ],
        stall_at: Some(1),
    };
    let server = Server::start(vec![stalled]).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new()
        .layer(layer().stream_start_timeout(Duration::from_secs(3)))
        .service(client);
    let request = Request::post(format!("http://{}/v1/messages", server.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = Instant::now();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    // handed on when the bound ran out, with the server still stalled
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    server.release.notify_one();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!(": waiting\n\n{}", good_stream()));
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_first_event_over_the_cap_is_passed_through_unclassified() {
    let padding = "x".repeat(4096);
    let big_error = format!(
        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"{padding}\"}}}}\n\n"
    );
    let server = Server::start(vec![Stream::whole(&big_error)]).await;
    let (_, body, info) = stream(&server, layer().stream_start_cap(1024)).await;
    assert_eq!(body, big_error);
    assert_eq!(server.hits(), 1);
    assert_eq!(info.attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn without_the_option_an_error_first_stream_is_not_retried() {
    let server = Server::start(vec![Stream::whole(ERROR_EVENT)]).await;
    let (status, body, _) = stream(&server, layer().retry_stream_start(false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, ERROR_EVENT);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn error_first_streams_obey_the_attempt_limit() {
    let server = Server::start(vec![Stream::whole(ERROR_EVENT); 5]).await;
    let (status, body, info) = stream(&server, layer()).await;
    assert_eq!(status, StatusCode::OK);
    // the last attempt is handed on as it came
    assert_eq!(body, ERROR_EVENT);
    assert_eq!(server.hits(), 5);
    assert_eq!((info.attempts, info.stop), (5, Stop::Final));
}
