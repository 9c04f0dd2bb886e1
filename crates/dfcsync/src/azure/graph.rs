//! The Microsoft Graph security client (`/v1.0/security/…`, reference `graph-xdr.md` §2):
//! Defender XDR incidents (list, get, their alerts, PATCH, comments) and alerts_v2 (list).
//!
//! - Lists ask `$top` 50 (the observed cap on incidents, §2.2) and follow `@odata.nextLink`
//!   as given (never a `$skip` of our own); the caller filters on `lastUpdateDateTime` /
//!   `createdDateTime`, and the items are sorted here too (by `lastUpdateDateTime`, then id),
//!   so that no caller depends on the service's order.
//! - Every request sends `Prefer: include-unknown-enum-members`: without it a DfC alert's
//!   `serviceSource` reads `unknownFutureValue` (§2.1).
//! - A list or get returns the service's clock from the answer's `Date` header (of the first
//!   page: the clock when the read began), for the change feed's watermark.
//! - Errors go through the shared HTTP policy (429 with `Retry-After`, 5xx and transport
//!   retries for reads, one token renewal on 401); Graph's error body
//!   (`{"error":{"code","message","innerError"}}`) becomes an [`AzureError`], a 403 naming the
//!   missing application role and how to grant it ([`super::error`]).
//!
//! There is no ETag (§2.5): an update is a plain PATCH, and the caller re-reads the incident
//! just before it (see `act::graph`).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cloud::Cloud;
use super::error::{AzureError, Service};
use super::http::{ApiRequest, ApiResponse, AzureHttp, segment};

/// The page size asked of incident lists (the observed `$top` cap of `/security/incidents`).
pub const PAGE_SIZE: u32 = 50;
/// The page size asked of alerts_v2 lists: no cap is published; 1,000 is the legacy alerts
/// API's and what other collectors use (graph-xdr.md §2.2). A service that refuses it names
/// its limit ("The limit of 'N' for Top query has been exceeded"), and the list is asked
/// again with that.
pub const ALERTS_PAGE_SIZE: u32 = 1000;
/// The most pages one list follows (a `nextLink` loop guard: 500,000 items at 50 a page).
const MAX_PAGES: usize = 10_000;
/// Graph's evolvable-enum preference (reference §2.1).
pub const PREFER_UNKNOWN_MEMBERS: &str = "include-unknown-enum-members";
/// `serviceSource` of Defender for Cloud alerts.
pub const DFC_SERVICE_SOURCE: &str = "microsoftDefenderForCloud";

/// `microsoft.graph.security.incidentStatus` members (CSDL).
pub const INCIDENT_STATUSES: &[&str] = &[
    "active",
    "resolved",
    "inProgress",
    "redirected",
    "unknownFutureValue",
    "awaitingAction",
];
/// `microsoft.graph.security.alertStatus` members (CSDL).
pub const ALERT_STATUSES: &[&str] = &[
    "unknown",
    "new",
    "inProgress",
    "resolved",
    "unknownFutureValue",
];
/// `microsoft.graph.security.alertClassification` members (CSDL).
pub const CLASSIFICATIONS: &[&str] = &[
    "unknown",
    "falsePositive",
    "truePositive",
    "informationalExpectedActivity",
    "unknownFutureValue",
];
/// `microsoft.graph.security.alertDetermination` members (CSDL names).
pub const DETERMINATIONS: &[&str] = &[
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "notMalicious",
    "notEnoughDataToValidate",
    "confirmedActivity",
    "lineOfBusinessApplication",
    "unknownFutureValue",
];
/// The `serviceSource` members dfcsync compares against.
const SERVICE_SOURCES: &[&str] = &[DFC_SERVICE_SOURCE];

/// `value` in the enum's own spelling when it names a member in another case (Graph's wire
/// case is camelCase, but published examples also write PascalCase: `"Active"`,
/// `"TruePositive"`); any other value is kept as sent (the source holds what it does not
/// know).
pub fn canonical_member(members: &[&'static str], value: String) -> String {
    match members.iter().find(|m| m.eq_ignore_ascii_case(&value)) {
        Some(m) if **m != value => (*m).to_owned(),
        _ => value,
    }
}

/// Serde helpers reading an enum-valued property in any letter case.
mod member {
    use serde::{Deserialize, Deserializer};

    pub fn of<'de, D: Deserializer<'de>>(
        d: D,
        members: &[&'static str],
    ) -> Result<String, D::Error> {
        Ok(super::canonical_member(
            members,
            Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }

    pub fn opt<'de, D: Deserializer<'de>>(
        d: D,
        members: &[&'static str],
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|v| super::canonical_member(members, v)))
    }

    pub fn incident_status<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        of(d, super::INCIDENT_STATUSES)
    }
    pub fn alert_status<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        of(d, super::ALERT_STATUSES)
    }
    pub fn classification<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        opt(d, super::CLASSIFICATIONS)
    }
    pub fn determination<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        opt(d, super::DETERMINATIONS)
    }
    pub fn service_source<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        opt(d, super::SERVICE_SOURCES)
    }
}

