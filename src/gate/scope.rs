//! How a retry layer inside a [`StatusGateService`](super::StatusGateService)
//! finds the gate: the service names it while it polls its inner service's
//! readiness.
//!
//! Tower's `poll_ready` is synchronous and comes before every `call`, so a
//! retry layer reads the gate in its `poll_ready` and keeps it for the call
//! that readiness is for. Like a `tracing` span entered around a call, the
//! name does not cross a layer that drives its inner service's readiness
//! from another task (`tower::buffer`, `tower::spawn_ready`): a retry layer
//! behind one is given the gate with
//! [`RetryLayer::gate`](crate::retry::RetryLayer::gate). Nor does it reach a
//! call made without `poll_ready`, against tower's contract (the gate layer
//! still checks every request it forwards, and a retry layer given the gate
//! stops its retries: `tests/gate_retry.rs`).
//!
//! Every retry layer whose `poll_ready` runs inside the gate layer's inner
//! `poll_ready` takes the gate: the services a gate wraps are the ones it
//! guards.
//!
//! Named around `poll_ready`, not around `call`: a guard alive across a call
//! that may unwind keeps the compiler from building the value the call
//! returns straight into its caller's slot, so the inner response future
//! was built aside and then copied whole into the gate's (464 bytes with a
//! retry layer inside, in the benchmark). Around `poll_ready`, which returns
//! a word, the guard costs nothing more, and it still undoes the naming when
//! the inner service panics.
//!
//! In steady state a request writes no reference count of the gate, and
//! allocates nothing. The thread keeps a weak reference to the gate it named
//! last, so naming it again only flags it, and a retry layer keeps a weak
//! reference to the first gate it found ([`Seen`]), so finding it again is a
//! comparison of addresses. Neither keeps the gate, or its poller, alive: a
//! retry planned after every handle of the gate was dropped finds no gate.
//! A weak reference keeps only the gate's allocation (a few hundred bytes),
//! which is also what makes its address a safe identity: no other gate can
//! be allocated there while it lives.
//! (Cloning a handle for the call and another for the retry layer cost four
//! atomic read-modify-writes a request, all on one cache line every core
//! writes; putting the gate in the request's extensions cost three
//! allocations.)

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::handle::{StatusGate, WeakGate};

/// The gate last named on a thread, and whether it is named now. Without a
/// destructor, so reading it is a plain load.
struct Named {
    /// The gate's address ([`StatusGate::addr`]), 0 for none. [`LAST`]
    /// keeps the address from being reused.
    addr: Cell<usize>,
    active: Cell<bool>,
}

thread_local! {
    static NAMED: Named = const {
        Named {
            addr: Cell::new(0),
            active: Cell::new(false),
        }
    };
    /// The gate at `NAMED.addr`, weakly; touched only when the gate named
    /// changes or a retry layer meets a gate it has not seen first.
    static LAST: Cell<Option<WeakGate>> = const { Cell::new(None) };
}

/// Names `gate` as the current gate until the guard is dropped (also when
/// the call it wraps unwinds); the gate named before comes back then.
// Inlined, with the change of gate out of line: naming the gate named last
// is a load, a compare and a store.
#[inline]
pub(crate) fn enter(gate: &StatusGate) -> Entered {
    let addr = gate.addr();
    let Ok((last_addr, active)) =
        NAMED.try_with(|named| (named.addr.get(), named.active.replace(true)))
    else {
        return Entered { restore: None };
    };
    if last_addr == addr {
        return Entered {
            restore: Some(Restore::Same { active }),
        };
    }
    enter_another(gate, addr, active)
}

/// [`enter`] when the gate named last is another one, or none.
#[cold]
#[inline(never)]
fn enter_another(gate: &StatusGate, addr: usize, active: bool) -> Entered {
    let Ok(last) = LAST.try_with(|last| last.replace(Some(gate.downgrade()))) else {
        // The thread is being torn down: nothing is named, nothing restored.
        let _ = NAMED.try_with(|named| named.active.set(active));
        return Entered { restore: None };
    };
    let _ = NAMED.try_with(|named| named.addr.set(addr));
    let restore = match last {
        Some(last) if active => Restore::Other(last),
        _ => Restore::Nothing,
    };
    Entered {
        restore: Some(restore),
    }
}

