//! The Kubernetes API server's `coordination.k8s.io/v1` Leases over HTTP, on the same HTTPS
//! port (`docs/azure-services.md` §2.2): `GET/POST …/namespaces/{ns}/leases`,
//! `GET/PUT/DELETE …/namespaces/{ns}/leases/{name}`, with the scenario's service-account
//! bearer token (401 otherwise), that service account's namespace only (403 otherwise), and
//! the API's `Status` errors. The objects are `crate::kube`'s.

use std::sync::Arc;

use serde_json::Value as Json;

use super::{Req, Resp, Shared, State, json_body};
use crate::kube::KubeError;

/// Where the Leases API's paths start.
pub const PREFIX: &str = "/apis/coordination.k8s.io/v1/";

fn status(e: &KubeError) -> Resp {
    Resp::json(e.code, e.status_json())
}

/// Handles a Kubernetes request; returns the response and the caller (the service account).
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let mut st = shared.lock();
    let now = st.clock.now();
    let kube = &st.platform.kube;
    if !kube.enabled {
        drop(st);
        let e = KubeError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            name: None,
        };
        return (status(&e), None);
    }
    let token = req
        .header("Authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    if token != Some(kube.token.as_str()) {
        drop(st);
        let e = KubeError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            name: None,
        };
        return (status(&e), None);
    }
    let user = kube.user.clone();
    let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (ns, name) = match segs.as_slice() {
        ["namespaces", ns, "leases"] => (*ns, None),
        ["namespaces", ns, "leases", name] => (*ns, Some(*name)),
        _ => {
            drop(st);
            let e = KubeError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                name: None,
            };
            return (status(&e), Some(user));
        }
    };
    let verb = match (req.method.as_str(), name) {
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", None) => "create",
        ("PUT", Some(_)) => "update",
        ("DELETE", Some(_)) => "delete",
        (m, _) => {
            drop(st);
            let e = KubeError {
                code: 405,
                reason: "MethodNotAllowed",
                message: format!(
                    "the server does not allow this method on the requested resource ({m})"
                ),
                name: None,
            };
            return (status(&e), Some(user));
        }
    };
    if ns != kube.namespace {
        let what = match name {
            Some(n) => format!("leases.coordination.k8s.io \"{n}\""),
            None => "leases.coordination.k8s.io".to_string(),
        };
        drop(st);
        let e = KubeError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{what} is forbidden: User \"{user}\" cannot {verb} resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"{ns}\""
            ),
            name: name.map(str::to_string),
        };
        return (status(&e), Some(user));
    }
    let body = if matches!(verb, "create" | "update") {
        match json_body(req) {
            Ok(Json::Object(o)) => Some(Json::Object(o)),
            Ok(_) => {
                drop(st);
                return (
                    status(&KubeError::bad_request("the body must be a Lease object")),
                    Some(user),
                );
            }
            Err(m) => {
                drop(st);
                return (
                    status(&KubeError::bad_request(format!(
                        "the body of the request was in an unknown format: {m}"
                    ))),
                    Some(user),
                );
            }
        }
    } else {
        None
    };
    let result = match (verb, name, body) {
        ("list", _, _) => Ok((200, st.platform.kube.list(ns))),
        ("get", Some(n), _) => st.platform.kube.get(ns, n).map(|d| (200, d)),
        ("create", _, Some(b)) => {
            let State { platform, rng, .. } = &mut *st;
            Arc::make_mut(platform)
                .kube
                .create(ns, &b, rng, now)
                .map(|d| (201, d))
        }
        ("update", Some(n), Some(b)) => Arc::make_mut(&mut st.platform)
            .kube
            .update(ns, n, &b, now)
            .map(|d| (200, d)),
        ("delete", Some(n), _) => Arc::make_mut(&mut st.platform)
            .kube
            .delete(ns, n, now)
            .map(|d| (200, d)),
        _ => Err(KubeError::bad_request("unsupported request")),
    };
    drop(st);
    let resp = match result {
        Ok((code, doc)) => Resp::json(code, doc),
        Err(e) => status(&e),
    };
    (resp, Some(user))
}
