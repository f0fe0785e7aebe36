//! A marker for branches a request rarely takes, for the code's layout.
//!
//! The compiler lays a function's blocks out as it guesses its branches
//! go. A branch that calls a `#[cold]` function is taken to be rare, and its
//! blocks go after the rest, so the common path runs straight through fewer
//! cache lines. On loopback that counts: in callgrind's cache simulation the
//! client's and the server's own code evict the layers' between two
//! requests, so each line of it that a request runs is a miss, and fewer
//! lines measured faster (BENCHMARKS.md, section 2, item 25).

/// Marks the branch it is called in as rarely taken. It does nothing else.
#[cold]
#[inline(never)]
pub(crate) fn cold_path() {}
