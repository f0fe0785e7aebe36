//! gRPC with tonic: body replay for `tonic::body::Body` and a classifier for
//! gRPC status codes.
//!
//! Both layers stack onto a `tonic::transport::Channel` (or any tonic
//! transport) as they are; a generated client takes the layered service:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::ServiceBuilder;
//! use tower_api_guard::gate::{StatusGate, StatusGateLayer};
//! use tower_api_guard::integration::tonic::GrpcClassifier;
//! use tower_api_guard::retry::RetryLayer;
//! use tonic_health::pb::health_client::HealthClient;
//!
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let gate = StatusGate::manual();
//! let service = ServiceBuilder::new()
//!     .layer(StatusGateLayer::new(gate))
//!     .layer(RetryLayer::new().classifier(GrpcClassifier::new()))
//!     .service(channel);
//! let client = HealthClient::new(service); // any tonic-generated client
//! # let _ = client; Ok(()) }
//! ```
//!
//! # What is retried
//!
//! [`GrpcClassifier`] reads the gRPC status of **trailers-only** answers, the
//! form a server uses when a call fails before any message (HTTP 200 with
//! `grpc-status` in the headers), and the HTTP status of answers that are not
//! gRPC at all (a proxy's 503), mapped as gRPC's own HTTP-to-gRPC table does.
//! A failure reported in the trailers after messages were streamed is not
//! retried: by then the caller has seen part of the answer. Bodies are never
//! read.
//!
//! `grpc-retry-pushback-ms` is honoured: a positive value is the delay
//! before the next attempt (through [`delay_hint`](crate::hint::delay_hint),
//! within the layer's bound on hints), and a negative or unparseable one is
//! the server asking not to retry, which the classifier obeys.
//!
//! # Request bodies
//!
//! `tonic::body::Body` is not `Clone`: the retry layer reads it into memory
//! once (up to its replay cap) and gives each attempt a new `Body` around the
//! same bytes. The first attempt is sent when the whole request body has been
//! read, which suits unary and server-streaming calls. Client-streaming and
//! bidirectional calls must be sent once, since their request stream may not
//! end before the server answers: put
//! [`RetryControl::disabled()`](crate::retry::RetryControl::disabled) in the
//! `tonic::Request`'s extensions (`request.extensions_mut().insert(..)`), or
//! keep such calls on a channel without the retry layer.
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use tower_api_guard::classify::{Classify, Head, RetryReason};
//! use tower_api_guard::integration::tonic::GrpcClassifier;
//!
//! let trailers_only = |code: &str| {
//!     let mut headers = HeaderMap::new();
//!     headers.insert("content-type", "application/grpc".parse().unwrap());
//!     headers.insert("grpc-status", code.parse().unwrap());
//!     headers
//! };
//! let classifier = GrpcClassifier::new();
//! assert_eq!(
//!     classifier.classify_head(StatusCode::OK, &trailers_only("14")),
//!     Head::Retry(RetryReason::Custom("grpc UNAVAILABLE")),
//! );
//! // RESOURCE_EXHAUSTED is a quota answer: retried only on request.
//! assert_eq!(classifier.classify_head(StatusCode::OK, &trailers_only("8")), Head::Final);
//! let opted_in = GrpcClassifier::new().retry_resource_exhausted();
//! assert_eq!(
//!     opted_in.classify_head(StatusCode::OK, &trailers_only("8")),
//!     Head::Retry(RetryReason::Custom("grpc RESOURCE_EXHAUSTED")),
//! );
//! // The server may forbid the retry.
//! let mut no = trailers_only("14");
//! no.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
//! assert_eq!(classifier.classify_head(StatusCode::OK, &no), Head::Final);
//! ```

use ::tonic::body::Body;
use ::tonic::Code;
use http::{HeaderMap, StatusCode};

use crate::classify::{Classify, ErrorBody, Head, RetryReason, Verdict};
use crate::hint::GRPC_RETRY_PUSHBACK_MS;
use crate::retry::{Replay, ReplayBody};

impl ReplayBody for Body {
    fn replay(&self) -> Replay<Self> {
        Replay::Buffer(Body::new)
    }
}

/// The `grpc-status` header.
const GRPC_STATUS: &str = "grpc-status";

/// Retries gRPC failures by status code: `UNAVAILABLE` by default.
///
/// See the [module documentation](self) for what is read and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct GrpcClassifier {
    /// Bit `n` set: code `n` is retried.
    retryable: u32,
}

impl GrpcClassifier {
    /// Retries `UNAVAILABLE` (14), the code gRPC reserves for "transient,
    /// try again", and nothing else.
    pub fn new() -> Self {
        Self {
            retryable: bit(Code::Unavailable),
        }
    }

    /// Also retries `RESOURCE_EXHAUSTED` (8). Off by default: it often means
    /// a quota that a retry only spends faster. Turn it on for servers that
    /// use it for transient overload, ideally with `grpc-retry-pushback-ms`.
    pub fn retry_resource_exhausted(self) -> Self {
        self.retry_code(Code::ResourceExhausted)
    }

