//! Load benchmark: a scenario written to a file and loaded from it, started, and queried.
//! Prints load time, peak memory and query latencies (recorded in `docs/benchmarks.md`,
//! section "Emulator"). By default the scenario is a realistic history of 250,000 incidents
//! told as events (each raised by a DfC alert, given a second alert, assigned, commented, then
//! closed by the analyst or resolved or dismissed in DfC: about 1,000,000 `SecurityAlert`
//! rows); `EMU_BENCH_SHAPE=import` imports rows instead (`rows` events: incidents and
//! `EMU_BENCH_ALERT_ROWS` alert rows).
//!
//! `cargo bench -p emulator --bench load`; sizes with `EMU_BENCH_INCIDENTS` (default 250000)
//! and `EMU_BENCH_ALERT_ROWS` (default 1000000, import shape only).
//!
//! It also runs dfcsync's change-feed query (`crates/kql/benches/change-feed-query.kql`, what
//! `dfcsync::observe::query::read_query` writes for `Selection::Changed { since: Since::At(t),
//! also: vec![] }` with the default policy) with two watermarks: the scenario's now (nothing
//! changed since) and the last ingestion of the 100th most recently changed incident (about
//! 100 changed), dfcsync's full sync query with and without the `kql` engine's semi-join
//! reduction, and last the change-feed query after a cycle's worth of events (new alerts and
//! comments, posted to `/_emulator/events`: the tables grow and the `kql` engine's table
//! indexes are extended; `EMU_BENCH_CYCLE_INCIDENTS`, default 50, of each).

use std::fmt::Write as _;
use std::time::Instant;

use chrono::{DateTime, Utc};
use emulator::{Emulator, EmulatorHandle, Scenario, StartOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The CPU time (user + system) the process has used, in seconds (`/proc/self/stat`, ticks of
/// 1/100 s): on a shared machine it varies far less than the wall time.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: state is the 3rd field of the line,
    // utime the 14th and stime the 15th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let field = |n: usize| {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field(14) + field(15)) / 100.0
}

fn guid(n: u64, tag: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        tag,
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n
    )
}

