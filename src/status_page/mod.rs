//! Atlassian Statuspage (public API v2) documents and their parsers.
//!
//! [`parse_summary`] reads `/api/v2/summary.json`, [`parse_status`] reads
//! `/api/v2/status.json` and [`parse_webhook`] reads a webhook body. They are
//! tolerant where real pages vary (unknown enum values, `null` descriptions
//! and lists, mixed timestamp offsets, group rows) and strict where the input
//! is not a status page at all (HTML, truncated JSON, wrong types), which
//! they report as a typed [`PageError`]. They never panic, whatever the input.
//!
//! ```
//! use tower_api_guard::status_page::{parse_summary, Indicator};
//!
//! let page = br#"{"status":{"indicator":"major","description":"Partial System Outage"},
//!                 "components":[{"name":"API","status":"partial_outage","description":null}],
//!                 "incidents":[]}"#;
//! let summary = parse_summary(page)?;
//! assert_eq!(summary.status.indicator, Indicator::Major);
//! assert_eq!(summary.components.len(), 1);
//! # Ok::<(), tower_api_guard::status_page::PageError>(())
//! ```

mod enums;
mod error;
mod model;
mod webhook;

pub use enums::{ComponentStatus, Impact, IncidentStatus, Indicator};
pub use error::{PageError, PageErrorKind};
pub use model::{
    AffectedComponent, Component, Incident, IncidentUpdate, Page, PageStatus, Summary,
};
pub use webhook::{ComponentUpdate, Webhook, WebhookEvent, WebhookPage};

use serde::Deserialize;

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, PageError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PageError::empty());
    }
    serde_json::from_slice(bytes).map_err(|e| PageError::from_json(&e))
}

/// Parses a `/api/v2/summary.json` document.
pub fn parse_summary(bytes: &[u8]) -> Result<Summary, PageError> {
    parse(bytes)
}

/// Parses a `/api/v2/status.json` document (page and indicator only) into a
/// [`Summary`] with no components, incidents or maintenances.
pub fn parse_status(bytes: &[u8]) -> Result<Summary, PageError> {
    #[derive(Deserialize)]
    struct StatusDoc {
        #[serde(default)]
        page: Page,
        status: PageStatus,
    }
    let doc: StatusDoc = parse(bytes)?;
    let mut summary = Summary::new(doc.status);
    summary.page = doc.page;
    Ok(summary)
}

/// Parses a Statuspage webhook body.
pub fn parse_webhook(bytes: &[u8]) -> Result<Webhook, PageError> {
    parse::<webhook::RawWebhook>(bytes).map(Webhook::from)
}
