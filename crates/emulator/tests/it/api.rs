//! Tokens, managed identity, ARM incidents/comments/workspace, control API.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn token_endpoint_issues_jwt_and_refuses_bad_credentials() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], "https://management.azure.com");
    assert_eq!(claims["appid"], CLIENT_ID);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["oid"], "bbbbbbbb-0000-0000-0000-000000000001");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let url = format!("{}/{TENANT}/oauth2/v2.0/token", env.base);
    let form = |secret: &'static str, scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
            ("scope", scope),
        ]
    };
    let r = env
        .http
        .post(&url)
        .form(&form("wrong", ARM_SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let r = env
        .http
        .post(&url)
        .form(&form(SECRET, "https://vault.azure.net/.default"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = env
        .http
        .post(format!(
            "{}/00000000-0000-0000-0000-00000000dead/oauth2/v2.0/token",
            env.base
        ))
        .form(&form(SECRET, ARM_SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_codes"], json!([90002]));
}

#[tokio::test]
async fn tokens_are_checked_for_audience_and_expiry() {
    let env = start_demo().await;
    let la = env.token(LA_SCOPE).await;
    let url = format!("{}{}?api-version=2022-10-01", env.base, env.ws_path());
    let (s, h, v) = env.call("GET", &url, &la, None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationTokenAudience");
    assert!(h.contains_key("www-authenticate"));
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, v) = env.call("GET", &url, &arm, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["properties"]["customerId"], CUSTOMER_ID);
    let (s, v) = env.query(&arm, "SecurityIncident | take 1").await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationTokenAudience");
    let (s, _, v) = env.call("GET", &url, "not-a-token", None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    env.control("POST", "clock", Some(json!({"advance": "2h"})))
        .await;
    let (s, _, v) = env.call("GET", &url, &arm, None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "ExpiredAuthenticationToken");
}

#[tokio::test]
async fn managed_identity_endpoints() {
    let env = start_demo().await;
    let ep = env.emu.endpoints();
    // Plain HTTP on loopback, as on an Azure host; nothing else is served there.
    assert!(
        ep.identity_endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        ep.identity_endpoint
    );
    let plain_base = ep
        .identity_endpoint
        .trim_end_matches("/msi/token")
        .to_string();
    let r = env
        .http
        .get(format!("{plain_base}/_emulator/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The same path answers over HTTPS too.
    let r = env
        .http
        .get(format!("{}/msi/token", env.base))
        .query(&[
            ("resource", "https://management.azure.com"),
            ("api-version", "2019-08-01"),
        ])
        .header("X-IDENTITY-HEADER", &ep.identity_header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // App Service style.
    let r = env
        .http
        .get(&ep.identity_endpoint)
        .query(&[
            ("resource", "https://management.azure.com"),
            ("api-version", "2019-08-01"),
        ])
        .header("X-IDENTITY-HEADER", &ep.identity_header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["expires_on"].is_string());
    assert_eq!(v["client_id"], "dddddddd-0000-0000-0000-000000000001");
    assert_eq!(v["token_type"], "Bearer");
    let t = v["access_token"].as_str().unwrap().to_string();
    let url = format!("{}{}?api-version=2022-10-01", env.base, env.ws_path());
    let (s, _, _) = env.call("GET", &url, &t, None).await;
    assert_eq!(s, 200);
    let r = env
        .http
        .get(&ep.identity_endpoint)
        .query(&[
            ("resource", "https://management.azure.com"),
            ("api-version", "2019-08-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // IMDS style, selecting by each identifier.
    for (k, v) in [
        ("client_id", "dddddddd-0000-0000-0000-000000000001"),
        ("object_id", "dddddddd-0000-0000-0000-000000000002"),
        (
            "msi_res_id",
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-sentinel/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-dfcsync",
        ),
    ] {
        let r = env
            .http
            .get(&ep.imds_endpoint)
            .query(&[
                ("resource", "https://api.loganalytics.io"),
                ("api-version", "2018-02-01"),
                (k, v),
            ])
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["expires_in"], "86399");
        assert_eq!(body["refresh_token"], "");
        assert!(body["not_before"].is_string());
    }
    let r = env
        .http
        .get(&ep.imds_endpoint)
        .query(&[
            ("resource", "https://management.azure.com/"),
            ("api-version", "2018-02-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = env
        .http
        .get(&ep.imds_endpoint)
        .query(&[
            ("resource", "https://management.azure.com/"),
            ("api-version", "2018-02-01"),
            ("client_id", "00000000-0000-0000-0000-000000000000"),
        ])
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn etag_conflicts_and_idempotent_comments() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let list = format!("{}?api-version={SI_VERSION}", env.incidents_url());
    let (s, _, v) = env.call("GET", &list, &t, None).await;
    assert_eq!(s, 200);
    let inc = v["value"][0].clone();
    let name = inc["name"].as_str().unwrap();
    let url = format!("{}/{name}?api-version={SI_VERSION}", env.incidents_url());
    let (_, _, got) = env.call("GET", &url, &t, None).await;
    let mut props = got["properties"].clone();
    props["severity"] = json!("Low");
    let body = json!({"etag": got["etag"], "properties": props});
    let (s, _, put) = env.call("PUT", &url, &t, Some(body.clone())).await;
    assert_eq!(s, 200, "{put}");
    assert_ne!(put["etag"], got["etag"]);
    let (s, _, err) = env.call("PUT", &url, &t, Some(body)).await;
    assert_eq!(s, 409);
    assert_eq!(err["error"]["code"], "Conflict");
    assert_eq!(
        err["error"]["message"],
        format!("Newer version of resource '{name}' exists. Data was not saved")
    );
    // Comments: one id twice gives one comment.
    let cid = "4bb36b7b-26ff-4d1c-9cbe-0d8ab3da0014";
    let curl = format!(
        "{}/{name}/comments/{cid}?api-version={SI_VERSION}",
        env.incidents_url()
    );
    let msg = json!({"properties": {"message": "[dfcsync:close:0123456789abcdef] closed"}});
    let (s1, _, c1) = env.call("PUT", &curl, &t, Some(msg.clone())).await;
    let (s2, _, _) = env.call("PUT", &curl, &t, Some(msg)).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(c1["properties"]["author"]["name"], "dfcsync");
    let (s, _, list) = env
        .call(
            "GET",
            &format!(
                "{}/{name}/comments?api-version={SI_VERSION}",
                env.incidents_url()
            ),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let ours: Vec<&Value> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == cid)
        .collect();
    assert_eq!(ours.len(), 1);
    // The comment shows in the Comments column of the newest incident row.
    let st = env.state();
    let rows = rows(&st, "SecurityIncident", "IncidentName", name);
    let comments = rows.last().unwrap()["Comments"].as_array().unwrap().clone();
    assert!(comments.iter().any(
        |c| c["message"] == "[dfcsync:close:0123456789abcdef] closed"
            && c["createdTimeUtc"].is_string()
            && c["author"].is_object()
    ));
}

#[tokio::test]
async fn put_validates_and_creates() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let id = "73e01a99-5cd7-4139-a149-9f2736ff2ab5";
    let url = format!("{}/{id}?api-version={SI_VERSION}", env.incidents_url());
    let (s, _, v) = env
        .call(
            "PUT",
            &url,
            &t,
            Some(json!({"properties": {"title": "x", "severity": "High"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _, v) = env
        .call(
            "PUT",
            &url,
            &t,
            Some(json!({"properties": {"title": "x", "severity": "High", "status": "New"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["properties"]["providerName"], "Azure Sentinel");
    let base = json!({"etag": v["etag"], "properties": {"title": "x", "severity": "High", "status": "Closed",
        "classification": "BenignPositive"}});
    let (s, _, v) = env.call("PUT", &url, &t, Some(base.clone())).await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "classification 'BenignPositive' must have classificationReason."
    );
    let mut cross = base.clone();
    cross["properties"]["classificationReason"] = json!("InaccurateData");
    let (s, _, _) = env.call("PUT", &url, &t, Some(cross)).await;
    assert_eq!(s, 400);
    let mut ok = base;
    ok["properties"]["classificationReason"] = json!("SuspiciousButExpected");
    ok["properties"]["owner"] = json!({"objectId": "cccccccc-0000-0000-0000-000000000001"});
    let (s, _, v) = env.call("PUT", &url, &t, Some(ok)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["properties"]["owner"]["userPrincipalName"],
        "analyst@contoso.com"
    );
}

/// Follows a list's `nextLink`s: the incidents' numbers, page by page.
async fn numbers_by_page(env: &Env, t: &str, first: String) -> Vec<Vec<i64>> {
    let mut url = first;
    let mut pages = vec![];
    loop {
        let (s, _, v) = env.call("GET", &url, t, None).await;
        assert_eq!(s, 200, "{v}");
        pages.push(
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["properties"]["incidentNumber"].as_i64().unwrap())
                .collect(),
        );
        match v["nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn default_order_pages_by_number_past_inserts_and_filters_read_the_model() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let events: Vec<Value> = (0..6)
        .map(|n| {
            json!({"at": format!("-{}m", 50 - n), "do": "new_alert", "workspace": "law-sentinel",
            "alert": format!("P{n}"), "subscription_id": DFC_SUB})
        })
        .collect();
    env.control("POST", "events", Some(json!({ "events": events })))
        .await;
    // The demo's 2 incidents and 6 more: numbers 1..=8, pages of 3.
    let first = format!("{}?api-version={SI_VERSION}&$top=3", env.incidents_url());
    let (_, _, v) = env.call("GET", &first, &t, None).await;
    let next = v["nextLink"].as_str().unwrap().to_string();
    // An incident raised between two pages is read once, at the end.
    env.control(
        "POST",
        "events",
        Some(
            json!({"events": [{"do": "new_alert", "workspace": "law-sentinel", "alert": "late",
            "subscription_id": DFC_SUB}]}),
        ),
    )
    .await;
    let rest = numbers_by_page(&env, &t, next).await;
    assert_eq!(rest, vec![vec![4, 5, 6], vec![7, 8, 9]]);
    // A filter on times (read from the model), and one on a property the model lookup does
    // not map (labels: read from each incident's JSON), page the same way.
    let since = format!(
        "{}?api-version={SI_VERSION}&$top=2&$filter={}",
        env.incidents_url(),
        urlencode(
            "properties/createdTimeUtc ge 2026-11-27T11:12:00Z and properties/incidentNumber ne 6"
        )
    );
    assert_eq!(
        numbers_by_page(&env, &t, since).await,
        vec![vec![5, 7], vec![8, 9]]
    );
    let labels = format!(
        "{}?api-version={SI_VERSION}&$top=2&$filter={}",
        env.incidents_url(),
        urlencode("properties/labels eq null or properties/incidentNumber ge 1")
    );
    assert_eq!(
        numbers_by_page(&env, &t, labels).await.concat(),
        (1..=9).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn list_filters_orders_and_pages() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let mut events = vec![];
    for n in 0..7 {
        events.push(json!({"at": format!("-{}m", 50 - n), "do": "new_alert", "workspace": "law-sentinel",
            "alert": format!("P{n}"), "subscription_id": DFC_SUB, "display_name": format!("Paged {n}")}));
    }
    env.control("POST", "events", Some(json!({"events": events})))
        .await;
    let mut url = format!(
        "{}?api-version={SI_VERSION}&$filter={}&$orderby={}&$top=3",
        env.incidents_url(),
        urlencode("contains(properties/title,'Paged') and properties/status eq 'New'"),
        urlencode("properties/createdTimeUtc desc"),
    );
    let mut titles = vec![];
    let mut pages = 0;
    loop {
        let (s, _, v) = env.call("GET", &url, &t, None).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        for i in v["value"].as_array().unwrap() {
            titles.push(i["properties"]["title"].as_str().unwrap().to_string());
        }
        match v["nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        titles,
        (0..7)
            .rev()
            .map(|n| format!("Paged {n}"))
            .collect::<Vec<_>>()
    );
    let (s, _, _) = env
        .call(
            "GET",
            &format!("{}?api-version={SI_VERSION}&$top=1001", env.incidents_url()),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _, _) = env.call("GET", &env.incidents_url(), &t, None).await;
    assert_eq!(s, 400);
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn incident_alerts_and_dfc_list() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let st = env.state();
    let a1 = st["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "A1")
        .unwrap()
        .clone();
    let inc = st["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["alert_ids"][0] == a1["system_alert_id"])
        .unwrap()
        .clone();
    assert_eq!(
        inc["alert_ids"].as_array().unwrap().len(),
        2,
        "A2 was added"
    );
    assert_eq!(inc["status"], "Active");
    assert_eq!(inc["comments"][0]["message"], "looking");
    let url = format!(
        "{}/{}/alerts?api-version={SI_VERSION}",
        env.incidents_url(),
        inc["name"].as_str().unwrap()
    );
    let (s, _, v) = env.call("POST", &url, &t, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    assert_eq!(v["value"][0]["kind"], "SecurityAlert");
    assert_eq!(v["value"][0]["properties"]["status"], "Resolved");
    let list = format!(
        "{}/subscriptions/{DFC_SUB}/providers/Microsoft.Security/alerts?api-version=2022-01-01",
        env.base
    );
    let (s, _, v) = env.call("GET", &list, &t, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let rg_loc = format!(
        "{}/subscriptions/{DFC_SUB}/resourceGroups/rg-app/providers/Microsoft.Security/locations/westeurope/alerts?api-version=2022-01-01",
        env.base
    );
    let (s, _, v) = env.call("GET", &rg_loc, &t, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn faults_conflicts_log_clock_and_reset() {
    let env = start_demo().await;
    let t = env.token(ARM_SCOPE).await;
    let since = env.last_seq().await;
    env.control("POST", "faults", Some(json!({"method": "GET", "path": "/incidents$", "status": 503, "times": 2, "retry_after": "1s"}))).await;
    let list = format!("{}?api-version={SI_VERSION}", env.incidents_url());
    for _ in 0..2 {
        let (s, h, _) = env.call("GET", &list, &t, None).await;
        assert_eq!(s, 503);
        assert_eq!(h["retry-after"], "1");
    }
    let (s, _, v) = env.call("GET", &list, &t, None).await;
    assert_eq!(s, 200);
    let inc = v["value"][0].clone();
    let log = env
        .control("GET", &format!("requests?since={since}"), None)
        .await;
    let gets: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "GET" && e["path"].as_str().unwrap().ends_with("/incidents"))
        .collect();
    assert_eq!(gets.len(), 3);
    assert_eq!(gets[0]["status"], 503);
    assert_eq!(gets[2]["principal"], "dfcsync");
    // A conflict fault: the next conditional write meets a concurrent edit.
    env.control("POST", "faults", Some(json!({"conflict": "/incidents/"})))
        .await;
    let url = format!(
        "{}/{}?api-version={SI_VERSION}",
        env.incidents_url(),
        inc["name"].as_str().unwrap()
    );
    let body = json!({"etag": inc["etag"], "properties": inc["properties"]});
    let (s, _, _) = env.call("PUT", &url, &t, Some(body.clone())).await;
    assert_eq!(s, 409);
    let (_, _, fresh) = env.call("GET", &url, &t, None).await;
    let (s, _, _) = env
        .call(
            "PUT",
            &url,
            &t,
            Some(json!({"etag": fresh["etag"], "properties": fresh["properties"]})),
        )
        .await;
    assert_eq!(s, 200);
    // Clock.
    let before = env.control("GET", "clock", None).await["now"]
        .as_str()
        .unwrap()
        .to_string();
    let after = env
        .control("POST", "clock", Some(json!({"advance": "1h"})))
        .await["now"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(after > before);
    let set = env
        .control(
            "POST",
            "clock",
            Some(json!({"now": "2027-01-01T00:00:00Z"})),
        )
        .await;
    assert!(
        set["now"]
            .as_str()
            .unwrap()
            .starts_with("2027-01-01T00:00:0")
    );
    // Reset.
    env.control("POST", "reset", None).await;
    let st = env.state();
    assert!(
        st["now"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-27T12:00:0")
    );
    assert_eq!(st["incidents"].as_array().unwrap().len(), 2);
    assert_eq!(env.emu.with_platform(|p| p.incidents.len()), 2);
    let ep = env.control("GET", "endpoints", None).await;
    assert_eq!(ep["tenant_id"], TENANT);
    assert_eq!(ep["arm"], env.base.as_str());
    for k in [
        "authority",
        "log_analytics",
        "identity_endpoint",
        "identity_header",
        "ca",
    ] {
        assert!(ep[k].is_string(), "{k}");
    }
}

#[tokio::test]
async fn ready_config_points_at_the_emulator() {
    let env = start_demo().await;
    let cfg = env.emu.config_toml();
    assert!(cfg.starts_with(&format!(
        "# dfcsync configuration for the emulator at {}\n",
        env.base
    )));
    assert!(cfg.contains("cloud = \"custom\""));
    assert!(cfg.contains(&format!("tenant_id = \"{TENANT}\"")));
    assert!(cfg.contains(&format!("client_id = \"{CLIENT_ID}\"")));
    assert!(cfg.contains("[[workspaces]]\nsubscription_id = \"00000000-0000-0000-0000-000000000001\"\nresource_group = \"rg-sentinel\"\nname = \"law-sentinel\""));
    let secret = env.emu.client_secret_path().unwrap();
    assert_eq!(std::fs::read_to_string(secret).unwrap(), SECRET);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        std::fs::read_to_string(env.emu.ca_pem_path())
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_served() {
    let env = std::sync::Arc::new(start_demo().await);
    let arm = env.token(ARM_SCOPE).await;
    let la = env.token(LA_SCOPE).await;
    let mut tasks = vec![];
    for n in 0..24 {
        let env = env.clone();
        let (arm, la) = (arm.clone(), la.clone());
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let (s, _, _) = env
                    .call(
                        "GET",
                        &format!("{}?api-version={SI_VERSION}", env.incidents_url()),
                        &arm,
                        None,
                    )
                    .await;
                s
            } else {
                env.query(
                    &la,
                    "SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId | count",
                )
                .await
                .0
            }
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let log = env.control("GET", "requests", None).await;
    assert!(log.as_array().unwrap().len() >= 26);
    let lean = env.control("GET", "state?tables=false", None).await;
    assert!(lean.get("tables").is_none());
    assert_eq!(lean["incidents"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn control_api_refuses_bad_input_with_a_path() {
    let env = start_demo().await;
    let post = |path: &str, body: Value| {
        let req = env
            .http
            .post(format!("{}/_emulator/{path}", env.base))
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = post(
        "events",
        json!({"events": [{"do": "alert_status", "alert": "A1", "status": "Gone"}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["path"], "events[0].status");
    let (s, v) = post("events", json!({"events": [{"do": "new_alert", "workspace": "law-sentinel", "alert": "Z", "subscription_id": DFC_SUB, "colour": 1}]})).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["path"], "events[0].colour");
    let (s, v) = post("faults", json!({"path": "(", "status": 500})).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["path"], "[0]");
    let (s, _) = post("clock", json!({"advance": "soon"})).await;
    assert_eq!(s, 400);
    let ep: emulator::Endpoints =
        serde_json::from_value(env.control("GET", "endpoints", None).await).unwrap();
    assert_eq!(ep, env.emu.endpoints());
}
