//! The scenario file (contract: `shared/design/emulator.md`): tenant, workspaces, principals,
//! limits and the events that build the platform's history, as written (the spec types) and
//! parsed (events, imported rows, times). Parsing is strict: an unknown field or a bad time is
//! refused with the JSON path of the bad field. The text is read by [`crate::scenario_read`]
//! and the platform built from it by [`crate::load`] (the platform is built from a scenario;
//! this module knows nothing of it).

use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::table::{Cell, ColType, TableKind, cell_from_json};

/// A scenario that failed to load: the JSON path of the bad field and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ScenarioError {
    /// An invalid-field error at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The JSON path of the bad field (`events[3].at`), empty for I/O errors.
    pub fn path(&self) -> &str {
        match self {
            ScenarioError::Io { .. } => "",
            ScenarioError::Invalid { path, .. } => path,
        }
    }
}

/// Deserializes `value` into `T`, reporting the path of the bad field under `prefix`.
pub(crate) fn from_value_at<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: Json,
) -> Result<T, ScenarioError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = join_path(prefix, if inner == "." { "" } else { &inner });
        ScenarioError::at(path, e.into_inner().to_string())
    })
}

pub(crate) fn join_path(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, true) => "$".into(),
        (true, false) => inner.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if inner.starts_with('[') => format!("{prefix}{inner}"),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

/// The scenario file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// The emulator's clock at start (RFC 3339).
    pub now: String,
    pub tenant_id: String,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSpec>,
    #[serde(default)]
    pub principals: Vec<PrincipalSpec>,
    #[serde(default)]
    pub limits: Limits,
    /// Seed of the deterministic ids (default: the tenant id).
    #[serde(default)]
    pub seed: Option<String>,
    /// `"running"` (default: the clock moves with real time from `now`) or `"frozen"`
    /// (it moves only through the control API).
    #[serde(default)]
    pub clock: Option<String>,
    /// Defender XDR: every DfC alert is also an XDR alert in an XDR incident, served by
    /// Microsoft Graph (`/v1.0/security/…`), with or without a Sentinel workspace.
    #[serde(default)]
    pub defender_xdr: bool,
    /// XDR resolves an incident itself when all its alerts are resolved, and reactivates a
    /// resolved one when an alert of it goes back to new or in progress (observed roll-up).
    #[serde(default)]
    pub xdr_incident_follows_alerts: bool,
    /// Microsoft Graph answers in the shapes of Graph's own published examples: comments
    /// with `createdBy` / `createdTime`, enum values in PascalCase (`Active`, `TruePositive`,
    /// `MicrosoftDefenderForCloud`); `$filter` still matches case-insensitively.
    #[serde(default)]
    pub graph_example_shapes: bool,
    /// How long after a Graph write (a comment's `createdDateTime`, a PATCH) the XDR
    /// incident's `lastUpdateDateTime` is stamped (default `3ms`; `0s` allowed).
    #[serde(default)]
    pub xdr_stamp_lag: Option<String>,
    /// A Graph PATCH may write `resolvingComment` (Graph's changelog, December 2024); `false`
    /// restores the refusal (400 "The property 'resolvingComment' cannot be updated.").
    #[serde(default = "yes")]
    pub resolving_comment_patch: bool,
    /// Azure Storage accounts (Blob service, path style under `{base}/storage/`).
    #[serde(default)]
    pub storage: Vec<StorageAccountSpec>,
    /// A Kubernetes API server serving `coordination.k8s.io/v1` Leases.
    #[serde(default)]
    pub kubernetes: Option<KubernetesSpec>,
    /// The events while loading; empty once loaded (they are applied into the platform).
    #[serde(skip)]
    pub events: Vec<EventSpec>,
}

