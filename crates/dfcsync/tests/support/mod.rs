//! Test support: a small model of the platform's two append-only tables, written the way Log
//! Analytics returns them (a query response with dynamic values as JSON strings), and the
//! platform's answer to the writes of a plan (new incident rows, comments, the echo of a
//! close on the alerts).
#![allow(dead_code)]

pub mod history;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use dfcsync::decide::{Plan, decide};
use dfcsync::model::{ActionKind, Snapshot};
use dfcsync::observe::build_snapshot;
use dfcsync::policy::Policy;

pub const DFC: &str = "Azure Security Center";
pub const TOOL: &str = "dfcsync (app 5b1c2a77-0000-0000-0000-00000000d5c5)";
pub const ANALYST: &str = "analyst@contoso.com";
/// A comment message starting with this is written without its `createdTimeUtc` (an
/// unreadable comment), the prefix left out.
pub const UNDATED: &str = "\u{1}undated:";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Minutes relative to the world's `now`.
pub fn at(now: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    now + TimeDelta::minutes(minutes)
}

pub fn la_time(t: DateTime<Utc>) -> String {
    // The service trims trailing zeros of the fraction (kql-semantics.md §4).
    let s = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (head, frac) = s.trim_end_matches('Z').split_once('.').unwrap();
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{head}Z")
    } else {
        format!("{head}.{frac}Z")
    }
}

#[derive(Clone, Debug)]
pub struct AlertRow {
    pub id: String,
    pub status: String,
    pub time: DateTime<Utc>,
    pub product: String,
}

#[derive(Clone, Debug)]
pub struct IncidentRow {
    pub time: DateTime<Utc>,
    pub status: String,
    pub by: String,
    pub classification: String,
    pub reason: String,
    pub cc: String,
    pub owner: Option<String>,
    pub comments: Vec<(String, DateTime<Utc>)>,
    pub alert_ids: Vec<String>,
    /// `AdditionalData.alertsCount` when it differs from the list (a list cut at the cap).
    pub alerts_count: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Incident {
    pub name: String,
    pub number: i64,
    pub created: DateTime<Utc>,
    pub product_names: Vec<String>,
    pub rows: Vec<IncidentRow>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub now: DateTime<Utc>,
    pub policy: Policy,
    pub incidents: Vec<Incident>,
    pub alerts: Vec<AlertRow>,
    /// Closing an incident resolves its alerts (bi-directional sync).
    pub bidirectional: bool,
    /// The echo of a close leaves Dismissed alerts Dismissed.
    pub echo_keeps_dismissed: bool,
    /// Column order of the incident table (tests that columns are read by name).
    pub reverse_columns: bool,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        Self {
            now: t0(),
            policy: Policy::default(),
            incidents: Vec::new(),
            alerts: Vec::new(),
            bidirectional: true,
            echo_keeps_dismissed: false,
            reverse_columns: false,
        }
    }

    /// Minutes relative to the fixed origin `t0()` (12:00), not to the moving `now`.
    pub fn t(&self, minutes: i64) -> DateTime<Utc> {
        at(t0(), minutes)
    }

    /// A `SecurityAlert` row: a new alert, or a status change in DfC.
    pub fn alert(&mut self, id: &str, status: &str, minutes: i64) -> &mut Self {
        let t = self.t(minutes);
        self.alert_at(id, status, t, DFC)
    }

    pub fn alert_at(
        &mut self,
        id: &str,
        status: &str,
        time: DateTime<Utc>,
        product: &str,
    ) -> &mut Self {
        self.alerts.push(AlertRow {
            id: id.into(),
            status: status.into(),
            time,
            product: product.into(),
        });
        self
    }

    /// The platform re-ingests an alert row without a status change.
    pub fn reingest(&mut self, id: &str, minutes: i64) -> &mut Self {
        let last = self.newest_alert(id).expect("alert exists").clone();
        let t = self.t(minutes);
        self.alert_at(id, &last.status, t, &last.product)
    }

    pub fn newest_alert(&self, id: &str) -> Option<&AlertRow> {
        self.alerts
            .iter()
            .filter(|a| a.id == id)
            .max_by_key(|a| a.time)
    }

