//! Microsoft Graph's security API over the XDR model (`crate::xdr`): incidents (list, get,
//! their alerts, PATCH, comments) and alerts_v2 (list, get) under `/v1.0/security/`, with the
//! OData options and limits of `shared/reference/graph-xdr.md` §2 (`$top` cap of 50 on
//! incidents, `@odata.nextLink` paging, `Prefer: include-unknown-enum-members`), Graph's error
//! body, application permissions from the token's `roles`, and the per-app request rate.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value as Json, json};

use super::{Req, Resp, Shared, State, json_body};
use crate::odata::{self, Compiled, Expr, Field, Operand};
use crate::platform::{Actor, Platform};
use crate::tokens::{GRAPH_AUDIENCES, TokenError};
use crate::xdr::{self, AlertSource, IncidentPatch, XdrAlert, XdrIncident, graph_time, pascal};

/// Where Graph's paths start.
pub const PREFIX: &str = "/v1.0/";

const INCIDENT_READ: &[&str] = &[
    "SecurityIncident.Read.All",
    "SecurityIncident.ReadWrite.All",
];
const INCIDENT_WRITE: &[&str] = &["SecurityIncident.ReadWrite.All"];
/// The roles Graph names for alerts_v2 (observed 403 message, reference §2.7).
const ALERT_READ: &[&str] = &[
    "SecurityAlert.Read.All",
    "SecurityAlert.ReadWrite.All",
    "SecurityIncident.Read.All",
    "SecurityIncident.ReadWrite.All",
];

/// `$top` cap (and default) of `/security/incidents` (observed, reference §2.2).
pub const INCIDENTS_TOP: usize = 50;
/// `$top` cap (and default) of `/security/alerts_v2` (the legacy alerts limit; UNCONFIRMED).
pub const ALERTS_TOP: usize = 1000;

const INCIDENT_FILTERABLE: &[&str] = &[
    "assignedTo",
    "classification",
    "createdDateTime",
    "determination",
    "lastUpdateDateTime",
    "severity",
    "status",
];
const SORTABLE: &[&str] = &["lastUpdateDateTime", "createdDateTime"];
const PREFER_UNKNOWN: &str = "include-unknown-enum-members";
/// A comment's maximum length (the Defender portal's; reference §2.4).
const COMMENT_MAX: usize = 30_000;

/// Graph's error body, with its `innerError` (date, request-id, client-request-id).
fn error(shared: &Shared, req: &Req, status: u16, code: &str, message: &str) -> Resp {
    let (date, request_id) = {
        let mut st = shared.lock();
        (
            st.clock.wall_now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            st.rng.guid(),
        )
    };
    let client = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    Resp::json(
        status,
        json!({"error": {"code": code, "message": message, "innerError": {
            "date": date, "request-id": request_id, "client-request-id": client,
        }}}),
    )
    .with("request-id", request_id)
    .with("client-request-id", client)
}

fn bad(shared: &Shared, req: &Req, message: &str) -> Resp {
    error(shared, req, 400, "BadRequest", message)
}

/// Handles a Graph request; returns the response and the caller's principal name. Every
/// answer carries the service's clock in a `Date` header (HTTP's IMF-fixdate, whole
/// seconds), as Graph's do: a change feed takes its watermark from it.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let (resp, name) = answer(shared, req);
    let date = shared
        .lock()
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    (resp.with("Date", date), name)
}

