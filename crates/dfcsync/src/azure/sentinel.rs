//! The Microsoft Sentinel client (`Microsoft.SecurityInsights`, api-version 2025-09-01,
//! reference §1): the workspace lookup (`customerId` from its name), incidents (list with
//! `$filter`/`$top` following `nextLink`, get, conditional update) and their comments.
//!
//! Updates are GET-modify-PUT: the PUT replaces the incident, so [`Incident`] keeps every
//! property as read (known ones typed, unknown future ones in `extra`) and sends back all
//! but the read-only ones, with the `etag` read in the body. A stale `etag` answers 409,
//! which is [`AzureError::Conflict`]: read again and decide again.
//!
//! Comments are written with a client-chosen id, and dfcsync derives it from the incident,
//! the action and the alerts' fingerprint ([`comment_id`], a UUIDv5): a retried or repeated
//! write updates the same comment instead of adding a second one.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::cloud::Cloud;
use super::error::{AzureError, Service};
use super::http::{ApiRequest, ApiResponse, AzureHttp, segment};

/// The Sentinel API version.
pub const API_VERSION: &str = "2025-09-01";
/// The Log Analytics workspaces API version (ARM).
pub const WORKSPACE_API_VERSION: &str = "2023-09-01";

/// The namespace of comment ids (a fixed random UUID: changing it changes every id).
pub const COMMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_4c52_8a0e_4b8f_9a3c_2e71_d5b0_c4e9);

/// The id of the comment dfcsync writes for `action` on an incident whose alerts have
/// `fingerprint`: the same inputs always give the same id.
pub fn comment_id(incident_name: &str, action: &str, fingerprint: &str) -> Uuid {
    let name = format!(
        "{}/{}/{}",
        incident_name.to_ascii_lowercase(),
        action,
        fingerprint
    );
    Uuid::new_v5(&COMMENT_NAMESPACE, name.as_bytes())
}

/// A Log Analytics workspace with Sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    /// The ARM id.
    pub id: String,
    /// The GUID the query API wants.
    pub customer_id: String,
    pub location: Option<String>,
}

/// `IncidentOwnerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentOwner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `IncidentLabel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentLabel {
    pub label_name: String,
    /// Read-only (`User` or `AutoAssigned`): never sent.
    #[serde(default, skip_serializing)]
    pub label_type: Option<String>,
}

/// `IncidentProperties`. Enum values stay strings (the spec models them as strings: an
/// unknown value must not fail the read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentProperties {
    pub title: String,
    pub severity: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<IncidentOwner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<IncidentLabel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_activity_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time_utc: Option<String>,
    // Read-only: read, never sent.
    #[serde(default, skip_serializing)]
    pub created_time_utc: Option<String>,
    #[serde(default, skip_serializing)]
    pub last_modified_time_utc: Option<String>,
    #[serde(default, skip_serializing)]
    pub incident_number: Option<i64>,
    #[serde(default, skip_serializing)]
    pub incident_url: Option<String>,
    #[serde(default, skip_serializing)]
    pub provider_name: Option<String>,
    #[serde(default, skip_serializing)]
    pub provider_incident_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub related_analytic_rule_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing)]
    pub additional_data: Option<Value>,
    /// Properties this version does not know: kept and sent back as read (a future
    /// writable property must survive our PUT).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An incident as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// The incident id (a GUID; `SecurityIncident.IncidentName`).
    pub name: String,
    #[serde(rename = "type", default, skip_serializing)]
    pub kind: Option<String>,
    /// The version read; sent back for the conditional write.
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(rename = "systemData", default, skip_serializing)]
    pub system_data: Option<Value>,
    pub properties: IncidentProperties,
}

impl Incident {
    /// The PUT body: the etag and every writable property as it is now.
    pub fn put_body(&self) -> Value {
        let mut body = json!({ "properties": self.properties });
        if let Some(e) = &self.etag {
            body["etag"] = json!(e);
        }
        body
    }