    /// A new incident for these alerts, created by the analytics rule. Returns its index.
    pub fn incident(&mut self, number: i64, alert_ids: &[&str], minutes: i64) -> usize {
        let created = self.t(minutes);
        self.incidents.push(Incident {
            name: format!("00000000-0000-4000-8000-{number:012}"),
            number,
            created,
            product_names: vec![DFC.into()],
            rows: vec![IncidentRow {
                time: created,
                status: "New".into(),
                by: "Incident created from alert".into(),
                classification: String::new(),
                reason: String::new(),
                cc: String::new(),
                owner: None,
                comments: Vec::new(),
                alert_ids: alert_ids.iter().map(|s| s.to_string()).collect(),
                alerts_count: None,
            }],
        });
        self.incidents.len() - 1
    }

    /// A new row for incident `i`. Rows of one incident get distinct times, as in the
    /// service: a row at the same instant as the previous one is ingested a second later.
    fn push_row(
        &mut self,
        i: usize,
        time: DateTime<Utc>,
        by: &str,
        change: impl FnOnce(&mut IncidentRow),
    ) -> DateTime<Utc> {
        let mut row = self.incidents[i].rows.last().unwrap().clone();
        let time = time.max(row.time + TimeDelta::seconds(1));
        row.time = time;
        row.by = by.into();
        change(&mut row);
        self.incidents[i].rows.push(row);
        time
    }

    pub fn set_status(&mut self, i: usize, status: &str, minutes: i64, by: &str) -> &mut Self {
        let t = self.t(minutes);
        let _ = self.push_row(i, t, by, |r| {
            r.status = status.into();
            if status != "Closed" {
                r.classification.clear();
                r.reason.clear();
                r.cc.clear();
            }
        });
        self
    }

    pub fn close(
        &mut self,
        i: usize,
        minutes: i64,
        by: &str,
        class: &str,
        reason: &str,
        cc: &str,
    ) -> &mut Self {
        let t = self.t(minutes);
        self.close_at(i, t, by, class, reason, cc);
        self
    }

    fn close_at(
        &mut self,
        i: usize,
        t: DateTime<Utc>,
        by: &str,
        class: &str,
        reason: &str,
        cc: &str,
    ) {
        let _ = self.push_row(i, t, by, |r| {
            r.status = "Closed".into();
            r.classification = class.into();
            r.reason = reason.into();
            r.cc = cc.into();
        });
        if self.bidirectional {
            self.echo(i, t + TimeDelta::seconds(40));
        }
    }

    /// Closing an incident resolves its alerts in DfC and in the table.
    fn echo(&mut self, i: usize, t: DateTime<Utc>) {
        let ids = self.incidents[i].rows.last().unwrap().alert_ids.clone();
        for id in ids {
            let Some(last) = self.newest_alert(&id).cloned() else {
                continue;
            };
            if last.status == "Resolved"
                || (self.echo_keeps_dismissed && last.status == "Dismissed")
            {
                continue;
            }
            self.alert_at(&id, "Resolved", t, &last.product.clone());
        }
    }

    pub fn comment(&mut self, i: usize, minutes: i64, by: &str, message: &str) -> &mut Self {
        let t = self.t(minutes);
        self.comment_at(i, t, by, message);
        self
    }

    fn comment_at(&mut self, i: usize, t: DateTime<Utc>, by: &str, message: &str) {
        let t = self.push_row(i, t, by, |_| {});
        self.incidents[i]
            .rows
            .last_mut()
            .unwrap()
            .comments
            .push((message.into(), t));
    }

    pub fn set_owner(&mut self, i: usize, minutes: i64, by: &str, owner: &str) -> &mut Self {
        let t = self.t(minutes);
        let _ = self.push_row(i, t, by, |r| r.owner = Some(owner.into()));
        self
    }

    pub fn add_alert_to_incident(
        &mut self,
        i: usize,
        id: &str,
        minutes: i64,
        by: &str,
    ) -> &mut Self {
        let t = self.t(minutes);
        let _ = self.push_row(i, t, by, |r| r.alert_ids.push(id.into()));
        self
    }

