//! RBAC, throttling, the Log Analytics row limit and rate limit, the role propagation window
//! and the ingestion delay: one test each.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn missing_role_is_authorization_failed() {
    let env = start_demo().await;
    let st = env.state();
    let b1 = st["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "B1")
        .unwrap()
        .clone();
    let url = format!(
        "{}/subscriptions/{DFC_SUB}/resourceGroups/rg-app/providers/Microsoft.Security/locations/westeurope/alerts/{}/resolve?api-version=2022-01-01",
        env.base,
        b1["name"].as_str().unwrap()
    );
    // The analyst is a Sentinel Responder, not a Security Admin.
    let analyst = env.token_for("analyst@contoso.com", ARM_SCOPE).await;
    let (s, _, v) = env.call("POST", &url, &analyst, None).await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "AuthorizationFailed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Microsoft.Security/locations/alerts/resolve/action")
    );
    // The managed identity's Responder role is scoped to the workspace: other workspaces'
    // resource groups are out of reach, the workspace itself is not.
    let mi = env.token_for("mi-dfcsync", ARM_SCOPE).await;
    let (s, _, _) = env
        .call(
            "GET",
            &format!("{}?api-version={SI_VERSION}", env.incidents_url()),
            &mi,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let other = format!(
        "{}/subscriptions/{SUB}/resourceGroups/rg-other/providers/Microsoft.OperationalInsights/workspaces/x?api-version=2022-10-01",
        env.base
    );
    let (s, _, v) = env.call("GET", &other, &mi, None).await;
    assert_eq!(s, 403, "{v}");
    // A user's incident change is recorded with the UPN.
    let (_, _, list) = env
        .call(
            "GET",
            &format!("{}?api-version={SI_VERSION}", env.incidents_url()),
            &analyst,
            None,
        )
        .await;
    let inc = list["value"][0].clone();
    let url = format!(
        "{}/{}?api-version={SI_VERSION}",
        env.incidents_url(),
        inc["name"].as_str().unwrap()
    );
    let mut props = inc["properties"].clone();
    props["status"] = json!("Active");
    let (s, _, _) = env
        .call(
            "PUT",
            &url,
            &analyst,
            Some(json!({"etag": inc["etag"], "properties": props})),
        )
        .await;
    assert_eq!(s, 200);
    let st = env.state();
    let rows = rows(
        &st,
        "SecurityIncident",
        "IncidentName",
        inc["name"].as_str().unwrap(),
    );
    assert_eq!(rows.last().unwrap()["ModifiedBy"], "analyst@contoso.com");
}

