//! The documents of the Statuspage public API v2 (`summary.json`,
//! `status.json`) as this crate reads them.
//!
//! Only the fields the gate needs are kept; every other field is ignored.
//! Text fields that real pages send as `null` (`description`, `group_id`,
//! `shortlink`) are `Option`s; lists sent as `null` read as empty. Timestamps
//! are kept as the page sent them (pages mix `Z` and `-06:00` offsets), since
//! the gate never does arithmetic on them.

use serde::{Deserialize, Deserializer};

use super::enums::{ComponentStatus, Impact, IncidentStatus, Indicator};

/// Reads `null` as the type's default (an empty list, `false`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The `page` object: which page this is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Page {
    /// Statuspage's page id.
    #[serde(default)]
    pub id: Option<String>,
    /// The page's display name (e.g. `GitHub`).
    #[serde(default)]
    pub name: Option<String>,
    /// The page's public URL.
    #[serde(default)]
    pub url: Option<String>,
    /// When the page last changed, as sent.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// The `status` object: the page-wide indicator.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PageStatus {
    /// `none`, `minor`, `major`, `critical`, `maintenance`, or unknown.
    pub indicator: Indicator,
    /// Human text such as `All Systems Operational`.
    #[serde(default)]
    pub description: Option<String>,
}

impl PageStatus {
    /// A status with the given indicator and description.
    pub fn new(indicator: Indicator, description: Option<String>) -> Self {
        Self {
            indicator,
            description,
        }
    }
}

/// One row of `components`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Component {
    /// Statuspage's component id.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name, e.g. `Claude API`.
    pub name: String,
    /// Current status.
    pub status: ComponentStatus,
    /// Often `null`.
    #[serde(default)]
    pub description: Option<String>,
    /// `true` for a group row, which repeats the worst state of its children.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group: bool,
    /// The group this row belongs to, if any.
    #[serde(default)]
    pub group_id: Option<String>,
    /// When the component last changed, as sent.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Component {
    /// A component with the given name and status.
    pub fn new(name: impl Into<String>, status: ComponentStatus) -> Self {
        Self {
            id: None,
            name: name.into(),
            status,
            description: None,
            group: false,
            group_id: None,
            updated_at: None,
        }
    }
}

/// A component named by an incident update.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AffectedComponent {
    /// The component id.
    #[serde(default)]
    pub code: Option<String>,
    /// The component name.
    #[serde(default)]
    pub name: Option<String>,
    /// Status before the update.
    #[serde(default)]
    pub old_status: Option<ComponentStatus>,
    /// Status after the update.
    #[serde(default)]
    pub new_status: Option<ComponentStatus>,
}

/// One entry of an incident's `incident_updates`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct IncidentUpdate {
    /// The update id.
    #[serde(default)]
    pub id: Option<String>,
    /// The incident status this update set.
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    /// The text posted.
    #[serde(default)]
    pub body: Option<String>,
    /// When it was posted, as sent.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Components named by the update; `null` on some real pages.
    #[serde(default)]
    pub affected_components: Option<Vec<AffectedComponent>>,
}

/// An incident or a scheduled maintenance (both have the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Incident {
    /// The incident id.
    #[serde(default)]
    pub id: Option<String>,
    /// Its title.
    pub name: String,
    /// Its status.
    pub status: IncidentStatus,
    /// Its declared impact; absent on some pages.
    #[serde(default)]
    pub impact: Option<Impact>,
    /// A short public link to it.
    #[serde(default)]
    pub shortlink: Option<String>,
    /// When it was created, as sent.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it started, as sent.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it was resolved, as sent.
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// Maintenance: planned start, as sent.
    #[serde(default)]
    pub scheduled_for: Option<String>,
    /// Maintenance: planned end, as sent.
    #[serde(default)]
    pub scheduled_until: Option<String>,
    /// Components the incident is attached to (may be empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub components: Vec<Component>,
    /// Its updates, newest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub incident_updates: Vec<IncidentUpdate>,
}

impl Incident {
    /// An incident with the given name, status and impact.
    pub fn new(name: impl Into<String>, status: IncidentStatus, impact: Option<Impact>) -> Self {
        Self {
            id: None,
            name: name.into(),
            status,
            impact,
            shortlink: None,
            created_at: None,
            started_at: None,
            resolved_at: None,
            scheduled_for: None,
            scheduled_until: None,
            components: Vec::new(),
            incident_updates: Vec::new(),
        }
    }

    /// The names of every component this incident names, in its
    /// `components` and in its updates' `affected_components`.
    pub fn component_names(&self) -> impl Iterator<Item = &str> + '_ {
        let direct = self.components.iter().map(|c| c.name.as_str());
        let from_updates = self
            .incident_updates
            .iter()
            .flat_map(|u| u.affected_components.iter().flatten())
            .filter_map(|a| a.name.as_deref());
        direct.chain(from_updates)
    }
}

/// `GET /api/v2/summary.json`: indicator, components, unresolved incidents
/// and upcoming or active maintenances in one document.
///
/// A `status.json` document reads into the same type with empty lists.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Which page this is.
    #[serde(default)]
    pub page: Page,
    /// The page-wide indicator.
    pub status: PageStatus,
    /// Every component row, group rows included.
    #[serde(default, deserialize_with = "null_as_default")]
    pub components: Vec<Component>,
    /// Unresolved incidents.
    #[serde(default, deserialize_with = "null_as_default")]
    pub incidents: Vec<Incident>,
    /// Upcoming and active maintenances.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scheduled_maintenances: Vec<Incident>,
}

impl Summary {
    /// A summary with only a page-wide status.
    pub fn new(status: PageStatus) -> Self {
        Self {
            page: Page::default(),
            status,
            components: Vec::new(),
            incidents: Vec::new(),
            scheduled_maintenances: Vec::new(),
        }
    }
}
