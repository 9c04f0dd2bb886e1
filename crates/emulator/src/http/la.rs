//! The Log Analytics query API: `POST`/`GET /v1/workspaces/{customerId}/query`, evaluated by
//! the `kql` crate over the workspace's `SecurityIncident` and `SecurityAlert` rows visible at
//! the emulator's now, with `timespan`, the service's response and error formats, the row
//! and size limits (`PartialError`, see `la_answer`), and the per-principal rate limit.

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::la_answer::{self, Extras};
use super::{Req, Resp, Shared};
use crate::tokens::{LA_AUDIENCES, TokenError};

fn la_error(status: u16, code: &str, message: &str, corr: &str) -> Resp {
    Resp::json(status, json!({"error": {"message": message, "code": code}}))
        .with("x-ms-correlation-request-id", corr)
}

/// Keeps an error body within the specification's `errorInfo` model: fields the model does
/// not name (the engine's `line`, `pos`) move into its `additionalProperties` bag.
fn conform_error(info: &mut Json) {
    let Some(obj) = info.as_object_mut() else {
        return;
    };
    let known = [
        "code",
        "message",
        "details",
        "innererror",
        "additionalProperties",
    ];
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    if !extra.is_empty() {
        let mut bag = serde_json::Map::new();
        for k in extra {
            if let Some(v) = obj.remove(&k) {
                bag.insert(k, v);
            }
        }
        obj.insert("additionalProperties".into(), Json::Object(bag));
    }
    if let Some(inner) = obj.get_mut("innererror") {
        conform_error(inner);
    }
}

fn bad_argument(message: &str, inner: &str, corr: &str) -> Resp {
    Resp::json(
        400,
        json!({"error": {
            "message": "The request had some invalid properties",
            "code": "BadArgumentError",
            "innererror": {"code": inner, "message": message}
        }}),
    )
    .with("x-ms-correlation-request-id", corr)
}

/// Parses a `timespan`: an ISO-8601 duration (ending now), `start/end`, `start/duration` or
/// `duration/end`.
pub fn parse_timespan(
    text: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let time = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
    };
    let dur = |s: &str| crate::duration::parse_iso8601(s).ok();
    match text.split_once('/') {
        None => dur(text)
            .map(|d| (now - d, now))
            .ok_or_else(|| format!("invalid timespan '{text}'")),
        Some((a, b)) => match (time(a), time(b), dur(a), dur(b)) {
            (Some(s), Some(e), _, _) => Ok((s, e)),
            (Some(s), None, _, Some(d)) => Ok((s, s + d)),
            (None, Some(e), Some(d), _) => Ok((e - d, e)),
            _ => Err(format!("invalid timespan '{text}'")),
        },
    }
}

/// What a query reads: a workspace by customer id, or a resource (resource-centric query).
enum Target {
    Workspace(String),
    Resource(String),
}