/// A comment on an incident (`microsoft.graph.security.alertComment`). The schema (CSDL) and
/// the comment-POST example name its fields `createdByDisplayName` / `createdDateTime`;
/// Graph's published incident examples write `createdBy` / `createdTime`: both are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphComment {
    #[serde(default)]
    pub comment: String,
    #[serde(default, alias = "createdBy")]
    pub created_by_display_name: Option<String>,
    #[serde(default, alias = "createdTime")]
    pub created_date_time: Option<String>,
}

/// A Defender XDR incident (`microsoft.graph.security.incident`), the properties dfcsync
/// reads. Times are kept as sent; the source parses them and says which one is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphIncident {
    pub id: String,
    #[serde(default, deserialize_with = "member::incident_status")]
    pub status: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub created_date_time: String,
    #[serde(default)]
    pub last_update_date_time: String,
    #[serde(default)]
    pub last_modified_by: Option<String>,
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default, deserialize_with = "member::classification")]
    pub classification: Option<String>,
    #[serde(default, deserialize_with = "member::determination")]
    pub determination: Option<String>,
    #[serde(default)]
    pub redirect_incident_id: Option<String>,
    /// The note of the resolution (PATCH-able since December 2024, Graph's changelog).
    #[serde(default)]
    pub resolving_comment: Option<String>,
    #[serde(default)]
    pub comments: Vec<GraphComment>,
    /// The incident's alerts, when asked with `$expand=alerts`.
    #[serde(default)]
    pub alerts: Option<Vec<GraphAlert>>,
}

/// A Defender XDR alert (`microsoft.graph.security.alert`, alerts_v2), the properties
/// dfcsync reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphAlert {
    pub id: String,
    #[serde(default)]
    pub incident_id: Option<String>,
    #[serde(default, deserialize_with = "member::alert_status")]
    pub status: String,
    #[serde(default, deserialize_with = "member::classification")]
    pub classification: Option<String>,
    #[serde(default, deserialize_with = "member::determination")]
    pub determination: Option<String>,
    #[serde(default, deserialize_with = "member::service_source")]
    pub service_source: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub alert_web_url: Option<String>,
    #[serde(default)]
    pub provider_alert_id: Option<String>,
    #[serde(default)]
    pub created_date_time: String,
    #[serde(default)]
    pub last_update_date_time: String,
    #[serde(default)]
    pub resolved_date_time: Option<String>,
}

/// What a list or get returned, with the service's clock when it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub value: T,
    /// The `Date` header of the (first) answer.
    pub server_now: Option<DateTime<Utc>>,
}

/// The change a PATCH makes (only the documented properties, reference §2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentUpdate {
    /// `active`, `inProgress` or `resolved`.
    pub status: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    /// The note of the resolution (the portal's Resolve note): a close's reason and mark.
    pub resolving_comment: Option<String>,
}

impl IncidentUpdate {
    fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        for (k, v) in [
            ("status", &self.status),
            ("classification", &self.classification),
            ("determination", &self.determination),
            ("resolvingComment", &self.resolving_comment),
        ] {
            if let Some(v) = v {
                body.insert(k.into(), json!(v));
            }
        }
        Value::Object(body)
    }
}

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// The Graph security client.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: AzureHttp,
    root: String,
    scope: String,
}

impl GraphClient {
    /// The client of `cloud`'s Graph; an error where the cloud has no Graph security API
    /// (Azure China) or the custom endpoints name none.
    pub fn new(http: AzureHttp, cloud: &Cloud) -> Result<GraphClient, AzureError> {
        match (&cloud.graph, &cloud.graph_scope) {
            (Some(root), Some(scope)) => Ok(GraphClient {
                http,
                root: root.trim_end_matches('/').to_owned(),
                scope: scope.clone(),
            }),
            _ if cloud.name == "china" => Err(AzureError::Config(
                "Microsoft Graph's security API (incidents, alerts_v2) is not available in Azure operated by 21Vianet (China): use backend = \"sentinel\"".into(),
            )),
            _ => Err(AzureError::Config(format!(
                "cloud {:?} names no Microsoft Graph endpoint: set graph and graph_scope in [azure.endpoints]",
                cloud.name
            ))),
        }
    }

