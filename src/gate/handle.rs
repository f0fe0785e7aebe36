//! [`StatusGate`]: the cheap, cloneable handle to one gate.

use std::fmt;
use std::sync::{Arc, Weak};

use tokio::sync::{oneshot, watch};

use super::builder::StatusGateBuilder;
use super::decide::Policy;
use super::error::{GateClosed, PollError};
use super::layer::StatusGateLayer;
use super::state::{GateStatus, Manual, PollOutcome, Shared, Unreadable};
use crate::status_page::PageError;

/// A handle to one gate: open, or closed with the reason.
///
/// Clones share the state and the single background poller (one `Arc`
/// clone each). The poller stops as soon as the last clone is dropped,
/// including the clones held by layers and services. Requests in flight do
/// not keep the gate alive: a retry planned after the last handle was
/// dropped is checked against no gate.
#[derive(Clone)]
pub struct StatusGate {
    inner: Arc<Inner>,
}

/// Aligned to 128 bytes, so `Arc`'s reference counts sit in another cache
/// line (a pair of 64-byte lines, which x86-64 prefetches together; Apple's
/// aarch64 cores have 128-byte lines). Requests no longer write the counts
/// (see [`scope`](super::scope)), but cloning a service that holds a handle
/// does; without the padding, each such write on one core made the next
/// [`StatusGate::check`] on another core miss the cache for `shared`.
#[repr(align(128))]
struct Inner {
    shared: Arc<Shared>,
    /// Dropping this (with the last handle) tells the poller to stop.
    _stop: Option<oneshot::Sender<()>>,
}

impl StatusGate {
    /// Starts a builder with the defaults (Anthropic's status page, 30 s).
    pub fn builder() -> StatusGateBuilder {
        StatusGateBuilder::default()
    }

    /// A gate with the default rules and no poller: open until closed by
    /// [`force_closed`](Self::force_closed) or a webhook. Needs no runtime.
    pub fn manual() -> Self {
        Self::from_parts(
            Arc::new(Shared::new(
                Policy::default(),
                Unreadable::default(),
                None,
                None,
                usize::try_from(super::builder::DEFAULT_MAX_RESPONSE_BYTES.get())
                    .unwrap_or(usize::MAX),
            )),
            None,
        )
    }

    pub(crate) fn from_parts(shared: Arc<Shared>, stop: Option<oneshot::Sender<()>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                _stop: stop,
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The handles of this gate, and the weak references to it.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (Arc::strong_count(&self.inner), Arc::weak_count(&self.inner))
    }

    /// The gate's address, to tell gates apart without touching a
    /// reference count.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// A handle that does not keep the gate (or its poller) alive.
    pub(crate) fn downgrade(&self) -> WeakGate {
        WeakGate {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// `Ok` while open; the reason while closed. One atomic load; no
    /// allocation and no lock.
    #[inline]
    pub fn check(&self) -> Result<(), GateClosed> {
        self.inner.shared.check()
    }

    /// `true` while open.
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }

    /// The current state.
    pub fn status(&self) -> GateStatus {
        self.inner.shared.status()
    }

    /// Observes every change of state.
    pub fn subscribe(&self) -> watch::Receiver<GateStatus> {
        self.inner.shared.subscribe()
    }

    /// Opens the gate whatever the page says, until [`clear_override`](Self::clear_override).
    pub fn force_open(&self) {
        self.inner.shared.set_manual(Some(Manual::Open));
    }

    /// Closes the gate with this reason whatever the page says, until
    /// [`clear_override`](Self::clear_override). Probes do not pass a manual close.
    pub fn force_closed(&self, reason: impl Into<String>) {
        self.inner
            .shared
            .set_manual(Some(Manual::Closed(reason.into())));
    }

    /// Returns to what the page says.
    pub fn clear_override(&self) {
        self.inner.shared.set_manual(None);
    }

    /// Applies a Statuspage webhook body (incident or component update) at
    /// once, then asks the poller to confirm with an immediate poll. Returns
    /// the state after applying it.
    ///
    /// A webhook that closes the gate stands until a poll returns a page that
    /// differs from the last one polled (the page's CDN copy may lag the
    /// webhook). A webhook that opens a gate the polled page closes lasts only
    /// until the confirming poll: if the page (a 304 or the same page) still
    /// says closed, or the poll fails, the last page read decides again, so
    /// a forged all-clear cannot hold the gate open. A body over the gate's size cap
    /// ([`max_response_bytes`](StatusGateBuilder::max_response_bytes)) is
    /// refused unread ([`PageErrorKind::TooLarge`](crate::status_page::PageErrorKind::TooLarge));
    /// a refused body changes nothing and starts no poll.
    pub fn apply_webhook(&self, body: &[u8]) -> Result<GateStatus, PageError> {
        self.inner.shared.apply_webhook(body)?;
        if self.inner.shared.progress.is_some() {
            self.inner.shared.poll_now.notify_one();
        }
        Ok(self.status())
    }

    /// Polls the page now (instead of at the next interval) and waits for that
    /// poll to finish; returns what it found. Bounded by the request timeout.
    pub async fn poll_now(&self) -> Result<PollOutcome, PollError> {
        let Some(progress) = &self.inner.shared.progress else {
            return Err(PollError::NoPoller);
        };
        let mut rx = progress.clone();
        let target = rx.borrow_and_update().started + 1;
        self.inner.shared.poll_now.notify_one();
        let done = rx
            .wait_for(|p| p.completed >= target)
            .await
            .map_err(|_| PollError::Stopped)?;
        done.last.clone().ok_or(PollError::Stopped)
    }

    /// Waits until the poller has finished at least one poll (the first one
    /// starts when the gate is built) and returns the latest outcome. Useful
    /// at start-up, before the gate has read the page.
    pub async fn polled(&self) -> Result<PollOutcome, PollError> {
        let Some(progress) = &self.inner.shared.progress else {
            return Err(PollError::NoPoller);
        };
        let mut rx = progress.clone();
        let done = rx
            .wait_for(|p| p.completed >= 1)
            .await
            .map_err(|_| PollError::Stopped)?;
        done.last.clone().ok_or(PollError::Stopped)
    }

    /// A layer that holds requests back while this gate is closed.
    pub fn layer(&self) -> StatusGateLayer {
        StatusGateLayer::new(self.clone())
    }
}

/// A gate known without being kept alive: [`StatusGate::downgrade`].
#[derive(Clone)]
pub(crate) struct WeakGate {
    inner: Weak<Inner>,
}

impl WeakGate {
    /// The gate, unless every [`StatusGate`] of it has been dropped.
    pub(crate) fn upgrade(&self) -> Option<StatusGate> {
        self.inner.upgrade().map(|inner| StatusGate { inner })
    }

    /// The gate's address: equal to [`StatusGate::addr`] of its handles.
    /// While this lives the gate's memory is not freed, so no other gate
    /// can have the same address.
    pub(crate) fn addr(&self) -> usize {
        self.inner.as_ptr() as usize
    }
}

impl fmt::Debug for StatusGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusGate")
            .field("open", &self.is_open())
            .field("poller", &self.inner.shared.progress.is_some())
            .finish()
    }
}
