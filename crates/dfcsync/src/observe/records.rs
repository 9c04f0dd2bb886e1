//! One row to one typed record: the `SecurityIncident` and `SecurityAlert` columns the engine
//! needs, found by name, with the service's encodings undone (dynamic values arrive as JSON
//! strings; `az` prints numbers as strings too).
//!
//! A row that cannot be read gives a [`RecordError`] that names the column and says why; the
//! snapshot then holds what the row touches.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rows::Row;
use crate::model::{AlertStatus, Comment, IncidentStatus};

/// Why a row could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}.{column}: {problem}")]
pub struct RecordError {
    pub table: &'static str,
    pub column: &'static str,
    pub problem: String,
}

/// The facts of one `SecurityIncident` row.
#[derive(Debug, Clone, PartialEq, Hash)]
pub struct IncidentRecord {
    pub time_generated: DateTime<Utc>,
    pub name: String,
    pub number: i64,
    pub title: String,
    pub status: IncidentStatus,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub modified_by: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: String,
    pub owner: Option<String>,
    pub alert_ids: Vec<String>,
    pub product_names: Vec<String>,
    /// `AdditionalData.alertsCount`, less the duplicates `AlertIds` listed (`None` when the
    /// row does not say).
    pub alerts_count: Option<u32>,
    pub provider_name: String,
    /// `None` when the row has no `Comments` column.
    pub comments: Option<Vec<Comment>>,
}

/// The facts of one `SecurityAlert` row.
#[derive(Debug, Clone, PartialEq, Hash)]
pub struct AlertRecord {
    pub time_generated: DateTime<Utc>,
    pub id: String,
    pub status: AlertStatus,
    pub product_name: String,
    pub vendor_original_id: String,
    pub display_name: String,
    pub link: String,
}

const SI: &str = "SecurityIncident";
const SA: &str = "SecurityAlert";

/// The identity of an incident row, readable even when the rest is not: the name (if any)
/// and the number (if readable).
pub fn incident_identity(row: &dyn Row) -> (Option<String>, Option<i64>) {
    let name = Cells { row, table: SI }
        .opt_str("IncidentName")
        .ok()
        .flatten()
        .filter(|s| !s.is_empty());
    let number = Cells { row, table: SI }.int("IncidentNumber").ok();
    (name, number)
}

/// The `SystemAlertId` of an alert row, when it has one.
pub fn alert_identity(row: &dyn Row) -> Option<String> {
    Cells { row, table: SA }
        .opt_str("SystemAlertId")
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

impl IncidentRecord {
    pub fn from_row(row: &dyn Row) -> Result<Self, RecordError> {
        let c = Cells { row, table: SI };
        let owner = c.opt_dynamic("Owner")?.and_then(|v| owner_of(&v));
        let additional = c.opt_dynamic("AdditionalData")?;
        let product_names = match additional.as_ref().and_then(|a| a.get("alertProductNames")) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => string_list(v).ok_or_else(|| {
                c.err(
                    "AdditionalData",
                    "alertProductNames is not an array of strings".into(),
                )
            })?,
        };
        let mut alert_ids = match c.dynamic("AlertIds")? {
            Value::Null => Vec::new(),
            v => string_list(&v)
                .ok_or_else(|| c.err("AlertIds", "not an array of alert id strings".into()))?,
        };
        let listed = alert_ids.len();
        dedup_in_order(&mut alert_ids);
        let alerts_count = match additional.as_ref().and_then(|a| a.get("alertsCount")) {
            None | Some(Value::Null) => None,
            Some(v) => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| {
                        c.err("AdditionalData", format!("alertsCount is not a count: {v}"))
                    })?;
                let duplicates = (listed - alert_ids.len()) as u64;
                Some(u32::try_from(n.saturating_sub(duplicates)).unwrap_or(u32::MAX))
            }
        };
        let comments = match row.get("Comments") {
            None => None,
            Some(_) => Some(match c.opt_dynamic("Comments")? {
                None => Vec::new(),
                Some(v) => comments_of(&v).map_err(|p| c.err("Comments", p))?,
            }),
        };
        Ok(Self {
            time_generated: c.time("TimeGenerated")?,
            name: c.str("IncidentName")?,
            number: c.int("IncidentNumber")?,
            title: c.opt_str("Title")?.unwrap_or_default(),
            status: IncidentStatus::parse(&c.str("Status")?),
            created: c.time("CreatedTime")?,
            last_modified: c.time("LastModifiedTime")?,
            modified_by: c.opt_str("ModifiedBy")?.unwrap_or_default(),
            classification: c.opt_str("Classification")?.filter(|s| !s.is_empty()),
            classification_reason: c.opt_str("ClassificationReason")?.filter(|s| !s.is_empty()),
            classification_comment: c.opt_str("ClassificationComment")?.unwrap_or_default(),
            owner,
            alert_ids,
            product_names,
            alerts_count,
            provider_name: c.opt_str("ProviderName")?.unwrap_or_default(),
            comments,
        })
    }
}