    pub fn incidents_json(&self) -> String {
        let mut columns = vec![
            ("TenantId", "string"),
            ("TimeGenerated", "datetime"),
            ("IncidentName", "string"),
            ("Title", "string"),
            ("Description", "string"),
            ("Severity", "string"),
            ("Status", "string"),
            ("Classification", "string"),
            ("ClassificationComment", "string"),
            ("ClassificationReason", "string"),
            ("Owner", "dynamic"),
            ("ProviderName", "string"),
            ("ProviderIncidentId", "string"),
            ("FirstActivityTime", "datetime"),
            ("LastActivityTime", "datetime"),
            ("FirstModifiedTime", "datetime"),
            ("LastModifiedTime", "datetime"),
            ("CreatedTime", "datetime"),
            ("ClosedTime", "datetime"),
            ("IncidentNumber", "int"),
            ("RelatedAnalyticRuleIds", "dynamic"),
            ("AlertIds", "dynamic"),
            ("BookmarkIds", "dynamic"),
            ("Comments", "dynamic"),
            ("Tasks", "dynamic"),
            ("Labels", "dynamic"),
            ("IncidentUrl", "string"),
            ("AdditionalData", "dynamic"),
            ("ModifiedBy", "string"),
            ("SourceSystem", "string"),
            ("Type", "string"),
        ];
        if self.reverse_columns {
            columns.reverse();
        }
        let mut rows = Vec::new();
        for inc in &self.incidents {
            for r in &inc.rows {
                let owner = json!({"objectId": r.owner, "email": null, "assignedTo": r.owner, "userPrincipalName": r.owner});
                let comments: Vec<Value> = r
                    .comments
                    .iter()
                    .map(|(m, t)| match m.strip_prefix(UNDATED) {
                        // A comment the comments API would not give: no time.
                        Some(m) => json!({"message": m, "author": {"name": "x"}}),
                        None => json!({"message": m, "createdTimeUtc": la_time(*t), "author": {"name": "x"}}),
                    })
                    .collect();
                let additional = json!({"alertsCount": r.alerts_count.unwrap_or(r.alert_ids.len()), "bookmarksCount": 0, "commentsCount": r.comments.len(),
                                        "alertProductNames": inc.product_names, "tactics": []});
                let cell = |name: &str| -> Value {
                    match name {
                        "TenantId" => json!("72f988bf-0000-0000-0000-000000000001"),
                        "TimeGenerated" | "LastModifiedTime" => json!(la_time(r.time)),
                        "IncidentName" => json!(inc.name),
                        "Title" => json!(format!("Incident {}", inc.number)),
                        "Description" | "ProviderIncidentId" | "IncidentUrl" => json!(""),
                        "Severity" => json!("High"),
                        "Status" => json!(r.status),
                        "Classification" => json!(r.classification),
                        "ClassificationComment" => json!(r.cc),
                        "ClassificationReason" => json!(r.reason),
                        "Owner" => json!(owner.to_string()),
                        "ProviderName" => json!("Azure Sentinel"),
                        "FirstActivityTime" | "LastActivityTime" | "FirstModifiedTime"
                        | "CreatedTime" => json!(la_time(inc.created)),
                        "ClosedTime" => {
                            if r.status == "Closed" {
                                json!(la_time(r.time))
                            } else {
                                Value::Null
                            }
                        }
                        "IncidentNumber" => json!(inc.number),
                        "AlertIds" => json!(serde_json::to_string(&r.alert_ids).unwrap()),
                        "Comments" => json!(Value::Array(comments.clone()).to_string()),
                        "RelatedAnalyticRuleIds" | "BookmarkIds" | "Tasks" | "Labels" => {
                            json!("[]")
                        }
                        "AdditionalData" => json!(additional.to_string()),
                        "ModifiedBy" => json!(r.by),
                        "SourceSystem" => json!("Azure"),
                        "Type" => json!("SecurityIncident"),
                        other => panic!("no cell for {other}"),
                    }
                };
                rows.push(Value::Array(columns.iter().map(|(n, _)| cell(n)).collect()));
            }
        }
        la_response(&columns, rows)
    }

