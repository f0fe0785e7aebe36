//! [`StatusGateBuilder`]: typed configuration for a [`StatusGate`], with every
//! default and the reason for it.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use tokio::sync::{oneshot, watch};
use tower::{BoxError, Service};

use super::decide::{Policy, Severity};
use super::error::BuildError;
use super::fetch::{self, Fetcher, HttpService};
use super::handle::StatusGate;
use super::poller::{Jitter, Poller, Progress};
use super::state::{Shared, Unreadable};
use crate::status_page::{parse_status, parse_summary};

/// Default base URL: Anthropic's status page, the provider this crate targets first.
pub const DEFAULT_BASE_URL: &str = "https://status.anthropic.com";
/// Default poll interval, 30 s: Statuspage's CDN serves the API with
/// `cache-control: max-age=10`, so polling faster mostly re-reads the same copy;
/// 30 s keeps the worst-case lag under a minute (interval + jitter) at two
/// small requests a minute.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Smallest poll interval accepted, 10 s: the CDN's `max-age` (see the
/// captured headers); anything faster loads the provider's page for nothing.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Default request timeout, 5 s: the provider's own documented status check
/// uses `timeout=5`. It bounds the whole fetch, connect to last byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default response-size cap, 1 MiB: the largest real capture here (a
/// components list with 150+ rows) is about 155 KB; 1 MiB leaves six-fold room
/// and bounds what a hostile page can make the poller buffer.
pub const DEFAULT_MAX_RESPONSE_BYTES: NonZeroU32 = match NonZeroU32::new(1024 * 1024) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Which document to poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/api/v2/summary.json` (default): indicator, components and incidents in
    /// one response; needed to watch components and to name incidents.
    #[default]
    Summary,
    /// `/api/v2/status.json`: the indicator only, a smaller document.
    Status,
}

/// Builds a [`StatusGate`]. Start from [`StatusGate::builder`].
#[must_use]
pub struct StatusGateBuilder {
    base_url: String,
    endpoint: Endpoint,
    interval: Duration,
    jitter: Jitter,
    seed: Option<u64>,
    timeout: Duration,
    max_bytes: NonZeroU32,
    policy: Policy,
    unreadable: Unreadable,
    probe_every: Option<Duration>,
    http: Option<HttpService>,
}

impl fmt::Debug for StatusGateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusGateBuilder")
            .field("base_url", &self.base_url)
            .field("endpoint", &self.endpoint)
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("policy", &self.policy)
            .field("unreadable", &self.unreadable)
            .field("probe_every", &self.probe_every)
            .field("custom_http_service", &self.http.is_some())
            .finish()
    }
}

impl Default for StatusGateBuilder {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            endpoint: Endpoint::default(),
            interval: DEFAULT_POLL_INTERVAL,
            jitter: Jitter::default(),
            seed: None,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            policy: Policy::default(),
            unreadable: Unreadable::default(),
            probe_every: None,
            http: None,
        }
    }
}

impl StatusGateBuilder {
    /// The status page's base URL, e.g. `https://status.anthropic.com`
    /// (default [`DEFAULT_BASE_URL`]). Checked by [`build`](Self::build).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Which document to poll (default [`Endpoint::Summary`]).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Time between polls (default [`DEFAULT_POLL_INTERVAL`]); below
    /// [`MIN_POLL_INTERVAL`], [`build`](Self::build) fails.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Jitter added to each interval (default [`Jitter::default`], up to 20 %).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter's random source, for reproducible schedules
    /// (default: seeded from the OS).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Bound on one whole fetch (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest body read (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a larger
    /// page is a failed read, and a larger webhook body is refused by
    /// [`StatusGate::apply_webhook`] with [`PageErrorKind::TooLarge`](crate::status_page::PageErrorKind::TooLarge).
    pub fn max_response_bytes(mut self, max: NonZeroU32) -> Self {
        self.max_bytes = max;
        self
    }

    /// Watches a component by name (trimmed, ASCII case-insensitive), e.g.
    /// `"Claude API"`. Call again to watch more. With none (default), the
    /// page-wide indicator decides.
    pub fn watch_component(mut self, name: impl Into<String>) -> Self {
        self.policy.components.push(name.into());
        self
    }

    /// Closes at this severity or worse (default [`Severity::Minor`]: any
    /// incident, as the provider's documented check does).
    pub fn threshold(mut self, threshold: Severity) -> Self {
        self.policy.threshold = threshold;
        self
    }

    /// Whether maintenance closes the gate (default `false`; see
    /// [`Policy::maintenance_closes`]).
    pub fn maintenance_closes(mut self, closes: bool) -> Self {
        self.policy.maintenance_closes = closes;
        self
    }

    /// With watched components, whether an incident naming no component counts
    /// (default `true`; see [`Policy::unattributed_incidents`]).
    pub fn unattributed_incidents(mut self, count: bool) -> Self {
        self.policy.unattributed_incidents = count;
        self
    }

    /// What to do while the page cannot be read (default [`Unreadable::StayOpen`]).
    pub fn when_unreadable(mut self, rule: Unreadable) -> Self {
        self.unreadable = rule;
        self
    }

    /// While the page holds the gate closed, lets one request through per
    /// `every`; a successful (2xx) answer opens the gate locally until the
    /// page next changes. Off by default: the page is the authority.
    pub fn probe_every(mut self, every: Duration) -> Self {
        self.probe_every = Some(every);
        self
    }

    /// Fetches with this tower HTTP service instead of the built-in client
    /// (a hyper-util `Client`, a service with your proxy or TLS settings, a
    /// test double). Boxed once; the poller is its only user.
    pub fn http_service<S, B>(mut self, service: S) -> Self
    where
        S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.http = Some(fetch::boxed(service));
        self
    }

    fn max_body(&self) -> usize {
        usize::try_from(self.max_bytes.get()).unwrap_or(usize::MAX)
    }

    fn check(&self) -> Result<(), BuildError> {
        if self.interval < MIN_POLL_INTERVAL {
            return Err(BuildError::PollIntervalTooShort {
                requested: self.interval,
                minimum: MIN_POLL_INTERVAL,
            });
        }
        if self.timeout.is_zero() {
            return Err(BuildError::ZeroDuration("request timeout"));
        }
        if self.probe_every.is_some_and(|d| d.is_zero()) {
            return Err(BuildError::ZeroDuration("probe interval"));
        }
        if let Unreadable::KeepLast { max_age } = self.unreadable {
            if max_age.is_zero() {
                return Err(BuildError::ZeroDuration("unreadable max age"));
            }
        }
        Ok(())
    }

    fn document_uri(&self) -> Result<Uri, BuildError> {
        let base = self.base_url.trim().trim_end_matches('/');
        let file = match self.endpoint {
            Endpoint::Summary => "summary.json",
            Endpoint::Status => "status.json",
        };
        let uri: Uri = format!("{base}/api/v2/{file}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| BuildError::InvalidBaseUrl(e.to_string()))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(BuildError::InvalidBaseUrl(
                    "scheme must be http or https".into(),
                ))
            }
        }
        if uri.host().is_none() {
            return Err(BuildError::InvalidBaseUrl("no host".into()));
        }
        if uri.query().is_some() {
            return Err(BuildError::InvalidBaseUrl("no query allowed".into()));
        }
        if cfg!(not(feature = "rustls")) && self.http.is_none() && uri.scheme_str() == Some("https")
        {
            return Err(BuildError::HttpsUnavailable);
        }
        Ok(uri)
    }

    /// A gate without a poller, driven only by
    /// [`apply_webhook`](StatusGate::apply_webhook) and manual overrides, with
    /// this builder's rules. Needs no runtime.
    pub fn build_manual(self) -> Result<StatusGate, BuildError> {
        self.check()?;
        let max_body = self.max_body();
        let shared = Shared::new(
            self.policy,
            self.unreadable,
            self.probe_every,
            None,
            max_body,
        );
        Ok(StatusGate::from_parts(Arc::new(shared), None))
    }

    /// Builds the gate and spawns its poller on the current tokio runtime.
    /// The gate is open until the first poll says otherwise.
    pub fn build(self) -> Result<StatusGate, BuildError> {
        self.check()?;
        let uri = self.document_uri()?;
        let max_body = self.max_body();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let svc = match self.http {
            Some(svc) => svc,
            None => fetch::default_client()?,
        };
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let shared = Arc::new(Shared::new(
            self.policy,
            self.unreadable,
            self.probe_every,
            Some(progress_rx),
            max_body,
        ));
        let (stop_tx, stop_rx) = oneshot::channel();
        let poller = Poller {
            shared: Arc::clone(&shared),
            fetcher: Fetcher {
                svc,
                uri,
                parse: match self.endpoint {
                    Endpoint::Summary => parse_summary,
                    Endpoint::Status => parse_status,
                },
                timeout: self.timeout,
                max_bytes: max_body,
                etag: None,
            },
            stop: stop_rx,
            progress: progress_tx,
            interval: self.interval,
            jitter: self.jitter,
            rng: self
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        };
        runtime.spawn(poller.run());
        Ok(StatusGate::from_parts(shared, Some(stop_tx)))
    }
}
