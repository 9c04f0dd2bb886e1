//! ARM: authentication (401 bodies), throttling (token buckets, remaining headers, 429),
//! RBAC (403 `AuthorizationFailed`), and the resources `dfcsync` uses: the Log Analytics
//! workspace, `Microsoft.SecurityInsights` incidents, their comments and alerts, and
//! `Microsoft.Security` (DfC) alerts with their status actions.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::{Req, Resp, Shared, State, dotnet_time, json_body};
use crate::odata::{self, Compiled, Field};
use crate::platform::{Actor, ApiError, DfcStatus, IncidentWrite, Platform, incident_url};
use crate::table::format_time;
use crate::throttle::{ArmVerdict, OpKind};
use crate::tokens::{ARM_AUDIENCES, TokenError};

/// The caller of an authenticated request.
pub struct Caller {
    pub principal: usize,
    pub name: String,
}

/// Checks the bearer token for ARM. `Err` is the 401 response.
pub fn authenticate(shared: &Shared, st: &State, req: &Req) -> Result<Caller, Resp> {
    let now = st.clock.wall_now();
    let www = |err: &str| {
        format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"{err}\", error_description=\"The access token is missing or invalid.\"",
            shared.tenant_id
        )
    };
    match shared.issuer.check(req.header("Authorization"), ARM_AUDIENCES, now) {
        Ok(claims) => match st.platform.principal(&claims.oid) {
            Some(p) => Ok(Caller {
                principal: p,
                name: st.platform.principals[p].name.clone(),
            }),
            None => Err(Resp::arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")),
        },
        Err(TokenError::Missing) => Err(Resp::arm_error(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
        .with("WWW-Authenticate", www("invalid_token"))),
        Err(TokenError::Malformed) => Err(Resp::arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            .with("WWW-Authenticate", www("invalid_token"))),
        Err(TokenError::Expired { exp, now }) => Err(Resp::arm_error(
            401,
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                dotnet_time(exp),
                dotnet_time(now)
            ),
        )
        .with("WWW-Authenticate", www("invalid_token"))),
        Err(TokenError::WrongAudience(aud)) => Err(Resp::arm_error(
            401,
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences {}.",
                ARM_AUDIENCES.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(",")
            ),
        )
        .with("WWW-Authenticate", www("invalid_token"))),
    }
}

/// The 403 body of a missing role.
pub fn authorization_failed(p: &Platform, principal: usize, action: &str, scope: &str) -> Resp {
    let pr = &p.principals[principal];
    let client = if pr.kind == crate::scenario::PrincipalKind::User {
        pr.name.clone()
    } else {
        pr.client_id.clone()
    };
    Resp::arm_error(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{client}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            pr.object_id
        ),
    )
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The ARM routes.
#[derive(Debug)]
enum Route<'a> {
    Workspace {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
    },
    Incidents {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
    },
    Incident {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
        id: &'a str,
    },
    IncidentAlerts {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
        id: &'a str,
    },
    Comments {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
        id: &'a str,
    },
    Comment {
        sub: &'a str,
        rg: &'a str,
        ws: &'a str,
        id: &'a str,
        cid: &'a str,
    },
    DfcList {
        sub: &'a str,
        rg: Option<&'a str>,
        loc: Option<&'a str>,
    },
    DfcAlert {
        sub: &'a str,
        rg: Option<&'a str>,
        loc: &'a str,
        name: &'a str,
        action: Option<&'a str>,
    },
}

fn route<'a>(segs: &[&'a str]) -> Option<Route<'a>> {
    if segs.len() < 2 || !eq(segs[0], "subscriptions") {
        return None;
    }
    let sub = segs[1];
    let mut rest = &segs[2..];
    let mut rg = None;
    if rest.len() >= 2 && eq(rest[0], "resourceGroups") {
        rg = Some(rest[1]);
        rest = &rest[2..];
    }
    if rest.len() < 2 || !eq(rest[0], "providers") {
        return None;
    }
    let provider = rest[1];
    let rest = &rest[2..];
    if eq(provider, "Microsoft.OperationalInsights") {
        let rg = rg?;
        if rest.len() < 2 || !eq(rest[0], "workspaces") {
            return None;
        }
        let ws = rest[1];
        let rest = &rest[2..];
        if rest.is_empty() {
            return Some(Route::Workspace { sub, rg, ws });
        }
        if rest.len() < 3
            || !eq(rest[0], "providers")
            || !eq(rest[1], "Microsoft.SecurityInsights")
            || !eq(rest[2], "incidents")
        {
            return None;
        }
        return match &rest[3..] {
            [] => Some(Route::Incidents { sub, rg, ws }),
            [id] => Some(Route::Incident { sub, rg, ws, id }),
            [id, a] if eq(a, "alerts") => Some(Route::IncidentAlerts { sub, rg, ws, id }),
            [id, c] if eq(c, "comments") => Some(Route::Comments { sub, rg, ws, id }),
            [id, c, cid] if eq(c, "comments") => Some(Route::Comment {
                sub,
                rg,
                ws,
                id,
                cid,
            }),
            _ => None,
        };
    }
    if eq(provider, "Microsoft.Security") {
        return match rest {
            [a] if eq(a, "alerts") => Some(Route::DfcList { sub, rg, loc: None }),
            [l, loc, a] if eq(l, "locations") && eq(a, "alerts") => Some(Route::DfcList {
                sub,
                rg,
                loc: Some(loc),
            }),
            [l, loc, a, name] if eq(l, "locations") && eq(a, "alerts") => Some(Route::DfcAlert {
                sub,
                rg,
                loc,
                name,
                action: None,
            }),
            [l, loc, a, name, action] if eq(l, "locations") && eq(a, "alerts") => {
                Some(Route::DfcAlert {
                    sub,
                    rg,
                    loc,
                    name,
                    action: Some(action),
                })
            }
            _ => None,
        };
    }
    None
}

