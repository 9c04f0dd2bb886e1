//! The append-only tables of the platform: the `SecurityAlert` and `SecurityIncident` rows each
//! change pushes, exported rows imported as they are, and the model (alerts, incidents)
//! brought in line with the newest imported row of each.

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::{Alert, Comment, DfcInfo, DfcStatus, Incident, Platform, empty_owner, incident_url};
use crate::ids::IdGen;
use crate::scenario::{ImportRows, ScenarioError, import_columns};
use crate::table::{Cell, Row, TableKind, cell_time, string, time};

impl Platform {
    // ---------------------------------------------------------------- rows

    /// Pushes the alert's current state as a new `SecurityAlert` row (none without a
    /// workspace).
    pub(super) fn push_alert_row(&mut self, idx: usize, at: DateTime<Utc>) {
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

    /// Pushes the incident's current state as a new `SecurityIncident` row.
    pub(super) fn push_incident_row(&mut self, idx: usize, at: DateTime<Utc>) {
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
    pub(super) fn import_rows(
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
                let renumbered = self.incidents[idx].number != inc.number;
                if renumbered {
                    self.unindex_number(idx);
                }
                self.incidents[idx] = inc;
                if renumbered {
                    self.index_number(idx);
                }
                idx
            }
            None => {
                let idx = self.incidents.len();
                self.incidents.push(inc);
                self.incident_by_name.insert(name, idx);
                self.index_number(idx);
                idx
            }
        };
        self.index_alerts_of(idx);
    }
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
