//! The Log Analytics queries dfcsync sends: the read of incidents (whole, one partition of
//! them, or only those that changed) and the count that sizes a partitioned read.
//!
//! A read returns, in one table, every `SecurityIncident` row of the incidents it selects
//! that are in scope (created within `max_age`, holding an alert of a configured product by
//! the alert's `ProductName` or the incident's `alertProductNames`) and every `SecurityAlert`
//! row of those incidents' alerts (of whatever product: an incident closes only when all its
//! alerts are finished), with only the columns the engine reads. A `Table` column says which
//! table a row is from; `TenantId` (the workspace id) says which workspace, when one query
//! reads several (the query body's `workspaces`); one more row (`Table` = `Clock`) carries
//! the service's clock.
//!
//! One query rather than two: one round trip, one consistent point in time for both tables,
//! and one request against the 200-per-30-seconds query limit.
//!
//! What a read selects is a [`Selection`]: every in-scope incident, one partition of them
//! (`IncidentNumber % modulus == residue`: see [`partition`](super::partition)), or those
//! with a row, or an alert with a row, ingested since a watermark (`ingestion_time()`: see
//! [`change_feed`](super::change_feed)). Whatever the selection, an incident it selects comes
//! back with all its rows and all its alerts' rows, so the engine sees the same snapshot of
//! it as a whole read gives.
//!
//! Bytes are spent only on what the engine reads: a `ClassificationComment` or `Comments`
//! cell is sent only when it holds a mark (`[dfcsync:`), the only thing the engine reads of
//! them, otherwise it comes back empty; of `Owner` only the first identifier set (object id,
//! UPN, e-mail or name, the engine's order), of `AdditionalData` only `alertProductNames`
//! and `alertsCount` (which tells an alert list cut at Sentinel's cap).
//!
//! Alert rows are read from `max_age` plus one day ago: no in-scope incident was created
//! earlier, so no alert row the engine needs is older than its creation minus the one-day
//! margin of semantics.md.

use chrono::{DateTime, Utc};

use crate::policy::Policy;

/// The `Table` value of incident rows.
pub const INCIDENT_TABLE: &str = "SecurityIncident";
/// The `Table` value of alert rows.
pub const ALERT_TABLE: &str = "SecurityAlert";
/// The `Table` value of the one row that carries the service's `now()` in `TimeGenerated`:
/// the engine decides at the service's time, not at a local clock that may be skewed.
pub const CLOCK_TABLE: &str = "Clock";
/// The column that names a row's workspace (its workspace id, the query API's `customerId`).
pub const WORKSPACE_COLUMN: &str = "TenantId";

/// The incident columns the engine reads.
pub const INCIDENT_COLUMNS: &[&str] = &[
    "TimeGenerated",
    "IncidentName",
    "IncidentNumber",
    "Title",
    "Status",
    "Classification",
    "ClassificationReason",
    "ClassificationComment",
    "Owner",
    "AlertIds",
    "AdditionalData",
    "CreatedTime",
    "LastModifiedTime",
    "ModifiedBy",
    "Comments",
];

/// The alert columns the engine reads.
pub const ALERT_COLUMNS: &[&str] = &[
    "TimeGenerated",
    "SystemAlertId",
    "Status",
    "ProductName",
    "VendorOriginalId",
    "DisplayName",
    "AlertLink",
];

/// What the text the engine looks for in comments starts with (a mark, `model::Mark`).
const MARK_PREFIX: &str = "[dfcsync:";

/// One partition of the incidents: those whose `IncidentNumber % modulus == residue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub modulus: u32,
    pub residue: u32,
}

impl Partition {
    /// The whole: one partition of one.
    pub const WHOLE: Partition = Partition {
        modulus: 1,
        residue: 0,
    };
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.residue, self.modulus)
    }
}

/// Which incidents a read selects (before the scope: every selection is cut to the
/// incidents in scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One partition of the incidents ([`Partition::WHOLE`]: all of them).
    Partition(Partition),
    /// The incidents with a `SecurityIncident` row, or an alert with a `SecurityAlert` row,
    /// ingested at or after `since`, and the incidents named in `also` (whatever changed).
    Changed { since: Since, also: Vec<String> },
}

/// Where a change-feed read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Rows ingested at or after this instant of the service's clock (a watermark).
    At(DateTime<Utc>),
    /// Rows ingested within this long before the service's `now()` (`--changed-within`).
    Within(chrono::TimeDelta),
}

/// The query text of a whole read of one workspace for `policy` (`dfcsync query` prints it).
pub fn sync_query(policy: &Policy) -> String {
    read_query(policy, &Selection::Partition(Partition::WHOLE), false)
}