fn not_found_route(req: &Req) -> Resp {
    Resp::arm_error(
        404,
        "InvalidResourceType",
        format!(
            "The resource type could not be found for the request '{}'.",
            req.path
        ),
    )
}

fn api_version_ok(v: &str) -> bool {
    let b = v.as_bytes();
    let date_ok = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    date_ok && (b.len() == 10 || v[10..].starts_with("-preview"))
}

/// Handles an ARM request; returns the response and the caller's name.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let mut st = shared.lock();
    let caller = match authenticate(shared, &st, req) {
        Ok(c) => c,
        Err(r) => return (r, None),
    };
    let name = Some(caller.name.clone());
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let Some(route) = route(&segs) else {
        return (not_found_route(req), name);
    };
    let sub = match &route {
        Route::Workspace { sub, .. }
        | Route::Incidents { sub, .. }
        | Route::Incident { sub, .. }
        | Route::IncidentAlerts { sub, .. }
        | Route::Comments { sub, .. }
        | Route::Comment { sub, .. }
        | Route::DfcList { sub, .. }
        | Route::DfcAlert { sub, .. } => sub.to_string(),
    };
    // Throttling, per subscription and principal.
    let kind = OpKind::of_method(&req.method);
    let oid = st.platform.principals[caller.principal].object_id.clone();
    let limits = st.platform.limits.clone();
    let remaining = match st.throttles.arm(&limits, &sub, &oid, kind) {
        ArmVerdict::Allowed {
            remaining,
            global_remaining,
        } => (remaining, global_remaining),
        ArmVerdict::Throttled { retry_after } => {
            let op = match kind {
                OpKind::Read => "Read",
                OpKind::Write => "Write",
                OpKind::Delete => "Delete",
            };
            let r = Resp::arm_error(
                429,
                "TooManyRequests",
                format!("The request is being throttled as the limit has been reached for operation type - {op}_ObservationWindow_00:00:10. For more information, see - https://aka.ms/srpthrottlinglimits"),
            )
            .with("Retry-After", retry_after.to_string())
            .with(&format!("x-ms-ratelimit-remaining-subscription-{}", kind.plural()), "0");
            return (r, name);
        }
    };
    let (request_id, corr) = (st.rng.guid(), st.rng.guid());
    let mut resp = match req.q("api-version") {
        None => Resp::arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ),
        Some(v) if !api_version_ok(v) => Resp::arm_error(
            400,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '2025-09-01,2025-06-01,2024-09-01,2022-01-01'."
            ),
        ),
        Some(v) => {
            let v = v.to_string();
            dispatch(shared, &mut st, req, route, &caller, &v)
        }
    };
    resp = resp
        .with(
            &format!("x-ms-ratelimit-remaining-subscription-{}", kind.plural()),
            remaining.0.to_string(),
        )
        .with(
            &format!(
                "x-ms-ratelimit-remaining-subscription-global-{}",
                kind.plural()
            ),
            remaining.1.to_string(),
        )
        .with("x-ms-request-id", request_id)
        .with("x-ms-correlation-request-id", corr);
    (resp, name)
}

fn check(
    st: &State,
    caller: &Caller,
    action: &str,
    resource: &str,
    scope_for_message: &str,
) -> Result<(), Resp> {
    let now = st.clock.now();
    if st
        .platform
        .authorized(caller.principal, action, resource, now)
    {
        Ok(())
    } else {
        Err(authorization_failed(
            &st.platform,
            caller.principal,
            action,
            scope_for_message,
        ))
    }
}

fn api_err(e: ApiError) -> Resp {
    Resp::arm_error(e.status, &e.code, e.message)
}

