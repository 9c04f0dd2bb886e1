//! Latency of `dfcsync run` (docs/benchmarks.md, "Latency of `dfcsync run`"): the built
//! binary runs as a daemon (a cycle every `LATENCY_INTERVAL`, no jitter) against the
//! emulator; the test makes N Defender for Cloud status changes through the control API
//! (`POST /_emulator/events`), one every 0.5–1 s at random, each on its own incident and each
//! one dfcsync must act on (Resolved → close as TruePositive, Dismissed → close as
//! BenignPositive, InProgress → set Active), and measures per change the time from the change
//! (the emulator's clock when it applied the event) to the incident's update (the emulator's
//! clock when the incident's PUT was answered 2xx, from the request log). Reports p50, p90,
//! p99 and max, and splits each latency into the wait for the next cycle's query and the
//! time from that query to the PUT.
//!
//! It checks the result too, so that it cannot pass with numbers about nothing: every changed
//! incident updated once (one incident PUT), ending as expected with its mark; incidents left
//! unchanged never written; no duplicate comment; no Closed incident with an open alert; no
//! failed cycle; the daemon stops cleanly on SIGTERM.
//!
//! ```sh
//! cargo test --release -p dfcsync --test bench_latency -- --ignored --nocapture
//! ```
//!
//! Environment: `LATENCY_CHANGES` (200), `LATENCY_INTERVAL` (the daemon's `sync.interval`,
//! `1s`), `LATENCY_INGESTION_DELAY` (the workspace's `ingestion_delay`, `0s`),
//! `LATENCY_GAP_MS` (the gaps between changes, drawn uniformly from `500-1000` ms),
//! `LATENCY_SEED` (1), `LATENCY_LOG` (a `RUST_LOG` filter for the daemon, whose log is then
//! printed at the end).

mod proof_support;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use dfcsync::config::Config;
use proof_support::{
    DFC_SUB, NOW, assert_closed_alerts_finished, assert_no_duplicate_comments, connect, control,
    fast, marks, request_log, scenario, start,
};
use serde_json::{Value, json};

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The DfC status each change sets, in turn, and what the incident must become.
const CHANGES: [(&str, &str, &str, &str); 3] = [
    ("Resolved", "Closed", "TruePositive", "close"),
    ("Dismissed", "Closed", "BenignPositive", "close"),
    ("InProgress", "Active", "", "activate"),
];