    /// The token scope of Graph (for `doctor`).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url, AzureError> {
        let mut u = url::Url::parse(&format!("{}/v1.0/security/{path}", self.root))
            .map_err(|e| AzureError::Config(format!("Graph endpoint {}: {e}", self.root)))?;
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    async fn call(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<ApiResponse, AzureError> {
        let mut req = ApiRequest::new(Service::Graph, method, url, &self.scope);
        req.headers
            .push(("Prefer", PREFER_UNKNOWN_MEMBERS.to_owned()));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.http.send(req).await
    }

    /// [`Self::pages`] of `path` with `$top` = `top` and `query`; asked again with a smaller
    /// `$top` when the service names its limit.
    async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
        top: u32,
    ) -> Result<Answer<Vec<T>>, AzureError> {
        let ask = |top: u32| {
            let top = top.to_string();
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("$top", &top));
            self.url(path, &q)
        };
        match self.pages(what, ask(top)?).await {
            Err(e) => match top_limit(&e).filter(|&limit| limit > 0 && limit < top) {
                Some(limit) => {
                    tracing::info!(
                        what,
                        limit,
                        "the service caps $top: asking again with its limit"
                    );
                    self.pages(what, ask(limit)?).await
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// Follows `@odata.nextLink` from `first`, collecting every page.
    async fn pages<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        first: url::Url,
    ) -> Result<Answer<Vec<T>>, AzureError> {
        let mut out = Vec::new();
        let mut server_now = None;
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(AzureError::decode(
                    what,
                    format!("more than {MAX_PAGES} pages: a nextLink loop?"),
                ));
            }
            let resp = self.call(Method::GET, url, None).await?;
            if pages == 1 {
                server_now = date_header(&resp);
            }
            let page: Page<T> = resp.decode(what)?;
            out.extend(page.value);
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                let root = url::Url::parse(&self.root)
                    .map_err(|e| AzureError::Config(format!("Graph endpoint: {e}")))?;
                next = Some(super::http::next_page(
                    &link,
                    &root,
                    "Graph",
                    "@odata.nextLink",
                    what,
                )?);
            }
        }
        Ok(Answer {
            value: out,
            server_now,
        })
    }

    /// `GET /security/incidents?$filter=…&$top=50`, every page, sorted by
    /// `lastUpdateDateTime` then id; with `expand`, each incident's alerts too
    /// (`$expand=alerts`).
    pub async fn list_incidents(
        &self,
        filter: Option<&str>,
    ) -> Result<Answer<Vec<GraphIncident>>, AzureError> {
        self.list_incidents_with(filter, false).await
    }

    /// [`Self::list_incidents`], with the alerts of each incident when `expand`.
    pub async fn list_incidents_with(
        &self,
        filter: Option<&str>,
        expand: bool,
    ) -> Result<Answer<Vec<GraphIncident>>, AzureError> {
        let mut q = Vec::new();
        if let Some(f) = filter {
            q.push(("$filter", f));
        }
        if expand {
            q.push(("$expand", "alerts"));
        }
        let mut a: Answer<Vec<GraphIncident>> = self
            .list("the incidents", "incidents", &q, PAGE_SIZE)
            .await?;
        a.value.sort_by(|x, y| {
            (&x.last_update_date_time, &x.id).cmp(&(&y.last_update_date_time, &y.id))
        });
        Ok(a)
    }

    /// `GET /security/incidents/{id}`.
    pub async fn get_incident(&self, id: &str) -> Result<Answer<GraphIncident>, AzureError> {
        self.get_incident_with(id, false).await
    }

    /// `GET /security/incidents/{id}`, with its alerts when `expand` (`$expand=alerts`).
    pub async fn get_incident_with(
        &self,
        id: &str,
        expand: bool,
    ) -> Result<Answer<GraphIncident>, AzureError> {
        let q: &[(&str, &str)] = if expand {
            &[("$expand", "alerts")]
        } else {
            &[]
        };
        let resp = self
            .call(
                Method::GET,
                self.url(&format!("incidents/{}", segment(id)), q)?,
                None,
            )
            .await?;
        Ok(Answer {
            value: resp.decode("the incident")?,
            server_now: date_header(&resp),
        })
    }

    /// `GET /security/incidents/{id}/alerts`, every page.
    pub async fn incident_alerts(&self, id: &str) -> Result<Vec<GraphAlert>, AzureError> {
        let path = format!("incidents/{}/alerts", segment(id));
        let mut a: Answer<Vec<GraphAlert>> = self
            .list("the incident's alerts", &path, &[], PAGE_SIZE)
            .await?;
        a.value.sort_by(|x, y| x.id.cmp(&y.id));
        Ok(a.value)
    }

    /// `GET /security/alerts_v2?$filter=serviceSource eq 'microsoftDefenderForCloud' and
    /// lastUpdateDateTime ge {since}`, every page (of [`ALERTS_PAGE_SIZE`]), sorted by
    /// `lastUpdateDateTime` then id.
    pub async fn dfc_alerts_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Answer<Vec<GraphAlert>>, AzureError> {
        let filter = format!(
            "serviceSource eq '{DFC_SERVICE_SOURCE}' and lastUpdateDateTime ge {}",
            odata_time(since)
        );
        let mut a: Answer<Vec<GraphAlert>> = self
            .list(
                "the alerts",
                "alerts_v2",
                &[("$filter", &filter)],
                ALERTS_PAGE_SIZE,
            )
            .await?;
        a.value.sort_by(|x, y| {
            (&x.last_update_date_time, &x.id).cmp(&(&y.last_update_date_time, &y.id))
        });
        Ok(a)
    }

    /// `PATCH /security/incidents/{id}`; returns the incident as written.
    pub async fn update_incident(
        &self,
        id: &str,
        update: &IncidentUpdate,
    ) -> Result<GraphIncident, AzureError> {
        let resp = self
            .call(
                Method::PATCH,
                self.url(&format!("incidents/{}", segment(id)), &[])?,
                Some(&update.body()),
            )
            .await?;
        resp.decode("the updated incident")
    }

    /// `POST /security/incidents/{id}/comments`; returns the incident's comments (Graph
    /// answers with the whole list). Not retried without an answer: a POST may have landed.
    pub async fn post_comment(
        &self,
        id: &str,
        text: &str,
    ) -> Result<Vec<GraphComment>, AzureError> {
        let body = json!({
            "@odata.type": "microsoft.graph.security.alertComment",
            "comment": text,
        });
        let resp = self
            .call(
                Method::POST,
                self.url(&format!("incidents/{}/comments", segment(id)), &[])?,
                Some(&body),
            )
            .await?;
        #[derive(Deserialize)]
        struct Comments {
            #[serde(default)]
            value: Vec<GraphComment>,
        }
        // The documented answer is the list (`{"value":[…]}`); a bare array is read too.
        match serde_json::from_slice::<Comments>(&resp.body) {
            Ok(c) => Ok(c.value),
            Err(_) => resp.decode("the incident's comments"),
        }
    }
}