fn dispatch(
    shared: &Shared,
    st: &mut State,
    req: &Req,
    route: Route<'_>,
    caller: &Caller,
    api_version: &str,
) -> Resp {
    let scope = req.path.trim_end_matches('/').to_string();
    let m = req.method.as_str();
    macro_rules! need {
        ($action:expr) => {
            if let Err(r) = check(st, caller, $action, &scope, &scope) {
                return r;
            }
        };
    }
    match route {
        Route::Workspace { sub, rg, ws } => {
            if m != "GET" {
                return method_not_allowed(m);
            }
            need!("Microsoft.OperationalInsights/workspaces/read");
            match find_ws(&st.platform, sub, rg, ws) {
                Ok(w) => Resp::json(200, workspace_json(&st.platform, w)),
                Err(r) => r,
            }
        }
        Route::Incidents { sub, rg, ws } => {
            if m != "GET" {
                return method_not_allowed(m);
            }
            need!("Microsoft.SecurityInsights/incidents/read");
            let w = match find_ws(&st.platform, sub, rg, ws) {
                Ok(w) => w,
                Err(r) => return r,
            };
            list_incidents(shared, st, req, w, api_version)
        }
        Route::Incident { sub, rg, ws, id } => {
            let w = match m {
                "GET" => {
                    need!("Microsoft.SecurityInsights/incidents/read");
                    match find_ws(&st.platform, sub, rg, ws) {
                        Ok(w) => w,
                        Err(r) => return r,
                    }
                }
                "PUT" => {
                    need!("Microsoft.SecurityInsights/incidents/write");
                    match find_ws(&st.platform, sub, rg, ws) {
                        Ok(w) => w,
                        Err(r) => return r,
                    }
                }
                "DELETE" => {
                    need!("Microsoft.SecurityInsights/incidents/delete");
                    return Resp::arm_error(
                        405,
                        "MethodNotAllowed",
                        "The emulator does not delete incidents: the tables are append-only.",
                    );
                }
                _ => return method_not_allowed(m),
            };
            if m == "GET" {
                return match st.platform.incident_in(w, id) {
                    Some(i) => Resp::json(200, incident_json(&st.platform, i, api_version)),
                    None => incident_not_found(id),
                };
            }
            put_incident(st, req, caller, w, id, api_version)
        }
        Route::IncidentAlerts { sub, rg, ws, id } => {
            if m != "POST" {
                return method_not_allowed(m);
            }
            need!("Microsoft.SecurityInsights/incidents/alerts/read");
            let w = match find_ws(&st.platform, sub, rg, ws) {
                Ok(w) => w,
                Err(r) => return r,
            };
            let Some(i) = st.platform.incident_in(w, id) else {
                return incident_not_found(id);
            };
            let p = &st.platform;
            let value: Vec<Json> = p.incidents[i]
                .alert_ids
                .iter()
                .filter_map(|a| p.alert_by_system_id(a))
                .map(|a| alert_entity_json(p, a))
                .collect();
            Resp::json(200, json!({ "value": value }))
        }
        Route::Comments { sub, rg, ws, id } => {
            if m != "GET" {
                return method_not_allowed(m);
            }
            need!("Microsoft.SecurityInsights/incidents/comments/read");
            let w = match find_ws(&st.platform, sub, rg, ws) {
                Ok(w) => w,
                Err(r) => return r,
            };
            let Some(i) = st.platform.incident_in(w, id) else {
                return incident_not_found(id);
            };
            let items: Vec<Json> = st.platform.incidents[i]
                .comments
                .iter()
                .map(|c| comment_json(&st.platform, i, c))
                .collect();
            {
                let top = match parse_top(req) {
                    Ok(t) => t,
                    Err(r) => return r,
                };
                page(
                    shared,
                    req,
                    items,
                    st.platform.limits.default_page_size,
                    top,
                )
            }
        }
        Route::Comment {
            sub,
            rg,
            ws,
            id,
            cid,
        } => {
            match m {
                "GET" => need!("Microsoft.SecurityInsights/incidents/comments/read"),
                "PUT" => need!("Microsoft.SecurityInsights/incidents/comments/write"),
                _ => return method_not_allowed(m),
            }
            let w = match find_ws(&st.platform, sub, rg, ws) {
                Ok(w) => w,
                Err(r) => return r,
            };
            let Some(i) = st.platform.incident_in(w, id) else {
                return incident_not_found(id);
            };
            if m == "GET" {
                return match st.platform.incidents[i]
                    .comments
                    .iter()
                    .find(|c| c.id.eq_ignore_ascii_case(cid))
                {
                    Some(c) => Resp::json(200, comment_json(&st.platform, i, c)),
                    None => {
                        Resp::arm_error(404, "NotFound", format!("Comment '{cid}' was not found."))
                    }
                };
            }
            let body = match json_body(req) {
                Ok(b) => b,
                Err(e) => return invalid_content(&e),
            };
            let Some(message) = body.pointer("/properties/message").and_then(Json::as_str) else {
                return Resp::arm_error(400, "BadRequest", "The 'message' field is required.");
            };
            if message.is_empty() {
                return Resp::arm_error(400, "BadRequest", "The 'message' field is required.");
            }
            if message.chars().count() > 30_000 {
                return Resp::arm_error(
                    400,
                    "BadRequest",
                    "The comment message exceeds the maximum length of 30000 characters.",
                );
            }
            let actor = Actor::of(&st.platform.principals[caller.principal]);
            let now = st.clock.now();
            let (comment, created) =
                Arc::make_mut(&mut st.platform).put_comment(i, cid, message, &actor, now);
            Resp::json(
                if created { 201 } else { 200 },
                comment_json(&st.platform, i, &comment),
            )
        }
        Route::DfcList { sub, rg, loc } => {
            if m != "GET" {
                return method_not_allowed(m);
            }
            need!("Microsoft.Security/locations/alerts/read");
            let p = &st.platform;
            let found: Vec<usize> = p
                .alerts
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.dfc.as_ref().is_some_and(|d| {
                        eq(&d.subscription_id, sub)
                            && rg.is_none_or(|r| eq(&d.resource_group, r))
                            && loc.is_none_or(|l| eq(&d.location, l))
                    })
                })
                .map(|(i, _)| i)
                .collect();
            let skip = match req.q("$skipToken") {
                None => 0,
                Some(t) => match decode_skip(t) {
                    Some(n) => n,
                    None => {
                        return Resp::arm_error(400, "BadRequest", "The $skipToken is invalid.");
                    }
                },
            };
            // JSON for the page's alerts only.
            let value: Vec<Json> = found
                .iter()
                .skip(skip)
                .take(1000)
                .map(|&i| dfc_alert_json(p, i))
                .collect();
            page_of(shared, req, value, skip, 1000, found.len())
        }
        Route::DfcAlert {
            sub,
            rg,
            loc,
            name,
            action,
        } => {
            let p = &st.platform;
            let found = p.alert_by_dfc_name(name).filter(|&a| {
                p.alerts[a].dfc.as_ref().is_some_and(|d| {
                    eq(&d.subscription_id, sub)
                        && eq(&d.location, loc)
                        && rg.is_none_or(|r| eq(&d.resource_group, r))
                })
            });
            match (m, action) {
                ("GET", None) => {
                    need!("Microsoft.Security/locations/alerts/read");
                    match found {
                        Some(a) => Resp::json(200, dfc_alert_json(&st.platform, a)),
                        None => dfc_not_found(name),
                    }
                }
                ("POST", Some(action)) => {
                    let (status, op) = match action.to_ascii_lowercase().as_str() {
                        "dismiss" => (DfcStatus::Dismissed, "dismiss"),
                        "resolve" => (DfcStatus::Resolved, "resolve"),
                        "activate" => (DfcStatus::Active, "activate"),
                        "inprogress" => (DfcStatus::InProgress, "inProgress"),
                        _ => return not_found_route(req),
                    };
                    let act = format!("Microsoft.Security/locations/alerts/{op}/action");
                    need!(&act);
                    match found {
                        Some(a) => {
                            let now = st.clock.now();
                            Arc::make_mut(&mut st.platform).set_alert_status(a, status, now);
                            Resp::empty(204)
                        }
                        None => dfc_not_found(name),
                    }
                }
                _ => method_not_allowed(m),
            }
        }
    }
}