/// `changed` incidents (alert handles `L0`…) and `quiet` ones (`Q0`…), one New alert each,
/// all New: nothing to do until a change comes.
fn latency_scenario(changed: usize, quiet: usize, ingestion_delay: &str) -> Value {
    let (mut s, _) = scenario(0, ingestion_delay, None);
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let total = changed + quiet;
    let first = now - TimeDelta::seconds(5 * total as i64 + 3600);
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events: Vec<Value> = (0..total)
        .map(|i| {
            let h = if i < changed {
                format!("L{i}")
            } else {
                format!("Q{}", i - changed)
            };
            json!({"at": at(first + TimeDelta::seconds(5 * i as i64)), "do": "new_alert",
                   "workspace": "law-sentinel", "alert": h, "subscription_id": DFC_SUB,
                   "resource_group": "rg-app", "location": "westeurope",
                   "display_name": format!("Latency alert {h}"), "severity": "Medium"})
        })
        .collect();
    s["events"] = Value::Array(events);
    s
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// The incident name of an incident PUT (`…/incidents/{name}`), or of a comment PUT
/// (`…/incidents/{name}/comments/{id}`) with `true`.
fn incident_write(e: &Value) -> Option<(String, bool)> {
    if e["method"] != "PUT" || !(200..300).contains(&e["status"].as_u64()?) {
        return None;
    }
    let rest = e["path"].as_str()?.split("/incidents/").nth(1)?;
    match rest.split_once('/') {
        None => Some((rest.to_owned(), false)),
        Some((name, tail)) if tail.starts_with("comments/") => Some((name.to_owned(), true)),
        Some(_) => None,
    }
}

/// An ARM path with its names left out (`…/incidents/*/comments`), to count reads by kind.
fn shape(path: &str) -> String {
    let mut out = Vec::new();
    let mut named = false;
    for seg in path.split('/') {
        out.push(if named { "*" } else { seg });
        named = matches!(
            seg.to_ascii_lowercase().as_str(),
            "subscriptions"
                | "resourcegroups"
                | "workspaces"
                | "incidents"
                | "comments"
                | "alerts"
                | "locations"
        );
    }
    out.join("/")
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    format!(
        "{name}: min {:.3} s, p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s, mean {mean:.3} s",
        v[0],
        pct(v, 50.0),
        pct(v, 90.0),
        pct(v, 99.0),
        v[v.len() - 1]
    )
}

async fn metrics(listen: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(listen).await.unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    buf
}

/// The value of a counter line of the Prometheus text (0 when absent).
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: about N × 0.75 s (200 changes: ~3 min)"]
async fn latency_from_a_dfc_change_to_the_incident_update() {
    let n: usize = env("LATENCY_CHANGES", 200);
    let interval: String = env("LATENCY_INTERVAL", "1s".to_owned());
    let delay: String = env("LATENCY_INGESTION_DELAY", "0s".to_owned());
    let gaps: String = env("LATENCY_GAP_MS", "500-1000".to_owned());
    let seed: u64 = env("LATENCY_SEED", 1);
    let (gap_lo, gap_hi) = gaps
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .expect("LATENCY_GAP_MS: LOW-HIGH in milliseconds");
    let quiet = (n / 10).max(5);
    // LATENCY_LOG (a RUST_LOG filter) prints the daemon's log at the end.
    let rust_log: String = env("LATENCY_LOG", "warn".to_owned());

    let emu = start(&latency_scenario(n, quiet, &delay)).await;
    let base = emu.base_url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dfcsync.toml");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = format!(
        "{}\n[sync]\ninterval = \"{interval}\"\njitter = \"0s\"\nlisten = \"{listen}\"\n",
        emu.config_toml()
    );
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, "latency.toml").expect("config");
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);

    // Which incident holds which alert (by the scenario's handle).
    let state = emu.state();
    let alert_id: HashMap<String, String> = state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_owned(),
                a["system_alert_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let incident_of: HashMap<String, String> = state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let name = i["name"].as_str().unwrap().to_owned();
            i["alert_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |a| (a.as_str().unwrap().to_owned(), name.clone()))
        })
        .collect();
    let incident = |handle: &str| incident_of[&alert_id[handle]].clone();
    assert_eq!(incident_of.len(), n + quiet, "one incident per alert");

    let log = std::fs::File::create(dir.path().join("dfcsync.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env_remove("DFCSYNC_CONFIG")
        .env("RUST_LOG", &rust_log)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn dfcsync run");
    let dump_log = || std::fs::read_to_string(dir.path().join("dfcsync.log")).unwrap_or_default();

    // Ready once a cycle's query has been answered; that cycle finds nothing to do.
    let deadline = Instant::now() + Duration::from_secs(60);
    let queries_answered = |log: &[Value]| {
        log.iter()
            .filter(|e| e["service"] == "log_analytics" && e["status"] == 200)
            .count()
    };
    while queries_answered(&request_log(&ctl, &emu).await) < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "dfcsync run exited:\n{}",
            dump_log()
        );
        assert!(Instant::now() < deadline, "no cycle ran:\n{}", dump_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = request_log(&ctl, &emu).await;
    assert!(
        before.iter().all(|e| incident_write(e).is_none()),
        "the quiet scenario needs no write"
    );

    // The changes.
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut changes: Vec<(String, DateTime<Utc>, usize)> = Vec::with_capacity(n);
    let t_changes = Instant::now();
    for i in 0..n {
        tokio::time::sleep(Duration::from_millis(rng.u64(gap_lo..=gap_hi))).await;
        let kind = i % CHANGES.len();
        let r = ctl
            .post(format!("{base}/_emulator/events"))
            .header("content-type", "application/json")
            .body(
                json!({"events": [{"do": "alert_status", "alert": format!("L{i}"),
                                   "status": CHANGES[kind].0, "by": "owner@contoso.com"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "event {i}: {}", r.status());
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["applied"], 1);
        changes.push((incident(&format!("L{i}")), time(&body["now"]), kind));
    }
    let changes_span = t_changes.elapsed();

    // Until every changed incident has been written, then a few cycles more, to catch a
    // repeated write.
    let grace = humantime::parse_duration(&delay).unwrap() + Duration::from_secs(60);
    let deadline = Instant::now() + grace;
    let names: Vec<&String> = changes.iter().map(|c| &c.0).collect();
    loop {
        let log = request_log(&ctl, &emu).await;
        let written: std::collections::HashSet<String> = log
            .iter()
            .filter_map(incident_write)
            .filter(|(_, comment)| !comment)
            .map(|(name, _)| name)
            .collect();
        let missing = names.iter().filter(|n| !written.contains(**n)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} changed incidents never updated:\n{}",
            dump_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle = humantime::parse_duration(&interval).unwrap() * 3 + Duration::from_secs(1);
    tokio::time::sleep(settle).await;
    let prom = metrics(listen).await;

    // SIGTERM: it stops, cleanly.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}\n{}", dump_log());

    // The request log: every incident write, and every answered query.
    let log = request_log(&ctl, &emu).await;
    let mut puts: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    let mut comments: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    let mut queries: Vec<DateTime<Utc>> = Vec::new();
    let mut by: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
    let mut reads: HashMap<String, u64> = HashMap::new();
    let mut arm_reads: BTreeMap<String, u64> = BTreeMap::new();
    for e in &log {
        *by.entry((
            e["service"].as_str().unwrap().to_owned(),
            e["method"].as_str().unwrap().to_owned(),
            e["status"].as_u64().unwrap(),
        ))
        .or_default() += 1;
        if e["service"] == "log_analytics" && e["status"] == 200 {
            queries.push(time(&e["time"]));
        }
        if e["method"] == "GET" && e["service"] == "arm" {
            *arm_reads
                .entry(shape(e["path"].as_str().unwrap()))
                .or_default() += 1;
        }
        if e["method"] == "GET"
            && let Some(name) = e["path"]
                .as_str()
                .and_then(|p| p.split("/incidents/").nth(1))
            && !name.contains('/')
        {
            *reads.entry(name.to_owned()).or_default() += 1;
        }
        if let Some((name, comment)) = incident_write(e) {
            let m = if comment { &mut comments } else { &mut puts };
            m.entry(name).or_default().push(time(&e["time"]));
        }
    }
    queries.sort();

    let state = emu.state();
    let by_name: HashMap<&str, &Value> = state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i))
        .collect();
    let secs = |d: TimeDelta| d.num_microseconds().unwrap() as f64 / 1e6;
    let mut latency = Vec::with_capacity(n);
    let mut to_last_write = Vec::with_capacity(n);
    let mut wait_for_query = Vec::with_capacity(n);
    let mut query_to_put = Vec::with_capacity(n);
    let mut by_kind: [Vec<f64>; 3] = Default::default();
    for (i, (name, changed_at, kind)) in changes.iter().enumerate() {
        let (_, status, classification, action) = CHANGES[*kind];
        let p = puts.get(name).cloned().unwrap_or_default();
        assert_eq!(
            p.len(),
            1,
            "change {i} ({}): incident {name} must be written exactly once, got PUTs at {p:?}",
            CHANGES[*kind].0
        );
        let put = p[0];
        assert!(put > *changed_at, "change {i}: a PUT before the change");
        let last = comments
            .get(name)
            .into_iter()
            .flatten()
            .chain(&p)
            .copied()
            .max()
            .unwrap();
        // The cycle that acted: the last query answered before the PUT.
        let q = queries.partition_point(|t| *t < put);
        assert!(q > 0, "change {i}: no query before its PUT");
        let query = queries[q - 1];
        let l = secs(put - *changed_at);
        latency.push(l);
        by_kind[*kind].push(l);
        to_last_write.push(secs(last - *changed_at));
        wait_for_query.push(secs(query - *changed_at));
        query_to_put.push(secs(put - query));

        let inc = by_name[name.as_str()];
        assert_eq!(inc["status"], status, "change {i}: {inc}");
        assert_eq!(
            inc["classification"].as_str().unwrap_or(""),
            classification,
            "change {i}: {inc}"
        );
        let comment_marks: Vec<String> = inc["comments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| marks(c["message"].as_str().unwrap_or("")))
            .collect();
        assert!(
            comment_marks.len() == 1 && comment_marks[0].starts_with(&format!("{action}:")),
            "change {i}: one {action} comment expected: {inc}"
        );
        if action == "close" {
            let close_mark = marks(inc["classification_comment"].as_str().unwrap_or("")).pop();
            assert_eq!(
                close_mark.as_ref(),
                comment_marks.first(),
                "change {i}: {inc}"
            );
        }
    }
    for q in 0..quiet {
        let name = incident(&format!("Q{q}"));
        assert!(
            !puts.contains_key(&name) && !comments.contains_key(&name),
            "the unchanged incident {name} was written"
        );
        assert_eq!(by_name[name.as_str()]["status"], "New");
    }
    assert_no_duplicate_comments(&state);
    assert_closed_alerts_finished(&state);
    let failed = counter(&prom, "dfcsync_cycles_total{result=\"failure\"}");
    let succeeded = counter(&prom, "dfcsync_cycles_total{result=\"success\"}");
    assert!(succeeded > 0.0, "{prom}");
    assert_eq!(failed, 0.0, "failed cycles:\n{prom}");

    let periods: Vec<f64> = queries.windows(2).map(|w| secs(w[1] - w[0])).collect();
    let mut periods_sorted = periods.clone();
    println!("--- latency of dfcsync run: DfC change to incident update ---");
    println!(
        "changes {n} (Resolved/Dismissed/InProgress in turn, one incident each) over {:.1} s, gaps {gap_lo}-{gap_hi} ms; {quiet} incidents left unchanged; interval {interval}, jitter 0s, ingestion_delay {delay}, seed {seed}",
        changes_span.as_secs_f64()
    );
    println!(
        "cycles: {succeeded} succeeded, {failed} failed; queries answered {} ({})",
        queries.len(),
        summary("period between queries", &mut periods_sorted)
    );
    println!("{}", summary("change -> incident PUT", &mut latency));
    for (k, v) in by_kind.iter_mut().enumerate() {
        if !v.is_empty() {
            println!("{}", summary(&format!("  {}", CHANGES[k].0), v));
        }
    }
    println!(
        "{}",
        summary("change -> last write of the action", &mut to_last_write)
    );
    println!(
        "{}",
        summary(
            "change -> the query of the cycle that acted",
            &mut wait_for_query
        )
    );
    println!(
        "{}",
        summary("that query -> incident PUT", &mut query_to_put)
    );
    let read_total: u64 = names
        .iter()
        .map(|n| reads.get(*n).copied().unwrap_or(0))
        .sum();
    let read_max = names
        .iter()
        .map(|n| reads.get(*n).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    println!(
        "incident GETs of the changed incidents: {read_total} ({:.2} per change, at most {read_max} for one)",
        read_total as f64 / n as f64
    );
    println!("ARM GETs of the whole run by path: {arm_reads:?}");
    println!("requests of the whole run by (service, method, status): {by:?}");
    if std::env::var("LATENCY_LOG").is_ok() {
        eprintln!("--- the daemon's log ---\n{}", dump_log());
    }
}
