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
pub(crate) fn graph_demo(f: impl FnOnce(&mut Value)) -> emulator::Scenario {
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

/// The demo in the Defender portal with Defender XDR on: A1 (with A2 added) is incident
/// 10001, B1 is 10002.
pub(crate) fn portal_demo(f: impl FnOnce(&mut Value)) -> emulator::Scenario {
    graph_demo(|v| {
        v["defender_xdr"] = json!(true);
        v["workspaces"][0]["defender_portal"] = json!(true);
        f(v)
    })
}

impl Env {
    pub(crate) fn graph(&self, path: &str) -> String {
        format!("{}/v1.0/security/{path}", self.emu.endpoints().graph)
    }

    /// A Graph request with the `Prefer` header for the evolvable enum members.
    pub(crate) async fn graph_call(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_with(
            method,
            url,
            token,
            body,
            &[("Prefer", "include-unknown-enum-members")],
        )
        .await
    }

    /// Applies scenario events through the control API.
    pub(crate) async fn events(&self, list: Value) {
        self.control("POST", "events", Some(json!({ "events": list })))
            .await;
    }

    /// A Graph GET that must succeed.
    pub(crate) async fn graph_get(&self, token: &str, path: &str) -> Value {
        let (s, _, v) = self.call("GET", &self.graph(path), token, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }
}

/// An alert of the state by its scenario handle.
fn state_alert<'a>(st: &'a Value, key: &str) -> &'a Value {
    st["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .unwrap()
}

pub(crate) fn ids(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn graph_serves_the_portal_incidents_with_their_alerts_and_comments() {
    let env = start(portal_demo(|_| {})).await;
    let ep = env.control("GET", "endpoints", None).await;
    assert_eq!(ep["graph"], json!(env.base));
    let t = env.token(GRAPH_SCOPE).await;
    let (s, h, v) = env
        .graph_call("GET", &env.graph("incidents?$expand=alerts"), &t, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        h["preference-applied"].to_str().unwrap(),
        "include-unknown-enum-members"
    );
    // Most recent first.
    assert_eq!(ids(&v), vec!["10002", "10001"]);
    let a1 = &v["value"][1];
    assert_eq!(a1["@odata.type"], "#microsoft.graph.security.incident");
    assert_eq!(a1["status"], "inProgress", "Sentinel Active is inProgress");
    assert_eq!(a1["severity"], "high");
    assert_eq!(a1["classification"], "unknown");
    assert_eq!(a1["comments"][0]["comment"], "looking");
    assert_eq!(a1["comments"][0]["createdByDisplayName"], "Analyst");
    let alerts = a1["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "A1 and the added A2");
    assert_eq!(alerts[0]["status"], "resolved", "A1 was resolved in DfC");
    assert_eq!(alerts[1]["status"], "new");
    assert_eq!(alerts[0]["serviceSource"], "microsoftDefenderForCloud");
    assert_eq!(alerts[0]["incidentId"], "10001");
    assert!(alerts[0]["id"].as_str().unwrap().starts_with("dc"));
    // The same incident through ARM carries the id as providerIncidentId.
    let arm = env.token(ARM_SCOPE).await;
    let (_, _, list) = env
        .call(
            "GET",
            &format!("{}?api-version={SI_VERSION}", env.incidents_url()),
            &arm,
            None,
        )
        .await;
    let provider_ids: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["properties"]["providerIncidentId"].as_str().unwrap())
        .collect();
    assert!(provider_ids.contains(&"10001") && provider_ids.contains(&"10002"));
    // Without the Prefer header the DfC members read unknownFutureValue.
    let (s, _, v) = env
        .call("GET", &env.graph("incidents/10001/alerts"), &t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["serviceSource"], "unknownFutureValue");
    assert_eq!(v["value"][0]["detectionSource"], "unknownFutureValue");
    let (s, _, one) = env
        .call("GET", &env.graph("incidents/10002"), &t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        one["displayName"],
        "Digital currency mining related behavior detected"
    );
    assert!(one.get("alerts").is_none());
    let (s, _, e) = env.call("GET", &env.graph("incidents/999"), &t, None).await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "NotFound");
    let (s, _, _) = env
        .call("GET", &env.graph("incidents/999/alerts"), &t, None)
        .await;
    assert_eq!(s, 404);
    // alerts_v2, filtered on serviceSource and status.
    let (s, _, v) = env
        .graph_call(
            "GET",
            &env.graph(
                "alerts_v2?$filter=serviceSource eq 'microsoftDefenderForCloud' and status eq 'new'",
            ),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 2, "A2 and B1: {v}");
    let id = v["value"][0]["id"].as_str().unwrap().to_string();
    let (s, _, one) = env
        .call("GET", &env.graph(&format!("alerts_v2/{id}")), &t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(one["id"], json!(id));
    // The state's XDR view.
    let st = env.state();
    let x = &st["xdr_incidents"][0];
    assert_eq!(x["id"], "10001");
    assert_eq!(x["status"], "inProgress");
    assert_eq!(x["alert_ids"].as_array().unwrap().len(), 2);
    assert_eq!(st["xdr_alerts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn graph_lists_page_filter_sort_and_cap_top_at_50() {
    let env = start(portal_demo(|v| {
        let events = v["events"].as_array_mut().unwrap();
        for n in 0..7 {
            events.push(json!({"at": format!("-{}m", 9 - n), "do": "new_alert",
                "workspace": "law-sentinel", "alert": format!("N{n}"),
                "subscription_id": DFC_SUB}));
        }
    }))
    .await;
    let t = env.token(GRAPH_SCOPE).await;
    // 9 incidents; pages of 4 through nextLink, each once.
    let mut url = env.graph("incidents?$top=4&$count=true");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (s, _, v) = env.call("GET", &url, &t, None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["@odata.count"], 9);
        seen.extend(ids(&v));
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&env.base), "absolute: {next}");
                assert!(next.contains("skiptoken"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 9, "{seen:?}");
    // Default order: most recent first.
    assert_eq!(seen.first().map(String::as_str), Some("10009"));
    // $top over 50: the observed 400.
    let (s, _, e) = env
        .call("GET", &env.graph("incidents?$top=51"), &t, None)
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        e["error"]["message"],
        "The query specified in the URI is not valid. The limit of '50' for Top query has been exceeded. The value from the incoming request is '51'."
    );
    assert!(e["error"]["innerError"]["request-id"].is_string());
    // No $top: 50 at most; alerts_v2 allows more.
    let (s, _, _) = env
        .call("GET", &env.graph("alerts_v2?$top=1000"), &t, None)
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = env
        .call("GET", &env.graph("alerts_v2?$top=1001"), &t, None)
        .await;
    assert_eq!(s, 400);
    // $filter on times and status, $orderby ascending, $skip.
    let (s, _, v) = env
        .call(
            "GET",
            &env.graph(
                "incidents?$filter=createdDateTime gt 2026-11-27T11:55:00Z and status eq 'active'&$orderby=lastUpdateDateTime asc",
            ),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), vec!["10008", "10009"]);
    let (_, _, v) = env
        .call(
            "GET",
            &env.graph("incidents?$filter=lastUpdateDateTime gt 2026-11-27T11:55:00Z&$orderby=lastUpdateDateTime asc&$skip=1"),
            &t,
            None,
        )
        .await;
    assert_eq!(ids(&v), vec!["10009"]);
    // Unsupported properties and options are refused.
    for bad in [
        "incidents?$filter=displayName eq 'x'",
        "incidents?$filter=serviceSource eq 'x'",
        "incidents?$orderby=severity",
        "incidents?$expand=comments",
        "incidents?$top=x",
    ] {
        let (s, _, e) = env.call("GET", &env.graph(bad), &t, None).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "BadRequest");
    }
}