fn method_not_allowed(m: &str) -> Resp {
    Resp::arm_error(
        405,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{m}'."),
    )
}

fn invalid_content(e: &str) -> Resp {
    Resp::arm_error(
        400,
        "InvalidRequestContent",
        format!("The request content was invalid and could not be deserialized: '{e}'."),
    )
}

fn incident_not_found(id: &str) -> Resp {
    Resp::arm_error(404, "NotFound", format!("Incident '{id}' was not found."))
}

fn dfc_not_found(name: &str) -> Resp {
    Resp::arm_error(404, "NotFound", format!("Alert '{name}' was not found."))
}

fn find_ws(p: &Platform, sub: &str, rg: &str, ws: &str) -> Result<usize, Resp> {
    if let Some(w) = p.workspace_at(sub, rg, ws) {
        return Ok(w);
    }
    let sub_known = p.workspaces.iter().any(|w| eq(&w.subscription_id, sub));
    let rg_known = p
        .workspaces
        .iter()
        .any(|w| eq(&w.subscription_id, sub) && eq(&w.resource_group, rg));
    Err(if !sub_known {
        Resp::arm_error(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        )
    } else if !rg_known {
        Resp::arm_error(
            404,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )
    } else {
        Resp::arm_error(
            404,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.OperationalInsights/workspaces/{ws}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    })
}

fn workspace_json(p: &Platform, w: usize) -> Json {
    let ws = &p.workspaces[w];
    json!({
        "id": ws.arm_id(),
        "name": ws.name,
        "type": "Microsoft.OperationalInsights/workspaces",
        "location": ws.location,
        "tags": {},
        "etag": format!("\"{}\"", &ws.customer_id[..8]),
        "properties": {
            "provisioningState": "Succeeded",
            "customerId": ws.customer_id,
            "sku": {"name": "PerGB2018", "lastSkuUpdate": format_time(ws.created)},
            "retentionInDays": 90,
            "features": {"legacy": 0, "searchVersion": 1, "enableLogAccessUsingOnlyResourcePermissions": true},
            "workspaceCapping": {"dailyQuotaGb": -1.0, "quotaNextResetTime": format_time(ws.created), "dataIngestionStatus": "RespectQuota"},
            "publicNetworkAccessForIngestion": "Enabled",
            "publicNetworkAccessForQuery": "Enabled",
            "createdDate": format_time(ws.created),
            "modifiedDate": format_time(ws.created),
        }
    })
}

fn incident_id(p: &Platform, i: usize) -> String {
    let inc = &p.incidents[i];
    format!(
        "{}/providers/Microsoft.SecurityInsights/Incidents/{}",
        p.workspaces[inc.workspace].arm_id(),
        inc.name
    )
}

/// An incident's document as the API returns it, borrowed from the model and written
/// straight to JSON (no `serde_json::Value` tree built for a list page).
#[derive(Serialize)]
pub struct IncidentDoc<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    etag: &'a str,
    properties: IncidentProps<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IncidentProps<'a> {
    title: &'a str,
    description: &'a str,
    severity: &'a str,
    status: &'a str,
    owner: Cow<'a, Json>,
    labels: Vec<LabelDoc<'a>>,
    created_time_utc: String,
    last_modified_time_utc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_activity_time_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_activity_time_utc: Option<String>,
    incident_number: i64,
    incident_url: String,
    provider_name: &'a str,
    provider_incident_id: &'a str,
    related_analytic_rule_ids: &'a [String],
    additional_data: AdditionalDoc<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification_comment: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LabelDoc<'a> {
    label_name: &'a str,
    label_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdditionalDoc<'a> {
    alerts_count: usize,
    bookmarks_count: usize,
    comments_count: usize,
    alert_product_names: &'a [String],
    tactics: &'a [String],
    /// Preview API versions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    techniques: Option<[&'static str; 0]>,
    /// Defender-portal workspaces only.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_incident_url: Option<String>,
}

