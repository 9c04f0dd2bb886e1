//! The Entra ID token endpoint: `POST {authority}/{tenant}/oauth2/v2.0/token`, client
//! credentials with a secret, and its documented error bodies (`AADSTS…`).

use serde_json::{Value as Json, json};

use super::{Req, Resp, Shared};
use crate::scenario::PrincipalKind;
use crate::tokens::audience_for;

/// Token lifetime, as Entra ID issues them (`expires_in` 3599).
pub const LIFETIME: i64 = 3599;

fn aad_error(shared: &Shared, status: u16, error: &str, code: u32, text: &str) -> Resp {
    let (now, trace, corr) = {
        let mut st = shared.lock();
        (st.clock.wall_now(), st.rng.guid(), st.rng.guid())
    };
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    Resp::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// Handles a token request; returns the response and the caller's principal name.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (tenant, v2) = match segs.as_slice() {
        [t, "oauth2", "v2.0", "token"] => (*t, true),
        [t, "oauth2", "token"] => (*t, false),
        _ => {
            return (
                aad_error(
                    shared,
                    404,
                    "invalid_request",
                    900_561,
                    "The endpoint only accepts POST requests to /{tenant}/oauth2/v2.0/token.",
                ),
                None,
            );
        }
    };
    if req.method != "POST" {
        return (
            aad_error(
                shared,
                405,
                "invalid_request",
                900_561,
                "The endpoint only accepts POST requests.",
            ),
            None,
        );
    }
    if !tenant.eq_ignore_ascii_case(&shared.tenant_id) {
        let text = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        );
        return (
            aad_error(shared, 400, "invalid_request", 90_002, &text),
            None,
        );
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            let text = format!(
                "The provided value for the input parameter 'grant_type' is not valid. Expected values are the following: client_credentials. Got '{other}'."
            );
            return (
                aad_error(shared, 400, "unsupported_grant_type", 70_003, &text),
                None,
            );
        }
        None => {
            return (
                aad_error(
                    shared,
                    400,
                    "invalid_request",
                    900_144,
                    "The request body must contain the following parameter: 'grant_type'.",
                ),
                None,
            );
        }
    }
    let Some(client_id) = get("client_id") else {
        return (
            aad_error(
                shared,
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_id'.",
            ),
            None,
        );
    };
    let found = {
        let st = shared.lock();
        st.platform
            .principals
            .iter()
            .find(|p| {
                p.client_id.eq_ignore_ascii_case(client_id)
                    && p.kind == PrincipalKind::ServicePrincipal
            })
            .cloned()
    };
    let Some(principal) = found else {
        let text = format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            shared.tenant_id
        );
        return (
            aad_error(shared, 400, "unauthorized_client", 700_016, &text),
            None,
        );
    };
    let name = Some(principal.name.clone());
    if let Some(assertion) = get("client_assertion") {
        match assertion_subject(assertion, get("client_assertion_type")) {
            Ok(sub) if principal.federated_subject.as_deref() == Some(sub.as_str()) => {}
            Ok(sub) => {
                let text = format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
                );
                return (
                    aad_error(shared, 400, "invalid_client", 70_021, &text),
                    name,
                );
            }
            Err(text) => {
                return (
                    aad_error(shared, 401, "invalid_client", 700_027, &text),
                    name,
                );
            }
        }
    } else {
        match (get("client_secret"), principal.secret.as_deref()) {
            (Some(given), Some(expected)) if given == expected => {}
            (None, _) => {
                let text = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
                return (
                    aad_error(shared, 401, "invalid_client", 7_000_218, text),
                    name,
                );
            }
            _ => {
                let text = format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                );
                return (
                    aad_error(shared, 401, "invalid_client", 7_000_215, &text),
                    name,
                );
            }
        }
    }
    let requested = if v2 { get("scope") } else { get("resource") };
    let Some(requested) = requested else {
        let field = if v2 { "scope" } else { "resource" };
        let text = format!("The request body must contain the following parameter: '{field}'.");
        return (
            aad_error(shared, 400, "invalid_request", 900_144, &text),
            name,
        );
    };
    if v2 && !requested.trim().ends_with("/.default") {
        let text = format!(
            "The provided value for scope {requested} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        );
        return (
            aad_error(shared, 400, "invalid_scope", 1_002_012, &text),
            name,
        );
    }
    let Some(aud) = audience_for(requested) else {
        let text = format!(
            "The resource principal named {requested} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            shared.tenant_id
        );
        return (
            aad_error(shared, 400, "invalid_resource", 500_011, &text),
            name,
        );
    };
    let token = {
        let mut st = shared.lock();
        let now = st.clock.wall_now();
        let uti = st.rng.guid();
        shared.issuer.grant(&crate::tokens::Grant {
            aud: &aud,
            oid: &principal.object_id,
            appid: Some(&principal.client_id),
            upn: None,
            mi_res_id: None,
            roles: crate::tokens::roles_for(&aud, &principal.graph_permissions),
            now,
            lifetime_secs: LIFETIME,
            uti: &uti,
        })
    };
    let body: Json = json!({
        "token_type": "Bearer",
        "expires_in": LIFETIME,
        "ext_expires_in": LIFETIME,
        "access_token": token,
    });
    (
        Resp::json(200, body).with("Cache-Control", "no-store, no-cache"),
        name,
    )
}

/// The `sub` of a workload-identity client assertion (a JWT whose `aud` is
/// `api://AzureADTokenExchange`). The signature is not checked: the emulator knows no
/// issuer keys.
fn assertion_subject(assertion: &str, kind: Option<&str>) -> Result<String, String> {
    use base64::Engine;
    if kind != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return Err(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                .into(),
        );
    }
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or("Client assertion is not a JWT.")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "Client assertion payload is not base64url.".to_owned())?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| "Client assertion payload is not JSON.".to_owned())?;
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == "api://AzureADTokenExchange",
        serde_json::Value::Array(a) => a.iter().any(|x| x == "api://AzureADTokenExchange"),
        _ => false,
    };
    if !aud_ok {
        return Err("Client assertion audience must be api://AzureADTokenExchange.".into());
    }
    claims["sub"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "Client assertion has no sub.".to_owned())
}