fn answer(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let (claims, name) = {
        let st = shared.lock();
        let now = st.clock.wall_now();
        let claims = shared
            .issuer
            .check(req.header("Authorization"), GRAPH_AUDIENCES, now);
        let name = claims
            .as_ref()
            .ok()
            .and_then(|c| st.platform.principal(&c.oid))
            .map(|p| st.platform.principals[p].name.clone());
        (claims, name)
    };
    let claims = match claims {
        Ok(c) => c,
        Err(e) => {
            let message = match e {
                TokenError::Missing => "Access token is empty.".to_string(),
                TokenError::Malformed => "Access token validation failure.".to_string(),
                TokenError::Expired { .. } => {
                    "Lifetime validation failed, the token is expired.".to_string()
                }
                TokenError::WrongAudience(aud) => {
                    format!("Access token validation failure. Invalid audience '{aud}'.")
                }
            };
            return (
                error(shared, req, 401, "InvalidAuthenticationToken", &message),
                None,
            );
        }
    };
    let Some(name) = name else {
        return (
            error(
                shared,
                req,
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            ),
            None,
        );
    };
    let throttled = {
        let mut st = shared.lock();
        let limits = st.platform.limits.clone();
        let app = claims.appid.clone().unwrap_or_else(|| claims.oid.clone());
        st.throttles.graph(&limits, &app).err()
    };
    if let Some(retry) = throttled {
        let r = error(
            shared,
            req,
            429,
            "TooManyRequests",
            "Too many requests. Please try again later.",
        )
        .with("Retry-After", retry.to_string());
        return (r, Some(name));
    }
    let path = req.path.trim_end_matches('/');
    let segs: Vec<&str> = path
        .strip_prefix("/v1.0/")
        .unwrap_or("")
        .split('/')
        .collect();
    let need = |roles: &[&str]| -> Option<Resp> {
        if claims.roles.iter().any(|r| roles.contains(&r.as_str())) {
            return None;
        }
        let message = format!(
            "Missing application roles. API required roles: {}, application roles: {}.",
            roles.join(","),
            claims.roles.join(",")
        );
        Some(error(shared, req, 403, "Forbidden", &message))
    };
    let m = req.method.as_str();
    let resp = match (m, segs.as_slice()) {
        ("GET", ["security", "incidents"]) => {
            need(INCIDENT_READ).unwrap_or_else(|| list(shared, req, Kind::Incidents, None))
        }
        ("GET", ["security", "incidents", id]) => {
            need(INCIDENT_READ).unwrap_or_else(|| get_incident(shared, req, id))
        }
        ("PATCH", ["security", "incidents", id]) => {
            need(INCIDENT_WRITE).unwrap_or_else(|| patch_incident(shared, req, id, &name))
        }
        ("GET", ["security", "incidents", id, "alerts"]) => {
            need(INCIDENT_READ).unwrap_or_else(|| list(shared, req, Kind::Alerts, Some(id)))
        }
        ("POST", ["security", "incidents", id, "comments"]) => {
            need(INCIDENT_WRITE).unwrap_or_else(|| post_comment(shared, req, id, &name))
        }
        ("GET", ["security", "alerts_v2"]) => {
            need(ALERT_READ).unwrap_or_else(|| list(shared, req, Kind::Alerts, None))
        }
        ("GET", ["security", "alerts_v2", id]) => {
            need(ALERT_READ).unwrap_or_else(|| get_alert(shared, req, id))
        }
        (_, ["security", "incidents" | "alerts_v2", ..]) => error(
            shared,
            req,
            405,
            "Request_BadRequest",
            &format!("The HTTP method '{m}' is not allowed on this resource."),
        ),
        _ => error(
            shared,
            req,
            400,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                segs.last().unwrap_or(&"")
            ),
        ),
    };
    (resp, Some(name))
}

fn incident_not_found(shared: &Shared, req: &Req, id: &str) -> Resp {
    error(
        shared,
        req,
        404,
        "NotFound",
        &format!("Incident with id '{id}' was not found."),
    )
}

/// Does the caller ask for the evolvable enum members (`Prefer`)?
fn wants_unknown_members(req: &Req) -> bool {
    req.headers
        .get_all("Prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case(PREFER_UNKNOWN))
        })
}

/// Adds `Preference-Applied` when the caller asked for the evolvable members.
fn preference(resp: Resp, req: &Req) -> Resp {
    if wants_unknown_members(req) {
        resp.with("Preference-Applied", PREFER_UNKNOWN)
    } else {
        resp
    }
}

/// What a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Incidents,
    Alerts,
}

