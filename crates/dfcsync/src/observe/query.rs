//! The one Log Analytics query dfcsync sends per workspace and cycle.
//!
//! It returns, in one table, every `SecurityIncident` row of the incidents in scope (created
//! within `max_age`, holding an alert of a configured product by the alert's `ProductName`
//! or the incident's `alertProductNames`) and every `SecurityAlert` row of those incidents'
//! alerts (of whatever product: an incident closes only when all its alerts are finished),
//! with only the columns the engine reads. A `Table` column says which table a row is from;
//! one more row (`Table` = `Clock`) carries the service's clock.
//!
//! One query rather than two: one round trip, one consistent point in time for both tables,
//! and one request against the 200-per-30-seconds query limit.
//!
//! Alert rows are read from `max_age` plus one day ago: no in-scope incident was created
//! earlier, so no alert row the engine needs is older than its creation minus the one-day
//! margin of semantics.md. (Bounding by the oldest in-scope `CreatedTime` exactly would need
//! `toscalar`, which the query avoids so that it runs unchanged in the `kql` engine.)

use crate::policy::Policy;

/// The `Table` value of incident rows.
pub const INCIDENT_TABLE: &str = "SecurityIncident";
/// The `Table` value of alert rows.
pub const ALERT_TABLE: &str = "SecurityAlert";
/// The `Table` value of the one row that carries the service's `now()` in `TimeGenerated`:
/// the engine decides at the service's time, not at a local clock that may be skewed.
pub const CLOCK_TABLE: &str = "Clock";

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
    "ProviderName",
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

/// The query text for `policy` (`dfcsync query` prints it).
pub fn sync_query(policy: &Policy) -> String {
    let minutes = policy.max_age.num_minutes().max(1);
    let products = policy
        .product_names
        .iter()
        .map(|p| kql_string(p))
        .collect::<Vec<_>>()
        .join(", ");
    let incident_cols = INCIDENT_COLUMNS.join(", ");
    let alert_cols = ALERT_COLUMNS.join(", ");
    format!(
        r#"// dfcsync: incidents in scope with all their rows, and the rows of their alerts.
let since = ago({minutes}m);
let products = dynamic([{products}]);
let incident_rows = SecurityIncident
    | where TimeGenerated >= since and CreatedTime >= since;
let alert_rows = SecurityAlert
    | where TimeGenerated >= since - 1d;
let incident_alerts = incident_rows
    | mv-expand AlertId = AlertIds to typeof(string)
    | distinct IncidentName, AlertId;
let by_product_name = incident_rows
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
    (incident_rows
        | join kind=inner (in_scope) on IncidentName
        | project Table = "{INCIDENT_TABLE}", {incident_cols}),
    (alert_rows
        | join kind=inner (scoped_alerts) on $left.SystemAlertId == $right.AlertId
        | project Table = "{ALERT_TABLE}", {alert_cols}),
    (print Table = "{CLOCK_TABLE}", TimeGenerated = now())
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
