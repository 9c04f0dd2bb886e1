//! The Defender XDR model behind Microsoft Graph's security API: XDR incidents and alerts
//! (`/v1.0/security/incidents`, `/v1.0/security/alerts_v2`), their enums (CSDL names), the
//! application permissions that guard them, and the pure mappings between XDR's and Sentinel's
//! values (`shared/reference/graph-xdr.md`). How the XDR side stays in step with Sentinel
//! incidents of Defender-portal workspaces and with Defender for Cloud alerts is the
//! platform's ([`crate::platform::xdr`]).

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use crate::scenario::ScenarioError;
use crate::table::format_time;

/// Graph application permissions the security API knows (reference §2.7).
pub const PERMISSIONS: &[&str] = &[
    "SecurityIncident.Read.All",
    "SecurityIncident.ReadWrite.All",
    "SecurityAlert.Read.All",
    "SecurityAlert.ReadWrite.All",
];

/// Checks a principal's `graph_permissions` (exact names, as Entra's app roles).
pub fn check_permissions(perms: &[String], path: &str) -> Result<Vec<String>, ScenarioError> {
    for (i, p) in perms.iter().enumerate() {
        if !PERMISSIONS.contains(&p.as_str()) {
            return Err(ScenarioError::at(
                format!("{path}[{i}]"),
                format!(
                    "unknown Graph permission {p:?} (expected one of {})",
                    PERMISSIONS.join(", ")
                ),
            ));
        }
    }
    Ok(perms.to_vec())
}

/// The actor of XDR's own changes (roll-up of an incident from its alerts).
pub const XDR_ACTOR: &str = "Microsoft Defender XDR";

/// Where XDR incident ids start (the portal's ids are numbers; Sentinel shows them as
/// `ProviderIncidentId`).
const FIRST_ID: i64 = 10_001;

/// `microsoft.graph.security.incidentStatus` members a client may write.
pub const WRITABLE_INCIDENT_STATUSES: &[&str] = &["active", "inProgress", "resolved"];

/// `microsoft.graph.security.alertClassification` members (before `unknownFutureValue`).
pub const CLASSIFICATIONS: &[&str] = &[
    "unknown",
    "falsePositive",
    "truePositive",
    "informationalExpectedActivity",
];

/// `microsoft.graph.security.alertDetermination` members (CSDL names, before
/// `unknownFutureValue`).
pub const DETERMINATIONS: &[&str] = &[
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "notMalicious",
    "notEnoughDataToValidate",
    "confirmedActivity",
    "lineOfBusinessApplication",
];

/// The determinations valid with a classification (reference §3, Defender API's pair list
/// with Graph names); `unknown` goes with any classification.
pub fn determination_fits(classification: &str, determination: &str) -> bool {
    let allowed: &[&str] = match classification {
        "truePositive" => &[
            "multiStagedAttack",
            "maliciousUserActivity",
            "compromisedAccount",
            "malware",
            "phishing",
            "unwantedSoftware",
            "other",
            "apt",
            "securityPersonnel",
        ],
        "informationalExpectedActivity" => &[
            "securityTesting",
            "lineOfBusinessApplication",
            "confirmedActivity",
            "other",
        ],
        "falsePositive" => &["notMalicious", "notEnoughDataToValidate", "other"],
        _ => &[],
    };
    determination == "unknown" || allowed.contains(&determination)
}

/// Finds an enum member case-insensitively (the service tolerates PascalCase; reference §2.1)
/// and returns its CSDL spelling.
pub fn member(list: &[&'static str], value: &str) -> Option<&'static str> {
    list.iter().copied().find(|m| m.eq_ignore_ascii_case(value))
}

/// Sentinel status → Graph incident status (New↔active, Active↔inProgress, Closed↔resolved).
pub fn status_from_sentinel(s: &str) -> &'static str {
    match s {
        "Active" => "inProgress",
        "Closed" => "resolved",
        _ => "active",
    }
}

/// Graph incident status → Sentinel status.
pub fn status_to_sentinel(s: &str) -> &'static str {
    match s {
        "inProgress" => "Active",
        "resolved" => "Closed",
        _ => "New",
    }
}

/// Sentinel classification → Graph classification (reference §3).
pub fn classification_from_sentinel(c: Option<&str>) -> &'static str {
    match c {
        Some("TruePositive") => "truePositive",
        Some("BenignPositive") => "informationalExpectedActivity",
        Some("FalsePositive") => "falsePositive",
        _ => "unknown",
    }
}

