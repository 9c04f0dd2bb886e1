//! The six rows of the behaviour table (semantics.md), each driven through the real APIs.

use serde_json::{Value, json};

use crate::common::*;

struct AlertRef {
    name: String,
    system_alert_id: String,
    url: String,
}

fn alert_ref(env: &Env, key: &str) -> AlertRef {
    let st = env.state();
    let a = st["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .unwrap()
        .clone();
    let name = a["name"].as_str().unwrap().to_string();
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/locations/{}/alerts/{}",
        env.base,
        a["subscription_id"].as_str().unwrap(),
        a["resource_group"].as_str().unwrap(),
        a["location"].as_str().unwrap(),
        name
    );
    AlertRef {
        name,
        system_alert_id: a["system_alert_id"].as_str().unwrap().to_string(),
        url,
    }
}

async fn incident_of(env: &Env, token: &str, sysid: &str) -> Value {
    let st = env.state();
    let inc = st["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["alert_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == sysid)
        })
        .unwrap()
        .clone();
    let url = format!(
        "{}/{}?api-version={SI_VERSION}",
        env.incidents_url(),
        inc["name"].as_str().unwrap()
    );
    let (s, _, v) = env.call("GET", &url, token, None).await;
    assert_eq!(s, 200);
    v
}

async fn dfc_status(env: &Env, token: &str, a: &AlertRef) -> String {
    let (s, _, v) = env
        .call(
            "GET",
            &format!("{}?api-version=2022-01-01", a.url),
            token,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["properties"]["status"].as_str().unwrap().to_string()
}

fn alert_rows(env: &Env, sysid: &str) -> Vec<Value> {
    rows(&env.state(), "SecurityAlert", "SystemAlertId", sysid)
        .into_iter()
        .cloned()
        .collect()
}

fn incident_rows(env: &Env, name: &str) -> Vec<Value> {
    rows(&env.state(), "SecurityIncident", "IncidentName", name)
        .into_iter()
        .cloned()
        .collect()
}

#[tokio::test]
async fn new_alert_creates_active_alert_new_row_and_new_incident() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    env.control(
        "POST",
        "events",
        Some(
            json!({"events": [{"do": "new_alert", "workspace": "law-sentinel", "alert": "N1",
            "subscription_id": DFC_SUB, "display_name": "Fresh alert", "severity": "Low"}]}),
        ),
    )
    .await;
    let a = alert_ref(&env, "N1");
    assert_eq!(dfc_status(&env, &t, &a).await, "Active");
    let r = alert_rows(&env, &a.system_alert_id);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["Status"], "New");
    assert_eq!(r[0]["VendorOriginalId"], a.name.as_str());
    assert_eq!(r[0]["ProductName"], "Azure Security Center");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    assert_eq!(inc["properties"]["status"], "New");
    assert_eq!(inc["properties"]["title"], "Fresh alert");
    let name = inc["name"].as_str().unwrap();
    let ir = incident_rows(&env, name);
    assert_eq!(ir.len(), 1);
    assert_eq!(ir[0]["ModifiedBy"], "Incident created from alert");
    assert_eq!(ir[0]["AlertIds"], json!([a.system_alert_id]));
}

async fn dfc_action_leaves_incident(action: &str, dfc: &str, table: &str) {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let before = incident_of(&env, &t, &a.system_alert_id).await;
    let inc_rows_before = incident_rows(&env, before["name"].as_str().unwrap()).len();
    let (s, _, _) = env
        .call(
            "POST",
            &format!("{}/{action}?api-version=2022-01-01", a.url),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(dfc_status(&env, &t, &a).await, dfc);
    let r = alert_rows(&env, &a.system_alert_id);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["Status"], table);
    let after = incident_of(&env, &t, &a.system_alert_id).await;
    assert_eq!(after["properties"]["status"], "New");
    assert_eq!(after["etag"], before["etag"]);
    assert_eq!(
        incident_rows(&env, before["name"].as_str().unwrap()).len(),
        inc_rows_before
    );
}

#[tokio::test]
async fn dfc_in_progress_changes_alert_only() {
    dfc_action_leaves_incident("inProgress", "InProgress", "InProgress").await;
}

#[tokio::test]
async fn dfc_dismiss_changes_alert_only() {
    dfc_action_leaves_incident("dismiss", "Dismissed", "Dismissed").await;
}

#[tokio::test]
async fn dfc_resolve_changes_alert_only() {
    dfc_action_leaves_incident("resolve", "Resolved", "Resolved").await;
}

async fn put_status(env: &Env, t: &str, inc: &Value, status: &str, extra: Value) -> (u16, Value) {
    let mut props = inc["properties"].clone();
    props["status"] = json!(status);
    for (k, v) in extra.as_object().unwrap() {
        props[k] = v.clone();
    }
    let body = json!({"etag": inc["etag"], "properties": props});
    let url = format!(
        "{}/{}?api-version={SI_VERSION}",
        env.incidents_url(),
        inc["name"].as_str().unwrap()
    );
    let (s, _, v) = env.call("PUT", &url, t, Some(body)).await;
    (s, v)
}

