//! The platform model: Defender for Cloud alerts, Sentinel incidents and the two append-only
//! tables, with the behaviour table of `shared/design/semantics.md`. Pure and synchronous: every
//! change is a function of the state, the time and the caller; the HTTP layer only translates.
//!
//! | initiator | action | DfC alert | `SecurityAlert.Status` | `SecurityIncident.Status` |
//! |---|---|---|---|---|
//! | DfC | new alert | Active | New | New |
//! | DfC | status change | new status | new status | unchanged |
//! | Sentinel | set incident Active | unchanged | unchanged | Active |
//! | Sentinel | close incident | Resolved | Resolved | Closed |

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};

use crate::ids::IdGen;
use crate::rbac::{self, RoleDef};
use crate::scenario::{
    Event, EventSpec, ImportRows, Limits, PrincipalKind, ScenarioError, ScenarioSpec,
    import_columns, resolve_time,
};
use crate::table::{Cell, Row, TableKind, WorkspaceTables, cell_time, string, time};

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
    alert_by_key: HashMap<String, usize>,
    alert_by_sysid: HashMap<String, usize>,
    alert_by_dfc_name: HashMap<String, usize>,
    incident_by_name: HashMap<String, usize>,
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
    /// Builds the platform a scenario describes (applying its events in order).
    pub fn from_spec(spec: &ScenarioSpec) -> Result<Platform, ScenarioError> {
        let mut platform = Self::without_events(spec)?;
        let now = platform.start;
        for ev in &spec.events {
            platform.apply(ev, now)?;
        }
        Ok(platform)
    }

    /// The platform of a scenario's fields other than its events (checked as `from_spec`
    /// checks them), before any event: apply the events with `apply(ev, platform.start)`.
    pub(crate) fn without_events(spec: &ScenarioSpec) -> Result<Platform, ScenarioError> {
        let now = DateTime::parse_from_rfc3339(&spec.now)
            .map_err(|e| ScenarioError::at("now", format!("bad time {:?}: {e}", spec.now)))?
            .with_timezone(&Utc);
        if !guid_like(&spec.tenant_id) {
            return Err(ScenarioError::at("tenant_id", "expected a GUID"));
        }
        let seed = spec.seed.clone().unwrap_or_else(|| spec.tenant_id.clone());
        let mut ids = IdGen::from_seed(seed.as_bytes());
        let frozen_clock = match spec.clock.as_deref() {
            None | Some("running") => false,
            Some("frozen") => true,
            Some(other) => {
                return Err(ScenarioError::at(
                    "clock",
                    format!("unknown clock {other:?} (expected \"running\" or \"frozen\")"),
                ));
            }
        };
        let mut workspaces = Vec::new();
        for (i, w) in spec.workspaces.iter().enumerate() {
            let p = |f: &str| format!("workspaces[{i}].{f}");
            if !guid_like(&w.customer_id) {
                return Err(ScenarioError::at(p("customer_id"), "expected a GUID"));
            }
            if !guid_like(&w.subscription_id) {
                return Err(ScenarioError::at(p("subscription_id"), "expected a GUID"));
            }
            if w.name.is_empty() || w.resource_group.is_empty() {
                return Err(ScenarioError::at(p("name"), "empty name or resource group"));
            }
            if workspaces.iter().any(|x: &Workspace| {
                x.name.eq_ignore_ascii_case(&w.name) || x.customer_id == w.customer_id
            }) {
                return Err(ScenarioError::at(
                    p("name"),
                    "duplicate workspace name or customer_id",
                ));
            }
            let delay = match &w.ingestion_delay {
                None => Duration::zero(),
                Some(d) => crate::duration::parse(d)
                    .ok()
                    .filter(|d| *d >= Duration::zero())
                    .ok_or_else(|| {
                        ScenarioError::at(p("ingestion_delay"), format!("bad duration {d:?}"))
                    })?,
            };
            workspaces.push(Workspace {
                name: w.name.clone(),
                subscription_id: w.subscription_id.clone(),
                resource_group: w.resource_group.clone(),
                customer_id: w.customer_id.clone(),
                location: w.location.clone(),
                incident_creation: w.incident_creation,
                bidirectional_sync: w.bidirectional_sync,
                ingestion_delay: delay,
                echo_keeps_dismissed: w.echo_keeps_dismissed,
                defender_portal: w.defender_portal,
                reingest_alerts: w.reingest_alerts,
                next_incident_number: 1,
                created: now - Duration::days(365),
            });
        }
        let mut principals = Vec::new();
        for (i, p) in spec.principals.iter().enumerate() {
            let path = |f: &str| format!("principals[{i}].{f}");
            if principals
                .iter()
                .any(|x: &Principal| x.name.eq_ignore_ascii_case(&p.name))
            {
                return Err(ScenarioError::at(path("name"), "duplicate principal name"));
            }
            for (f, v) in [("client_id", &p.client_id), ("object_id", &p.object_id)] {
                if let Some(v) = v
                    && !guid_like(v)
                {
                    return Err(ScenarioError::at(path(f), "expected a GUID"));
                }
            }
            if p.kind == PrincipalKind::ServicePrincipal && p.client_id.is_none() {
                return Err(ScenarioError::at(
                    path("client_id"),
                    "a service principal needs a client_id",
                ));
            }
            let mut roles = Vec::new();
            for (j, r) in p.roles.iter().enumerate() {
                let role = rbac::find_role(&r.role).ok_or_else(|| {
                    ScenarioError::at(
                        format!("principals[{i}].roles[{j}].role"),
                        format!("unknown role {:?}", r.role),
                    )
                })?;
                if !rbac::valid_scope(&r.scope) {
                    return Err(ScenarioError::at(
                        format!("principals[{i}].roles[{j}].scope"),
                        format!("bad scope {:?}: expected /subscriptions/…", r.scope),
                    ));
                }
                roles.push(Assignment {
                    role,
                    scope: r.scope.clone(),
                });
            }
            let propagation_delay = match &p.propagation_delay {
                None => Duration::zero(),
                Some(d) => crate::duration::parse(d)
                    .ok()
                    .filter(|d| *d >= Duration::zero())
                    .ok_or_else(|| {
                        ScenarioError::at(path("propagation_delay"), format!("bad duration {d:?}"))
                    })?,
            };
            principals.push(Principal {
                name: p.name.clone(),
                kind: p.kind,
                client_id: p.client_id.clone().unwrap_or_else(|| ids.guid()),
                secret: p.secret.clone(),
                object_id: p.object_id.clone().unwrap_or_else(|| ids.guid()),
                resource_id: p.resource_id.clone(),
                roles,
                propagation_delay,
                modified_by: p.modified_by.clone(),
                federated_subject: p.federated_subject.clone(),
                display_name: p.display_name.clone(),
                graph_permissions: crate::xdr::check_permissions(
                    &p.graph_permissions,
                    &path("graph_permissions"),
                )?,
            });
        }
        let tables = vec![WorkspaceTables::default(); workspaces.len()];
        Ok(Platform {
            tenant_id: spec.tenant_id.clone(),
            workspaces,
            principals,
            alerts: Vec::new(),
            incidents: Vec::new(),
            tables,
            limits: spec.limits.clone(),
            ids,
            start: now,
            frozen_clock,
            version: 0,
            xdr: crate::xdr::Xdr::new(spec.defender_xdr, spec.xdr_incident_follows_alerts),
            alert_by_key: HashMap::new(),
            alert_by_sysid: HashMap::new(),
            alert_by_dfc_name: HashMap::new(),
            incident_by_name: HashMap::new(),
            incidents_by_alert: HashMap::new(),
        })
    }

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

    // ---------------------------------------------------------------- events

    fn actor_for(
        &self,
        by: &Option<String>,
        path: &str,
        default: &str,
    ) -> Result<Actor, ScenarioError> {
        match by {
            None => Ok(Actor::system(default)),
            Some(name) => self
                .principal(name)
                .map(|p| Actor::of(&self.principals[p]))
                .ok_or_else(|| {
                    ScenarioError::at(format!("{path}.by"), format!("no principal {name:?}"))
                }),
        }
    }

    /// Applies one scenario (or control API) event; `now` is the emulator's clock.
    pub fn apply(&mut self, ev: &EventSpec, now: DateTime<Utc>) -> Result<(), ScenarioError> {
        let at = match &ev.at {
            None => now,
            Some(t) => resolve_time(t, now).ok_or_else(|| {
                ScenarioError::at(format!("{}.at", ev.path), format!("bad time {t:?}"))
            })?,
        };
        let path = ev.path.as_str();
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        match &ev.event {
            Event::NewAlert(a) => {
                let ws = match &a.workspace {
                    Some(name) => Some(
                        self.workspace_by_name(name)
                            .ok_or_else(|| err("workspace", format!("no workspace {name:?}")))?,
                    ),
                    None if self.xdr.enabled => None,
                    None => {
                        return Err(err(
                            "workspace",
                            "missing field `workspace` (optional only with defender_xdr)".into(),
                        ));
                    }
                };
                if self.alert_by_key.contains_key(&a.alert) {
                    return Err(err("alert", format!("alert {:?} already exists", a.alert)));
                }
                if !guid_like(&a.subscription_id) {
                    return Err(err("subscription_id", "expected a GUID".into()));
                }
                if let Some(s) = &a.severity
                    && !["High", "Medium", "Low", "Informational"].contains(&s.as_str())
                {
                    return Err(err("severity", format!("unknown severity {s:?}")));
                }
                let spec = NewAlertParams {
                    key: Some(a.alert.clone()),
                    subscription_id: a.subscription_id.clone(),
                    resource_group: a.resource_group.clone(),
                    location: a.location.clone(),
                    display_name: a.display_name.clone(),
                    severity: a.severity.clone(),
                    alert_type: a.alert_type.clone(),
                    description: a.description.clone(),
                    product: a.product.clone(),
                    resource_id: a.resource_id.clone(),
                    compromised_entity: a.compromised_entity.clone(),
                };
                self.new_alert(ws, spec, a.incident != Some(false), at);
            }
            Event::AlertStatus(s) => {
                let alert = self
                    .alert_by_key(&s.alert)
                    .ok_or_else(|| err("alert", format!("no alert {:?}", s.alert)))?;
                let status = DfcStatus::parse(&s.status).ok_or_else(|| {
                    err(
                        "status",
                        format!(
                            "unknown status {:?} (Active, InProgress, Dismissed, Resolved)",
                            s.status
                        ),
                    )
                })?;
                self.actor_for(&s.by, path, "Microsoft Defender for Cloud")?;
                self.set_alert_status(alert, status, at);
            }
            Event::IncidentStatus(s) => {
                let inc = self
                    .resolve_incident(&s.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&s.by, path, "Microsoft Sentinel")?;
                let cur = &self.incidents[inc];
                let w = IncidentWrite {
                    etag: Some(cur.etag.clone()),
                    title: cur.title.clone(),
                    severity: cur.severity.clone(),
                    status: s.status.clone(),
                    description: Some(cur.description.clone()),
                    classification: s.classification.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification.clone()
                        }
                    }),
                    classification_reason: s.classification_reason.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification_reason.clone()
                        }
                    }),
                    classification_comment: s.classification_comment.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification_comment.clone()
                        }
                    }),
                    owner: Some(cur.owner.clone()),
                    labels: cur.labels.clone(),
                    first_activity: cur.first_activity,
                    last_activity: cur.last_activity,
                };
                let ws = cur.workspace;
                let name = cur.name.clone();
                self.put_incident(ws, &name, w, &actor, at)
                    .map_err(|e| err("status", e.message))?;
            }
            Event::IncidentOwner(o) => {
                let inc = self
                    .resolve_incident(&o.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&o.by, path, "Microsoft Sentinel")?;
                let owner = match &o.owner {
                    None => empty_owner(),
                    Some(who) => {
                        let p = self
                            .principal(who)
                            .ok_or_else(|| err("owner", format!("no principal {who:?}")))?;
                        self.owner_of_principal(p)
                    }
                };
                let i = &mut self.incidents[inc];
                i.owner = owner;
                self.touch_incident(inc, &actor, at);
            }
            Event::IncidentAddAlert(a) => {
                let inc = self
                    .resolve_incident(&a.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&a.by, path, "Microsoft Sentinel")?;
                let alert = match self.alert_by_key(&a.alert) {
                    Some(x) => x,
                    None => {
                        // An alert not raised before: DfC raises it now, without an incident
                        // of its own, on the first alert's subscription.
                        let ws = self.incidents[inc].workspace;
                        let first = self.incidents[inc]
                            .alert_ids
                            .first()
                            .and_then(|id| self.alert_by_system_id(id));
                        let (sub, rg, loc) = match first.and_then(|f| self.alerts[f].dfc.clone()) {
                            Some(d) => {
                                (d.subscription_id, Some(d.resource_group), Some(d.location))
                            }
                            None => (self.workspaces[ws].subscription_id.clone(), None, None),
                        };
                        let params = NewAlertParams {
                            key: Some(a.alert.clone()),
                            subscription_id: sub,
                            resource_group: rg,
                            location: loc,
                            ..Default::default()
                        };
                        self.new_alert(Some(ws), params, false, at)
                    }
                };
                if self.alerts[alert].workspace != Some(self.incidents[inc].workspace) {
                    return Err(err("alert", "the alert is in another workspace".into()));
                }
                let sysid = self.alerts[alert].system_alert_id.clone();
                if !self.incidents[inc].alert_ids.contains(&sysid) {
                    self.incidents[inc].alert_ids.push(sysid);
                    self.index_alerts_of(inc);
                    let product = self.alerts[alert].product_name.clone();
                    if !self.incidents[inc].product_names.contains(&product) {
                        self.incidents[inc].product_names.push(product);
                    }
                }
                self.touch_incident(inc, &actor, at);
            }
            Event::IncidentComment(c) => {
                let inc = self
                    .resolve_incident(&c.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&c.by, path, "Microsoft Sentinel")?;
                let id = c.id.clone().unwrap_or_else(|| self.ids.guid());
                self.put_comment(inc, &id, &c.text, &actor, at);
            }
            Event::Rows(r) => {
                let kind = TableKind::from_name(&r.table).ok_or_else(|| {
                    err(
                        "table",
                        format!(
                            "unknown table {:?} (SecurityIncident or SecurityAlert)",
                            r.table
                        ),
                    )
                })?;
                let ws = match &r.workspace {
                    Some(name) => self
                        .workspace_by_name(name)
                        .ok_or_else(|| err("workspace", format!("no workspace {name:?}")))?,
                    None if !self.workspaces.is_empty() => 0,
                    None => return Err(err("workspace", "the scenario has no workspace".into())),
                };
                self.import_rows(ws, kind, &r.rows, &format!("{path}.rows"), at)?;
            }
            Event::XdrIncidentStatus(x) => {
                let actor = self.actor_for(&x.by, path, crate::xdr::XDR_ACTOR)?;
                self.xdr_event_status(x, path, &actor, at)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- DfC side

    /// DfC raises a new alert: an Active DfC alert, a `New` row, and (with incident creation
    /// on and `with_incident`) a `New` incident holding it.
    pub fn new_alert(
        &mut self,
        ws: Option<usize>,
        p: NewAlertParams,
        with_incident: bool,
        at: DateTime<Utc>,
    ) -> usize {
        let ws_location = ws.map(|w| self.workspaces[w].location.clone());
        let name = self.ids.dfc_alert_name(at);
        let sysid = self.ids.guid();
        let rg = p
            .resource_group
            .clone()
            .unwrap_or_else(|| "rg-workloads".to_string());
        let location = p
            .location
            .clone()
            .or(ws_location)
            .unwrap_or_else(|| "westeurope".to_string());
        let vm = format!("vm-{}", &sysid[..6]);
        let resource_id = p.resource_id.clone().unwrap_or_else(|| {
            format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
                p.subscription_id, rg, vm
            )
        });
        let display = p
            .display_name
            .clone()
            .unwrap_or_else(|| "Suspicious process executed".to_string());
        let alert_type = p
            .alert_type
            .clone()
            .unwrap_or_else(|| "VM_SuspiciousProcess".to_string());
        let link = format!(
            "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{}/subscriptionId/{}/resourceGroup/{}/referencedFrom/alertDeepLink/location/{}",
            name, p.subscription_id, rg, location
        );
        let product = p.product.clone().unwrap_or_else(|| DFC_PRODUCT.to_string());
        let alert = Alert {
            workspace: ws,
            key: p.key.clone(),
            system_alert_id: sysid.clone(),
            dfc: Some(DfcInfo {
                name: name.clone(),
                subscription_id: p.subscription_id.clone(),
                resource_group: rg.clone(),
                location,
            }),
            status: DfcStatus::Active,
            table_status: "New".into(),
            description: p.description.clone().unwrap_or_else(|| {
                format!("{display} was detected on {vm}. Investigate the process and its parent.")
            }),
            display_name: display,
            alert_type,
            severity: p.severity.clone().unwrap_or_else(|| "Medium".into()),
            provider_name: product.clone(),
            product_name: product,
            product_component: "VirtualMachines".into(),
            vendor_name: "Microsoft".into(),
            vendor_original_id: name.clone(),
            alert_link: link,
            resource_id,
            compromised_entity: p.compromised_entity.clone().unwrap_or(vm),
            intent: "Execution".into(),
            start: at - Duration::minutes(5),
            end: at - Duration::minutes(1),
            created: at,
            processing_end: at,
            last_row: at,
        };
        let idx = self.alerts.len();
        self.alerts.push(alert);
        if let Some(k) = &p.key {
            self.alert_by_key.insert(k.clone(), idx);
        }
        self.alert_by_sysid.insert(sysid.to_ascii_lowercase(), idx);
        self.alert_by_dfc_name
            .insert(name.to_ascii_lowercase(), idx);
        self.push_alert_row(idx, at);
        let mut sentinel = None;
        if let Some(ws) = ws
            && with_incident
            && self.workspaces[ws].incident_creation
        {
            sentinel = Some(self.create_incident_from_alert(ws, idx, at));
        }
        self.xdr_on_new_alert(idx, sentinel, with_incident, at);
        idx
    }

    fn create_incident_from_alert(&mut self, ws: usize, alert: usize, at: DateTime<Utc>) -> usize {
        let a = self.alerts[alert].clone();
        let name = self.ids.guid();
        let number = self.workspaces[ws].next_incident_number;
        self.workspaces[ws].next_incident_number += 1;
        let portal = self.workspaces[ws].defender_portal;
        let provider_incident_id = if portal {
            // The Defender portal's incident id (the same incident in Graph).
            self.xdr.allocate_id()
        } else {
            number.to_string()
        };
        let rule = format!(
            "{}/providers/Microsoft.SecurityInsights/alertRules/{}",
            self.workspaces[ws].arm_id(),
            IdGen::from_seed(format!("rule:{}", self.workspaces[ws].customer_id).as_bytes()).guid()
        );
        let etag = self.ids.etag();
        let incident = Incident {
            workspace: ws,
            name: name.clone(),
            number,
            title: a.display_name.clone(),
            description: a.description.clone(),
            severity: a.severity.clone(),
            status: "New".into(),
            classification: None,
            classification_reason: None,
            classification_comment: None,
            owner: empty_owner(),
            labels: vec![],
            alert_ids: vec![a.system_alert_id.clone()],
            created: at,
            last_modified: at,
            first_modified: at,
            first_activity: Some(a.start),
            last_activity: Some(a.end),
            closed_time: None,
            etag,
            comments: vec![],
            provider_name: if portal {
                "Microsoft XDR".into()
            } else {
                "Azure Sentinel".into()
            },
            provider_incident_id,
            modified_by: CREATED_FROM_ALERT.into(),
            related_rule_ids: if portal { vec![] } else { vec![rule] },
            tactics: vec![a.intent.clone()],
            product_names: vec![if portal {
                "Microsoft Defender XDR".to_string()
            } else {
                a.product_name.clone()
            }],
        };
        let idx = self.incidents.len();
        self.incidents.push(incident);
        self.incident_by_name.insert(name.to_ascii_lowercase(), idx);
        self.index_alerts_of(idx);
        self.push_incident_row(idx, at);
        idx
    }

    /// DfC changes an alert's status (a DfC action or the scenario): one new `SecurityAlert`
    /// row; the incident is left alone. Returns whether anything changed.
    pub fn set_alert_status(&mut self, alert: usize, status: DfcStatus, at: DateTime<Utc>) -> bool {
        if self.alerts[alert].status == status
            && self.alerts[alert].table_status == status.table_status()
        {
            return false;
        }
        self.alerts[alert].status = status;
        self.alerts[alert].table_status = status.table_status().into();
        self.push_alert_row(alert, at);
        self.xdr_on_dfc_status(alert, at);
        true
    }

    // ---------------------------------------------------------------- Sentinel side

    fn owner_of_principal(&self, p: usize) -> Json {
        let pr = &self.principals[p];
        let upn = (pr.kind == PrincipalKind::User).then(|| pr.name.clone());
        json!({
            "objectId": pr.object_id,
            "email": upn,
            "assignedTo": pr.display(),
            "userPrincipalName": upn,
            "ownerType": if pr.kind == PrincipalKind::User { "User" } else { "Unknown" },
        })
    }

    /// Fills an owner sent by a client (`{objectId}` or more) from the directory.
    pub fn complete_owner(&self, owner: &Json) -> Json {
        let oid = owner.get("objectId").and_then(Json::as_str);
        let upn = owner.get("userPrincipalName").and_then(Json::as_str);
        let email = owner.get("email").and_then(Json::as_str);
        let found = oid
            .and_then(|o| self.principal(o))
            .or_else(|| upn.and_then(|u| self.principal(u)))
            .or_else(|| email.and_then(|u| self.principal(u)));
        if let Some(p) = found {
            return self.owner_of_principal(p);
        }
        if oid.is_none()
            && upn.is_none()
            && email.is_none()
            && owner.get("assignedTo").is_none_or(Json::is_null)
        {
            return empty_owner();
        }
        json!({
            "objectId": oid,
            "email": email,
            "assignedTo": owner.get("assignedTo").cloned().unwrap_or(Json::Null),
            "userPrincipalName": upn,
            "ownerType": owner.get("ownerType").cloned().unwrap_or(json!("Unknown")),
        })
    }

    /// Validates the writable properties of a PUT (required fields, enums, classification).
    pub fn validate_write(w: &IncidentWrite) -> Result<(), ApiError> {
        for (field, value) in [
            ("title", &w.title),
            ("severity", &w.severity),
            ("status", &w.status),
        ] {
            if value.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "The '{field}' field is required."
                )));
            }
        }
        if !["High", "Medium", "Low", "Informational"].contains(&w.severity.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Severity '{}' is not valid. Valid values: High, Medium, Low, Informational.",
                w.severity
            )));
        }
        if !["New", "Active", "Closed"].contains(&w.status.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Status '{}' is not valid. Valid values: New, Active, Closed.",
                w.status
            )));
        }
        if let Some(c) = &w.classification {
            let reasons: &[&str] = match c.as_str() {
                "TruePositive" => &["SuspiciousActivity"],
                "BenignPositive" => &["SuspiciousButExpected"],
                "FalsePositive" => &["IncorrectAlertLogic", "InaccurateData"],
                "Undetermined" => &[],
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Classification '{c}' is not valid. Valid values: Undetermined, TruePositive, BenignPositive, FalsePositive."
                    )));
                }
            };
            match (&w.classification_reason, reasons.is_empty()) {
                (None, false) => {
                    return Err(ApiError::bad_request(format!(
                        "classification '{c}' must have classificationReason."
                    )));
                }
                (Some(r), true) => {
                    return Err(ApiError::bad_request(format!(
                        "classification '{c}' must not have classificationReason, got '{r}'."
                    )));
                }
                (Some(r), false) if !reasons.contains(&r.as_str()) => {
                    return Err(ApiError::bad_request(format!(
                        "classificationReason '{r}' is not valid for classification '{c}'."
                    )));
                }
                _ => {}
            }
        } else if w.classification_reason.is_some() {
            return Err(ApiError::bad_request(
                "classificationReason requires a classification.",
            ));
        }
        if w.status == "Closed" && w.classification.is_none() {
            return Err(ApiError::bad_request(
                "Incident with status 'Closed' must have a classification.",
            ));
        }
        Ok(())
    }

    /// Creates or updates an incident (the Sentinel API's PUT, or a scenario event). Returns
    /// the incident's index and whether it was created. An existing incident needs the current
    /// ETag; a stale or missing one gets 409 Conflict.
    pub fn put_incident(
        &mut self,
        ws: usize,
        name: &str,
        w: IncidentWrite,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(usize, bool), ApiError> {
        Self::validate_write(&w)?;
        let owner = w
            .owner
            .as_ref()
            .map(|o| self.complete_owner(o))
            .unwrap_or_else(empty_owner);
        match self.incident_in(ws, name) {
            Some(idx) => {
                let cur = &self.incidents[idx];
                if w.etag.as_deref() != Some(cur.etag.as_str()) {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Newer version of resource '{}' exists. Data was not saved",
                            cur.name
                        ),
                    ));
                }
                let was_closed = cur.status == "Closed";
                let closing = w.status == "Closed" && !was_closed;
                let inc = &mut self.incidents[idx];
                inc.title = w.title;
                inc.severity = w.severity;
                inc.status = w.status;
                inc.description = w.description.unwrap_or_default();
                inc.classification = w.classification;
                inc.classification_reason = w.classification_reason;
                inc.classification_comment = w.classification_comment;
                inc.owner = owner;
                inc.labels = w.labels;
                if let Some(t) = w.first_activity {
                    inc.first_activity = Some(t);
                }
                if let Some(t) = w.last_activity {
                    inc.last_activity = Some(t);
                }
                if closing {
                    inc.closed_time = Some(at);
                }
                self.touch_incident_with(idx, actor, at, closing);
                Ok((idx, false))
            }
            None => {
                if !guid_like(name) {
                    return Err(ApiError::bad_request(format!(
                        "The incident id '{name}' is not a valid GUID."
                    )));
                }
                let number = self.workspaces[ws].next_incident_number;
                self.workspaces[ws].next_incident_number += 1;
                let portal = self.workspaces[ws].defender_portal;
                let closed = w.status == "Closed";
                let etag = self.ids.etag();
                let inc = Incident {
                    workspace: ws,
                    name: name.to_ascii_lowercase(),
                    number,
                    title: w.title,
                    description: w.description.unwrap_or_default(),
                    severity: w.severity,
                    status: w.status,
                    classification: w.classification,
                    classification_reason: w.classification_reason,
                    classification_comment: w.classification_comment,
                    owner,
                    labels: w.labels,
                    alert_ids: vec![],
                    created: at,
                    last_modified: at,
                    first_modified: at,
                    first_activity: w.first_activity,
                    last_activity: w.last_activity,
                    closed_time: closed.then_some(at),
                    etag,
                    comments: vec![],
                    provider_name: "Azure Sentinel".into(),
                    provider_incident_id: number.to_string(),
                    modified_by: actor.label.clone(),
                    related_rule_ids: vec![],
                    tactics: vec![],
                    product_names: vec![],
                };
                let _ = portal;
                let idx = self.incidents.len();
                self.incidents.push(inc);
                self.incident_by_name.insert(name.to_ascii_lowercase(), idx);
                self.push_incident_row(idx, at);
                Ok((idx, true))
            }
        }
    }

    /// A change to an incident that needs no ETag (owner, alerts, a concurrent edit): new
    /// ETag, new row.
    pub fn touch_incident(&mut self, idx: usize, actor: &Actor, at: DateTime<Utc>) {
        self.touch_incident_with(idx, actor, at, false);
    }

    pub(crate) fn touch_incident_with(
        &mut self,
        idx: usize,
        actor: &Actor,
        at: DateTime<Utc>,
        closing: bool,
    ) {
        let etag = self.ids.etag();
        let inc = &mut self.incidents[idx];
        inc.etag = etag;
        inc.last_modified = at;
        inc.modified_by = actor.label.clone();
        if inc.status == "Closed" && inc.closed_time.is_none() {
            inc.closed_time = Some(at);
        }
        let ws = inc.workspace;
        let alert_ids = inc.alert_ids.clone();
        self.push_incident_row(idx, at);
        self.xdr_on_sentinel_change(idx, actor, at);
        let mut echoed = Vec::new();
        if closing && self.workspaces[ws].bidirectional_sync {
            for id in &alert_ids {
                let Some(a) = self.alert_by_system_id(id) else {
                    continue;
                };
                if self.alerts[a].dfc.is_none() {
                    continue;
                }
                if self.alerts[a].status == DfcStatus::Dismissed
                    && self.workspaces[ws].echo_keeps_dismissed
                {
                    continue;
                }
                self.alerts[a].status = DfcStatus::Resolved;
                self.alerts[a].table_status = "Resolved".into();
                self.push_alert_row(a, at);
                self.xdr_on_dfc_status(a, at);
                echoed.push(a);
            }
        }
        if self.workspaces[ws].reingest_alerts {
            for id in &alert_ids {
                if let Some(a) = self.alert_by_system_id(id)
                    && !echoed.contains(&a)
                {
                    self.push_alert_row(a, at);
                }
            }
        }
    }

    /// Creates or updates a comment (idempotent by id). Returns the comment and whether it was
    /// created.
    pub fn put_comment(
        &mut self,
        inc: usize,
        id: &str,
        message: &str,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> (Comment, bool) {
        let etag = self.ids.etag().trim_matches('"').to_string();
        let incident = &mut self.incidents[inc];
        let (comment, created) = match incident
            .comments
            .iter_mut()
            .find(|c| c.id.eq_ignore_ascii_case(id))
        {
            Some(c) => {
                if c.message == message {
                    return (c.clone(), false);
                }
                c.message = message.to_string();
                c.last_modified = at;
                c.etag = etag;
                (c.clone(), false)
            }
            None => {
                let c = Comment {
                    id: id.to_ascii_lowercase(),
                    message: message.to_string(),
                    created: at,
                    last_modified: at,
                    author: actor.client_info(),
                    etag,
                };
                incident.comments.push(c.clone());
                (c, true)
            }
        };
        self.touch_incident(inc, actor, at);
        (comment, created)
    }

    // ---------------------------------------------------------------- rows

    fn push_alert_row(&mut self, idx: usize, at: DateTime<Utc>) {
        let a = &self.alerts[idx];
        let Some(ws) = a.workspace else {
            // No Sentinel: no table.
            return;
        };
        let w = &self.workspaces[ws];
        let ext = json!({
            "resourceType": "Virtual Machine",
            "Compromised Host": a.compromised_entity.to_uppercase(),
            "Suspicious Process": "c:\\windows\\temp\\svch0st.exe",
            "Suspicious Command Line": "svch0st.exe -connect 198.51.100.7",
            "Alert generation status": "Full alert created",
            "ProcessedBySentinel": "True",
        });
        let entities = json!([{
            "$id": "2", "ResourceId": a.resource_id, "Type": "azure-resource"
        }, {
            "$id": "3", "HostName": a.compromised_entity, "AzureID": a.resource_id,
            "OMSAgentID": "00000000-0000-0000-0000-000000000000", "Type": "host"
        }]);
        let mut resource_upper = a.resource_id.clone();
        if a.dfc.is_some() {
            resource_upper = resource_upper.to_uppercase();
        }
        let cells = vec![
            ("TenantId", string(&w.customer_id)),
            ("TimeGenerated", time(at)),
            ("DisplayName", string(&a.display_name)),
            ("AlertName", string(&a.display_name)),
            ("AlertSeverity", string(&a.severity)),
            ("Description", string(&a.description)),
            ("ProviderName", string(&a.provider_name)),
            ("VendorName", string(&a.vendor_name)),
            ("VendorOriginalId", string(&a.vendor_original_id)),
            ("SystemAlertId", string(&a.system_alert_id)),
            ("ResourceId", string(resource_upper)),
            ("SourceComputerId", string(String::new())),
            ("AlertType", string(&a.alert_type)),
            ("ConfidenceLevel", string(String::new())),
            ("ConfidenceScore", Cell::Null),
            ("IsIncident", Cell::Bool(false)),
            ("StartTime", time(a.start)),
            ("EndTime", time(a.end)),
            ("ProcessingEndTime", time(at)),
            (
                "RemediationSteps",
                string("[\"Investigate the process and isolate the machine if it is malicious.\"]"),
            ),
            ("ExtendedProperties", string(ext.to_string())),
            ("Entities", string(entities.to_string())),
            ("SourceSystem", string("Detection")),
            ("WorkspaceSubscriptionId", string(&w.subscription_id)),
            ("WorkspaceResourceGroup", string(&w.resource_group)),
            ("ExtendedLinks", string(String::new())),
            ("ProductName", string(&a.product_name)),
            ("ProductComponentName", string(&a.product_component)),
            ("AlertLink", string(&a.alert_link)),
            ("Status", string(&a.table_status)),
            ("CompromisedEntity", string(&a.compromised_entity)),
            ("Tactics", string(&a.intent)),
            ("Techniques", string(String::new())),
            ("SubTechniques", string(String::new())),
            ("Type", string("SecurityAlert")),
        ];
        let visible = at + w.ingestion_delay;
        self.alerts[idx].last_row = at;
        self.tables[ws].push(
            TableKind::SecurityAlert,
            vec![Row::build(TableKind::SecurityAlert, visible, cells)],
        );
        self.version += 1;
    }

    fn push_incident_row(&mut self, idx: usize, at: DateTime<Utc>) {
        let i = &self.incidents[idx];
        let w = &self.workspaces[i.workspace];
        let url = incident_url(w, &i.name);
        let comments: Vec<Json> = i
            .comments
            .iter()
            .map(|c| {
                json!({
                    "message": c.message,
                    "createdTimeUtc": crate::table::format_time(c.created),
                    "author": c.author,
                })
            })
            .collect();
        let labels: Vec<Json> = i
            .labels
            .iter()
            .map(|l| json!({"labelName": l, "labelType": "User"}))
            .collect();
        let mut additional = json!({
            "alertsCount": i.alert_ids.len(),
            "bookmarksCount": 0,
            "commentsCount": i.comments.len(),
            "alertProductNames": i.product_names,
            "tactics": i.tactics,
            "techniques": [],
        });
        if w.defender_portal {
            additional["providerIncidentUrl"] = json!(format!(
                "https://security.microsoft.com/incidents/{}?tid={}",
                i.provider_incident_id, self.tenant_id
            ));
        }
        let opt_str = |s: &Option<String>| string(s.clone().unwrap_or_default());
        let opt_time = |t: Option<DateTime<Utc>>| t.map(Cell::DateTime).unwrap_or(Cell::Null);
        let cells = vec![
            ("TenantId", string(&w.customer_id)),
            ("TimeGenerated", time(at)),
            ("IncidentName", string(&i.name)),
            ("Title", string(&i.title)),
            (
                "Description",
                string(if w.defender_portal {
                    String::new()
                } else {
                    i.description.clone()
                }),
            ),
            ("Severity", string(&i.severity)),
            ("Status", string(&i.status)),
            ("Classification", opt_str(&i.classification)),
            ("ClassificationComment", opt_str(&i.classification_comment)),
            ("ClassificationReason", opt_str(&i.classification_reason)),
            ("Owner", Cell::dynamic(table_owner(&i.owner))),
            ("ProviderName", string(&i.provider_name)),
            ("ProviderIncidentId", string(&i.provider_incident_id)),
            ("FirstActivityTime", opt_time(i.first_activity)),
            ("LastActivityTime", opt_time(i.last_activity)),
            ("FirstModifiedTime", time(i.first_modified)),
            ("LastModifiedTime", time(i.last_modified)),
            ("CreatedTime", time(i.created)),
            ("ClosedTime", opt_time(i.closed_time)),
            ("IncidentNumber", Cell::Int(i.number as i32)),
            (
                "RelatedAnalyticRuleIds",
                Cell::dynamic(json!(i.related_rule_ids)),
            ),
            ("AlertIds", Cell::dynamic(json!(i.alert_ids))),
            ("BookmarkIds", Cell::dynamic(json!([]))),
            ("Comments", Cell::dynamic(Json::Array(comments))),
            ("Tasks", Cell::dynamic(json!([]))),
            ("Labels", Cell::dynamic(Json::Array(labels))),
            ("IncidentUrl", string(url)),
            ("AdditionalData", Cell::dynamic(additional)),
            ("ModifiedBy", string(&i.modified_by)),
            ("SourceSystem", string("Azure")),
            ("Type", string("SecurityIncident")),
        ];
        let visible = at + w.ingestion_delay;
        let ws = i.workspace;
        self.tables[ws].push(
            TableKind::SecurityIncident,
            vec![Row::build(TableKind::SecurityIncident, visible, cells)],
        );
        self.version += 1;
    }

    /// Imports exported rows as they are, and brings the model (incidents, alerts) in line
    /// with the newest row of each.
    fn import_rows(
        &mut self,
        ws: usize,
        kind: TableKind,
        rows: &ImportRows,
        path: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ScenarioError> {
        let schema = kind.schema();
        let names = import_columns();
        let customer_id = self.workspaces[ws].customer_id.clone();
        let delay = self.workspaces[ws].ingestion_delay;
        let mut imported = Vec::with_capacity(rows.0.len());
        for (r, given) in rows.0.iter().enumerate() {
            let mut cells = vec![Cell::Null; schema.len()];
            for (c, cell) in given {
                let k = names[*c].0;
                let col = kind.col(k).ok_or_else(|| {
                    ScenarioError::at(
                        format!("{path}[{r}].{k}"),
                        format!("unknown column of {}", kind.name()),
                    )
                })?;
                cells[col] = cell.clone();
            }
            let tg = kind.col("TimeGenerated").unwrap_or(1);
            let time = match &cells[tg] {
                Cell::DateTime(t) => *t,
                _ => {
                    cells[tg] = time(at);
                    at
                }
            };
            // Log Analytics sets `TenantId` (the workspace's id) on every row it ingests.
            if let Some(c) = kind.col("TenantId") {
                cells[c] = string(&customer_id);
            }
            if let Some(c) = kind.col("Type")
                && cells[c] == Cell::Null
            {
                cells[c] = string(kind.name());
            }
            let key_col = match kind {
                TableKind::SecurityAlert => "SystemAlertId",
                TableKind::SecurityIncident => "IncidentName",
            };
            let key_ok = kind
                .col(key_col)
                .and_then(|c| cells[c].as_str())
                .is_some_and(|s| !s.is_empty());
            if !key_ok {
                return Err(ScenarioError::at(
                    format!("{path}[{r}].{key_col}"),
                    "missing (the row's key)",
                ));
            }
            if kind == TableKind::SecurityIncident {
                let n = kind.col("IncidentNumber").and_then(|c| match cells[c] {
                    Cell::Int(n) => Some(i64::from(n)),
                    _ => None,
                });
                if n.is_none() {
                    return Err(ScenarioError::at(
                        format!("{path}[{r}].IncidentNumber"),
                        "missing",
                    ));
                }
            }
            // Visible (ingested) once the workspace's ingestion delay after TimeGenerated has
            // passed, and never before the import itself.
            imported.push(Row {
                visible_at: (time + delay).max(at),
                cells,
            });
        }
        // Bring the model in line, oldest row first so the newest wins.
        let mut order: Vec<usize> = (0..imported.len()).collect();
        order.sort_by_key(|&i| cell_time(imported[i].get(kind, "TimeGenerated")));
        for i in order {
            match kind {
                TableKind::SecurityAlert => self.model_from_alert_row(ws, &imported[i]),
                TableKind::SecurityIncident => self.model_from_incident_row(ws, &imported[i]),
            }
        }
        self.tables[ws].push(kind, imported);
        self.version += 1;
        Ok(())
    }

    fn model_from_alert_row(&mut self, ws: usize, row: &Row) {
        let k = TableKind::SecurityAlert;
        let s = |c: &str| row.get(k, c).as_str().unwrap_or_default().to_string();
        let t = |c: &str| cell_time(row.get(k, c));
        let time = t("TimeGenerated").unwrap_or(self.start);
        let sysid = s("SystemAlertId");
        let status_text = s("Status");
        let status = DfcStatus::from_table(&status_text).unwrap_or(DfcStatus::Active);
        if let Some(idx) = self.alert_by_system_id(&sysid) {
            let a = &mut self.alerts[idx];
            if time >= a.last_row {
                a.last_row = time;
                a.status = status;
                a.table_status = status_text;
            }
            return;
        }
        let link = s("AlertLink");
        let seg = |key: &str| -> Option<String> {
            let mut parts = link.split('/');
            while let Some(p) = parts.next() {
                if p.eq_ignore_ascii_case(key) {
                    return parts.next().map(str::to_string);
                }
            }
            None
        };
        let vendor_id = s("VendorOriginalId");
        let dfc = match (seg("subscriptionId"), seg("resourceGroup"), seg("location")) {
            (Some(sub), Some(rg), Some(loc)) => Some(DfcInfo {
                name: seg("alertId").unwrap_or_else(|| vendor_id.clone()),
                subscription_id: sub,
                resource_group: rg,
                location: loc,
            }),
            _ => None,
        };
        let idx = self.alerts.len();
        let alert = Alert {
            workspace: Some(ws),
            key: None,
            system_alert_id: sysid.clone(),
            status,
            table_status: status_text,
            display_name: s("DisplayName"),
            alert_type: s("AlertType"),
            severity: s("AlertSeverity"),
            description: s("Description"),
            product_name: s("ProductName"),
            provider_name: s("ProviderName"),
            product_component: s("ProductComponentName"),
            vendor_name: s("VendorName"),
            vendor_original_id: vendor_id,
            alert_link: link.clone(),
            resource_id: s("ResourceId"),
            compromised_entity: s("CompromisedEntity"),
            intent: s("Tactics"),
            start: t("StartTime").unwrap_or(time),
            end: t("EndTime").unwrap_or(time),
            created: time,
            processing_end: t("ProcessingEndTime").unwrap_or(time),
            last_row: time,
            dfc,
        };
        if let Some(d) = &alert.dfc {
            self.alert_by_dfc_name
                .insert(d.name.to_ascii_lowercase(), idx);
        }
        self.alert_by_sysid.insert(sysid.to_ascii_lowercase(), idx);
        self.alerts.push(alert);
    }

    fn model_from_incident_row(&mut self, ws: usize, row: &Row) {
        let k = TableKind::SecurityIncident;
        let s = |c: &str| row.get(k, c).as_str().unwrap_or_default().to_string();
        let opt = |c: &str| {
            row.get(k, c)
                .as_str()
                .filter(|x| !x.is_empty())
                .map(str::to_string)
        };
        let t = |c: &str| cell_time(row.get(k, c));
        let d = |c: &str| match row.get(k, c) {
            Cell::Dynamic(v) => (**v).clone(),
            _ => Json::Null,
        };
        let strings = |v: Json| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let time = t("TimeGenerated").unwrap_or(self.start);
        let name = s("IncidentName").to_ascii_lowercase();
        let number = match row.get(k, "IncidentNumber") {
            Cell::Int(n) => i64::from(*n),
            _ => 0,
        };
        let existing = self.incident_in(ws, &name);
        if let Some(idx) = existing
            && self.incidents[idx].last_modified > time
        {
            return;
        }
        let additional = d("AdditionalData");
        let comments: Vec<Comment> = d("Comments")
            .as_array()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(n, c)| {
                        let created = c
                            .get("createdTimeUtc")
                            .and_then(Json::as_str)
                            .and_then(|x| DateTime::parse_from_rfc3339(x).ok())
                            .map(|x| x.with_timezone(&Utc))
                            .unwrap_or(time);
                        Comment {
                            id: IdGen::from_seed(format!("{name}:{n}").as_bytes()).guid(),
                            message: c
                                .get("message")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            created,
                            last_modified: created,
                            author: c.get("author").cloned().unwrap_or(Json::Null),
                            etag: IdGen::from_seed(format!("{name}:{n}:e").as_bytes())
                                .etag()
                                .trim_matches('"')
                                .to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let labels = d("Labels")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        l.get("labelName")
                            .and_then(Json::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let owner = match d("Owner") {
            Json::Object(o) => Json::Object(o),
            _ => empty_owner(),
        };
        let etag = self.ids.etag();
        let inc = Incident {
            workspace: ws,
            name: name.clone(),
            number,
            title: s("Title"),
            description: s("Description"),
            severity: s("Severity"),
            status: s("Status"),
            classification: opt("Classification"),
            classification_reason: opt("ClassificationReason"),
            classification_comment: opt("ClassificationComment"),
            owner,
            labels,
            alert_ids: strings(d("AlertIds")),
            created: t("CreatedTime").unwrap_or(time),
            last_modified: t("LastModifiedTime").unwrap_or(time),
            first_modified: t("FirstModifiedTime").unwrap_or(time),
            first_activity: t("FirstActivityTime"),
            last_activity: t("LastActivityTime"),
            closed_time: t("ClosedTime"),
            etag,
            comments,
            provider_name: s("ProviderName"),
            provider_incident_id: s("ProviderIncidentId"),
            modified_by: s("ModifiedBy"),
            related_rule_ids: strings(d("RelatedAnalyticRuleIds")),
            tactics: strings(additional.get("tactics").cloned().unwrap_or(Json::Null)),
            product_names: strings(
                additional
                    .get("alertProductNames")
                    .cloned()
                    .unwrap_or(Json::Null),
            ),
        };
        let w = &mut self.workspaces[ws];
        w.next_incident_number = w.next_incident_number.max(number + 1);
        let idx = match existing {
            Some(idx) => {
                self.incidents[idx] = inc;
                idx
            }
            None => {
                let idx = self.incidents.len();
                self.incidents.push(inc);
                self.incident_by_name.insert(name, idx);
                idx
            }
        };
        self.index_alerts_of(idx);
    }

    // ---------------------------------------------------------------- views

    /// The `GET /_emulator/state` document.
    pub fn state_json(&self, with_tables: bool) -> Json {
        let incidents: Vec<Json> = self
            .incidents
            .iter()
            .map(|i| {
                json!({
                    "workspace": self.workspaces[i.workspace].name,
                    "name": i.name,
                    "number": i.number,
                    "title": i.title,
                    "severity": i.severity,
                    "status": i.status,
                    "classification": i.classification,
                    "classification_reason": i.classification_reason,
                    "classification_comment": i.classification_comment,
                    "owner": i.owner.get("userPrincipalName").cloned().filter(|v| !v.is_null())
                        .or_else(|| i.owner.get("objectId").cloned()).unwrap_or(Json::Null),
                    "alert_ids": i.alert_ids,
                    "etag": i.etag,
                    "provider_name": i.provider_name,
                    "modified_by": i.modified_by,
                    "labels": i.labels,
                    "comments": i.comments.iter().map(|c| json!({
                        "id": c.id, "message": c.message,
                        "created": crate::table::format_time(c.created),
                        "author": c.author,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let alerts: Vec<Json> = self
            .alerts
            .iter()
            .map(|a| {
                json!({
                    "workspace": a.workspace.map(|w| self.workspaces[w].name.clone()),
                    "key": a.key,
                    "name": a.dfc.as_ref().map(|d| d.name.clone()).unwrap_or_else(|| a.vendor_original_id.clone()),
                    "system_alert_id": a.system_alert_id,
                    "subscription_id": a.dfc.as_ref().map(|d| d.subscription_id.clone()),
                    "resource_group": a.dfc.as_ref().map(|d| d.resource_group.clone()),
                    "location": a.dfc.as_ref().map(|d| d.location.clone()),
                    "status": a.status.as_str(),
                    "table_status": a.table_status,
                    "product_name": a.product_name,
                })
            })
            .collect();
        let (xdr_incidents, xdr_alerts) = self.xdr_state_json();
        let mut doc = json!({
            "incidents": incidents,
            "alerts": alerts,
            "xdr_incidents": xdr_incidents,
            "xdr_alerts": xdr_alerts,
        });
        if with_tables {
            let mut tables = serde_json::Map::new();
            for kind in [TableKind::SecurityIncident, TableKind::SecurityAlert] {
                let rows: Vec<Json> = self
                    .tables
                    .iter()
                    .flat_map(|t| {
                        t.rows(kind)
                            .iter()
                            .map(move |r| crate::table::row_json(kind, r))
                    })
                    .collect();
                tables.insert(kind.name().into(), Json::Array(rows));
            }
            doc["tables"] = Json::Object(tables);
        }
        doc
    }
}

/// The parameters of a new DfC alert.
#[derive(Debug, Clone, Default)]
pub struct NewAlertParams {
    pub key: Option<String>,
    pub subscription_id: String,
    pub resource_group: Option<String>,
    pub location: Option<String>,
    pub display_name: Option<String>,
    pub severity: Option<String>,
    pub alert_type: Option<String>,
    pub description: Option<String>,
    pub product: Option<String>,
    pub resource_id: Option<String>,
    pub compromised_entity: Option<String>,
}

/// An unassigned owner, as the API returns it.
pub fn empty_owner() -> Json {
    json!({"objectId": null, "email": null, "assignedTo": null, "userPrincipalName": null, "ownerType": "Unknown"})
}

/// The owner as the `Owner` column shows it.
fn table_owner(owner: &Json) -> Json {
    json!({
        "objectId": owner.get("objectId").cloned().unwrap_or(Json::Null),
        "email": owner.get("email").cloned().unwrap_or(Json::Null),
        "assignedTo": owner.get("assignedTo").cloned().unwrap_or(Json::Null),
        "userPrincipalName": owner.get("userPrincipalName").cloned().unwrap_or(Json::Null),
    })
}

/// The portal URL of an incident.
pub fn incident_url(w: &Workspace, name: &str) -> String {
    format!(
        "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{}/providers/Microsoft.SecurityInsights/Incidents/{}",
        w.arm_id(),
        name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;

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
