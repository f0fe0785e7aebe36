//! A sliding-window retry budget whose deposit, on every request, is one
//! atomic add on the calling thread's stripe: no lock and no clock read on
//! the happy path, and, while there are no more threads than stripes, no
//! cache line that another thread writes.
//!
//! The arithmetic is `tower::retry::budget::TpsBudget`'s: ten slots cover the
//! window, a deposit adds `deposit_amount`, a retry takes `withdraw_amount`,
//! and a reserve of `min_per_sec × window` retries is always there. The
//! differences:
//! - When the window turns: here at a withdrawal (a retry, the rare path)
//!   and about every 64th deposit of a thread, under a lock deposits never
//!   wait for. A deposit learns that it is due from the value its add
//!   returns, so it keeps no count of deposits besides the one it adds to.
//! - Where deposits go: the deposits since the last turn are split over
//!   stripes, one counter per thread (threads beyond the stripes share
//!   them), each on cache lines of its own; a turn and a withdrawal add them
//!   up. A single counter is the one line every request on every core
//!   writes, so each deposit after one on another core waited for the line
//!   to move over.
//!
//! Deposits made since the last turn count for the slot being closed, so a
//! long quiet stretch never saves up retries for a later storm.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::Budget;

const SLOTS: usize = 10;
/// A deposit turns the window about once in this many, so that a busy
/// service with no retries still lets old deposits expire.
const TURN_EVERY: i64 = 64;
/// At most this many stripes: one a core up to 64 cores (a stripe is two
/// cache lines, so 8 KiB a budget at most).
const MAX_STRIPES: usize = 64;

pub(super) struct WindowBudget {
    /// What was deposited (less what was withdrawn) since the last turn, one
    /// counter a thread ([`stripe`]); a power of two of them, as many as
    /// the machine runs threads at once (up to [`MAX_STRIPES`]). Each is
    /// alone on its cache lines, so that a deposit writes no line that
    /// another core writes, nor one holding the fields every deposit reads.
    pending: Box<[Alone<AtomicI64>]>,
    slots: [AtomicI64; SLOTS],
    /// A deposit turns the window when it moves `pending` across a multiple
    /// of `2^turn_shift`, the power of two at or above `TURN_EVERY`
    /// deposits. Withdrawals move `pending` by other amounts, so counting
    /// crossings rather than testing for exact multiples keeps the rhythm.
    turn_shift: u32,
    reserve: i64,
    deposit_amount: i64,
    withdraw_amount: i64,
    slot: Duration,
    turn: Mutex<Turn>,
}

/// A value on cache lines of its own (two lines: x86 cores fetch lines in
/// pairs). For a stripe of `pending`: with a single counter beside the
/// fields a deposit reads, each deposit on one core made the next deposit on
/// another miss twice, once to read them and once to write the counter. The
/// `budget_deposit/two_threads` bench measured 39 to 49 ns a deposit, then
/// 25 to 33 ns with the counter alone; later, on a faster machine, 10.8 to
/// 12.2 ns with the single counter and 7.8 to 8.1 ns with a stripe a thread
/// (BENCHMARKS.md, section 4).
#[repr(align(128))]
struct Alone<T>(T);

impl<T> std::ops::Deref for Alone<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

struct Turn {
    index: usize,
    at: Instant,
}

impl WindowBudget {
    /// `window` within 1 s..=60 s and `ratio` within 0..=1000 (checked by the caller).
    pub(super) fn new(window: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let (deposit_amount, withdraw_amount): (i64, i64) = if ratio <= 0.0 {
            (0, 1)
        } else if ratio <= 1.0 {
            (1, (1.0 / ratio) as i64)
        } else {
            (1000, (1000.0 / ratio) as i64)
        };
        let withdraw_amount = withdraw_amount.max(1);
        let reserve = i64::from(min_per_sec)
            .saturating_mul(window.as_secs() as i64)
            .saturating_mul(withdraw_amount);
        let stripes = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_STRIPES)
            .next_power_of_two();
        Self {
            pending: (0..stripes).map(|_| Alone(AtomicI64::new(0))).collect(),
            slots: Default::default(),
            turn_shift: deposit_amount
                .saturating_mul(TURN_EVERY)
                .unsigned_abs()
                .next_power_of_two()
                .trailing_zeros(),
            reserve,
            deposit_amount,
            withdraw_amount,
            slot: window / SLOTS as u32,
            turn: Mutex::new(Turn {
                index: 0,
                at: Instant::now(),
            }),
        }
    }

    /// Closes the current slot and clears those that fell out of the window.
    fn turn(&self, turn: &mut Turn) {
        let now = Instant::now();
        let mut elapsed = now.saturating_duration_since(turn.at);
        if elapsed < self.slot {
            return;
        }
        let pending = self
            .pending
            .iter()
            .map(|stripe| stripe.swap(0, Ordering::AcqRel))
            .fold(0, i64::saturating_add);
        let slot = |i: usize| self.slots.get(i % SLOTS);
        if let Some(current) = slot(turn.index) {
            current.store(pending, Ordering::Release);
        }
        let mut index = (turn.index + 1) % SLOTS;
        while elapsed > self.slot {
            if let Some(stale) = slot(index) {
                stale.store(0, Ordering::Release);
            }
            elapsed -= self.slot;
            index = (index + 1) % SLOTS;
        }
        turn.index = index;
        turn.at = now;
    }

    fn balance(&self) -> i64 {
        self.slots
            .iter()
            .chain(self.pending.iter().map(|stripe| &stripe.0))
            .map(|counter| counter.load(Ordering::Acquire))
            .fold(self.reserve, i64::saturating_add)
    }

    /// This thread's stripe of `pending`. `pending` is never empty and its
    /// length is a power of two, so the mask keeps the index in bounds: this
    /// is never `None`.
    #[inline]
    fn pending(&self) -> Option<&AtomicI64> {
        let mask = self.pending.len().wrapping_sub(1);
        self.pending.get(stripe() & mask).map(|stripe| &stripe.0)
    }
}