#[tokio::test]
async fn incident_active_changes_incident_only() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    let (s, v) = put_status(&env, &t, &inc, "Active", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["properties"]["status"], "Active");
    assert_ne!(v["etag"], inc["etag"]);
    assert_eq!(dfc_status(&env, &t, &a).await, "Active");
    assert_eq!(alert_rows(&env, &a.system_alert_id).len(), 1);
    let ir = incident_rows(&env, inc["name"].as_str().unwrap());
    assert_eq!(ir.len(), 2);
    assert_eq!(ir[1]["Status"], "Active");
    assert_eq!(ir[1]["ModifiedBy"], "dfcsync");
}

#[tokio::test]
async fn closing_incident_resolves_alert_everywhere() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    let extra = json!({"classification": "TruePositive", "classificationReason": "SuspiciousActivity",
        "classificationComment": "done [dfcsync:close:0123456789abcdef]"});
    let (s, v) = put_status(&env, &t, &inc, "Closed", extra).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["properties"]["status"], "Closed");
    assert_eq!(dfc_status(&env, &t, &a).await, "Resolved");
    let r = alert_rows(&env, &a.system_alert_id);
    assert_eq!(r.last().unwrap()["Status"], "Resolved");
    let ir = incident_rows(&env, inc["name"].as_str().unwrap());
    let last = ir.last().unwrap();
    assert_eq!(last["Status"], "Closed");
    assert_eq!(last["Classification"], "TruePositive");
    assert!(last["ClosedTime"].is_string());
}

#[tokio::test]
async fn closing_with_dismissed_alerts_follows_echo_keeps_dismissed() {
    for keep in [false, true] {
        let env = start(demo_with(|v| {
            v["workspaces"][0]["echo_keeps_dismissed"] = json!(keep)
        }))
        .await;
        let t = env.token(ARM_SCOPE).await;
        let a = alert_ref(&env, "B1");
        let (s, _, _) = env
            .call(
                "POST",
                &format!("{}/dismiss?api-version=2022-01-01", a.url),
                &t,
                None,
            )
            .await;
        assert_eq!(s, 204);
        let inc = incident_of(&env, &t, &a.system_alert_id).await;
        let extra = json!({"classification": "BenignPositive", "classificationReason": "SuspiciousButExpected"});
        let (s, _) = put_status(&env, &t, &inc, "Closed", extra).await;
        assert_eq!(s, 200);
        let expect = if keep { "Dismissed" } else { "Resolved" };
        assert_eq!(dfc_status(&env, &t, &a).await, expect);
        assert_eq!(
            alert_rows(&env, &a.system_alert_id).last().unwrap()["Status"],
            expect
        );
        assert_eq!(
            alert_rows(&env, &a.system_alert_id).len(),
            if keep { 2 } else { 3 }
        );
    }
}

#[tokio::test]
async fn without_bidirectional_sync_closing_leaves_alerts() {
    let env = start(demo_with(|v| {
        v["workspaces"][0]["bidirectional_sync"] = json!(false)
    }))
    .await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    let extra = json!({"classification": "Undetermined"});
    let (s, v) = put_status(&env, &t, &inc, "Closed", extra).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(dfc_status(&env, &t, &a).await, "Active");
}

#[tokio::test]
async fn incident_creation_off_and_reingestion() {
    let env = start(demo_with(|v| {
        v["workspaces"][0]["incident_creation"] = json!(false);
        let b1 = v["events"][6].clone();
        v["events"] = json!([v["events"][0].clone(), v["events"][1].clone(), b1]);
    }))
    .await;
    assert!(env.state()["incidents"].as_array().unwrap().is_empty());

    let env = start(demo_with(|v| {
        v["workspaces"][0]["reingest_alerts"] = json!(true)
    }))
    .await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    let (s, _) = put_status(&env, &t, &inc, "Active", json!({})).await;
    assert_eq!(s, 200);
    let r = alert_rows(&env, &a.system_alert_id);
    assert_eq!(r.len(), 2, "re-ingested on the incident update");
    assert_eq!(r[1]["Status"], "New");
}

#[tokio::test]
async fn defender_portal_incidents_are_microsoft_xdr() {
    let env = start(demo_with(|v| {
        v["workspaces"][0]["defender_portal"] = json!(true)
    }))
    .await;
    let t = env.token(ARM_SCOPE).await;
    let a = alert_ref(&env, "B1");
    let inc = incident_of(&env, &t, &a.system_alert_id).await;
    assert_eq!(inc["properties"]["providerName"], "Microsoft XDR");
    let (s, _) = put_status(&env, &t, &inc, "Active", json!({})).await;
    assert_eq!(s, 200);
}