    /// Both tables as the `kql` engine's database.
    pub fn database(&self) -> kql::Database {
        let mut db = kql::Database::new();
        let parse = |s: String| {
            kql::Table::from_log_analytics_json(&serde_json::from_str(&s).unwrap()).unwrap()
        };
        db.insert("SecurityIncident", parse(self.incidents_json()));
        db.insert("SecurityAlert", parse(self.alerts_json()));
        db
    }

    pub fn alerts_json(&self) -> String {
        let columns = [
            ("TimeGenerated", "datetime"),
            ("DisplayName", "string"),
            ("AlertName", "string"),
            ("AlertSeverity", "string"),
            ("ProviderName", "string"),
            ("VendorName", "string"),
            ("VendorOriginalId", "string"),
            ("SystemAlertId", "string"),
            ("ProductName", "string"),
            ("AlertLink", "string"),
            ("Status", "string"),
            ("Type", "string"),
            ("TenantId", "string"),
        ];
        let rows = self
            .alerts
            .iter()
            .map(|a| {
                let vendor = format!("2517228307705103557_{}", a.id);
                json!([
                    la_time(a.time),
                    format!("Alert {}", a.id),
                    format!("Alert {}", a.id),
                    "High",
                    "Azure Security Center",
                    "Microsoft",
                    vendor,
                    a.id,
                    a.product,
                    format!("https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{vendor}/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope"),
                    a.status,
                    "SecurityAlert",
                    "72f988bf-0000-0000-0000-000000000001"
                ])
            })
            .collect();
        la_response(&columns, rows)
    }

    pub fn snapshot(&self) -> Snapshot {
        build_snapshot(
            self.incidents_json().as_bytes(),
            self.alerts_json().as_bytes(),
        )
        .expect("the generated rows are readable")
    }

    pub fn plan(&self) -> Plan {
        decide(&self.snapshot(), &self.policy, self.now)
    }

    /// What the platform does when the plan is carried out at `t(minutes)`: the writes,
    /// their comments, and the echo of a close. The world's clock moves on to just after.
    pub fn apply(&mut self, plan: &Plan, minutes: i64) {
        let t = self.t(minutes);
        for a in &plan.actions {
            let i = self
                .incidents
                .iter()
                .position(|x| *x.name == *a.incident)
                .expect("planned incident exists");
            match a.kind {
                ActionKind::Close => {
                    let c = a.closure.unwrap();
                    let cc = a.classification_comment.clone().unwrap();
                    let _ = self.push_row(i, t, TOOL, |r| {
                        r.status = "Closed".into();
                        r.classification = c.classification().to_string();
                        r.reason = c.reason().map(|r| r.to_string()).unwrap_or_default();
                        r.cc = cc;
                    });
                    self.comment_at(i, t, TOOL, &a.comment);
                    if self.bidirectional {
                        self.echo(i, t + TimeDelta::seconds(40));
                    }
                }
                ActionKind::Activate | ActionKind::Reopen => {
                    let _ = self.push_row(i, t, TOOL, |r| {
                        r.status = "Active".into();
                        r.classification.clear();
                        r.reason.clear();
                        r.cc.clear();
                    });
                    self.comment_at(i, t, TOOL, &a.comment);
                }
                ActionKind::Notice => self.comment_at(i, t, TOOL, &a.comment),
                ActionKind::Writeback => {
                    for target in &a.alerts_to_set_in_progress {
                        let id = target
                            .name
                            .trim_start_matches("2517228307705103557_")
                            .to_owned();
                        let product = self.newest_alert(&id).unwrap().product.clone();
                        self.alert_at(&id, "InProgress", t, &product);
                    }
                    self.comment_at(i, t, TOOL, &a.comment);
                }
            }
        }
        self.now = t + TimeDelta::minutes(1);
    }
}

pub fn la_response(columns: &[(&str, &str)], rows: Vec<Value>) -> String {
    let cols: Vec<Value> = columns
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect();
    json!({"tables": [{"name": "PrimaryResult", "columns": cols, "rows": rows}]}).to_string()
}