    /// Sets the status to `Active` (activate, reopen). Classification fields stay as read:
    /// what Sentinel does with them on a reopen is unconfirmed (reference §1.5), and the
    /// caller may clear them with [`Incident::clear_classification`].
    pub fn set_active(&mut self) -> &mut Self {
        self.properties.status = "Active".into();
        self
    }

    /// Sets the status to `New`.
    pub fn set_new(&mut self) -> &mut Self {
        self.properties.status = "New".into();
        self
    }

    /// Closes with a classification, its reason (send only the pairs of reference §1.5;
    /// `Undetermined` has none) and a comment.
    pub fn close(
        &mut self,
        classification: &str,
        reason: Option<&str>,
        comment: Option<&str>,
    ) -> &mut Self {
        self.properties.status = "Closed".into();
        self.properties.classification = Some(classification.to_owned());
        self.properties.classification_reason = reason.map(str::to_owned);
        self.properties.classification_comment = comment.map(str::to_owned);
        self
    }

    /// Removes classification, reason and comment.
    pub fn clear_classification(&mut self) -> &mut Self {
        self.properties.classification = None;
        self.properties.classification_reason = None;
        self.properties.classification_comment = None;
        self
    }

    /// Replaces the classification comment only.
    pub fn set_classification_comment(&mut self, comment: &str) -> &mut Self {
        self.properties.classification_comment = Some(comment.to_owned());
        self
    }
}

/// `ClientInfo`: who wrote a comment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// `IncidentCommentProperties`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentProperties {
    pub message: String,
    #[serde(default)]
    pub created_time_utc: Option<String>,
    #[serde(default)]
    pub last_modified_time_utc: Option<String>,
    #[serde(default)]
    pub author: Option<ClientInfo>,
}

/// An incident comment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IncidentComment {
    pub id: String,
    /// The comment id (a GUID).
    pub name: String,
    #[serde(default)]
    pub etag: Option<String>,
    pub properties: CommentProperties,
}

/// A page of a list.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    pub next_link: Option<String>,
}

/// The Sentinel client.
#[derive(Debug, Clone)]
pub struct SentinelClient {
    http: AzureHttp,
    arm: String,
    scope: String,
}

impl SentinelClient {
    pub fn new(http: AzureHttp, cloud: &Cloud) -> SentinelClient {
        SentinelClient {
            http,
            arm: cloud.arm.trim_end_matches('/').to_owned(),
            scope: cloud.arm_scope.clone(),
        }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url, AzureError> {
        let mut u = url::Url::parse(&format!("{}{path}", self.arm))
            .map_err(|e| AzureError::Config(format!("ARM endpoint {}: {e}", self.arm)))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    fn incidents_path(ws: &Workspace) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/incidents",
            segment(&ws.subscription_id),
            segment(&ws.resource_group),
            segment(&ws.name)
        )
    }

