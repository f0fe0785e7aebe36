//! The pure decision: from a status page to open or closed, with the reason.
//!
//! No I/O and no clock: [`Policy::decide`] looks at one [`Summary`] and says
//! whether requests should be held back, and why.
//!
//! How a page is read:
//! - With no watched components (the default), or when none of the watched
//!   names is on the page (a `status.json` page has no components), the
//!   page-wide indicator decides, as the provider's documented check does
//!   (`status.indicator != "none"` means an active incident).
//! - With watched components, only those count: the worst status among the
//!   rows with a watched name (a group row counts like any other), and the
//!   active incidents and maintenances that name a watched component. An
//!   incident that names no component at all counts too, unless
//!   [`Policy::unattributed_incidents`] is turned off, since Statuspage lets an
//!   incident raise the indicator without naming anything.
//!
//! Severities: indicator `minor`/`major`/`critical` and incident impact of
//! the same name map to [`Severity`] one to one; component statuses map as
//! Statuspage itself derives the indicator (`degraded_performance` → minor,
//! `partial_outage` → major, `major_outage` → critical). `maintenance` and
//! `under_maintenance` are maintenance, which closes only when
//! [`Policy::maintenance_closes`] is set. Unknown values count as
//! [`Severity::Minor`]: something is reported that this crate cannot rank, and
//! the provider's own check treats anything but `none` as an incident.

use crate::status_page::{ComponentStatus, Impact, Incident, Indicator, Summary};

/// How bad a reported problem is, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Indicator `minor`, impact `minor`, or `degraded_performance`.
    Minor,
    /// Indicator `major`, impact `major`, or `partial_outage`.
    Major,
    /// Indicator `critical`, impact `critical`, or `major_outage`.
    Critical,
}

/// What one reported value amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Fine,
    Maintenance,
    Problem(Severity),
}

fn indicator_level(i: &Indicator) -> Level {
    match i {
        Indicator::None => Level::Fine,
        Indicator::Minor => Level::Problem(Severity::Minor),
        Indicator::Major => Level::Problem(Severity::Major),
        Indicator::Critical => Level::Problem(Severity::Critical),
        Indicator::Maintenance => Level::Maintenance,
        _ => Level::Problem(Severity::Minor),
    }
}

fn component_level(s: &ComponentStatus) -> Level {
    match s {
        ComponentStatus::Operational => Level::Fine,
        ComponentStatus::DegradedPerformance => Level::Problem(Severity::Minor),
        ComponentStatus::PartialOutage => Level::Problem(Severity::Major),
        ComponentStatus::MajorOutage => Level::Problem(Severity::Critical),
        ComponentStatus::UnderMaintenance => Level::Maintenance,
        _ => Level::Problem(Severity::Minor),
    }
}

fn impact_level(i: Option<&Impact>) -> Level {
    match i {
        None | Some(Impact::None) => Level::Fine,
        Some(Impact::Minor) => Level::Problem(Severity::Minor),
        Some(Impact::Major) => Level::Problem(Severity::Major),
        Some(Impact::Critical) => Level::Problem(Severity::Critical),
        Some(Impact::Maintenance) => Level::Maintenance,
        Some(_) => Level::Problem(Severity::Minor),
    }
}

/// An incident as reported in a closed gate's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncidentRef {
    /// Its title.
    pub name: String,
    /// Its public link, when the page gave one.
    pub shortlink: Option<String>,
    /// Its declared impact, as sent.
    pub impact: Option<String>,
    /// Its status, as sent.
    pub status: String,
}

/// The most bytes of page-provided text a verdict keeps: a [`GateClosed`]
/// message and a 503 body are built from it on every refused request, and a
/// hostile page may send a description of nearly its whole size cap.
///
/// [`GateClosed`]: super::GateClosed
pub const MAX_TEXT: usize = 1024;

/// `text`, cut to at most [`MAX_TEXT`] bytes at a character boundary, with
/// `…` marking a cut.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(MAX_TEXT);
    cut.push_str(text.get(..end).unwrap_or_default());
    cut.push('…');
    cut
}

