//! Errors: [`GateClosed`] (a request held back), [`FetchError`] (the status
//! page could not be read), [`BuildError`] (bad configuration) and
//! [`PollError`] (an explicit poll could not run).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::decide::{IncidentRef, Verdict};
use crate::status_page::{ComponentStatus, Indicator, PageError};

/// Who closed the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCause {
    /// The polled status page reports an incident that counts.
    StatusPage,
    /// A webhook reported an incident that counts (not yet confirmed by a poll).
    Webhook,
    /// The status page could not be read and the configured rule closes the gate.
    Unreadable,
    /// Closed by hand with [`StatusGate::force_closed`](super::StatusGate::force_closed).
    Manual,
}

/// Everything known about a closed state; shared by every [`GateClosed`].
#[derive(Debug)]
pub(crate) struct ClosedInfo {
    pub(crate) cause: CloseCause,
    pub(crate) verdict: Option<Verdict>,
    pub(crate) reason: Option<String>,
    pub(crate) fetch_error: Option<FetchError>,
    pub(crate) since: SystemTime,
}

impl ClosedInfo {
    /// Same closed state, ignoring when it began and the fetch error's detail.
    pub(crate) fn same_as(&self, other: &ClosedInfo) -> bool {
        self.cause == other.cause
            && self.verdict == other.verdict
            && self.reason == other.reason
            && self.fetch_error.as_ref().map(FetchError::kind)
                == other.fetch_error.as_ref().map(FetchError::kind)
    }
}

/// The error of a request the gate held back: the provider's status page
/// reports an incident (or the gate was closed by hand).
///
/// Cheap to clone (one `Arc`). Downcast a `tower::BoxError` to it:
///
/// ```
/// # fn f(err: tower::BoxError) {
/// use tower_api_guard::gate::GateClosed;
/// if let Some(closed) = err.downcast_ref::<GateClosed>() {
///     eprintln!("held back since {:?}: {closed}", closed.since());
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct GateClosed {
    pub(crate) info: Arc<ClosedInfo>,
}

impl GateClosed {
    /// Who closed the gate.
    pub fn cause(&self) -> CloseCause {
        self.info.cause
    }

    /// The page-wide indicator, when a page (or webhook) closed the gate.
    pub fn indicator(&self) -> Option<&Indicator> {
        self.info.verdict.as_ref().map(|v| &v.indicator)
    }

    /// The page-wide description (e.g. `Partial System Outage`), or the
    /// reason given to [`force_closed`](super::StatusGate::force_closed).
    pub fn description(&self) -> Option<&str> {
        self.info
            .reason
            .as_deref()
            .or_else(|| self.info.verdict.as_ref()?.description.as_deref())
    }

    /// The active incidents that count, with their links.
    pub fn incidents(&self) -> &[IncidentRef] {
        self.info
            .verdict
            .as_ref()
            .map_or(&[], |v| v.incidents.as_slice())
    }

    /// The watched components that are not operational.
    pub fn components(&self) -> &[(String, ComponentStatus)] {
        self.info
            .verdict
            .as_ref()
            .map_or(&[], |v| v.components.as_slice())
    }

    /// Why the page could not be read, when that closed the gate.
    pub fn fetch_error(&self) -> Option<&FetchError> {
        self.info.fetch_error.as_ref()
    }

    /// When the gate closed (this process's clock).
    pub fn since(&self) -> SystemTime {
        self.info.since
    }
}

impl fmt::Debug for GateClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateClosed")
            .field("cause", &self.info.cause)
            .field("indicator", &self.indicator())
            .field("description", &self.description())
            .field("incidents", &self.incidents())
            .field("since", &self.info.since)
            .finish()
    }
}

impl fmt::Display for GateClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = match self.info.cause {
            CloseCause::StatusPage => "the status page",
            CloseCause::Webhook => "a status webhook",
            CloseCause::Unreadable => "an unreadable status page",
            CloseCause::Manual => "hand",
        };
        write!(f, "status gate closed by {by}")?;
        if let Some(i) = self.indicator() {
            write!(f, " (indicator {i})")?;
        }
        if let Some(d) = self.description() {
            write!(f, ": {d}")?;
        }
        for (n, inc) in self.incidents().iter().enumerate() {
            f.write_str(if n == 0 { "; incidents: " } else { ", " })?;
            f.write_str(&inc.name)?;
            if let Some(link) = &inc.shortlink {
                write!(f, " <{link}>")?;
            }
        }
        if let Some(e) = &self.info.fetch_error {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GateClosed {}

/// What went wrong reading the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// No connection could be made (refused, DNS, TLS handshake).
    Connect,
    /// The whole fetch (connect, headers, body) took longer than the request timeout.
    Timeout,
    /// The page answered with a status other than 200 or 304.
    Status(u16),
    /// The body was larger than the response-size cap.
    TooLarge,
    /// The body could not be read to its end.
    Body,
    /// The body was not a status page.
    Page(PageError),
    /// Any other transport failure.
    Transport,
}

/// The status page could not be read.
#[derive(Clone, Debug)]
pub struct FetchError {
    kind: FetchErrorKind,
    detail: String,
}

impl FetchError {
    pub(crate) fn new(kind: FetchErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &FetchErrorKind {
        &self.kind
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status page fetch failed: {}", self.detail)
    }
}

impl std::error::Error for FetchError {}

/// A [`StatusGateBuilder`](super::StatusGateBuilder) setting was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute `http://` or `https://` URL.
    InvalidBaseUrl(String),
    /// The scheme is `https` but the crate was built without the `rustls`
    /// feature and no HTTP service was given.
    HttpsUnavailable,
    /// The poll interval is below the minimum.
    PollIntervalTooShort {
        /// What was asked for.
        requested: Duration,
        /// The minimum.
        minimum: Duration,
    },
    /// A duration that must be positive was zero.
    ZeroDuration(&'static str),
    /// No tokio runtime to run the poller on (`build` was called outside one).
    NoRuntime,
    /// The TLS configuration could not be built.
    Tls(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidBaseUrl(why) => write!(f, "invalid status page base URL: {why}"),
            Self::HttpsUnavailable => {
                f.write_str("https status page needs the `rustls` feature or an HTTP service")
            }
            Self::PollIntervalTooShort { requested, minimum } => write!(
                f,
                "poll interval {requested:?} is below the minimum of {minimum:?}"
            ),
            Self::ZeroDuration(what) => write!(f, "{what} must be greater than zero"),
            Self::NoRuntime => {
                f.write_str("StatusGateBuilder::build must run inside a tokio runtime")
            }
            Self::Tls(why) => write!(f, "TLS setup failed: {why}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// [`StatusGate::poll_now`](super::StatusGate::poll_now) could not poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollError {
    /// This gate has no poller (built with [`StatusGate::manual`](super::StatusGate::manual)).
    NoPoller,
    /// The poller has stopped (its runtime shut down).
    Stopped,
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPoller => f.write_str("this status gate has no poller"),
            Self::Stopped => f.write_str("the status gate's poller has stopped"),
        }
    }
}

impl std::error::Error for PollError {}
