//! The platform model: Defender for Cloud alerts, Sentinel incidents and the two append-only
//! tables, with the behaviour table of `shared/design/semantics.md`. Pure and synchronous: every
//! change is a function of the state, the time and the caller; the HTTP layer only translates.
//! This module holds the model's types and its lookups; the behaviour lives in its children,
//! one concept each:
//!
//! - [`build`]: the platform a scenario describes (its fields checked, its events applied);
//! - [`events`]: applying a scenario (or control API) event;
//! - [`dfc`]: Defender for Cloud raising alerts and changing their status;
//! - [`sentinel`]: Sentinel incidents and comments (writes, validation, the echo to DfC);
//! - [`rows`]: the append-only tables (the rows each change pushes, imported rows, and the
//!   model brought in line with imported rows);
//! - [`xdr`]: the Defender XDR side of the platform (XDR's own types are in [`crate::xdr`]);
//! - [`state`]: the `GET /_emulator/state` document.
//!
//! | initiator | action | DfC alert | `SecurityAlert.Status` | `SecurityIncident.Status` |
//! |---|---|---|---|---|
//! | DfC | new alert | Active | New | New |
//! | DfC | status change | new status | new status | unchanged |
//! | Sentinel | set incident Active | unchanged | unchanged | Active |
//! | Sentinel | close incident | Resolved | Resolved | Closed |

pub mod build;
pub mod dfc;
pub mod events;
pub mod rows;
pub mod sentinel;
pub mod state;
pub mod xdr;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};

use crate::ids::IdGen;
use crate::rbac::{self, RoleDef};
use crate::scenario::{Limits, PrincipalKind};
use crate::table::WorkspaceTables;

pub use dfc::NewAlertParams;
pub use sentinel::{empty_owner, incident_url};

/// The product name DfC alerts carry in Sentinel.
pub const DFC_PRODUCT: &str = "Azure Security Center";

/// `ModifiedBy` of an incident created by the analytics rule from an alert.
pub const CREATED_FROM_ALERT: &str = "Incident created from alert";

/// A workspace and its settings.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub customer_id: String,
    pub location: String,
    pub incident_creation: bool,
    pub bidirectional_sync: bool,
    pub ingestion_delay: Duration,
    pub echo_keeps_dismissed: bool,
    pub defender_portal: bool,
    pub reingest_alerts: bool,
    /// The data collection rule feeding a custom table of the workspace (Logs Ingestion).
    pub dcr: Option<crate::ingest::Dcr>,
    pub next_incident_number: i64,
    pub created: DateTime<Utc>,
}

impl Workspace {
    /// The workspace's ARM id.
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// A role assignment of a principal.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub role: &'static RoleDef,
    pub scope: String,
}

/// A principal of the tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub client_id: String,
    pub secret: Option<String>,
    pub object_id: String,
    pub resource_id: Option<String>,
    pub roles: Vec<Assignment>,
    pub propagation_delay: Duration,
    pub modified_by: Option<String>,
    pub display_name: Option<String>,
    /// See `PrincipalSpec::federated_subject`.
    pub federated_subject: Option<String>,
    /// Microsoft Graph application permissions (`roles` of its Graph tokens).
    pub graph_permissions: Vec<String>,
}

impl Principal {
    /// The value written to `ModifiedBy` for this principal's changes: a user's UPN, an
    /// application's or managed identity's name (or the scenario's `modified_by`).
    pub fn modified_by(&self) -> String {
        self.modified_by
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }

    /// The display name (`assignedTo`, comment author `name`).
    pub fn display(&self) -> String {
        if let Some(d) = &self.display_name {
            return d.clone();
        }
        if self.kind == PrincipalKind::User {
            let local = self.name.split('@').next().unwrap_or(&self.name);
            local
                .split(['.', '_', '-'])
                .filter(|s| !s.is_empty())
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                        None => String::new(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            self.name.clone()
        }
    }
}

/// Who makes a change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `ModifiedBy`.
    pub label: String,
    pub object_id: Option<String>,
    pub upn: Option<String>,
    pub name: String,
}

