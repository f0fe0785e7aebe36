//! How a retry layer inside a [`StatusGateService`](super::StatusGateService)
//! finds the gate: the service names it for the length of its inner `call`.
//!
//! A tower `call` is synchronous, and a retry layer builds its response
//! future inside it, so the retry layer reads the gate then. This costs two
//! reference-count updates a request and allocates nothing; putting the gate
//! in the request's extensions cost three allocations. Like a `tracing` span
//! entered around a call, it does not cross a layer that moves the call to
//! another task (`tower::buffer`): a retry layer behind one is given the gate
//! with [`RetryLayer::gate`](crate::retry::RetryLayer::gate).
//!
//! Every retry layer whose `call` runs inside the gate layer's inner `call`
//! takes the gate: the services a gate wraps are the ones it guards. Work a
//! service defers to its response future (as handlers and clients do) runs
//! after the gate's `call` has returned and sees no gate.

use std::cell::Cell;

use super::StatusGate;

thread_local! {
    static CURRENT: Cell<Option<StatusGate>> = const { Cell::new(None) };
}

/// Names `gate` as the current gate until the guard is dropped (also when
/// the call it wraps unwinds); the gate named before comes back then.
pub(crate) fn enter(gate: &StatusGate) -> Entered {
    let previous = CURRENT
        .try_with(|current| current.replace(Some(gate.clone())))
        .ok()
        .flatten();
    Entered { previous }
}

/// Restores the previously named gate when dropped.
pub(crate) struct Entered {
    previous: Option<StatusGate>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // Ignore a thread being torn down: there is nothing to restore then.
        let _ = CURRENT.try_with(|current| drop(current.replace(previous)));
    }
}

/// The gate named by the [`enter`] guard alive on this thread, if any.
pub(crate) fn current() -> Option<StatusGate> {
    CURRENT
        .try_with(|current| {
            let gate = current.take();
            let copy = gate.clone();
            current.set(gate);
            copy
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_for_the_call_only_and_nested_calls_restore() {
        let outer = StatusGate::manual();
        let inner = StatusGate::manual();
        inner.force_closed("inner");
        assert!(current().is_none());
        {
            let _outer = enter(&outer);
            assert!(current().is_some_and(|g| g.check().is_ok()));
            {
                let _inner = enter(&inner);
                assert!(current().is_some_and(|g| g.check().is_err()));
            }
            assert!(current().is_some_and(|g| g.check().is_ok()));
        }
        assert!(current().is_none());
    }

    #[test]
    fn restored_when_the_call_unwinds() {
        let gate = StatusGate::manual();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _entered = enter(&gate);
            panic!("inner call panicked");
        }));
        assert!(unwound.is_err());
        assert!(current().is_none());
    }
}