/// An incident's document (see [`IncidentDoc`]).
pub fn incident_doc<'a>(p: &'a Platform, i: usize, api_version: &str) -> IncidentDoc<'a> {
    let inc = &p.incidents[i];
    let w = &p.workspaces[inc.workspace];
    let preview = api_version.contains("preview");
    let mut owner = Cow::Borrowed(&inc.owner);
    if !preview
        && inc
            .owner
            .as_object()
            .is_some_and(|o| !o.contains_key("ownerType"))
        && let Some(o) = owner.to_mut().as_object_mut()
    {
        // ownerType is in the 2025 schemas; older stable versions keep it too.
        o.insert("ownerType".into(), json!("Unknown"));
    }
    IncidentDoc {
        id: incident_id(p, i),
        name: &inc.name,
        kind: "Microsoft.SecurityInsights/Incidents",
        etag: &inc.etag,
        properties: IncidentProps {
            title: &inc.title,
            description: &inc.description,
            severity: &inc.severity,
            status: &inc.status,
            owner,
            labels: inc
                .labels
                .iter()
                .map(|l| LabelDoc {
                    label_name: l,
                    label_type: "User",
                })
                .collect(),
            created_time_utc: format_time(inc.created),
            last_modified_time_utc: format_time(inc.last_modified),
            first_activity_time_utc: inc.first_activity.map(format_time),
            last_activity_time_utc: inc.last_activity.map(format_time),
            incident_number: inc.number,
            incident_url: incident_url(w, &inc.name),
            provider_name: &inc.provider_name,
            provider_incident_id: &inc.provider_incident_id,
            related_analytic_rule_ids: &inc.related_rule_ids,
            additional_data: AdditionalDoc {
                alerts_count: inc.alert_ids.len(),
                bookmarks_count: 0,
                comments_count: inc.comments.len(),
                alert_product_names: &inc.product_names,
                tactics: &inc.tactics,
                techniques: preview.then_some([]),
                provider_incident_url: w.defender_portal.then(|| {
                    format!(
                        "https://security.microsoft.com/incidents/{}?tid={}",
                        inc.provider_incident_id, p.tenant_id
                    )
                }),
            },
            classification: inc.classification.as_deref(),
            classification_reason: inc.classification_reason.as_deref(),
            classification_comment: inc.classification_comment.as_deref(),
        },
    }
}

/// An incident as the API returns it.
pub fn incident_json(p: &Platform, i: usize, api_version: &str) -> Json {
    serde_json::to_value(incident_doc(p, i, api_version)).unwrap_or(Json::Null)
}

fn comment_json(p: &Platform, i: usize, c: &crate::platform::Comment) -> Json {
    json!({
        "id": format!("{}/Comments/{}", incident_id(p, i), c.id),
        "name": c.id,
        "type": "Microsoft.SecurityInsights/Incidents/Comments",
        "etag": c.etag,
        "properties": {
            "message": c.message,
            "createdTimeUtc": format_time(c.created),
            "lastModifiedTimeUtc": format_time(c.last_modified),
            "author": c.author,
        }
    })
}

fn alert_entity_json(p: &Platform, a: usize) -> Json {
    let al = &p.alerts[a];
    // An incident's alerts are in its workspace; a workspace-less alert is in no incident.
    let Some(w) = al.workspace.map(|w| &p.workspaces[w]) else {
        return Json::Null;
    };
    json!({
        "id": format!("{}/providers/Microsoft.SecurityInsights/Entities/{}", w.arm_id(), al.system_alert_id),
        "name": al.system_alert_id,
        "type": "Microsoft.SecurityInsights/Entities",
        "kind": "SecurityAlert",
        "properties": {
            "systemAlertId": al.system_alert_id,
            "tactics": if al.intent.is_empty() || al.intent == "Unknown" { json!([]) } else { json!([al.intent]) },
            "alertDisplayName": al.display_name,
            "description": al.description,
            "confidenceLevel": "Unknown",
            "severity": al.severity,
            "vendorName": al.vendor_name,
            "productName": al.product_name,
            "productComponentName": al.product_component,
            "alertType": al.alert_type,
            "processingEndTime": format_time(al.processing_end),
            "status": al.table_status,
            "endTimeUtc": format_time(al.end),
            "startTimeUtc": format_time(al.start),
            "timeGenerated": format_time(al.created),
            "providerAlertId": al.vendor_original_id,
            "alertLink": al.alert_link,
            "compromisedEntity": al.compromised_entity,
            "resourceIdentifiers": [{
                "type": "LogAnalytics",
                "workspaceId": w.customer_id,
                "subscriptionId": w.subscription_id,
                "resourceGroup": w.resource_group,
            }],
            "additionalData": {"AlertMessageEnqueueTime": format_time(al.created)},
            "friendlyName": al.display_name,
        }
    })
}

