//! The background task that polls the status page.
//!
//! One task per gate, whatever the number of clones. It polls at once, then
//! after each interval (plus jitter), or sooner when asked
//! ([`StatusGate::poll_now`](super::StatusGate::poll_now), a webhook). It holds
//! the shared state but no handle, and ends as soon as the last
//! [`StatusGate`](super::StatusGate) is dropped: the handles own the sending
//! half of a oneshot channel, and the task selects on its receiving half
//! around every fetch and every sleep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::fetch::{Fetched, Fetcher};
use super::state::{PollOutcome, Shared};

/// Spread added to each poll interval so a fleet started together does not
/// poll in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jitter {
    percent: u8,
}

impl Jitter {
    /// No jitter: exactly the interval.
    pub const fn none() -> Self {
        Self { percent: 0 }
    }

    /// Each wait is the interval plus a uniform random share of up to
    /// `percent` % of it (at most 100). Never shorter than the interval, so the
    /// minimum interval holds.
    pub const fn up_to_percent(percent: u8) -> Self {
        Self {
            percent: if percent > 100 { 100 } else { percent },
        }
    }

    /// The share, in percent.
    pub const fn percent(self) -> u8 {
        self.percent
    }

    pub(crate) fn apply(self, interval: Duration, rng: &mut fastrand::Rng) -> Duration {
        if self.percent == 0 {
            return interval;
        }
        let share = f64::from(self.percent) / 100.0 * rng.f64();
        let extra = Duration::try_from_secs_f64(interval.as_secs_f64() * share).unwrap_or_default();
        interval.saturating_add(extra)
    }
}

impl Default for Jitter {
    /// Up to 20 %: on the default 30 s interval, polls spread over 6 s, which
    /// is enough to break a fleet's lockstep and never polls faster than asked.
    fn default() -> Self {
        Self::up_to_percent(20)
    }
}

/// How far the poller has got; observed by `poll_now`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) last: Option<PollOutcome>,
}

pub(crate) struct Poller {
    pub(crate) shared: Arc<Shared>,
    pub(crate) fetcher: Fetcher,
    pub(crate) stop: oneshot::Receiver<()>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) interval: Duration,
    pub(crate) jitter: Jitter,
    pub(crate) rng: fastrand::Rng,
}

impl Poller {
    pub(crate) async fn run(self) {
        let Poller {
            shared,
            mut fetcher,
            mut stop,
            progress,
            interval,
            jitter,
            mut rng,
        } = self;
        loop {
            progress.send_modify(|p| p.started += 1);
            let result = tokio::select! {
                biased;
                _ = &mut stop => break,
                r = fetcher.fetch() => r,
            };
            let outcome = match result {
                Ok(Fetched::Page(page)) => {
                    shared.apply_page(*page);
                    PollOutcome::Page
                }
                Ok(Fetched::NotModified) => {
                    shared.apply_not_modified();
                    PollOutcome::NotModified
                }
                Err(err) => {
                    shared.apply_failure(err.clone());
                    PollOutcome::Failed(err)
                }
            };
            progress.send_modify(|p| {
                p.completed += 1;
                p.last = Some(outcome);
            });
            let wait = jitter.apply(interval, &mut rng);
            let poll_now = Arc::clone(&shared.poll_now).notified_owned();
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = poll_now => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!(target: "tower_api_guard::gate", "status gate poller stopped");
    }
}
