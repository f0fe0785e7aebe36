//! Reading the status page over HTTP, bounded in time and size.
//!
//! The fetcher sends `GET {base}/api/v2/summary.json` (or `status.json`) with
//! `If-None-Match` set to the last ETag, through a boxed tower HTTP service:
//! the built-in hyper-util client (HTTPS via rustls with the `rustls` feature)
//! or one the caller hands in. The whole exchange, connect to last body byte,
//! runs under one timeout; the body is read through
//! [`http_body_util::Limited`] so at most the cap is ever buffered.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, ETAG, IF_NONE_MATCH, USER_AGENT};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use tower::util::BoxService;
use tower::{BoxError, Service, ServiceExt};

use super::error::{FetchError, FetchErrorKind};
use crate::status_page::{PageError, Summary};

/// The boxed HTTP service the poller fetches with. One box for the poller's
/// lifetime: the poller is a single task, so the dynamic call costs nothing
/// that matters and keeps `StatusGate` free of type parameters.
pub(crate) type HttpService =
    BoxService<Request<Empty<Bytes>>, Response<UnsyncBoxBody<Bytes, BodyError>>, BoxError>;

/// Boxes any tower HTTP service into an [`HttpService`].
pub(crate) fn boxed<S, B>(svc: S) -> HttpService
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxService::new(
        svc.map_response(|r: Response<B>| r.map(|b| b.map_err(BodyError::new).boxed_unsync()))
            .map_err(Into::into),
    )
}

/// The built-in client: hyper-util's pooled client, HTTPS through rustls.
#[cfg(feature = "rustls")]
pub(crate) fn default_client() -> Result<HttpService, super::error::BuildError> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::sync::Arc;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| super::error::BuildError::Tls(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    Ok(boxed(client))
}

/// The built-in client without TLS: plain `http://` only.
#[cfg(not(feature = "rustls"))]
pub(crate) fn default_client() -> Result<HttpService, super::error::BuildError> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    Ok(boxed(client))
}

/// What a successful fetch found.
pub(crate) enum Fetched {
    Page(Box<Summary>),
    NotModified,
}

pub(crate) struct Fetcher {
    pub(crate) svc: HttpService,
    pub(crate) uri: Uri,
    pub(crate) parse: fn(&[u8]) -> Result<Summary, PageError>,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) etag: Option<HeaderValue>,
}

const UA: &str = concat!("tower-api-guard/", env!("CARGO_PKG_VERSION"));

fn transport(err: BoxError) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return FetchError::new(FetchErrorKind::Connect, format!("connect: {err}"));
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return FetchError::new(FetchErrorKind::Connect, format!("connect: {err}"));
            }
        }
        source = e.source();
    }
    FetchError::new(FetchErrorKind::Transport, err.to_string())
}

fn too_large(max: usize) -> FetchError {
    FetchError::new(
        FetchErrorKind::TooLarge,
        format!("body larger than {max} bytes"),
    )
}

fn body_error(e: &(dyn std::error::Error + Send + Sync + 'static), max: usize) -> FetchError {
    if e.is::<LengthLimitError>() {
        too_large(max)
    } else {
        FetchError::new(FetchErrorKind::Body, format!("reading body: {e}"))
    }
}

/// A body read error, as text. A concrete type: `Limited` over a body whose
/// error is a `BoxError` trips a higher-ranked `From` bound in the spawned
/// poller future.
#[derive(Debug)]
pub(crate) struct BodyError(String);

impl BodyError {
    fn new<E: Into<BoxError>>(e: E) -> Self {
        Self(e.into().to_string())
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// Reads the whole body, failing as soon as it passes `max` bytes.
fn read_capped(
    body: UnsyncBoxBody<Bytes, BodyError>,
    max: usize,
) -> impl Future<Output = Result<Bytes, FetchError>> + Send {
    let collect = Limited::new(body, max).collect();
    async move {
        match collect.await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) => Err(body_error(&*e, max)),
        }
    }
}

impl Fetcher {
    /// One fetch, never longer than the request timeout.
    pub(crate) async fn fetch(&mut self) -> Result<Fetched, FetchError> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.exchange()).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::new(
                FetchErrorKind::Timeout,
                format!("no complete answer within {limit:?}"),
            )),
        }
    }

    async fn exchange(&mut self) -> Result<Fetched, FetchError> {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(UA));
        if let Some(tag) = &self.etag {
            headers.insert(IF_NONE_MATCH, tag.clone());
        }
        let svc = self.svc.ready().await.map_err(transport)?;
        let resp = svc.call(req).await.map_err(transport)?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status != StatusCode::OK {
            return Err(FetchError::new(
                FetchErrorKind::Status(status.as_u16()),
                format!("status page answered {status}"),
            ));
        }
        let max = self.max_bytes;
        let declared = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(max));
        }
        let etag = resp.headers().get(ETAG).cloned();
        let body = read_capped(resp.into_body(), max).await?;
        let page = (self.parse)(&body).map_err(|e| {
            let detail = e.to_string();
            FetchError::new(FetchErrorKind::Page(e), detail)
        })?;
        // Only a page that parsed may be named in If-None-Match next time.
        self.etag = etag;
        Ok(Fetched::Page(Box::new(page)))
    }
}
