//! Managed identity endpoints: the App Service / Container Apps style (`IDENTITY_ENDPOINT`
//! with the `X-IDENTITY-HEADER` secret, api-version 2019-08-01) and the IMDS style
//! (`/metadata/identity/oauth2/token` with `Metadata: true`), for the scenario's system- and
//! user-assigned identities. Response shapes as the reference gives them (numbers as strings).

use serde_json::json;

use super::{Req, Resp, Shared};
use crate::platform::Principal;
use crate::scenario::PrincipalKind;
use crate::tokens::audience_for;

/// The App Service style endpoint (published as `identity_endpoint`).
pub const APP_SERVICE_PATH: &str = "/msi/token";
/// The IMDS style endpoint.
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

const LIFETIME: i64 = 86_399;

enum Select<'a> {
    System,
    ClientId(&'a str),
    ObjectId(&'a str),
    ResourceId(&'a str),
}

fn pick(identities: &[Principal], sel: Select<'_>) -> Result<Principal, String> {
    let found = match sel {
        Select::ClientId(id) => identities
            .iter()
            .find(|p| p.client_id.eq_ignore_ascii_case(id)),
        Select::ObjectId(id) => identities
            .iter()
            .find(|p| p.object_id.eq_ignore_ascii_case(id)),
        Select::ResourceId(id) => identities.iter().find(|p| {
            p.resource_id
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(id))
        }),
        Select::System => match identities.iter().find(|p| p.resource_id.is_none()) {
            Some(p) => Some(p),
            None if identities.len() == 1 => identities.first(),
            None if identities.is_empty() => {
                return Err("No managed identity is assigned to this resource.".into());
            }
            None => {
                return Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request".into());
            }
        },
    };
    found
        .cloned()
        .ok_or_else(|| "No managed identity matches the given identifier.".into())
}

/// Handles a managed identity token request.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let imds = req.path.eq_ignore_ascii_case(IMDS_PATH);
    let err = |status: u16, error: &str, text: &str| {
        if imds {
            Resp::json(status, json!({"error": error, "error_description": text}))
        } else {
            Resp::json(
                status,
                json!({"statusCode": status, "message": text, "correlationId": "00000000-0000-0000-0000-000000000000"}),
            )
        }
    };
    if req.method != "GET" {
        return (err(405, "invalid_request", "Only GET is supported."), None);
    }
    if imds {
        if !req
            .header("Metadata")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return (
                err(
                    400,
                    "invalid_request",
                    "Required metadata header not specified",
                ),
                None,
            );
        }
        if req.q("api-version").is_none() {
            return (
                err(
                    400,
                    "invalid_request",
                    "Required query variable 'api-version' is missing",
                ),
                None,
            );
        }
    } else {
        if req.header("X-IDENTITY-HEADER") != Some(shared.identity_header.as_str()) {
            return (
                err(
                    401,
                    "invalid_request",
                    "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
                ),
                None,
            );
        }
        if req.q("api-version") != Some("2019-08-01") {
            return (
                err(
                    400,
                    "invalid_request",
                    "The api-version must be 2019-08-01.",
                ),
                None,
            );
        }
    }
    let Some(resource) = req.q("resource") else {
        return (
            err(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            ),
            None,
        );
    };
    let Some(aud) = audience_for(resource) else {
        return (
            err(
                400,
                "invalid_resource",
                &format!(
                    "AADSTS500011: The resource principal named {resource} was not found in the tenant."
                ),
            ),
            None,
        );
    };
    let sel = if let Some(c) = req.q("client_id") {
        Select::ClientId(c)
    } else if let Some(o) = req.q("object_id").or_else(|| req.q("principal_id")) {
        Select::ObjectId(o)
    } else if let Some(r) = req.q("msi_res_id").or_else(|| req.q("mi_res_id")) {
        Select::ResourceId(r)
    } else {
        Select::System
    };
    let identities: Vec<Principal> = {
        let st = shared.lock();
        st.platform
            .principals
            .iter()
            .filter(|p| p.kind == PrincipalKind::ManagedIdentity)
            .cloned()
            .collect()
    };
    let principal = match pick(&identities, sel) {
        Ok(p) => p,
        Err(text) => return (err(400, "invalid_request", &text), None),
    };
    let (token, now) = {
        let mut st = shared.lock();
        let now = st.clock.wall_now();
        let uti = st.rng.guid();
        let t = shared.issuer.grant(&crate::tokens::Grant {
            aud: &aud,
            oid: &principal.object_id,
            appid: Some(&principal.client_id),
            upn: None,
            mi_res_id: principal.resource_id.as_deref(),
            roles: crate::tokens::roles_for(&aud, &principal.graph_permissions),
            now,
            lifetime_secs: LIFETIME,
            uti: &uti,
        });
        (t, now)
    };
    let expires_on = (now.timestamp() + LIFETIME).to_string();
    let body = if imds {
        json!({
            "access_token": token,
            "refresh_token": "",
            "expires_in": LIFETIME.to_string(),
            "expires_on": expires_on,
            "not_before": now.timestamp().to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
    } else {
        json!({
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        })
    };
    (Resp::json(200, body), Some(principal.name))
}