impl Actor {
    /// The platform itself (or an unnamed person).
    pub fn system(label: &str) -> Actor {
        Actor {
            label: label.to_string(),
            object_id: None,
            upn: None,
            name: label.to_string(),
        }
    }

    /// A principal of the scenario.
    pub fn of(p: &Principal) -> Actor {
        let user = p.kind == PrincipalKind::User;
        Actor {
            label: p.modified_by(),
            object_id: Some(p.object_id.clone()),
            upn: user.then(|| p.name.clone()),
            name: p.display(),
        }
    }

    /// The `ClientInfo` of a comment author.
    pub fn client_info(&self) -> Json {
        json!({
            "objectId": self.object_id,
            "email": self.upn,
            "name": self.name,
            "userPrincipalName": self.upn,
        })
    }
}

/// The status of a DfC alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfcStatus {
    Active,
    InProgress,
    Dismissed,
    Resolved,
}

impl DfcStatus {
    /// Parses a DfC status (case-insensitive).
    pub fn parse(s: &str) -> Option<DfcStatus> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(DfcStatus::Active),
            "inprogress" => Some(DfcStatus::InProgress),
            "dismissed" => Some(DfcStatus::Dismissed),
            "resolved" => Some(DfcStatus::Resolved),
            _ => None,
        }
    }

    /// The REST name.
    pub fn as_str(self) -> &'static str {
        match self {
            DfcStatus::Active => "Active",
            DfcStatus::InProgress => "InProgress",
            DfcStatus::Dismissed => "Dismissed",
            DfcStatus::Resolved => "Resolved",
        }
    }

    /// The `SecurityAlert.Status` it shows as (DfC Active is New in the table).
    pub fn table_status(self) -> &'static str {
        match self {
            DfcStatus::Active => "New",
            other => other.as_str(),
        }
    }

    /// From a `SecurityAlert.Status`.
    pub fn from_table(s: &str) -> Option<DfcStatus> {
        if s == "New" {
            Some(DfcStatus::Active)
        } else {
            Self::parse(s)
        }
    }
}

/// Where a DfC alert lives in DfC.
#[derive(Debug, Clone)]
pub struct DfcInfo {
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
}

/// An alert: a DfC alert seen through Sentinel (or another product's alert, imported).
#[derive(Debug, Clone)]
pub struct Alert {
    /// The workspace whose tables hold the alert's rows (none: a tenant without Sentinel,
    /// where the alert reaches Defender XDR alone).
    pub workspace: Option<usize>,
    /// The scenario's handle.
    pub key: Option<String>,
    pub system_alert_id: String,
    pub dfc: Option<DfcInfo>,
    /// The DfC status (for DfC alerts) or the one the table shows, mapped.
    pub status: DfcStatus,
    /// The table's status text of the newest row (keeps `Unknown` and other values as they are).
    pub table_status: String,
    pub display_name: String,
    pub alert_type: String,
    pub severity: String,
    pub description: String,
    pub product_name: String,
    pub provider_name: String,
    pub product_component: String,
    pub vendor_name: String,
    pub vendor_original_id: String,
    pub alert_link: String,
    pub resource_id: String,
    pub compromised_entity: String,
    pub intent: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub processing_end: DateTime<Utc>,
    pub last_row: DateTime<Utc>,
}

/// An incident comment.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: String,
    pub message: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub author: Json,
    pub etag: String,
}

/// An incident.
#[derive(Debug, Clone)]
pub struct Incident {
    pub workspace: usize,
    pub name: String,
    pub number: i64,
    pub title: String,
    pub description: String,
    pub severity: String,
    pub status: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    pub owner: Json,
    pub labels: Vec<String>,
    pub alert_ids: Vec<String>,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub first_modified: DateTime<Utc>,
    pub first_activity: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
    pub closed_time: Option<DateTime<Utc>>,
    pub etag: String,
    pub comments: Vec<Comment>,
    pub provider_name: String,
    pub provider_incident_id: String,
    pub modified_by: String,
    pub related_rule_ids: Vec<String>,
    pub tactics: Vec<String>,
    pub product_names: Vec<String>,
}

