//! The control API (contract: `shared/design/emulator.md`), served under `/_emulator/` on
//! loopback without a token: events, endpoints, state, request log, faults, clock, reset,
//! and (an addition) tokens for any principal, users included.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{Req, Resp, Shared, json_body};
use crate::faults::{Fault, FaultSpec};
use crate::scenario::{ScenarioError, parse_events};
use crate::tokens::audience_for;

fn bad(message: impl Into<String>, path: Option<&str>) -> Resp {
    Resp::json(
        400,
        json!({"error": {"code": "BadRequest", "message": message.into(), "path": path}}),
    )
}

fn scenario_error(e: ScenarioError) -> Resp {
    let path = e.path().to_string();
    Resp::json(
        400,
        json!({"error": {"code": "InvalidEvent", "message": e.to_string(), "path": path}}),
    )
}

/// Handles a control request.
pub fn handle(shared: &Shared, req: &Req) -> Resp {
    let sub = req
        .path
        .trim_end_matches('/')
        .trim_start_matches("/_emulator");
    match (req.method.as_str(), sub) {
        ("POST", "/events") => events(shared, req),
        ("GET", "/endpoints") => Resp::json(200, endpoints_json(shared)),
        ("GET", "/state") => {
            let with_tables = req.q("tables") != Some("false");
            let st = shared.lock();
            let mut doc = st.platform.state_json(with_tables);
            doc["now"] = json!(crate::table::format_time(st.clock.now()));
            Resp::json(200, doc)
        }
        ("GET", "/requests") => {
            let since = req.q("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let st = shared.lock();
            Resp::json(200, json!(st.log.since(since)))
        }
        ("POST", "/faults") => faults(shared, req),
        ("DELETE", "/faults") => {
            shared.lock().faults.clear();
            Resp::json(200, json!({"faults": 0}))
        }
        ("GET", "/clock") => {
            let st = shared.lock();
            Resp::json(
                200,
                json!({"now": crate::table::format_time(st.clock.now())}),
            )
        }
        ("POST", "/clock") => clock(shared, req),
        ("POST", "/reset") => {
            let mut st = shared.lock();
            st.platform = shared.initial.clone();
            st.clock = crate::clock::Clock::new(st.platform.start, st.platform.frozen_clock);
            st.faults.clear();
            st.throttles.clear();
            st.log.clear();
            Resp::json(
                200,
                json!({"now": crate::table::format_time(st.clock.now())}),
            )
        }
        ("POST", "/token") => token(shared, req),
        ("GET", "/leases") => leases(shared),
        ("POST", "/leases/break") => break_lease(shared, req),
        _ => Resp::arm_error(
            404,
            "NotFound",
            format!("No control API at {} {}", req.method, req.path),
        ),
    }
}

/// The `GET /_emulator/endpoints` document.
pub fn endpoints_json(shared: &Shared) -> Json {
    json!({
        "tenant_id": shared.tenant_id,
        "authority": shared.base_url,
        "arm": shared.base_url,
        "log_analytics": shared.base_url,
        "graph": shared.base_url,
        "identity_endpoint": format!("{}{}", shared.identity_base_url, super::identity::APP_SERVICE_PATH),
        "identity_header": shared.identity_header,
        "imds_endpoint": format!("{}{}", shared.identity_base_url, super::identity::IMDS_PATH),
        "ca": shared.ca_path.display().to_string(),
        "arm_scope": "https://management.azure.com/.default",
        "log_analytics_scope": "https://api.loganalytics.io/.default",
        "graph_scope": "https://graph.microsoft.com/.default",
        "storage": format!("{}/storage", shared.base_url),
        "storage_scope": "https://storage.azure.com/.default",
        "kubernetes": shared.base_url,
        "logs_ingestion": format!("{}/ingest", shared.base_url),
        "logs_ingestion_scope": "https://monitor.azure.com/.default",
    })
}

/// `GET /_emulator/leases`: every Blob lease and Kubernetes Lease with its history (periods
/// with lease id or holder, start and end on the emulator's clock).
fn leases(shared: &Shared) -> Resp {
    let st = shared.lock();
    let now = st.clock.now();
    let t = crate::table::format_time;
    // A view brought up to now (expiries and breaks that have happened) without a write.
    let mut storage = st.platform.storage.clone();
    storage.settle_all(now);
    let mut blobs = Vec::new();
    for a in &storage.accounts {
        for c in &a.containers {
            for (name, b) in &c.blobs {
                let lease_id = match &b.lease {
                    crate::blob::LeaseState::Leased { id, .. }
                    | crate::blob::LeaseState::Breaking { id, .. }
                    | crate::blob::LeaseState::Broken { id } => Some(id.clone()),
                    crate::blob::LeaseState::Expired { id, .. } => id.clone(),
                    crate::blob::LeaseState::Available => None,
                };
                blobs.push(json!({
                    "account": a.name, "container": c.name, "blob": name,
                    "state": b.lease.name(), "status": b.lease.status(),
                    "lease_id": lease_id,
                    "metadata": b.metadata,
                    "history": b.history.iter().map(|p| json!({
                        "lease_id": p.lease_id,
                        "holder": p.holder,
                        "metadata": p.metadata,
                        "acquired_at": t(p.acquired_at),
                        "ended_at": p.ended_at.map(t),
                        "ended_by": p.ended_by.map(|e| e.name()),
                    })).collect::<Vec<_>>(),
                }));
            }
        }
    }
    let kube = &st.platform.kube;
    let lease_doc = |l: &crate::kube::Lease, deleted: bool| {
        json!({
            "namespace": l.namespace, "name": l.name, "deleted": deleted,
            "holder": l.spec.holder_identity,
            "resourceVersion": l.resource_version.to_string(),
            "history": l.history.iter().map(|p| json!({
                "holder": p.holder,
                "acquired_at": t(p.acquired_at),
                "ended_at": p.ended_at.map(t),
                "ended_by": p.ended_by.map(|e| e.name()),
                "writes": p.writes,
            })).collect::<Vec<_>>(),
        })
    };
    let mut k8s: Vec<Json> = kube.leases.iter().map(|l| lease_doc(l, false)).collect();
    k8s.extend(kube.deleted.iter().map(|l| lease_doc(l, true)));
    let doc = json!({"now": t(now), "blobs": blobs, "kubernetes": k8s});
    drop(st);
    Resp::json(200, doc)
}

/// `POST /_emulator/leases/break`: `{"account", "container", "blob"}` breaks a Blob lease now
/// (as `Break` with period 0); `{"namespace", "name", "holder"?}` deletes a Kubernetes Lease,
/// or gives it to `holder` (a takeover by another candidate).
fn break_lease(shared: &Shared, req: &Req) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return bad(e, None),
    };
    let s = |k: &str| body.get(k).and_then(Json::as_str);
    let mut st = shared.lock();
    let now = st.clock.now();
    if let (Some(account), Some(container), Some(blob)) = (s("account"), s("container"), s("blob"))
    {
        let super::State { platform, rng, .. } = &mut *st;
        let Some(a) = platform.storage.account(account) else {
            return bad(format!("no storage account {account:?}"), Some("account"));
        };
        return match Arc::make_mut(platform)
            .storage
            .break_now(a, container, blob, rng, now)
        {
            Ok(broken) => Resp::json(200, json!({"broken": broken})),
            Err(e) => bad(e.to_string(), Some("blob")),
        };
    }
    if let (Some(ns), Some(name)) = (s("namespace"), s("name")) {
        let holder = s("holder").map(str::to_string);
        return match Arc::make_mut(&mut st.platform).kube.break_lease(
            ns,
            name,
            holder.as_deref(),
            now,
        ) {
            Ok(()) => Resp::json(200, json!({"broken": true})),
            Err(e) => bad(e.message, Some("name")),
        };
    }
    bad(
        "expected {\"account\", \"container\", \"blob\"} or {\"namespace\", \"name\"}",
        None,
    )
}

