//! Throughput against ARM's write bucket (docs/benchmarks.md, "Throughput against ARM's
//! write bucket"): N incidents all due for a close, the emulator's ARM write bucket scaled
//! down (bucket B, refill R per second), dfcsync told the same refill rate
//! (`HttpOptions::arm_write_rate`), one sync cycle. Reports the achieved write rate against
//! R, the writes per closed incident (the incident PUT and the audit comment PUT: 2) and
//! the 429s met.
//!
//! ```sh
//! cargo test -p dfcsync --release --test bench_throughput -- --ignored --nocapture
//! ```
//!
//! Environment: `THROUGHPUT_INCIDENTS` (default 2000), `THROUGHPUT_BUCKET` (20),
//! `THROUGHPUT_RATE` (20 per second), `THROUGHPUT_CONCURRENCY` (the configuration's
//! `sync.concurrency`, default 8).

mod proof_support;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use dfcsync::config::Config;
use dfcsync::cycle::{Mode, run_cycle};
use proof_support::{DFC_SUB, NOW, connect, control, fast, request_log, scenario, start};
use serde_json::{Value, json};

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `n` incidents of one alert each, every alert Resolved: each incident is due for a close.
fn closing_scenario(n: usize, bucket: u64, rate: f64) -> Value {
    let big = json!({"bucket": 1_000_000, "per_second": 1_000_000});
    let limits = json!({
        "arm_reads": big,
        "arm_writes": {"bucket": bucket, "per_second": rate},
        "la_requests_per_30s": 1_000_000,
        "default_page_size": 1000
    });
    let (mut s, _) = scenario(0, "0s", Some(limits));
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let mut events = Vec::with_capacity(2 * n);
    // Oldest first, 10 s apart, all inside max_age and past the ingestion delay.
    let start = now - TimeDelta::seconds(10 * n as i64 + 3600);
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for i in 0..n {
        let t0 = start + TimeDelta::seconds(10 * i as i64);
        let h = format!("T{i}");
        events.push(
            json!({"at": at(t0), "do": "new_alert", "workspace": "law-sentinel",
            "alert": h, "subscription_id": DFC_SUB, "resource_group": "rg-app",
            "location": "westeurope", "display_name": format!("Throughput alert {i}"),
            "severity": "Medium"}),
        );
        events.push(
            json!({"at": at(t0 + TimeDelta::seconds(5)), "do": "alert_status",
            "alert": h, "status": "Resolved", "by": "owner@contoso.com"}),
        );
    }
    events.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    s["events"] = Value::Array(events);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: minutes at the default size"]
async fn throughput_against_the_arm_write_bucket() {
    let n: usize = env("THROUGHPUT_INCIDENTS", 2000);
    let bucket: u64 = env("THROUGHPUT_BUCKET", 20);
    let rate: f64 = env("THROUGHPUT_RATE", 20.0);
    let concurrency: usize = env("THROUGHPUT_CONCURRENCY", 8);

    let t = Instant::now();
    let emu = start(&closing_scenario(n, bucket, rate)).await;
    eprintln!(
        "emulator with {n} incidents up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let text = format!(
        "{}\n[sync]\nconcurrency = {concurrency}\n",
        emu.config_toml()
    );
    // The emulator's configuration may already have a [sync] table: then only patch it.
    let text = if emu.config_toml().contains("[sync]") {
        emu.config_toml()
            .replace("[sync]", &format!("[sync]\nconcurrency = {concurrency}"))
    } else {
        text
    };
    let config = Config::parse(&text, "<bench>").expect("config");
    let mut http = fast();
    http.arm_write_rate = rate;
    // Long Retry-After waits are fine here: a 429 is waited out, not failed.
    http.max_retry_after = Duration::from_secs(30);
    http.max_retries = 8;
    let conn = connect(&config, http).await;
    let ctl = control(&conn, &emu);
    let stop = Arc::new(AtomicBool::new(false));

    // Observe and decide only: the cost of everything but the writes.
    let plan = run_cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {}).await;
    assert!(plan.succeeded(), "{:?}", plan.workspaces[0].error);
    let planned = proof_support::planned(&plan);
    assert_eq!(planned.len(), n, "every incident is due for a close");
    let log_start = last_seq(&ctl, &emu).await;

    let progress: Mutex<Vec<Instant>> = Mutex::new(Vec::with_capacity(n));
    let t = Instant::now();
    let report = run_cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {
        progress.lock().unwrap().push(Instant::now());
    })
    .await;
    let wall = t.elapsed();
    assert!(report.succeeded(), "{:?}", report.workspaces[0].error);
    let act = report.workspaces[0].act.as_ref().expect("act");
    let applied = act
        .outcomes
        .iter()
        .filter(|o| matches!(o.result, dfcsync::act::ActionResult::Applied))
        .count();

    // The request log of the sync cycle.
    let log = request_log(&ctl, &emu).await;
    let log: Vec<&Value> = log
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > log_start)
        .collect();
    let mut by: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
    for e in &log {
        *by.entry((
            e["service"].as_str().unwrap().to_owned(),
            e["method"].as_str().unwrap().to_owned(),
            e["status"].as_u64().unwrap(),
        ))
        .or_default() += 1;
    }
    let is_write = |e: &&&Value| {
        e["service"] == "arm" && !matches!(e["method"].as_str(), Some("GET" | "HEAD" | "DELETE"))
    };
    let writes_ok = log
        .iter()
        .filter(is_write)
        .filter(|e| (200..300).contains(&e["status"].as_u64().unwrap()))
        .count();
    let writes_all = log.iter().filter(is_write).count();
    let throttled = log.iter().filter(|e| e["status"] == 429).count();
    let incident_puts = log
        .iter()
        .filter(is_write)
        .filter(|e| {
            let p = e["path"].as_str().unwrap();
            p.contains("/incidents/") && !p.contains("/comments/")
        })
        .count();
    let comment_puts = log
        .iter()
        .filter(is_write)
        .filter(|e| e["path"].as_str().unwrap().contains("/comments/"))
        .count();

    let p = progress.lock().unwrap();
    let act_span = match (p.first(), p.last()) {
        (Some(a), Some(b)) => b.duration_since(*a),
        _ => Duration::ZERO,
    };
    // Expected: the bucket's B tokens at once, then R a second.
    let ideal = (writes_ok as f64 - bucket as f64).max(0.0) / rate;
    let act_time = wall.saturating_sub(plan.duration).as_secs_f64();
    let achieved = writes_ok as f64 / act_time;
    // Over the span between the first and the last finished action: the steady state.
    let steady = if p.len() > 1 {
        2.0 * (p.len() - 1) as f64 / act_span.as_secs_f64()
    } else {
        0.0
    };
    let state = emu.state();
    let closed = state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "Closed")
        .count();

    println!("--- throughput against the ARM write bucket ---");
    println!(
        "incidents {n}, bucket {bucket}, refill {rate}/s, concurrency {concurrency}, dfcsync arm_write_rate {rate}"
    );
    println!(
        "plan-only cycle {:.2} s; sync cycle {:.2} s (ideal for the writes at the bucket's rate: {ideal:.1} s)",
        plan.duration.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "actions applied {applied}/{n}; incidents Closed {closed}; ARM writes answered 2xx {writes_ok} (all attempts {writes_all}): incident PUTs {incident_puts}, comment PUTs {comment_puts}"
    );
    println!(
        "writes per closed incident {:.3}",
        writes_ok as f64 / applied.max(1) as f64
    );
    println!(
        "achieved write rate {achieved:.2}/s over the act time ({act_time:.1} s) = {:.3} of the refill rate; steady state (first to last finished action, {:.1} s) {steady:.2}/s = {:.3}",
        achieved / rate,
        act_span.as_secs_f64(),
        steady / rate
    );
    println!(
        "429s met {throttled}; dfcsync retries {}, limiter and Retry-After waits {} ({:.1} s)",
        report.retries,
        report.throttle_waits,
        report.throttle_wait.as_secs_f64()
    );
    println!("requests of the sync cycle by (service, method, status): {by:?}");

    assert_eq!(applied, n);
    assert_eq!(closed, n);
}

async fn last_seq(ctl: &reqwest::Client, emu: &emulator::EmulatorHandle) -> u64 {
    request_log(ctl, emu)
        .await
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0)
}