fn dfc_alert_json(p: &Platform, a: usize) -> Json {
    let al = &p.alerts[a];
    let Some(d) = al.dfc.as_ref() else {
        return Json::Null;
    };
    let mut resource_identifiers =
        vec![json!({"type": "AzureResource", "azureResourceId": al.resource_id})];
    if let Some(w) = al.workspace.map(|w| &p.workspaces[w]) {
        resource_identifiers.push(json!({"type": "LogAnalytics", "workspaceId": w.customer_id,
            "workspaceSubscriptionId": w.subscription_id, "workspaceResourceGroup": w.resource_group,
            "agentId": "00000000-0000-0000-0000-000000000000"}));
    }
    let id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/locations/{}/alerts/{}",
        d.subscription_id, d.resource_group, d.location, d.name
    );
    json!({
        "id": id,
        "name": d.name,
        "type": "Microsoft.Security/Locations/alerts",
        "properties": {
            "version": "2022-01-01.0",
            "alertType": al.alert_type,
            "systemAlertId": d.name,
            "productComponentName": al.product_component,
            "alertDisplayName": al.display_name,
            "description": al.description,
            "severity": al.severity,
            "intent": al.intent,
            "startTimeUtc": format_time(al.start),
            "endTimeUtc": format_time(al.end),
            "resourceIdentifiers": resource_identifiers,
            "remediationSteps": ["Investigate the process and isolate the machine if it is malicious."],
            "vendorName": al.vendor_name,
            "status": al.status.as_str(),
            "extendedLinks": [],
            "alertUri": al.alert_link,
            "timeGeneratedUtc": format_time(al.created),
            "productName": al.product_name,
            "processingEndTimeUtc": format_time(al.processing_end),
            "entities": [{"type": "azure-resource", "resourceId": al.resource_id}],
            "isIncident": false,
            "correlationKey": "",
            "extendedProperties": {"resourceType": "Virtual Machine", "Compromised Host": al.compromised_entity},
            "compromisedEntity": al.compromised_entity,
            "techniques": [],
            "subTechniques": [],
        }
    })
}

/// One page of a list, with `nextLink` when more remain.
fn page(
    shared: &Shared,
    req: &Req,
    items: Vec<Json>,
    default_top: usize,
    top: Option<usize>,
) -> Resp {
    let top = top.unwrap_or(default_top).max(1);
    let skip = match req.q("$skipToken") {
        None => 0,
        Some(t) => match decode_skip(t) {
            Some(n) => n,
            None => return Resp::arm_error(400, "BadRequest", "The $skipToken is invalid."),
        },
    };
    let total = items.len();
    let value: Vec<Json> = items.into_iter().skip(skip).take(top).collect();
    page_of(shared, req, value, skip, top, total)
}

/// A page already cut: `value` holds the items from `skip`, at most `top`, of `total`.
fn page_of(
    shared: &Shared,
    req: &Req,
    value: Vec<Json>,
    skip: usize,
    top: usize,
    total: usize,
) -> Resp {
    let mut body = json!({ "value": value });
    if skip + top < total {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skipToken"))
            .cloned()
            .collect();
        q.push(("$skipToken".into(), encode_skip(skip + top)));
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        body["nextLink"] = json!(format!("{}{}?{}", shared.base_url, req.path, qs));
    }
    Resp::json(200, body)
}

fn encode_skip(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("skip:{n}"))
}

fn decode_skip(t: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("skip:")?
        .parse()
        .ok()
}

/// `$top`: 1 to 1000.
fn parse_top(req: &Req) -> Result<Option<usize>, Resp> {
    match req.q("$top") {
        None => Ok(None),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(Some(n)),
            _ => Err(Resp::arm_error(
                400,
                "BadRequest",
                format!(
                    "The value '{t}' of $top is invalid: it must be an integer between 1 and 1000."
                ),
            )),
        },
    }
}

/// An incident's value at an ARM path (`properties/status`, `name`, …) read from the model
/// for `$filter` and `$orderby`, or `None` for a path not mapped here (the list then reads
/// the incident's JSON). Segments are matched case-insensitively, as `odata::lookup` does.
fn incident_field<'a>(p: &'a Platform, i: usize, path: &[String]) -> Option<Field<'a>> {
    let inc = &p.incidents[i];
    let text = |s: &'a str| Some(Field::Str(s));
    let opt = |s: &'a Option<String>| Some(s.as_deref().map_or(Field::Null, Field::Str));
    let time = |t: Option<DateTime<Utc>>| Some(t.map_or(Field::Null, Field::Time));
    let seg = |k: usize| path.get(k).map(|s| s.to_ascii_lowercase());
    match (seg(0)?.as_str(), path.len()) {
        ("name", 1) => text(&inc.name),
        ("etag", 1) => text(&inc.etag),
        ("properties", 2) => match seg(1)?.as_str() {
            "title" => text(&inc.title),
            "description" => text(&inc.description),
            "severity" => text(&inc.severity),
            "status" => text(&inc.status),
            "classification" => opt(&inc.classification),
            "classificationreason" => opt(&inc.classification_reason),
            "classificationcomment" => opt(&inc.classification_comment),
            "createdtimeutc" => time(Some(inc.created)),
            "lastmodifiedtimeutc" => time(Some(inc.last_modified)),
            "firstactivitytimeutc" => time(inc.first_activity),
            "lastactivitytimeutc" => time(inc.last_activity),
            "incidentnumber" => Some(Field::Num(inc.number as f64)),
            "providername" => text(&inc.provider_name),
            "providerincidentid" => text(&inc.provider_incident_id),
            _ => None,
        },
        ("properties", 3) if seg(1)?.as_str() == "owner" => {
            let key = match seg(2)?.as_str() {
                "objectid" => "objectId",
                "email" => "email",
                "assignedto" => "assignedTo",
                "userprincipalname" => "userPrincipalName",
                "ownertype" => "ownerType",
                _ => return None,
            };
            Some(
                inc.owner
                    .get(key)
                    .and_then(Json::as_str)
                    .map_or(Field::Null, Field::Str),
            )
        }
        _ => None,
    }
}