/// A workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub customer_id: String,
    #[serde(default = "default_location")]
    pub location: String,
    #[serde(default = "yes")]
    pub incident_creation: bool,
    #[serde(default = "yes")]
    pub bidirectional_sync: bool,
    /// Time between a row's creation and its visibility to queries (`"0s"`).
    #[serde(default)]
    pub ingestion_delay: Option<String>,
    /// Closing an incident leaves its Dismissed alerts Dismissed (default: they are resolved).
    #[serde(default)]
    pub echo_keeps_dismissed: bool,
    /// Onboarded to the Defender portal: incidents carry `ProviderName` `Microsoft XDR`.
    #[serde(default)]
    pub defender_portal: bool,
    /// Re-ingest the alert rows of an incident (same status, new `TimeGenerated`) whenever the
    /// incident changes, as the platform does.
    #[serde(default)]
    pub reingest_alerts: bool,
    /// A data collection rule feeding a custom table of this workspace through the Logs
    /// Ingestion API.
    #[serde(default)]
    pub dcr: Option<DcrSpec>,
}

/// A data collection rule (Logs Ingestion API) of a workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcrSpec {
    /// The DCR's `immutableId` (`dcr-…`): the path segment of the ingestion URL.
    pub immutable_id: String,
    /// The stream declaration's name (`Custom-DfcSync_CL`).
    pub stream: String,
    /// The custom table it feeds (`DfcSync_CL`).
    pub table: String,
    /// The stream's columns: `{"RowType": "string", …}` or `[{"name", "type"}]` (string, int,
    /// long, real, boolean, datetime, dynamic); `TimeGenerated` (datetime) is always there.
    pub columns: Json,
    /// The DCR's resource name (default `dfcsync-dcr`): its ARM id is the role's scope.
    #[serde(default)]
    pub name: Option<String>,
    /// Default: the workspace's.
    #[serde(default)]
    pub resource_group: Option<String>,
}

/// A storage account and its containers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageAccountSpec {
    /// The account's name (3–24 lower-case letters and digits).
    pub account: String,
    /// Default: the first workspace's.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Default: the first workspace's.
    #[serde(default)]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub containers: Vec<String>,
}

/// The Kubernetes API server: the namespace its service account may use and its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSpec {
    pub namespace: String,
    /// The service account's bearer token (as mounted in a pod).
    pub token: String,
    /// The service account's name (default `dfcsync`).
    #[serde(default)]
    pub service_account: Option<String>,
}

fn default_location() -> String {
    "westeurope".into()
}

fn yes() -> bool {
    true
}

/// The kind of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    ServicePrincipal,
    User,
    ManagedIdentity,
}

/// A principal: an application, a user or a managed identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    pub name: String,
    pub kind: PrincipalKind,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    /// A user-assigned managed identity's ARM id (none: system-assigned).
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    /// Role assignments take effect only this long after the emulator starts.
    #[serde(default)]
    pub propagation_delay: Option<String>,
    /// Override of the `ModifiedBy` value written for this principal's changes.
    #[serde(default)]
    pub modified_by: Option<String>,
    /// A federated identity credential (workload identity): a `client_assertion` whose JWT
    /// payload has this `sub` (and `aud` `api://AzureADTokenExchange`) is accepted instead
    /// of a secret. The emulator does not check the assertion's signature (it knows no
    /// issuer keys).
    #[serde(default)]
    pub federated_subject: Option<String>,
    /// A user's display name (owner `assignedTo`, comment author `name`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Microsoft Graph application permissions granted with admin consent
    /// (`SecurityIncident.ReadWrite.All`, …): the `roles` claim of the principal's Graph tokens.
    #[serde(default)]
    pub graph_permissions: Vec<String>,
}

/// A role assignment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// A built-in role's name or id.
    pub role: String,
    /// `/subscriptions/…[/resourceGroups/…[/providers/…]]`.
    pub scope: String,
}