fn events(shared: &Shared, req: &Req) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return bad(e, None),
    };
    let Some(list) = body.get("events").cloned() else {
        return bad("expected {\"events\": [ … ]}", Some("events"));
    };
    let events = match parse_events(list, "events") {
        Ok(e) => e,
        Err(e) => return scenario_error(e),
    };
    let mut st = shared.lock();
    let now = st.clock.now();
    let mut applied = 0;
    for ev in &events {
        if let Err(e) = Arc::make_mut(&mut st.platform).apply(ev, now) {
            let mut r = scenario_error(e);
            if let Some(b) = r.body.as_mut() {
                b["applied"] = json!(applied);
            }
            return r;
        }
        applied += 1;
    }
    Resp::json(
        200,
        json!({"applied": applied, "now": crate::table::format_time(now)}),
    )
}

fn faults(shared: &Shared, req: &Req) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return bad(e, None),
    };
    let (items, prefix) = match body {
        Json::Array(a) => (a, ""),
        Json::Object(ref o) if o.contains_key("faults") => match o.get("faults") {
            Some(Json::Array(a)) => (a.clone(), "faults"),
            _ => return bad("faults: expected an array", Some("faults")),
        },
        other => (vec![other], ""),
    };
    let mut compiled = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = if prefix.is_empty() {
            format!("[{i}]")
        } else {
            format!("{prefix}[{i}]")
        };
        let spec: FaultSpec = match crate::scenario::from_value_at(&path, item) {
            Ok(s) => s,
            Err(e) => return scenario_error(e),
        };
        match Fault::compile(spec) {
            Ok(f) => compiled.push(f),
            Err(e) => return bad(e, Some(&path)),
        }
    }
    let mut st = shared.lock();
    let now = st.clock.now();
    for f in compiled {
        st.faults.add(f, now);
    }
    Resp::json(200, json!({"faults": st.faults.len()}))
}