/// An error of an API call on the model: HTTP status, ARM error code, message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
}

/// The writable properties of an incident, as a PUT sends them.
#[derive(Debug, Clone, Default)]
pub struct IncidentWrite {
    pub etag: Option<String>,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub description: Option<String>,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    pub owner: Option<Json>,
    pub labels: Vec<String>,
    pub first_activity: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
}

/// The whole platform.
#[derive(Debug, Clone)]
pub struct Platform {
    pub tenant_id: String,
    pub workspaces: Vec<Workspace>,
    pub principals: Vec<Principal>,
    pub alerts: Vec<Alert>,
    pub incidents: Vec<Incident>,
    pub tables: Vec<WorkspaceTables>,
    pub limits: Limits,
    pub ids: IdGen,
    /// The scenario's `now`: the instant the emulator starts at.
    pub start: DateTime<Utc>,
    pub frozen_clock: bool,
    /// Bumped on every change of the tables (query caches key on it).
    pub version: u64,
    /// The Defender XDR side (Microsoft Graph's incidents and alerts_v2).
    pub xdr: crate::xdr::Xdr,
    /// Azure Storage accounts (Blob leases).
    pub storage: crate::blob::BlobStore,
    /// The Kubernetes API server's Leases.
    pub kube: crate::kube::KubeApi,
    alert_by_key: HashMap<String, usize>,
    alert_by_sysid: HashMap<String, usize>,
    alert_by_dfc_name: HashMap<String, usize>,
    incident_by_name: HashMap<String, usize>,
    /// Each workspace's incidents in incident-number order (ARM list pages seek in it).
    incidents_by_number: Vec<Vec<usize>>,
    /// The incidents that hold (or once held) an alert, by lower-case `SystemAlertId`; a
    /// lookup checks the incident still holds it.
    incidents_by_alert: HashMap<String, Vec<usize>>,
}