/// Limits (defaults from the reference).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_reads")]
    pub arm_reads: Bucket,
    #[serde(default = "default_writes")]
    pub arm_writes: Bucket,
    #[serde(default = "default_writes")]
    pub arm_deletes: Bucket,
    #[serde(default = "default_la_rate")]
    pub la_requests_per_30s: u32,
    #[serde(default = "default_la_rows")]
    pub la_max_rows: usize,
    /// The most bytes of a query answer's body (reference §2.7: ~100 MiB of raw data).
    #[serde(default = "default_la_bytes")]
    pub la_max_bytes: usize,
    /// Default page size of incident and comment lists when `$top` is absent.
    #[serde(default = "default_page")]
    pub default_page_size: usize,
    /// Microsoft Graph security requests per minute per application and tenant (default 50,
    /// the Defender XDR API's published figure; Graph publishes none for incidents).
    #[serde(default = "default_graph_rate")]
    pub graph_requests_per_minute: u32,
    /// Logs Ingestion API requests per minute per DCR (default 12,000, the service limit).
    #[serde(default = "default_ingest_rate")]
    pub logs_ingestion_requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            arm_reads: default_reads(),
            arm_writes: default_writes(),
            arm_deletes: default_writes(),
            la_requests_per_30s: default_la_rate(),
            la_max_rows: default_la_rows(),
            la_max_bytes: default_la_bytes(),
            default_page_size: default_page(),
            graph_requests_per_minute: default_graph_rate(),
            logs_ingestion_requests_per_minute: default_ingest_rate(),
        }
    }
}

/// A token bucket: its size and its refill rate.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub bucket: u32,
    pub per_second: f64,
}

fn default_reads() -> Bucket {
    Bucket {
        bucket: 250,
        per_second: 25.0,
    }
}
fn default_writes() -> Bucket {
    Bucket {
        bucket: 200,
        per_second: 10.0,
    }
}
fn default_la_rate() -> u32 {
    200
}
fn default_la_rows() -> usize {
    500_000
}
fn default_la_bytes() -> usize {
    104_857_600
}
fn default_page() -> usize {
    1000
}
fn default_graph_rate() -> u32 {
    50
}
fn default_ingest_rate() -> u32 {
    12_000
}

/// One event with its JSON path (for errors found when it is applied).
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub path: String,
    pub at: Option<String>,
    pub event: Event,
}

/// The `do` of an event.
#[derive(Debug, Clone)]
pub enum Event {
    NewAlert(NewAlert),
    AlertStatus(AlertStatus),
    IncidentStatus(IncidentStatus),
    IncidentOwner(IncidentOwner),
    IncidentAddAlert(IncidentAddAlert),
    IncidentComment(IncidentComment),
    Rows(RowsImport),
    XdrIncidentStatus(XdrIncidentStatus),
    XdrAlert(XdrAlertEvent),
    XdrTune(XdrTune),
    XdrMoveAlert(XdrMoveAlert),
}

/// `new_alert`: DfC raises an alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    /// The workspace whose Sentinel sees the alert; none only with `defender_xdr` (a tenant
    /// whose alerts reach Defender XDR alone).
    #[serde(default)]
    pub workspace: Option<String>,
    pub alert: String,
    pub subscription_id: String,
    #[serde(default)]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub alert_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `false`: the alert creates no incident.
    #[serde(default)]
    pub incident: Option<bool>,
    /// Overrides "Azure Security Center".
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub compromised_entity: Option<String>,
}

/// `alert_status`: the DfC side changes an alert's status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertStatus {
    pub alert: String,
    pub status: String,
    #[serde(default)]
    pub by: Option<String>,
}

/// `incident_status`: the Sentinel side changes an incident's status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentStatus {
    pub incident: Json,
    pub status: String,
    #[serde(default)]
    pub classification: Option<String>,
    #[serde(default)]
    pub classification_reason: Option<String>,
    #[serde(default)]
    pub classification_comment: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// `incident_owner`: assigns (or, with `null`, unassigns) an incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentOwner {
    pub incident: Json,
    /// A principal's name (a user's UPN) or object id; `null` unassigns.
    pub owner: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// `incident_add_alert`: adds an alert to an incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentAddAlert {
    pub incident: Json,
    pub alert: String,
    #[serde(default)]
    pub by: Option<String>,
}