/// The `$top` limit a 400 names ("The limit of '50' for Top query has been exceeded").
fn top_limit(e: &AzureError) -> Option<u32> {
    let AzureError::Http {
        status: 400,
        message,
        ..
    } = e
    else {
        return None;
    };
    let rest = message.split("The limit of '").nth(1)?;
    rest.split('\'').next()?.parse().ok()
}

/// An OData date-time literal for a `ge` filter: RFC 3339 in UTC, in whole seconds, the
/// fraction dropped (an earlier instant: the filter only widens). Graph's service parses
/// .NET date-times, which take at most seven fractional digits; whole seconds are safe.
pub fn odata_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `Date` header of an answer (HTTP's IMF-fixdate), when there is one.
pub fn date_header(resp: &ApiResponse) -> Option<DateTime<Utc>> {
    let v = resp.headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_bodies_hold_only_what_changes() {
        let u = IncidentUpdate {
            status: Some("resolved".into()),
            classification: Some("truePositive".into()),
            determination: Some("other".into()),
            resolving_comment: Some("done [dfcsync:close:0123456789abcdef]".into()),
        };
        assert_eq!(
            u.body(),
            json!({"status":"resolved","classification":"truePositive","determination":"other","resolvingComment":"done [dfcsync:close:0123456789abcdef]"})
        );
        let u = IncidentUpdate {
            status: Some("active".into()),
            ..Default::default()
        };
        assert_eq!(u.body(), json!({"status":"active"}));
    }

    #[test]
    fn times_and_dates() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T10:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            odata_time(t),
            "2026-12-06T10:00:00Z",
            "floored: the filter widens"
        );
        let whole = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(odata_time(whole), "2026-12-06T10:00:00Z");
        let d = DateTime::parse_from_rfc2822("Sun, 06 Dec 2026 10:00:00 GMT").unwrap();
        assert_eq!(d.with_timezone(&Utc), whole);
    }
}