/// The scenario text: incidents with one to twenty alerts, each alert with a few rows.
fn scenario_text(incidents: usize, alert_rows: usize) -> String {
    let mut s = String::with_capacity(alert_rows * 700 + incidents * 900);
    s.push_str(r#"{"now":"2026-11-27T12:00:00Z","tenant_id":"72f988bf-0000-0000-0000-000000000001","workspaces":[{"name":"law-sentinel","subscription_id":"00000000-0000-0000-0000-000000000001","resource_group":"rg-sentinel","customer_id":"11111111-2222-3333-4444-555555555555"}],"principals":[{"name":"dfcsync","kind":"service_principal","client_id":"aaaaaaaa-0000-0000-0000-000000000001","secret":"s","roles":[{"role":"Microsoft Sentinel Responder","scope":"/subscriptions/00000000-0000-0000-0000-000000000001"}]}],"events":[{"do":"rows","table":"SecurityAlert","rows":["#);
    // Spread the alert rows over the incidents: about 4 rows per alert.
    let alerts = (alert_rows / 4).max(incidents);
    let statuses = ["New", "InProgress", "Resolved", "Dismissed"];
    let base = chrono::DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z").expect("time");
    let mut row = 0usize;
    'outer: for a in 0..alerts {
        for k in 0..4 {
            if row == alert_rows {
                break 'outer;
            }
            if row > 0 {
                s.push(',');
            }
            let at = base
                + chrono::Duration::minutes((a % 30_000) as i64)
                + chrono::Duration::hours(k as i64);
            let name = format!("25171{:014}_{}", a, guid(a as u64, 0xdfc));
            let _ = write!(
                s,
                r#"{{"TimeGenerated":"{}","SystemAlertId":"{}","VendorOriginalId":"{}","AlertName":"Suspicious process executed","DisplayName":"Suspicious process executed","AlertSeverity":"High","ProductName":"Azure Security Center","ProviderName":"Azure Security Center","VendorName":"Microsoft","Status":"{}","AlertLink":"https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{}/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope","StartTime":"2026-10-01T00:00:00Z","EndTime":"2026-10-01T00:05:00Z","Type":"SecurityAlert"}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                guid(a as u64, 0xa1e),
                name,
                statuses[k % 4],
                name
            );
            row += 1;
        }
    }
    s.push_str(r#"]},{"do":"rows","table":"SecurityIncident","rows":["#);
    for i in 0..incidents {
        if i > 0 {
            s.push(',');
        }
        let first = i * alerts / incidents;
        let last = ((i + 1) * alerts / incidents).max(first + 1);
        let ids: Vec<String> = (first..last)
            .map(|a| format!("\"{}\"", guid(a as u64, 0xa1e)))
            .collect();
        let _ = write!(
            s,
            r#"{{"TimeGenerated":"2026-10-{:02}T12:00:00Z","IncidentName":"{}","IncidentNumber":{},"Title":"Suspicious process executed","Severity":"High","Status":"{}","AlertIds":[{}],"CreatedTime":"2026-10-{:02}T12:00:00Z","LastModifiedTime":"2026-10-{:02}T12:00:00Z","ProviderName":"Azure Sentinel","ProviderIncidentId":"{}","ModifiedBy":"Incident created from alert","AdditionalData":{{"alertsCount":{},"bookmarksCount":0,"commentsCount":0,"alertProductNames":["Azure Security Center"],"tactics":[]}},"Comments":[],"Labels":[],"Owner":{{"objectId":null,"email":null,"assignedTo":null,"userPrincipalName":null}}}}"#,
            1 + i % 27,
            guid(i as u64, 0x1c1),
            i + 1,
            if i % 3 == 0 { "Closed" } else { "New" },
            ids.join(","),
            1 + i % 27,
            1 + i % 27,
            i + 1,
            last - first,
        );
    }
    s.push_str("]}]}");
    s
}

/// The scenario of a realistic history, as `new_alert` and analyst events, generated while it
/// is read (so the bench holds no scenario text): each incident is raised by a DfC alert, gets
/// a second alert, is assigned and commented by an analyst, then either closed by the analyst
/// in Sentinel (bi-directional sync resolves the alerts), or its alerts are resolved or
/// dismissed in Defender for Cloud. Each incident makes 4 `SecurityAlert` rows (2 alerts ×
/// raised + resolved/dismissed) and 4 or 5 `SecurityIncident` rows, with the emulator's own
/// long alert texts (`Description`, `Entities`, `ExtendedProperties`, `RemediationSteps`).
struct History {
    incidents: usize,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    /// Bytes produced so far.
    produced: usize,
    /// (incidents produced, RSS MiB, peak RSS MiB) at each quarter of the history: how the
    /// memory grows while the scenario is read and applied.
    marks: Vec<(usize, f64, f64)>,
}

impl History {
    fn new(incidents: usize) -> History {
        let head = r#"{"now":"2026-11-27T12:00:00Z","tenant_id":"72f988bf-0000-0000-0000-000000000001","clock":"frozen","workspaces":[{"name":"law-sentinel","subscription_id":"00000000-0000-0000-0000-000000000001","resource_group":"rg-sentinel","customer_id":"11111111-2222-3333-4444-555555555555","bidirectional_sync":true}],"principals":[{"name":"dfcsync","kind":"service_principal","client_id":"aaaaaaaa-0000-0000-0000-000000000001","secret":"s","roles":[{"role":"Microsoft Sentinel Responder","scope":"/subscriptions/00000000-0000-0000-0000-000000000001"}]},{"name":"analyst@contoso.com","kind":"user","object_id":"cccccccc-0000-0000-0000-000000000001","display_name":"Ana Lyst","roles":[{"role":"Microsoft Sentinel Responder","scope":"/subscriptions/00000000-0000-0000-0000-000000000001"}]},{"name":"owner@contoso.com","kind":"user","object_id":"cccccccc-0000-0000-0000-000000000002","roles":[{"role":"Security Admin","scope":"/subscriptions/00000000-0000-0000-0000-000000000002"}]}],"events":["#;
        History {
            incidents,
            next: 0,
            buf: head.as_bytes().to_vec(),
            pos: 0,
            done: false,
            produced: 0,
            marks: Vec::new(),
        }
    }

    /// The events of incident `i`.
    fn incident(&self, i: usize) -> String {
        let mut s = String::with_capacity(1600);
        if i > 0 {
            s.push(',');
        }
        let kinds = [
            (
                "Suspicious process executed",
                "High",
                "VM_SuspiciousProcess",
            ),
            (
                "Digital currency mining related behavior detected",
                "Medium",
                "VM_CurrencyMining",
            ),
            (
                "Access from a suspicious IP address",
                "Low",
                "SQL_SuspiciousIpAnomaly",
            ),
            (
                "Anomalous network protocol usage",
                "Medium",
                "K8S_NetworkAnomaly",
            ),
        ];
        // 60 days of history, spread evenly, all before the scenario's now.
        let span_min: i64 = 60 * 24 * 60;
        let (name, sev, ty) = kinds[i % kinds.len()];
        let start = span_min - i as i64 * span_min / self.incidents.max(1) as i64 + 600;
        let at = |m: i64| format!("-{}m", start - m);
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let rg = format!("rg-app-{}", i % 50);
        let host = format!("vm-{:06}", i % 100_000);
        let _ = write!(
            s,
            r#"{{"at":"{}","do":"new_alert","workspace":"law-sentinel","alert":"{a}","subscription_id":"00000000-0000-0000-0000-000000000002","resource_group":"{rg}","display_name":"{name}","severity":"{sev}","alert_type":"{ty}","compromised_entity":"{host}"}},"#,
            at(0)
        );
        let _ = write!(
            s,
            r#"{{"at":"{}","do":"new_alert","workspace":"law-sentinel","alert":"{b}","subscription_id":"00000000-0000-0000-0000-000000000002","resource_group":"{rg}","display_name":"{name}","severity":"{sev}","alert_type":"{ty}","compromised_entity":"{host}","incident":false}},"#,
            at(5)
        );
        let _ = write!(
            s,
            r#"{{"at":"{}","do":"incident_add_alert","incident":"{a}","alert":"{b}","by":"analyst@contoso.com"}},{{"at":"{}","do":"incident_owner","incident":"{a}","owner":"analyst@contoso.com","by":"analyst@contoso.com"}},{{"at":"{}","do":"incident_comment","incident":"{a}","text":"Checked the host {host}: the process was started by a scheduled task; see ticket {i}.","by":"analyst@contoso.com"}},"#,
            at(10),
            at(20),
            at(30)
        );
        match i % 3 {
            0 => {
                let _ = write!(
                    s,
                    r#"{{"at":"{}","do":"incident_status","incident":"{a}","status":"Closed","classification":"TruePositive","classification_reason":"SuspiciousActivity","classification_comment":"Contained and remediated.","by":"analyst@contoso.com"}}"#,
                    at(60)
                );
            }
            k => {
                let status = if k == 1 { "Resolved" } else { "Dismissed" };
                let _ = write!(
                    s,
                    r#"{{"at":"{}","do":"alert_status","alert":"{a}","status":"{status}","by":"owner@contoso.com"}},{{"at":"{}","do":"alert_status","alert":"{b}","status":"{status}","by":"owner@contoso.com"}}"#,
                    at(60),
                    at(61)
                );
            }
        }
        s
    }
}

impl std::io::Read for History {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            if self.next > 0 && self.next % (self.incidents / 4).max(1) == 0 {
                self.marks.push((self.next, rss_mib(), peak_rss_mib()));
            }
            self.buf = if self.next < self.incidents {
                self.next += 1;
                self.incident(self.next - 1).into_bytes()
            } else {
                self.done = true;
                b"]}".to_vec()
            };
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n;
        Ok(n)
    }
}

