//! The Logs Ingestion API and a DCR's custom table (issue 23): rows posted to the DCR's
//! stream become `DfcSync_CL` rows, typed by the declared columns and queryable after the
//! workspace's ingestion delay; the service's checks and errors.

use std::io::Write;

use serde_json::{Value, json};

use crate::common::*;

const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";
const DCR: &str = "dcr-00000000000000000000000000000001";

fn ingest_demo(f: impl FnOnce(&mut Value)) -> emulator::Scenario {
    demo_with(|v| {
        v["clock"] = json!("frozen");
        v["workspaces"][0]["ingestion_delay"] = json!("30s");
        v["workspaces"][0]["dcr"] = json!({
            "immutable_id": DCR, "stream": "Custom-DfcSync_CL", "table": "DfcSync_CL",
            "columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "RowType", "type": "string"},
                {"name": "Count", "type": "int"}, {"name": "Details", "type": "dynamic"}]});
        let scope = format!(
            "/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Insights/dataCollectionRules/dfcsync-dcr"
        );
        v["principals"][0]["roles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "Monitoring Metrics Publisher", "scope": scope}));
        f(v)
    })
}

impl Env {
    fn ingest_url(&self, dcr: &str, stream: &str) -> String {
        format!(
            "{}/ingest/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01",
            self.base
        )
    }

    async fn ingest(
        &self,
        token: &str,
        url: &str,
        body: Vec<u8>,
        gzip: bool,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("Content-Type", "application/json");
        if gzip {
            r = r.header("Content-Encoding", "gzip");
        }
        let r = r.body(body).send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        let text = r.text().await.unwrap();
        (s, h, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn rows_posted_to_the_stream_are_queryable_after_the_ingestion_delay() {
    let env = start(ingest_demo(|_| {})).await;
    assert_eq!(
        env.control("GET", "endpoints", None).await["logs_ingestion"],
        format!("{}/ingest", env.base)
    );
    let t = env.token(MONITOR_SCOPE).await;
    let url = env.ingest_url(DCR, "Custom-DfcSync_CL");
    let rows = json!([
        {"TimeGenerated": "2026-11-27T11:59:00Z", "RowType": "heartbeat", "Count": 3,
         "Details": {"replica": "r1"}, "Undeclared": "dropped"},
        {"RowType": "action", "Count": "4"},
    ]);
    let (s, _, v) = env
        .ingest(&t, &url, serde_json::to_vec(&rows).unwrap(), false)
        .await;
    assert_eq!(s, 204, "{v}");
    // gzip is accepted.
    let more = json!([{"RowType": "hold"}]);
    let (s, _, v) = env
        .ingest(&t, &url, gz(&serde_json::to_vec(&more).unwrap()), true)
        .await;
    assert_eq!(s, 204, "{v}");
    let la = env.token(LA_SCOPE).await;
    let q = "DfcSync_CL | project TimeGenerated, RowType, Count, Details, TenantId, Type, it = ingestion_time() | order by RowType asc";
    let (s, v) = env.query(&la, q).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["tables"][0]["rows"].as_array().unwrap().is_empty(), "{v}");
    env.control("POST", "clock", Some(json!({"advance": "30s"})))
        .await;
    let (s, v) = env.query(&la, q).await;
    assert_eq!(s, 200, "{v}");
    let cols: Vec<(&str, &str)> = v["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("TimeGenerated", "datetime"),
            ("RowType", "string"),
            ("Count", "int"),
            ("Details", "dynamic"),
            ("TenantId", "string"),
            ("Type", "string"),
            ("it", "datetime"),
        ]
    );
    let rows = v["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1], "action");
    assert_eq!(rows[0][2], 4);
    assert_eq!(rows[0][0], "2026-11-27T12:00:00Z");
    assert_eq!(rows[1][1], "heartbeat");
    assert_eq!(rows[1][0], "2026-11-27T11:59:00Z");
    assert_eq!(rows[1][3], "{\"replica\":\"r1\"}");
    assert_eq!(rows[1][4], CUSTOMER_ID);
    assert_eq!(rows[1][5], "DfcSync_CL");
    assert_eq!(rows[1][6], "2026-11-27T12:00:30Z");
    // The state shows the rows received.
    let st = env.state();
    let got = st["tables"]["DfcSync_CL"].as_array().unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[0].get("Undeclared").is_none());
}

#[tokio::test]
async fn ingestion_checks_token_role_rule_stream_size_type_and_rate() {
    let env = start(ingest_demo(|v| {
        v["limits"] = json!({"logs_ingestion_requests_per_minute": 3});
    }))
    .await;
    let t = env.token(MONITOR_SCOPE).await;
    let url = env.ingest_url(DCR, "Custom-DfcSync_CL");
    let one = serde_json::to_vec(&json!([{"RowType": "x"}])).unwrap();
    let code = |h: &reqwest::header::HeaderMap| {
        h.get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let arm = env.token(ARM_SCOPE).await;
    let (s, _, _) = env.ingest(&arm, &url, one.clone(), false).await;
    assert_eq!(s, 401);
    let (s, h, v) = env
        .ingest(
            &t,
            &env.ingest_url("dcr-ffff", "Custom-DfcSync_CL"),
            one.clone(),
            false,
        )
        .await;
    assert_eq!((s, code(&h).as_str()), (404, "NotFound"));
    assert_eq!(
        v["error"]["message"],
        "Data collection rule with immutable Id 'dcr-ffff' not found."
    );
    let mi = env.token_for("mi-dfcsync", MONITOR_SCOPE).await;
    let (s, h, v) = env.ingest(&mi, &url, one.clone(), false).await;
    assert_eq!((s, code(&h).as_str()), (403, "OperationFailed"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The authentication token provided does not have access to ingest data")
    );
    // Three requests a minute: the stream, size and type errors count.
    let (s, h, _) = env
        .ingest(&t, &env.ingest_url(DCR, "Custom-Other"), one.clone(), false)
        .await;
    assert_eq!((s, code(&h).as_str()), (404, "NotFound"));
    // Over 1 MB uncompressed, even when the gzip is small.
    let big = serde_json::to_vec(&json!([{"RowType": "x".repeat(1_100_000)}])).unwrap();
    let (s, h, _) = env.ingest(&t, &url, gz(&big), true).await;
    assert_eq!((s, code(&h).as_str()), (413, "ContentLengthLimitExceeded"));
    let bad = serde_json::to_vec(&json!([{"Count": "many"}])).unwrap();
    let (s, _, v) = env.ingest(&t, &url, bad, false).await;
    assert_eq!(s, 400, "{v}");
    let (s, h, _) = env.ingest(&t, &url, one.clone(), false).await;
    assert_eq!(s, 429);
    assert!(h.get("retry-after").is_some());
    // Bad DCRs are refused with their path.
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["workspaces"][0]["dcr"] = json!({"immutable_id": DCR, "stream": "Custom-X", "table": "DfcSync",
        "columns": {}});
    let e = emulator::Scenario::from_json_value(v).unwrap_err();
    assert_eq!(e.path(), "workspaces[0].dcr.table");
}