/// The `$skipToken` of a list page: the offset of its first item (older links), or the
/// incident number it follows (keyset paging in number order: stable under inserts).
#[derive(Debug, Clone, Copy)]
enum PageStart {
    Offset(usize),
    After(i64),
}

fn decode_page_start(t: &str) -> Option<PageStart> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    if let Some(n) = text.strip_prefix("after:") {
        return n.parse().ok().map(PageStart::After);
    }
    text.strip_prefix("skip:")?
        .parse()
        .ok()
        .map(PageStart::Offset)
}

fn encode_after(n: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{n}"))
}

/// A list page as ARM writes it.
#[derive(Serialize)]
struct PageDoc<'a> {
    value: Vec<IncidentDoc<'a>>,
    #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

/// A page of incidents, written straight to JSON, with its `nextLink` carrying `token` when
/// more remain.
fn page_with_token(
    shared: &Shared,
    req: &Req,
    value: Vec<IncidentDoc<'_>>,
    token: Option<String>,
) -> Resp {
    let next_link = token.map(|token| {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skipToken"))
            .cloned()
            .collect();
        q.push(("$skipToken".into(), token));
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        format!("{}{}?{}", shared.base_url, req.path, qs)
    });
    match serde_json::to_vec(&PageDoc { value, next_link }) {
        Ok(body) => Resp::raw_json(200, body),
        Err(e) => Resp::arm_error(500, "InternalServerError", e.to_string()),
    }
}

/// Lists a workspace's incidents. The filter and the order read the model (an incident's
/// JSON is written only for the page, or, for a property the model lookup does not map, to
/// read it); the default order, incident number, pages by keyset over the workspace's
/// number index: a page costs the page plus the incidents the filter passes over, not the
/// workspace.
fn list_incidents(shared: &Shared, st: &State, req: &Req, w: usize, api_version: &str) -> Resp {
    let top = match parse_top(req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let filter = match req.q("$filter").filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(f) => match odata::parse_filter(f) {
            Ok(e) => Some(e),
            Err(e) => {
                return Resp::arm_error(
                    400,
                    "BadRequest",
                    format!("The $filter '{f}' is invalid: {e}."),
                );
            }
        },
    };
    let order = match req.q("$orderby").filter(|f| !f.trim().is_empty()) {
        None => vec![],
        Some(o) => match odata::parse_orderby(o) {
            Ok(v) => v,
            Err(e) => {
                return Resp::arm_error(
                    400,
                    "BadRequest",
                    format!("The $orderby '{o}' is invalid: {e}."),
                );
            }
        },
    };
    let start = match req.q("$skipToken").map(decode_page_start) {
        None => PageStart::Offset(0),
        Some(Some(s)) => s,
        Some(None) => return Resp::arm_error(400, "BadRequest", "The $skipToken is invalid."),
    };
    let p = &st.platform;
    let top = top.unwrap_or(p.limits.default_page_size).max(1);
    // Paths the model lookup maps are read from the model; any other makes the filter read
    // each incident's JSON (correct, slower).
    let mapped = |path: &Vec<String>| {
        p.workspace_incidents(w)
            .first()
            .is_none_or(|&i| incident_field(p, i, path).is_some())
    };
    let model_filter = filter
        .as_ref()
        .is_none_or(|e| odata::paths(e).iter().all(mapped));
    let compiled = filter.as_ref().map(Compiled::new);
    let passes = |i: usize| -> bool {
        let (Some(f), Some(e)) = (&compiled, &filter) else {
            return true;
        };
        if model_filter {
            f.eval(&|path| incident_field(p, i, path).unwrap_or(Field::Null))
        } else {
            odata::eval(e, &incident_json(p, i, api_version))
        }
    };
    let ids = p.workspace_incidents(w);
    if order.is_empty() {
        // Incident-number order: seek to the page's first incident, then take `top` that
        // pass the filter (one more tells whether a next page exists).
        let from = match start {
            PageStart::After(n) => ids.partition_point(|&i| p.incidents[i].number <= n),
            PageStart::Offset(_) => 0,
        };
        let mut skip = match start {
            PageStart::Offset(k) => k,
            PageStart::After(_) => 0,
        };
        let mut page = Vec::with_capacity(top.min(ids.len()));
        let mut more = false;
        for &i in &ids[from..] {
            if !passes(i) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if page.len() == top {
                more = true;
                break;
            }
            page.push(i);
        }
        let token = more
            .then(|| page.last().map(|&i| encode_after(p.incidents[i].number)))
            .flatten();
        let value = page
            .iter()
            .map(|&i| incident_doc(p, i, api_version))
            .collect();
        return page_with_token(shared, req, value, token);
    }
    // A `$orderby`: every passing incident's keys sorted, offset paging.
    let mut keep: Vec<usize> = ids.iter().copied().filter(|&i| passes(i)).collect();
    let by_model = order.iter().all(|(path, _)| mapped(path));
    let skip = match start {
        PageStart::Offset(k) => k,
        PageStart::After(_) => 0,
    };
    if by_model {
        keep.sort_by(|&a, &b| {
            for (path, desc) in &order {
                let (x, y) = (
                    incident_field(p, a, path).unwrap_or(Field::Null),
                    incident_field(p, b, path).unwrap_or(Field::Null),
                );
                let o = odata::compare_fields(x, y).unwrap_or(std::cmp::Ordering::Equal);
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            p.incidents[a].number.cmp(&p.incidents[b].number)
        });
    } else {
        let docs: Vec<Json> = keep
            .iter()
            .map(|&i| incident_json(p, i, api_version))
            .collect();
        let mut order_idx: Vec<usize> = (0..keep.len()).collect();
        order_idx.sort_by(|&a, &b| {
            for (path, desc) in &order {
                let o =
                    odata::compare(odata::lookup(&docs[a], path), odata::lookup(&docs[b], path))
                        .unwrap_or(std::cmp::Ordering::Equal);
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            p.incidents[keep[a]]
                .number
                .cmp(&p.incidents[keep[b]].number)
        });
        keep = order_idx.into_iter().map(|k| keep[k]).collect();
    }
    let total = keep.len();
    let value: Vec<IncidentDoc<'_>> = keep
        .iter()
        .skip(skip)
        .take(top)
        .map(|&i| incident_doc(p, i, api_version))
        .collect();
    let token = (skip + top < total).then(|| encode_skip(skip + top));
    page_with_token(shared, req, value, token)
}

fn parse_time_field(props: &Json, key: &str) -> Result<Option<DateTime<Utc>>, Resp> {
    match props.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                Resp::arm_error(
                    400,
                    "BadRequest",
                    format!("The value '{s}' of '{key}' is not a valid date-time."),
                )
            }),
        Some(_) => Err(Resp::arm_error(
            400,
            "BadRequest",
            format!("'{key}' must be a date-time string."),
        )),
    }
}