/// The calling thread's stripe number: threads are numbered in the order
/// they first deposit (or withdraw), in any budget. A stripe count is a power
/// of two, so consecutive numbers land on different stripes.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        /// This thread's number, or `usize::MAX` until it has one.
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE
        .try_with(|stripe| match stripe.get() {
            usize::MAX => {
                let number = NEXT.fetch_add(1, Ordering::Relaxed) % MAX_STRIPES;
                stripe.set(number);
                number
            }
            number => number,
        })
        // During the thread's teardown: stripe 0, shared but still counted.
        .unwrap_or(0)
}

impl Budget for WindowBudget {
    fn deposit(&self) {
        let Some(pending) = self.pending() else {
            return;
        };
        let before = pending.fetch_add(self.deposit_amount, Ordering::AcqRel);
        let after = before.wrapping_add(self.deposit_amount);
        // Arithmetic shifts: a negative `pending` (more withdrawn than
        // deposited since the last turn) crosses boundaries the same way.
        if before >> self.turn_shift != after >> self.turn_shift {
            // Never wait: if a withdrawal holds the lock, it turns the window.
            if let Ok(mut turn) = self.turn.try_lock() {
                self.turn(&mut turn);
            }
        }
    }

    fn withdraw(&self) -> bool {
        let mut turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.turn(&mut turn);
        match self.pending() {
            Some(pending) if self.balance() >= self.withdraw_amount => {
                pending.fetch_sub(self.withdraw_amount, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_window() {
        let budget = WindowBudget::new(Duration::from_secs(10), 0, 0.5);
        for _ in 0..10 {
            budget.deposit();
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.withdraw(), "deposits 5 s old still count");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!budget.withdraw(), "deposits older than the window expired");
        budget.deposit();
        budget.deposit();
        assert!(budget.withdraw(), "new deposits count again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stretch_saves_nothing_up() {
        let budget = WindowBudget::new(Duration::from_secs(10), 0, 1.0);
        // 63 deposits never turn the window (only the first does, at t = 0).
        for _ in 0..63 {
            budget.deposit();
        }
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(!budget.withdraw(), "an hour-old deposit bought a retry");
    }

    #[tokio::test(start_paused = true)]
    async fn busy_deposits_turn_the_window_themselves() {
        let budget = WindowBudget::new(Duration::from_secs(10), 0, 0.1);
        for _ in 0..30 {
            for _ in 0..100 {
                budget.deposit();
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // 100 requests a second over a 10 s window: about 100 retries at 10 %.
        let retries = (0..1000).take_while(|_| budget.withdraw()).count();
        assert!((90..=110).contains(&retries), "{retries}");
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_turn_the_window_about_every_64_at_any_ratio() {
        // Deposits of 1 with retries of 10, deposits of 1000 with retries of
        // 500 and of 333: `pending` is then not a multiple of a deposit.
        for (ratio, every) in [(0.1, 64), (2.0, 66), (3.0, 66)] {
            let budget = WindowBudget::new(Duration::from_secs(10), 0, ratio);
            for _ in 0..40 {
                budget.deposit();
            }
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(budget.withdraw());
            for round in 0..3 {
                tokio::time::advance(Duration::from_secs(1)).await;
                let turned_at = |b: &WindowBudget| b.turn.lock().map(|t| t.at).ok();
                let before = turned_at(&budget);
                let mut deposits = 0;
                while turned_at(&budget) == before {
                    budget.deposit();
                    deposits += 1;
                    assert!(
                        deposits <= every,
                        "ratio {ratio}, round {round}: no turn in {deposits} deposits"
                    );
                }
            }
        }
    }

    /// 250 deposits on each of `threads` threads of their own.
    fn deposit_on_threads(budget: &WindowBudget, threads: usize) {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| (0..250).for_each(|_| budget.deposit()));
            }
        });
    }

    #[test]
    fn deposits_on_every_thread_count() {
        // More threads than stripes on most machines, and a withdrawing
        // thread whose own stripe holds none of the deposits.
        let budget = WindowBudget::new(Duration::from_secs(10), 0, 0.1);
        deposit_on_threads(&budget, 4);
        let retries = (0..1000).take_while(|_| budget.withdraw()).count();
        assert_eq!(retries, 100, "1,000 deposits at 10 %");
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_on_other_threads_expire_after_the_window() {
        let budget = WindowBudget::new(Duration::from_secs(10), 0, 0.1);
        deposit_on_threads(&budget, 4);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.withdraw(), "deposits 5 s old still count");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!budget.withdraw(), "every stripe's deposits expired");
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_is_min_per_sec_times_window() {
        let budget = WindowBudget::new(Duration::from_secs(10), 2, 0.0);
        let retries = (0..100).take_while(|_| budget.withdraw()).count();
        assert_eq!(retries, 20);
    }
}