/// `incident_comment`: a comment on an incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentComment {
    pub incident: Json,
    pub text: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// `xdr_incident_status`: an analyst (or XDR) changes an XDR incident in the Defender portal
/// or through Graph: status and, optionally, classification, determination, assignee.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdrIncidentStatus {
    /// The XDR incident id, or an alert handle (the incident holding that alert).
    pub incident: Json,
    /// `active`, `inProgress` or `resolved`.
    pub status: String,
    #[serde(default)]
    pub classification: Option<String>,
    #[serde(default)]
    pub determination: Option<String>,
    /// A UPN (`""` unassigns).
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// `xdr_alert`: another product than Defender for Cloud raises an alert that lives in
/// Defender XDR alone (a mixed incident's Endpoint or Office alert).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdrAlertEvent {
    /// The scenario's handle for the alert.
    pub alert: String,
    /// The XDR incident that takes it (its id, or an alert handle); none: a new incident of
    /// its own.
    #[serde(default)]
    pub incident: Option<Json>,
    /// `serviceSource` (a CSDL member, any case), e.g. `microsoftDefenderForEndpoint`.
    pub service_source: String,
    /// `productName`, e.g. `Microsoft Defender for Endpoint`.
    pub product_name: String,
    /// `detectionSource` (a CSDL member; default: the service's own, else `unknown`).
    #[serde(default)]
    pub detection_source: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `high`, `medium` (default), `low` or `informational`.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// `new` (default), `inProgress` or `resolved`.
    #[serde(default = "new_status")]
    pub status: String,
}

fn new_status() -> String {
    "new".into()
}

/// `xdr_tune`: Defender XDR's built-in alert tuning resolves an alert or reactivates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdrTune {
    /// An alert handle (`xdr_alert` or `new_alert`) or an XDR alert id.
    pub alert: String,
    /// `resolved` or `new`.
    pub status: String,
}

/// `xdr_move_alert`: an XDR alert moves to another XDR incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdrMoveAlert {
    /// An alert handle (`xdr_alert` or `new_alert`) or an XDR alert id.
    pub alert: String,
    /// The incident that takes it: its id, or an alert handle.
    pub incident: Json,
    #[serde(default)]
    pub by: Option<String>,
}

/// `rows`: imports exported rows as they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowsImport {
    pub table: String,
    /// Default: the scenario's only (or first) workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    pub rows: ImportRows,
}

/// The rows of a `rows` event, read straight into typed cells: each row holds the cells of
/// the columns it names, as (index in [`import_columns`], cell), in the order written.
#[derive(Debug, Clone, Default)]
pub struct ImportRows(pub Vec<Vec<(usize, Cell)>>);

/// The columns a `rows` event may name: those of both tables (a name shared by the two has
/// the same type in both, so a row's cells can be typed before its table is known).
pub fn import_columns() -> &'static [(&'static str, ColType)] {
    static COLUMNS: OnceLock<Vec<(&'static str, ColType)>> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let mut cols: Vec<(&'static str, ColType)> = Vec::new();
        for kind in [TableKind::SecurityIncident, TableKind::SecurityAlert] {
            for (name, ty) in kind.schema() {
                if !cols.iter().any(|(n, _)| n == name) {
                    cols.push((name, *ty));
                }
            }
        }
        cols
    })
}

impl<'de> Deserialize<'de> for ImportRows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = ImportRows;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of row objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ImportRows, A::Error> {
                let mut rows = Vec::new();
                while let Some(ImportRow(r)) = seq.next_element()? {
                    rows.push(r);
                }
                Ok(ImportRows(rows))
            }
        }
        d.deserialize_seq(Rows)
    }
}

/// One row of a `rows` event.
struct ImportRow(Vec<(usize, Cell)>);

