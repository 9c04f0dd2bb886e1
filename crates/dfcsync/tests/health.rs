//! Health where the SOC looks (issue 23): dfcsync's rows in `DfcSync_CL` through the
//! emulator's Logs Ingestion API, read back by the workbook's and the two analytics rules'
//! queries taken from the deployment template itself, run by the project's KQL engine
//! behind the emulator's Log Analytics API:
//!
//! - after a sync: the actions, the latencies, the held incidents, the cycles, each equal to
//!   what the cycles did; the stale-cycle rule quiet, then firing once the clock passes three
//!   periods without a cycle;
//! - under faults (the ingestion endpoint down for a while, and Azure's usual faults): no
//!   `action` row lost once the endpoint is back, and no write waits for the rows.

mod proof_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use dfcsync::config::Config;
use dfcsync::cycle::{CycleReport, Mode, ReadMode, Syncer};
use dfcsync::health::HealthSink;
use proof_support::*;
use serde_json::{Value, json};

const DCR: &str = "dcr-0000000000000000000000000000test";

const TEMPLATE: &str = include_str!("../../../deploy/azure/azuredeploy.json");

/// The columns of `DfcSync_CL` (docs/health.md), as the DCR declares them.
fn columns() -> Value {
    // The product's columns; this rule declares all but `TimeGenerated`.
    let cols: Vec<&(&str, &str)> = dfcsync::health::COLUMNS
        .iter()
        .filter(|(n, _)| *n != "TimeGenerated")
        .collect();
    Value::Array(
        cols.iter()
            .map(|(n, t)| json!({"name": n, "type": t}))
            .collect(),
    )
}

/// The proof scenario with a DCR on its workspace and the role to ingest through it.
fn health_scenario(n: usize) -> Value {
    let (mut s, _) = scenario(n, "0s", None);
    s["workspaces"][0]["dcr"] = json!({"immutable_id": DCR, "stream": "Custom-DfcSync_CL",
        "table": "DfcSync_CL", "name": "dfcsync-health", "columns": columns()});
    for p in s["principals"].as_array_mut().unwrap() {
        if p["name"] == "dfcsync" {
            p["roles"].as_array_mut().unwrap().push(json!({
                "role": "Monitoring Metrics Publisher",
                "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Insights/dataCollectionRules/dfcsync-health")
            }));
        }
    }
    s
}

fn health_config(emu: &emulator::EmulatorHandle, base: Option<&str>) -> Config {
    let extra = format!(
        "\n[health]\nendpoint = \"{}/ingest\"\ndcr_immutable_id = \"{DCR}\"\n",
        base.unwrap_or(emu.base_url())
    );
    Config::parse(&config_text(emu, base, &extra), "health.toml").unwrap()
}

/// A string of the template found under `key` (a workbook item's query by its `name`, or a
/// variable).
fn template_query(name: &str) -> String {
    let t: Value = serde_json::from_str(TEMPLATE).unwrap();
    fn find(v: &Value, name: &str) -> Option<String> {
        match v {
            Value::Object(m) => {
                if m.get("name").and_then(Value::as_str) == Some(name)
                    && let Some(q) = m.get("content").and_then(|c| c.get("query"))
                {
                    return q.as_str().map(str::to_owned);
                }
                if let Some(Value::String(q)) = m.get(name) {
                    return Some(q.clone());
                }
                m.values().find_map(|x| find(x, name))
            }
            Value::Array(a) => a.iter().find_map(|x| find(x, name)),
            _ => None,
        }
    }
    find(&t, name).unwrap_or_else(|| panic!("no {name} in the template"))
}