    async fn call(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<ApiResponse, AzureError> {
        let mut req = ApiRequest::new(Service::Arm, method, url, &self.scope);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.http.send(req).await
    }

    fn decode<T: for<'de> Deserialize<'de>>(
        what: &str,
        resp: &ApiResponse,
    ) -> Result<T, AzureError> {
        resp.decode(what)
    }

    /// The workspace, with its `customerId`.
    pub async fn workspace(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Workspace, AzureError> {
        let path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
            segment(subscription_id),
            segment(resource_group),
            segment(name)
        );
        let url = self.url(&path, &[("api-version", WORKSPACE_API_VERSION)])?;
        let resp = self.call(Method::GET, url, None).await?;
        let v: Value = Self::decode("the workspace", &resp)?;
        let customer_id = v
            .pointer("/properties/customerId")
            .and_then(Value::as_str)
            .ok_or_else(|| AzureError::decode("the workspace", "no properties.customerId"))?;
        Ok(Workspace {
            subscription_id: subscription_id.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
            id: v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(&path)
                .to_owned(),
            customer_id: customer_id.to_owned(),
            location: v.get("location").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Every incident that `filter` (OData, e.g. `properties/status ne 'Closed'`) selects,
    /// following `nextLink`; `top` is the page size (at most 1000).
    pub async fn list_incidents(
        &self,
        ws: &Workspace,
        filter: Option<&str>,
        top: Option<u32>,
    ) -> Result<Vec<Incident>, AzureError> {
        self.list_incidents_keeping(ws, filter, top, &mut 0, |_| true)
            .await
    }

    /// [`list_incidents`](Self::list_incidents), keeping only the incidents `keep` wants,
    /// page by page: a list of the whole workspace for a few hundred ETags never holds the
    /// whole workspace. `pages` counts the pages read (failed or not).
    pub async fn list_incidents_keeping(
        &self,
        ws: &Workspace,
        filter: Option<&str>,
        top: Option<u32>,
        pages: &mut u32,
        keep: impl FnMut(&Incident) -> bool,
    ) -> Result<Vec<Incident>, AzureError> {
        let mut query = vec![("api-version", API_VERSION.to_owned())];
        if let Some(f) = filter {
            query.push(("$filter", f.to_owned()));
        }
        if let Some(t) = top {
            query.push(("$top", t.clamp(1, 1000).to_string()));
        }
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let first = self.url(&Self::incidents_path(ws), &q)?;
        self.list_all_keeping(first, "a page of incidents", pages, keep)
            .await
    }

    /// The first page of incidents only (at most `top`), never following `nextLink`: one
    /// request, whatever the workspace's size (`doctor`).
    pub async fn first_incidents(
        &self,
        ws: &Workspace,
        top: u32,
    ) -> Result<Vec<Incident>, AzureError> {
        let top = top.clamp(1, 1000).to_string();
        let url = self.url(
            &Self::incidents_path(ws),
            &[("api-version", API_VERSION), ("$top", &top)],
        )?;
        let resp = self.call(Method::GET, url, None).await?;
        let page: Page<Incident> = Self::decode("a page of incidents", &resp)?;
        Ok(page.value)
    }

    async fn list_all<T: for<'de> Deserialize<'de>>(
        &self,
        first: url::Url,
        what: &str,
    ) -> Result<Vec<T>, AzureError> {
        self.list_all_keeping(first, what, &mut 0, |_| true).await
    }

    /// Every page from `first` on, keeping the items `keep` wants as each page comes.
    async fn list_all_keeping<T: for<'de> Deserialize<'de>>(
        &self,
        first: url::Url,
        what: &str,
        pages_read: &mut u32,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>, AzureError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            *pages_read += 1;
            if pages > 10_000 {
                return Err(AzureError::decode(
                    what,
                    "more than 10000 pages: a nextLink loop?",
                ));
            }
            let resp = self.call(Method::GET, url, None).await?;
            let page: Page<T> = Self::decode(what, &resp)?;
            out.extend(page.value.into_iter().filter(|item| keep(item)));
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                let arm = self.url("/", &[])?;
                next = Some(super::http::next_page(
                    &link, &arm, "ARM", "nextLink", what,
                )?);
            }
        }
        Ok(out)
    }

    /// One incident.
    pub async fn get_incident(
        &self,
        ws: &Workspace,
        incident_name: &str,
    ) -> Result<Incident, AzureError> {
        let path = format!("{}/{}", Self::incidents_path(ws), segment(incident_name));
        let url = self.url(&path, &[("api-version", API_VERSION)])?;
        let resp = self.call(Method::GET, url, None).await?;
        Self::decode("the incident", &resp)
    }

    /// The conditional write: PUTs the incident with the etag it was read with. A stale etag
    /// is [`AzureError::Conflict`]. Returns the incident as written (with its new etag).
    pub async fn update_incident(
        &self,
        ws: &Workspace,
        incident: &Incident,
    ) -> Result<Incident, AzureError> {
        if incident.etag.is_none() {
            return Err(AzureError::Config(format!(
                "incident {}: an update needs the etag it was read with",
                incident.name
            )));
        }
        let path = format!("{}/{}", Self::incidents_path(ws), segment(&incident.name));
        let url = self.url(&path, &[("api-version", API_VERSION)])?;
        let body = incident.put_body();
        let resp = self.call(Method::PUT, url, Some(&body)).await?;
        Self::decode("the updated incident", &resp)
    }

    /// The comments of an incident (every page).
    pub async fn list_comments(
        &self,
        ws: &Workspace,
        incident_name: &str,
    ) -> Result<Vec<IncidentComment>, AzureError> {
        let path = format!(
            "{}/{}/comments",
            Self::incidents_path(ws),
            segment(incident_name)
        );
        let url = self.url(&path, &[("api-version", API_VERSION)])?;
        self.list_all(url, "a page of comments").await
    }

    /// Creates or updates the comment `comment_id` (see [`comment_id`]).
    pub async fn put_comment(
        &self,
        ws: &Workspace,
        incident_name: &str,
        comment_id: Uuid,
        message: &str,
    ) -> Result<IncidentComment, AzureError> {
        let path = format!(
            "{}/{}/comments/{}",
            Self::incidents_path(ws),
            segment(incident_name),
            comment_id.hyphenated()
        );
        let url = self.url(&path, &[("api-version", API_VERSION)])?;
        let body = comment_body(message);
        let resp = self.call(Method::PUT, url, Some(&body)).await?;
        Self::decode("the comment", &resp)
    }
}

/// The body of a comment PUT.
pub fn comment_body(message: &str) -> Value {
    json!({ "properties": { "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_ids_are_stable_and_distinct() {
        let a = comment_id(
            "73e01a99-5cd7-4139-a149-9f2736ff2ab5",
            "close",
            "0123456789abcdef",
        );
        assert_eq!(
            a,
            comment_id(
                "73E01A99-5CD7-4139-A149-9F2736FF2AB5",
                "close",
                "0123456789abcdef"
            )
        );
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(
            a,
            comment_id(
                "73e01a99-5cd7-4139-a149-9f2736ff2ab5",
                "reopen",
                "0123456789abcdef"
            )
        );
        assert_ne!(
            a,
            comment_id(
                "73e01a99-5cd7-4139-a149-9f2736ff2ab5",
                "close",
                "0123456789abcdee"
            )
        );
    }

    #[test]
    fn put_body_keeps_writable_and_unknown_drops_read_only() {
        let v = json!({
            "id": "/x/incidents/i", "name": "i", "type": "Microsoft.SecurityInsights/Incidents",
            "etag": "\"e1\"",
            "properties": {
                "title": "t", "severity": "High", "status": "Active", "description": "d",
                "owner": {"objectId": "o", "email": "e@x", "ownerType": "User"},
                "labels": [{"labelName": "l", "labelType": "User"}],
                "incidentNumber": 3, "createdTimeUtc": "2026-01-01T00:00:00Z",
                "additionalData": {"alertsCount": 1}, "futureWritable": {"a": 1}
            }
        });
        let mut i: Incident = serde_json::from_value(v).unwrap();
        i.close("BenignPositive", Some("SuspiciousButExpected"), Some("c"));
        let b = i.put_body();
        assert_eq!(b["etag"], "\"e1\"");
        let p = &b["properties"];
        assert_eq!(p["status"], "Closed");
        assert_eq!(p["labels"], json!([{"labelName": "l"}]));
        assert_eq!(p["owner"]["objectId"], "o");
        assert_eq!(p["futureWritable"], json!({"a": 1}));
        assert_eq!(p["description"], "d");
        for ro in ["incidentNumber", "createdTimeUtc", "additionalData"] {
            assert!(p.get(ro).is_none(), "{ro} sent");
        }
        assert!(b.get("type").is_none() && b.get("id").is_none());
    }
}
