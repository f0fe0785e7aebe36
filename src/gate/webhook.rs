//! Applying a Statuspage webhook body to the gate.
//!
//! The webhook patches the last page the gate judged (or an empty page): the
//! page-wide indicator, the component row that changed, or the incident that
//! was created, updated or resolved. The patched page is judged like a polled
//! one; a poll is started at once to confirm. A state that closes the gate
//! stands until a poll returns a page that differs from the last polled one,
//! so a CDN copy older than the webhook does not undo it. A state that opens
//! a gate the polled page closes does not stand: the confirming poll, even a
//! 304, closes it again, so a forged all-clear lasts at most one poll.

use crate::status_page::{
    parse_webhook, Indicator, PageError, PageStatus, Summary, Webhook, WebhookEvent,
};

/// Returns `base` with the webhook's changes applied.
pub(crate) fn patch(base: Option<&Summary>, hook: Webhook) -> Summary {
    let mut page = base
        .cloned()
        .unwrap_or_else(|| Summary::new(PageStatus::new(Indicator::None, None)));
    if let Some(indicator) = hook.page.status_indicator {
        page.status = PageStatus::new(indicator, hook.page.status_description);
    }
    match hook.event {
        WebhookEvent::Component { component, .. } => {
            let same = |c: &crate::status_page::Component| match (&c.id, &component.id) {
                (Some(a), Some(b)) => a == b,
                _ => c.name == component.name,
            };
            match page.components.iter_mut().find(|c| same(c)) {
                Some(row) => row.status = component.status.clone(),
                None => page.components.push(*component),
            }
        }
        WebhookEvent::Incident(incident) => {
            let same = |i: &crate::status_page::Incident| match (&i.id, &incident.id) {
                (Some(a), Some(b)) => a == b,
                _ => i.name == incident.name,
            };
            page.incidents.retain(|i| !same(i));
            if incident.status.is_active() {
                page.incidents.push(*incident);
            }
        }
        WebhookEvent::PageOnly => {}
    }
    page
}

/// Parses a webhook body and patches `base` with it.
pub(crate) fn patch_from_bytes(base: Option<&Summary>, body: &[u8]) -> Result<Summary, PageError> {
    parse_webhook(body).map(|hook| patch(base, hook))
}
