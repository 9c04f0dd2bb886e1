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
    /// The incidents named (phase two of a two-phase whole read: the candidates).
    Named(Vec<String>),
}

/// The most incident names one by-name read carries (about 100 KB of query text).
pub const NAMES_PER_QUERY: usize = 2_500;

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
    let scope = scope_lets(policy, selection);
    format!(
        r#"// dfcsync: incidents in scope with all their rows, and the rows of their alerts.
{scope}let scoped_alerts = incident_alerts
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

/// The `let`s both a read and the candidate query start with: the window (`since`), the
/// rows of `selection` (`selected_rows`), the alert rows of the window (`alert_rows`), the
/// incidents' alert ids (`incident_alerts`) and the incidents in scope (`in_scope`).
fn scope_lets(policy: &Policy, selection: &Selection) -> String {
    let minutes = policy.max_age.num_minutes().max(1);
    let products = policy
        .product_names
        .iter()
        .map(|p| kql_string(p))
        .collect::<Vec<_>>()
        .join(", ");
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
        Selection::Named(names) => (
            format!(" and IncidentName in (dynamic([{}]))", kql_list(names)),
            String::from("let selected_rows = incident_rows;\n"),
        ),
    };
    format!(
        r#"let since = ago({minutes}m);
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
"#
    )
}

/// The `Table` value of the candidate query's rows that name a candidate.
pub const CANDIDATE_TABLE: &str = "Candidate";
/// The `Table` value of the candidate query's row that sizes a workspace (`Incidents`: the
/// incidents created within `max_age`, of any product).
pub const SIZE_TABLE: &str = "Size";