fn clock(shared: &Shared, req: &Req) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return bad(e, None),
    };
    let mut st = shared.lock();
    if let Some(a) = body.get("advance") {
        let Some(d) = a.as_str().and_then(|s| crate::duration::parse(s).ok()) else {
            return bad("advance: expected a duration like \"1h\"", Some("advance"));
        };
        if !st.clock.advance(d) {
            return bad("advance: out of range", Some("advance"));
        }
    } else if let Some(n) = body.get("now") {
        let Some(t) = n
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        else {
            return bad("now: expected an RFC 3339 time", Some("now"));
        };
        if !st.clock.set(t.with_timezone(&chrono::Utc)) {
            return bad("now: out of range", Some("now"));
        }
    } else {
        return bad("expected {\"advance\": \"1h\"} or {\"now\": \"…\"}", None);
    }
    Resp::json(
        200,
        json!({"now": crate::table::format_time(st.clock.now())}),
    )
}

fn token(shared: &Shared, req: &Req) -> Resp {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(e) => return bad(e, None),
    };
    let Some(who) = body.get("principal").and_then(Json::as_str) else {
        return bad("principal: required", Some("principal"));
    };
    let scope = body
        .get("scope")
        .or_else(|| body.get("resource"))
        .and_then(Json::as_str)
        .unwrap_or("https://management.azure.com/.default");
    let Some(aud) = audience_for(scope) else {
        return bad(format!("scope: unknown resource {scope:?}"), Some("scope"));
    };
    let mut st = shared.lock();
    let Some(p) = st.platform.principal(who) else {
        return bad(
            format!("principal: no principal {who:?}"),
            Some("principal"),
        );
    };
    let pr = st.platform.principals[p].clone();
    let now = st.clock.wall_now();
    let uti = st.rng.guid();
    let user = pr.kind == crate::scenario::PrincipalKind::User;
    let lifetime = body
        .get("lifetime_secs")
        .and_then(Json::as_i64)
        .unwrap_or(3599);
    let t = shared.issuer.grant(&crate::tokens::Grant {
        aud: &aud,
        oid: &pr.object_id,
        appid: (!user).then_some(pr.client_id.as_str()),
        upn: user.then_some(pr.name.as_str()),
        mi_res_id: pr.resource_id.as_deref(),
        roles: crate::tokens::roles_for(&aud, &pr.graph_permissions),
        now,
        lifetime_secs: lifetime,
        uti: &uti,
    });
    Resp::json(
        200,
        json!({"access_token": t, "token_type": "Bearer", "expires_in": lifetime}),
    )
}
