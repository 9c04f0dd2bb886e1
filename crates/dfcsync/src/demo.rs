//! `dfcsync demo`: the whole job on the built-in emulator, in a few seconds.
//!
//! It starts the emulator with a scenario that tells the seed's story (the six rows of the
//! platform's behaviour, and the cases where dfcsync differs from the original query), shows
//! the incidents, the plan, the sync, the incidents after; then an analyst reopens an
//! incident dfcsync closed, and a second cycle leaves it alone (the original query would
//! close it again every hour). Nothing here exists only for the demo: it is the same
//! `Connection` and `run_cycle` as `dfcsync sync`, pointed at the emulator by configuration.
//!
//! `--backend graph` tells the same stories in a tenant with Defender XDR and no Sentinel
//! (`demo/scenario_xdr.json`): the incidents are XDR incidents, read and written through
//! Microsoft Graph (docs/graph.md), and the analysts act in the Defender portal.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use dfcsync::azure::auth::AuthOptions;
use dfcsync::azure::http::{AzureHttp, HttpOptions};
use dfcsync::config::{Backend, Config};
use dfcsync::connect::Connection;
use dfcsync::cycle::{Mode, ReadMode, Syncer, run_cycle};
use dfcsync::report;

/// The deployment template: its workbook's queries make the demo's last table.
const TEMPLATE: &str = include_str!("../../../deploy/azure/azuredeploy.json");

/// The scenario: one workspace, one incident per story.
pub const SCENARIO: &str = include_str!("../demo/scenario.json");
/// The same stories in a tenant with Defender XDR and no Sentinel.
pub const SCENARIO_XDR: &str = include_str!("../demo/scenario_xdr.json");

/// What each alert of the scenario stands for.
const STORIES: &[(&str, &str)] = &[
    ("new", "new alert in DfC"),
    ("progress", "DfC: set in progress"),
    ("dismissed", "DfC: dismissed"),
    ("resolved", "DfC: resolved"),
    ("analyst-active", "Sentinel: analyst set it Active"),
    ("analyst-closed", "Sentinel: analyst closed it"),
    ("mixed-1", "DfC: one Resolved, one Dismissed"),
    ("busy-1", "DfC: one InProgress, one Resolved"),
    ("old", "created 40 days ago, resolved today"),
    ("noticed", "DfC resolved, then analyst set Active"),
];

/// The stories that read differently in a tenant without Sentinel (analysts act in the
/// Defender portal; an alert is added to an incident only in Sentinel, so the second alert
/// of the two-alert stories has no incident there).
const XDR_STORIES: &[(&str, &str)] = &[
    (
        "analyst-active",
        "Defender portal: analyst set it In progress",
    ),
    ("analyst-closed", "Defender portal: analyst resolved it"),
    ("mixed-1", "DfC: resolved (its pair has no incident)"),
    ("busy-1", "DfC: set in progress (its pair has no incident)"),
    ("noticed", "DfC resolved, then analyst set In progress"),
];

