//! Chaos through Microsoft Graph: the proof scenario in a workspace onboarded to the
//! Defender portal (every incident also an XDR incident), synced by the Graph backend on two
//! emulators, once fault-free and once under faults on Graph (5xx, 429 with Retry-After,
//! cut connections, token expiry) until both rest. The final XDR states must be equal
//! (status, classification, marks), no incident may carry two comments with the same mark,
//! and no incident dfcsync closed may hold an unfinished alert.
//!
//! ```sh
//! cargo test -p dfcsync --test graph_chaos
//! # GRAPH_CHAOS_INCIDENTS=200 GRAPH_CHAOS_SEED=7 to vary it
//! ```

mod proof_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dfcsync::config::Config;
use dfcsync::cycle::{Mode, run_cycle};
use proof_support::*;
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The proof scenario with Defender XDR on, the workspace in the Defender portal, and the
/// Graph roles for dfcsync.
fn graph_scenario(n: usize) -> Value {
    let (mut s, _) = scenario(n, "0s", None);
    on_graph(&mut s);
    s
}

/// Per XDR incident: status, classification, its marks sorted.
type View = (String, String, Vec<String>);

fn marks_of(i: &Value) -> Vec<String> {
    let mut m: Vec<String> = i["comments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| dfcsync::model::Mark::find_all(c["comment"].as_str().unwrap_or("")))
        .map(|m| m.to_string())
        .collect();
    m.sort();
    m
}

fn views(state: &Value) -> BTreeMap<String, View> {
    state["xdr_incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                (
                    i["status"].as_str().unwrap_or("").to_owned(),
                    i["classification"].as_str().unwrap_or("").to_owned(),
                    marks_of(i),
                ),
            )
        })
        .collect()
}

fn assert_sound(state: &Value) {
    let alerts: BTreeMap<&str, &str> = state["xdr_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    for i in state["xdr_incidents"].as_array().unwrap() {
        let m = marks_of(i);
        let mut unique = m.clone();
        unique.dedup();
        assert_eq!(unique, m, "a duplicate comment on {}", i["id"]);
        let closed_by_us = m.iter().any(|m| m.starts_with("[dfcsync:close:"));
        if closed_by_us && i["status"] == "resolved" {
            for a in i["alert_ids"].as_array().unwrap() {
                assert_eq!(
                    alerts.get(a.as_str().unwrap()).copied(),
                    Some("resolved"),
                    "incident {} closed by dfcsync with an unfinished alert {a}",
                    i["id"]
                );
            }
        }
    }
}

async fn run(
    n: usize,
    faults: Option<u64>,
) -> (BTreeMap<String, View>, Value, BTreeMap<u16, u64>, u64) {
    let s = graph_scenario(n);
    let emu = start(&s).await;
    let proxy = match faults {
        Some(seed) => Some(Proxy::start(emu.base_url(), 0.15, seed).await),
        None => None,
    };
    let config = Config::parse(
        &config_text(
            &emu,
            proxy.as_ref().map(|p| p.url.as_str()),
            "\n[sync]\nbackend = \"graph\"\n",
        ),
        "graph-chaos.toml",
    )
    .unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(seed) = faults {
        let mut rng = fastrand::Rng::with_seed(seed);
        for c in 0..6 {
            delete(&ctl, &emu, "/_emulator/faults").await;
            let p = |base: f64, rng: &mut fastrand::Rng| base * (0.5 + rng.f64());
            for r in [
                json!({"path": "^/v1.0/security", "status": 503, "probability": p(0.08, &mut rng)}),
                json!({"path": "^/v1.0/security", "status": 429, "retry_after": "1s", "probability": p(0.05, &mut rng)}),
                json!({"path": "oauth2", "status": 503, "probability": p(0.1, &mut rng)}),
                // A status change whose PATCH fails (its comment follows only a PATCH that
                // landed), and a comment that fails after its PATCH landed.
                json!({"method": "PATCH", "status": 500, "probability": p(0.1, &mut rng)}),
                json!({"method": "POST", "path": "/comments$", "status": 503, "probability": p(0.1, &mut rng)}),
            ] {
                post(&ctl, &emu, "/_emulator/faults", r).await;
            }
            let advance = if c % 2 == 1 { "2h" } else { "10s" };
            post(&ctl, &emu, "/_emulator/clock", json!({"advance": advance})).await;
            run_cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {}).await;
        }
        delete(&ctl, &emu, "/_emulator/faults").await;
        if let Some(p) = &proxy {
            p.dropping.store(false, Ordering::Relaxed);
        }
    }
    converge(&conn, &config, 6, Some((&ctl, &emu, "3m"))).await;
    let mut by_status = BTreeMap::new();
    for e in &request_log(&ctl, &emu).await {
        if e["status"] == 400 {
            eprintln!("graph chaos: 400 on {} {}", e["method"], e["path"]);
        }
        *by_status
            .entry(e["status"].as_u64().unwrap_or(0) as u16)
            .or_default() += 1;
    }
    let cut = proxy.map_or(0, |p| p.cut.load(Ordering::Relaxed));
    let state = emu.state();
    (views(&state), state, by_status, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_graph_change_nothing_in_the_end() {
    let n = env_or("GRAPH_CHAOS_INCIDENTS", 40);
    let seed = env_or("GRAPH_CHAOS_SEED", 1);
    let (clean, clean_state, _, _) = run(n, None).await;
    assert_sound(&clean_state);
    assert!(
        clean
            .values()
            .any(|v| v.2.iter().any(|m| m.starts_with("[dfcsync:close:"))),
        "the fault-free run closed something"
    );
    let (faulty, faulty_state, by_status, cut) = run(n, Some(seed)).await;
    eprintln!("graph chaos: {n} incidents, seed {seed}: answers {by_status:?}, cut {cut}");
    let met = |s: u16| by_status.get(&s).copied().unwrap_or(0);
    assert!(met(503) > 0, "no 5xx met: {by_status:?}");
    assert!(met(429) > 0, "no 429 met: {by_status:?}");
    assert!(met(401) > 0, "no expired token met: {by_status:?}");
    assert!(cut > 0, "no connection cut");
    assert_sound(&faulty_state);
    let diffs: Vec<String> = clean
        .iter()
        .filter(|(k, v)| faulty.get(*k) != Some(v))
        .take(10)
        .map(|(k, v)| {
            format!(
                "{k}: fault-free {v:?}\n      with faults {:?}",
                faulty.get(k)
            )
        })
        .collect();
    assert!(
        diffs.is_empty() && clean.len() == faulty.len(),
        "the runs differ:\n{}",
        diffs.join("\n")
    );
}
