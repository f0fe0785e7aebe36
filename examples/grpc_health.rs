//! Both layers around a tonic `Channel`, calling a real gRPC service on
//! loopback. No network, no protoc (tonic-health ships its generated code):
//!
//! ```text
//! cargo run --example grpc_health --features tonic
//! ```
//!
//! The server's health check fails `UNAVAILABLE` twice (the second time with
//! `grpc-retry-pushback-ms: 300`), then answers `SERVING`. The client retries
//! through both failures, waiting the backoff delay, then the server's
//! pushback; then the gate is closed by hand and a call fails at once,
//! without reaching the server.
#![allow(clippy::print_stdout)]

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;
use tower_api_guard::backoff::Backoff;
use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
use tower_api_guard::integration::tonic::GrpcClassifier;
use tower_api_guard::retry::{RetryInfo, RetryLayer};
use tower_api_guard::BoxError;

/// A health service that is unavailable for its first two calls.
#[derive(Clone, Default)]
struct WarmingUp {
    calls: Arc<AtomicU32>,
}

#[tonic::async_trait]
impl Health for WarmingUp {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        println!("  server: check #{call}");
        match call {
            1 => Err(Status::unavailable("warming up")),
            2 => {
                let mut metadata = MetadataMap::new();
                metadata.insert(
                    "grpc-retry-pushback-ms",
                    tonic::metadata::MetadataValue::from_static("300"),
                );
                Err(Status::with_metadata(
                    Code::Unavailable,
                    "still warming up",
                    metadata,
                ))
            }
            _ => Ok(Response::new(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })),
        }
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The gRPC server, on a loopback port.
    let server = WarmingUp::default();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(server.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    // The client: gate, then retry with the gRPC classifier, around a Channel.
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let gate = StatusGate::manual();
    let service = ServiceBuilder::new()
        .layer(StatusGateLayer::new(gate.clone()))
        .layer(
            RetryLayer::new()
                .classifier(GrpcClassifier::new())
                .backoff(Backoff::new(
                    Duration::from_millis(100),
                    Duration::from_secs(1),
                )),
        )
        .service(channel);
    let mut client = HealthClient::new(service);

    println!("check, while the server warms up:");
    let started = Instant::now();
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    let info = response
        .extensions()
        .get::<RetryInfo>()
        .cloned()
        .unwrap_or_default();
    println!(
        "  client: {:?} after {} attempts, {} ms waiting (backoff, then the server's 300 ms pushback), {} ms in all",
        ServingStatus::try_from(response.get_ref().status).unwrap_or(ServingStatus::Unknown),
        info.attempts,
        info.total_delay.as_millis(),
        started.elapsed().as_millis(),
    );
    if info.attempts != 3 || server.calls.load(Ordering::SeqCst) != 3 {
        return Err("expected three attempts".into());
    }

    println!("check, while the gate is closed:");
    gate.force_closed("provider incident");
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .err()
        .ok_or("expected the gate to hold the call back")?;
    let closed = std::error::Error::source(&status)
        .and_then(|source| source.downcast_ref::<GateClosed>())
        .ok_or("expected a GateClosed")?;
    println!(
        "  client: held back by the gate ({}); the server saw {} calls in all",
        closed,
        server.calls.load(Ordering::SeqCst)
    );
    Ok(())
}