/// Restores the previously named gate when dropped.
pub(crate) struct Entered {
    restore: Option<Restore>,
}

/// What was named before a guard named its gate.
enum Restore {
    /// The same gate, named (a nested call) or not.
    Same { active: bool },
    /// Another gate, named: a gate layer polled inside another's
    /// `poll_ready`.
    Other(WeakGate),
    /// No gate. The guard's gate stays known, not named, for the next guard.
    Nothing,
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        match self.restore.take() {
            None => {}
            Some(Restore::Same { active }) => set_active(active),
            Some(Restore::Nothing) => set_active(false),
            Some(Restore::Other(gate)) => restore_another(gate),
        }
    }
}

// Ignore a thread being torn down: there is nothing to restore then.
#[inline]
fn set_active(active: bool) {
    let _ = NAMED.try_with(|named| named.active.set(active));
}

/// Names `gate` again, as the guard of a gate layer inside its `poll_ready`
/// ends.
#[cold]
#[inline(never)]
fn restore_another(gate: WeakGate) {
    let addr = gate.addr();
    let restored = LAST.try_with(|last| last.set(Some(gate))).is_ok();
    let _ = NAMED.try_with(|named| named.addr.set(if restored { addr } else { 0 }));
}

/// What a retry layer remembers of the gates named around its `poll_ready`: the
/// first one found, weakly.
#[derive(Default)]
pub(crate) struct Seen {
    first: OnceLock<WeakGate>,
    /// `first`'s address once it is set, 0 before: a load to compare with
    /// (reading it through the `OnceLock` cost 8 instructions a call).
    first_addr: AtomicUsize,
}

/// The gate a call found named.
pub(crate) enum Found {
    /// The first gate the retry layer found: nothing to keep.
    First,
    /// Another one (a retry layer shared by two gate layers' services).
    Other(WeakGate),
}

impl Clone for Seen {
    fn clone(&self) -> Self {
        // The address first: once it is set, `first` is too. Read the other
        // way round, a gate found in between would leave the copy with its
        // address but not the gate, and it would never look again.
        let first_addr = self.first_addr.load(Ordering::Acquire);
        Self {
            first: self.first.clone(),
            first_addr: AtomicUsize::new(first_addr),
        }
    }
}

impl Seen {
    /// The gate named by the [`enter`] guard alive on this thread, if any.
    // Inlined, with a gate not seen first out of line: finding the first
    // gate again is two loads and two compares.
    #[inline]
    pub(crate) fn find(&self) -> Option<Found> {
        let (addr, active) = NAMED
            .try_with(|named| (named.addr.get(), named.active.get()))
            .ok()?;
        if !active || addr == 0 {
            return None;
        }
        // `first` keeps its address from being reused: equal means the same gate.
        if self.first_addr.load(Ordering::Acquire) == addr {
            return Some(Found::First);
        }
        self.find_another()
    }

    /// [`Seen::find`] for a gate other than the first one seen, or before
    /// any was.
    #[cold]
    #[inline(never)]
    fn find_another(&self) -> Option<Found> {
        LAST.try_with(|last| {
            let gate = last.take()?;
            let first = self.first.get_or_init(|| gate.clone());
            self.first_addr.store(first.addr(), Ordering::Release);
            let found = if first.addr() == gate.addr() {
                Found::First
            } else {
                Found::Other(gate.clone())
            };
            last.set(Some(gate));
            Some(found)
        })
        .ok()
        .flatten()
    }

