//! dfcsync's Graph backend end to end against the emulator's Microsoft Graph: the client
//! (paging, filters, the `Prefer` header, errors, 429), and the backend's cycles (the demo's
//! stories in a tenant without Sentinel, with and without XDR's roll-up, a concurrent
//! analyst edit, token expiry), checked in the emulator's state and request log.

use std::time::Duration;

use serde_json::{Value, json};

use dfcsync::azure::AzureError;
use dfcsync::azure::auth::AuthOptions;
use dfcsync::azure::graph::{GraphClient, IncidentUpdate};
use dfcsync::azure::http::{AzureHttp, HttpOptions};
use dfcsync::config::Config;
use dfcsync::connect::Connection;

const DEMO: &str = include_str!("../demo/scenario.json");

fn fast_http() -> HttpOptions {
    HttpOptions {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        access_retries: 0,
        access_retry_delay: Duration::from_millis(5),
        ..HttpOptions::default()
    }
}

/// The demo's stories in a tenant with Defender XDR and no Sentinel: every alert without a
/// workspace, the analysts' Sentinel edits made in XDR instead, the rows-only incident
/// and the alerts added to incidents in Sentinel dropped. `dfcsync` holds the two Graph application roles.
fn xdr_tenant(f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["defender_xdr"] = json!(true);
    v["workspaces"] = json!([]);
    v["principals"][0]["graph_permissions"] =
        json!(["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All"]);
    v["limits"] = json!({"graph_requests_per_minute": 100000});
    let events: Vec<Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        // Rows are Log Analytics only; an alert is added to an incident in Sentinel only (a
        // tenant without Sentinel has single-alert incidents: the portal test has the others).
        .filter(|e| e["do"] != "rows" && e["do"] != "incident_add_alert")
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("workspace");
            }
            if e["do"] == "incident_status" {
                let status = match e["status"].as_str().unwrap() {
                    "Active" => "inProgress",
                    "Closed" => "resolved",
                    _ => "active",
                };
                let mut x = json!({"at": e["at"], "do": "xdr_incident_status",
                    "incident": e["incident"], "status": status, "by": e["by"]});
                if status == "resolved" {
                    x["classification"] = json!("falsePositive");
                    x["determination"] = json!("other");
                }
                e = x;
            }
            e
        })
        .collect();
    v["events"] = Value::Array(events);
    f(&mut v);
    v.to_string()
}

struct Env {
    emu: emulator::EmulatorHandle,
    #[allow(dead_code)] // read by the cycle tests
    config: Config,
    conn: Connection,
    http: reqwest::Client,
}

impl Env {
    async fn start(scenario: &str, extra_config: &str) -> Env {
        let scenario = emulator::Scenario::from_json_str(scenario).expect("scenario");
        let emu = emulator::Emulator::start(scenario, emulator::StartOptions::default())
            .await
            .expect("emulator");
        let config = Config::parse(
            &format!(
                "{}\n[sync]\nbackend = \"graph\"\n{extra_config}",
                emu.config_toml()
            ),
            "<test>",
        )
        .expect("config");
        let conn = Connection::open_with(&config, AuthOptions::isolated(), fast_http())
            .await
            .expect("connection");
        let http = AzureHttp::builder(&conn.cloud)
            .ca_pem(emu.ca_pem().as_bytes())
            .build()
            .unwrap()
            .reqwest_client()
            .clone();
        Env {
            emu,
            config,
            conn,
            http,
        }
    }

    fn graph(&self) -> &GraphClient {
        self.conn.graph.as_ref().expect("a Graph client")
    }