/// Rows of a query through the emulator's Log Analytics API, as objects.
async fn query(conn: &dfcsync::connect::Connection, q: &str) -> Vec<BTreeMap<String, Value>> {
    let (_, id) = workspace(0);
    let body = conn
        .log_analytics
        .query(&id, q, None)
        .await
        .unwrap_or_else(|e| panic!("{q}\n{e}"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let t = &v["tables"][0];
    let names: Vec<String> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            names
                .iter()
                .cloned()
                .zip(r.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// Cycles of one syncer watched by `sink`, until one plans nothing (at most `max`).
async fn cycles(
    conn: &dfcsync::connect::Connection,
    config: &Config,
    sink: &HealthSink,
    max: usize,
    ctl: &reqwest::Client,
    emu: &emulator::EmulatorHandle,
) -> Vec<CycleReport> {
    let mut syncer = Syncer::new(config, ReadMode::Feed);
    syncer.observe(Arc::new(sink.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut out = Vec::new();
    for _ in 0..max {
        let r = syncer
            .cycle(conn, config, Mode::Sync, &stop, &|_, _| {})
            .await;
        let quiet = !r.has_actions();
        out.push(r);
        if quiet {
            break;
        }
        post(ctl, emu, "/_emulator/clock", json!({"advance": "2m"})).await;
    }
    out
}

/// Action outcomes (and repairs) of the cycles, by kind and result.
fn outcomes(reports: &[CycleReport]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for a in reports
        .iter()
        .flat_map(|r| &r.workspaces)
        .filter_map(|w| w.act.as_ref())
    {
        for (o, kind) in a
            .outcomes
            .iter()
            .map(|o| (o, o.kind.as_str()))
            .chain(a.repairs.iter().map(|o| (o, "repair")))
        {
            *m.entry((kind.to_owned(), o.result.label().to_owned()))
                .or_default() += 1;
        }
    }
    m
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbook_and_the_rules_read_what_the_cycles_did() {
    let emu = start(&health_scenario(36)).await;
    let config = health_config(&emu, None);
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    let sink = HealthSink::from_config(&config, &conn.http)
        .unwrap()
        .unwrap();
    let reports = cycles(&conn, &config, &sink, 4, &ctl, &emu).await;
    sink.flush(Duration::from_secs(20)).await;
    let done = outcomes(&reports);
    assert!(!done.is_empty());

    // Actions over time, by kind: every action row, each once.
    let actions = query(&conn, &template_query("actions")).await;
    let mut by_kind: BTreeMap<String, f64> = BTreeMap::new();
    for r in &actions {
        *by_kind
            .entry(r["Action"].as_str().unwrap().to_owned())
            .or_default() += num(&r["Actions"]);
    }
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for ((kind, _), n) in &done {
        *want.entry(kind.clone()).or_default() += *n as f64;
    }
    assert_eq!(by_kind, want, "{actions:?}");

    // The latency of the applied actions, per kind: counted, and between the alerts' change
    // and now (the alerts of the proof scenario changed about 60 hours ago).
    let latency = query(&conn, &template_query("latency")).await;
    for r in &latency {
        let kind = r["Action"].as_str().unwrap();
        let applied = done
            .get(&(kind.to_owned(), "applied".to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(num(&r["Actions"]) as usize, applied, "{r:?}");
        let (p50, p99) = (
            num(&r["percentile_LatencySeconds_50"]),
            num(&r["percentile_LatencySeconds_99"]),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 < 4.0 * 86_400.0, "{r:?}");
    }
    assert_eq!(
        latency.len(),
        done.keys()
            .filter(|(_, r)| r == "applied")
            .map(|(k, _)| k)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );

    // The held incidents: those of the last cycle's plan.
    let held = query(&conn, &template_query("held")).await;
    let last_held: std::collections::BTreeSet<String> = reports
        .iter()
        .flat_map(|r| &r.workspaces)
        .filter_map(|w| w.plan.as_ref())
        .flat_map(|p| p.held.iter().map(|h| h.incident.clone()))
        .collect();
    assert_eq!(held.len(), last_held.len(), "{held:?}");
    assert!(
        held.iter()
            .all(|r| !r["Reason"].as_str().unwrap_or("").is_empty())
    );

    // The cycles, one row each, and the workspace's last success.
    let cyc = query(&conn, &template_query("cycles")).await;
    assert_eq!(cyc.len(), reports.len());
    let ws = query(&conn, &template_query("workspaces")).await;
    assert_eq!(ws.len(), 1, "{ws:?}");

    // The rules: nothing to say now; three frequent periods (15 min) without a cycle later,
    // the stale rule fires; the held rule needs a day of holds.
    let stale = template_query("staleQuery").replace("{0}", "45");
    let held_rule = template_query("heldQuery");
    assert!(query(&conn, &stale).await.is_empty());
    assert!(query(&conn, &held_rule).await.is_empty());
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "50m"})).await;
    assert_eq!(
        query(&conn, &stale).await.len(),
        1,
        "a missed cycle fires the rule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingestion_outage_loses_no_action_row_and_delays_no_write() {
    let emu = start(&health_scenario(36)).await;
    let config = health_config(&emu, None);
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    // The ingestion endpoint fails, and each of its answers takes 8 s.
    post(
        &ctl,
        &emu,
        "/_emulator/faults",
        json!({"path": "^/ingest", "status": 503, "delay": "8s", "times": 100000}),
    )
    .await;
    let sink = HealthSink::from_config(&config, &conn.http)
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let reports = cycles(&conn, &config, &sink, 4, &ctl, &emu).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(7),
        "the cycles waited for the health rows: {took:?}"
    );
    let done = outcomes(&reports);
    let actions: usize = done.values().sum();
    assert!(actions > 0);
    assert!(
        sink.stats()
            .buffered
            .load(std::sync::atomic::Ordering::Relaxed)
            >= actions as u64,
        "kept while the endpoint fails"
    );
    // The endpoint comes back: every action row lands.
    delete(&ctl, &emu, "/_emulator/faults").await;
    sink.flush(Duration::from_secs(60)).await;
    let rows = query(
        &conn,
        "DfcSync_CL | where Kind == \"action\" | summarize n = count() by Action, Result",
    )
    .await;
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &rows {
        got.insert(
            (
                r["Action"].as_str().unwrap().to_owned(),
                r["Result"].as_str().unwrap().to_owned(),
            ),
            num(&r["n"]) as usize,
        );
    }
    assert_eq!(got, done, "every action row once");
    assert_eq!(
        sink.stats()
            .rows_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_the_action_rows_match_the_outcomes() {
    let emu = start(&health_scenario(60)).await;
    let proxy = Proxy::start(emu.base_url(), 0.15, 11).await;
    let config = health_config(&emu, Some(&proxy.url));
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    for r in [
        json!({"path": "^/ingest", "status": 503, "probability": 0.3}),
        json!({"path": "Microsoft.SecurityInsights", "status": 503, "probability": 0.05}),
        json!({"status": 429, "retry_after": "1s", "probability": 0.02}),
    ] {
        post(&ctl, &emu, "/_emulator/faults", r).await;
    }
    let sink = HealthSink::from_config(&config, &conn.http)
        .unwrap()
        .unwrap();
    let mut reports = cycles(&conn, &config, &sink, 3, &ctl, &emu).await;
    delete(&ctl, &emu, "/_emulator/faults").await;
    proxy
        .dropping
        .store(false, std::sync::atomic::Ordering::Relaxed);
    reports.extend(cycles(&conn, &config, &sink, 4, &ctl, &emu).await);
    sink.flush(Duration::from_secs(60)).await;
    let done = outcomes(&reports);
    let rows = query(
        &conn,
        "DfcSync_CL | where Kind == \"action\" | summarize n = count() by Action, Result",
    )
    .await;
    let got: BTreeMap<(String, String), usize> = rows
        .iter()
        .map(|r| {
            (
                (
                    r["Action"].as_str().unwrap().to_owned(),
                    r["Result"].as_str().unwrap().to_owned(),
                ),
                num(&r["n"]) as usize,
            )
        })
        .collect();
    // A call whose answer was lost after it landed is sent again: the service does not
    // deduplicate, so a row may be there twice; none is missing.
    for (k, n) in &done {
        assert!(
            got.get(k).copied().unwrap_or(0) >= *n,
            "{k:?}: {got:?} vs {done:?}"
        );
    }
    let cyc = query(&conn, "DfcSync_CL | where Kind == \"cycle\" | count").await;
    assert!(num(&cyc[0]["Count"]) as usize >= reports.len());
}