    /// A handle to the gate `found` names, unless it has been dropped.
    pub(crate) fn gate(&self, found: &Found) -> Option<StatusGate> {
        match found {
            Found::First => self.first.get()?.upgrade(),
            Found::Other(gate) => gate.upgrade(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `seen` finds a gate named now, and whether that gate is open.
    fn named(seen: &Seen) -> Option<bool> {
        let found = seen.find()?;
        seen.gate(&found).map(|gate| gate.is_open())
    }

    #[test]
    fn named_for_the_call_only_and_nested_calls_restore() {
        let seen = Seen::default();
        let outer = StatusGate::manual();
        let inner = StatusGate::manual();
        inner.force_closed("inner");
        assert_eq!(named(&seen), None);
        {
            let _outer = enter(&outer);
            assert_eq!(named(&seen), Some(true));
            {
                let _inner = enter(&inner);
                assert_eq!(named(&seen), Some(false));
                {
                    let _again = enter(&inner);
                    assert_eq!(named(&seen), Some(false));
                }
                assert_eq!(named(&seen), Some(false), "still inside inner's call");
            }
            assert_eq!(named(&seen), Some(true));
        }
        assert_eq!(named(&seen), None);
        // Known but not named: the next call without a gate finds none.
        drop(enter(&inner));
        assert_eq!(named(&seen), None);
    }

    #[test]
    fn naming_the_same_gate_again_touches_no_reference_count() {
        let seen = Seen::default();
        let gate = StatusGate::manual();
        drop(enter(&gate));
        let first = {
            let _entered = enter(&gate);
            seen.find()
        };
        assert!(matches!(first, Some(Found::First)));
        // One weak reference on the thread, one in `seen`: both made once.
        assert_eq!(gate.counts(), (1, 2));
        for _ in 0..3 {
            let _entered = enter(&gate);
            assert!(matches!(seen.find(), Some(Found::First)));
            assert_eq!(gate.counts(), (1, 2));
        }
        // Another gate is found as itself, kept weakly for the call.
        let other = StatusGate::manual();
        other.force_closed("other");
        let _entered = enter(&other);
        let found = seen.find();
        assert!(matches!(found, Some(Found::Other(_))));
        assert!(found
            .and_then(|f| seen.gate(&f))
            .is_some_and(|g| !g.is_open()));
    }

    #[test]
    fn a_gate_found_is_not_kept_alive() {
        let seen = Seen::default();
        let gate = StatusGate::manual();
        let found = {
            let _entered = enter(&gate);
            seen.find()
        };
        let Some(found) = found else {
            panic!("the gate named was not found");
        };
        assert!(seen.gate(&found).is_some());
        drop(gate);
        assert!(seen.gate(&found).is_none(), "every handle was dropped");
    }

    #[tokio::test]
    async fn a_request_through_both_layers_holds_no_handle_of_the_gate() {
        use bytes::Bytes;
        use http_body_util::Full;
        use tower::{Service, ServiceBuilder, ServiceExt};

        let gate = StatusGate::manual();
        let mut svc = ServiceBuilder::new()
            .layer(super::super::StatusGateLayer::new(gate.clone()))
            .layer(crate::retry::RetryLayer::new())
            .service(tower::service_fn(|_: http::Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }));
        let request = || http::Request::new(Full::new(Bytes::from_static(b"{}")));
        // The first request lets the thread and the retry layer meet the gate.
        let first = svc.ready().await.unwrap().call(request()).await;
        assert_eq!(first.unwrap().status(), 200);
        let counts = gate.counts();
        let in_flight = svc.ready().await.unwrap().call(request());
        assert_eq!(gate.counts(), counts, "the response future holds a handle");
        assert_eq!(in_flight.await.unwrap().status(), 200);
        assert_eq!(gate.counts(), counts);
    }

    #[test]
    fn restored_when_the_call_unwinds() {
        let seen = Seen::default();
        let gate = StatusGate::manual();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _entered = enter(&gate);
            panic!("inner call panicked");
        }));
        assert!(unwound.is_err());
        assert_eq!(named(&seen), None);
    }
}