/// How an answer is written: Graph's published examples' shapes or the CSDL's, and whether the
/// caller asked for the evolvable enum members.
#[derive(Debug, Clone, Copy)]
struct Shapes {
    /// `graph_example_shapes`: enum values in PascalCase, comments with `createdBy` /
    /// `createdTime`.
    example: bool,
    /// `Prefer: include-unknown-enum-members`.
    unknown_members: bool,
}

impl Shapes {
    fn of(p: &Platform, req: &Req) -> Shapes {
        Shapes {
            example: p.xdr.example_shapes,
            unknown_members: wants_unknown_members(req),
        }
    }

    /// An enum member as the answer writes it.
    fn member(self, m: &str) -> Json {
        if self.example {
            Json::String(pascal(m))
        } else {
            Json::String(m.to_string())
        }
    }

    /// A member of an evolvable enum: `unknownFutureValue` unless the caller asked for the
    /// members after it.
    fn evolvable(self, list: &[&str], m: &str) -> Json {
        if !self.unknown_members && xdr::evolvable(list, m) {
            self.member("unknownFutureValue")
        } else {
            self.member(m)
        }
    }
}

/// The incident as Graph shows it (alerts expanded on request).
fn incident_json(p: &Platform, i: &XdrIncident, alerts: bool, shapes: Shapes) -> Json {
    let mut doc = json!({
        "@odata.type": "#microsoft.graph.security.incident",
        "id": i.id,
        "tenantId": p.tenant_id,
        "status": shapes.member(i.status),
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{}?tid={}", i.id, p.tenant_id),
        "redirectIncidentId": null,
        "displayName": i.display_name,
        "description": i.description,
        "createdDateTime": graph_time(i.created),
        "lastUpdateDateTime": graph_time(i.last_update),
        "assignedTo": i.assigned_to,
        "classification": shapes.member(i.classification),
        "determination": shapes.member(i.determination),
        "severity": i.severity,
        "customTags": i.custom_tags,
        "systemTags": [],
        "lastModifiedBy": i.last_modified_by,
        "resolvingComment": i.resolving_comment,
        "summary": null,
        "priorityScore": null,
        "comments": i.comments.iter().map(|c| xdr::comment_json(c, shapes.example)).collect::<Vec<_>>(),
    });
    if alerts {
        doc["alerts"] = Json::Array(
            i.alerts
                .iter()
                .map(|&a| alert_json(p, &p.xdr.alerts[a], shapes))
                .collect(),
        );
    }
    doc
}

/// The texts of an alert: its DfC alert's, or those its product gave.
struct AlertTexts<'a> {
    provider_alert_id: &'a str,
    service_source: &'static str,
    detection_source: &'static str,
    product_name: &'a str,
    detector_id: Option<&'a str>,
    title: &'a str,
    description: &'a str,
    category: &'a str,
    severity: String,
    first_activity: DateTime<Utc>,
    last_activity: DateTime<Utc>,
}

fn alert_texts<'a>(p: &'a Platform, x: &'a XdrAlert) -> AlertTexts<'a> {
    match &x.source {
        AlertSource::Dfc(a) => {
            let a = &p.alerts[*a];
            AlertTexts {
                provider_alert_id: a
                    .dfc
                    .as_ref()
                    .map_or(a.vendor_original_id.as_str(), |d| d.name.as_str()),
                service_source: "microsoftDefenderForCloud",
                detection_source: if a.product_component == "VirtualMachines" {
                    "microsoftDefenderForServers"
                } else {
                    "microsoftDefenderForCloud"
                },
                product_name: "Microsoft Defender for Cloud",
                detector_id: Some(&a.alert_type),
                title: &a.display_name,
                description: &a.description,
                category: &a.intent,
                severity: a.severity.to_ascii_lowercase(),
                first_activity: a.start,
                last_activity: a.end,
            }
        }
        AlertSource::Product(pa) => AlertTexts {
            provider_alert_id: &pa.provider_alert_id,
            service_source: pa.service_source,
            detection_source: pa.detection_source,
            product_name: &pa.product_name,
            detector_id: None,
            title: &pa.title,
            description: &pa.description,
            category: &pa.category,
            severity: pa.severity.clone(),
            first_activity: pa.first_activity,
            last_activity: pa.last_activity,
        },
    }
}