#[tokio::test]
async fn graph_refuses_callers_without_the_application_permission() {
    let env = start(portal_demo(|_| {})).await;
    let analyst = env.token_for("analyst@contoso.com", GRAPH_SCOPE).await;
    let r = env
        .http
        .get(env.graph("incidents"))
        .bearer_auth(&analyst)
        .header("client-request-id", "my-request")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "Forbidden");
    assert_eq!(
        e["error"]["message"],
        "Missing application roles. API required roles: SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: ."
    );
    let inner = &e["error"]["innerError"];
    assert_eq!(inner["client-request-id"], "my-request");
    assert!(inner["request-id"].is_string());
    assert_eq!(inner["date"].as_str().unwrap().len(), 19, "{inner}");
    // Read-only: reads pass, writes do not.
    let mi = env.token_for("mi-dfcsync", GRAPH_SCOPE).await;
    let (s, _, _) = env.call("GET", &env.graph("incidents"), &mi, None).await;
    assert_eq!(s, 200);
    let (s, _, _) = env.call("GET", &env.graph("alerts_v2"), &mi, None).await;
    assert_eq!(s, 200, "incident permissions also read alerts_v2");
    let (s, _, e) = env
        .call(
            "PATCH",
            &env.graph("incidents/10001"),
            &mi,
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        e["error"]["message"],
        "Missing application roles. API required roles: SecurityIncident.ReadWrite.All, application roles: SecurityIncident.Read.All."
    );
    let (s, _, _) = env
        .call(
            "POST",
            &env.graph("incidents/10001/comments"),
            &mi,
            Some(json!({"comment": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    // An ARM token is not a Graph token.
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, e) = env.call("GET", &env.graph("incidents"), &arm, None).await;
    assert_eq!(s, 401);
    assert_eq!(e["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn graph_throttles_per_app_and_takes_faults_and_the_request_log() {
    let env = start(portal_demo(|v| {
        v["limits"] = json!({"graph_requests_per_minute": 3});
    }))
    .await;
    let t = env.token(GRAPH_SCOPE).await;
    for _ in 0..3 {
        let (s, _, _) = env.call("GET", &env.graph("incidents"), &t, None).await;
        assert_eq!(s, 200);
    }
    let (s, h, e) = env.call("GET", &env.graph("alerts_v2"), &t, None).await;
    assert_eq!(s, 429);
    assert_eq!(e["error"]["code"], "TooManyRequests");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another application has its own budget.
    let mi = env.token_for("mi-dfcsync", GRAPH_SCOPE).await;
    let (s, _, _) = env.call("GET", &env.graph("incidents"), &mi, None).await;
    assert_eq!(s, 200);
    let log = env.control("GET", "requests", None).await;
    let graph: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "graph")
        .collect();
    assert_eq!(graph.len(), 5);
    assert_eq!(graph[3]["status"], 429);
    assert_eq!(graph[0]["principal"], "dfcsync");
    env.control(
        "POST",
        "faults",
        Some(json!({"path": "^/v1\\.0/security/incidents$", "status": 503, "times": 1})),
    )
    .await;
    let (s, _, _) = env.call("GET", &env.graph("incidents"), &mi, None).await;
    assert_eq!(s, 503);
}

/// The Sentinel incident of an alert handle, through ARM: (url, properties).
pub(crate) async fn sentinel_incident(env: &Env, alert: &str) -> (String, Value) {
    let st = env.state();
    let name = st["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            let sys = st["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == alert)
                .unwrap()["system_alert_id"]
                .clone();
            i["alert_ids"].as_array().unwrap().contains(&sys)
        })
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/{name}?api-version={SI_VERSION}", env.incidents_url());
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, v) = env.call("GET", &url, &arm, None).await;
    assert_eq!(s, 200, "{v}");
    (url, v)
}