#[tokio::test]
async fn arm_throttling_counts_down_and_answers_429() {
    let env = start(demo_with(|v| {
        v["limits"] = json!({"arm_reads": {"bucket": 5, "per_second": 0.5}});
    }))
    .await;
    let t = env.token(ARM_SCOPE).await;
    let url = format!("{}?api-version={SI_VERSION}", env.incidents_url());
    let mut remaining = vec![];
    for _ in 0..5 {
        let (s, h, _) = env.call("GET", &url, &t, None).await;
        assert_eq!(s, 200);
        remaining.push(
            h["x-ms-ratelimit-remaining-subscription-reads"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
    let (s, h, v) = env.call("GET", &url, &t, None).await;
    assert_eq!(s, 429);
    assert_eq!(v["error"]["code"], "TooManyRequests");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    // Writes have their own bucket.
    let (s, _, _) = env
        .call(
            "PUT",
            &format!(
                "{}/{}?api-version={SI_VERSION}",
                env.incidents_url(),
                "73e01a99-5cd7-4139-a149-9f2736ff2ab5"
            ),
            &t,
            Some(json!({"properties": {"title": "t", "severity": "Low", "status": "New"}})),
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn la_row_limit_gives_partial_error() {
    let env = start(demo_with(|v| v["limits"] = json!({"la_max_rows": 2}))).await;
    let t = env.token(LA_SCOPE).await;
    let (s, v) = env.query(&t, "SecurityAlert").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tables"][0]["rows"].as_array().unwrap().len(), 2);
    assert_eq!(v["error"]["code"], "PartialError");
    assert!(
        v["error"]["innererror"]["message"]
            .as_str()
            .unwrap()
            .contains("internal record count limit 2")
    );
}

#[tokio::test]
async fn la_rate_limit() {
    let env = start(demo_with(|v| {
        v["limits"] = json!({"la_requests_per_30s": 3})
    }))
    .await;
    let t = env.token(LA_SCOPE).await;
    for _ in 0..3 {
        let (s, _) = env.query(&t, "SecurityIncident | count").await;
        assert_eq!(s, 200);
    }
    let r = env
        .http
        .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .bearer_auth(&t)
        .json(&json!({"query": "SecurityIncident | count"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn role_propagation_window() {
    let env = start(demo_with(|v| {
        v["principals"][0]["propagation_delay"] = json!("2m")
    }))
    .await;
    let t = env.token(LA_SCOPE).await;
    let (s, v) = env.query(&t, "SecurityIncident | count").await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "InsufficientAccessError");
    assert_eq!(v["error"]["innererror"]["code"], "UnauthorizedClient");
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, v) = env
        .call(
            "GET",
            &format!("{}?api-version={SI_VERSION}", env.incidents_url()),
            &arm,
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "AuthorizationFailed");
    env.control("POST", "clock", Some(json!({"advance": "3m"})))
        .await;
    let t = env.token(LA_SCOPE).await;
    let (s, _) = env.query(&t, "SecurityIncident | count").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn ingestion_delay_hides_fresh_rows() {
    let env = start(demo_with(|v| {
        v["workspaces"][0]["ingestion_delay"] = json!("5m");
        v["clock"] = json!("frozen");
    }))
    .await;
    let t = env.token(LA_SCOPE).await;
    let count = |v: &serde_json::Value| v["tables"][0]["rows"][0][0].as_i64().unwrap();
    let (_, v) = env.query(&t, "SecurityAlert | count").await;
    let before = count(&v);
    env.control(
        "POST",
        "events",
        Some(json!({"events": [{"do": "new_alert", "workspace": "law-sentinel", "alert": "D1", "subscription_id": DFC_SUB}]})),
    )
    .await;
    let (_, v) = env.query(&t, "SecurityAlert | count").await;
    assert_eq!(count(&v), before, "the new row is not visible yet");
    env.control("POST", "clock", Some(json!({"advance": "5m"})))
        .await;
    let (_, v) = env.query(&t, "SecurityAlert | count").await;
    assert_eq!(count(&v), before + 1);
}

#[tokio::test]
async fn la_query_returns_dynamic_as_json_strings_and_errors() {
    let env = start_demo().await;
    let t = env.token(LA_SCOPE).await;
    let (s, v) = env
        .query(&t, "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | project IncidentName, Status, AlertIds, Comments")
        .await;
    assert_eq!(s, 200, "{v}");
    let table = &v["tables"][0];
    assert_eq!(table["name"], "PrimaryResult");
    let cols: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["IncidentName", "Status", "AlertIds", "Comments"]);
    assert_eq!(table["columns"][2]["type"], "dynamic");
    let row = &table["rows"][0];
    let ids: serde_json::Value = serde_json::from_str(row[2].as_str().unwrap()).unwrap();
    assert!(ids.is_array());
    let (s, v) = env.query(&t, "SecurityIncident | where").await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "BadArgumentError");
    // timespan applies in addition to the query.
    let r = env
        .http
        .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .bearer_auth(&t)
        .json(&json!({"query": "SecurityAlert | count", "timespan": "PT90M"}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let in_window = v["tables"][0]["rows"][0][0].as_i64().unwrap();
    let (_, all) = env.query(&t, "SecurityAlert | count").await;
    assert!(in_window < all["tables"][0]["rows"][0][0].as_i64().unwrap());
    // GET works too.
    let r = env
        .http
        .get(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .query(&[("query", "SecurityIncident | count"), ("timespan", "P1D")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn la_workspaces_parameter_reads_more_workspaces() {
    let env = start(demo_with(|v| {
        v["workspaces"].as_array_mut().unwrap().push(json!({"name": "law-two", "subscription_id": SUB,
            "resource_group": "rg-sentinel", "customer_id": "22222222-2222-3333-4444-555555555555"}));
        v["events"].as_array_mut().unwrap().push(json!({"at": "-5m", "do": "new_alert", "workspace": "law-two",
            "alert": "W2", "subscription_id": DFC_SUB}));
    }))
    .await;
    let t = env.token(LA_SCOPE).await;
    let count = |v: &serde_json::Value| v["tables"][0]["rows"][0][0].as_i64().unwrap();
    let (_, one) = env.query(&t, "SecurityIncident | count").await;
    let r = env
        .http
        .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .bearer_auth(&t)
        .json(&json!({"query": "SecurityIncident | count", "workspaces": ["law-two"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let both: serde_json::Value = r.json().await.unwrap();
    assert_eq!(count(&both), count(&one) + 1);
    let r = env
        .http
        .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .bearer_auth(&t)
        .json(&json!({"query": "SecurityIncident | count", "workspaces": ["nowhere"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

fn wide_rows(n: usize, width: usize) -> String {
    let s = "x".repeat(width);
    format!("range i from 1 to {n} step 1 | extend s = '{s}'")
}

#[tokio::test]
async fn la_size_limit_gives_partial_error_with_whole_rows() {
    // The answer's exact size, under the default limits.
    let env = start_demo().await;
    let t = env.token(LA_SCOPE).await;
    let (s, size, v) = env.query_bytes(&t, &wide_rows(50, 200)).await;
    assert_eq!(s, 200);
    assert!(v.get("error").is_none(), "{v}");
    drop(env);
    // A limit of exactly that size: the same answer, whole; one row more is cut.
    let env = start(demo_with(|v| v["limits"] = json!({"la_max_bytes": size}))).await;
    let t = env.token(LA_SCOPE).await;
    let (s, got, v) = env.query_bytes(&t, &wide_rows(50, 200)).await;
    assert_eq!((s, got), (200, size));
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["tables"][0]["rows"].as_array().unwrap().len(), 50);
    let (s, got, v) = env.query_bytes(&t, &wide_rows(51, 200)).await;
    assert_eq!(s, 200);
    assert!(got <= size, "{got} > {size}");
    assert_eq!(v["error"]["code"], "PartialError");
    assert_eq!(
        v["error"]["innererror"]["code"],
        "E_QUERY_RESULT_SET_TOO_LARGE"
    );
    let message = v["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("internal data size limit {size}")),
        "{message}"
    );
    let rows = v["tables"][0]["rows"].as_array().unwrap();
    // Whole rows: the error body takes the room of a few of them.
    assert!((40..50).contains(&rows.len()), "{}", rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], i as i64 + 1);
        assert_eq!(r[1].as_str().unwrap().len(), 200);
    }
}

/// The real default limit (104,857,600 bytes) against a 101 MiB answer.
#[tokio::test]
async fn la_default_size_limit_cuts_a_101_mib_answer() {
    let env = start_demo().await;
    let t = env.token(LA_SCOPE).await;
    // Rows of about 1,013 bytes: 105,000 of them are about 101.4 MiB.
    let (s, got, v) = env.query_bytes(&t, &wide_rows(105_000, 1000)).await;
    assert_eq!(s, 200);
    assert!(got <= 104_857_600, "{got}");
    assert!(got > 104_857_600 - 2_000, "{got}");
    assert_eq!(v["error"]["code"], "PartialError");
    assert!(
        v["error"]["innererror"]["message"]
            .as_str()
            .unwrap()
            .contains("internal data size limit 104857600")
    );
    let rows = v["tables"][0]["rows"].as_array().unwrap().len();
    assert!((100_000..105_000).contains(&rows), "{rows}");
}

#[tokio::test]
async fn request_log_carries_response_bytes_and_rows() {
    let env = start(demo_with(|v| v["limits"] = json!({"la_max_rows": 2}))).await;
    let t = env.token(LA_SCOPE).await;
    let since = env.last_seq().await;
    let (_, cut_bytes, cut) = env.query_bytes(&t, "SecurityAlert").await;
    assert_eq!(cut["error"]["code"], "PartialError");
    let (_, count_bytes, _) = env.query_bytes(&t, "SecurityAlert | count").await;
    let (s, bad_bytes, _) = env.query_bytes(&t, "SecurityAlert | where").await;
    assert_eq!(s, 400);
    let arm = env.token(ARM_SCOPE).await;
    let r = env
        .http
        .get(format!("{}?api-version={SI_VERSION}", env.incidents_url()))
        .bearer_auth(&arm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let arm_bytes = r.bytes().await.unwrap().len();
    let log = env
        .control("GET", &format!("requests?since={since}"), None)
        .await;
    let entries: Vec<&serde_json::Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "log_analytics" || e["service"] == "arm")
        .collect();
    let got: Vec<(u64, Option<u64>)> = entries
        .iter()
        .map(|e| (e["response_bytes"].as_u64().unwrap(), e["rows"].as_u64()))
        .collect();
    assert_eq!(
        got,
        [
            (cut_bytes as u64, Some(2)),
            (count_bytes as u64, Some(1)),
            (bad_bytes as u64, None),
            (arm_bytes as u64, None),
        ]
    );
    assert!(entries[2].get("rows").is_none(), "absent, not null");
    // Token answers are counted too.
    let token = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["service"] == "token")
        .unwrap();
    assert!(token["response_bytes"].as_u64().unwrap() > 100);
}

#[tokio::test]
async fn every_row_carries_its_workspaces_id_in_tenant_id() {
    const TWO: &str = "22222222-2222-3333-4444-555555555555";
    let env = start(demo_with(|v| {
        v["workspaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "law-two", "subscription_id": SUB,
            "resource_group": "rg-sentinel", "customer_id": TWO}));
        v["events"].as_array_mut().unwrap().push(
            json!({"at": "-5m", "do": "new_alert", "workspace": "law-two",
            "alert": "W2", "subscription_id": DFC_SUB}),
        );
    }))
    .await;
    // An imported row names another workspace: the service sets TenantId itself.
    env.control(
        "POST",
        "events",
        Some(json!({"events": [{"do": "rows", "table": "SecurityAlert", "workspace": "law-two", "rows": [{
            "TenantId": "99999999-0000-0000-0000-000000000000", "TimeGenerated": "2026-01-01T00:00:00Z",
            "SystemAlertId": "imported-1", "AlertName": "Imported", "Status": "New"}]}]})),
    )
    .await;
    let t = env.token(LA_SCOPE).await;
    let per_tenant = |v: &serde_json::Value| -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = v["tables"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
            .collect();
        out.sort();
        out
    };
    let q = "union SecurityIncident, SecurityAlert | summarize n = count() by TenantId";
    let (_, one) = env.query(&t, q).await;
    let one = per_tenant(&one);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, CUSTOMER_ID);
    let r = env
        .http
        .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", env.base))
        .bearer_auth(&t)
        .json(&json!({"query": q, "workspaces": ["law-two"]}))
        .send()
        .await
        .unwrap();
    let both = per_tenant(&r.json().await.unwrap());
    // law-two: W2's alert row, its incident's row, and the imported row.
    assert_eq!(both, [one[0].clone(), (TWO.to_string(), 3)]);
}

fn at(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// `TimeGenerated` and `ingestion_time()` of one alert row, if visible.
async fn alert_times(
    env: &Env,
    t: &str,
    system_alert_id: &str,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let (s, v) = env
        .query(
            t,
            &format!(
                "SecurityAlert | where SystemAlertId == '{system_alert_id}' \
                 | project TimeGenerated, it = ingestion_time()"
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rows = v["tables"][0]["rows"].as_array().unwrap();
    assert!(rows.len() <= 1);
    rows.first().map(|r| (at(&r[0]), at(&r[1])))
}

fn import(id: &str, time_generated: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({"events": [{"do": "rows", "table": "SecurityAlert", "rows": [{
        "TimeGenerated": time_generated.to_rfc3339(), "SystemAlertId": id,
        "AlertName": "Imported", "Status": "New"}]}]})
}

#[tokio::test]
async fn a_row_imported_late_has_a_late_ingestion_time() {
    let env = start(demo_with(|v| v["clock"] = json!("frozen"))).await;
    let now = at(&env
        .control("POST", "clock", Some(json!({"advance": "1h"})))
        .await["now"]);
    let t = env.token(LA_SCOPE).await;
    let generated = now - chrono::Duration::hours(2);
    env.control("POST", "events", Some(import("late-1", generated)))
        .await;
    let (tg, it) = alert_times(&env, &t, "late-1").await.expect("visible");
    assert_eq!(tg, generated);
    assert_eq!(it, now, "ingested when imported, not when generated");
    // A change feed on ingestion time finds it; one on TimeGenerated would not.
    let (_, v) = env
        .query(
            &t,
            &format!(
                "SecurityAlert | where ingestion_time() > datetime({}) | project SystemAlertId",
                (now - chrono::Duration::minutes(1)).to_rfc3339()
            ),
        )
        .await;
    assert_eq!(v["tables"][0]["rows"], json!([["late-1"]]));
}

#[tokio::test]
async fn a_row_inside_the_ingestion_delay_is_invisible_then_ingested() {
    let env = start(demo_with(|v| {
        v["workspaces"][0]["ingestion_delay"] = json!("5m");
        v["clock"] = json!("frozen");
    }))
    .await;
    let t = env.token(LA_SCOPE).await;
    let now = at(&env.control("GET", "clock", None).await["now"]);
    // Generated a minute ago, imported now: ingested at TimeGenerated + 5m, 4 minutes on.
    let generated = now - chrono::Duration::minutes(1);
    env.control("POST", "events", Some(import("fresh-1", generated)))
        .await;
    assert_eq!(alert_times(&env, &t, "fresh-1").await, None);
    env.control("POST", "clock", Some(json!({"advance": "3m"})))
        .await;
    assert_eq!(alert_times(&env, &t, "fresh-1").await, None);
    env.control("POST", "clock", Some(json!({"advance": "1m"})))
        .await;
    let (tg, it) = alert_times(&env, &t, "fresh-1").await.expect("visible");
    assert_eq!(tg, generated);
    assert_eq!(it, generated + chrono::Duration::minutes(5));
    // A generated row too: its ingestion time is TimeGenerated plus the delay.
    let (_, v) = env
        .query(
            &t,
            "SecurityAlert | where SystemAlertId != 'fresh-1' \
             | summarize n = count(), off = countif(ingestion_time() != TimeGenerated + 5m)",
        )
        .await;
    assert!(v["tables"][0]["rows"][0][0].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["tables"][0]["rows"][0][1], 0, "{v}");
}