/// The alert as Graph shows it.
fn alert_json(p: &Platform, x: &XdrAlert, shapes: Shapes) -> Json {
    let t = alert_texts(p, x);
    let incident = x.incident.map(|i| p.xdr.incidents[i].id.clone());
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": x.id,
        "providerAlertId": t.provider_alert_id,
        "incidentId": incident,
        "status": shapes.member(x.status),
        "severity": t.severity,
        "classification": shapes.member(x.classification),
        "determination": shapes.member(x.determination),
        "serviceSource": shapes.evolvable(xdr::SERVICE_SOURCES, t.service_source),
        "detectionSource": shapes.evolvable(xdr::DETECTION_SOURCES, t.detection_source),
        "productName": t.product_name,
        "detectorId": t.detector_id,
        "tenantId": p.tenant_id,
        "title": t.title,
        "description": t.description,
        "category": t.category,
        "assignedTo": null,
        "alertWebUrl": format!("https://security.microsoft.com/alerts/{}?tid={}", x.id, p.tenant_id),
        "incidentWebUrl": incident.as_ref().map(|i| format!("https://security.microsoft.com/incidents/{i}?tid={}", p.tenant_id)),
        "actorDisplayName": null,
        "threatDisplayName": null,
        "createdDateTime": graph_time(x.created),
        "lastUpdateDateTime": graph_time(x.last_update),
        "resolvedDateTime": x.resolved.map(graph_time),
        "firstActivityDateTime": graph_time(t.first_activity),
        "lastActivityDateTime": graph_time(t.last_activity),
        "recommendedActions": "",
        "mitreTechniques": [],
        "systemTags": [],
        "comments": [],
        "evidence": [],
    })
}

/// The checked OData options of a list.
struct ListOpts {
    filter: Option<Expr>,
    top: usize,
    offset: usize,
    orderby: Vec<(Vec<String>, bool)>,
    count: bool,
    expand_alerts: bool,
}

fn paths(e: &Expr, out: &mut Vec<Vec<String>>) {
    let mut operand = |o: &Operand| {
        if let Operand::Path(p) = o {
            out.push(p.clone());
        }
    };
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            paths(a, out);
            paths(b, out);
        }
        Expr::Not(a) => paths(a, out),
        Expr::Cmp(a, _, b) | Expr::Func(_, a, b) => {
            operand(a);
            operand(b);
        }
    }
}

