//! Statuspage webhook bodies (incident and component notifications).
//!
//! A webhook body carries `page.status_indicator` and either an `incident`
//! (created or updated) or a `component` with its `component_update`.

use serde::Deserialize;

use super::enums::{ComponentStatus, Indicator};
use super::model::{Component, Incident};

/// The `page` object of a webhook body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct WebhookPage {
    /// The page id.
    #[serde(default)]
    pub id: Option<String>,
    /// The page-wide indicator after the change.
    #[serde(default)]
    pub status_indicator: Option<Indicator>,
    /// Human text for the indicator.
    #[serde(default)]
    pub status_description: Option<String>,
}

/// The `component_update` object: one component's change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ComponentUpdate {
    /// The component id.
    #[serde(default)]
    pub component_id: Option<String>,
    /// Status before.
    #[serde(default)]
    pub old_status: Option<ComponentStatus>,
    /// Status after.
    #[serde(default)]
    pub new_status: Option<ComponentStatus>,
    /// When, as sent.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What a webhook reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// An incident was created or updated.
    Incident(Box<Incident>),
    /// A component changed status.
    Component {
        /// The component after the change.
        component: Box<Component>,
        /// The change itself, when sent.
        update: Option<ComponentUpdate>,
    },
    /// Neither an incident nor a component (e.g. a page-only notification).
    PageOnly,
}

/// A parsed webhook body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Webhook {
    /// The page and its indicator after the change.
    pub page: WebhookPage,
    /// What changed.
    pub event: WebhookEvent,
}

/// The wire shape, before it is sorted into [`WebhookEvent`].
#[derive(Deserialize)]
pub(super) struct RawWebhook {
    #[serde(default)]
    page: WebhookPage,
    #[serde(default)]
    incident: Option<Incident>,
    #[serde(default)]
    component: Option<Component>,
    #[serde(default)]
    component_update: Option<ComponentUpdate>,
}

impl From<RawWebhook> for Webhook {
    fn from(raw: RawWebhook) -> Self {
        let event = match (raw.incident, raw.component) {
            (Some(incident), _) => WebhookEvent::Incident(Box::new(incident)),
            (None, Some(component)) => WebhookEvent::Component {
                component: Box::new(component),
                update: raw.component_update,
            },
            (None, None) => WebhookEvent::PageOnly,
        };
        Webhook {
            page: raw.page,
            event,
        }
    }
}
