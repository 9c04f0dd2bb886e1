//! The Logs Ingestion API's data collection rules (`docs/azure-services.md` §3): a workspace's
//! DCR (immutable id, its ARM id for the role check, the stream it declares and the custom
//! table it feeds), its declared columns and their types, and the rows a posted JSON array
//! becomes (typed by the declared columns; undeclared fields dropped; a missing
//! `TimeGenerated` set to the arrival; a text longer than 64 KB truncated). Pure: the HTTP
//! layer (`http::ingest`) checks the request and pushes the rows.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::scenario::{DcrSpec, ScenarioError};
use crate::table::{Cell, ColType, Row, cell_from_json, string, time};

/// The Logs Ingestion API version of the reference.
pub const API_VERSIONS: &[&str] = &["2023-01-01", "2021-11-01-preview", "2023-04-01-preview"];

/// The most bytes of one call, compressed and uncompressed (§3.3).
pub const MAX_BODY: usize = 1_048_576;

/// The longest field value kept; longer ones are truncated, not refused (§3.3).
pub const MAX_FIELD: usize = 64 * 1024;

/// A data collection rule feeding one custom table of a workspace.
#[derive(Debug, Clone)]
pub struct Dcr {
    pub immutable_id: String,
    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.Insights/dataCollectionRules/{name}`
    /// (Monitoring Metrics Publisher is assigned there or above).
    pub arm_id: String,
    /// The stream declaration's name (`Custom-DfcSync_CL`).
    pub stream: String,
    /// The custom table (`DfcSync_CL`).
    pub table: String,
    /// The stream's declared columns and their types (`TimeGenerated` first).
    pub columns: Vec<(String, ColType)>,
}

/// A DCR column type (`streamDeclarations` `ColumnDefinition`: string, int, long, real,
/// boolean, datetime, dynamic; any case).
fn column_type(t: &str) -> Option<ColType> {
    Some(match t.to_ascii_lowercase().as_str() {
        "string" => ColType::String,
        "int" => ColType::Int,
        "long" => ColType::Long,
        "real" => ColType::Real,
        "boolean" | "bool" => ColType::Bool,
        "datetime" => ColType::DateTime,
        "dynamic" => ColType::Dynamic,
        _ => return None,
    })
}

/// Columns a client may not send (Log Analytics sets them; §3.3's reserved names).
const RESERVED: &[&str] = &["TenantId", "Type"];

impl Dcr {
    /// The DCR a workspace's `dcr` field describes (`path`: the field's JSON path).
    pub fn from_spec(
        spec: &DcrSpec,
        subscription_id: &str,
        resource_group: &str,
        path: &str,
    ) -> Result<Dcr, ScenarioError> {
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        if !spec.immutable_id.starts_with("dcr-") || spec.immutable_id.len() < 5 {
            return Err(err(
                "immutable_id",
                "expected dcr-<32 hex digits> (a DCR's immutableId)".into(),
            ));
        }
        if !spec.table.ends_with("_CL")
            || spec.table.len() < 4
            || !spec
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                "table",
                "a custom table's name ends in _CL (letters, digits, _ and -)".into(),
            ));
        }
        if !spec.stream.starts_with("Custom-") {
            return Err(err(
                "stream",
                "a custom stream's name starts with Custom-".into(),
            ));
        }
        let declared: Vec<(String, String)> = match &spec.columns {
            Json::Object(o) => o
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            Json::Array(a) => a
                .iter()
                .map(|c| {
                    let f = |k: &str| c.get(k).and_then(Json::as_str).unwrap_or_default();
                    (f("name").to_string(), f("type").to_string())
                })
                .collect(),
            _ => {
                return Err(err(
                    "columns",
                    "an object of name: type, or an array of {name, type}".into(),
                ));
            }
        };
        let mut columns: Vec<(String, ColType)> = vec![("TimeGenerated".into(), ColType::DateTime)];
        for (name, ty) in declared {
            let at = format!("columns.{name}");
            let ok_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.len() <= 45
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok_name || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
                return Err(err(
                    &at,
                    "a column name starts with a letter, has at most 45 letters, digits, _ or -, and is not reserved (TenantId, Type)".into(),
                ));
            }
            let ty = column_type(&ty).ok_or_else(|| {
                err(
                    &at,
                    format!(
                        "unknown type {ty:?} (string, int, long, real, boolean, datetime, dynamic)"
                    ),
                )
            })?;
            if name == "TimeGenerated" {
                if ty != ColType::DateTime {
                    return Err(err(&at, "TimeGenerated is a datetime".into()));
                }
                continue;
            }
            if columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(err(&at, "duplicate column".into()));
            }
            columns.push((name, ty));
        }
        let name = spec.name.clone().unwrap_or_else(|| "dfcsync-dcr".into());
        Ok(Dcr {
            immutable_id: spec.immutable_id.clone(),
            arm_id: format!(
                "/subscriptions/{subscription_id}/resourceGroups/{}/providers/Microsoft.Insights/dataCollectionRules/{name}",
                spec.resource_group.as_deref().unwrap_or(resource_group)
            ),
            stream: spec.stream.clone(),
            table: spec.table.clone(),
            columns,
        })
    }

    /// The custom table's columns: `TenantId`, the declared ones (`TimeGenerated` first),
    /// `Type`, as Log Analytics adds its standard columns.
    pub fn table_columns(&self) -> Vec<(String, ColType)> {
        let mut cols = vec![("TenantId".to_string(), ColType::String)];
        cols.extend(self.columns.iter().cloned());
        cols.push(("Type".to_string(), ColType::String));
        cols
    }

    /// The rows of a posted body (a JSON array of objects), visible at `visible_at`: each
    /// object's declared fields typed (a value of the wrong type is a 400 naming it), the
    /// others dropped, `TimeGenerated` defaulting to `now`. A body that is a single object is
    /// accepted and ingests nothing (observed, §3.1).
    pub fn rows(
        &self,
        body: &Json,
        customer_id: &str,
        now: DateTime<Utc>,
        visible_at: DateTime<Utc>,
    ) -> Result<Vec<Row>, String> {
        let Json::Array(items) = body else {
            return Ok(Vec::new());
        };
        let cols = self.table_columns();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Json::Object(obj) = item else {
                return Err(format!("Record {i} is not a JSON object."));
            };
            let mut cells = vec![Cell::Null; cols.len()];
            cells[0] = string(customer_id);
            let last = cols.len() - 1;
            cells[last] = string(&self.table);
            for (c, (name, ty)) in cols.iter().enumerate().take(last).skip(1) {
                let Some(v) = obj
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
                else {
                    continue;
                };
                let v = match v {
                    Json::String(s) if s.len() > MAX_FIELD => {
                        let mut end = MAX_FIELD;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        Json::String(s[..end].to_string())
                    }
                    other => other.clone(),
                };
                cells[c] = if *ty == ColType::Dynamic {
                    // Kept as sent (a JSON text stays a string).
                    Cell::dynamic(v)
                } else {
                    cell_from_json(*ty, &v)
                        .map_err(|m| format!("Record {i}, column '{name}': {m}"))?
                };
            }
            if cells[1] == Cell::Null {
                cells[1] = time(now);
            }
            out.push(Row { visible_at, cells });
        }
        Ok(out)
    }
}