    /// Also retries `code`. `OK` is never retried, whatever is asked.
    pub fn retry_code(mut self, code: Code) -> Self {
        if code != Code::Ok {
            self.retryable |= bit(code);
        }
        self
    }

    /// Whether `code` is retried.
    pub fn retries(&self, code: Code) -> bool {
        self.retryable & bit(code) != 0
    }

    /// The gRPC status an answer's head carries, if it is a failure known
    /// from its head alone.
    fn code(status: StatusCode, headers: &HeaderMap) -> Option<Code> {
        if let Some(value) = headers.get(GRPC_STATUS) {
            // `Code::from_bytes` maps anything unparseable to `UNKNOWN`.
            return Some(Code::from_bytes(value.as_bytes()));
        }
        if status == StatusCode::OK {
            // A normal answer: the status comes in the trailers.
            return None;
        }
        // gRPC's HTTP-to-gRPC mapping, for answers that are not gRPC (a proxy's).
        Some(match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        })
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

fn bit(code: Code) -> u32 {
    // Codes are 0..=16.
    1u32.checked_shl(code as u32).unwrap_or(0)
}

/// `true` when `grpc-retry-pushback-ms` is present and not a whole number of
/// milliseconds: the server asks for no retry.
fn pushback_forbids(headers: &HeaderMap) -> bool {
    headers.get(&GRPC_RETRY_PUSHBACK_MS).is_some_and(|value| {
        let value = value.to_str().map(str::trim).unwrap_or_default();
        value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit())
    })
}

fn reason(code: Code) -> RetryReason {
    RetryReason::Custom(match code {
        Code::Ok => "grpc OK",
        Code::Cancelled => "grpc CANCELLED",
        Code::Unknown => "grpc UNKNOWN",
        Code::InvalidArgument => "grpc INVALID_ARGUMENT",
        Code::DeadlineExceeded => "grpc DEADLINE_EXCEEDED",
        Code::NotFound => "grpc NOT_FOUND",
        Code::AlreadyExists => "grpc ALREADY_EXISTS",
        Code::PermissionDenied => "grpc PERMISSION_DENIED",
        Code::ResourceExhausted => "grpc RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "grpc FAILED_PRECONDITION",
        Code::Aborted => "grpc ABORTED",
        Code::OutOfRange => "grpc OUT_OF_RANGE",
        Code::Unimplemented => "grpc UNIMPLEMENTED",
        Code::Internal => "grpc INTERNAL",
        Code::Unavailable => "grpc UNAVAILABLE",
        Code::DataLoss => "grpc DATA_LOSS",
        Code::Unauthenticated => "grpc UNAUTHENTICATED",
    })
}

impl Classify for GrpcClassifier {
    fn classify_head(&self, status: StatusCode, headers: &HeaderMap) -> Head {
        match Self::code(status, headers) {
            Some(code) if self.retries(code) && !pushback_forbids(headers) => {
                Head::Retry(reason(code))
            }
            _ => Head::Final,
        }
    }

    fn classify_body(&self, _: StatusCode, _: &HeaderMap, _: ErrorBody<'_>) -> Verdict {
        // `classify_head` never asks for the body.
        Verdict::Final
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, pairs: &[(&'static str, &'static str)]) -> Head {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, http::HeaderValue::from_static(value));
        }
        GrpcClassifier::new().classify_head(StatusCode::from_u16(status).unwrap(), &headers)
    }

    #[test]
    fn only_unavailable_by_default() {
        let unavailable = Head::Retry(RetryReason::Custom("grpc UNAVAILABLE"));
        assert_eq!(head(200, &[("grpc-status", "14")]), unavailable);
        for code in ["0", "1", "2", "4", "8", "13", "16", "99", "x", ""] {
            assert_eq!(head(200, &[("grpc-status", code)]), Head::Final, "{code:?}");
        }
        // A normal answer: status in the trailers, body never read.
        assert_eq!(head(200, &[]), Head::Final);
    }

    #[test]
    fn http_statuses_of_proxies_map_like_grpc() {
        let unavailable = Head::Retry(RetryReason::Custom("grpc UNAVAILABLE"));
        for status in [429, 502, 503, 504] {
            assert_eq!(head(status, &[]), unavailable, "{status}");
        }
        for status in [400, 401, 403, 404, 500] {
            assert_eq!(head(status, &[]), Head::Final, "{status}");
        }
        // A gRPC status in the headers wins over the HTTP status.
        assert_eq!(head(503, &[("grpc-status", "3")]), Head::Final);
    }

    #[test]
    fn pushback_can_forbid_the_retry() {
        let unavailable = Head::Retry(RetryReason::Custom("grpc UNAVAILABLE"));
        let with = |value| {
            head(
                200,
                &[("grpc-status", "14"), ("grpc-retry-pushback-ms", value)],
            )
        };
        assert_eq!(with("250"), unavailable);
        assert_eq!(with("0"), unavailable);
        for bad in ["-1", "soon", "1.5", ""] {
            assert_eq!(with(bad), Head::Final, "{bad:?}");
        }
    }

    #[test]
    fn ok_is_never_retried() {
        let classifier = GrpcClassifier::new().retry_code(Code::Ok);
        assert!(!classifier.retries(Code::Ok));
    }
}