impl IncidentRef {
    fn from_incident(i: &Incident) -> Self {
        Self {
            name: bounded(&i.name),
            shortlink: i.shortlink.as_deref().map(bounded),
            impact: i.impact.as_ref().map(|x| x.as_str().to_owned()),
            status: i.status.as_str().to_owned(),
        }
    }
}

/// Why a page closes the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The page-wide indicator.
    pub indicator: Indicator,
    /// The page-wide description (e.g. `Partial System Outage`).
    pub description: Option<String>,
    /// The active incidents and maintenances that count.
    pub incidents: Vec<IncidentRef>,
    /// The watched components that are not operational, with their status.
    pub components: Vec<(String, ComponentStatus)>,
}

/// The outcome of reading one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing on the page that counts: let requests through.
    Open,
    /// Something counts: hold requests back, for this reason.
    Closed(Verdict),
}

/// The rules a page is judged by. See the module docs. Start from
/// `Policy::default()` and set fields, or use the
/// [`StatusGateBuilder`](super::StatusGateBuilder) setters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Close at this severity or worse. Default [`Severity::Minor`]: any
    /// incident, as the provider's documented check does.
    pub threshold: Severity,
    /// Whether maintenance closes the gate. Default `false`: maintenance is
    /// planned work that is often announced with "no interruption expected";
    /// closing on it would turn a harmless window into an outage of our own.
    /// A real failure during maintenance still raises an incident, which counts.
    pub maintenance_closes: bool,
    /// Component names to watch (trimmed, ASCII case-insensitive). Empty: the
    /// page-wide indicator decides.
    pub components: Vec<String>,
    /// With watched components, whether an active incident that names no
    /// component counts. Default `true`: the incident is real and may well
    /// concern the watched component.
    pub unattributed_incidents: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            threshold: Severity::Minor,
            maintenance_closes: false,
            components: Vec::new(),
            unattributed_incidents: true,
        }
    }
}

struct Tally {
    worst: Option<Severity>,
    maintenance: bool,
}

impl Tally {
    fn add(&mut self, level: Level) {
        match level {
            Level::Fine => {}
            Level::Maintenance => self.maintenance = true,
            Level::Problem(s) => self.worst = self.worst.max(Some(s)),
        }
    }
}

impl Policy {
    fn watches(&self, name: &str) -> bool {
        let name = name.trim();
        self.components
            .iter()
            .any(|w| w.trim().eq_ignore_ascii_case(name))
    }

    fn closes(&self, tally: &Tally) -> bool {
        tally.worst.is_some_and(|s| s >= self.threshold)
            || (tally.maintenance && self.maintenance_closes)
    }

    /// Judges one page.
    pub fn decide(&self, page: &Summary) -> Decision {
        let watched: Vec<_> = if self.components.is_empty() {
            Vec::new()
        } else {
            page.components
                .iter()
                .filter(|c| self.watches(&c.name))
                .collect()
        };
        let mut tally = Tally {
            worst: None,
            maintenance: false,
        };
        let mut incidents = Vec::new();
        let mut components = Vec::new();
        if watched.is_empty() {
            tally.add(indicator_level(&page.status.indicator));
            let active = page.incidents.iter().chain(&page.scheduled_maintenances);
            incidents.extend(
                active
                    .filter(|i| i.status.is_active())
                    .map(IncidentRef::from_incident),
            );
        } else {
            for c in &watched {
                let level = component_level(&c.status);
                tally.add(level);
                if level != Level::Fine {
                    components.push((bounded(&c.name), c.status.clone()));
                }
            }
            let maint = page.scheduled_maintenances.iter().map(|m| (m, true));
            for (inc, is_maint) in page.incidents.iter().map(|i| (i, false)).chain(maint) {
                if !inc.status.is_active() || !self.concerns_watched(inc) {
                    continue;
                }
                let level = if is_maint {
                    Level::Maintenance
                } else {
                    impact_level(inc.impact.as_ref())
                };
                tally.add(level);
                if level != Level::Fine {
                    incidents.push(IncidentRef::from_incident(inc));
                }
            }
        }
        if self.closes(&tally) {
            Decision::Closed(Verdict {
                indicator: match &page.status.indicator {
                    Indicator::Unknown(text) => Indicator::Unknown(bounded(text)),
                    known => known.clone(),
                },
                description: page.status.description.as_deref().map(bounded),
                incidents,
                components,
            })
        } else {
            Decision::Open
        }
    }

