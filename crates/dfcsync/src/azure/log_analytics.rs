//! The Log Analytics query API client (reference §2): `POST /v1/workspaces/{id}/query` with
//! `Prefer: wait=…`, and the response read as tables whose rows map by column name, with
//! `dynamic` values parsed (they arrive as JSON text).
//!
//! A `PartialError` (HTTP 200 with an `error` beside the tables) is an error here: the data
//! may be truncated and dfcsync never acts on partial data. `InsufficientAccessError` is
//! [`AzureError::InsufficientAccess`]; until the first query of this client has succeeded
//! (a first run, maybe just after the role was assigned), it is retried a few times with a
//! growing wait, since a fresh role assignment takes minutes to apply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::cloud::Cloud;
use super::error::{AzureError, Service};
use super::http::{ApiRequest, AzureHttp};

/// The server-side wait we ask for (`Prefer: wait=`, default 180 s, max 600 s).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);

/// A Log Analytics query client.
#[derive(Debug)]
pub struct LogAnalyticsClient {
    http: AzureHttp,
    endpoint: String,
    scope: String,
    wait: Duration,
    succeeded_once: AtomicBool,
}

impl LogAnalyticsClient {
    pub fn new(http: AzureHttp, cloud: &Cloud) -> LogAnalyticsClient {
        LogAnalyticsClient {
            http,
            endpoint: cloud.log_analytics.trim_end_matches('/').to_owned(),
            scope: cloud.log_analytics_scope.clone(),
            wait: DEFAULT_WAIT,
            succeeded_once: AtomicBool::new(false),
        }
    }

    /// The server-side timeout to ask for (clamped to 1..=600 s).
    pub fn with_wait(mut self, wait: Duration) -> LogAnalyticsClient {
        self.wait = wait.clamp(Duration::from_secs(1), Duration::from_secs(600));
        self
    }

    /// Runs `query` on the workspace (its `customerId` GUID) and returns the response body,
    /// checked: an answer with an `error` (a `PartialError`) is [`AzureError::PartialError`].
    /// `timespan` is an ISO-8601 duration or interval, applied on top of the query's filters.
    pub async fn query(
        &self,
        workspace_customer_id: &str,
        query: &str,
        timespan: Option<&str>,
    ) -> Result<Bytes, AzureError> {
        self.query_workspaces(workspace_customer_id, &[], query, timespan)
            .await
    }

