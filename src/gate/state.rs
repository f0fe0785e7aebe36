//! The shared state behind every clone of a [`StatusGate`](super::StatusGate).
//!
//! Writers (the poller, webhooks, manual overrides, probes) take a mutex,
//! update what they know, recompute the effective state and publish it into an
//! `ArcSwapOption`; readers on the request path only load that pointer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::decide::{Decision, Policy, Verdict};
use super::error::{CloseCause, ClosedInfo, FetchError, GateClosed};
use super::poller::Progress;
use crate::status_page::{PageError, Summary};

/// What to do while the status page cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unreadable {
    /// Let requests through (default): an unreadable status page is not an
    /// API outage, and failing closed would make the status page a single
    /// point of failure for every caller.
    #[default]
    StayOpen,
    /// Hold requests back until the page can be read again.
    Close,
    /// Keep the last state read, for at most this long after the last
    /// successful read; then let requests through. Checked at each poll.
    KeepLast {
        /// How long the last read state stays valid.
        max_age: Duration,
    },
}

/// The gate's state as seen by observers ([`StatusGate::subscribe`](super::StatusGate::subscribe)).
#[derive(Clone, Debug)]
pub enum GateStatus {
    /// Requests go through.
    Open,
    /// Requests are held back, for this reason.
    Closed(GateClosed),
}

impl GateStatus {
    /// `true` when requests go through.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }

    /// The reason, while closed.
    pub fn closed(&self) -> Option<&GateClosed> {
        match self {
            Self::Open => None,
            Self::Closed(c) => Some(c),
        }
    }
}

/// What one poll of the status page found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PollOutcome {
    /// A page was read (200) and judged.
    Page,
    /// The page had not changed (304 for the last ETag).
    NotModified,
    /// The page could not be read.
    Failed(FetchError),
}

#[derive(Clone, Debug)]
pub(crate) enum Manual {
    Open,
    Closed(String),
}

struct PageView {
    summary: Arc<Summary>,
    decision: Decision,
    from_webhook: bool,
}

#[derive(Default)]
struct Control {
    /// The page as last judged (polled or patched by a webhook).
    page: Option<PageView>,
    /// The page as last polled; a webhook state stands until the page differs
    /// from it, unless it opens what this page closes.
    polled: Option<Arc<Summary>>,
    /// When the page was last read (200 or 304).
    read_at: Option<Instant>,
    /// The last poll's failure, while polls fail.
    failing: Option<FetchError>,
    manual: Option<Manual>,
    /// A probe succeeded since the page last changed.
    probe_open: bool,
}

pub(crate) struct Shared {
    /// Whether `state` holds a closed state: the request path reads only this
    /// flag while the gate is open (one relaxed-cost load, no arc-swap debt).
    closed: AtomicBool,
    state: ArcSwapOption<ClosedInfo>,
    status_tx: watch::Sender<GateStatus>,
    ctl: Mutex<Control>,
    policy: Policy,
    unreadable: Unreadable,
    probe_every: Option<Duration>,
    /// Milliseconds after `epoch` of the last probe, `u64::MAX` for none.
    last_probe: AtomicU64,
    epoch: Instant,
    pub(crate) poll_now: Arc<Notify>,
    pub(crate) progress: Option<watch::Receiver<Progress>>,
    /// Largest webhook body parsed: the page's size cap.
    max_webhook_bytes: usize,
}

