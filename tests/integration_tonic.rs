//! Both layers around a `tonic::transport::Channel`, end to end: a real
//! gRPC health service on loopback whose handler plays a script of
//! failures, tonic-health's generated client, tokio's paused clock.
#![cfg(feature = "tonic")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::classify::RetryReason;
use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
use tower_api_guard::integration::tonic::GrpcClassifier;
use tower_api_guard::retry::{RetryControl, RetryInfo, RetryLayer, Stop};

/// A health service that fails with the scripted statuses, then serves.
#[derive(Clone, Default)]
struct Scripted {
    failures: Arc<Mutex<VecDeque<Status>>>,
    calls: Arc<Mutex<u32>>,
}

impl Scripted {
    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        *self.calls.lock().unwrap() += 1;
        assert_eq!(request.get_ref().service, "messages");
        if let Some(failure) = self.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Serves `script` on a loopback port.
async fn serve(failures: Vec<Status>) -> (Scripted, SocketAddr) {
    let service = Scripted {
        failures: Arc::new(Mutex::new(failures.into())),
        ..Scripted::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .add_service(HealthServer::new(service.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (service, addr)
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Exact delays: 5 s, 10 s, ...
fn retry() -> RetryLayer<GrpcClassifier> {
    RetryLayer::new()
        .classifier(GrpcClassifier::new())
        .backoff(Backoff::provider_recipe().jitter(Jitter::None))
        .no_budget()
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: "messages".into(),
    }
}

fn pushback(status: Status, value: &'static str) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert("grpc-retry-pushback-ms", value.parse().unwrap());
    Status::with_metadata(status.code(), status.message(), metadata)
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_to_success() {
    let (server, addr) = serve(vec![Status::unavailable("warming up")]).await;
    let gate = StatusGate::manual();
    let service = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate))
        .layer(retry())
        .service(channel(addr).await);
    let mut client = HealthClient::new(service);

    let started = Instant::now();
    // Spawned: the layered call is `Send`, as tonic users need.
    let response = tokio::spawn(async move { client.check(check()).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(server.calls(), 2);
    let info = response.extensions().get::<RetryInfo>().unwrap();
    assert_eq!(info.attempts, 2);
    assert_eq!(info.stop, Stop::Final);
    assert_eq!(
        info.last_reason,
        Some(RetryReason::Custom("grpc UNAVAILABLE"))
    );
    assert_eq!(info.total_delay, Duration::from_secs(5));
    assert_eq!(started.elapsed().as_secs(), 5);
}

#[tokio::test(start_paused = true)]
async fn pushback_sets_the_delay() {
    let (server, addr) = serve(vec![pushback(Status::unavailable("busy"), "1500")]).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(retry())
            .service(channel(addr).await),
    );

    let started = Instant::now();
    let response = client.check(check()).await.unwrap();
    assert_eq!(server.calls(), 2);
    // The server's 1.5 s, not the 5 s of the backoff schedule.
    let info = response.extensions().get::<RetryInfo>().unwrap();
    assert_eq!(info.total_delay, Duration::from_millis(1500));
    assert_eq!(started.elapsed().as_millis(), 1500);
}

#[tokio::test(start_paused = true)]
async fn negative_pushback_forbids_the_retry() {
    let (server, addr) = serve(vec![pushback(Status::unavailable("go away"), "-1")]).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(retry())
            .service(channel(addr).await),
    );

    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "go away");
    assert_eq!(server.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn resource_exhausted_is_retried_only_on_request() {
    let exhausted = || vec![Status::resource_exhausted("quota")];

    let (server, addr) = serve(exhausted()).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(retry())
            .service(channel(addr).await),
    );
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(server.calls(), 1);

    let (server, addr) = serve(exhausted()).await;
    let opted_in = retry().classifier(GrpcClassifier::new().retry_resource_exhausted());
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(opted_in)
            .service(channel(addr).await),
    );
    let response = client.check(check()).await.unwrap();
    assert_eq!(response.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(server.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn other_failures_are_final() {
    let (server, addr) = serve(vec![Status::invalid_argument("bad service name")]).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(retry())
            .service(channel(addr).await),
    );
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "bad service name");
    assert_eq!(server.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn gated_request_never_reaches_the_server() {
    let (server, addr) = serve(Vec::new()).await;
    let gate = StatusGate::manual();
    let service = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(retry())
        .service(channel(addr).await);
    let mut client = HealthClient::new(service);

    gate.force_closed("provider incident");
    let status = client.check(check()).await.unwrap_err();
    let source = std::error::Error::source(&status).unwrap();
    let closed = source.downcast_ref::<GateClosed>().unwrap();
    assert_eq!(closed.description(), Some("provider incident"));
    assert_eq!(server.calls(), 0);

    gate.clear_override();
    let response = client.check(check()).await.unwrap();
    assert_eq!(response.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(server.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_marked_once_is_not_retried() {
    // How client-streaming and bidirectional calls opt out (their request
    // stream must not be buffered): `RetryControl` in the tonic request.
    let (server, addr) = serve(vec![Status::unavailable("warming up")]).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(retry())
            .service(channel(addr).await),
    );
    let mut request = Request::new(check());
    request.extensions_mut().insert(RetryControl::disabled());
    let status = client.check(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.calls(), 1);
}