const QUERIES: &[(&str, &str)] = &[
    ("count alerts", "SecurityAlert | count"),
    (
        "newest incident rows, open",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | where Status != 'Closed' | count",
    ),
    (
        "newest alert row per alert",
        "SecurityAlert | where TimeGenerated > ago(90d) | summarize arg_max(TimeGenerated, Status) by SystemAlertId | summarize count() by Status",
    ),
    (
        "incidents joined to their alerts",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | where Status != 'Closed' | mv-expand AlertIds to typeof(string) | join kind=inner (SecurityAlert | summarize arg_max(TimeGenerated, Status) by SystemAlertId) on $left.AlertIds == $right.SystemAlertId | summarize count() by Status1",
    ),
];

#[tokio::main]
async fn main() {
    let incidents = env_usize("EMU_BENCH_INCIDENTS", 250_000);
    let alert_rows = env_usize("EMU_BENCH_ALERT_ROWS", 1_000_000);
    let import = std::env::var("EMU_BENCH_SHAPE").is_ok_and(|v| v == "import");
    let t = Instant::now();
    let cpu = cpu_secs();
    let scenario = if import {
        let text = scenario_text(incidents, alert_rows);
        println!(
            "scenario (rows imports): {:.1} MiB, generated in {:.2?}",
            text.len() as f64 / 1048576.0,
            t.elapsed()
        );
        println!("RSS before load {:.0} MiB", rss_mib());
        let t = Instant::now();
        let scenario = Scenario::from_json_str(&text).expect("scenario loads");
        println!(
            "load (parse, build the model and tables): {:.2?}",
            t.elapsed()
        );
        scenario
    } else {
        let mut history = History::new(incidents);
        let scenario = Scenario::from_reader(&mut history).expect("scenario loads");
        println!(
            "scenario (history events, generated while read): {:.1} MiB; load (generate, parse, build the model and tables): {:.2?}",
            history.produced as f64 / 1048576.0,
            t.elapsed()
        );
        for (n, rss, peak) in &history.marks {
            println!("  read and applied {n} incidents: RSS {rss:.0} MiB, peak RSS {peak:.0} MiB");
        }
        scenario
    };
    println!(
        "after load: peak RSS {:.0} MiB, RSS {:.0} MiB; CPU time of the load {:.1} s (wall {:.1} s)",
        peak_rss_mib(),
        rss_mib(),
        cpu_secs() - cpu,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let emu = Emulator::start(scenario, StartOptions::default())
        .await
        .expect("starts");
    println!(
        "start (TLS, copy of the initial state): {:.2?}, peak RSS {:.0} MiB",
        t.elapsed(),
        peak_rss_mib()
    );

    let (n_inc, n_rows, n_inc_rows, texts, dynamics) = emu.with_platform(|p| {
        use emulator::table::TableKind;
        (
            p.incidents.len(),
            p.tables[0].rows(TableKind::SecurityAlert).len(),
            p.tables[0].rows(TableKind::SecurityIncident).len(),
            p.tables[0].distinct_texts(),
            p.tables[0].distinct_dynamics(),
        )
    });
    println!(
        "incidents: {n_inc}, SecurityAlert rows: {n_rows}, SecurityIncident rows: {n_inc_rows}; distinct texts {texts}, distinct dynamic values {dynamics}"
    );

    for (label, q) in QUERIES {
        let (times, r) = run_timed(&emu, q, 3);
        let result = match r {
            Ok(t) => format!("{} rows", t.rows.len()),
            Err(e) => format!("error: {e:?}"),
        };
        println!(
            "query {label:?}: median {:.2?} (min {:.2?}, max {:.2?}); {result}",
            times[1], times[0], times[2]
        );
    }
    change_feed(&emu);
    sync_query(&emu);
    println!(
        "peak RSS {:.0} MiB, RSS now {:.0} MiB",
        peak_rss_mib(),
        rss_mib()
    );
    // Last: the first write copies the state shared with the scenario (memory doubles); the
    // second cycle is the steady state.
    let n = env_usize("EMU_BENCH_CYCLE_INCIDENTS", 50);
    for cycle in 0..2 {
        change_feed_after_events(&emu, cycle, n).await;
    }
    println!(
        "after the cycles: peak RSS {:.0} MiB, RSS now {:.0} MiB",
        peak_rss_mib(),
        rss_mib()
    );
    emu.shutdown().await;
}

/// dfcsync's change-feed query with the default policy, as `read_query` writes it for a
/// watermark of 2026-11-27T00:00:00Z (the bench puts its own watermark in).
const CHANGE_FEED_QUERY: &str = include_str!("../../kql/benches/change-feed-query.kql");

/// The change-feed query with the watermark `since`.
fn change_feed_query(since: DateTime<Utc>) -> String {
    let line = "let changed_since = datetime(2026-11-27T00:00:00Z);";
    assert!(
        CHANGE_FEED_QUERY.contains(line),
        "the change-feed query's watermark line changed"
    );
    CHANGE_FEED_QUERY.replace(
        line,
        &format!(
            "let changed_since = datetime({});",
            since.format("%Y-%m-%dT%H:%M:%S%.fZ")
        ),
    )
}

/// Runs the change-feed query with a watermark selecting no incident and one selecting about
/// 100, five times each, and prints the median and what it answered.
fn change_feed(emu: &EmulatorHandle) {
    let (now, hundredth) = emu.with_platform(|p| {
        let opts = kql::QueryOptions::new(p.start);
        let q = "SecurityIncident | summarize c = max(ingestion_time()) by IncidentName | top 100 by c desc | summarize min(c)";
        let t = kql::run(q, &p.tables[0].db, &opts).expect("watermark query runs");
        let at = match t.rows.first().and_then(|r| r.first()) {
            Some(kql::Value::DateTime(d)) => *d,
            other => panic!("no watermark: {other:?}"),
        };
        (p.start, at)
    });
    for (label, since) in [("~0 changed", now), ("~100 changed", hundredth)] {
        let q = change_feed_query(since);
        let (times, r) = run_timed(emu, &q, 5);
        let answer = match r {
            Ok(t) => {
                let mut incidents = std::collections::HashSet::new();
                let mut alert_rows = 0;
                for row in &t.rows {
                    match row.first().map(|c| c.to_kql_string()).as_deref() {
                        Some("SecurityIncident") => {
                            incidents.insert(row.get(2).map(|c| c.to_kql_string()));
                        }
                        Some("SecurityAlert") => alert_rows += 1,
                        _ => {}
                    }
                }
                format!(
                    "{} rows: {} incidents, {alert_rows} alert rows",
                    t.rows.len(),
                    incidents.len()
                )
            }
            Err(e) => format!("error: {e:?}"),
        };
        if std::env::var("EMU_BENCH_STAGES").is_ok() {
            change_feed_stages(emu, &q);
        }
        println!(
            "change-feed query, {label} (since {since}): median {:.3?} (min {:.3?}, max {:.3?}); {answer}",
            times[2], times[0], times[4]
        );
    }
}

/// Cycle `cycle`: `n` new alerts (each raising an incident) and comments on `n` existing
/// incidents, posted as events at the scenario's now, then the change-feed query with the
/// scenario's now as its watermark (what changed is those incidents and the earlier cycles'),
/// five times: the first run extends the `kql` engine's table indexes with the new rows (and,
/// after the first write, copies them from the state shared with the scenario).
async fn change_feed_after_events(emu: &EmulatorHandle, cycle: usize, n: usize) {
    let mut events = Vec::new();
    for i in 0..n {
        events.push(serde_json::json!({"do": "new_alert", "workspace": "law-sentinel", "alert": format!("cycle{cycle}-{i}"),
            "subscription_id": "00000000-0000-0000-0000-000000000002", "resource_group": "rg-app-0",
            "display_name": "Suspicious process executed", "severity": "High", "alert_type": "VM_SuspiciousProcess",
            "compromised_entity": "vm-cycle"}));
        events.push(
            serde_json::json!({"do": "incident_comment", "incident": format!("a{}", (i + cycle * n) * 7),
            "text": "Looked again.", "by": "analyst@contoso.com"}),
        );
    }
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("the emulator's CA"),
        )
        .build()
        .expect("client");
    let t = Instant::now();
    let r = http
        .post(format!("{}/_emulator/events", emu.base_url()))
        .json(&serde_json::json!({ "events": events }))
        .send()
        .await
        .expect("events posted");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "events refused: {status} {body}");
    println!(
        "cycle {cycle}: {} events applied in {:.2?}: {body}",
        events.len(),
        t.elapsed()
    );
    let now = emu.with_platform(|p| p.start);
    let q = change_feed_query(now);
    let (first, _) = run_timed(emu, &q, 1);
    let (times, r) = run_timed(emu, &q, 4);
    let answer = match r {
        Ok(t) => format!("{} rows", t.rows.len()),
        Err(e) => format!("error: {e:?}"),
    };
    println!(
        "change-feed query after cycle {cycle}'s events (since {now}): first run {:.3?}, then median {:.3?} (min {:.3?}, max {:.3?}); {answer}",
        first[0], times[1], times[0], times[3]
    );
}