impl Shared {
    pub(crate) fn new(
        policy: Policy,
        unreadable: Unreadable,
        probe_every: Option<Duration>,
        progress: Option<watch::Receiver<Progress>>,
        max_webhook_bytes: usize,
    ) -> Self {
        Self {
            closed: AtomicBool::new(false),
            state: ArcSwapOption::empty(),
            status_tx: watch::Sender::new(GateStatus::Open),
            ctl: Mutex::new(Control::default()),
            policy,
            unreadable,
            probe_every,
            last_probe: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            poll_now: Arc::new(Notify::new()),
            progress,
            max_webhook_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open for sure: the flag alone, without the reason [`Shared::check`]
    /// reads when it is set.
    #[inline]
    pub(crate) fn surely_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// The request-path read: one atomic load, no allocation while open.
    #[inline]
    pub(crate) fn check(&self) -> Result<(), GateClosed> {
        if self.surely_open() {
            return Ok(());
        }
        match &*self.state.load() {
            None => Ok(()),
            Some(info) => Err(GateClosed {
                info: Arc::clone(info),
            }),
        }
    }

    pub(crate) fn status(&self) -> GateStatus {
        match self.check() {
            Ok(()) => GateStatus::Open,
            Err(c) => GateStatus::Closed(c),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<GateStatus> {
        self.status_tx.subscribe()
    }

    pub(crate) fn apply_page(&self, summary: Summary) {
        let mut ctl = self.lock();
        let summary = Arc::new(summary);
        ctl.read_at = Some(Instant::now());
        ctl.failing = None;
        let stale = ctl.polled.as_deref() == Some(&*summary);
        ctl.polled = Some(Arc::clone(&summary));
        // A webhook state stands until the polled page itself changes...
        if stale && ctl.page.as_ref().is_some_and(|p| p.from_webhook) {
            // ...unless it opens what the page closes.
            self.overrule_opening_webhook(&mut ctl);
        } else {
            self.judge(&mut ctl, summary, false);
        }
        self.recompute(&mut ctl);
    }

    /// A poll read the page (unchanged, or a 304) or failed while a
    /// webhook's state stands. A webhook may close the gate ahead of a lagging page, but it
    /// may not hold open a gate the polled page closes: a forged or replayed
    /// all-clear would otherwise last until the page next changes. The
    /// polled page is judged again instead, so such a webhook lasts at most
    /// until the confirming poll it triggers.
    fn overrule_opening_webhook(&self, ctl: &mut Control) {
        let opens = ctl
            .page
            .as_ref()
            .is_some_and(|p| p.from_webhook && matches!(p.decision, Decision::Open));
        let Some(polled) = ctl.polled.clone() else {
            return;
        };
        if opens && matches!(self.policy.decide(&polled), Decision::Closed(_)) {
            self.judge(ctl, polled, false);
        }
    }

    /// Patches the last judged page with a webhook body and judges the result.
    pub(crate) fn apply_webhook(&self, body: &[u8]) -> Result<(), PageError> {
        if body.len() > self.max_webhook_bytes {
            return Err(PageError::too_large(body.len(), self.max_webhook_bytes));
        }
        let mut ctl = self.lock();
        let base = ctl.page.as_ref().map(|p| &*p.summary);
        let patched = super::webhook::patch_from_bytes(base, body)?;
        self.judge(&mut ctl, Arc::new(patched), true);
        self.recompute(&mut ctl);
        Ok(())
    }

    fn judge(&self, ctl: &mut Control, summary: Arc<Summary>, from_webhook: bool) {
        let changed = ctl.page.as_ref().map(|p| &*p.summary) != Some(&*summary);
        if changed {
            ctl.probe_open = false;
            let decision = self.policy.decide(&summary);
            ctl.page = Some(PageView {
                summary,
                decision,
                from_webhook,
            });
        } else if !from_webhook {
            // The polled page now says what the webhook said: confirmed.
            if let Some(view) = ctl.page.as_mut() {
                view.from_webhook = false;
            }
        }
    }

    pub(crate) fn apply_not_modified(&self) {
        let mut ctl = self.lock();
        ctl.read_at = Some(Instant::now());
        ctl.failing = None;
        self.overrule_opening_webhook(&mut ctl);
        self.recompute(&mut ctl);
    }

    pub(crate) fn apply_failure(&self, err: FetchError) {
        let mut ctl = self.lock();
        ctl.failing = Some(err);
        // An unconfirmed all-clear is not the "last state read" KeepLast keeps.
        self.overrule_opening_webhook(&mut ctl);
        self.recompute(&mut ctl);
    }

    pub(crate) fn set_manual(&self, manual: Option<Manual>) {
        let mut ctl = self.lock();
        ctl.manual = manual;
        self.recompute(&mut ctl);
    }

    /// Claims the probe slot: `true` for at most one caller per probe interval,
    /// and only while the status page (not a manual override) holds the gate closed.
    pub(crate) fn try_probe(&self, closed: &GateClosed) -> bool {
        let Some(every) = self.probe_every else {
            return false;
        };
        if closed.cause() == CloseCause::Manual {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_probe.load(Ordering::Acquire);
        if last != u64::MAX && now.saturating_sub(last) < every {
            return false;
        }
        self.last_probe
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A probe request succeeded: open locally until the page next changes.
    pub(crate) fn probe_succeeded(&self) {
        let mut ctl = self.lock();
        ctl.probe_open = true;
        self.recompute(&mut ctl);
    }

    /// What the page (or its absence) says, before overrides and probes.
    fn page_verdict(&self, ctl: &Control) -> Option<(CloseCause, Verdict)> {
        let view = ctl.page.as_ref()?;
        match &view.decision {
            Decision::Open => None,
            Decision::Closed(v) => {
                let cause = if view.from_webhook {
                    CloseCause::Webhook
                } else {
                    CloseCause::StatusPage
                };
                Some((cause, v.clone()))
            }
        }
    }

    fn effective(&self, ctl: &Control) -> Option<ClosedInfo> {
        let closed = |cause, verdict, reason, fetch_error| ClosedInfo {
            cause,
            verdict,
            reason,
            fetch_error,
            since: SystemTime::now(),
        };
        match &ctl.manual {
            Some(Manual::Open) => return None,
            Some(Manual::Closed(reason)) => {
                return Some(closed(CloseCause::Manual, None, Some(reason.clone()), None))
            }
            None => {}
        }
        let page = match (&ctl.failing, self.unreadable) {
            (None, _) => self.page_verdict(ctl),
            (Some(_), Unreadable::StayOpen) => None,
            (Some(_), Unreadable::Close) if ctl.probe_open => None,
            (Some(err), Unreadable::Close) => {
                return Some(closed(
                    CloseCause::Unreadable,
                    None,
                    None,
                    Some(err.clone()),
                ))
            }
            (Some(_), Unreadable::KeepLast { max_age }) => {
                let fresh = ctl.read_at.is_some_and(|t| t.elapsed() <= max_age);
                if fresh {
                    self.page_verdict(ctl)
                } else {
                    None
                }
            }
        };
        let (cause, verdict) = page?;
        if ctl.probe_open {
            return None;
        }
        Some(closed(cause, Some(verdict), None, None))
    }

    fn recompute(&self, ctl: &mut Control) {
        let next = self.effective(ctl);
        let current = self.state.load_full();
        let next = match (current, next) {
            (None, None) => return,
            (Some(cur), Some(next)) if cur.same_as(&next) => return,
            (Some(cur), Some(mut next)) => {
                next.since = cur.since;
                Some(Arc::new(next))
            }
            (_, next) => next.map(Arc::new),
        };
        // `state` first, then the flag: a reader that sees the flag set finds
        // the closed state behind it (the release pairs with `check`'s
        // acquire); one that still sees it set after an opening finds `None`.
        self.state.store(next.clone());
        self.closed.store(next.is_some(), Ordering::Release);
        let status = match next {
            None => {
                tracing::info!(target: "tower_api_guard::gate", "status gate open");
                GateStatus::Open
            }
            Some(info) => {
                let closed = GateClosed { info };
                tracing::warn!(
                    target: "tower_api_guard::gate",
                    cause = ?closed.cause(),
                    indicator = closed.indicator().map(|i| i.as_str()),
                    incidents = closed.incidents().len(),
                    "status gate closed: {closed}"
                );
                GateStatus::Closed(closed)
            }
        };
        self.status_tx.send_replace(status);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("open", &self.check().is_ok())
            .field("policy", &self.policy)
            .field("unreadable", &self.unreadable)
            .field("probe_every", &self.probe_every)
            .finish_non_exhaustive()
    }
}