/// Phase one of a two-phase whole read: the in-scope incidents of `partition` the engine
/// could act on, hold or repair (the *candidates*), by name, with when each was created;
/// a `Size` row per workspace, and the clock. Phase two reads the candidates by name
/// ([`Selection::Named`]); the rest, settled, are not read.
///
/// The predicate is a superset of what the engine acts on, from each incident's newest row
/// (every row tied on `TimeGenerated` is tried, as the builder may pick any of them) against
/// the newest row of each of its alerts:
///
/// - any row of it or of one of its alerts that the builder would refuse (an empty `Status`,
///   no `LastModifiedTime` or `IncidentNumber`, a dynamic value of the wrong shape, a comment
///   without a message or a time among comments that hold a mark): a hold;
/// - a status other than New, Active, Closed; no alert listed, 150 or more, or
///   `alertsCount` above the list; an alert with no row since the incident's creation minus a
///   day, or whose newest rows disagree, or with a status the engine does not act on: holds;
/// - New with an alert InProgress or every alert finished; Active with every alert finished;
///   Closed with an alert not finished, unless the reopen policy forbids it (`never`, or
///   `own` and no close mark in the classification comment); with writeback, New or Active
///   with a New alert;
/// - Closed with dfcsync's close mark in the classification comment and in no row's comments
///   (the audit comment to repair), or with two close marks.
///
/// What it leaves out: New or Active incidents whose alerts are not all finished (and none
/// InProgress while New), and Closed ones whose alerts are all finished: on a settled
/// workspace, nearly all. The engine's guards only ever remove actions from what the
/// verdict and the status call for, so they need no place here. `tests/two_phase.rs` runs
/// random histories through both reads and compares the plans.
pub fn candidate_query(policy: &Policy, partition: Partition, many_workspaces: bool) -> String {
    let workspace = if many_workspaces {
        format!("{WORKSPACE_COLUMN}, ")
    } else {
        String::new()
    };
    let by_workspace = if many_workspaces {
        format!(" by {WORKSPACE_COLUMN}")
    } else {
        String::new()
    };
    let scope = scope_lets(policy, &Selection::Partition(partition));
    let writeback_new = if policy.writeback {
        " or Fresh > 0"
    } else {
        ""
    };
    let reopen = match policy.reopen {
        crate::policy::ReopenPolicy::Never => "",
        crate::policy::ReopenPolicy::Own => {
            "\n        or (Status == \"Closed\" and Finished < Total and OwnClose)"
        }
        crate::policy::ReopenPolicy::Always => {
            "\n        or (Status == \"Closed\" and Finished < Total)"
        }
    };
    format!(
        r#"// dfcsync: the incidents a whole read could act on, hold or repair (phase one of two).
{scope}let scoped_rows = selected_rows
    | join kind=inner (in_scope) on IncidentName;
let alert_state = alert_rows
    | summarize AlertNewest = max(TimeGenerated), Blank = countif(isempty(Status)) by SystemAlertId
    | join kind=inner (alert_rows) on SystemAlertId
    | where TimeGenerated == AlertNewest
    | summarize Statuses = make_set(Status), Blank = max(Blank) by SystemAlertId, AlertNewest
    | project AlertId = SystemAlertId, AlertNewest,
        AlertKind = iff(Blank > 0 or array_length(Statuses) != 1, "?", tostring(Statuses[0]));
let newest_rows = scoped_rows
    | summarize Newest = max(TimeGenerated),
        Odd = countif(isempty(Status) or isnull(LastModifiedTime) or isnull(IncidentNumber)
            or (isnotempty(AlertIds) and isnull(array_length(AlertIds)))
            or (isnotempty(AdditionalData.alertProductNames) and isnull(array_length(AdditionalData.alertProductNames)))
            or (isnotempty(AdditionalData.alertsCount) and isnull(tolong(AdditionalData.alertsCount)))
            or (tostring(Comments) contains {mark} and isnull(array_length(Comments))))
        by IncidentName
    | join kind=inner (scoped_rows) on IncidentName
    | where TimeGenerated == Newest
    | extend Listed = array_length(AlertIds),
        CloseMark = extract(@"\[dfcsync:close:[0-9a-f]{{16}}\]", 0, ClassificationComment)
    | extend OwnClose = isnotempty(CloseMark),
        RowDue = Odd > 0 or Status !in ("New", "Active", "Closed")
            or isnull(Listed) or Listed == 0 or Listed >= {cap}
            or tolong(AdditionalData.alertsCount) > Listed
            or isnotempty(extract(@"\[dfcsync:close:[0-9a-f]{{16}}\].*\[dfcsync:close:", 0, ClassificationComment));
let due_by_row = newest_rows
    | where RowDue
    | distinct IncidentName;
let odd_comments = scoped_rows
    | where tostring(Comments) contains {mark}
    | mv-expand Comment = Comments
    | where isnull(Comment.message) or isnull(todatetime(Comment.createdTimeUtc))
    | distinct IncidentName;
let due_for_repair = newest_rows
    | where Status == "Closed" and isnotempty(CloseMark)
    | distinct IncidentName, CloseMark
    | join kind=inner (scoped_rows | project IncidentName, Comments) on IncidentName
    | summarize Commented = countif(tostring(Comments) contains_cs CloseMark) by IncidentName, CloseMark
    | where Commented == 0
    | distinct IncidentName;
let due_by_alerts = newest_rows
    | where not(RowDue)
    | extend AlertList = tostring(AlertIds)
    | mv-expand AlertId = AlertIds to typeof(string)
    | join kind=leftouter (alert_state) on AlertId
    | summarize Total = count(),
        Found = countif(isnotnull(AlertNewest) and AlertNewest >= CreatedTime - 1d),
        Unknown = countif(AlertKind !in ("New", "InProgress", "Resolved", "Dismissed")),
        Finished = countif(AlertKind in ("Resolved", "Dismissed")),
        Working = countif(AlertKind == "InProgress"),
        Fresh = countif(AlertKind == "New")
        by IncidentName, Status, CreatedTime, AlertList, OwnClose
    | where Found < Total or Unknown > 0
        or (Status == "New" and (Working > 0 or Finished == Total{writeback_new}))
        or (Status == "Active" and (Finished == Total{writeback_new})){reopen}
    | distinct IncidentName;
let candidates = union due_by_row, odd_comments, due_for_repair, due_by_alerts
    | distinct IncidentName;
union
    (scoped_rows
        | join kind=inner (candidates) on IncidentName
        | summarize CreatedTime = min(CreatedTime) by {workspace}IncidentName
        | project Table = "{CANDIDATE_TABLE}", {workspace}IncidentName, CreatedTime),
    (incident_rows
        | summarize Incidents = dcount(IncidentName){by_workspace}
        | project Table = "{SIZE_TABLE}", {workspace}Incidents),
    (print Table = "{CLOCK_TABLE}", TimeGenerated = now())
"#,
        mark = kql_string(MARK_PREFIX),
        cap = crate::decide::MAX_ALERTS_PER_INCIDENT,
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
        format!(" or IncidentName in (dynamic([{}]))", kql_list(also))
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

/// KQL string literals, comma-separated.
fn kql_list(items: &[String]) -> String {
    items
        .iter()
        .map(|n| kql_string(n))
        .collect::<Vec<_>>()
        .join(", ")
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