/// The query text of a read of `selection`. With `many_workspaces` (a query over several
/// workspaces), each row also says its workspace ([`WORKSPACE_COLUMN`]); a query of one
/// workspace does not spend the bytes.
pub fn read_query(policy: &Policy, selection: &Selection, many_workspaces: bool) -> String {
    let workspace = if many_workspaces {
        format!("{WORKSPACE_COLUMN}, ")
    } else {
        String::new()
    };
    let minutes = policy.max_age.num_minutes().max(1);
    let products = policy
        .product_names
        .iter()
        .map(|p| kql_string(p))
        .collect::<Vec<_>>()
        .join(", ");
    let incident_cols = INCIDENT_COLUMNS
        .iter()
        .map(|c| match *c {
            "ClassificationComment" => format!(
                "ClassificationComment = iff(ClassificationComment contains {mark}, ClassificationComment, \"\")",
                mark = kql_string(MARK_PREFIX)
            ),
            "Comments" => format!(
                "Comments = iff(tostring(Comments) contains {mark}, Comments, dynamic(null))",
                mark = kql_string(MARK_PREFIX)
            ),
            // The engine reads one identifier of the owner (the first set of these), and the
            // product names and the alert count of the additional data; the rest of each bag
            // is left behind.
            "Owner" => "Owner = bag_pack(\"objectId\", coalesce(tostring(Owner.objectId), tostring(Owner.userPrincipalName), tostring(Owner.email), tostring(Owner.assignedTo)))".to_owned(),
            "AdditionalData" => "AdditionalData = bag_pack(\"alertProductNames\", AdditionalData.alertProductNames, \"alertsCount\", AdditionalData.alertsCount)".to_owned(),
            c => c.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let alert_cols = ALERT_COLUMNS.join(", ");
    let (partition_filter, selected) = match selection {
        Selection::Partition(p) if p.modulus > 1 => (
            format!(" and IncidentNumber % {} == {}", p.modulus, p.residue),
            String::from("let selected_rows = incident_rows;\n"),
        ),
        Selection::Partition(_) => (
            String::new(),
            String::from("let selected_rows = incident_rows;\n"),
        ),
        Selection::Changed { since, also } => (String::new(), changed_selection(*since, also)),
    };
    format!(
        r#"// dfcsync: incidents in scope with all their rows, and the rows of their alerts.
let since = ago({minutes}m);
let products = dynamic([{products}]);
let incident_rows = SecurityIncident
    | where TimeGenerated >= since and CreatedTime >= since{partition_filter};
let alert_rows = SecurityAlert
    | where TimeGenerated >= since - 1d;
{selected}let incident_alerts = selected_rows
    | mv-expand AlertId = AlertIds to typeof(string)
    | distinct IncidentName, AlertId;
let by_product_name = selected_rows
    | mv-expand Product = AdditionalData.alertProductNames to typeof(string)
    | where Product in~ (products)
    | distinct IncidentName;
let by_alert = alert_rows
    | where ProductName in~ (products)
    | distinct SystemAlertId
    | join kind=inner (incident_alerts) on $left.SystemAlertId == $right.AlertId
    | distinct IncidentName;
let in_scope = union by_product_name, by_alert
    | distinct IncidentName;
let scoped_alerts = incident_alerts
    | join kind=inner (in_scope) on IncidentName
    | distinct AlertId;
union
    (selected_rows
        | join kind=inner (in_scope) on IncidentName
        | project Table = "{INCIDENT_TABLE}", {workspace}{incident_cols}),
    (alert_rows
        | join kind=inner (scoped_alerts) on $left.SystemAlertId == $right.AlertId
        | project Table = "{ALERT_TABLE}", {workspace}{alert_cols}),
    (print Table = "{CLOCK_TABLE}", TimeGenerated = now())
"#
    )
}

/// The `let`s that select the incidents that changed since `since`, and those in `also`.
fn changed_selection(since: Since, also: &[String]) -> String {
    let since = match since {
        Since::At(t) => format!("datetime({})", t.format("%Y-%m-%dT%H:%M:%S%.fZ")),
        Since::Within(d) => format!("ago({}s)", d.num_seconds().max(1)),
    };
    let named = if also.is_empty() {
        String::new()
    } else {
        let names = also
            .iter()
            .map(|n| kql_string(n))
            .collect::<Vec<_>>()
            .join(", ");
        format!(" or IncidentName in (dynamic([{names}]))")
    };
    format!(
        r#"let changed_since = {since};
let changed_alerts = alert_rows
    | where ingestion_time() >= changed_since
    | distinct SystemAlertId;
let changed = union
    (incident_rows
        | where ingestion_time() >= changed_since{named}
        | distinct IncidentName),
    (incident_rows
        | mv-expand AlertId = AlertIds to typeof(string)
        | join kind=inner (changed_alerts) on $left.AlertId == $right.SystemAlertId
        | distinct IncidentName)
    | distinct IncidentName;
let selected_rows = incident_rows
    | join kind=inner (changed) on IncidentName;
"#
    )
}

/// The query that sizes a whole read: per workspace, the incident rows and incidents created
/// within `max_age`, and the alert rows of the window. An upper bound of what a whole read
/// answers (the scope is not applied: counting it would cost as much as the read).
pub fn count_query(policy: &Policy) -> String {
    let minutes = policy.max_age.num_minutes().max(1);
    format!(
        r#"// dfcsync: how large a whole read would be, per workspace.
let since = ago({minutes}m);
union
    (SecurityIncident
        | where TimeGenerated >= since and CreatedTime >= since
        | summarize IncidentRows = count(), Incidents = dcount(IncidentName), MaxNumber = max(IncidentNumber) by {WORKSPACE_COLUMN}),
    (SecurityAlert
        | where TimeGenerated >= since - 1d
        | summarize AlertRows = count() by {WORKSPACE_COLUMN})
"#
    )
}

/// A KQL string literal: double-quoted, with `\` and `"` escaped.
fn kql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_and_products_are_in_the_text() {
        let p = Policy {
            max_age: chrono::TimeDelta::days(30),
            product_names: vec![
                "Azure Security Center".into(),
                r#"Odd "name" \ here"#.into(),
            ],
            ..Policy::default()
        };
        let q = sync_query(&p);
        assert!(q.contains("let since = ago(43200m);"), "{q}");
        assert!(
            q.contains(r#"dynamic(["Azure Security Center", "Odd \"name\" \\ here"])"#),
            "{q}"
        );
    }
}