impl AlertRecord {
    pub fn from_row(row: &dyn Row) -> Result<Self, RecordError> {
        let c = Cells { row, table: SA };
        let display_name = match c.opt_str("DisplayName")? {
            Some(s) if !s.is_empty() => s,
            _ => c.opt_str("AlertName")?.unwrap_or_default(),
        };
        Ok(Self {
            time_generated: c.time("TimeGenerated")?,
            id: c.str("SystemAlertId")?,
            status: AlertStatus::parse(&c.str("Status")?),
            product_name: c.opt_str("ProductName")?.unwrap_or_default(),
            vendor_original_id: c.opt_str("VendorOriginalId")?.unwrap_or_default(),
            display_name,
            link: c.opt_str("AlertLink")?.unwrap_or_default(),
        })
    }
}

/// Typed access to the cells of one row, with errors that name the column.
struct Cells<'a> {
    row: &'a dyn Row,
    table: &'static str,
}

impl Cells<'_> {
    fn err(&self, column: &'static str, problem: String) -> RecordError {
        RecordError {
            table: self.table,
            column,
            problem,
        }
    }

    fn cell(&self, column: &'static str) -> Result<&Value, RecordError> {
        self.row
            .get(column)
            .ok_or_else(|| self.err(column, "the column is missing".into()))
    }

    fn opt_str(&self, column: &'static str) -> Result<Option<String>, RecordError> {
        match self.row.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.err(column, format!("expected a string, found {other}"))),
        }
    }

    fn str(&self, column: &'static str) -> Result<String, RecordError> {
        self.cell(column)?;
        match self.opt_str(column)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.err(column, "empty".into())),
        }
    }

    fn int(&self, column: &'static str) -> Result<i64, RecordError> {
        match self.cell(column)? {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| self.err(column, format!("not an integer: {n}"))),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(column, format!("not an integer: {s:?}"))),
            other => Err(self.err(column, format!("not an integer: {other}"))),
        }
    }

    fn time(&self, column: &'static str) -> Result<DateTime<Utc>, RecordError> {
        match self.cell(column)? {
            Value::String(s) => parse_time(s)
                .ok_or_else(|| self.err(column, format!("not an RFC 3339 date and time: {s:?}"))),
            other => Err(self.err(column, format!("not a date and time: {other}"))),
        }
    }

    /// A dynamic cell, decoded: the service sends dynamic values as JSON text; `az` and
    /// hand-made files may hold the JSON value itself. An empty string is null.
    fn opt_dynamic(&self, column: &'static str) -> Result<Option<Value>, RecordError> {
        match self.row.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| self.err(column, format!("malformed dynamic value: {e}"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    fn dynamic(&self, column: &'static str) -> Result<Value, RecordError> {
        self.cell(column)?;
        Ok(self.opt_dynamic(column)?.unwrap_or(Value::Null))
    }
}

/// Parses the service's datetimes (`2026-11-27T10:00:00.1234567Z`) and any RFC 3339 form.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_owned))
        .collect()
}

fn dedup_in_order(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

/// The owner, when one is assigned: object id, UPN, e-mail or name, whichever is set.
pub(crate) fn owner_of(v: &Value) -> Option<String> {
    ["objectId", "userPrincipalName", "email", "assignedTo"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// Comments as `[{message, createdTimeUtc, …}]`.
fn comments_of(v: &Value) -> Result<Vec<Comment>, String> {
    let items = v.as_array().ok_or("not an array of comments")?;
    items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let message = c
                .get("message")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("comment {i} has no message"))?;
            let created = c
                .get("createdTimeUtc")
                .and_then(Value::as_str)
                .and_then(parse_time)
                .ok_or_else(|| format!("comment {i} has no valid createdTimeUtc"))?;
            Ok(Comment {
                message: message.to_owned(),
                created,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::rows::ObjectRow;
    use serde_json::json;

    fn incident_row() -> Value {
        json!({
            "TimeGenerated": "2026-11-27T10:00:00.1234567Z",
            "IncidentName": "4f9c0d5e-0000-0000-0000-000000000001",
            "IncidentNumber": 17,
            "Title": "Suspicious process executed",
            "Status": "New",
            "CreatedTime": "2026-11-27T09:00:00Z",
            "LastModifiedTime": "2026-11-27T10:00:00Z",
            "ModifiedBy": "Incident created from alert",
            "Owner": "{\"objectId\":null,\"email\":null,\"assignedTo\":null,\"userPrincipalName\":null}",
            "AlertIds": "[\"a1\",\"a2\",\"a1\"]",
            "AdditionalData": "{\"alertsCount\":1,\"alertProductNames\":[\"Azure Security Center\"]}",
            "ProviderName": "Azure Sentinel",
            "Comments": "[{\"message\":\"hi\",\"createdTimeUtc\":\"2026-11-27T10:00:00Z\",\"author\":{}}]"
        })
    }

    fn read(v: &Value) -> Result<IncidentRecord, RecordError> {
        IncidentRecord::from_row(&ObjectRow(v.as_object().unwrap()))
    }

    #[test]
    fn reads_the_service_encodings() {
        let r = read(&incident_row()).unwrap();
        assert_eq!(r.number, 17);
        assert_eq!(r.alert_ids, vec!["a1", "a2"]);
        assert_eq!(r.product_names, vec!["Azure Security Center"]);
        assert_eq!(r.owner, None);
        assert_eq!(r.comments.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            r.time_generated.timestamp_subsec_nanos(),
            123_456_700,
            "seven fractional digits are kept"
        );
    }

    #[test]
    fn reads_az_cli_strings_and_plain_json() {
        let mut v = incident_row();
        v["IncidentNumber"] = json!("17");
        v["AlertIds"] = json!(["a1"]);
        v["Owner"] = json!({"userPrincipalName": "analyst@contoso.com"});
        let r = read(&v).unwrap();
        assert_eq!(r.number, 17);
        assert_eq!(r.alert_ids, vec!["a1"]);
        assert_eq!(r.owner.as_deref(), Some("analyst@contoso.com"));
    }

    #[test]
    fn errors_name_the_column() {
        let cases = [
            (
                "LastModifiedTime",
                json!("yesterday"),
                "SecurityIncident.LastModifiedTime: not an RFC 3339",
            ),
            (
                "AlertIds",
                json!("[\"a1\""),
                "SecurityIncident.AlertIds: malformed dynamic value",
            ),
            (
                "AlertIds",
                json!("{\"a\":1}"),
                "SecurityIncident.AlertIds: not an array",
            ),
            (
                "IncidentNumber",
                json!("seventeen"),
                "SecurityIncident.IncidentNumber: not an integer",
            ),
            (
                "Comments",
                json!("[{\"message\":\"x\"}]"),
                "SecurityIncident.Comments: comment 0 has no valid createdTimeUtc",
            ),
            ("Status", json!(""), "SecurityIncident.Status: empty"),
        ];
        for (col, val, want) in cases {
            let mut v = incident_row();
            v[col] = val;
            let err = read(&v).unwrap_err().to_string();
            assert!(err.starts_with(want), "{col}: {err}");
        }
        let mut v = incident_row();
        v.as_object_mut().unwrap().remove("CreatedTime");
        assert_eq!(
            read(&v).unwrap_err().to_string(),
            "SecurityIncident.CreatedTime: the column is missing"
        );
    }

    #[test]
    fn comments_column_absent_is_not_empty() {
        let mut v = incident_row();
        v.as_object_mut().unwrap().remove("Comments");
        assert_eq!(read(&v).unwrap().comments, None);
        v["Comments"] = Value::Null;
        assert_eq!(read(&v).unwrap().comments, Some(vec![]));
    }

    #[test]
    fn alert_rows() {
        let v = json!({"TimeGenerated": "2026-11-27T10:00:00Z", "SystemAlertId": "a1", "Status": "Bogus",
                       "AlertName": "Name", "ProductName": "Azure Security Center"});
        let r = AlertRecord::from_row(&ObjectRow(v.as_object().unwrap())).unwrap();
        assert_eq!(r.status, AlertStatus::Other("Bogus".into()));
        assert_eq!(r.display_name, "Name");
        let v = json!({"TimeGenerated": 5, "SystemAlertId": "a1", "Status": "New"});
        let err = AlertRecord::from_row(&ObjectRow(v.as_object().unwrap())).unwrap_err();
        assert_eq!(err.column, "TimeGenerated");
    }
}