fn list_opts(req: &Req, kind: Kind) -> Result<ListOpts, String> {
    let (type_name, max) = match kind {
        Kind::Incidents => ("microsoft.graph.security.incident", INCIDENTS_TOP),
        Kind::Alerts => ("microsoft.graph.security.alert", ALERTS_TOP),
    };
    let filter = match req.q("$filter") {
        None => None,
        Some(text) => {
            let e = odata::parse_filter(text).map_err(|m| format!("Invalid filter clause: {m}"))?;
            let mut found = Vec::new();
            paths(&e, &mut found);
            for p in found {
                let name = p.join("/");
                let ok = p.len() == 1
                    && (INCIDENT_FILTERABLE.contains(&p[0].as_str())
                        || (kind == Kind::Alerts && p[0] == "serviceSource"));
                if !ok {
                    return Err(format!(
                        "Invalid filter clause: Could not find a filterable property named '{name}' on type '{type_name}'."
                    ));
                }
            }
            Some(e)
        }
    };
    let top = match req.q("$top") {
        None => max,
        Some(t) => {
            let n: usize = t
                .parse()
                .map_err(|_| format!("Invalid value '{t}' for $top query option."))?;
            if n > max {
                return Err(format!(
                    "The query specified in the URI is not valid. The limit of '{max}' for Top query has been exceeded. The value from the incoming request is '{n}'."
                ));
            }
            n
        }
    };
    let mut offset = match req.q("$skip") {
        None => 0,
        Some(s) => s
            .parse()
            .map_err(|_| format!("Invalid value '{s}' for $skip query option."))?,
    };
    if let Some(tok) = req.q("$skiptoken") {
        offset = URL_SAFE_NO_PAD
            .decode(tok)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| "The $skiptoken is not valid.".to_string())?;
    }
    let orderby = match req.q("$orderby") {
        None => vec![(vec!["createdDateTime".to_string()], true)],
        Some(text) => {
            let o = odata::parse_orderby(text).map_err(|m| format!("Invalid $orderby: {m}"))?;
            for (p, _) in &o {
                if p.len() != 1 || !SORTABLE.contains(&p[0].as_str()) {
                    return Err(format!(
                        "Invalid $orderby: the property '{}' cannot be used to sort (lastUpdateDateTime or createdDateTime).",
                        p.join("/")
                    ));
                }
            }
            o
        }
    };
    let count = match req.q("$count") {
        None => false,
        Some(c) if c.eq_ignore_ascii_case("true") => true,
        Some(c) if c.eq_ignore_ascii_case("false") => false,
        Some(c) => return Err(format!("Invalid value '{c}' for $count query option.")),
    };
    let expand_alerts = match req.q("$expand") {
        None => false,
        Some("alerts") if kind == Kind::Incidents => true,
        Some(e) => {
            return Err(format!(
                "Could not find a navigation property named '{e}' on type '{type_name}'."
            ));
        }
    };
    Ok(ListOpts {
        filter,
        top,
        offset,
        orderby,
        count,
        expand_alerts,
    })
}

/// The values of a listed item that `$filter` and `$orderby` read, taken from the model (the
/// JSON is built for the page's items only).
struct ItemKeys<'a> {
    /// The item's index (in `xdr.incidents` or `xdr.alerts`).
    index: usize,
    id: &'a str,
    status: &'static str,
    classification: &'static str,
    determination: &'static str,
    severity: &'a str,
    assigned_to: Option<&'a str>,
    service_source: Option<&'static str>,
    created: DateTime<Utc>,
    last_update: DateTime<Utc>,
}