/// Graph classification → Sentinel classification and reason (reference §3: the
/// round-trippable pairs); `unknown` is `Undetermined` on a closed incident, none otherwise.
pub fn classification_to_sentinel(c: &str, closed: bool) -> (Option<String>, Option<String>) {
    let (c, r) = match c {
        "truePositive" => ("TruePositive", Some("SuspiciousActivity")),
        "informationalExpectedActivity" => ("BenignPositive", Some("SuspiciousButExpected")),
        "falsePositive" => ("FalsePositive", Some("InaccurateData")),
        _ if closed => ("Undetermined", None),
        _ => return (None, None),
    };
    (Some(c.to_string()), r.map(str::to_string))
}

/// A comment on an XDR incident (`microsoft.graph.security.alertComment`).
#[derive(Debug, Clone)]
pub struct XdrComment {
    pub comment: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// An XDR alert: a DfC alert as Defender XDR shows it.
#[derive(Debug, Clone)]
pub struct XdrAlert {
    /// `dc` + the DfC alert's system id (the XDR id prefix of DfC alerts).
    pub id: String,
    /// The platform's alert.
    pub alert: usize,
    /// The XDR incident holding it.
    pub incident: Option<usize>,
    pub status: &'static str,
    pub classification: &'static str,
    pub determination: &'static str,
    pub created: DateTime<Utc>,
    pub last_update: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
}

/// An XDR incident, with or without a Sentinel incident it is kept in step with.
#[derive(Debug, Clone)]
pub struct XdrIncident {
    pub id: String,
    /// The Sentinel incident of a Defender-portal workspace showing the same incident.
    pub sentinel: Option<usize>,
    pub alerts: Vec<usize>,
    pub display_name: String,
    pub description: String,
    pub severity: String,
    pub status: &'static str,
    pub classification: &'static str,
    pub determination: &'static str,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    pub comments: Vec<XdrComment>,
    /// The Sentinel comments already copied here (only new comments sync).
    pub sentinel_comments: Vec<String>,
    pub created: DateTime<Utc>,
    pub last_update: DateTime<Utc>,
    pub last_modified_by: String,
}

/// The XDR side of the tenant.
#[derive(Debug, Clone, Default)]
pub struct Xdr {
    /// `defender_xdr`: every DfC alert is an XDR alert (otherwise only those of
    /// Defender-portal workspaces).
    pub enabled: bool,
    /// `xdr_incident_follows_alerts`.
    pub follows_alerts: bool,
    pub incidents: Vec<XdrIncident>,
    pub alerts: Vec<XdrAlert>,
    next_id: i64,
}

/// A Graph-side change to an incident (the body of a PATCH, checked).
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    pub status: Option<&'static str>,
    pub classification: Option<&'static str>,
    pub determination: Option<&'static str>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<String>>,
    pub custom_tags: Option<Vec<String>>,
}

impl Xdr {
    /// The XDR side of a scenario.
    pub fn new(enabled: bool, follows_alerts: bool) -> Xdr {
        Xdr {
            enabled,
            follows_alerts,
            incidents: Vec::new(),
            alerts: Vec::new(),
            next_id: FIRST_ID,
        }
    }

    /// A new incident id (tenant-wide).
    pub fn allocate_id(&mut self) -> String {
        if self.next_id < FIRST_ID {
            self.next_id = FIRST_ID;
        }
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    /// An incident by id.
    pub fn incident(&self, id: &str) -> Option<usize> {
        self.incidents.iter().position(|i| i.id == id)
    }

    /// An alert by id (case-insensitive).
    pub fn alert(&self, id: &str) -> Option<usize> {
        self.alerts
            .iter()
            .position(|a| a.id.eq_ignore_ascii_case(id))
    }

    /// The XDR alert showing a platform alert.
    pub fn of_platform_alert(&self, alert: usize) -> Option<usize> {
        self.alerts.iter().position(|a| a.alert == alert)
    }

    /// The XDR incident kept in step with a Sentinel incident.
    pub fn of_sentinel(&self, inc: usize) -> Option<usize> {
        self.incidents.iter().position(|i| i.sentinel == Some(inc))
    }
}

/// A severity as Graph writes it (`High` → `high`).
pub fn graph_severity(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A comment as Graph shows it.
pub fn comment_json(c: &XdrComment) -> Json {
    json!({
        "@odata.type": "microsoft.graph.security.alertComment",
        "comment": c.comment,
        "createdByDisplayName": c.by,
        "createdDateTime": format_time(c.at),
    })
}
