//! The `GET /_emulator/state` document: the model's incidents and alerts (Sentinel, DfC and
//! XDR) and, on request, every table row.

use serde_json::{Value as Json, json};

use super::Platform;
use crate::table::TableKind;

impl Platform {
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
            // Custom tables (Logs Ingestion), every workspace's rows.
            for t in &self.tables {
                for name in t.custom_tables() {
                    let rows = t.rows_json(name);
                    match tables.get_mut(name) {
                        Some(Json::Array(all)) => all.extend(rows),
                        _ => {
                            tables.insert(name.to_string(), Json::Array(rows));
                        }
                    }
                }
            }
            doc["tables"] = Json::Object(tables);
        }
        doc
    }
}
