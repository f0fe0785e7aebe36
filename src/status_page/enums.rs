//! Open enums for the values a Statuspage page reports.
//!
//! Every enum keeps a value it does not know as `Unknown(String)` instead of
//! failing the whole page: Statuspage has added values before (`maintenance`
//! as a page indicator, `under_maintenance` for components) and may again.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept as the page sent it.
            Unknown(String),
        }

        impl $name {
            /// The value as Statuspage spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Unknown(other) => other,
                }
            }

            /// Reads a value as Statuspage spells it; anything else is `Unknown`.
            pub fn from_api(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from_api(v))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

open_enum! {
    /// The page-wide `status.indicator`.
    Indicator {
        /// All systems operational.
        None => "none",
        /// A minor incident (Statuspage: degraded performance somewhere).
        Minor => "minor",
        /// A major incident (Statuspage: a partial outage somewhere).
        Major => "major",
        /// A critical incident (Statuspage: a major outage somewhere).
        Critical => "critical",
        /// Maintenance in progress (seen in real captures, not in the docs).
        Maintenance => "maintenance",
    }
}

open_enum! {
    /// A component's `status`.
    ComponentStatus {
        /// Working normally.
        Operational => "operational",
        /// Slower than usual.
        DegradedPerformance => "degraded_performance",
        /// Partly down.
        PartialOutage => "partial_outage",
        /// Down.
        MajorOutage => "major_outage",
        /// Planned maintenance.
        UnderMaintenance => "under_maintenance",
    }
}

open_enum! {
    /// An incident's or a maintenance's `status`.
    IncidentStatus {
        /// Incident: being investigated.
        Investigating => "investigating",
        /// Incident: cause identified.
        Identified => "identified",
        /// Incident: fix applied, being watched.
        Monitoring => "monitoring",
        /// Incident: over.
        Resolved => "resolved",
        /// Incident: over, postmortem published.
        Postmortem => "postmortem",
        /// Maintenance: announced, not begun.
        Scheduled => "scheduled",
        /// Maintenance: under way.
        InProgress => "in_progress",
        /// Maintenance: being verified.
        Verifying => "verifying",
        /// Maintenance: over.
        Completed => "completed",
    }
}

impl IncidentStatus {
    /// `true` for statuses that mean the work is over (`resolved`,
    /// `postmortem`, `completed`) or has not begun (`scheduled`).
    /// Unknown statuses count as active: when in doubt, report the incident.
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            Self::Resolved | Self::Postmortem | Self::Completed | Self::Scheduled
        )
    }
}

open_enum! {
    /// An incident's or a maintenance's `impact`.
    Impact {
        /// No impact declared.
        None => "none",
        /// Minor impact.
        Minor => "minor",
        /// Major impact.
        Major => "major",
        /// Critical impact.
        Critical => "critical",
        /// Maintenance (seen in real captures).
        Maintenance => "maintenance",
    }
}