    fn concerns_watched(&self, inc: &Incident) -> bool {
        let mut names = inc.component_names().peekable();
        if names.peek().is_none() {
            return self.unattributed_incidents;
        }
        names.any(|n| self.watches(n))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::status_page::{Component, IncidentStatus, PageStatus};

    fn page(indicator: Indicator, comps: &[(&str, ComponentStatus)]) -> Summary {
        let mut s = Summary::new(PageStatus::new(indicator, None));
        s.components = comps
            .iter()
            .map(|(n, st)| Component::new(*n, st.clone()))
            .collect();
        s
    }

    #[test]
    fn indicator_rules() {
        let p = Policy::default();
        assert_eq!(p.decide(&page(Indicator::None, &[])), Decision::Open);
        assert!(matches!(
            p.decide(&page(Indicator::Minor, &[])),
            Decision::Closed(_)
        ));
        assert_eq!(p.decide(&page(Indicator::Maintenance, &[])), Decision::Open);
        let unknown = Indicator::from_api("purple");
        assert!(matches!(p.decide(&page(unknown, &[])), Decision::Closed(_)));
        let major = Policy {
            threshold: Severity::Major,
            ..Policy::default()
        };
        assert_eq!(major.decide(&page(Indicator::Minor, &[])), Decision::Open);
        assert!(matches!(
            major.decide(&page(Indicator::Critical, &[])),
            Decision::Closed(_)
        ));
        let maint = Policy {
            maintenance_closes: true,
            ..Policy::default()
        };
        assert!(matches!(
            maint.decide(&page(Indicator::Maintenance, &[])),
            Decision::Closed(_)
        ));
    }

    #[test]
    fn watched_components_only() {
        let p = Policy {
            components: vec![" claude api ".into()],
            ..Policy::default()
        };
        let other_down = page(
            Indicator::Critical,
            &[
                ("Claude API", ComponentStatus::Operational),
                ("Console", ComponentStatus::MajorOutage),
            ],
        );
        assert_eq!(p.decide(&other_down), Decision::Open);
        let api_down = page(
            Indicator::Minor,
            &[("Claude API", ComponentStatus::DegradedPerformance)],
        );
        match p.decide(&api_down) {
            Decision::Closed(v) => assert_eq!(v.components[0].0, "Claude API"),
            Decision::Open => panic!("should close"),
        }
        // An incident naming only another component does not count; one naming none does.
        let mut with_inc = page(
            Indicator::Major,
            &[("Claude API", ComponentStatus::Operational)],
        );
        let mut inc = Incident::new("x", IncidentStatus::Investigating, Some(Impact::Major));
        inc.components = vec![Component::new("Console", ComponentStatus::MajorOutage)];
        with_inc.incidents = vec![inc.clone()];
        assert_eq!(p.decide(&with_inc), Decision::Open);
        inc.components.clear();
        with_inc.incidents = vec![inc];
        assert!(matches!(p.decide(&with_inc), Decision::Closed(_)));
        let strict = Policy {
            unattributed_incidents: false,
            ..p.clone()
        };
        assert_eq!(strict.decide(&with_inc), Decision::Open);
    }

    #[test]
    fn page_text_is_bounded_at_a_char_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(2000);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn missing_watched_name_falls_back_to_indicator() {
        let p = Policy {
            components: vec!["Nope".into()],
            ..Policy::default()
        };
        assert!(matches!(
            p.decide(&page(
                Indicator::Major,
                &[("API", ComponentStatus::Operational)]
            )),
            Decision::Closed(_)
        ));
    }
}
