//! Microsoft Graph's security API (`/v1.0/security/…`) and the Defender XDR model behind it:
//! tokens and application permissions, incidents and alerts_v2, writes, and the sync with
//! Sentinel incidents and Defender for Cloud alerts.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::*;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The claims of a token (its middle segment).
fn claims(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The demo with Graph permissions for `dfcsync` (all four) and `mi-dfcsync` (read only).
fn graph_demo(f: impl FnOnce(&mut Value)) -> emulator::Scenario {
    demo_with(|v| {
        v["principals"][0]["graph_permissions"] =
            json!(["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All"]);
        v["principals"][3]["graph_permissions"] = json!(["SecurityIncident.Read.All"]);
        f(v)
    })
}

#[tokio::test]
async fn graph_tokens_carry_the_application_permissions_as_roles() {
    let env = start(graph_demo(|_| {})).await;
    let t = env.token(GRAPH_SCOPE).await;
    let c = claims(&t);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(
        c["roles"],
        json!(["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All"])
    );
    // An ARM token of the same principal carries no roles.
    assert!(claims(&env.token(ARM_SCOPE).await).get("roles").is_none());
    // The managed identity, through the IMDS endpoint.
    let ep = env.emu.endpoints();
    let r = env
        .http
        .get(&ep.imds_endpoint)
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", "https://graph.microsoft.com"),
            ("client_id", "dddddddd-0000-0000-0000-000000000001"),
        ])
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["roles"], json!(["SecurityIncident.Read.All"]));
    // A principal without Graph permissions gets a token without roles.
    let t = env.token_for("analyst@contoso.com", GRAPH_SCOPE).await;
    assert!(claims(&t).get("roles").is_none());
}

#[test]
fn unknown_graph_permissions_are_refused_with_their_path() {
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["principals"][0]["graph_permissions"] = json!(["SecurityIncident.Read.All", "Mail.Read"]);
    let e = emulator::Scenario::from_json_value(v).unwrap_err();
    assert_eq!(e.path(), "principals[0].graph_permissions[1]");
    assert!(e.to_string().contains("Mail.Read"), "{e}");
}
