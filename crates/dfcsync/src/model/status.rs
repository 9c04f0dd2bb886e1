//! Incident and alert statuses as the `SecurityIncident` and `SecurityAlert` tables spell them.
//!
//! Both enums are open: the APIs model them as strings (`modelAsString: true`), so a value we do
//! not know is kept verbatim in `Other` and the engine holds the incident instead of guessing.

use std::fmt;

/// `SecurityIncident.Status`: `New`, `Active` or `Closed` (reference §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentStatus {
    New,
    Active,
    Closed,
    /// A value outside the documented enum, kept as read.
    Other(String),
}

impl IncidentStatus {
    /// Parses a status as the table spells it. Exact match: the service's enum is case-exact.
    pub fn parse(s: &str) -> Self {
        match s {
            "New" => Self::New,
            "Active" => Self::Active,
            "Closed" => Self::Closed,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::New => "New",
            Self::Active => "Active",
            Self::Closed => "Closed",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SecurityAlert.Status`: `New`, `InProgress`, `Resolved`, `Dismissed` or `Unknown`
/// (reference §7.2). DfC's `Active` shows up in the table as `New`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertStatus {
    New,
    InProgress,
    Resolved,
    Dismissed,
    /// The documented `Unknown` value.
    Unknown,
    /// A value outside the documented enum, kept as read.
    Other(String),
}

impl AlertStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "New" => Self::New,
            "InProgress" => Self::InProgress,
            "Resolved" => Self::Resolved,
            "Dismissed" => Self::Dismissed,
            "Unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::New => "New",
            Self::InProgress => "InProgress",
            Self::Resolved => "Resolved",
            Self::Dismissed => "Dismissed",
            Self::Unknown => "Unknown",
            Self::Other(s) => s,
        }
    }

    /// Resolved or Dismissed: nobody works on the alert any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Resolved | Self::Dismissed)
    }

    /// A value the engine understands (not `Unknown`, not `Other`).
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown | Self::Other(_))
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_kept_verbatim() {
        assert_eq!(
            IncidentStatus::parse("Reopened"),
            IncidentStatus::Other("Reopened".into())
        );
        assert_eq!(IncidentStatus::parse("Reopened").as_str(), "Reopened");
        assert_eq!(AlertStatus::parse("active").as_str(), "active");
        assert!(!AlertStatus::parse("active").is_known());
        assert!(!AlertStatus::Unknown.is_known());
    }

    #[test]
    fn documented_values_round_trip() {
        for s in ["New", "Active", "Closed"] {
            assert_eq!(IncidentStatus::parse(s).as_str(), s);
            assert!(!matches!(
                IncidentStatus::parse(s),
                IncidentStatus::Other(_)
            ));
        }
        for s in ["New", "InProgress", "Resolved", "Dismissed", "Unknown"] {
            assert_eq!(AlertStatus::parse(s).as_str(), s);
            assert!(!matches!(AlertStatus::parse(s), AlertStatus::Other(_)));
        }
    }
}