impl<'a> ItemKeys<'a> {
    fn of_incident(index: usize, i: &'a XdrIncident) -> ItemKeys<'a> {
        ItemKeys {
            index,
            id: &i.id,
            status: i.status,
            classification: i.classification,
            determination: i.determination,
            severity: &i.severity,
            assigned_to: i.assigned_to.as_deref(),
            service_source: None,
            created: i.created,
            last_update: i.last_update,
        }
    }

    fn of_alert(p: &'a Platform, index: usize) -> ItemKeys<'a> {
        let x = &p.xdr.alerts[index];
        let (severity, service_source) = match &x.source {
            AlertSource::Dfc(a) => (p.alerts[*a].severity.as_str(), "microsoftDefenderForCloud"),
            AlertSource::Product(pa) => (pa.severity.as_str(), pa.service_source),
        };
        ItemKeys {
            index,
            id: &x.id,
            status: x.status,
            classification: x.classification,
            determination: x.determination,
            severity,
            assigned_to: None,
            service_source: Some(service_source),
            created: x.created,
            last_update: x.last_update,
        }
    }

    /// A filterable property's value (the real one: evolvable members are not masked).
    fn field(&self, path: &[String]) -> Field<'a> {
        let [name] = path else {
            return Field::Null;
        };
        let text = |s: &'a str| Field::Str(s);
        match name.as_str() {
            "status" => text(self.status),
            "classification" => text(self.classification),
            "determination" => text(self.determination),
            "severity" => text(self.severity),
            "assignedTo" => self.assigned_to.map_or(Field::Null, text),
            "serviceSource" => self.service_source.map_or(Field::Null, text),
            "createdDateTime" => Field::Time(self.created),
            "lastUpdateDateTime" => Field::Time(self.last_update),
            _ => Field::Null,
        }
    }

    /// The order of a list: the `$orderby` keys, then the id (shorter first, as numbers).
    fn order(&self, other: &ItemKeys<'_>, orderby: &[(Vec<String>, bool)]) -> Ordering {
        for (path, desc) in orderby {
            let key = |k: &ItemKeys<'_>| match path.first().map(String::as_str) {
                Some("lastUpdateDateTime") => k.last_update,
                _ => k.created,
            };
            let o = key(self).cmp(&key(other));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        (self.id.len(), self.id).cmp(&(other.id.len(), other.id))
    }
}

/// Puts the items of positions `start..end` (in the list's order) in place, sorted, without
/// sorting the whole list (linear in the list's length).
fn order_page(
    items: &mut [ItemKeys<'_>],
    start: usize,
    end: usize,
    orderby: &[(Vec<String>, bool)],
) {
    let cmp = |a: &ItemKeys<'_>, b: &ItemKeys<'_>| a.order(b, orderby);
    if start >= end || start >= items.len() {
        return;
    }
    if start > 0 {
        items.select_nth_unstable_by(start, cmp);
    }
    let rest = &mut items[start..];
    let k = end - start;
    if k < rest.len() {
        rest.select_nth_unstable_by(k - 1, cmp);
    }
    rest[..k].sort_unstable_by(cmp);
}

/// Lists incidents, or alerts (all, or those of the incident with id `of`). The filter and
/// the order read the model's values; only the page's items are written as JSON, so a page
/// costs the page plus the matching items' keys.
fn list(shared: &Shared, req: &Req, kind: Kind, of: Option<&str>) -> Resp {
    let opts = match list_opts(req, kind) {
        Ok(o) => o,
        Err(m) => return bad(shared, req, &m),
    };
    let filter = opts.filter.as_ref().map(Compiled::new);
    let found: Option<(Vec<Json>, usize)> = {
        let st = shared.lock();
        let p = &st.platform;
        let shapes = Shapes::of(p, req);
        let keys: Option<Vec<ItemKeys<'_>>> = match (kind, of) {
            (Kind::Incidents, _) => Some(
                p.xdr
                    .incidents
                    .iter()
                    .enumerate()
                    .map(|(n, i)| ItemKeys::of_incident(n, i))
                    .collect(),
            ),
            (Kind::Alerts, Some(id)) => p.xdr.incident(id).map(|i| {
                p.xdr.incidents[i]
                    .alerts
                    .iter()
                    .map(|&a| ItemKeys::of_alert(p, a))
                    .collect()
            }),
            (Kind::Alerts, None) => Some(
                (0..p.xdr.alerts.len())
                    .map(|a| ItemKeys::of_alert(p, a))
                    .collect(),
            ),
        };
        keys.map(|mut keys| {
            if let Some(f) = &filter {
                keys.retain(|k| f.eval(&|path| k.field(path)));
            }
            let total = keys.len();
            let start = opts.offset.min(total);
            let end = opts.offset.saturating_add(opts.top).min(total);
            order_page(&mut keys, start, end, &opts.orderby);
            let page = keys[start..end]
                .iter()
                .map(|k| match kind {
                    Kind::Incidents => {
                        incident_json(p, &p.xdr.incidents[k.index], opts.expand_alerts, shapes)
                    }
                    Kind::Alerts => alert_json(p, &p.xdr.alerts[k.index], shapes),
                })
                .collect();
            (page, total)
        })
    };
    let Some((page, total)) = found else {
        return incident_not_found(shared, req, of.unwrap_or_default());
    };
    let next = opts.offset + page.len();
    let what = match (kind, of) {
        (Kind::Incidents, _) => "security/incidents".to_string(),
        (Kind::Alerts, Some(id)) => format!("security/incidents('{id}')/alerts"),
        (Kind::Alerts, None) => "security/alerts_v2".to_string(),
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#{what}", shared.base_url)),
    );
    if opts.count {
        body.insert("@odata.count".into(), json!(total));
    }
    if next < total && !page.is_empty() {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("$skip") && !k.eq_ignore_ascii_case("$skiptoken")
            })
            .cloned()
            .collect();
        q.push((
            "$skiptoken".into(),
            URL_SAFE_NO_PAD.encode(format!("skip:{next}")),
        ));
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        // The link names the host the request was sent to (as a service behind a front
        // door does), so a client reaching the emulator through a proxy stays on it.
        let base = req
            .header("host")
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
            .map(|h| format!("https://{h}"))
            .unwrap_or_else(|| shared.base_url.clone());
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}{}?{qs}", req.path)),
        );
    }
    body.insert("value".into(), Json::Array(page));
    preference(Resp::json(200, Json::Object(body)), req)
}

