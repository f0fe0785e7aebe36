//! Tower middleware for programs that call a hosted HTTP API which fails in
//! known ways: the Anthropic API first, and any provider shaped like it.
//!
//! - [`retry::RetryLayer`] retries transient errors (`api_error`,
//!   `overloaded_error`, gateway failures) read from JSON error bodies, with
//!   capped exponential backoff, jitter, server delay hints and a shared
//!   budget, and hands every other response on byte for byte.
//! - [`gate::StatusGateLayer`] short-circuits requests while the provider's
//!   status page reports an incident, so no request and no retry is sent into
//!   a known outage.

pub mod backoff;
pub mod budget;
pub mod classify;
pub mod gate;
pub mod hint;
#[cfg(any(feature = "tonic", feature = "reqwest", feature = "axum"))]
pub mod integration;
pub mod retry;
pub mod status_page;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The boxed error the layers return, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