fn put_incident(
    st: &mut State,
    req: &Req,
    caller: &Caller,
    w: usize,
    id: &str,
    api_version: &str,
) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return invalid_content(&e),
    };
    let Some(props) = body.get("properties").filter(|p| p.is_object()) else {
        return Resp::arm_error(400, "BadRequest", "The 'properties' field is required.");
    };
    let text = |k: &str| -> Result<Option<String>, Resp> {
        match props.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Resp::arm_error(
                400,
                "BadRequest",
                format!("'{k}' must be a string."),
            )),
        }
    };
    let labels = match props.get("labels") {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(a)) => {
            let mut out = vec![];
            for l in a {
                match l.get("labelName").and_then(Json::as_str) {
                    Some(n) => out.push(n.to_string()),
                    None => {
                        return Resp::arm_error(
                            400,
                            "BadRequest",
                            "Each label needs a 'labelName'.",
                        );
                    }
                }
            }
            out
        }
        Some(_) => return Resp::arm_error(400, "BadRequest", "'labels' must be an array."),
    };
    let owner = match props.get("owner") {
        None | Some(Json::Null) => None,
        Some(o @ Json::Object(_)) => Some(o.clone()),
        Some(_) => return Resp::arm_error(400, "BadRequest", "'owner' must be an object."),
    };
    let etag = match body.get("etag") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Resp::arm_error(400, "BadRequest", "'etag' must be a string."),
    };
    let write = (|| -> Result<IncidentWrite, Resp> {
        Ok(IncidentWrite {
            etag,
            title: text("title")?.unwrap_or_default(),
            severity: text("severity")?.unwrap_or_default(),
            status: text("status")?.unwrap_or_default(),
            description: text("description")?,
            classification: text("classification")?,
            classification_reason: text("classificationReason")?,
            classification_comment: text("classificationComment")?,
            owner,
            labels,
            first_activity: parse_time_field(props, "firstActivityTimeUtc")?,
            last_activity: parse_time_field(props, "lastActivityTimeUtc")?,
        })
    })();
    let write = match write {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(e) = Platform::validate_write(&write) {
        return api_err(e);
    }
    let now = st.clock.now();
    // A conflict fault: a concurrent analyst edit lands just before this write.
    if let Some(existing) = st.platform.incident_in(w, id)
        && st.faults.take_conflict(&req.path)
    {
        let analyst = st
            .platform
            .principals
            .iter()
            .find(|p| p.kind == crate::scenario::PrincipalKind::User)
            .map(Actor::of)
            .unwrap_or_else(|| Actor::system("analyst@contoso.com"));
        Arc::make_mut(&mut st.platform).touch_incident(existing, &analyst, now);
    }
    let actor = Actor::of(&st.platform.principals[caller.principal]);
    match Arc::make_mut(&mut st.platform).put_incident(w, id, write, &actor, now) {
        Ok((i, created)) => Resp::json(
            if created { 201 } else { 200 },
            incident_json(&st.platform, i, api_version),
        ),
        Err(e) => api_err(e),
    }
}
