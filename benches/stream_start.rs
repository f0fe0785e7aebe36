//! Time to first byte of a good SSE stream, bare vs behind `RetryLayer` with
//! `retry_stream_start` off and on, in the same run.
//!
//! A loopback hyper HTTP/1 server answers `200 text/event-stream` whose first
//! chunk is the provider's `message_start` event, and holds the rest back
//! until the client has read that first chunk; a hyper-util client reads the
//! response head and the first body frame, then the rest so the connection
//! is reused. With the option on, the layer holds the stream back until the
//! first event has arrived whole, which here is the first chunk: the figure
//! shows what that inspection costs.
//!
//! Only the time from the call to the first body frame is measured
//! (`iter_custom`); each iteration clones the service, the same for every
//! variant.
//!
//! Run: `cargo bench --bench stream_start -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::retry::RetryLayer;

#[allow(dead_code)]
mod support;

const FIRST: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n";
const REST: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

struct Frames(std::vec::IntoIter<Bytes>);

impl futures_core::Stream for Frames {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// The server's answer to everything: `200 text/event-stream`, [`FIRST`]
/// then [`REST`] as two body frames.
async fn answer(_req: Request<Incoming>) -> Result<Response<StreamBody<Frames>>, Infallible> {
    let chunks = vec![
        Bytes::from_static(FIRST.as_bytes()),
        Bytes::from_static(REST.as_bytes()),
    ];
    Ok(support::response(
        StreamBody::new(Frames(chunks.into_iter())),
        "text/event-stream",
    ))
}

/// Sends one streaming request and returns the time from the call to the
/// first body byte in hand; then drains the stream (not timed) so the
/// connection is reused.
async fn first_byte<S, B>(mut service: S, addr: SocketAddr) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let request = Request::post(format!("http://{addr}/v1/messages"))
        .body(Full::new(Bytes::from_static(br#"{"stream":true}"#)))
        .unwrap();
    let service = service.ready().await.unwrap();
    let started = Instant::now();
    let response = service.call(request).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    while body.frame().await.is_some() {}
    elapsed
}

/// Criterion's timing loop for [`first_byte`]: only the time to first byte counts.
fn ttfb<S, B>(
    b: &mut criterion::Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    service: S,
    addr: SocketAddr,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += first_byte(service.clone(), addr).await;
            }
            total
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = support::two_workers();
    let addr = rt.block_on(support::serve(hyper::service::service_fn(answer)));

    let mut group = c.benchmark_group("sse_time_to_first_byte");
    group.bench_function("bare", |b| {
        let service = support::client();
        ttfb(b, &rt, service, addr);
    });
    group.bench_function("retry", |b| {
        let service = ServiceBuilder::new()
            .layer(RetryLayer::new())
            .service(support::client());
        ttfb(b, &rt, service, addr);
    });
    group.bench_function("retry_stream_start", |b| {
        let service = ServiceBuilder::new()
            .layer(RetryLayer::new().retry_stream_start(true))
            .service(support::client());
        ttfb(b, &rt, service, addr);
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