/// Handles a query request; returns the response and the caller's name.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let mut st = shared.lock();
    let corr = st.rng.guid();
    let wall = st.clock.wall_now();
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let target = match segs.as_slice() {
        ["v1", w, id, q]
            if w.eq_ignore_ascii_case("workspaces") && q.eq_ignore_ascii_case("query") =>
        {
            Target::Workspace(id.to_string())
        }
        ["v1", s, rest @ .., q]
            if s.eq_ignore_ascii_case("subscriptions")
                && q.eq_ignore_ascii_case("query")
                && !rest.is_empty() =>
        {
            Target::Resource(format!("/{}/{}", s, rest.join("/")))
        }
        _ => {
            return (
                la_error(
                    404,
                    "PathNotFoundError",
                    &format!("The requested path does not exist: {}", req.path),
                    &corr,
                ),
                None,
            );
        }
    };
    let claims = match shared
        .issuer
        .check(req.header("Authorization"), LA_AUDIENCES, wall)
    {
        Ok(c) => c,
        Err(TokenError::Missing) => {
            return (
                la_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", &corr)
                    .with("WWW-Authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", resource_id=\"https://api.loganalytics.io\""),
                None,
            );
        }
        Err(TokenError::Malformed) => {
            return (
                la_error(
                    403,
                    "InvalidAuthenticationToken",
                    "Valid authentication was not provided",
                    &corr,
                ),
                None,
            );
        }
        Err(TokenError::Expired { .. }) => {
            return (
                la_error(
                    403,
                    "InvalidAuthenticationToken",
                    "The provided authentication token has expired",
                    &corr,
                ),
                None,
            );
        }
        Err(TokenError::WrongAudience(aud)) => {
            return (
                la_error(
                    403,
                    "InvalidAuthenticationTokenAudience",
                    &format!(
                        "The provided authentication is not valid for this resource: the token audience '{aud}' is not 'https://api.loganalytics.io'"
                    ),
                    &corr,
                ),
                None,
            );
        }
    };
    let Some(principal) = st.platform.principal(&claims.oid) else {
        return (
            la_error(
                403,
                "InvalidAuthenticationToken",
                "Valid authentication was not provided",
                &corr,
            ),
            None,
        );
    };
    let name = Some(st.platform.principals[principal].name.clone());
    let limits = st.platform.limits.clone();
    if let Err(retry) = st.throttles.la(&limits, &claims.oid) {
        let r = la_error(
            429,
            "ThrottledError",
            &format!("Your request was throttled: more than {} requests in 30 seconds. Retry after {retry} seconds.", limits.la_requests_per_30s),
            &corr,
        )
        .with("Retry-After", retry.to_string());
        return (r, name);
    }
    if req.method != "GET" && req.method != "POST" {
        return (
            la_error(
                405,
                "MethodNotAllowed",
                "Only GET and POST are supported.",
                &corr,
            ),
            name,
        );
    }
    let (ws, resource_id, customer_id) = match &target {
        Target::Workspace(id) => match st.platform.workspace_by_customer_id(id) {
            Some(w) => (Some(w), st.platform.workspaces[w].arm_id(), id.clone()),
            None => {
                return (
                    la_error(
                        404,
                        "WorkspaceNotFoundError",
                        &format!("Workspace {id} could not be found"),
                        &corr,
                    ),
                    name,
                );
            }
        },
        Target::Resource(rid) => {
            let w = st
                .platform
                .workspaces
                .iter()
                .position(|w| w.arm_id().eq_ignore_ascii_case(rid));
            (w, rid.clone(), rid.clone())
        }
    };
    let now = st.clock.now();
    let p = &st.platform;
    let allowed = if ws.is_some() {
        p.authorized(
            principal,
            "Microsoft.OperationalInsights/workspaces/query/read",
            &resource_id,
            now,
        ) || p.authorized(
            principal,
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            &resource_id,
            now,
        )
    } else {
        p.authorized(principal, "Microsoft.Insights/logs/read", &resource_id, now)
    };
    if !allowed {
        let p = &st.platform.principals[principal];
        let who = if p.kind == crate::scenario::PrincipalKind::User {
            "user"
        } else {
            "service principal"
        };
        let r = Resp::json(
            403,
            json!({"error": {
                "message": "The provided credentials have insufficient access to perform the requested operation",
                "code": "InsufficientAccessError",
                "innererror": {
                    "code": "UnauthorizedClient",
                    "message": format!("The {who} does not have sufficient permissions to access this resource: {customer_id}")
                }
            }}),
        )
        .with("x-ms-correlation-request-id", corr);
        return (r, name);
    }
    // The request's query and timespan.
    let (query, timespan_text, extra) = if req.method == "GET" {
        (
            req.q("query").map(str::to_string),
            req.q("timespan").map(str::to_string),
            vec![],
        )
    } else {
        let body: Json = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return (
                    bad_argument(
                        &format!("The request body is not valid JSON: {e}"),
                        "InvalidRequestBody",
                        &corr,
                    ),
                    name,
                );
            }
        };
        let q = body.get("query").and_then(Json::as_str).map(str::to_string);
        let t = body
            .get("timespan")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| req.q("timespan").map(str::to_string));
        let extra: Vec<String> = body
            .get("workspaces")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (q, t, extra)
    };
    // `workspaces`: more workspaces (customer id, name or ARM id) whose rows the query reads too.
    let mut others = vec![];
    for w in &extra {
        let p = &st.platform;
        let found = p
            .workspace_by_customer_id(w)
            .or_else(|| p.workspace_by_name(w))
            .or_else(|| {
                p.workspaces
                    .iter()
                    .position(|x| x.arm_id().eq_ignore_ascii_case(w))
            });
        let Some(found) = found else {
            return (
                bad_argument(
                    &format!("Workspace '{w}' could not be resolved."),
                    "WorkspaceNotFoundError",
                    &corr,
                ),
                name,
            );
        };
        let id = p.workspaces[found].arm_id();
        if !p.authorized(
            principal,
            "Microsoft.OperationalInsights/workspaces/query/read",
            &id,
            now,
        ) {
            return (
                la_error(
                    403,
                    "InsufficientAccessError",
                    "The provided credentials have insufficient access to perform the requested operation",
                    &corr,
                ),
                name,
            );
        }
        if Some(found) != ws && !others.contains(&found) {
            others.push(found);
        }
    }
    let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
        return (
            bad_argument(
                "The 'query' parameter is required.",
                "MissingParameter",
                &corr,
            ),
            name,
        );
    };
    let timespan = match timespan_text.as_deref().map(|t| parse_timespan(t, now)) {
        None => None,
        Some(Ok(ts)) => Some(ts),
        Some(Err(e)) => return (bad_argument(&e, "InvalidTimespan", &corr), name),
    };
    // Rows become visible at their ingestion time: the query reads those ingested by now.
    let opts = kql::QueryOptions {
        now,
        timespan,
        ingested_by: Some(now),
    };
    let started = std::time::Instant::now();
    let result = match ws {
        // A resource that is not a workspace holds none of the emulated tables.
        None => kql::run(&query, &kql::Database::new(), &opts),
        Some(ws) if !others.is_empty() => {
            let tables = &st.platform.tables;
            let more: Vec<_> = others.iter().map(|o| &tables[*o]).collect();
            kql::run(&query, &tables[ws].union_db(&more), &opts)
        }
        Some(ws) => kql::run(&query, &st.platform.tables[ws].db, &opts),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let table = match result {
        Ok(t) => t,
        Err(e) => {
            let mut body = e.to_log_analytics_error();
            if let Some(err) = body.get_mut("error") {
                conform_error(err);
            }
            return (
                Resp::json(400, body).with("x-ms-correlation-request-id", corr),
                name,
            );
        }
    };
    let prefer = req
        .headers
        .get_all("Prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let extras = Extras {
        statistics: prefer
            .contains("include-statistics=true")
            .then_some(elapsed),
        render: prefer.contains("include-render=true"),
    };
    let answer = la_answer::serialize(&table, limits.la_max_rows, limits.la_max_bytes, extras);
    // The rows are no longer needed; free them before the body is sent.
    drop(table);
    let mut resp = Resp::raw_json(200, answer.body)
        .with("x-ms-correlation-request-id", corr.clone())
        .with("x-ms-request-id", corr);
    resp.rows = Some(answer.rows);
    (resp, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (s, e) = parse_timespan("PT1H", now).unwrap();
        assert_eq!((e - s).num_hours(), 1);
        assert_eq!(e, now);
        let (s, e) = parse_timespan("2026-11-27T00:00:00Z/2026-11-27T06:00:00Z", now).unwrap();
        assert_eq!((e - s).num_hours(), 6);
        let (s, _) = parse_timespan("2026-11-27T00:00:00Z/P1D", now).unwrap();
        assert_eq!(s.format("%H").to_string(), "00");
        assert!(parse_timespan("yesterday", now).is_err());
    }
}
