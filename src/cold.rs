//! A marker for branches a request rarely takes, for the code's layout.
//!
//! The compiler lays a function's blocks out as it guesses its branches
//! go. A branch that calls a `#[cold]` function is taken to be rare, and its
//! blocks go after the rest, so the common path runs straight through fewer
//! cache lines. That counts where caches are cold: on loopback with two
//! workers whose idle CPUs halt (a VM's), each line of code a request runs
//! costs it about 17 ns (BENCHMARKS.md, section 2; benches/JOURNAL.md,
//! item 25 for these markers).

/// Marks the branch it is called in as rarely taken. It does nothing else.
#[cold]
#[inline(never)]
pub(crate) fn cold_path() {}