    /// [`query`](Self::query) over the workspace and `more_workspaces` at once (the body's
    /// `workspaces`: the service reads the union of their tables, up to 100 workspaces a
    /// query, and each row's `TenantId` names its workspace).
    pub async fn query_workspaces(
        &self,
        workspace_customer_id: &str,
        more_workspaces: &[String],
        query: &str,
        timespan: Option<&str>,
    ) -> Result<Bytes, AzureError> {
        let url = url::Url::parse(&format!(
            "{}/v1/workspaces/{}/query",
            self.endpoint, workspace_customer_id
        ))
        .map_err(|e| AzureError::Config(format!("log_analytics endpoint: {e}")))?;
        let mut body = query_body(query, timespan);
        if !more_workspaces.is_empty() {
            body["workspaces"] = json!(more_workspaces);
        }
        let mut req =
            ApiRequest::new(Service::LogAnalytics, Method::POST, url, &self.scope).json(&body);
        // A query reads: repeating it is safe.
        req.idempotent = true;
        req.resource = workspace_customer_id.to_owned();
        req.headers
            .push(("Prefer", format!("wait={}", self.wait.as_secs())));
        req.timeout = Some(self.wait + Duration::from_secs(15));
        let opts = self.http.options().clone();
        let mut attempt = 0;
        loop {
            match self.http.send(req.clone()).await {
                Ok(resp) => {
                    check_body(&resp.body, resp.request_id)?;
                    self.succeeded_once.store(true, Ordering::Relaxed);
                    return Ok(resp.body);
                }
                // A fresh role assignment takes minutes: the first contact waits for it, but
                // only for a query of one workspace (a query over several fails at once, so
                // that the caller sets the refusing workspace apart and the others go on).
                Err(e @ AzureError::InsufficientAccess { .. })
                    if !self.succeeded_once.load(Ordering::Relaxed)
                        && more_workspaces.is_empty()
                        && attempt < opts.access_retries =>
                {
                    let wait = self.http.backoff(attempt, opts.access_retry_delay);
                    tracing::warn!(
                        workspace = workspace_customer_id,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "no query access yet (a fresh role assignment takes minutes): waiting"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The body of a query request (`queryBody` in the specification).
pub fn query_body(query: &str, timespan: Option<&str>) -> Value {
    let mut body = json!({ "query": query });
    if let Some(t) = timespan {
        body["timespan"] = json!(t);
    }
    body
}

/// Fails on an answer that carries an `error` (a `PartialError` or any other).
fn check_body(body: &[u8], request_id: Option<String>) -> Result<(), AzureError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<Value>,
        /// Only whether it is an array: the rows are not built here.
        #[serde(default)]
        tables: Option<Vec<serde::de::IgnoredAny>>,
    }
    let p: Probe = serde_json::from_slice(body)
        .map_err(|e| AzureError::decode("the Log Analytics answer", e))?;
    if let Some(err) = p.error.filter(|e| !e.is_null()) {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_owned();
        let code = err.get("code").and_then(Value::as_str).unwrap_or("");
        let mut details: Vec<String> = err
            .get("details")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.get("message").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if details.is_empty()
            && let Some(m) = err
                .get("innererror")
                .and_then(|i| i.get("message"))
                .and_then(Value::as_str)
        {
            details.push(m.to_owned());
        }
        return Err(AzureError::PartialError {
            message: if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
            },
            details,
            request_id,
        });
    }
    if p.tables.is_none() {
        return Err(AzureError::decode(
            "the Log Analytics answer",
            "no tables in it",
        ));
    }
    Ok(())
}

/// A query response.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryResponse {
    pub tables: Vec<Table>,
    #[serde(default)]
    pub statistics: Option<Value>,
    #[serde(default)]
    pub render: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// A column of a result table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `bool, datetime, dynamic, int, long, real, string, guid, decimal, timespan`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A result table: positional rows.
#[derive(Debug, Clone, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResponse {
    /// Parses a response body (as [`LogAnalyticsClient::query`] returns it).
    pub fn parse(body: &[u8]) -> Result<QueryResponse, AzureError> {
        serde_json::from_slice(body).map_err(|e| AzureError::decode("the Log Analytics answer", e))
    }

    /// The first table (`PrimaryResult`).
    pub fn primary(&self) -> Result<&Table, AzureError> {
        self.tables
            .first()
            .ok_or_else(|| AzureError::decode("the Log Analytics answer", "no tables in it"))
    }
}

impl Table {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The rows as objects keyed by column name, `dynamic` values parsed from their JSON text
    /// (text that is not JSON stays a string).
    pub fn records(&self) -> Result<Vec<Map<String, Value>>, AzureError> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                if row.len() != self.columns.len() {
                    return Err(AzureError::decode(
                        format!("row {i} of table {}", self.name),
                        format!("{} values for {} columns", row.len(), self.columns.len()),
                    ));
                }
                Ok(self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        let v = match (c.kind.as_str(), v) {
                            ("dynamic", Value::String(s)) => {
                                serde_json::from_str(s).unwrap_or_else(|_| v.clone())
                            }
                            _ => v.clone(),
                        };
                        (c.name.clone(), v)
                    })
                    .collect())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_partial_errors() {
        let body = br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName","type":"string"},{"name":"AlertIds","type":"dynamic"}],"rows":[["i1","[\"a\",\"b\"]"],["i2",null]]}]}"#;
        check_body(body, None).unwrap();
        let r = QueryResponse::parse(body).unwrap();
        let recs = r.primary().unwrap().records().unwrap();
        assert_eq!(recs[0]["AlertIds"], json!(["a", "b"]));
        assert_eq!(recs[1]["AlertIds"], Value::Null);
        let partial = br#"{"tables":[],"error":{"code":"PartialError","message":"There were some errors when processing your query.","details":[{"code":"EngineError","message":"limit"}]}}"#;
        let e = check_body(partial, Some("r".into())).unwrap_err();
        assert!(matches!(e, AzureError::PartialError { .. }), "{e:?}");
        assert!(e.to_string().contains("limit"));
        assert!(check_body(b"{}", None).is_err());
    }
}