impl<'de> Deserialize<'de> for ImportRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Row;
        impl<'de> Visitor<'de> for Row {
            type Value = ImportRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row (an object of column values)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImportRow, A::Error> {
                let mut cells = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let col = import_columns().iter().position(|(n, _)| *n == key);
                    let cell = map.next_value_seed(CellSeed(col.map(|c| import_columns()[c].1)))?;
                    if let Some(c) = col {
                        cells.push((c, cell));
                    }
                }
                Ok(ImportRow(cells))
            }
        }
        d.deserialize_map(Row)
    }
}

/// Reads one cell of a column of the given type (`None`: a column neither table has).
struct CellSeed(Option<ColType>);

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        let value = Json::deserialize(d)?;
        match self.0 {
            Some(ty) => cell_from_json(ty, &value).map_err(de::Error::custom),
            None => Err(de::Error::custom(
                "unknown column (neither SecurityIncident nor SecurityAlert has it)",
            )),
        }
    }
}

/// Parses the `events` array (also the body of `POST /_emulator/events`).
pub fn parse_events(value: Json, prefix: &str) -> Result<Vec<EventSpec>, ScenarioError> {
    let Json::Array(items) = value else {
        return Err(ScenarioError::at(prefix, "expected an array of events"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        out.push(parse_event(item, &path)?);
    }
    Ok(out)
}

pub(crate) fn parse_event(item: Json, path: &str) -> Result<EventSpec, ScenarioError> {
    let Json::Object(mut obj) = item else {
        return Err(ScenarioError::at(path, "an event is a JSON object"));
    };
    let kind = match obj.remove("do") {
        Some(Json::String(s)) => s,
        Some(_) => return Err(ScenarioError::at(format!("{path}.do"), "expected a string")),
        None => {
            return Err(ScenarioError::at(
                format!("{path}.do"),
                "missing field `do`",
            ));
        }
    };
    let at = match obj.remove("at") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s),
        Some(_) => {
            return Err(ScenarioError::at(
                format!("{path}.at"),
                "expected a string (RFC 3339 or relative like -3h)",
            ));
        }
    };
    if let Some(at) = &at {
        check_time(at, &format!("{path}.at"))?;
    }
    let value = Json::Object(obj);
    let event = match kind.as_str() {
        "new_alert" => Event::NewAlert(from_value_at(path, value)?),
        "alert_status" => Event::AlertStatus(from_value_at(path, value)?),
        "incident_status" => Event::IncidentStatus(from_value_at(path, value)?),
        "incident_owner" => Event::IncidentOwner(from_value_at(path, value)?),
        "incident_add_alert" => Event::IncidentAddAlert(from_value_at(path, value)?),
        "incident_comment" => Event::IncidentComment(from_value_at(path, value)?),
        "rows" => Event::Rows(from_value_at(path, value)?),
        "xdr_incident_status" => Event::XdrIncidentStatus(from_value_at(path, value)?),
        "xdr_alert" => Event::XdrAlert(from_value_at(path, value)?),
        "xdr_tune" => Event::XdrTune(from_value_at(path, value)?),
        "xdr_move_alert" => Event::XdrMoveAlert(from_value_at(path, value)?),
        other => {
            return Err(ScenarioError::at(
                format!("{path}.do"),
                format!(
                    "unknown event {other:?} (expected new_alert, alert_status, incident_status, \
                     incident_owner, incident_add_alert, incident_comment, rows, xdr_incident_status, \
                     xdr_alert, xdr_tune or xdr_move_alert)"
                ),
            ));
        }
    };
    Ok(EventSpec {
        path: path.to_string(),
        at,
        event,
    })
}

/// Checks the syntax of a time (RFC 3339 or a relative duration).
fn check_time(text: &str, path: &str) -> Result<(), ScenarioError> {
    if DateTime::parse_from_rfc3339(text).is_ok() || crate::duration::parse(text).is_ok() {
        Ok(())
    } else {
        Err(ScenarioError::at(
            path,
            format!("bad time {text:?}: expected RFC 3339 or relative to now (-90s, -3h, -2d)"),
        ))
    }
}

/// Resolves an event time against `now`.
pub fn resolve_time(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    crate::duration::parse(text).ok().map(|d| now + d)
}