fn get_incident(shared: &Shared, req: &Req, id: &str) -> Resp {
    let expand = match req.q("$expand") {
        None => false,
        Some("alerts") => true,
        Some(e) => {
            return bad(
                shared,
                req,
                &format!(
                    "Could not find a navigation property named '{e}' on type 'microsoft.graph.security.incident'."
                ),
            );
        }
    };
    let doc = {
        let st = shared.lock();
        let p = &st.platform;
        p.xdr
            .incident(id)
            .map(|i| incident_json(p, &p.xdr.incidents[i], expand, Shapes::of(p, req)))
    };
    match doc {
        Some(d) => preference(Resp::json(200, d), req),
        None => incident_not_found(shared, req, id),
    }
}

fn get_alert(shared: &Shared, req: &Req, id: &str) -> Resp {
    let doc = {
        let st = shared.lock();
        let p = &st.platform;
        p.xdr
            .alert(id)
            .map(|a| alert_json(p, &p.xdr.alerts[a], Shapes::of(p, req)))
    };
    match doc {
        Some(d) => preference(Resp::json(200, d), req),
        None => error(
            shared,
            req,
            404,
            "NotFound",
            &format!("Alert with id '{id}' was not found."),
        ),
    }
}

/// Checks a PATCH body against the documented writable properties (`resolvingComment` too when
/// the tenant takes it: Graph's changelog lists it as updatable since December 2024).
fn parse_patch(body: &Json, resolving_comment: bool) -> Result<IncidentPatch, String> {
    let Some(obj) = body.as_object() else {
        return Err("The request body must be a JSON object.".into());
    };
    let mut patch = IncidentPatch::default();
    let text = |k: &str, v: &Json| -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("Invalid value for property '{k}': expected a string."))
    };
    for (k, v) in obj {
        match k.as_str() {
            "@odata.type" => {}
            "status" => {
                let s = text(k, v)?;
                patch.status = Some(
                    xdr::member(xdr::WRITABLE_INCIDENT_STATUSES, &s).ok_or_else(|| {
                        format!(
                            "Invalid value '{s}' for property 'status': a client may set active, inProgress or resolved."
                        )
                    })?,
                );
            }
            "classification" => {
                let s = text(k, v)?;
                patch.classification =
                    Some(xdr::member(xdr::CLASSIFICATIONS, &s).ok_or_else(|| {
                        format!("Invalid value '{s}' for property 'classification'.")
                    })?);
            }
            "determination" => {
                let s = text(k, v)?;
                patch.determination =
                    Some(xdr::member(xdr::DETERMINATIONS, &s).ok_or_else(|| {
                        format!("Invalid value '{s}' for property 'determination'.")
                    })?);
            }
            "assignedTo" => {
                patch.assigned_to = Some(match v {
                    Json::Null => None,
                    other => Some(text(k, other)?),
                });
            }
            "customTags" => {
                let tags = v
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|t| t.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| {
                        "Invalid value for property 'customTags': expected an array of strings."
                            .to_string()
                    })?;
                patch.custom_tags = Some(tags);
            }
            "resolvingComment" if resolving_comment => {
                patch.resolving_comment = Some(match v {
                    Json::Null => None,
                    other => {
                        let c = text(k, other)?;
                        if c.chars().count() > COMMENT_MAX {
                            return Err(format!(
                                "The property 'resolvingComment' must hold at most {COMMENT_MAX} characters."
                            ));
                        }
                        Some(c)
                    }
                });
            }
            "resolvingComment" | "summary" | "displayName" | "severity" | "description"
            | "comments" | "systemTags" | "redirectIncidentId" | "id" | "createdDateTime"
            | "lastUpdateDateTime" | "incidentWebUrl" | "tenantId" | "lastModifiedBy" => {
                return Err(format!("The property '{k}' cannot be updated."));
            }
            other => {
                return Err(format!(
                    "The property '{other}' does not exist on type 'microsoft.graph.security.incident'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ));
            }
        }
    }
    Ok(patch)
}

