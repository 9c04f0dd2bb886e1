//! The snapshot: what the decision engine sees of one workspace at one instant.
//!
//! It is built from `SecurityIncident` and `SecurityAlert` rows by `observe` and read by
//! `decide`. Incidents or alerts whose rows could not be read are kept as such (with the
//! reason), so that the engine holds exactly the incidents they touch.

use chrono::{DateTime, Utc};

use super::{AlertStatus, IncidentStatus, Mark};

/// Alerts by `SystemAlertId`: the newest state, or why the alert's rows could not be read.
/// Hashed with FxHash: the ids come from Sentinel, not from an adversary, and SipHash was a
/// tenth of the engine's time on 100,000 incidents.
pub type AlertMap = rustc_hash::FxHashMap<String, Result<AlertState, String>>;

/// One workspace's incidents and alerts, as of the rows read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Incidents whose rows were read, in no particular order (the engine sorts).
    pub incidents: Vec<IncidentState>,
    /// Incidents whose own rows could not be read: they are held with the reason.
    pub unreadable_incidents: Vec<HeldInput>,
    /// The newest state of each alert by `SystemAlertId`, or why its rows could not be read.
    pub alerts: AlertMap,
    /// Rows that name no incident or alert at all (they cannot hold anything), for the report.
    pub warnings: Vec<String>,
    /// The service's clock when it answered the query, when the answer says.
    pub server_now: Option<DateTime<Utc>>,
}

/// An incident that cannot be decided because its input is unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInput {
    pub incident: String,
    pub incident_number: Option<i64>,
    pub reason: String,
}

/// The current state of one incident: its newest row plus what its history tells.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentState {
    /// `IncidentName`: the GUID that names the incident in the ARM API.
    pub name: String,
    pub number: i64,
    pub title: String,
    pub status: IncidentStatus,
    /// When the incident entered its current status: the `LastModifiedTime` of the oldest row
    /// of the newest unbroken run of rows with this status.
    pub status_since: DateTime<Utc>,
    /// `ModifiedBy` of that row: who made the change.
    pub status_set_by: String,
    pub created: DateTime<Utc>,
    /// `TimeGenerated` of the newest row.
    pub last_row_at: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub modified_by: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: String,
    /// The owner's object id, UPN, e-mail or name, whichever is set; `None` when unassigned.
    pub owner: Option<String>,
    /// `AlertIds` of the newest row (Sentinel's `SystemAlertId`s), without duplicates.
    pub alert_ids: Vec<String>,
    /// `AdditionalData.alertProductNames` of the newest row.
    pub product_names: Vec<String>,
    pub provider_name: String,
    /// Every mark this tool left on the incident, in its classification comment or comments.
    pub marks: Vec<ObservedMark>,
    /// Whether the rows carried a `Comments` column. Without it, marks in comments are unknown
    /// here and must be read from the comments API before acting.
    pub comments_known: bool,
}

/// A comment on an incident, as the `Comments` column or the comments API gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Comment {
    pub message: String,
    pub created: DateTime<Utc>,
}

/// A mark found on an incident, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedMark {
    pub mark: Mark,
    pub source: MarkSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkSource {
    /// In `ClassificationComment`; `current` when it is the newest row's.
    ClassificationComment { current: bool },
    /// In a comment created at this time.
    Comment { created: DateTime<Utc> },
}

/// The current state of one alert: its newest `SecurityAlert` row plus when its status
/// last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// `SystemAlertId`: Sentinel's id, the value in the incident's `AlertIds`.
    pub id: String,
    pub status: AlertStatus,
    /// When the alert entered its current status: the `TimeGenerated` of the oldest row of
    /// the newest unbroken run of rows with this status (re-ingested rows do not move it).
    pub changed_at: DateTime<Utc>,
    /// `TimeGenerated` of the newest row.
    pub last_row_at: DateTime<Utc>,
    /// When the alert last became finished: the start of the newest unbroken run of Resolved
    /// or Dismissed rows (a move from one to the other, such as the echo of a close, does not
    /// start a new run). `None` while the alert is not finished.
    pub finished_since: Option<DateTime<Utc>>,
    pub product_name: String,
    pub display_name: String,
    /// `AlertLink`: the link to the alert in its portal.
    pub link: String,
    /// Where the alert lives in Defender for Cloud, when the row tells.
    pub address: Option<AlertAddress>,
}

/// The coordinates of a Defender for Cloud alert in the `Microsoft.Security` API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertAddress {
    /// The DfC alert name (`VendorOriginalId`).
    pub name: String,
    pub subscription_id: String,
    pub resource_group: Option<String>,
    /// The DfC region (`ascLocation`).
    pub location: String,
}

impl AlertAddress {
    /// Reads the address from a DfC `AlertLink`, by key rather than by position (the blade
    /// segment varies): `…/alertId/{name}/subscriptionId/{sub}/resourceGroup/{rg}/…/location/{loc}`.
    pub fn from_alert_link(link: &str) -> Option<Self> {
        let parts: Vec<&str> = link.split(['/', '?', '#']).collect();
        let value_after = |key: &str| {
            parts
                .windows(2)
                .find(|w| w[0].eq_ignore_ascii_case(key))
                .map(|w| w[1])
                .filter(|v| !v.is_empty())
        };
        Some(Self {
            name: value_after("alertId")?.to_owned(),
            subscription_id: value_after("subscriptionId")?.to_owned(),
            resource_group: value_after("resourceGroup").map(str::to_owned),
            location: value_after("location")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_link_is_read_by_key() {
        let link = "https://portal.azure.com/#blade/Microsoft_Azure_Security_AzureDefenderForData/AlertBlade/alertId/2517228307705103557_15add4de-1111-2222-3333-444455556666/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope";
        let a = AlertAddress::from_alert_link(link).unwrap();
        assert_eq!(
            a.name,
            "2517228307705103557_15add4de-1111-2222-3333-444455556666"
        );
        assert_eq!(a.subscription_id, "00000000-0000-0000-0000-000000000002");
        assert_eq!(a.resource_group.as_deref(), Some("rg-app"));
        assert_eq!(a.location, "westeurope");
    }

    #[test]
    fn alert_link_without_location_has_no_address() {
        assert_eq!(
            AlertAddress::from_alert_link(
                "https://portal.azure.com/#blade/X/AlertBlade/alertId/a/subscriptionId/s"
            ),
            None
        );
        assert_eq!(AlertAddress::from_alert_link(""), None);
    }
}