    async fn control(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/_emulator/{path}", self.emu.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    async fn requests(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/_emulator/requests", self.emu.base_url()))
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    /// The Graph requests of the log, as `METHOD path status`.
    async fn graph_requests(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .filter(|r| r["service"] == "graph")
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or(""),
                    r["status"]
                )
            })
            .collect()
    }

    fn xdr_incidents(&self) -> Vec<Value> {
        self.emu.state()["xdr_incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn the_client_pages_filters_and_writes() {
    // 60 more alerts, each its own incident: more than one page of 50.
    let scenario = xdr_tenant(|v| {
        let events = v["events"].as_array_mut().unwrap();
        for i in 0..60 {
            events.push(
                json!({"at": "-3h", "do": "new_alert", "alert": format!("bulk-{i}"),
                "subscription_id": "00000000-0000-0000-0000-000000000002",
                "resource_group": "rg-app", "location": "westeurope",
                "display_name": format!("Bulk alert {i}"), "severity": "Low"}),
            );
        }
    });
    let env = Env::start(&scenario, "").await;
    let g = env.graph();
    let all = g.list_incidents(None).await.unwrap();
    let expected = env.xdr_incidents().len();
    assert!(expected > 60, "{expected}");
    assert_eq!(all.value.len(), expected, "every page followed");
    let server_now = all.server_now.expect("the Date header");
    let platform_now =
        chrono::DateTime::parse_from_rfc3339(env.emu.state()["now"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!(
        (platform_now - server_now).num_seconds().abs() <= 2,
        "the Date header is the service's clock: {server_now} vs {platform_now}"
    );
    let mut sorted = all.value.clone();
    sorted
        .sort_by(|a, b| (&a.last_update_date_time, &a.id).cmp(&(&b.last_update_date_time, &b.id)));
    assert_eq!(sorted, all.value, "sorted on the client");
    let log = env.graph_requests().await;
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("GET /v1.0/security/incidents "))
            .count(),
        expected.div_ceil(50),
        "{log:?}"
    );
    // A filter on the time of the last update.
    let since = server_now - chrono::TimeDelta::minutes(100);
    let recent = g
        .list_incidents(Some(&format!(
            "lastUpdateDateTime ge {}",
            dfcsync::azure::graph::odata_time(since)
        )))
        .await
        .unwrap();
    assert!(!recent.value.is_empty() && recent.value.len() < expected);
    assert!(recent.value.iter().all(|i| {
        chrono::DateTime::parse_from_rfc3339(&i.last_update_date_time).unwrap() >= since
    }));
    // DfC alerts changed since: serviceSource is readable (the Prefer header).
    let changed = g.dfc_alerts_updated_since(since).await.unwrap();
    assert!(!changed.value.is_empty());
    assert!(
        changed
            .value
            .iter()
            .all(|a| a.service_source.as_deref() == Some("microsoftDefenderForCloud"))
    );
    // Get, alerts, PATCH, comment.
    let id = &all.value[0].id;
    let one = g.get_incident(id).await.unwrap();
    assert_eq!(&one.value.id, id);
    let alerts = g.incident_alerts(id).await.unwrap();
    assert!(!alerts.is_empty());
    let written = g
        .update_incident(
            id,
            &IncidentUpdate {
                status: Some("inProgress".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written.status, "inProgress");
    let comments = g
        .post_comment(id, "hello [dfcsync:notice:0]")
        .await
        .unwrap();
    assert!(comments.iter().any(|c| c.comment.contains("hello")));
    assert_eq!(
        env.conn.stats.total(dfcsync::azure::error::Service::Graph) as usize,
        log.len() + 6,
        "requests counted under the service graph"
    );
}

#[tokio::test]
async fn graph_errors_name_the_missing_role_and_429_waits_retry_after() {
    let scenario = xdr_tenant(|v| {
        v["principals"][0]["graph_permissions"] = json!(["SecurityIncident.Read.All"]);
    });
    let env = Env::start(&scenario, "").await;
    let g = env.graph();
    let id = g.list_incidents(None).await.unwrap().value[0].id.clone();
    let e = g
        .update_incident(
            &id,
            &IncidentUpdate {
                status: Some("inProgress".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AzureError::Forbidden { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("SecurityIncident.ReadWrite.All") && text.contains("appRoleAssignments"),
        "{text}"
    );
    // A 429 with Retry-After: waited, then answered.
    env.control(
        "faults",
        json!({"method": "GET", "path": "/security/incidents$", "status": 429, "times": 1, "retry_after": "1s"}),
    )
    .await;
    let started = std::time::Instant::now();
    g.list_incidents(None).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert!(
        env.graph_requests()
            .await
            .iter()
            .any(|l| l == "GET /v1.0/security/incidents 429")
    );
}