#[tokio::test]
async fn a_graph_patch_is_seen_in_sentinel_and_a_sentinel_put_in_graph() {
    let env = start(portal_demo(|_| {})).await;
    let t = env.token(GRAPH_SCOPE).await;
    let rows_before = rows(
        &env.state(),
        "SecurityIncident",
        "ProviderIncidentId",
        "10001",
    )
    .len();
    let (s, _, v) = env
        .call(
            "PATCH",
            &env.graph("incidents/10001"),
            &t,
            Some(json!({"status": "resolved", "classification": "informationalExpectedActivity",
                "determination": "other", "assignedTo": "analyst@contoso.com", "customTags": ["dfcsync"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["classification"], "informationalExpectedActivity");
    assert_eq!(v["assignedTo"], "analyst@contoso.com");
    assert_eq!(v["customTags"], json!(["dfcsync"]));
    assert_eq!(v["lastModifiedBy"], "dfcsync");
    assert!(v["lastUpdateDateTime"].as_str().unwrap() > "2026-11-27T12:00:00");
    // ARM sees it, with a new SecurityIncident row.
    let (url, inc) = sentinel_incident(&env, "A1").await;
    let p = &inc["properties"];
    assert_eq!(p["status"], "Closed");
    assert_eq!(p["classification"], "BenignPositive");
    assert_eq!(p["classificationReason"], "SuspiciousButExpected");
    assert_eq!(p["owner"]["userPrincipalName"], "analyst@contoso.com");
    assert_eq!(p["labels"][0]["labelName"], "dfcsync");
    let st = env.state();
    let si_rows = rows(&st, "SecurityIncident", "ProviderIncidentId", "10001");
    assert_eq!(si_rows.len(), rows_before + 1);
    assert_eq!(si_rows.last().unwrap()["Status"], "Closed");
    assert_eq!(si_rows.last().unwrap()["ModifiedBy"], "dfcsync");
    // Resolving the incident resolved its open alert A2, in XDR and in DfC.
    let a2 = state_alert(&st, "A2");
    assert_eq!(a2["status"], "Resolved");
    assert!(
        st["xdr_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["incidentId"] != "10001" || a["status"] == "resolved")
    );
    // A Sentinel PUT (reopen as Active) is seen in Graph.
    let arm = env.token(ARM_SCOPE).await;
    let mut body = json!({"etag": inc["etag"], "properties": p.clone()});
    body["properties"]["status"] = json!("Active");
    body["properties"]["classification"] = Value::Null;
    body["properties"]["classificationReason"] = Value::Null;
    body["properties"]["severity"] = json!("Low");
    body["properties"]["title"] = json!("Renamed in Sentinel");
    let (s, _, v) = env.call("PUT", &url, &arm, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let g = env.graph_get(&t, "incidents/10001").await;
    assert_eq!(g["status"], "inProgress");
    assert_eq!(g["classification"], "unknown");
    assert_eq!(g["determination"], "unknown");
    assert_eq!(g["assignedTo"], "analyst@contoso.com");
    assert_eq!(g["severity"], "low");
    assert_eq!(g["displayName"], "Renamed in Sentinel");
    // Refused writes.
    for (body, what) in [
        (json!({"status": "redirected"}), "status"),
        (json!({"status": "awaitingAction"}), "status"),
        (json!({"status": "closed"}), "status"),
        (
            json!({"classification": "benignPositive"}),
            "classification",
        ),
        (
            json!({"classification": "truePositive", "determination": "notMalicious"}),
            "determination",
        ),
        (json!({"summary": "x"}), "summary"),
        (json!({"severity": "low"}), "severity"),
        (json!({"customTags": "x"}), "customTags"),
    ] {
        let (s, _, e) = env
            .call(
                "PATCH",
                &env.graph("incidents/10001"),
                &t,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(what),
            "{body}: {e}"
        );
    }
    // PascalCase is taken and answered in camelCase.
    let (s, _, v) = env
        .call(
            "PATCH",
            &env.graph("incidents/10001"),
            &t,
            Some(json!({"Classification_": 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _, v) = env
        .call(
            "PATCH",
            &env.graph("incidents/10001"),
            &t,
            Some(json!({"classification": "TruePositive", "determination": "MultiStagedAttack"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["classification"], "truePositive");
    assert_eq!(v["determination"], "multiStagedAttack");
    let (s, _, _) = env
        .call(
            "PATCH",
            &env.graph("incidents/404"),
            &t,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn comments_go_both_ways_new_ones_only() {
    let env = start(portal_demo(|_| {})).await;
    let t = env.token(GRAPH_SCOPE).await;
    let (s, _, v) = env
        .call(
            "POST",
            &env.graph("incidents/10001/comments"),
            &t,
            Some(json!({"@odata.type": "microsoft.graph.security.alertComment", "comment": "closed by dfcsync"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let list = v["value"].as_array().unwrap();
    assert_eq!(list.len(), 2, "the whole list: {v}");
    assert_eq!(list[1]["comment"], "closed by dfcsync");
    assert_eq!(list[1]["createdByDisplayName"], "dfcsync");
    assert!(list[1]["createdDateTime"].is_string());
    // Sentinel has it, with a new SecurityIncident row carrying it.
    let (url, _) = sentinel_incident(&env, "A1").await;
    let comments_url = url.replace("?api-version", "/comments?api-version");
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, c) = env.call("GET", &comments_url, &arm, None).await;
    assert_eq!(s, 200, "{c}");
    let messages: Vec<&str> = c["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["properties"]["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"closed by dfcsync"), "{messages:?}");
    // A comment made in Sentinel shows in Graph once.
    let cid = "0b8c7d0e-0000-4000-8000-000000000001";
    let put = url.replace("?api-version", &format!("/comments/{cid}?api-version"));
    let (s, _, _) = env
        .call(
            "PUT",
            &put,
            &arm,
            Some(json!({"properties": {"message": "from sentinel"}})),
        )
        .await;
    assert!(s == 200 || s == 201, "{s}");
    let g = env.graph_get(&t, "incidents/10001").await;
    let texts: Vec<&str> = g["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["comment"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["looking", "closed by dfcsync", "from sentinel"]);
    // Bad bodies.
    for body in [
        json!({"comment": ""}),
        json!({"text": "x"}),
        json!({"@odata.type": "microsoft.graph.security.incident", "comment": "x"}),
    ] {
        let (s, _, _) = env
            .call(
                "POST",
                &env.graph("incidents/10001/comments"),
                &t,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}");
    }
}

#[tokio::test]
async fn xdr_incidents_exist_without_a_portal_workspace_and_dfc_status_maps_onto_alerts() {
    // Defender XDR on, the workspace not in the portal: XDR incidents of their own, Sentinel
    // incidents apart.
    let env = start(graph_demo(|v| v["defender_xdr"] = json!(true))).await;
    let t = env.token(GRAPH_SCOPE).await;
    let (_, _, v) = env
        .graph_call("GET", &env.graph("incidents?$expand=alerts"), &t, None)
        .await;
    assert_eq!(ids(&v), vec!["10002", "10001"]);
    let a1 = &v["value"][1];
    assert_eq!(
        a1["status"], "active",
        "XDR's own incident is not Sentinel's"
    );
    assert_eq!(
        a1["alerts"].as_array().unwrap().len(),
        1,
        "A2 joined only the Sentinel incident"
    );
    let st = env.state();
    assert!(st["xdr_incidents"][0]["sentinel_incident"].is_null());
    assert_eq!(st["incidents"][0]["provider_name"], "Azure Sentinel");
    // A Graph write leaves Sentinel alone, and resolves the alerts.
    let before = rows(&st, "SecurityIncident", "IncidentNumber", "1").len();
    let (s, _, _) = env
        .call("PATCH", &env.graph("incidents/10002"), &t, Some(json!({"status": "resolved", "classification": "truePositive", "determination": "other"})))
        .await;
    assert_eq!(s, 200);
    let st = env.state();
    assert_eq!(
        rows(&st, "SecurityIncident", "IncidentNumber", "1").len(),
        before
    );
    let b1 = state_alert(&st, "B1");
    assert_eq!(b1["status"], "Resolved");
    // DfC statuses as XDR alert statuses; a dismissal is resolved + informationalExpectedActivity.
    env.events(json!([
        {"do": "new_alert", "workspace": "law-sentinel", "alert": "C1", "subscription_id": DFC_SUB},
        {"do": "new_alert", "workspace": "law-sentinel", "alert": "C2", "subscription_id": DFC_SUB},
        {"do": "alert_status", "alert": "C1", "status": "InProgress"},
        {"do": "alert_status", "alert": "C2", "status": "Dismissed"},
    ]))
    .await;
    let st = env.state();
    let x = |key: &str| {
        st["xdr_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["alert"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(x("C1")["status"], "inProgress");
    assert_eq!(x("C2")["status"], "resolved");
    assert_eq!(x("C2")["classification"], "informationalExpectedActivity");
    // An alert change moves the alert's lastUpdateDateTime, not the incident's.
    let inc = st["xdr_incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == x("C2")["incidentId"])
        .unwrap();
    assert!(
        inc["lastUpdateDateTime"].as_str().unwrap()
            <= x("C2")["lastUpdateDateTime"].as_str().unwrap()
    );
    assert_eq!(
        inc["status"], "active",
        "no roll-up unless xdr_incident_follows_alerts"
    );
}

#[tokio::test]
async fn with_xdr_incident_follows_alerts_the_incident_rolls_up_from_its_alerts() {
    let env = start(portal_demo(|v| {
        v["xdr_incident_follows_alerts"] = json!(true);
    }))
    .await;
    let t = env.token(GRAPH_SCOPE).await;
    // Incident 10001 holds A1 (resolved) and A2 (new): dismissing A2 resolves it.
    env.events(json!([
        {"do": "alert_status", "alert": "A2", "status": "Dismissed"},
    ]))
    .await;
    let g = env.graph_get(&t, "incidents/10001").await;
    assert_eq!(g["status"], "resolved");
    assert_eq!(g["lastModifiedBy"], "Microsoft Defender XDR");
    let (_, inc) = sentinel_incident(&env, "A1").await;
    assert_eq!(inc["properties"]["status"], "Closed");
    assert_eq!(inc["properties"]["classification"], "Undetermined");
    let st = env.state();
    let si_rows = rows(&st, "SecurityIncident", "ProviderIncidentId", "10001");
    let last = si_rows.last().unwrap();
    assert_eq!(last["ModifiedBy"], "Microsoft Defender XDR");
    // The dismissed alert stays dismissed in DfC (no echo of the roll-up).
    let a2 = state_alert(&st, "A2");
    assert_eq!(a2["status"], "Dismissed");
    // Reactivating an alert reactivates the incident.
    env.events(json!([
        {"do": "alert_status", "alert": "A1", "status": "Active"},
    ]))
    .await;
    let g = env.graph_get(&t, "incidents/10001").await;
    assert_eq!(g["status"], "active");
    let (_, inc) = sentinel_incident(&env, "A1").await;
    assert_eq!(inc["properties"]["status"], "New");
    // The analyst's Graph-side change as a scenario event.
    env.events(json!([
        {"do": "xdr_incident_status", "incident": "B1", "status": "inProgress", "assigned_to": "analyst@contoso.com", "by": "analyst@contoso.com"},
    ])).await;
    let g = env.graph_get(&t, "incidents/10002").await;
    assert_eq!(g["status"], "inProgress");
    assert_eq!(g["lastModifiedBy"], "analyst@contoso.com");
    let (_, inc) = sentinel_incident(&env, "B1").await;
    assert_eq!(inc["properties"]["status"], "Active");
    assert_eq!(
        inc["properties"]["owner"]["userPrincipalName"],
        "analyst@contoso.com"
    );
    let r = env
        .http
        .post(format!("{}/_emulator/events", env.base))
        .json(&json!({"events": [{"do": "xdr_incident_status", "incident": "B1", "status": "redirected"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["path"], "events[0].status");
}
#[tokio::test]
async fn a_tenant_without_a_workspace_has_xdr_incidents() {
    let s = emulator::Scenario::from_json_value(json!({
        "now": "2026-11-27T12:00:00Z",
        "tenant_id": TENANT,
        "defender_xdr": true,
        "principals": [{"name": "dfcsync", "kind": "service_principal", "client_id": CLIENT_ID,
            "secret": SECRET, "graph_permissions": ["SecurityIncident.ReadWrite.All"],
            "roles": [{"role": "Security Admin", "scope": format!("/subscriptions/{DFC_SUB}")}]}],
        "events": [{"at": "-1h", "do": "new_alert", "alert": "X1", "subscription_id": DFC_SUB}],
    }))
    .unwrap();
    let env = start(s).await;
    let t = env.token(GRAPH_SCOPE).await;
    let (s, _, v) = env
        .graph_call("GET", &env.graph("incidents?$expand=alerts"), &t, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), vec!["10001"]);
    assert_eq!(
        v["value"][0]["alerts"][0]["serviceSource"],
        "microsoftDefenderForCloud"
    );
    let (s, _, _) = env
        .call(
            "PATCH",
            &env.graph("incidents/10001"),
            &t,
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(s, 200);
    let st = env.state();
    assert_eq!(st["alerts"][0]["status"], "Resolved");
    assert!(st["alerts"][0]["workspace"].is_null());
    // DfC serves the alert, resolved, with no Log Analytics identifier.
    let arm = env.token(ARM_SCOPE).await;
    let url = format!(
        "{}/subscriptions/{DFC_SUB}/providers/Microsoft.Security/alerts?api-version=2022-01-01",
        env.base
    );
    let (s, _, v) = env.call("GET", &url, &arm, None).await;
    assert_eq!(s, 200, "{v}");
    let p = &v["value"][0]["properties"];
    assert_eq!(p["status"], "Resolved");
    assert_eq!(p["resourceIdentifiers"].as_array().unwrap().len(), 1);
    // Without defender_xdr a workspace-less alert is refused with its path.
    let e = emulator::Scenario::from_json_value(json!({
        "now": "2026-11-27T12:00:00Z", "tenant_id": TENANT,
        "events": [{"do": "new_alert", "alert": "X1", "subscription_id": DFC_SUB}],
    }))
    .unwrap_err();
    assert_eq!(e.path(), "events[0].workspace");
}