/// With `EMU_BENCH_STAGES` set: the time each `let` of the change-feed query adds (the query
/// up to that `let`, then a count of it).
fn change_feed_stages(emu: &EmulatorHandle, q: &str) {
    let mut prefix = String::new();
    let mut last = std::time::Duration::ZERO;
    for stmt in q.split_inclusive(";\n") {
        prefix.push_str(stmt);
        let Some(name) = stmt
            .trim_start()
            .strip_prefix("let ")
            .and_then(|s| s.split_whitespace().next())
        else {
            continue;
        };
        let counted = format!("{prefix}{name} | count");
        let t = Instant::now();
        let r = emu.with_platform(|p| {
            let opts = kql::QueryOptions::new(p.start);
            kql::run(&counted, &p.tables[0].db, &opts)
        });
        let el = t.elapsed();
        let n = match r {
            Ok(t) => t
                .rows
                .first()
                .and_then(|r| r.first())
                .map(|c| c.to_kql_string()),
            Err(_) => None,
        };
        println!(
            "  let {name}: {:.1?} (+{:.1?}), {} rows",
            el,
            el.saturating_sub(last),
            n.unwrap_or_else(|| "a scalar".into())
        );
        last = el;
    }
}

/// dfcsync's full sync query with the default policy (`crates/kql/benches/sync-query.kql`, kept
/// current by dfcsync's test `the_benchmarks_copy_of_the_sync_query_is_current`), three runs,
/// then three runs of the same query with the `kql` engine's semi-join reduction stopped (an
/// `as` before each `join`, which changes nothing else): what the reduction costs or saves
/// where the joins' right sides are not small.
fn sync_query(emu: &EmulatorHandle) {
    let full = include_str!("../../kql/benches/sync-query.kql");
    let unreduced = full.replace("| join ", "| as unreduced | join ");
    for (label, q) in [("reduced", full), ("unreduced", unreduced.as_str())] {
        let (times, r) = run_timed(emu, q, 3);
        let answer = match r {
            Ok(t) => format!("{} rows", t.rows.len()),
            Err(e) => format!("error: {e:?}"),
        };
        println!(
            "full sync query, {label}: median {:.3?} (min {:.3?}, max {:.3?}); {answer}",
            times[1], times[0], times[2]
        );
    }
}

/// Runs `q` `runs` times on the first workspace's tables (`now()` = the scenario's now): the
/// times, sorted, and the last answer.
fn run_timed(
    emu: &EmulatorHandle,
    q: &str,
    runs: usize,
) -> (Vec<std::time::Duration>, Result<kql::Table, kql::KqlError>) {
    let mut times = vec![];
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = emu.with_platform(|p| {
            let opts = kql::QueryOptions::new(p.start);
            kql::run(q, &p.tables[0].db, &opts)
        });
        times.push(t.elapsed());
        last = Some(r);
    }
    times.sort();
    let last = last.expect("at least one run");
    (times, last)
}
