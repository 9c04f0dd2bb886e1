//! The Defender XDR model behind Microsoft Graph's security API: XDR incidents and alerts
//! (`/v1.0/security/incidents`, `/v1.0/security/alerts_v2`), their enums (CSDL names), the
//! application permissions that guard them, and the pure mappings between XDR's and Sentinel's
//! values (`shared/reference/graph-xdr.md`). How the XDR side stays in step with Sentinel
//! incidents of Defender-portal workspaces and with Defender for Cloud alerts is the
//! platform's ([`crate::platform::xdr`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};

use crate::scenario::ScenarioError;

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

/// `microsoft.graph.security.alertStatus` members a scenario may set on an alert.
pub const ALERT_STATUSES: &[&str] = &["new", "inProgress", "resolved"];

/// `microsoft.graph.security.serviceSource` members (CSDL order; those after
/// `unknownFutureValue` are evolvable: masked without `Prefer: include-unknown-enum-members`).
pub const SERVICE_SOURCES: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
    "microsoftSentinel",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftSecurityForAI",
];

/// `microsoft.graph.security.detectionSource` members (CSDL order, evolvable after
/// `unknownFutureValue`).
pub const DETECTION_SOURCES: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
    "microsoftDefenderForIoT",
    "microsoftDefenderForServers",
    "microsoftDefenderForStorage",
    "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers",
    "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault",
    "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement",
    "nrtAlerts",
    "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics",
    "builtInMl",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftDefenderForAIServices",
    "securityCopilot",
    "microsoftSentinel",
];

/// Is `member` of `list` an evolvable member (after `unknownFutureValue`)?
pub fn evolvable(list: &[&str], member: &str) -> bool {
    let cut = list.iter().position(|m| *m == "unknownFutureValue");
    let at = list.iter().position(|m| m.eq_ignore_ascii_case(member));
    matches!((cut, at), (Some(c), Some(a)) if a > c)
}