pub async fn run(backend: Backend) -> Result<ExitCode> {
    let graph = backend == Backend::Graph;
    let scenario = emulator::Scenario::from_json_str(if graph { SCENARIO_XDR } else { SCENARIO })
        .context("the demo scenario")?;
    let emu = emulator::Emulator::start(scenario, emulator::StartOptions::default())
        .await
        .context("starting the emulator")?;
    if graph {
        println!(
            "dfcsync demo --backend graph: a tenant with Defender for Cloud in Defender XDR and no Sentinel;\nthe built-in emulator of Entra ID and Microsoft Graph runs at {}",
            emu.base_url()
        );
    } else {
        println!(
            "dfcsync demo: the built-in emulator of Entra ID, ARM and Log Analytics runs at {}",
            emu.base_url()
        );
    }
    println!("(the same configuration, with a real cloud and credential, runs against Azure)\n");
    let mut text = emu.config_toml();
    if graph {
        text.push_str("\n[sync]\nbackend = \"graph\"\n");
    } else {
        // dfcsync's own rows go to the workspace's DfcSync_CL, as a deployment's do.
        text.push_str(&format!(
            "\n[health]\nendpoint = \"{}/ingest\"\ndcr_immutable_id = \"dcr-00000000000000000000000000demo\"\n",
            emu.base_url()
        ));
    }
    let config = Config::parse(&text, "<demo configuration>")?;
    let conn = Connection::open_with(&config, AuthOptions::isolated(), HttpOptions::default())
        .await
        .context("connecting to the emulator")?;
    let stop = Arc::new(AtomicBool::new(false));
    let health =
        dfcsync::health::HealthSink::from_config(&config, &conn.http).context("the health rows")?;
    // One syncer for the sync cycles, watched by the health sink.
    let sync_cycle = async |syncer: &mut Syncer| {
        syncer
            .cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {})
            .await
    };
    let mut syncer = Syncer::new(&config, ReadMode::Feed);
    if let Some(h) = &health {
        syncer.observe(Arc::new(h.clone()));
    }

    let table = |state: &Value| {
        if graph {
            xdr_incidents_table(state)
        } else {
            incidents_table(state)
        }
    };
    println!("== Incidents before\n{}", table(&emu.state()));

    let plan = run_cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {}).await;
    println!("== dfcsync plan\n{}", report::cycle_table(&plan));

    let first = sync_cycle(&mut syncer).await;
    println!("== dfcsync sync\n{}", report::summary_line(&first));
    println!("\n== Incidents after\n{}", table(&emu.state()));

    // An analyst reopens the incident dfcsync closed because its alert was resolved.
    let state = emu.state();
    let (reopened, event) = if graph {
        (
            xdr_incident_of(&state, "resolved"),
            json!({"do": "xdr_incident_status", "incident": "resolved", "status": "inProgress", "by": "analyst@contoso.com"}),
        )
    } else {
        (
            incident_of(&state, "resolved"),
            json!({"do": "incident_status", "incident": "resolved", "status": "Active", "by": "analyst@contoso.com"}),
        )
    };
    let client = AzureHttp::builder(&conn.cloud)
        .ca_pem(emu.ca_pem().as_bytes())
        .build()?;
    client
        .reqwest_client()
        .post(format!("{}/_emulator/events", emu.base_url()))
        .header("content-type", "application/json")
        .body(json!({ "events": [event] }).to_string())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .context("reopening an incident in the emulator")?;
    println!(
        "== An analyst reopens incident #{} on purpose; its alert is still Resolved.",
        reopened.map_or_else(|| "?".to_owned(), |n| n.to_string())
    );
    let second = sync_cycle(&mut Syncer::new(&config, ReadMode::Feed)).await;
    println!("== dfcsync sync, again\n{}", report::summary_line(&second));
    println!(
        "The original query would close it again, every hour; dfcsync finds its own mark and leaves it.\n"
    );
    if let Some(h) = &health {
        h.flush(std::time::Duration::from_secs(10)).await;
        let ws = conn
            .sentinel
            .workspace(
                &config.file.workspaces[0].subscription_id,
                &config.file.workspaces[0].resource_group,
                &config.file.workspaces[0].name,
            )
            .await?;
        for (item, title) in [
            (
                "latency",
                "what dfcsync did, and how long the incidents trailed their alerts",
            ),
            ("held", "the incidents dfcsync holds, and why"),
        ] {
            let query = workbook_query(item).context("the workbook's query")?;
            let answer = conn
                .log_analytics
                .query(&ws.customer_id, &query, None)
                .await
                .with_context(|| format!("running the workbook's {item} query"))?;
            println!(
                "== The workbook ({title}), from DfcSync_CL:\n{}",
                answer_table(&answer)?
            );
        }
    }

    let ok = plan.succeeded() && first.succeeded() && second.succeeded();
    emu.shutdown().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The query of the workbook item `name` in the deployment template.
fn workbook_query(name: &str) -> Option<String> {
    let t: Value = serde_json::from_str(TEMPLATE).ok()?;
    fn find<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
        match v {
            Value::Object(m) => {
                if m.get("name").and_then(Value::as_str) == Some(name)
                    && let Some(q) = m.get("content").and_then(|c| c.get("query"))
                {
                    return Some(q);
                }
                m.values().find_map(|x| find(x, name))
            }
            Value::Array(a) => a.iter().find_map(|x| find(x, name)),
            _ => None,
        }
    }
    find(&t, name)?.as_str().map(str::to_owned)
}

