//! Secrets never reach logs: every tracing event and span of a failing,
//! retried, then gated request is captured at TRACE level, and none of the
//! credentials it carried appear in it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/log_capture.rs"]
mod log_capture;
#[allow(dead_code)]
#[path = "support/provider.rs"]
mod provider;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::{Backoff, Jitter};
use tower_api_guard::gate::{GateClosed, StatusGate, StatusGateLayer};
use tower_api_guard::retry::{RetryInfo, RetryLayer};
use tracing_subscriber::fmt::format::FmtSpan;

use log_capture::Captured;
use provider::{client, Provider, Reply};

const API_KEY: &str = "sk-ant-api03-SECRET-KEY-VALUE";
const BEARER: &str = "Bearer SECRET-BEARER-TOKEN";
const COOKIE: &str = "session=SECRET-COOKIE-VALUE";

fn request(provider: &Provider) -> Request<Full<Bytes>> {
    Request::post(provider.url("/v1/messages"))
        .header("x-api-key", API_KEY)
        .header("authorization", BEARER)
        .header("cookie", COOKIE)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn credentials_never_appear_in_traces() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let provider = Provider::start(vec![
        Reply::error(529, "overloaded_error")
            .header("retry-after", "1")
            .header("set-cookie", COOKIE),
        Reply::error(500, "api_error"),
        Reply::ok("{}"),
    ])
    .await;
    let gate = StatusGate::manual();
    let mut service = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(
                    Backoff::new(Duration::from_secs(1), Duration::from_secs(4))
                        .jitter(Jitter::None),
                )
                .no_budget(),
        )
        .layer(StatusGateLayer::new(gate.clone()))
        .service(client());

    // failing, then retried to success
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(&provider))
        .await
        .unwrap();
    assert_eq!(RetryInfo::of(&response).attempts, 3);
    response.into_body().collect().await.unwrap();

    // gated
    gate.force_closed("incident");
    let error = service
        .ready()
        .await
        .unwrap()
        .call(request(&provider))
        .await
        .unwrap_err();
    assert!(error.is::<GateClosed>(), "{error}");
    gate.clear_override();

    // a transport failure with the same credentials
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut failing = request(&provider);
    *failing.uri_mut() = format!("http://{refused}/v1/messages").parse().unwrap();
    let _ = service.ready().await.unwrap().call(failing).await;

    let logs = captured.text();
    // the capture saw the retries and the gate: it would have seen a leak
    assert!(
        logs.contains("retrying"),
        "no retry event captured:\n{logs}"
    );
    assert!(
        logs.contains("resend_count"),
        "no attempt span captured:\n{logs}"
    );
    // the retry decision is logged inside the attempt it is about
    assert!(
        logs.lines()
            .any(|line| line.contains("retrying") && line.contains("attempt{")),
        "retry event outside its attempt span:\n{logs}"
    );
    assert!(logs.contains("incident"), "no gate event captured:\n{logs}");
    for secret in [
        "SECRET-KEY-VALUE",
        "SECRET-BEARER-TOKEN",
        "SECRET-COOKIE-VALUE",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into traces:\n{logs}"
        );
    }
}