/// An enum member in PascalCase (`truePositive` → `TruePositive`), as Graph's published
/// examples write them.
pub fn pascal(member: &str) -> String {
    let mut c = member.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

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

/// An XDR alert: a DfC alert as Defender XDR shows it, or an alert of another product
/// (Defender for Endpoint, Office 365, …) that lives in XDR alone.
#[derive(Debug, Clone)]
pub struct XdrAlert {
    /// `dc` + the DfC alert's system id (the XDR id prefix of DfC alerts); for another
    /// product's alert, an id of the shape of Graph's examples (`da…_…`).
    pub id: String,
    /// Where the alert comes from.
    pub source: AlertSource,
    /// The XDR incident holding it.
    pub incident: Option<usize>,
    pub status: &'static str,
    pub classification: &'static str,
    pub determination: &'static str,
    pub created: DateTime<Utc>,
    pub last_update: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
}

impl XdrAlert {
    /// The platform's (DfC) alert behind it, if any.
    pub fn dfc_alert(&self) -> Option<usize> {
        match self.source {
            AlertSource::Dfc(a) => Some(a),
            AlertSource::Product(_) => None,
        }
    }
}

/// Where an XDR alert comes from.
#[derive(Debug, Clone)]
pub enum AlertSource {
    /// A DfC alert (the platform's alert index): its texts are the DfC alert's, and its
    /// status follows DfC's (and DfC's follows it).
    Dfc(usize),
    /// An alert of another product, raised in XDR alone (the `xdr_alert` event).
    Product(Box<ProductAlert>),
}

/// The texts of an XDR alert of another product than Defender for Cloud.
#[derive(Debug, Clone)]
pub struct ProductAlert {
    /// The scenario's handle.
    pub key: String,
    /// `serviceSource` (CSDL member, e.g. `microsoftDefenderForEndpoint`).
    pub service_source: &'static str,
    /// `detectionSource` (CSDL member, e.g. `antivirus`).
    pub detection_source: &'static str,
    pub product_name: String,
    pub provider_alert_id: String,
    pub title: String,
    pub description: String,
    /// Graph's spelling (`high`, `medium`, `low`, `informational`).
    pub severity: String,
    pub category: String,
    pub first_activity: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
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
    /// `resolvingComment`: written by a PATCH (kept when the incident is reopened).
    pub resolving_comment: Option<String>,
    /// The Sentinel comments already copied here (only new comments sync).
    pub sentinel_comments: Vec<String>,
    pub created: DateTime<Utc>,
    pub last_update: DateTime<Utc>,
    pub last_modified_by: String,
}

/// The tenant's Defender XDR settings (scenario top-level fields).
#[derive(Debug, Clone, Default)]
pub struct XdrSettings {
    /// `defender_xdr`.
    pub enabled: bool,
    /// `xdr_incident_follows_alerts`.
    pub follows_alerts: bool,
    /// `graph_example_shapes`: Graph answers in the shapes of Graph's published examples.
    pub example_shapes: bool,
    /// `xdr_stamp_lag`: how long after a Graph write's instant (a comment's
    /// `createdDateTime`, a PATCH) the incident's `lastUpdateDateTime` is stamped.
    pub stamp_lag: Duration,
    /// `resolving_comment_patch`: a PATCH may write `resolvingComment`.
    pub resolving_comment_patch: bool,
}

/// The default `xdr_stamp_lag` (a few milliseconds, never zero: the product must meet it).
pub const DEFAULT_STAMP_LAG_MS: i64 = 3;

/// The XDR side of the tenant.
#[derive(Debug, Clone, Default)]
pub struct Xdr {
    /// `defender_xdr`: every DfC alert is an XDR alert (otherwise only those of
    /// Defender-portal workspaces).
    pub enabled: bool,
    /// `xdr_incident_follows_alerts`.
    pub follows_alerts: bool,
    /// See [`XdrSettings`].
    pub example_shapes: bool,
    /// See [`XdrSettings`].
    pub stamp_lag: Duration,
    /// See [`XdrSettings`].
    pub resolving_comment_patch: bool,
    /// Add with [`Xdr::push_incident`] (it keeps the indexes).
    pub incidents: Vec<XdrIncident>,
    /// Add with [`Xdr::push_alert`] (it keeps the indexes).
    pub alerts: Vec<XdrAlert>,
    next_id: i64,
    incident_by_id: HashMap<String, usize>,
    alert_by_id: HashMap<String, usize>,
    alert_by_platform_alert: HashMap<usize, usize>,
    alert_by_key: HashMap<String, usize>,
    incident_by_sentinel: HashMap<usize, usize>,
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
    /// `Some(None)` clears it.
    pub resolving_comment: Option<Option<String>>,
}

impl Xdr {
    /// The XDR side of a scenario.
    pub fn new(settings: XdrSettings) -> Xdr {
        Xdr {
            enabled: settings.enabled,
            follows_alerts: settings.follows_alerts,
            example_shapes: settings.example_shapes,
            stamp_lag: settings.stamp_lag,
            resolving_comment_patch: settings.resolving_comment_patch,
            next_id: FIRST_ID,
            ..Xdr::default()
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

    /// Adds an incident (indexed by id and by its Sentinel twin); returns its index.
    pub fn push_incident(&mut self, incident: XdrIncident) -> usize {
        let idx = self.incidents.len();
        self.incident_by_id.insert(incident.id.clone(), idx);
        if let Some(s) = incident.sentinel {
            self.incident_by_sentinel.insert(s, idx);
        }
        self.incidents.push(incident);
        idx
    }

    /// Adds an alert (indexed by id, by its platform alert or by its handle); returns its
    /// index.
    pub fn push_alert(&mut self, alert: XdrAlert) -> usize {
        let idx = self.alerts.len();
        self.alert_by_id.insert(alert.id.to_ascii_lowercase(), idx);
        match &alert.source {
            AlertSource::Dfc(a) => {
                self.alert_by_platform_alert.insert(*a, idx);
            }
            AlertSource::Product(p) => {
                self.alert_by_key.insert(p.key.clone(), idx);
            }
        }
        self.alerts.push(alert);
        idx
    }

    /// An incident by id.
    pub fn incident(&self, id: &str) -> Option<usize> {
        self.incident_by_id.get(id).copied()
    }

    /// An alert by id (case-insensitive).
    pub fn alert(&self, id: &str) -> Option<usize> {
        self.alert_by_id.get(&id.to_ascii_lowercase()).copied()
    }

    /// The XDR alert showing a platform alert.
    pub fn of_platform_alert(&self, alert: usize) -> Option<usize> {
        self.alert_by_platform_alert.get(&alert).copied()
    }

    /// An alert of another product by its scenario handle.
    pub fn product_alert_by_key(&self, key: &str) -> Option<usize> {
        self.alert_by_key.get(key).copied()
    }

    /// The XDR incident kept in step with a Sentinel incident.
    pub fn of_sentinel(&self, inc: usize) -> Option<usize> {
        self.incident_by_sentinel.get(&inc).copied()
    }

    /// Moves an alert to another incident (or none), keeping both incidents' alert lists.
    pub fn attach(&mut self, alert: usize, incident: Option<usize>) {
        if let Some(old) = self.alerts[alert].incident
            && Some(old) != incident
        {
            self.incidents[old].alerts.retain(|&a| a != alert);
        }
        self.alerts[alert].incident = incident;
        if let Some(new) = incident
            && !self.incidents[new].alerts.contains(&alert)
        {
            self.incidents[new].alerts.push(alert);
        }
    }
}

/// A severity as Graph writes it (`High` → `high`).
pub fn graph_severity(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A comment as Graph shows it: the CSDL's `createdByDisplayName` / `createdDateTime`, or
/// (`example_shapes`) the keys of Graph's published list example, `createdBy` / `createdTime`.
pub fn comment_json(c: &XdrComment, example_shapes: bool) -> Json {
    let (by, at) = if example_shapes {
        ("createdBy", "createdTime")
    } else {
        ("createdByDisplayName", "createdDateTime")
    };
    let mut doc = serde_json::Map::new();
    doc.insert(
        "@odata.type".into(),
        json!("microsoft.graph.security.alertComment"),
    );
    doc.insert("comment".into(), json!(c.comment));
    doc.insert(by.into(), json!(c.by));
    doc.insert(at.into(), json!(graph_time(c.at)));
    Json::Object(doc)
}

/// A time as Graph writes it: RFC 3339, UTC, always 7 fractional digits
/// (`2021-08-13T08:43:35.5533333Z`, Graph's published examples).
pub fn graph_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}