/// A Log Analytics answer as a table.
fn answer_table(body: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(body).context("the query's answer")?;
    let table = &v["tables"][0];
    let names: Vec<&str> = table["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let mut t = dfcsync::report::new_table(&names);
    for row in table["rows"].as_array().into_iter().flatten() {
        t.add_row(
            row.as_array()
                .into_iter()
                .flatten()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() != 0.0) => {
                        format!("{:.1}", n.as_f64().unwrap_or_default())
                    }
                    other => other.to_string(),
                })
                .collect::<Vec<_>>(),
        );
    }
    Ok(t.to_string())
}

/// The XDR incident of the alert with this scenario handle.
fn xdr_incident_of(state: &Value, key: &str) -> Option<i64> {
    let id = state["xdr_alerts"]
        .as_array()?
        .iter()
        .find(|a| a["alert"] == key)?["incidentId"]
        .as_str()?
        .to_owned();
    id.parse().ok()
}

/// The XDR incidents of the emulator's state, with the DfC status of their alerts.
fn xdr_incidents_table(state: &Value) -> String {
    let mut t = dfcsync::report::new_table(&[
        "#",
        "story",
        "XDR incident",
        "classification",
        "alerts in DfC",
    ]);
    let empty = Vec::new();
    let xdr_alerts = state["xdr_alerts"].as_array().unwrap_or(&empty);
    let dfc = state["alerts"].as_array().unwrap_or(&empty);
    for i in state["xdr_incidents"].as_array().unwrap_or(&empty) {
        let keys: Vec<&str> = i["alert_ids"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|id| xdr_alerts.iter().find(|a| a["id"] == *id))
            .filter_map(|a| a["alert"].as_str())
            .collect();
        let story = keys
            .iter()
            .find_map(|k| XDR_STORIES.iter().chain(STORIES).find(|(s, _)| s == k))
            .map_or("", |(_, s)| s);
        let statuses: Vec<&str> = keys
            .iter()
            .filter_map(|k| dfc.iter().find(|a| a["key"] == *k))
            .filter_map(|a| a["status"].as_str())
            .collect();
        let class = match (i["classification"].as_str(), i["determination"].as_str()) {
            (Some("unknown") | None, _) => String::new(),
            (Some(c), Some(d)) => format!("{c} / {d}"),
            (Some(c), None) => c.to_owned(),
        };
        t.add_row(vec![
            i["id"].as_str().unwrap_or("?").to_owned(),
            story.to_owned(),
            i["status"].as_str().unwrap_or("?").to_owned(),
            class,
            statuses.join(", "),
        ]);
    }
    format!("{t}\n")
}

fn incident_of(state: &Value, key: &str) -> Option<i64> {
    let sysid = state["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["system_alert_id"]
        .as_str()?
        .to_owned();
    state["incidents"].as_array()?.iter().find(|i| {
        i["alert_ids"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(sysid.as_str())))
    })?["number"]
        .as_i64()
}

/// The incidents of the emulator's state, with the DfC status of their alerts.
fn incidents_table(state: &Value) -> String {
    let alerts: Vec<&Value> = state["alerts"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut t =
        dfcsync::report::new_table(&["#", "story", "incident", "classification", "alerts in DfC"]);
    let mut incidents: Vec<&Value> = state["incidents"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    incidents.sort_by_key(|i| i["number"].as_i64());
    for i in incidents {
        let ids: Vec<&str> = i["alert_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mine: Vec<&&Value> = ids
            .iter()
            .filter_map(|id| {
                alerts
                    .iter()
                    .find(|a| a["system_alert_id"].as_str() == Some(id))
            })
            .collect();
        let story = mine
            .iter()
            .find_map(|a| STORIES.iter().find(|(k, _)| a["key"].as_str() == Some(k)))
            .map_or("an alert missing from SecurityAlert", |(_, s)| s);
        let mut statuses: Vec<String> = mine
            .iter()
            .map(|a| a["status"].as_str().unwrap_or("?").to_owned())
            .collect();
        for _ in mine.len()..ids.len() {
            statuses.push("(no such alert)".into());
        }
        let class = match (
            i["classification"].as_str(),
            i["classification_reason"].as_str(),
        ) {
            (Some(c), Some(r)) if !c.is_empty() => format!("{c} / {r}"),
            (Some(c), _) => c.to_owned(),
            _ => String::new(),
        };
        t.add_row(vec![
            i["number"].to_string(),
            story.to_owned(),
            i["status"].as_str().unwrap_or("?").to_owned(),
            class,
            statuses.join(", "),
        ]);
    }
    format!("{t}\n")
}