fn guid_like(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl Platform {
    // ---------------------------------------------------------------- lookups

    /// A workspace by name (case-insensitive).
    pub fn workspace_by_name(&self, name: &str) -> Option<usize> {
        self.workspaces
            .iter()
            .position(|w| w.name.eq_ignore_ascii_case(name))
    }

    /// A workspace by its ARM coordinates (case-insensitive).
    pub fn workspace_at(&self, sub: &str, rg: &str, name: &str) -> Option<usize> {
        self.workspaces.iter().position(|w| {
            w.subscription_id.eq_ignore_ascii_case(sub)
                && w.resource_group.eq_ignore_ascii_case(rg)
                && w.name.eq_ignore_ascii_case(name)
        })
    }

    /// A workspace by its customer id.
    pub fn workspace_by_customer_id(&self, id: &str) -> Option<usize> {
        self.workspaces
            .iter()
            .position(|w| w.customer_id.eq_ignore_ascii_case(id))
    }

    /// A principal by name (case-insensitive) or object id.
    pub fn principal(&self, name_or_oid: &str) -> Option<usize> {
        self.principals.iter().position(|p| {
            p.name.eq_ignore_ascii_case(name_or_oid)
                || p.object_id.eq_ignore_ascii_case(name_or_oid)
        })
    }

    /// An incident by name in a workspace.
    pub fn incident_in(&self, ws: usize, name: &str) -> Option<usize> {
        self.incident_by_name
            .get(&name.to_ascii_lowercase())
            .copied()
            .filter(|&i| self.incidents[i].workspace == ws)
    }

    /// An alert by its scenario handle.
    pub fn alert_by_key(&self, key: &str) -> Option<usize> {
        self.alert_by_key.get(key).copied()
    }

    /// An alert by `SystemAlertId`.
    pub fn alert_by_system_id(&self, id: &str) -> Option<usize> {
        self.alert_by_sysid.get(&id.to_ascii_lowercase()).copied()
    }

    /// A DfC alert by its name.
    pub fn alert_by_dfc_name(&self, name: &str) -> Option<usize> {
        self.alert_by_dfc_name
            .get(&name.to_ascii_lowercase())
            .copied()
    }

    /// The incidents an alert belongs to, in creation order.
    pub fn incidents_of_alert(&self, alert: usize) -> Vec<usize> {
        let id = &self.alerts[alert].system_alert_id;
        let Some(candidates) = self.incidents_by_alert.get(&id.to_ascii_lowercase()) else {
            return Vec::new();
        };
        let mut found: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&n| {
                self.incidents[n]
                    .alert_ids
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(id))
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// A workspace's incidents in incident-number order.
    pub fn workspace_incidents(&self, ws: usize) -> &[usize] {
        self.incidents_by_number
            .get(ws)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Indexes incident `idx` by its number (call after adding it; O(1) for the usual
    /// increasing numbers).
    fn index_number(&mut self, idx: usize) {
        let (ws, n) = (self.incidents[idx].workspace, self.incidents[idx].number);
        let incidents = &self.incidents;
        let list = &mut self.incidents_by_number[ws];
        let at = list.partition_point(|&i| incidents[i].number <= n);
        list.insert(at, idx);
    }

    /// Takes incident `idx` out of the number index (before its number changes).
    fn unindex_number(&mut self, idx: usize) {
        let ws = self.incidents[idx].workspace;
        self.incidents_by_number[ws].retain(|&i| i != idx);
    }

    /// Records that incident `inc` holds the alerts of its `alert_ids` (call after adding).
    fn index_alerts_of(&mut self, inc: usize) {
        for id in &self.incidents[inc].alert_ids {
            let list = self
                .incidents_by_alert
                .entry(id.to_ascii_lowercase())
                .or_default();
            if !list.contains(&inc) {
                list.push(inc);
            }
        }
    }

    /// Resolves an incident reference of an event: an alert handle, a number or a GUID name.
    pub fn resolve_incident(&self, r: &Json) -> Result<usize, String> {
        match r {
            Json::Number(n) => {
                let n = n.as_i64().ok_or("an incident number is an integer")?;
                let found: Vec<usize> = (0..self.incidents.len())
                    .filter(|&i| self.incidents[i].number == n)
                    .collect();
                match found.as_slice() {
                    [i] => Ok(*i),
                    [] => Err(format!("no incident number {n}")),
                    _ => Err(format!(
                        "incident number {n} is ambiguous (several workspaces)"
                    )),
                }
            }
            Json::String(s) => {
                if let Some(&i) = self.incident_by_name.get(&s.to_ascii_lowercase()) {
                    return Ok(i);
                }
                if let Some(a) = self.alert_by_key(s) {
                    return self
                        .incidents_of_alert(a)
                        .first()
                        .copied()
                        .ok_or_else(|| format!("alert {s:?} has no incident"));
                }
                if let Ok(n) = s.parse::<i64>() {
                    return self.resolve_incident(&Json::from(n));
                }
                Err(format!(
                    "no incident {s:?} (an alert handle, a number or a GUID)"
                ))
            }
            _ => Err("an incident is named by an alert handle, a number or a GUID".into()),
        }
    }

    /// Do the principal's assignments (effective at `now`) grant `action` on `resource`?
    pub fn authorized(
        &self,
        principal: usize,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let p = &self.principals[principal];
        if now < self.start + p.propagation_delay {
            return false;
        }
        p.roles
            .iter()
            .any(|a| rbac::scope_covers(&a.scope, resource) && rbac::role_grants(a.role, action))
    }

    /// Do the principal's assignments (effective at `now`) grant the data action `action` on
    /// `resource` (a role's `dataActions`: Storage blobs, Logs Ingestion)?
    pub fn authorized_data(
        &self,
        principal: usize,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let p = &self.principals[principal];
        if now < self.start + p.propagation_delay {
            return false;
        }
        p.roles.iter().any(|a| {
            rbac::scope_covers(&a.scope, resource) && rbac::role_grants_data(a.role, action)
        })
    }

    // ---------------------------------------------------------------- events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;
    use crate::table::TableKind;

    fn platform() -> Platform {
        let text = r#"{"now": "2026-11-27T12:00:00Z", "tenant_id": "72f988bf-0000-0000-0000-000000000001",
            "workspaces": [{"name": "w", "subscription_id": "00000000-0000-0000-0000-000000000001",
                "resource_group": "rg", "customer_id": "11111111-2222-3333-4444-555555555555"}],
            "principals": [{"name": "analyst@contoso.com", "kind": "user"}],
            "events": [{"at": "-1h", "do": "new_alert", "workspace": "w", "alert": "A",
                "subscription_id": "00000000-0000-0000-0000-000000000002"}]}"#;
        Scenario::from_json_str(text).unwrap().platform().clone()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn statuses(p: &Platform, kind: TableKind) -> Vec<String> {
        p.tables[0]
            .rows(kind)
            .iter()
            .map(|r| {
                r[kind.col("Status").unwrap()]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn behaviour_table_at_the_model() {
        let mut p = platform();
        assert_eq!(p.alerts[0].status, DfcStatus::Active);
        assert_eq!(statuses(&p, TableKind::SecurityAlert), ["New"]);
        assert_eq!(statuses(&p, TableKind::SecurityIncident), ["New"]);
        // DfC status changes: alert rows only.
        for s in [
            DfcStatus::InProgress,
            DfcStatus::Dismissed,
            DfcStatus::Resolved,
        ] {
            assert!(p.set_alert_status(0, s, now()));
        }
        assert!(
            !p.set_alert_status(0, DfcStatus::Resolved, now()),
            "no change, no row"
        );
        assert_eq!(
            statuses(&p, TableKind::SecurityAlert),
            ["New", "InProgress", "Dismissed", "Resolved"]
        );
        assert_eq!(statuses(&p, TableKind::SecurityIncident), ["New"]);
        // Sentinel: Active, then Closed (which resolves the alert again: a new row).
        let actor = Actor::of(&p.principals[0]);
        let mut w = IncidentWrite {
            etag: Some(p.incidents[0].etag.clone()),
            title: "t".into(),
            severity: "High".into(),
            status: "Active".into(),
            ..Default::default()
        };
        let name = p.incidents[0].name.clone();
        p.put_incident(0, &name, w.clone(), &actor, now()).unwrap();
        assert_eq!(statuses(&p, TableKind::SecurityAlert).len(), 4);
        let stale = w.etag.clone();
        w.etag = Some(p.incidents[0].etag.clone());
        w.status = "Closed".into();
        w.classification = Some("TruePositive".into());
        w.classification_reason = Some("SuspiciousActivity".into());
        p.put_incident(0, &name, w.clone(), &actor, now()).unwrap();
        assert_eq!(
            statuses(&p, TableKind::SecurityIncident),
            ["New", "Active", "Closed"]
        );
        assert_eq!(
            statuses(&p, TableKind::SecurityAlert).last().unwrap(),
            "Resolved"
        );
        assert_eq!(statuses(&p, TableKind::SecurityAlert).len(), 5);
        // A stale etag is a conflict.
        w.etag = stale;
        let e = p.put_incident(0, &name, w, &actor, now()).unwrap_err();
        assert_eq!(e.status, 409);
        // Comments are idempotent by id.
        let (_, created) = p.put_comment(0, "c1", "hello", &actor, now());
        let (_, again) = p.put_comment(0, "c1", "hello", &actor, now());
        assert!(created && !again);
        assert_eq!(p.incidents[0].comments.len(), 1);
    }
}