fn caller_actor(p: &Platform, name: &str) -> Actor {
    p.principal(name)
        .map(|i| Actor::of(&p.principals[i]))
        .unwrap_or_else(|| Actor::system(name))
}

fn patch_incident(shared: &Shared, req: &Req, id: &str, name: &str) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(m) => return bad(shared, req, &m),
    };
    let resolving_comment = shared.lock().platform.xdr.resolving_comment_patch;
    let patch = match parse_patch(&body, resolving_comment) {
        Ok(p) => p,
        Err(m) => return bad(shared, req, &m),
    };
    let mut st = shared.lock();
    let Some(inc) = st.platform.xdr.incident(id) else {
        drop(st);
        return incident_not_found(shared, req, id);
    };
    let cur = &st.platform.xdr.incidents[inc];
    let class = patch.classification.unwrap_or(cur.classification);
    let det = patch.determination.unwrap_or(cur.determination);
    if !xdr::determination_fits(class, det) {
        drop(st);
        return bad(
            shared,
            req,
            &format!("The determination '{det}' is not valid with the classification '{class}'."),
        );
    }
    let now = st.clock.now();
    let State { platform, .. } = &mut *st;
    let actor = caller_actor(platform, name);
    let p = Arc::make_mut(platform);
    p.xdr_apply(inc, &patch, &actor, now, true);
    p.xdr_stamp(inc, now);
    let doc = incident_json(p, &p.xdr.incidents[inc], false, Shapes::of(p, req));
    drop(st);
    preference(Resp::json(200, doc), req)
}

fn post_comment(shared: &Shared, req: &Req, id: &str, name: &str) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(m) => return bad(shared, req, &m),
    };
    if let Some(t) = body.get("@odata.type")
        && t.as_str().map(|s| s.trim_start_matches('#'))
            != Some("microsoft.graph.security.alertComment")
    {
        return bad(
            shared,
            req,
            "Invalid @odata.type: expected microsoft.graph.security.alertComment.",
        );
    }
    let Some(text) = body.get("comment").and_then(Json::as_str) else {
        return bad(
            shared,
            req,
            "The property 'comment' is required (a string).",
        );
    };
    if text.trim().is_empty() || text.chars().count() > COMMENT_MAX {
        return bad(
            shared,
            req,
            &format!("The property 'comment' must hold 1 to {COMMENT_MAX} characters."),
        );
    }
    let mut st = shared.lock();
    let Some(inc) = st.platform.xdr.incident(id) else {
        drop(st);
        return incident_not_found(shared, req, id);
    };
    let now = st.clock.now();
    let State { platform, .. } = &mut *st;
    let actor = caller_actor(platform, name);
    let p = Arc::make_mut(platform);
    p.xdr_comment(inc, text, &actor, now);
    p.xdr_stamp(inc, now);
    let example = p.xdr.example_shapes;
    let comments: Vec<Json> = p.xdr.incidents[inc]
        .comments
        .iter()
        .map(|c| xdr::comment_json(c, example))
        .collect();
    let base = shared.base_url.clone();
    drop(st);
    Resp::json(
        200,
        json!({
            "@odata.context": format!("{base}/v1.0/$metadata#Collection(microsoft.graph.security.alertComment)"),
            "value": comments,
        }),
    )
}
